"""SmoothGrad (Smilkov et al., 2017): mean of the raw (signed) gradients over noisy input copies.

The noise is drawn here rather than by captum's ``NoiseTunnel``: NoiseTunnel draws with the
global RNG (no ``torch.Generator``), takes one standard deviation for the whole batch (not one per
sample) and draws per chunk of samples, so its output would depend on ``batch_size``. Each copy's
gradient is captum's ``Saliency(abs=False)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from captum.attr import Saliency as _Saliency
from torch import nn

from baselines.base import Baseline
from baselines.registry import register


@register("smoothgrad")
class SmoothGrad(Baseline):
    """Mean over ``n_samples`` copies ``x + d`` of the signed gradient ``d f_y / d x`` (no abs).

    ``d ~ N(0, s_i^2)`` with ``s_i = noise * (max(x_i) - min(x_i))`` per sample ``i``; the noise
    comes from a ``torch.Generator`` seeded with ``seed`` on ``x``'s device, drawn one
    ``x``-shaped block per copy, so ``(x, seed)`` gives the same output whatever ``batch_size``.
    ``explain(x [B, C, *spatial], y [B]) -> [B, C, *spatial]``.
    """

    def __init__(
        self,
        model: nn.Module,
        batch_size: int = 64,
        *,
        n_samples: int = 50,
        noise: float = 0.25,
        seed: int = 42,
    ) -> None:
        super().__init__(model, batch_size)
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples: expected a positive integer, got {n_samples!r}")
        if not float(noise) >= 0:
            raise ValueError(f"noise: expected a non-negative number, got {noise!r}")
        self.n_samples, self.noise, self.seed = n_samples, float(noise), int(seed)

    def attribute(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        method = _Saliency(self.model)
        total = torch.zeros_like(x)
        for copies, owners in self._noisy_copies(x):
            total.index_add_(0, owners, method.attribute(self.leaf(copies), target=y[owners], abs=False))
        return total / self.n_samples

    def _noisy_copies(self, x: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches ``(copies [k, C, *spatial], owners [k])``, ``k <= batch_size``, in draw order."""
        n = x.shape[0]
        flat = x.flatten(1)
        stdev = (self.noise * (flat.amax(1) - flat.amin(1))).view(n, *[1] * (x.dim() - 1))
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        index = torch.arange(n, device=x.device)
        copies, owners = x[:0], index[:0]
        for _ in range(self.n_samples):
            noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            copies, owners = torch.cat([copies, x + stdev * noise]), torch.cat([owners, index])
            while copies.shape[0] >= self.batch_size:
                yield copies[: self.batch_size], owners[: self.batch_size]
                copies, owners = copies[self.batch_size :], owners[self.batch_size :]
        if copies.shape[0]:
            yield copies, owners
