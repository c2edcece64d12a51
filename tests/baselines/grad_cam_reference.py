"""pytorch-grad-cam 1.5.7, the reference of our CAMs, and its normalisation applied to our maps.

What it does differently, by design, and how the tests compare like with like:

- normalisation: it min-max scales each map at the layer's resolution, ``(c - min) / (1e-7 + max)``, resizes it
  to the input (2D: ``cv2.resize``, bilinear with half-pixel centres; 3D: scipy's cubic ``zoom``) and min-max
  scales it again; we keep the raw map (upsampled with torch's ``align_corners=False`` interpolation). Bilinear
  resizing commutes with the affine scaling, so in 2D our map scaled with the constants of our layer-resolution
  map, then min-max scaled like its last step, must equal its output (:func:`like_pytorch_grad_cam`); in 3D the
  layer-resolution maps are compared after its first scaling (:func:`theirs_at_the_layer`);
- ReLU: it applies ``max(cam, 0)`` before scaling, we apply ReLU in the map and after upsampling: the same
  numbers for maps >= 0;
- GradCAM++: its ``alpha`` has ``+ 1e-6`` in the denominator, ours none (0 where the denominator vanishes):
  :func:`gradcampp_with_eps` is our formula with that ``eps``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from baselines.base import upsample_cam
from baselines.cam_target import Reshape

THEIRS = {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus, "layercam": LayerCAM}
EPS = 1e-6  # pytorch-grad-cam's GradCAM++ denominator term


def _targets(y: torch.Tensor) -> list[ClassifierOutputTarget]:
    return [ClassifierOutputTarget(int(c)) for c in y]


def run_theirs(method: str, net: nn.Module, layer: nn.Module, x: torch.Tensor, y: torch.Tensor,
               reshape: Reshape | None = None) -> np.ndarray:
    """Its map ``[B, *spatial]`` of ``x`` on ``layer`` (its output through ``reshape_transform=reshape``)."""
    with THEIRS[method](model=net, target_layers=[layer], reshape_transform=reshape) as cam:
        return cam(input_tensor=x, targets=_targets(y))


def theirs_at_the_layer(method: str, net: nn.Module, layer: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        reshape: Reshape | None = None) -> np.ndarray:
    """Its map ``[B, *s]`` at the layer's resolution, after its first scaling (before any resize)."""
    with THEIRS[method](model=net, target_layers=[layer], reshape_transform=reshape) as cam:
        cam(input_tensor=x, targets=_targets(y))
        stored = cam.activations_and_grads
        raw = cam.get_cam_image(x, layer, None, stored.activations[0].numpy(), stored.gradients[0].numpy(), False)
    return scale_cam_image(np.maximum(raw, 0))


def like_pytorch_grad_cam(upsampled: torch.Tensor, raw: torch.Tensor) -> np.ndarray:
    """Our upsampled map ``[B, *spatial]`` scaled as pytorch-grad-cam scales its map: with the min and span of
    the layer-resolution map ``raw [B, *s]`` (its first ``scale_cam_image``), then min-max again (its last)."""
    shape = (-1,) + (1,) * (raw.dim() - 1)
    low = raw.flatten(1).amin(1).reshape(shape)
    span = (raw - low).flatten(1).amax(1).reshape(shape)
    return scale_cam_image(((upsampled - low) / (1e-7 + span)).numpy())


def upsample(cam: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A layer-resolution map ``[B, *s]`` upsampled as our CAMs are (:func:`baselines.base.upsample_cam`)."""
    return upsample_cam(cam[:, None], x)[:, 0]


def gradcampp_with_eps(acts: torch.Tensor, grads: torch.Tensor, eps: float) -> torch.Tensor:
    """Our Grad-CAM++ map ``[B, *s]`` with ``eps`` added to alpha's denominator (pytorch-grad-cam's formula)."""
    space = tuple(range(2, acts.dim()))
    g2 = grads.pow(2)
    alpha = torch.where(grads != 0, g2 / (2 * g2 + acts.sum(space, keepdim=True) * g2 * grads + eps), 0.0)
    weights = (alpha * F.relu(grads)).sum(space, keepdim=True)
    return F.relu((weights * acts).sum(1))
