"""Grad-CAM (Selvaraju et al., 2017), captum ``LayerGradCam`` on the last convolution by default."""

from __future__ import annotations

import torch
from captum.attr import LayerGradCam

from baselines.base import CamBaseline
from baselines.registry import register


@register("gradcam")
class GradCAM(CamBaseline):
    """``ReLU(sum_k mean(d f_y / d A_k) A_k)`` on ``layer``'s map ``A [B, K, *s]``.

    Upsampled (bi/trilinear, ``align_corners=False``) to ``x``'s spatial size and repeated over its
    channels: ``explain(x [B, C, *spatial], y [B]) -> [B, C, *spatial]``. ``layer``: dotted module
    name, by default the model's last ``nn.Conv1d/2d/3d``.
    """

    def cam(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        method = LayerGradCam(self.model, self.layer)
        return method.attribute(x, target=y, relu_attributions=True)
