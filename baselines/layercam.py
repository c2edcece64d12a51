"""LayerCAM (Jiang et al., 2021): each position of a layer's map weighted by its own positive gradient.

With ``A [B, K, *s]`` the layer's map and ``g = d S_y / d A`` (``S_y`` the target logit), the map is
``ReLU(sum_k ReLU(g_k) * A_k)`` per position: Grad-CAM's channel weights ``mean_s(g_k)`` become the
position's own ``ReLU(g_k)``, so that shallow layers give fine maps. Equal to Grad-CAM where every ``g_k``
is constant over positions and positive (``tests/baselines/test_layercam.py``), and to pytorch-grad-cam's
``LayerCAM`` on the same layer before its normalisation.

Example::

    >>> import torch, baselines
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv3d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
    ...                       nn.Linear(4, 3)).eval()
    >>> baselines.get("layercam", model)(torch.rand(2, 1, 8, 8, 8), torch.tensor([0, 2])).shape
    torch.Size([2, 1, 8, 8, 8])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from baselines.base import CamBaseline
from baselines.registry import register


@register("layercam")
class LayerCAM(CamBaseline):
    """``ReLU(sum_k ReLU(d f_y / d A_k) * A_k)`` on ``layer``'s map ``A [B, K, *s]`` (1D, 2D, 3D; token maps with
    ``reshape``), upsampled and repeated over channels like Grad-CAM: ``explain(x [B, C, *spatial], y [B]) ->
    [B, C, *spatial]``. ``layer``: dotted module name, by default resolved from the model
    (:func:`baselines.cam_target.resolve_cam_target`).
    """

    def cam(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return F.relu((F.relu(grads) * acts).sum(1, keepdim=True))
