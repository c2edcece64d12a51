"""WAM: the Wavelet Attribution Method (Kasmi et al., ICML 2025) for 1D, 2D and 3D inputs.

Example::

    >>> import torch
    >>> from torch import nn
    >>> from wam import WAM, optimize_mask
    >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    >>> x, y = torch.rand(2, 3, 32, 32), torch.tensor([0, 4])          # x [B, C, H, W], y [B]
    >>> expl = WAM(model, ndim=2, method="smooth", n_samples=4)(x, y)
    >>> expl.dyadic().shape, expl.scale_shares().shape, expl.filter(keep=0.1).shape
    (torch.Size([2, 32, 32]), torch.Size([2, 4]), torch.Size([2, 3, 32, 32]))
    >>> optimize_mask(model, x, y, ndim=2, alphas=[0, 10, 100], steps=5).sparsity.shape   # meaningful perturbation
    torch.Size([2, 3])
"""

from wam.explainer import AGGREGATIONS, METHODS, WAM, Explanation, quantus_explain
from wam.perturbation import MaskResult, optimize_mask

__all__ = ["AGGREGATIONS", "METHODS", "WAM", "Explanation", "MaskResult", "optimize_mask", "quantus_explain"]
