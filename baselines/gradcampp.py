"""Grad-CAM++ (Chattopadhay et al., 2018): absent from captum, so written here, Grad-CAM's contract.

With ``g = d S_y / d A`` (``S_y`` the target logit, ``A [B, K, *s]`` the layer's map) and the
exponential head of the paper (``Y = exp(S_y)``, whose positive factor is dropped), the pixel
weights are ``alpha_k = g_k^2 / (2 g_k^2 + sum_s(A_k) g_k^3)`` (0 where ``g_k = 0`` or the
denominator vanishes), the channel weights ``w_k = sum_s alpha_k ReLU(g_k)`` and the map
``ReLU(sum_k w_k A_k)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import CamBaseline
from baselines.registry import register


@register("gradcampp")
class GradCAMPlusPlus(CamBaseline):
    """Grad-CAM++ map on ``layer``, upsampled and repeated like Grad-CAM.

    ``explain(x [B, C, *spatial], y [B]) -> [B, C, *spatial]``; ``layer``: dotted module name, by
    default the model's last ``nn.Conv1d/2d/3d``.
    """

    def cam(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        acts, grads = self._activations_and_gradients(x, y)
        space = tuple(range(2, acts.dim()))
        g2 = grads.pow(2)
        denom = 2 * g2 + acts.sum(space, keepdim=True) * g2 * grads
        ok = (grads != 0) & (denom != 0)
        alpha = torch.where(ok, g2 / torch.where(ok, denom, torch.ones_like(denom)), 0.0)
        weights = (alpha * F.relu(grads)).sum(space, keepdim=True)
        return F.relu((weights * acts).sum(1, keepdim=True))

    def _activations_and_gradients(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's map ``A [b, K, *s]`` and ``d S_y / d A`` (same shape) for one chunk."""
        saved: list[torch.Tensor] = []

        def hook(module: nn.Module, args: object, out: object) -> torch.Tensor:
            if not isinstance(out, torch.Tensor):
                raise ValueError(f"layer: {self.layer_name!r} must return a tensor [B, K, *s]")
            saved.append(out)
            return out.clone()  # later in-place ops (e.g. ReLU(inplace=True)) leave ``out`` intact

        handle = self.layer.register_forward_hook(hook)
        try:
            logits = self.model(x.detach().requires_grad_(True))
        finally:
            handle.remove()
        if not saved:
            raise ValueError(f"layer: {self.layer_name!r} was not called by the model's forward")
        acts = saved[-1]
        score = logits.gather(1, y[:, None]).sum()
        (grads,) = torch.autograd.grad(score, acts)
        return acts.detach(), grads
