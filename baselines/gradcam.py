"""Grad-CAM (Selvaraju et al., 2017) on the layer resolved from the model's structure by default.

Computed from the layer's activations and gradients (:class:`~baselines.base.CamBaseline`), so that token
maps (ViTs, through ``reshape``) work too; equal to captum's ``LayerGradCam`` on convolutional layers
(``tests/baselines/test_cam_methods.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from baselines.base import CamBaseline
from baselines.registry import register


@register("gradcam")
class GradCAM(CamBaseline):
    """``ReLU(sum_k mean_s(d f_y / d A_k) A_k)`` on ``layer``'s map ``A [B, K, *s]``.

    Upsampled (bi/trilinear, ``align_corners=False``) to ``x``'s spatial size and repeated over its
    channels: ``explain(x [B, C, *spatial], y [B]) -> [B, C, *spatial]``. ``layer``: dotted module
    name, by default resolved from the model (:func:`baselines.cam_target.resolve_cam_target`: a CNN's last
    spatial feature map, a ViT's or a Swin's last block's ``norm1`` on its patch grid).
    """

    def cam(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        weights = grads.flatten(2).mean(2).reshape(*grads.shape[:2], *[1] * (grads.dim() - 2))
        return F.relu((weights * acts).sum(1, keepdim=True))
