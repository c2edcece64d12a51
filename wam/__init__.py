"""WAM: the Wavelet Attribution Method (Kasmi et al., ICML 2025) for 1D, 2D and 3D inputs.

Example::

    >>> from wam import WAM
    >>> expl = WAM(model, ndim=2, method="smooth")(x, y)   # x [B, C, H, W], y [B]
    >>> expl.dyadic(), expl.scales(), expl.heatmap(), expl.filter(keep=0.1)
"""

from wam.explainer import AGGREGATIONS, METHODS, WAM, Explanation, quantus_explain

__all__ = ["AGGREGATIONS", "METHODS", "WAM", "Explanation", "quantus_explain"]
