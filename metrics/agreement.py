"""Meta-evaluation of the metrics: do two metrics rank the methods alike, and how stable is a metric's ranking?

Definitions (``M`` methods, each scored by a metric on the same inputs):

- **Rank agreement** of metrics ``A`` and ``B`` (:func:`kendall_tau`): Kendall's tau-b between the methods'
  orders under ``A`` and under ``B``, each oriented so that *better comes first* (a lower-is-better metric, e.g.
  deletion AUC or the MPRT similarity, is negated). +1: the metrics order the methods identically; -1: in reverse;
  ties (tau-b) lower the magnitude. A metric that ties every method orders nothing: 0. Compute it per modality
  (one set of methods scored on one data set) with each metric's mean score per method.
- **Pair flip** across two replicates ``r`` and ``s`` of a metric's method scores (training seeds, or bootstrap
  resamples of the inputs): methods ``i`` and ``j`` swap order, ``(S_ri - S_rj) (S_si - S_sj) < 0``; a tie in
  either is not a flip. Direction does not matter.
- **Noise floor** (:func:`flip_share`): the share of (method pair, replicate pair) that flip, over all
  ``M (M - 1) / 2`` method pairs and all ``R (R - 1) / 2`` replicate pairs; or, given a reference (the scores on
  all inputs), the share of (method pair, replicate) whose order differs from the reference's. 0: the ranking
  never moves; about 0.5 for pairs the metric cannot tell apart. A difference between two methods that flips
  in a large share of the replicates is within the metric's noise.
- **Bootstrap noise floor** (:func:`bootstrap_flip_share`): per-sample scores ``[M, n]`` (every method on the
  same ``n`` inputs); ``resamples`` bootstrap draws of ``n`` inputs with replacement (the same inputs for every
  method: a paired bootstrap; from a ``torch.Generator`` seeded with ``seed``); the flip share of the resampled
  means against the means on all inputs.

Example::

    >>> import torch
    >>> from metrics import agreement
    >>> insertion = torch.tensor([0.9, 0.5, 0.7])          # higher is better
    >>> deletion = torch.tensor([0.1, 0.4, 0.3])           # lower is better
    >>> agreement.kendall_tau(insertion, deletion, higher_is_better=(True, False))
    1.0
    >>> names, tau = agreement.rank_agreement({"ins": insertion, "del": deletion}, {"ins": True, "del": False})
    >>> names, tau.tolist()
    (['ins', 'del'], [[1.0, 1.0], [1.0, 1.0]])
    >>> agreement.flip_share(torch.tensor([[1.0, 2.0, 3.0], [1.0, 3.0, 2.0]]))   # 1 of 3 pairs flips
    0.3333333333333333
    >>> scores = torch.stack([torch.full((50,), 0.9), torch.full((50,), 0.1)])   # [methods, inputs]
    >>> agreement.bootstrap_flip_share(scores, resamples=200, seed=0)
    0.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import scipy.stats
import torch

from metrics.randomisation import check_seed

Scores = Sequence[float] | torch.Tensor


def _vector(v: Scores, name: str) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=torch.float64).cpu()
    if t.dim() != 1 or t.numel() < 2 or not torch.isfinite(t).all():
        raise ValueError(f"{name}: expected finite scores of at least 2 methods [M], got {v!r}")
    return t


def kendall_tau(a: Scores, b: Scores, higher_is_better: tuple[bool, bool] = (True, True)) -> float:
    """Kendall's tau-b between the method orders of metric scores ``a`` and ``b`` ``[M]`` (one score per method,
    same methods in the same order), each oriented by ``higher_is_better``; 0 where a metric ties every method.

    Equals ``scipy.stats.kendalltau(±a, ±b).statistic``.
    """
    ta, tb = _vector(a, "a"), _vector(b, "b")
    if ta.shape != tb.shape:
        raise ValueError(f"a, b: expected scores of the same methods, got {ta.numel()} and {tb.numel()}")
    if len(higher_is_better) != 2 or not all(isinstance(h, bool) for h in higher_is_better):
        raise ValueError(f"higher_is_better: expected two booleans, got {higher_is_better!r}")
    if ta.amax() == ta.amin() or tb.amax() == tb.amin():
        return 0.0
    sa, sb = (t if h else -t for t, h in zip((ta, tb), higher_is_better, strict=True))
    return float(scipy.stats.kendalltau(sa.numpy(), sb.numpy()).statistic)


def rank_agreement(scores: Mapping[str, Scores], higher_is_better: Mapping[str, bool]
                   ) -> tuple[list[str], torch.Tensor]:
    """Metric names and the ``[K, K]`` matrix of :func:`kendall_tau` between every pair of the ``K`` metrics.

    ``scores``: per metric, one score per method ``[M]`` (the same methods in the same order for every metric);
    ``higher_is_better``: per metric, its direction.
    """
    names = list(scores)
    missing = [n for n in names if n not in higher_is_better]
    if missing:
        raise ValueError(f"higher_is_better: no direction for {missing}")
    k = len(names)
    out = torch.ones(k, k, dtype=torch.float64)
    for i in range(k):
        for j in range(i + 1, k):
            tau = kendall_tau(scores[names[i]], scores[names[j]],
                              (higher_is_better[names[i]], higher_is_better[names[j]]))
            out[i, j] = out[j, i] = tau
    return names, out


def _pair_differences(s: torch.Tensor) -> torch.Tensor:
    """``S[..., i] - S[..., j]`` for every method pair ``i < j``: ``[..., M (M - 1) / 2]``."""
    i, j = torch.triu_indices(s.shape[-1], s.shape[-1], offset=1, device=s.device)
    return s[..., i] - s[..., j]


def flip_share(replicates: torch.Tensor, reference: Scores | None = None) -> float:
    """Share of method pairs whose order flips across replicates (module docstring).

    ``replicates`` ``[R, M]``: each replicate's score per method. Without ``reference``: over all replicate pairs
    (``R >= 2``); with ``reference`` ``[M]``: each replicate against it (``R >= 1``).
    """
    r = torch.as_tensor(replicates, dtype=torch.float64)
    if r.dim() != 2 or r.shape[1] < 2 or not torch.isfinite(r).all():
        raise ValueError(f"replicates: expected finite scores [R, M] with M >= 2, got shape {tuple(r.shape)}")
    d = _pair_differences(r)  # [R, P]
    if reference is not None:
        ref = _vector(reference, "reference")
        if ref.numel() != r.shape[1]:
            raise ValueError(f"reference: expected {r.shape[1]} scores, got {ref.numel()}")
        return float((d * _pair_differences(ref.to(r.device)) < 0).double().mean())
    if r.shape[0] < 2:
        raise ValueError(f"replicates: expected at least 2 replicates without a reference, got {r.shape[0]}")
    above, below = (d > 0).double().sum(0), (d < 0).double().sum(0)  # flipped replicate pairs: above * below
    pairs = r.shape[0] * (r.shape[0] - 1) / 2
    return float((above * below).sum() / (pairs * d.shape[1]))


def bootstrap_means(scores: torch.Tensor, resamples: int = 1000, seed: int = 0) -> torch.Tensor:
    """Mean score per method over ``resamples`` paired bootstrap resamples of the inputs: ``[resamples, M]``.

    ``scores`` ``[M, n]`` (float64 arithmetic). Resample ``b`` draws ``n`` input indices with replacement from a
    ``torch.Generator`` seeded with ``seed`` (the same indices for every method).
    """
    s = torch.as_tensor(scores, dtype=torch.float64)
    if s.dim() != 2 or s.shape[1] < 1 or not torch.isfinite(s).all():
        raise ValueError(f"scores: expected finite per-sample scores [methods, inputs], got shape {tuple(s.shape)}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples: expected a positive integer, got {resamples!r}")
    n = s.shape[1]
    gen = torch.Generator().manual_seed(check_seed(seed))
    draws = torch.randint(n, (resamples, n), generator=gen).to(s.device)
    counts = torch.zeros(resamples, n, dtype=torch.float64, device=s.device)
    counts.scatter_add_(1, draws, torch.ones_like(draws, dtype=torch.float64))
    return counts @ s.T / n


def bootstrap_flip_share(scores: torch.Tensor, resamples: int = 1000, seed: int = 0) -> float:
    """Noise floor of a metric from per-sample scores ``[M, n]``: :func:`flip_share` of the
    :func:`bootstrap_means` against the means over all inputs."""
    s = torch.as_tensor(scores, dtype=torch.float64)
    means = bootstrap_means(s, resamples, seed)
    return flip_share(means, s.mean(1))
