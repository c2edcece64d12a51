"""Similarity of two attribution maps, per sample: Spearman rank correlation of ``|map|`` and SSIM.

The measures of the randomisation sanity checks (:mod:`metrics.randomisation`) and of the data randomisation
test (two models' maps of the same inputs). Maps are those of :mod:`metrics.maps` (pixel ``[B, *spatial]`` or
per-band wavelet lists), both of the same layout:

- ``spearman``: Spearman correlation of ``|a|`` and ``|b|`` over every value (:func:`metrics.maps.flatten`);
  average ranks for ties (``scipy.stats.spearmanr``'s rule). A constant map carries no ranking: the
  correlation (0 / 0) is returned as 0 and the sample is flagged ``degenerate``.
- ``ssim``: torchmetrics' ``structural_similarity_index_measure`` (Gaussian window, sigma 1.5, 11 taps per axis,
  ``k1 = 0.01``, ``k2 = 0.03``, reflection padding, mean over the map) on ``|a| / max|a|`` and ``|b| / max|b|``
  per sample (maps in [0, 1], ``data_range = 1``; an all-zero map stays 0), on the map's image
  (:func:`metrics.maps.image`: wavelet bands dyadically tiled). 2D and 3D maps as they are; a 1D map ``[B, T]``
  as a ``1 x T`` image with the same 1D Gaussian window along ``T`` (sigma 1.5, 11 taps; one tap across).
  Every spatial axis must be at least 6 long (the window's reflection padding); a 1D map needs ``T >= 6``.
  Computed with one 1D convolution per axis (torchmetrics' window is separable; its 3D window costs 1,331
  multiply-adds per voxel, these 33), equal to torchmetrics' values to float rounding (tested).

Quantus' Spearman (``correlation_spearman``) is this one. Its SSIM (``quantus.similarity_func.ssim``: skimage's 7-wide
uniform window with sample covariance, the two maps' joint range) is applied by its MPRT and RandomLogit to the
*flattened* maps, after a batch-wide max-normalisation: its SSIM values are not comparable with these.

Example::

    >>> import torch
    >>> from metrics import similarity
    >>> a = torch.rand(2, 16, 16)
    >>> s = similarity.similarities(a, -2 * a)          # |map| and per-sample scale do not matter
    >>> [round(v, 4) for v in s["spearman"].tolist()], [round(v, 4) for v in s["ssim"].tolist()]
    ([1.0, 1.0], [1.0, 1.0])
    >>> similarity.rank_correlation(torch.tensor([[1., 2., 2., 3.]]), torch.tensor([[3., 2., 1., 0.]]))
    tensor([-0.9487])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from metrics import maps
from metrics.perturbation import check_choice

SIMILARITIES = ("spearman", "ssim")
SIGMA = 1.5  # the Gaussian window of SSIM (11 taps: torchmetrics' 2 * int(3.5 sigma + 0.5) + 1)
_MIN_SIZE = 6  # reflection padding of 5 needs 6 values along an axis


def ranks(v: torch.Tensor) -> torch.Tensor:
    """Average ranks ``[B, N]`` (1-based, float64) of each row of ``v`` ``[B, N]``; tied values share the mean
    of their positions (``scipy.stats.rankdata(method="average")``). One sort per row."""
    n = v.shape[1]
    s, order = torch.sort(v, dim=1)
    pos = torch.arange(n, device=v.device).expand_as(order)
    first = torch.ones_like(s, dtype=torch.bool)
    first[:, 1:] = s[:, 1:] != s[:, :-1]  # first position of each run of equal values
    if bool(first.all()):  # no ties: ranks are the positions
        return torch.empty_like(order, dtype=torch.float64).scatter_(1, order, pos.double() + 1)
    last = torch.ones_like(first)
    last[:, :-1] = first[:, 1:]
    start = torch.where(first, pos, 0).cummax(dim=1).values
    end = torch.where(last, pos, n - 1).flip(1).cummin(dim=1).values.flip(1)
    mean_rank = (start + end).double() / 2 + 1
    return torch.empty_like(mean_rank).scatter_(1, order, mean_rank)


def _centred_ranks(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ranks of each row minus their mean ``[B, N]`` and their norm ``[B]`` (float64)."""
    r = ranks(v)
    r = r - r.mean(1, keepdim=True)
    return r, r.square().sum(1).sqrt()


def _pearson(ru: torch.Tensor, nu: torch.Tensor, rv: torch.Tensor, nv: torch.Tensor) -> torch.Tensor:
    den = nu * nv
    rho = (ru * rv).sum(1) / torch.where(den == 0, torch.ones_like(den), den)
    return torch.where(den == 0, torch.zeros_like(rho), rho).float()


def rank_correlation(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Spearman correlation ``[B]`` (float32) of the rows of ``u`` and ``v`` ``[B, N]``: the Pearson correlation
    of their average ranks; 0 where a row is constant (no ranking)."""
    if u.dim() != 2 or u.shape != v.shape:
        raise ValueError(f"u, v: expected two [B, N] tensors of one shape, got {tuple(u.shape)}, {tuple(v.shape)}")
    return _pearson(*_centred_ranks(u), *_centred_ranks(v.to(u.device)))


def unit(m: torch.Tensor) -> torch.Tensor:
    """``|m| / max|m|`` per sample (``[B, ...]``, values in [0, 1]); an all-zero sample stays 0."""
    m = m.abs()
    peak = m.flatten(1).amax(1).view(-1, *[1] * (m.dim() - 1))
    return torch.where(peak > 0, m / torch.where(peak > 0, peak, torch.ones_like(peak)), torch.zeros_like(m))


def _unit_image(m: maps.Map, name: str) -> torch.Tensor:
    image = maps.image(m, name)
    if min(image.shape[1:]) < _MIN_SIZE:
        raise ValueError(f"{name}: SSIM needs every spatial axis of the map to be at least {_MIN_SIZE} long "
                         f"(11-tap window), got a map of spatial shape {tuple(image.shape[1:])}")
    return unit(image)


def _window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """torchmetrics' Gaussian window ``[11]``: ``exp(-d^2 / (2 sigma^2))`` at ``d = -5 .. 5``, summing to 1."""
    size = int(3.5 * SIGMA + 0.5) * 2 + 1
    d = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-((d / SIGMA) ** 2) / 2)
    return g / g.sum()


def _blur(v: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """``v`` ``[N, *spatial]`` (1 to 3 spatial dims) convolved with ``window`` along every spatial axis in turn,
    reflection padded: torchmetrics' window is the outer product of this one, so the result is the same."""
    ndim, pad = v.dim() - 1, (window.numel() - 1) // 2
    conv = (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d)[ndim - 1]
    out = v.unsqueeze(1)
    for axis in range(ndim):
        padding, shape = [0] * (2 * ndim), [1] * ndim
        padding[2 * (ndim - 1 - axis)] = padding[2 * (ndim - 1 - axis) + 1] = pad  # F.pad lists the last axis first
        shape[axis] = window.numel()
        out = conv(torch.nn.functional.pad(out, padding, mode="reflect"), window.view(1, 1, *shape))
    return out[:, 0]


def _ssim(ua: torch.Tensor, ub: torch.Tensor) -> torch.Tensor:
    """torchmetrics' SSIM ``[B]`` of two unit images ``[B, *spatial]`` (module docstring), computed with one 1D
    Gaussian convolution per axis rather than torchmetrics' full 11^d window (3D: 33 taps per voxel, not 1,331;
    equal to torchmetrics' to float rounding, tested)."""
    batch = ua.shape[0]
    window = _window(ua.dtype, ua.device)
    mu_a, mu_b, aa, bb, ab = _blur(torch.cat([ua, ub, ua * ua, ub * ub, ua * ub]), window).split(batch)
    c1, c2 = 0.01**2, 0.03**2  # (k1 data_range)^2, (k2 data_range)^2 with data_range 1
    var_a, var_b = (aa - mu_a**2).clamp_min(0), (bb - mu_b**2).clamp_min(0)
    cov = ab - mu_a * mu_b
    s = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1).float()


def check_measures(measures: Sequence[str]) -> tuple[str, ...]:
    """``measures`` as a non-empty tuple of names from :data:`SIMILARITIES` (``ValueError`` naming it)."""
    if isinstance(measures, str) or not measures:
        raise ValueError(f"measures: expected a non-empty sequence of names from {SIMILARITIES}, got {measures!r}")
    return tuple(check_choice(m, SIMILARITIES, "measures") for m in measures)


class Reference:
    """A map ``a`` prepared once (ranks, unit image) and compared with maps ``b`` of the same layout:
    ``Reference(a, measures)(b) == similarities(a, b, measures)``; MPRT compares its original map with every
    step's map this way."""

    def __init__(self, a: maps.Map, measures: Sequence[str] = SIMILARITIES) -> None:
        self.measures = check_measures(measures)
        flat = maps.flatten(a, "a").abs()
        self.shape = flat.shape
        self.constant = flat.amax(1) == flat.amin(1)
        self.ranks = _centred_ranks(flat) if "spearman" in self.measures else None
        self.image = _unit_image(a, "a") if "ssim" in self.measures else None

    def __call__(self, b: maps.Map) -> dict[str, torch.Tensor]:
        """``{measure: [B] float32 ..., "degenerate": [B] bool}`` of the reference and ``b``."""
        flat = maps.flatten(b, "b").abs()
        if flat.shape != self.shape:
            raise ValueError(f"a, b: maps of different layouts ({tuple(self.shape)} vs {tuple(flat.shape)} values)")
        flat = flat.to(self.constant.device)
        out = {}
        if self.ranks is not None:
            out["spearman"] = _pearson(*self.ranks, *_centred_ranks(flat))
        if self.image is not None:
            image = _unit_image(b, "b").to(self.image.device)
            if image.shape != self.image.shape:
                raise ValueError(f"a, b: map images of different shapes ({tuple(self.image.shape)} vs "
                                 f"{tuple(image.shape)})")
            out["ssim"] = _ssim(self.image, image)
        out["degenerate"] = self.constant | (flat.amax(1) == flat.amin(1))
        return {m: out[m] for m in (*self.measures, "degenerate")}


def similarities(a: maps.Map, b: maps.Map, measures: Sequence[str] = SIMILARITIES) -> dict[str, torch.Tensor]:
    """Per-sample similarities of two maps: ``{measure: [B] float32 ...}`` for each of ``measures``, and
    ``"degenerate"`` ``[B]`` bool: ``|a|`` or ``|b|`` is constant (Spearman undefined, returned as 0)."""
    return Reference(a, measures)(b)


def spearman(a: maps.Map, b: maps.Map) -> torch.Tensor:
    """Spearman correlation ``[B]`` of ``|a|`` and ``|b|`` (maps of one layout; 0 where one is constant)."""
    return similarities(a, b, ("spearman",))["spearman"]


def ssim(a: maps.Map, b: maps.Map) -> torch.Tensor:
    """SSIM ``[B]`` of ``|a| / max|a|`` and ``|b| / max|b|`` on the maps' images (see the module docstring)."""
    return similarities(a, b, ("ssim",))["ssim"]
