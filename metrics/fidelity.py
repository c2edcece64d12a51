"""mu-Fidelity (Bhatt et al., 2020; after xplique's ``MuFidelity``): Spearman correlation, per input,
between the attribution inside random subsets of grid cells and the score drop when they are removed.

Example::

    >>> import torch, metrics
    >>> sum_model = lambda v: v.flatten(1).sum(1, keepdim=True)       # f(x) = sum(x)
    >>> x = torch.rand(2, 1, 12, 12)
    >>> metrics.mu_fidelity(sum_model, x, 0, x, samples=32, score="logit")
    tensor([1., 1.])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from metrics.perturbation import (
    SCORES,
    Postprocess,
    Preprocess,
    as_batch,
    broadcast_baseline,
    check_choice,
    run_rows,
    spatial_scores,
)
from metrics.registry import register
from wam.utils import as_targets


def cell_index(spatial: Sequence[int], grid: int, device: torch.device) -> tuple[torch.Tensor, int]:
    """Cell of each position ``[prod(spatial)]`` and the number of cells.

    Each axis of size ``s`` is cut into ``min(grid, s)`` cells of (nearly) equal length.
    """
    cell = torch.zeros((), dtype=torch.long, device=device)
    total = 1
    for axis, size in enumerate(spatial):
        g = min(grid, size)
        idx = (torch.arange(size, device=device) * g) // size
        shape = [1] * len(spatial)
        shape[axis] = size
        cell = cell * g + idx.view(shape)
        total *= g
    return cell.expand(*spatial).reshape(-1), total


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman correlation ``[B]`` of rows of ``a`` and ``b`` ``[B, S]`` (average ranks for ties;
    0 where a row is constant)."""

    def ranks(v: torch.Tensor) -> torch.Tensor:
        v = v.double()
        less = (v[:, None, :] < v[:, :, None]).sum(-1)
        equal = (v[:, None, :] == v[:, :, None]).sum(-1)
        return less + (equal - 1) / 2

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    den = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    rho = (ra * rb).sum(1) / torch.where(den == 0, torch.ones_like(den), den)
    return torch.where(den == 0, torch.zeros_like(rho), rho).float()


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Each sample's map ``[B, *spatial]`` smoothed over its spatial axes by ``scipy.ndimage.gaussian_filter``
    (standard deviation ``sigma`` positions, ``reflect`` borders, truncated at 4 sigma), as the reference evaluators
    blur WAM's maps before mu-fidelity.

    >>> m = torch.zeros(1, 9, 9); m[0, 4, 4] = 1.0
    >>> b = gaussian_blur(m, 1.0)
    >>> round(float(b.sum()), 4), bool(b[0, 4, 4] < 1)
    (1.0, True)
    """
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(maps.detach().double().cpu().numpy(), sigma=(0,) + (sigma,) * (maps.dim() - 1))
    return torch.from_numpy(blurred).to(device=maps.device, dtype=maps.dtype)


@register("mu_fidelity")
def mu_fidelity(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: int | Sequence[int] | torch.Tensor,
    attribution: Any,
    grid: int = 28,
    subset: float = 0.2,
    samples: int = 128,
    baseline: float | torch.Tensor = 0.0,
    seed: int = 0,
    preprocess: Preprocess = None,
    postprocess: Postprocess = None,
    batch_size: int = 64,
    score: str = "softmax",
    blur: float = 0.0,
) -> torch.Tensor:
    """mu-Fidelity ``[B]`` in [-1, 1].

    ``x`` ``[B, C, *spatial]`` (or ``[B, T]``), ``attribution`` ``[B, *spatial]`` or ``[B, C, *spatial]``.
    The spatial grid is cut into ``grid`` cells per axis (one cell per position on shorter axes);
    ``samples`` subsets of ``round(subset * cells)`` cells are drawn (the same for every input, from a
    ``torch.Generator`` seeded with ``seed``) and set to ``baseline``; the result is the Spearman
    correlation between the attribution summed over the subset and ``f(x) - f(x_masked)``. ``postprocess`` is
    applied to every input (masked or not) before ``preprocess`` (:mod:`metrics.protocols`). ``blur`` > 0 first
    smooths each sample's spatial map (channels summed) with a Gaussian of that standard deviation in positions
    (:func:`gaussian_blur`; the reference evaluators blur WAM's maps with 2).
    """
    check_choice(score, SCORES, "score")
    x4, squeezed = as_batch(x)
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ValueError(f"grid: expected a positive integer, got {grid!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples: expected an integer >= 2, got {samples!r}")
    if not 0 < float(subset) < 1:
        raise ValueError(f"subset: expected a fraction in (0, 1), got {subset!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    device, batch, spatial = x4.device, x4.shape[0], tuple(x4.shape[2:])
    if isinstance(blur, bool) or not isinstance(blur, int | float) or not blur >= 0:
        raise ValueError(f"blur: expected a standard deviation >= 0, got {blur!r}")
    attr = spatial_scores(attribution, x4)
    attr = (gaussian_blur(attr, float(blur)) if blur > 0 else attr).flatten(1)  # [B, P]
    base4 = broadcast_baseline(baseline, x, x4)
    targets = as_targets(y, batch, device)

    cell, n_cells = cell_index(spatial, grid, device)
    chosen = max(1, round(float(subset) * n_cells))
    gen = torch.Generator().manual_seed(seed)
    picks = torch.rand(samples, n_cells, generator=gen).argsort(dim=1)[:, :chosen]
    in_subset = torch.zeros(samples, n_cells, dtype=torch.bool).scatter_(1, picks, True).to(device)
    masks = in_subset[:, cell]  # [samples, P]

    cell_sums = torch.zeros(batch, n_cells, dtype=torch.float64, device=device)
    cell_sums.index_add_(1, cell, attr.double())
    attr_sums = cell_sums @ in_subset.double().T  # [B, samples]

    def finish(out: torch.Tensor) -> torch.Tensor:
        out = out[:, 0] if squeezed else out
        return out if postprocess is None else postprocess(out)

    def unchanged(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return finish(x4[rows]), targets[rows]

    def masked(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, s = rows // samples, rows % samples
        return finish(torch.where(masks[s].view(-1, 1, *spatial), base4[i], x4[i])), targets[i]

    full = run_rows(model, batch, unchanged, score, preprocess, batch_size, device, targets)
    drops = run_rows(model, batch * samples, masked, score, preprocess, batch_size, device)
    drops = full[:, None].double() - drops.view(batch, samples).double()
    return spearman(attr_sums, drops)
