"""Pixel-domain attribution methods WAM is compared with, behind one registry.

Each method is one module registering a class with ``@register("name")`` (the built-in ones are listed in
``registry.METHODS.lazy`` and imported when first asked for); ``get`` builds it for a model. Every method maps
``x [B, C, *spatial]`` (1 to 3 spatial dimensions) and class indices ``y [B]`` to an attribution of ``x``'s
shape (class activation maps are upsampled to the input size and repeated over channels). Audio: explain
``model.classifier`` on ``model.frontend(wave)``.

Example::

    >>> import torch, baselines
    >>> baselines.available()
    ['gradcam', 'gradcampp', 'guided_backprop', 'integrated_gradients', 'layercam', 'lrp', 'saliency', 'smoothgrad']
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ...                       nn.Linear(4, 5)).eval()
    >>> explain = baselines.get("integrated_gradients", model, n_steps=50, batch_size=64)
    >>> explain(torch.rand(2, 3, 32, 32), torch.tensor([0, 4])).shape
    torch.Size([2, 3, 32, 32])
"""

from baselines.base import Baseline, CamBaseline
from baselines.registry import available, get, is_cam, register

__all__ = ["Baseline", "CamBaseline", "available", "get", "is_cam", "register"]
