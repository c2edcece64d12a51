"""Attribution maps of both domains, as the similarity and complexity metrics read them.

A *map* is one of:

- a tensor ``[B, *s]``: one value per feature (pixel domain: the ``[B, *spatial]`` map with channels summed;
  wavelet domain: a dyadic map; any trailing shape for :func:`flatten`);
- a per-band list (wavelet domain): tensors ``[B, *band]`` in :func:`wam.transform.bands` order (approximation
  first, then each level's details, coarsest to finest; e.g. ``wam.Explanation.band_maps()``), or ptwt's own
  coefficient structure holding them.

Two views of a map, the choice made once for every metric:

- :func:`flatten` ``-> [B, N]``: every value once (bands concatenated in ``bands`` order). Spearman, Sparseness
  and Complexity read this: they depend on the set of values (and their pairing), not on the layout.
- :func:`image` ``-> [B, *spatial]``: a tensor as it is; a band list tiled into its dyadic image
  (:func:`wam.transform.tile` at the tiling's own extent, which is the input's size for haar on even sizes, so
  that no band is resampled). SSIM reads this: it compares local neighbourhoods.

:func:`reduce` turns an explainer's output into a map with the input's help: a tensor of ``x``'s shape
``[B, C, *spatial]`` and bands ``[B, C, *band]`` are summed over the channels.

Example::

    >>> import torch
    >>> from wam import transform
    >>> from metrics import maps
    >>> x = torch.rand(2, 3, 16, 16)
    >>> z = transform.wavedec(x, ndim=2, wavelet="haar", levels=2, mode="reflect")   # ptwt structure [B, C, *band]
    >>> m = maps.reduce(z, x)                                                         # bands [B, *band]
    >>> [tuple(b.shape) for b in m][:2], maps.flatten(m).shape, maps.image(m).shape
    ([(2, 4, 4), (2, 4, 4)], torch.Size([2, 256]), torch.Size([2, 16, 16]))
    >>> maps.reduce(x, x).shape                                                       # channels summed
    torch.Size([2, 16, 16])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from metrics.perturbation import as_batch, spatial_scores
from wam import transform
from wam.utils import check_input

Map = torch.Tensor | Sequence[Any]
MAP_LAYOUT = "a tensor [B, *s] or a per-band list of tensors [B, *band] (wam.transform.bands order)"


def _tensor(t: Any, name: str, dims: Sequence[int]) -> torch.Tensor:
    return check_input(t, dims, name, MAP_LAYOUT).detach()


def band_list(attribution: Sequence[Any], name: str = "attribution") -> list[torch.Tensor]:
    """The bands ``[B, *band]`` of a per-band list or ptwt structure, checked (same batch, same ``ndim``)."""
    try:
        flat = transform.bands(attribution)
    except Exception as err:  # a malformed structure
        raise ValueError(f"{name}: expected {MAP_LAYOUT}; could not read it ({err})") from err
    out = [_tensor(b, name, (2, 3, 4, 5)) for b in flat]
    if len({(b.shape[0], b.dim()) for b in out}) != 1:
        raise ValueError(f"{name}: bands differ in batch size or number of dimensions: "
                         f"{[tuple(b.shape) for b in out]}")
    return out


def flatten(attribution: Map, name: str = "attribution") -> torch.Tensor:
    """Every value of the map ``[B, N]`` (bands concatenated in ``bands`` order), promoted to at least float32."""
    if isinstance(attribution, torch.Tensor):
        flat = _tensor(attribution, name, (2, 3, 4, 5, 6)).flatten(1)
    elif isinstance(attribution, list | tuple):
        flat = transform.flatten_bands(band_list(attribution, name))[0]
    else:
        raise ValueError(f"{name}: expected {MAP_LAYOUT}, got {type(attribution).__name__}")
    return flat.to(torch.promote_types(flat.dtype, torch.float32))


def image(attribution: Map, name: str = "attribution") -> torch.Tensor:
    """The map as an image ``[B, *spatial]`` (1 to 3 spatial dims): a tensor as it is, bands tiled (dyadic)."""
    if isinstance(attribution, torch.Tensor):
        out = _tensor(attribution, name, (2, 3, 4))
    elif isinstance(attribution, list | tuple):
        bands = band_list(attribution, name)
        ndim = bands[0].dim() - 1
        if ndim not in (1, 2, 3) or (len(bands) - 1) % len(transform.level_keys(ndim)):
            raise ValueError(f"{name}: {len(bands)} bands of {ndim} spatial dims are not a wavelet decomposition "
                             f"(approximation + {len(transform.level_keys(max(ndim, 1)))} details per level)")
        _, extent = transform.layout([tuple(b.shape[1:]) for b in bands], ndim)
        out = transform.tile(bands, ndim, extent)
    else:
        raise ValueError(f"{name}: expected {MAP_LAYOUT}, got {type(attribution).__name__}")
    return out.to(torch.promote_types(out.dtype, torch.float32))


def reduce(attribution: Map, x: torch.Tensor, name: str = "attribution") -> Map:
    """An explainer's output for inputs ``x`` (``[B, C, *spatial]`` or ``[B, T]``) as a map, channels summed.

    Tensor: ``[B, C, *spatial]`` or ``[B, *spatial]`` (pixel map or dyadic map) -> ``[B, *spatial]``
    (:func:`metrics.perturbation.spatial_scores`). Bands / ptwt structure: ``[B, C, *band]`` or ``[B, *band]``
    -> list of ``[B, *band]``. Detached, on ``x``'s device.
    """
    x4, _ = as_batch(x)
    if isinstance(attribution, torch.Tensor):
        try:
            return spatial_scores(attribution, x4).detach()
        except ValueError as err:  # the engine's message names "attribution"
            raise ValueError(f"{name}: {err}" if name != "attribution" else str(err)) from None
    if not isinstance(attribution, list | tuple):
        raise ValueError(f"{name}: expected {MAP_LAYOUT}, got {type(attribution).__name__}")
    ndim = x4.dim() - 2
    out = []
    for band in band_list(attribution, name):
        if band.dim() == ndim + 2:
            band = band.sum(dim=1)
        if band.dim() != ndim + 1 or band.shape[0] != x4.shape[0]:
            raise ValueError(f"{name}: band of shape {tuple(band.shape)} is neither [B, C, *band] nor [B, *band] "
                             f"with B = {x4.shape[0]} and {ndim} spatial dims (x: {tuple(x.shape)})")
        out.append(band.to(x4.device))
    return out
