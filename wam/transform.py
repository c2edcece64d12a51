"""Batched discrete wavelet transforms (ptwt) of 1D, 2D and 3D inputs, and the dyadic tiling.

Inputs are ``[B, C, *spatial]`` with ``len(spatial) == ndim``. Coefficients keep ptwt's own nested
structure (``wavedec``: list; ``wavedec2``: approximation then ``WaveletDetailTuple2d`` per level;
``wavedec3``: approximation then dicts keyed ``"aad"`` ...), coarsest level first. ``bands`` flattens
that structure into a list of tensors ``[B, C, *band]`` (approximation first, then each level's
details, coarsest to finest), which is what the rest of the package computes on.

Example::

    >>> import torch
    >>> from wam import transform
    >>> x = torch.rand(2, 3, 32, 32)
    >>> z = transform.wavedec(x, ndim=2, wavelet="haar", levels=3, mode="reflect")
    >>> torch.allclose(transform.waverec(z, ndim=2, wavelet="haar", size=(32, 32)), x, atol=1e-5)
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import Any

import ptwt
import pywt
import torch
import torch.nn.functional as F
from ptwt.constants import WaveletDetailTuple2d

Coeffs = Any  # ptwt's nested coefficient structure (list / tuple / dicts)

MODES = ("zero", "constant", "periodic", "reflect", "symmetric")
# Where each 2D detail band sits in the dyadic tiling ('a': low half, 'd': high half, per axis):
# horizontal top-right, vertical bottom-left, diagonal bottom-right (the reference layout).
_PLACEMENT_2D = ("ad", "da", "dd")


def check_wavelet(wavelet: str | pywt.Wavelet) -> pywt.Wavelet:
    """Return the discrete wavelet named ``wavelet``; ``ValueError`` listing the families otherwise."""
    if isinstance(wavelet, pywt.Wavelet):
        return wavelet
    if wavelet not in pywt.wavelist(kind="discrete"):
        raise ValueError(
            f"wavelet: unknown discrete wavelet {wavelet!r}; expected one of pywt.wavelist(kind='discrete'), "
            f"e.g. 'haar', 'db2', 'sym4' (discrete families: {', '.join(discrete_families())})"
        )
    return pywt.Wavelet(wavelet)


def discrete_families() -> list[str]:
    """The PyWavelets families with discrete wavelets (the transforms here take no continuous one).

    >>> discrete_families()[:4]
    ['haar', 'db', 'sym', 'coif']
    """
    discrete = set(pywt.wavelist(kind="discrete"))  # (wavelist(family, kind=...) ignores kind)
    return [f for f in pywt.families(short=True) if discrete & set(pywt.wavelist(f))]


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    return mode


def max_level(size: Sequence[int], wavelet: str | pywt.Wavelet) -> int:
    """Deepest decomposition level for a signal of spatial ``size`` (pywt's rule, smallest axis)."""
    return pywt.dwt_max_level(min(size), check_wavelet(wavelet).dec_len)


def check_levels(levels: int, size: Sequence[int], wavelet: str | pywt.Wavelet) -> int:
    deepest = max(max_level(size, wavelet), 1)
    if not isinstance(levels, int) or levels < 1 or levels > deepest:
        raise ValueError(
            f"levels: expected an integer in [1, {deepest}] for spatial size {tuple(size)} and wavelet "
            f"{check_wavelet(wavelet).name!r}, got {levels!r}"
        )
    return levels


def wavedec(x: torch.Tensor, ndim: int, wavelet: str, levels: int, mode: str) -> Coeffs:
    """Multi-level DWT of ``x`` ``[B, C, *spatial]`` over its last ``ndim`` axes."""
    if ndim == 1:
        return ptwt.wavedec(x, wavelet, mode=mode, level=levels)
    if ndim == 2:
        return ptwt.wavedec2(x, wavelet, mode=mode, level=levels)
    if ndim == 3:
        return ptwt.wavedec3(x, wavelet, mode=mode, level=levels)
    raise ValueError(f"ndim: expected 1, 2 or 3, got {ndim!r}")


def waverec(coeffs: Coeffs, ndim: int, wavelet: str, size: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`wavedec`, cropped to the spatial ``size`` of the original input."""
    if ndim == 1:
        x = ptwt.waverec(coeffs, wavelet)
    elif ndim == 2:
        x = ptwt.waverec2(coeffs, wavelet)
    elif ndim == 3:
        x = ptwt.waverec3(coeffs, wavelet)
    else:
        raise ValueError(f"ndim: expected 1, 2 or 3, got {ndim!r}")
    crop = (...,) + tuple(slice(0, s) for s in size)
    return x[crop]


def level_keys(ndim: int) -> tuple[str, ...]:
    """Placement keys of one level's detail bands, in :func:`bands` order (one letter per axis)."""
    if ndim == 1:
        return ("d",)
    if ndim == 2:
        return _PLACEMENT_2D
    if ndim == 3:
        return tuple(k for k in sorted({a + b + c for a in "ad" for b in "ad" for c in "ad"}) if k != "aaa")
    raise ValueError(f"ndim: expected 1, 2 or 3, got {ndim!r}")


def bands(coeffs: Coeffs) -> list[torch.Tensor]:
    """Flatten ptwt coefficients into ``[approx, level L details..., level 1 details...]``."""
    out = [coeffs[0]]
    for detail in coeffs[1:]:
        if isinstance(detail, dict):
            out.extend(detail[k] for k in sorted(detail))
        elif isinstance(detail, tuple):
            out.extend(detail)
        else:
            out.append(detail)
    return out


def unbands(flat: Sequence[torch.Tensor], ndim: int) -> Coeffs:
    """Inverse of :func:`bands`: rebuild ptwt's structure for ``ndim``."""
    per_level = len(level_keys(ndim))
    details = [flat[i : i + per_level] for i in range(1, len(flat), per_level)]
    if ndim == 1:
        return [flat[0], *[d[0] for d in details]]
    if ndim == 2:
        return (flat[0], *[WaveletDetailTuple2d(*d) for d in details])
    keys = level_keys(3)
    return (flat[0], *[dict(zip(keys, d, strict=True)) for d in details])


def band_levels(n_bands: int, ndim: int) -> list[int]:
    """Decomposition level of each band in :func:`bands` order (approximation: the deepest level)."""
    per_level = len(level_keys(ndim))
    n_levels = (n_bands - 1) // per_level
    return [n_levels] + [n_levels - (i // per_level) for i in range(n_bands - 1)]


def level_names(levels: int) -> list[str]:
    """Names of the ``levels + 1`` scales in :func:`level_sums` order: ``level1`` (finest) .. ``levelL``, ``approx``.

    >>> level_names(3)
    ['level1', 'level2', 'level3', 'approx']
    """
    return [f"level{i + 1}" for i in range(levels)] + ["approx"]


def level_sums(maps: Sequence[torch.Tensor], ndim: int) -> torch.Tensor:
    """Sum of per-band maps ``[B, *band]`` (:func:`bands` order) over each level: ``[B, levels + 1]``, finest level
    first, the approximation last (the order of :func:`level_names`).

    >>> x = torch.rand(2, 1, 16, 16)
    >>> maps = [b[:, 0].abs() for b in bands(wavedec(x, 2, "haar", 2, "reflect"))]
    >>> sums = level_sums(maps, ndim=2)
    >>> sums.shape, torch.allclose(sums.sum(1), sum(m.flatten(1).sum(1) for m in maps))
    (torch.Size([2, 3]), True)
    """
    levels = band_levels(len(maps), ndim)
    deepest = levels[0]
    out = maps[0].new_zeros(maps[0].shape[0], deepest + 1)
    for i, (m, level) in enumerate(zip(maps, levels, strict=True)):
        out[:, deepest if i == 0 else level - 1] += m.flatten(1).sum(1)
    return out


def layout(shapes: Sequence[Sequence[int]], ndim: int) -> tuple[list[tuple[int, ...]], tuple[int, ...]]:
    """Offsets of each band in the dyadic canvas, and the canvas size."""
    keys = level_keys(ndim)
    extent = tuple(shapes[0])
    offsets = [(0,) * ndim]
    for start in range(1, len(shapes), len(keys)):
        level_shapes = shapes[start : start + len(keys)]
        for key in keys:
            offsets.append(tuple(e if k == "d" else 0 for k, e in zip(key, extent, strict=True)))
        size = level_shapes[-1]  # the all-'d' band reaches furthest on every axis
        extent = tuple(e + s for e, s in zip(extent, size, strict=True))
    return offsets, extent


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Linear / bilinear / trilinear resize (half-pixel centres) of ``[B, K, *spatial]`` to ``size``."""
    size = tuple(int(s) for s in size)
    if tuple(x.shape[2:]) == size:
        return x
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def tile(band_maps: Sequence[torch.Tensor], ndim: int, size: Sequence[int]) -> torch.Tensor:
    """Tile per-band maps ``[B, *band]`` into one ``[B, *size]`` dyadic map.

    Approximation in the low corner; for each level, coarsest (near the corner) to finest, each detail band
    in its octant (2D: horizontal top-right, vertical bottom-left, diagonal bottom-right; 1D: side by side).
    When the tiling is not exactly ``size`` (odd sizes, filters longer than haar), it is resized.
    """
    shapes = [tuple(m.shape[1:]) for m in band_maps]
    offsets, extent = layout(shapes, ndim)
    canvas = band_maps[0].new_zeros((band_maps[0].shape[0], *extent))
    for m, off in zip(band_maps, offsets, strict=True):
        canvas[(slice(None), *[slice(o, o + s) for o, s in zip(off, m.shape[1:], strict=True)])] = m
    return resize(canvas.unsqueeze(1), size)[:, 0]


def untile(dyadic: torch.Tensor, shapes: Sequence[Sequence[int]], ndim: int) -> list[torch.Tensor]:
    """Inverse of :func:`tile`: cut a dyadic map ``[B, *spatial]`` into per-band maps of ``shapes``."""
    offsets, extent = layout([tuple(s) for s in shapes], ndim)
    canvas = resize(dyadic.unsqueeze(1), extent)[:, 0]
    return [
        canvas[(slice(None), *[slice(o, o + s) for o, s in zip(off, shape, strict=True)])]
        for off, shape in zip(offsets, shapes, strict=True)
    ]


def flatten_bands(band_list: Sequence[torch.Tensor], start_dim: int = 1) -> tuple[torch.Tensor, list[tuple[int, ...]]]:
    """Bands ``[*lead, *shape]`` (:func:`bands` order) as one tensor ``[*lead, N]``, each flattened from
    ``start_dim`` and concatenated, and their shapes from ``start_dim`` on (for :func:`unflatten_bands`).

    >>> band_list = bands(wavedec(torch.rand(2, 3, 8, 8), 2, "haar", 2, "reflect"))
    >>> flat, shapes = flatten_bands(band_list)
    >>> flat.shape, shapes[:2], all(torch.equal(a, b) for a, b in zip(unflatten_bands(flat, shapes), band_list))
    (torch.Size([2, 192]), [(3, 2, 2), (3, 2, 2)], True)
    """
    flat = torch.cat([b.flatten(start_dim) for b in band_list], dim=start_dim)
    return flat, [tuple(b.shape[start_dim:]) for b in band_list]


def unflatten_bands(flat: torch.Tensor, shapes: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Inverse of :func:`flatten_bands`: ``[*lead, N]`` cut into bands ``[*lead, *shape]``."""
    sizes = [math.prod(s) for s in shapes]
    return [p.reshape(*flat.shape[:-1], *s) for p, s in zip(flat.split(sizes, dim=-1), shapes, strict=True)]


def waverec_flat(flat: torch.Tensor, shapes: Sequence[Sequence[int]], wavelet: str, size: Sequence[int]
                 ) -> torch.Tensor:
    """The inverse transform of flat coefficients, as :func:`flatten_bands` gives them: ``[B, C, N]`` with band
    shapes ``(*band)`` (``start_dim=2``), or ``[B, N]`` with shapes ``(C, *band)``; ``[B, C, *size]``."""
    ndim = len(size)
    return waverec(unbands(unflatten_bands(flat, shapes), ndim), ndim, wavelet, size)


def check_keeps(keeps: Sequence[float], name: str = "keep") -> list[float]:
    """``keeps`` as a non-empty list of floats in (0, 1]; ``ValueError`` naming ``name`` otherwise."""
    values = list(keeps) if isinstance(keeps, Sequence) and not isinstance(keeps, str) else [keeps]
    if not values or any(isinstance(k, bool) or not isinstance(k, Real) or not 0 < k <= 1 for k in values):
        raise ValueError(f"{name}: expected fractions in (0, 1], got {keeps!r}")
    return [float(k) for k in values]


def keep_masks(scores: torch.Tensor, keeps: Sequence[float]) -> torch.Tensor:
    """``[B, K, N]`` bool: for each fraction ``keeps[k]``, the features whose score reaches the
    ``max(1, ceil(keep N))``-th largest of their row (ties at the threshold kept).
    ``scores`` ``[B, N]``; one sort per row for every fraction."""
    keeps = check_keeps(keeps)
    n = scores.shape[1]
    ordered = scores.sort(dim=1, descending=True).values
    k = torch.tensor([max(1, math.ceil(f * n)) for f in keeps], device=scores.device)
    thresholds = ordered[:, k - 1]  # [B, K]
    return scores.unsqueeze(1) >= thresholds.unsqueeze(2)


def keep_top(coeffs: Sequence[torch.Tensor], scores: Sequence[torch.Tensor], keeps: Sequence[float], ndim: int,
             wavelet: str, size: Sequence[int]) -> torch.Tensor:
    """The inputs rebuilt from their top-``keep`` coefficients for every fraction: ``[B, K, C, *size]``.

    ``coeffs``: the inputs' wavelet bands (:func:`bands` order, ``[B, C, *band]``); ``scores``: one importance
    per coefficient, same shapes (ranked over every band and channel of a sample, :func:`keep_masks`). The others
    are set to zero; all ``B x K`` inputs go through ONE inverse transform.
    """
    if len(coeffs) != len(scores) or any(c.shape != s.shape for c, s in zip(coeffs, scores, strict=False)):
        raise ValueError("scores: expected one score per coefficient (the coefficients' band shapes)")
    batch, keeps = coeffs[0].shape[0], check_keeps(keeps)
    flat, shapes = flatten_bands(scores)
    masks = unflatten_bands(keep_masks(flat, keeps), shapes)  # per band [B, K, C, *band]
    kept = [(c.unsqueeze(1) * m).flatten(0, 1) for c, m in zip(coeffs, masks, strict=True)]  # [B K, C, *band]
    rebuilt = waverec(unbands(kept, ndim), ndim, wavelet, size)
    return rebuilt.reshape(batch, len(keeps), *rebuilt.shape[1:])
