"""Complexity of an attribution map, per sample: Sparseness (Gini index) and Complexity (entropy).

Both read ``|map|`` over every value (:func:`metrics.maps.flatten`: a pixel map ``[B, *spatial]``, or a wavelet
map's bands concatenated), so they apply to 1D, 2D and 3D maps of either domain; both are invariant to a
per-sample rescaling of the map (Quantus' default max-normalisation does not change them).

- ``sparseness`` (Chalasani et al., 2020): Gini index of ``|a|`` sorted ascending, ``a_(1) <= ... <= a_(N)``:
  ``sum_i (2 i - N - 1) a_(i) / (N sum_i a_(i))``, in [0, (N - 1) / N]; higher is sparser (one non-zero value:
  ``(N - 1) / N``; a constant map: 0). An all-zero map counts as constant (0).
- ``complexity`` (Bhatt et al., 2020): entropy ``-sum_i p_i log p_i`` (natural log, ``0 log 0 = 0``) of
  ``p = |a| / sum |a|``, in [0, log N]; lower is simpler (a uniform map: ``log N``; one non-zero value: 0).
  An all-zero map counts as uniform (``log N``).

Quantus (``Sparseness``, ``Complexity``) adds ``1e-7`` to the values, resp. ``1e-12`` inside the log; these
functions are the exact definitions (equal to Quantus within 1e-6 on maps normalised to max 1).

Example::

    >>> import torch, metrics
    >>> one_hot = torch.zeros(2, 4, 4); one_hot[:, 1, 2] = 3.0
    >>> metrics.get("sparseness")(one_hot)                          # (N - 1) / N, N = 16
    tensor([0.9375, 0.9375])
    >>> metrics.get("complexity")(torch.ones(1, 8, 8)), torch.log(torch.tensor(64.0))   # log N
    (tensor([4.1589]), tensor(4.1589))
"""

from __future__ import annotations

import math

import torch

from metrics import maps
from metrics.registry import register


@register("sparseness")
def sparseness(attribution: maps.Map) -> torch.Tensor:
    """Gini index ``[B]`` (float32) of ``|attribution|`` (a map of :mod:`metrics.maps`); 0 for an all-zero map."""
    a = maps.flatten(attribution).abs().double()
    n = a.shape[1]
    s = torch.sort(a, dim=1).values
    weights = 2 * torch.arange(1, n + 1, device=a.device, dtype=a.dtype) - n - 1
    total = s.sum(1)
    gini = (s * weights).sum(1) / (n * torch.where(total > 0, total, torch.ones_like(total)))
    return torch.where(total > 0, gini, torch.zeros_like(gini)).float()


def entropy(attribution: maps.Map) -> torch.Tensor:
    """Entropy ``[B]`` (float64) of ``|attribution| / sum |attribution|``; ``log N`` for an all-zero map.

    Computed as ``log S - sum(a log a) / S`` (``a = |attribution|``, ``S = sum a``): one ``a log a`` per value in
    the map's dtype, sums accumulated in float64.
    """
    a = maps.flatten(attribution).abs()
    total = a.sum(1, dtype=torch.float64)
    safe = torch.where(total > 0, total, torch.ones_like(total))
    h = safe.log() - torch.special.xlogy(a, a).sum(1, dtype=torch.float64) / safe
    return torch.where(total > 0, h, torch.full_like(h, math.log(a.shape[1])))


@register("complexity")
def complexity(attribution: maps.Map) -> torch.Tensor:
    """Complexity ``[B]`` (float32): the entropy of ``|attribution| / sum |attribution|`` (:func:`entropy`)."""
    return entropy(attribution).float()
