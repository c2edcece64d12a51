"""Perturbation engine shared by every metric: feature ranking, masked-input batches, batched scoring.

Features are spatial positions (``domain="pixel"``; all channels of a position move together) or
coefficient positions of the input's own wavelet transform (``domain="wavelet"``; all channels
together; a removed coefficient is set to 0 and the input rebuilt with the inverse transform).

Rows ``(sample i, step k)`` are built on ``x``'s device in chunks of ``batch_size`` rows and scored
under ``torch.no_grad()``, so peak memory is bounded by ``batch_size``, never by ``steps``.

The details that differ between evaluation protocols (:mod:`metrics.protocols`) are options here: how ties in
the attribution are ordered (``tie_break``), how many features each point perturbs (``counts``) and what is
done to a perturbed input before the model sees it (``postprocess``, e.g. the reference's uint8 rescale).

Example::

    >>> import torch
    >>> from metrics import perturbation
    >>> x = torch.rand(2, 3, 8, 8)
    >>> problem = perturbation.Problem.build(x, torch.rand(2, 8, 8), domain="pixel")
    >>> problem.n_features, problem.rank.shape          # rank 0 = highest attribution
    (64, torch.Size([2, 64]))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Number
from typing import Any

import torch
from torch import nn

from wam import transform
from wam.utils import as_targets, check_input, check_targets_range, chunks

DOMAINS = ("pixel", "wavelet")
SCORES = ("softmax", "logit", "top1")
TIE_BREAKS = ("index", "reverse", "random")
COUNTS = ("exact", "floor")
X_LAYOUT = "[B, C, *spatial] with 1, 2 or 3 spatial dims, or [B, T] (1D waveforms)"

Preprocess = Callable[[torch.Tensor], torch.Tensor] | None
Postprocess = Callable[[torch.Tensor], torch.Tensor] | None


def check_choice(value: Any, choices: Sequence[str], name: str) -> str:
    """``ValueError`` naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")
    return value


def as_batch(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``x`` as ``[B, C, *spatial]``; the flag says a ``[B, T]`` waveform got a channel axis."""
    check_input(x, (2, 3, 4, 5), "x", X_LAYOUT)
    if x.dim() == 2:
        return x.unsqueeze(1), True
    return x, False


def _finite(a: torch.Tensor, name: str = "attribution") -> torch.Tensor:
    if not isinstance(a, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(a).__name__}")
    if a.is_complex() or a.dtype == torch.bool:
        raise ValueError(f"{name}: expected a real tensor, got {a.dtype}")
    if torch.isnan(a).any():
        raise ValueError(f"{name}: contains NaN")
    return a


def spatial_scores(attribution: Any, x4: torch.Tensor) -> torch.Tensor:
    """Per-position attribution ``[B, *spatial]`` from ``[B, *spatial]`` or ``[B, C, *spatial]`` (summed over C)."""
    a = _finite(attribution)
    batch, channels, spatial = x4.shape[0], x4.shape[1], tuple(x4.shape[2:])
    if a.dim() == x4.dim() and tuple(a.shape) == (batch, channels, *spatial):
        a = a.sum(dim=1)
    if tuple(a.shape) != (batch, *spatial):
        raise ValueError(
            f"attribution: expected shape {(batch, *spatial)} or {(batch, channels, *spatial)} "
            f"for x of shape {tuple(x4.shape)} in the pixel domain, got {tuple(a.shape)}"
        )
    return a.to(device=x4.device, dtype=torch.promote_types(a.dtype, torch.float32))


def _band_scores(attribution: Any, shapes: list[tuple[int, ...]], batch: int, ndim: int) -> list[torch.Tensor]:
    """Per-band attribution maps ``[B, *band]`` from a coefficient structure or a dyadic map."""
    expected = (
        "a ptwt coefficient structure with tensors [B, C, *band], or a dyadic map "
        f"[B, *spatial] (bands {shapes})"
    )
    if not isinstance(attribution, list | tuple):
        raise ValueError(f"attribution: expected {expected}, got {type(attribution).__name__}")
    try:
        flat = transform.bands(attribution)
    except Exception as err:  # a malformed structure
        raise ValueError(f"attribution: expected {expected}; could not read it ({err})") from err
    if len(flat) != len(shapes):
        raise ValueError(f"attribution: expected {len(shapes)} bands ({expected}), got {len(flat)}")
    out = []
    for band, shape in zip(flat, shapes, strict=True):
        band = _finite(band)
        if band.dim() == ndim + 2 and band.shape[0] == batch and tuple(band.shape[2:]) == shape:
            band = band.sum(dim=1)
        if tuple(band.shape) != (batch, *shape):
            raise ValueError(
                f"attribution: band of shape {tuple(band.shape)} does not match the input's band "
                f"{(batch, '<C>', *shape)} ({expected})"
            )
        out.append(band)
    return out


@dataclass
class Problem:
    """An input batch, its features and their attribution rank; builds perturbed inputs.

    ``x4``: ``[B, C, *spatial]``; ``rank``: ``[B, N]`` long, rank 0 = highest attribution (ties ordered by
    ``tie_break``, see :func:`feature_rank`); ``degenerate``: ``[B]`` bool, the attribution is constant (every
    feature tied: its ranking carries no information). Wavelet domain: ``coeffs`` ``[B, C, N]`` (flat
    coefficient vectors), ``band_shapes`` per band.
    """

    x4: torch.Tensor
    squeezed: bool
    domain: str
    rank: torch.Tensor
    degenerate: torch.Tensor
    base4: torch.Tensor | None = None
    coeffs: torch.Tensor | None = None
    band_shapes: list[tuple[int, ...]] | None = None
    wavelet: str = "haar"

    @property
    def n_features(self) -> int:
        return self.rank.shape[1]

    @property
    def spatial(self) -> tuple[int, ...]:
        return tuple(self.x4.shape[2:])

    @classmethod
    def build(
        cls,
        x: torch.Tensor,
        attribution: Any,
        domain: str = "pixel",
        baseline: float | torch.Tensor = 0.0,
        wavelet: str = "haar",
        levels: int = 3,
        mode: str = "reflect",
        tie_break: str = "index",
        seed: int = 0,
        swap_hv: bool = False,
    ) -> Problem:
        """``swap_hv`` (2D wavelet domain): each level's horizontal-detail map ranks its vertical-detail
        coefficients and vice versa: the reference evaluators' quirk (their dyadic map puts the horizontal
        details top-right, ``pywt.coeffs_to_array``, on which their mask acts, puts the vertical ones there)."""
        check_choice(domain, DOMAINS, "domain")
        x4, squeezed = as_batch(x)
        batch, ndim = x4.shape[0], x4.dim() - 2
        if domain == "pixel":
            scores = spatial_scores(attribution, x4).flatten(1)
            return cls(x4, squeezed, domain, feature_rank(scores, tie_break, seed), constant_rows(scores),
                       base4=broadcast_baseline(baseline, x, x4))
        coeffs, shapes = wavelet_features(x4, wavelet, levels, mode)
        if isinstance(attribution, torch.Tensor):
            a = _finite(attribution)
            if a.dim() == ndim + 2 and tuple(a.shape[:2]) == tuple(x4.shape[:2]):
                a = a.sum(dim=1)
            if tuple(a.shape) != (batch, *x4.shape[2:]):
                raise ValueError(
                    f"attribution: expected a dyadic map {(batch, *x4.shape[2:])} or a ptwt coefficient "
                    f"structure for x of shape {tuple(x4.shape)} in the wavelet domain, got a tensor "
                    f"of shape {tuple(a.shape)}"
                )
            band_maps = transform.untile(a.to(x4.device, torch.promote_types(a.dtype, torch.float32)), shapes, ndim)
        else:
            band_maps = _band_scores(attribution, shapes, batch, ndim)
        if swap_hv and ndim == 2:
            for h in range(1, len(band_maps), 3):  # bands: approx, then (H, V, D) per level
                band_maps[h], band_maps[h + 1] = band_maps[h + 1], band_maps[h]
        scores = torch.cat([m.to(x4.device).flatten(1).float() for m in band_maps], dim=1)
        return cls(x4, squeezed, domain, feature_rank(scores, tie_break, seed), constant_rows(scores), coeffs=coeffs,
                   band_shapes=shapes, wavelet=wavelet)

    @property
    def grids(self) -> list[tuple[int, ...]]:
        """The feature grids, in feature order: the spatial grid (pixel domain) or each band's (wavelet domain)."""
        return [self.spatial] if self.domain == "pixel" else list(self.band_shapes)

    def values(self, samples: torch.Tensor) -> torch.Tensor:
        """What the features of rows ``samples`` ``[R]`` hold, ``[R, C, N]``: pixel values (pixel domain) or
        flat coefficients (wavelet domain)."""
        return self.x4[samples].flatten(2) if self.domain == "pixel" else self.coeffs[samples]

    def assemble(self, samples: torch.Tensor, values: torch.Tensor, whole: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """Inputs ``[R, ...]`` (``x``'s own layout) whose features hold ``values`` ``[R, C, N]`` (wavelet domain:
        rebuilt with the inverse transform). ``whole`` ``[R]`` bool marks rows whose values are the input's own:
        they get the input itself (no round-off from the rebuild)."""
        x = self.x4[samples]
        if self.domain == "pixel":
            out = values.reshape(x.shape)
        else:
            out = transform.waverec_flat(values, self.band_shapes, self.wavelet, self.spatial).to(x.dtype)
            if whole is not None:
                out = torch.where(whole.view(-1, *[1] * (out.dim() - 1)), x, out)
        return out[:, 0] if self.squeezed else out

    def inputs(self, samples: torch.Tensor, keep: torch.Tensor, whole: torch.Tensor | None = None) -> torch.Tensor:
        """Perturbed inputs ``[R, ...]`` (``x``'s own layout) for rows of ``samples`` ``[R]``.

        ``keep`` ``[R, N]`` bool: features taken from the input; the others are removed (pixel domain: set to
        the baseline; wavelet domain: coefficient set to 0, input rebuilt). ``whole`` ``[R]`` bool marks rows
        that keep every feature: they get the input itself (no round-off from the rebuild).
        """
        values = self.values(samples)
        removed = self.base4[samples].flatten(2) if self.domain == "pixel" else torch.zeros_like(values)
        return self.assemble(samples, torch.where(keep.unsqueeze(1), values, removed), whole)


def wavelet_features(x4: torch.Tensor, wavelet: str, levels: int, mode: str
                     ) -> tuple[torch.Tensor, list[tuple[int, ...]]]:
    """Flat coefficients ``[B, C, N]`` of the transform of ``x4`` ``[B, C, *spatial]`` (bands in
    :func:`wam.transform.bands` order, each flattened) and the band shapes."""
    check_wavelet_args(x4, wavelet, levels, mode)
    return transform.flatten_bands(transform.bands(transform.wavedec(x4, x4.dim() - 2, wavelet, levels, mode)), 2)


def check_wavelet_args(x4: torch.Tensor, wavelet: str, levels: int, mode: str) -> None:
    transform.check_wavelet(wavelet)
    transform.check_mode(mode)
    transform.check_levels(levels, x4.shape[2:], wavelet)


def broadcast_baseline(baseline: float | torch.Tensor, x: torch.Tensor, x4: torch.Tensor) -> torch.Tensor:
    """The baseline as ``[B, C, *spatial]`` (from a number or a tensor broadcastable to ``x``)."""
    if isinstance(baseline, bool) or not isinstance(baseline, Number | torch.Tensor):
        raise ValueError(f"baseline: expected a number or a tensor broadcastable to {tuple(x.shape)}, "
                         f"got {type(baseline).__name__}")
    b = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    if not torch.isfinite(b).all():
        raise ValueError("baseline: contains NaN or inf")
    try:
        b = torch.broadcast_to(b, x.shape)
    except RuntimeError as err:
        raise ValueError(
            f"baseline: shape {tuple(b.shape)} is not broadcastable to x's shape {tuple(x.shape)}"
        ) from err
    return b.reshape(x4.shape)


def feature_rank(scores: torch.Tensor, tie_break: str = "index", seed: int = 0) -> torch.Tensor:
    """Rank ``[B, N]`` of each feature by ``scores`` ``[B, N]``, highest first (0 = top).

    Tied scores are ordered by ``tie_break``: ``"index"`` (lower index first), ``"reverse"`` (higher index
    first: the order of ``np.argsort(scores, kind="stable")[::-1]``, the reference evaluators' ranking) or
    ``"random"`` (a permutation drawn from a ``torch.Generator`` seeded with ``seed``, the same for every row).
    """
    check_choice(tie_break, TIE_BREAKS, "tie_break")
    n = scores.shape[1]
    if tie_break == "reverse":
        order = torch.argsort(scores, dim=1, stable=True).flip(1)
    elif tie_break == "random":
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(scores.device)
        order = perm[torch.argsort(scores[:, perm], dim=1, descending=True, stable=True)]
    else:
        order = torch.argsort(scores, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=order.device).expand_as(order))
    return rank


def constant_rows(scores: torch.Tensor) -> torch.Tensor:
    """``[B]`` bool: the row of ``scores`` ``[B, N]`` is constant (a degenerate attribution, e.g. all zero)."""
    return scores.amax(1) == scores.amin(1)


def point_counts(n_features: int, steps: int | None = None, fractions: Sequence[float] | None = None,
                 counts: str = "exact", device: torch.device | None = None) -> torch.Tensor:
    """Features perturbed at each point ``[P]`` (long).

    ``steps``: points ``k = 0..steps``; ``counts="exact"`` perturbs ``(k * N) // steps`` features,
    ``"floor"`` perturbs ``k * (N // steps)`` and all ``N`` at the last point (the reference evaluators'
    ``int(N / n_iter)`` features per step). ``fractions`` (instead of ``steps``): ``floor(f * N)`` features at
    each fraction ``f`` in [0, 1].
    """
    check_choice(counts, COUNTS, "counts")
    if (steps is None) == (fractions is None):
        raise ValueError("steps, fractions: give exactly one of them")
    if fractions is not None:
        f = torch.as_tensor(list(fractions), dtype=torch.float64)
        if f.dim() != 1 or not len(f) or ((f < 0) | (f > 1)).any():
            raise ValueError(f"fractions: expected fractions in [0, 1], got {list(fractions)!r}")
        return (f * n_features).floor().long().to(device)
    check_steps(steps, n_features)
    k = torch.arange(steps + 1, device=device)
    if counts == "exact":
        return (k * n_features) // steps
    out = k * (n_features // steps)
    out[-1] = n_features
    return out


def check_steps(steps: int, n_features: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected a positive integer, got {steps!r}")
    if steps > n_features:
        raise ValueError(f"steps: {steps} is larger than the number of features ({n_features})")
    return steps


def target_scores(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    score: str,
    preprocess: Preprocess = None,
    check: torch.Tensor | None = None,
) -> torch.Tensor:
    """Score ``[R]`` of class ``targets`` ``[R]``: softmax probability, raw output (``score="logit"``) or
    ``1.0`` where ``targets`` is the top-1 class, else ``0.0`` (``score="top1"``).

    ``check``: class indices to check against the model's number of outputs (``ValueError``).
    """
    if preprocess is not None:
        inputs = preprocess(inputs)
    out = model(inputs)
    if out.dim() != 2:
        raise ValueError(f"model: expected outputs [rows, classes], got shape {tuple(out.shape)}")
    if check is not None:
        check_targets_range(check, out.shape[1])
    out = out.float()
    if score == "top1":
        return (out.argmax(dim=1) == targets).float()
    if score == "softmax":
        out = out.softmax(dim=1)
    return out.gather(1, targets[:, None])[:, 0]


def run_rows(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    n_rows: int,
    make: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    score: str,
    preprocess: Preprocess,
    batch_size: int,
    device: torch.device,
    all_targets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Score ``n_rows`` rows in chunks: ``make(rows)`` returns ``(inputs, targets)`` for row indices ``rows``.

    ``all_targets`` are checked against the model's number of outputs on the first chunk.
    """
    out = torch.empty(n_rows, dtype=torch.float32, device=device)
    with torch.no_grad():
        for part in chunks(n_rows, batch_size):
            rows = torch.arange(part.start, part.stop, device=device)
            inputs, targets = make(rows)
            check = all_targets if part.start == 0 else None
            out[part] = target_scores(model, inputs, targets, score, preprocess, check).to(device)
    return out


def curve_scores(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: int | Sequence[int] | torch.Tensor,
    attribution: Any,
    *,
    order: str,
    domain: str = "pixel",
    steps: int | None = 64,
    fractions: Sequence[float] | None = None,
    counts: str = "exact",
    baseline: float | torch.Tensor = 0.0,
    wavelet: str = "haar",
    levels: int = 3,
    mode: str = "reflect",
    tie_break: str = "index",
    seed: int = 0,
    swap_hv: bool = False,
    preprocess: Preprocess = None,
    postprocess: Postprocess = None,
    batch_size: int = 64,
    score: str = "softmax",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scores ``[B, P]`` along an insertion (``order="insertion"``) or deletion path, the perturbed fraction
    of each point ``[P]`` and the degenerate-attribution flags ``[B]``.

    Point ``k`` perturbs the top-ranked ``point_counts(...)[k]`` features (``steps`` points ``0..steps``, or one
    point per entry of ``fractions``): insertion keeps only them (none: everything removed; all: the input),
    deletion removes them. Options:

    - ``domain``: ``"pixel"`` (positions, all channels together; removed = ``baseline``, a number or a tensor
      broadcastable to ``x``) or ``"wavelet"`` (coefficients of ``x``'s own ``wavelet`` / ``levels`` / ``mode``
      transform; removed = 0; the input rebuilt);
    - ``tie_break``, ``seed``: the order of tied attributions (:func:`feature_rank`); ``counts``: see
      :func:`point_counts`; ``swap_hv``: see :meth:`Problem.build`;
    - ``postprocess``: applied to every point's input (the intact one too, as the reference evaluators do)
      before ``preprocess``, which maps every input to the model's (e.g. an image model's normalisation);
    - ``score``: ``"softmax"``, ``"logit"`` or ``"top1"`` (see :func:`target_scores`); ``batch_size``: rows per
      model call.
    """
    check_choice(order, ("insertion", "deletion"), "order")
    check_choice(score, SCORES, "score")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    problem = Problem.build(x, attribution, domain, baseline, wavelet, levels, mode, tie_break, seed, swap_hv)
    n, device = problem.n_features, problem.x4.device
    counts_per_point = point_counts(n, steps, fractions, counts, device)
    batch = problem.x4.shape[0]
    targets = as_targets(y, batch, device)
    per = counts_per_point.shape[0]

    def make(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        samples = rows // per
        count = counts_per_point[rows % per]  # features perturbed at this point
        rank = problem.rank[samples]
        if order == "insertion":
            keep, whole = rank < count[:, None], count == n
        else:
            keep, whole = rank >= count[:, None], count == 0
        inputs = problem.inputs(samples, keep, whole)
        return (inputs if postprocess is None else postprocess(inputs)), targets[samples]

    scores = run_rows(model, batch * per, make, score, preprocess, batch_size, device, targets)
    return scores.view(batch, per), counts_per_point.float() / n, problem.degenerate
