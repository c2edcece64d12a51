"""Integrated Gradients (Sundararajan et al., 2017), captum ``IntegratedGradients``, trapezoid rule.

Captum's ``riemann_trapezoid`` weights its ``n`` points ``linspace(0, 1, n)`` by ``1/n`` (ends
halved), which sum to ``(n - 1) / n`` instead of 1; the true trapezoid rule on those points has
spacing ``1 / (n - 1)``. Every weight is off by the same factor, so the result is rescaled by
``n / (n - 1)``: the attribution is then the exact trapezoid rule and completeness holds exactly on
a linear model.
"""

from __future__ import annotations

import torch
from captum.attr import IntegratedGradients as _IntegratedGradients
from torch import nn

from baselines.base import Baseline
from baselines.registry import register


@register("integrated_gradients")
class IntegratedGradients(Baseline):
    """Signed ``(x - x0) * integral_0^1 d f_y(x0 + a (x - x0)) / d x da`` (trapezoid, ``n_steps``).

    ``baseline`` ``x0``: a number (default 0) or a tensor broadcastable to ``[C, *spatial]``.
    ``batch_size`` bounds the path points per model call (captum's ``internal_batch_size``).
    ``explain(x [B, C, *spatial], y [B]) -> [B, C, *spatial]``; its sum over a sample approaches
    ``f_y(x) - f_y(x0)`` as ``n_steps`` grows.
    """

    def __init__(
        self,
        model: nn.Module,
        batch_size: int = 64,
        *,
        n_steps: int = 50,
        baseline: float | torch.Tensor = 0.0,
    ) -> None:
        super().__init__(model, batch_size)
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 2:
            raise ValueError(f"n_steps: expected an integer >= 2, got {n_steps!r}")
        self.n_steps, self.baseline = n_steps, baseline

    def path_baseline(self, x: torch.Tensor) -> torch.Tensor:
        """``x0`` broadcast to ``x``'s shape (``baseline`` as given, a number or a tensor)."""
        return torch.as_tensor(self.baseline, dtype=x.dtype, device=x.device).expand_as(x)

    def attribute(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        method = _IntegratedGradients(self.model)

        def one(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
            return method.attribute(
                xs,
                baselines=self.path_baseline(xs),
                target=ys,
                n_steps=self.n_steps,
                method="riemann_trapezoid",
                internal_batch_size=self.batch_size,
            )

        return self.per_chunk(one, x, y) * (self.n_steps / (self.n_steps - 1))
