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

from baselines.base import CamBaseline
from baselines.registry import register


@register("gradcampp")
class GradCAMPlusPlus(CamBaseline):
    """Grad-CAM++ map on ``layer``, upsampled and repeated like Grad-CAM.

    ``explain(x [B, C, *spatial], y [B]) -> [B, C, *spatial]``; ``layer``: dotted module name, by
    default resolved from the model (:func:`baselines.cam_target.resolve_cam_target`).
    """

    def cam(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        space = tuple(range(2, acts.dim()))
        g2 = grads.pow(2)
        denom = 2 * g2 + acts.sum(space, keepdim=True) * g2 * grads
        ok = (grads != 0) & (denom != 0)
        alpha = torch.where(ok, g2 / torch.where(ok, denom, torch.ones_like(denom)), 0.0)
        weights = (alpha * F.relu(grads)).sum(space, keepdim=True)
        return F.relu((weights * acts).sum(1, keepdim=True))
