"""ROAD, RemOve And Debias (Rong et al., 2022): remove features by their attribution and fill them by noisy
linear imputation, so that the model sees no tell-tale removal pattern.

Definitions (as Quantus 0.6's ``ROAD`` and pytorch-grad-cam 1.5.7's ``ROADMostRelevantFirst``, both after the
authors' ``road_evaluation``):

- Features are those of the perturbation engine (:mod:`metrics.perturbation`): positions of the spatial grid
  with all their channels (``domain="pixel"``: pixels, time-frequency bins, voxels) or coefficient positions of
  the input's own wavelet transform, all channels together (``domain="wavelet"``; the input is rebuilt with the
  inverse transform).
- At percentage ``p`` the ``floor(N p / 100)`` features ranked first (MoRF, most relevant first) or last (LeRF,
  least relevant first) are removed. Default percentages: Quantus' ``range(1, 100, 2)``.
- Noisy linear imputation (:func:`impute`): each removed value is the weighted mean of its neighbours inside its
  grid (the spatial grid; in the wavelet domain its own band), kept values fixed; the removed values of one
  input solve one sparse linear system, shared by the channels (one right-hand side per channel). Then
  Gaussian noise of standard deviation ``noise`` (default 0.01, the references' default, in the data's units)
  is added to every removed value. A grid with no kept feature (a whole band removed) is set to 0, the engine's
  removed value.
- Neighbourhoods (``stencil``): ``"road"`` (default) the 3^d - 1 surrounding cells weighted by the inverse of
  their squared distance: in 2D the references' 8 neighbours with weights 1/6 (edges) and 1/12 (corners); in 1D
  the 2 neighbours; in 3D the 26 neighbours (edges 1, face diagonals 1/2, corners 1/3, normalised; our
  extension: the references are 2D only). ``"axes"``: the 2d neighbours along the axes, equal weights (4 in 2D,
  2 in 1D, 6 in 3D). Both reproduce linear functions exactly.
- Score: the softmax probability of the target class at each percentage (the suite's convention;
  ``score="top1"`` gives Quantus' per-input ``y == argmax f``, whose batch mean is what Quantus returns).
  The AUC (:meth:`metrics.curves.Curve.auc`) is ``"paper"`` or ``"trapezoid"`` over the removed fraction
  ``p / 100``; :func:`road` is ``AUC(LeRF) - AUC(MoRF)`` (higher: more faithful), as faithfulness is
  insertion - deletion.

The sparse solves run on the CPU in float64: ``solver="direct"`` (default) factorises with SciPy's SuperLU, the
neighbour structure and a nested-dissection elimination order built once per grid shape and reused by every
input, percentage and channel; ``solver="cg"`` runs Jacobi-preconditioned conjugate gradients on the same
(symmetric positive definite) system to a relative residual of 1e-10, which the factorisation's fill-in makes
much faster on large 2D and 3D grids (a 28^3 volume with 90 % removed: 2.3 s direct, 0.16 s CG; 224^2: 0.93 s,
0.25 s), and falls back to the direct solve if it does not converge; ``solver="auto"``: direct on 1D grids (a
chain: no fill-in, while conjugate gradients need as many iterations as the longest hole is long), CG on 2D and
3D grids. Everything else (ranking, noise, rebuild, model calls in chunks of ``batch_size``) stays on ``x``'s
device.

Example::

    >>> import torch, metrics
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    >>> x, y, a = torch.rand(2, 3, 8, 8), torch.tensor([0, 3]), torch.rand(2, 8, 8)
    >>> morf = metrics.get("road_morf")(model, x, y, a, percentages=[10, 50, 90])
    >>> morf.probs.shape, morf.fractions
    (torch.Size([2, 3]), tensor([0.1000, 0.5000, 0.9000]))
    >>> metrics.get("road")(model, x, y, a, domain="wavelet", levels=2, percentages=[10, 50, 90]).shape
    torch.Size([2])
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import splu

from metrics.curves import Curve, Model, Targets, check_auc
from metrics.perturbation import SCORES, Postprocess, Preprocess, Problem, check_choice, run_rows
from metrics.registry import register
from wam.utils import as_targets

STENCILS = ("road", "axes")
SOLVERS = ("direct", "cg", "auto")
CG_RTOL = 1e-10  # relative residual of solver="cg"
ORDERS = ("morf", "lerf")
PERCENTAGES = tuple(range(1, 100, 2))  # quantus.ROAD's default
NOISE = 0.01  # quantus.ROAD's and pytorch_grad_cam's NoisyLinearImputer default


def stencil(ndim: int, kind: str = "road") -> list[tuple[tuple[int, ...], float]]:
    """Neighbour offsets of a cell of a ``ndim``-dimensional grid and their weights (summing to 1).

    >>> stencil(2)[:2]
    [((-1, -1), 0.08333333333333333), ((-1, 0), 0.16666666666666666)]
    >>> [o for o, _ in stencil(2, "axes")]
    [(-1, 0), (0, -1), (0, 1), (1, 0)]
    """
    check_choice(kind, STENCILS, "stencil")
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim: expected 1, 2 or 3 grid dimensions, got {ndim!r}")
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=ndim) if any(o)]
    if kind == "axes":
        offsets = [o for o in offsets if sum(map(abs, o)) == 1]
    raw = [1.0 / sum(v * v for v in o) for o in offsets]
    return [(o, w / sum(raw)) for o, w in zip(offsets, raw, strict=True)]


def dissection_order(shape: Sequence[int]) -> np.ndarray:
    """Position ``[prod(shape)]`` of each cell (C order) in a nested-dissection elimination order of the grid.

    The box is cut in two by its middle slab across its longest axis (a separator for any 3^d stencil), each
    half ordered recursively, the separator last; small or one-dimensional boxes keep their natural order (no
    fill-in). Restricted to any subset of cells it stays a low-fill order, so it serves every removal mask.

    >>> dissection_order((1, 5)).tolist()
    [0, 1, 2, 3, 4]
    """
    ids = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(tuple(shape))
    parts: list[np.ndarray] = []

    def visit(box: np.ndarray) -> None:
        if box.size <= 16 or sum(s > 1 for s in box.shape) <= 1:
            parts.append(box.ravel())
            return
        axis = int(np.argmax(box.shape))
        mid = box.shape[axis] // 2
        lo, sep, hi = np.split(box, [mid, mid + 1], axis=axis)
        visit(lo)
        visit(hi)
        parts.append(sep.ravel())

    visit(ids)
    order = np.concatenate(parts)
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    return position


@dataclass(frozen=True)
class Neighbours:
    """Neighbour structure of a list of grids whose cells are numbered grid after grid (each in C order).

    ``weights`` ``[N, N]`` (CSR): ``w_ij`` for neighbours ``i, j`` of the same grid; ``degree`` ``[N]``: the sum
    of a cell's in-grid weights; ``position`` ``[N]``: elimination order (nested dissection per grid);
    ``grid`` ``[N]``: the grid of each cell.
    """

    weights: sp.csr_matrix
    degree: np.ndarray
    position: np.ndarray
    grid: np.ndarray


@functools.lru_cache(maxsize=32)
def neighbours(grids: tuple[tuple[int, ...], ...], kind: str = "road") -> Neighbours:
    """The :class:`Neighbours` of ``grids`` (shapes, all of one dimensionality) for stencil ``kind``; cached.

    >>> nb = neighbours(((3,), (2,)), "road")
    >>> nb.weights.toarray()
    array([[0. , 0.5, 0. , 0. , 0. ],
           [0.5, 0. , 0.5, 0. , 0. ],
           [0. , 0.5, 0. , 0. , 0. ],
           [0. , 0. , 0. , 0. , 0.5],
           [0. , 0. , 0. , 0.5, 0. ]])
    >>> nb.degree.tolist(), nb.grid.tolist()
    ([0.5, 1.0, 0.5, 0.5, 0.5], [0, 0, 0, 1, 1])
    """
    rows, cols, vals, positions, grid_of = [], [], [], [], []
    start = 0
    for g, shape in enumerate(grids):
        coords = np.indices(shape).reshape(len(shape), -1)
        for offset, weight in stencil(len(shape), kind):
            moved = coords + np.array(offset)[:, None]
            inside = ((moved >= 0) & (moved < np.array(shape)[:, None])).all(0)
            rows.append(start + np.flatnonzero(inside))
            cols.append(start + np.ravel_multi_index(tuple(moved[:, inside]), shape))
            vals.append(np.full(int(inside.sum()), weight))
        size = coords.shape[1]
        positions.append(start + dissection_order(shape))
        grid_of.append(np.full(size, g))
        start += size
    weights = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(start, start))
    return Neighbours(weights, np.asarray(weights.sum(1)).ravel(), np.concatenate(positions), np.concatenate(grid_of))


# Rows are factorised together up to this many unknowns: fewer SuperLU calls for small systems (8x8 grids: 5x
# faster, 32x32: 1.3x), while a large block-diagonal system factorises slower than its blocks one by one.
SOLVE_UNKNOWNS = 1 << 12


def _cg(a: sp.csc_matrix, b: np.ndarray) -> np.ndarray:
    """``a^-1 b`` ``[m, C]`` by Jacobi-preconditioned conjugate gradients per column (``a`` symmetric positive
    definite), to a relative residual of :data:`CG_RTOL`; the direct solve where it does not converge."""
    from scipy.sparse.linalg import cg

    a = a.tocsr()
    jacobi = sp.diags(1.0 / a.diagonal())
    out = []
    for column in b.T:
        u, info = cg(a, column, rtol=CG_RTOL, atol=0.0, M=jacobi, maxiter=10 * a.shape[0])
        if info != 0:
            return splu(a.tocsc()).solve(b)
        out.append(u)
    return np.stack(out, 1)


def _fill(v: np.ndarray, removed: np.ndarray, nb: Neighbours, solver: str = "direct") -> None:
    """Replace the ``removed`` ``[R, N]`` entries of ``v`` ``[R, C, N]`` (in place) by their linear imputation.

    The rows' systems form one block-diagonal system (rows in turn, each in its elimination order), factorised
    once and solved for the ``C`` channels at once (``solver="cg"``: solved by :func:`_cg`).
    """
    rows, n = removed.shape
    n_grids = int(nb.grid[-1]) + 1
    cell = np.arange(rows)[:, None] * n_grids + nb.grid[None, :]  # (row, grid) of every feature
    has_kept = np.bincount(cell[~removed], minlength=rows * n_grids) > 0
    r_idx, f_idx = np.nonzero(removed)
    lone = ~has_kept[cell[r_idx, f_idx]]
    v[r_idx[lone], :, f_idx[lone]] = 0.0  # a grid with every cell removed: nothing to impute from
    r_idx, f_idx = r_idx[~lone], f_idx[~lone]
    m = r_idx.size
    if not m:
        return
    order = np.lexsort((nb.position[f_idx], r_idx))
    r_idx, f_idx = r_idx[order], f_idx[order]
    var = np.full((rows, n), -1)
    var[r_idx, f_idx] = np.arange(m)
    # every (unknown, neighbour) pair, from the rows of the neighbour matrix
    starts, counts = nb.weights.indptr[f_idx], np.diff(nb.weights.indptr)[f_idx]
    owner = np.repeat(np.arange(m), counts)
    entry = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(starts, counts)
    near, w = nb.weights.indices[entry], nb.weights.data[entry]
    near_row = r_idx[owner]
    col = var[near_row, near]
    inner = col >= 0  # the other neighbours are kept (a removed one is an unknown: its grid has a kept cell)
    diag = np.arange(m)
    # degree_i u_i - sum_{j removed} w_ij u_j = sum_{j kept} w_ij v_j  (symmetric positive definite)
    a = sp.csc_matrix((np.concatenate([nb.degree[f_idx], -w[inner]]),
                       (np.concatenate([diag, owner[inner]]), np.concatenate([diag, col[inner]]))), shape=(m, m))
    known = w[~inner, None] * v[near_row[~inner], :, near[~inner]]  # [pairs, C]
    b = np.stack([np.bincount(owner[~inner], weights=known[:, c], minlength=m) for c in range(v.shape[1])], 1)
    if solver == "cg":
        v[r_idx, :, f_idx] = _cg(a, b)
        return
    lu = splu(a, permc_spec="NATURAL", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    v[r_idx, :, f_idx] = lu.solve(b)


def impute(values: torch.Tensor, removed: torch.Tensor, grids: Sequence[Sequence[int]],
           stencil: str = "road", solver: str = "direct") -> torch.Tensor:
    """Linear imputation (noise-free) of the ``removed`` features.

    ``values`` ``[R, C, N]``: ``C`` channels of ``N`` features laid out as the cells of ``grids`` (shapes of
    1, 2 or 3 dimensions, numbered grid after grid, each in C order; ``N`` = their total size); ``removed``
    ``[R, N]`` bool. Each removed value becomes the weighted mean of its neighbours in its grid (``stencil``,
    see the module docstring), kept values fixed: one sparse system per row, one right-hand side per channel
    (rows are factorised together, up to ``SOLVE_UNKNOWNS`` unknowns at a time). A grid whose cells are all
    removed is set to 0. ``solver``: ``"direct"``, ``"cg"`` or ``"auto"`` (module docstring). Returns ``[R, C, N]`` on
    ``values``' device and dtype.

    >>> ramp = torch.arange(6.0).view(1, 1, 6)                       # a linear function of the position
    >>> impute(ramp, torch.tensor([[False, True, True, False, True, False]]), [(6,)])
    tensor([[[0., 1., 2., 3., 4., 5.]]])
    """
    if not isinstance(values, torch.Tensor) or values.dim() != 3 or not values.is_floating_point():
        raise ValueError(f"values: expected a floating tensor [R, C, N], got {getattr(values, 'shape', values)!r}")
    shapes = tuple(tuple(int(s) for s in g) for g in grids)
    if not shapes or len({len(s) for s in shapes}) != 1 or any(min(s, default=0) < 1 for s in shapes):
        raise ValueError(f"grids: expected non-empty shapes of one dimensionality (1, 2 or 3), got {grids!r}")
    total = sum(int(np.prod(s)) for s in shapes)
    if values.shape[2] != total:
        raise ValueError(f"values: expected {total} features (the cells of grids {shapes}), got {values.shape[2]}")
    rows = values.shape[0]
    if not isinstance(removed, torch.Tensor) or removed.dtype != torch.bool or removed.shape != (rows, total):
        raise ValueError(f"removed: expected a bool tensor {(rows, total)}, "
                         f"got {getattr(removed, 'shape', removed)!r}")
    nb = neighbours(shapes, check_choice(stencil, STENCILS, "stencil"))
    if check_choice(solver, SOLVERS, "solver") == "auto":
        solver = "direct" if len(shapes[0]) == 1 else "cg"
    out = values.detach().to("cpu", torch.float64).numpy().copy()
    mask = removed.cpu().numpy()
    unknowns = np.cumsum(mask.sum(1))
    start = 0
    while start < rows:  # groups of rows with at most SOLVE_UNKNOWNS unknowns (at least one row)
        stop = max(start + 1, int(np.searchsorted(unknowns, unknowns[start] - mask[start].sum() + SOLVE_UNKNOWNS,
                                                  side="right")))
        _fill(out[start:stop], mask[start:stop], nb, solver)
        start = stop
    return torch.from_numpy(out).to(values.device, values.dtype)


def percentage_counts(n_features: int, percentages: Iterable[float], device: torch.device | None = None
                      ) -> torch.Tensor:
    """Features removed at each percentage ``[P]`` (long): ``floor(n_features * p / 100)``, Quantus'
    ``int(a_size * p / 100)``. ``ValueError`` unless every ``p`` is a number in [0, 100].

    >>> percentage_counts(1000, range(1, 100, 49)).tolist()
    [10, 500, 990]
    """
    try:
        p = list(percentages)
    except TypeError:
        p = None
    if not p or any(isinstance(v, bool) or not isinstance(v, Real) or not 0 <= v <= 100 for v in p):
        raise ValueError(f"percentages: expected a non-empty sequence of numbers in [0, 100], got {percentages!r}")
    return torch.tensor([int(n_features * v / 100) for v in p], dtype=torch.long, device=device)


def road_curve(
    model: Model,
    x: torch.Tensor,
    y: Targets,
    attribution: Any,
    *,
    order: str,
    domain: str = "pixel",
    percentages: Sequence[float] = PERCENTAGES,
    noise: float = NOISE,
    stencil: str = "road",
    solver: str = "direct",
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
) -> Curve:
    """ROAD curve: scores ``[B, P]`` of the target with the first-ranked (``order="morf"``) or last-ranked
    (``"lerf"``) ``floor(N p / 100)`` features imputed, for each of ``percentages``.

    ``x`` ``[B, C, *spatial]`` (or ``[B, T]``) with 1, 2 or 3 spatial dims; ``attribution`` in the ``domain``'s
    layout (pixel: ``[B, *spatial]`` or ``[B, C, *spatial]``; wavelet: ptwt coefficients or a dyadic map).
    ``noise``: standard deviation of the Gaussian noise added to every imputed value, drawn from a
    ``torch.Generator`` on ``x``'s device seeded with ``seed``, one field per percentage shared by the inputs
    (so an input's curve does not depend on its batch). ``stencil``, ``solver``: :func:`impute`.
    ``tie_break`` / ``seed`` / ``swap_hv`` (ranking),
    ``wavelet`` / ``levels`` / ``mode``, ``preprocess``, ``postprocess``, ``batch_size`` and ``score``: as
    :func:`metrics.perturbation.curve_scores`. Returns a :class:`metrics.curves.Curve` of kind ``order`` whose
    ``fractions`` are ``p / 100``.
    """
    check_choice(order, ORDERS, "order")
    check_choice(score, SCORES, "score")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    if isinstance(noise, bool) or not isinstance(noise, Real) or not 0 <= noise < float("inf"):
        raise ValueError(f"noise: expected a finite number >= 0, got {noise!r}")
    check_choice(stencil, STENCILS, "stencil")
    check_choice(solver, SOLVERS, "solver")
    problem = Problem.build(x, attribution, domain, wavelet=wavelet, levels=levels, mode=mode, tie_break=tie_break,
                            seed=seed, swap_hv=swap_hv)
    n, device, batch = problem.n_features, problem.x4.device, problem.x4.shape[0]
    counts = percentage_counts(n, percentages, device)
    per = counts.shape[0]
    targets = as_targets(y, batch, device)
    field = None
    if noise > 0:
        gen = torch.Generator(device=device).manual_seed(seed)
        field = noise * torch.randn((per, problem.x4.shape[1], n), generator=gen, device=device,
                                    dtype=problem.x4.dtype)

    def make(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        samples, point = rows // per, rows % per
        rank, count = problem.rank[samples], counts[point][:, None]
        removed = rank < count if order == "morf" else rank >= n - count
        filled = impute(problem.values(samples), removed, problem.grids, stencil, solver)
        if field is not None:
            filled = filled + torch.where(removed.unsqueeze(1), field[point], 0.0)
        inputs = problem.assemble(samples, filled, whole=count[:, 0] == 0)
        return (inputs if postprocess is None else postprocess(inputs)), targets[samples]

    scores = run_rows(model, batch * per, make, score, preprocess, batch_size, device, targets)
    fractions = torch.tensor([float(p) / 100 for p in percentages], device=device)
    return Curve(scores.view(batch, per), order, problem.domain, fractions, problem.degenerate)


@register("road_morf")
def road_morf(model: Model, x: torch.Tensor, y: Targets, attribution: Any, domain: str = "pixel",
              **options: Any) -> Curve:
    """ROAD, most relevant first: the top ``p`` % of the features imputed (:func:`road_curve`; a faithful
    attribution makes this curve fall fast)."""
    return road_curve(model, x, y, attribution, order="morf", domain=domain, **options)


@register("road_lerf")
def road_lerf(model: Model, x: torch.Tensor, y: Targets, attribution: Any, domain: str = "pixel",
              **options: Any) -> Curve:
    """ROAD, least relevant first: the bottom ``p`` % of the features imputed (:func:`road_curve`; a faithful
    attribution keeps this curve high)."""
    return road_curve(model, x, y, attribution, order="lerf", domain=domain, **options)


@register("road")
def road(model: Model, x: torch.Tensor, y: Targets, attribution: Any, domain: str = "pixel", auc: str = "paper",
         **options: Any) -> torch.Tensor:
    """``AUC(LeRF) - AUC(MoRF)`` ``[B]`` (same domain, same ``auc``: ``"paper"`` or ``"trapezoid"``);
    ``options`` of :func:`road_curve`."""
    check_auc(auc)
    lerf = road_lerf(model, x, y, attribution, domain, **options)
    morf = road_morf(model, x, y, attribution, domain, **options)
    return lerf.auc(auc) - morf.auc(auc)
