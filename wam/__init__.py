"""WAM: the Wavelet Attribution Method (Kasmi et al., ICML 2025) for 1D, 2D and 3D inputs.

Example::

    >>> from wam import WAM
    >>> expl = WAM(model, ndim=2, method="smooth")(x, y)   # x [B, C, H, W], y [B]
    >>> expl.dyadic(), expl.scales(), expl.heatmap(), expl.filter(keep=0.1)
    >>> from wam import optimize_mask                       # meaningful perturbation in the wavelet domain
    >>> optimize_mask(model, x, y, ndim=2, alphas=[0, 10, 100], steps=500).sparsity   # [B, A]
"""

from wam.explainer import AGGREGATIONS, METHODS, WAM, Explanation, quantus_explain
from wam.perturbation import MaskResult, optimize_mask

__all__ = ["AGGREGATIONS", "METHODS", "WAM", "Explanation", "MaskResult", "optimize_mask", "quantus_explain"]
