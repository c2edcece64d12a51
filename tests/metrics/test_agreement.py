"""Meta-evaluation: Kendall tau of method rankings (scipy, directions), pair-flip noise floor (brute force),
paired bootstrap (explicit resamples), errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats
import torch

from metrics import agreement


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_kendall_tau_equals_scipy_and_follows_directions():
    gen = _gen(0)
    for _ in range(5):
        a, b = torch.randn(7, generator=gen), torch.randn(7, generator=gen)
        a[3] = a[5]  # a tie
        expected = scipy.stats.kendalltau(a.numpy(), b.numpy()).statistic
        assert agreement.kendall_tau(a, b) == pytest.approx(expected, abs=1e-12)
        assert agreement.kendall_tau(a, b, (False, True)) == pytest.approx(-expected, abs=1e-12)
        assert agreement.kendall_tau(a, b, (False, False)) == pytest.approx(expected, abs=1e-12)
    scores = torch.tensor([0.2, 0.5, 0.9])
    assert agreement.kendall_tau(scores, 1 - scores, (True, False)) == 1.0  # e.g. insertion vs deletion
    assert agreement.kendall_tau(scores, torch.full((3,), 0.4)) == 0.0  # a metric that ties every method


def test_rank_agreement_matrix():
    scores = {"ins": [0.9, 0.5, 0.7, 0.1], "del": [0.1, 0.4, 0.3, 0.2], "mu": [0.3, 0.2, 0.1, 0.0]}
    directions = {"ins": True, "del": False, "mu": True}
    names, tau = agreement.rank_agreement(scores, directions)
    assert names == ["ins", "del", "mu"] and torch.equal(tau, tau.T) and torch.equal(tau.diag(), torch.ones(3))
    for i, j in itertools.combinations(range(3), 2):
        expected = agreement.kendall_tau(scores[names[i]], scores[names[j]],
                                         (directions[names[i]], directions[names[j]]))
        assert tau[i, j] == expected
    with pytest.raises(ValueError, match="higher_is_better"):
        agreement.rank_agreement(scores, {"ins": True})


def _flips_brute_force(r: np.ndarray, reference: np.ndarray | None) -> float:
    pairs = list(itertools.combinations(range(r.shape[1]), 2))
    if reference is not None:
        hits = [(r[k, i] - r[k, j]) * (reference[i] - reference[j]) < 0 for k in range(len(r)) for i, j in pairs]
    else:
        hits = [(r[k, i] - r[k, j]) * (r[m, i] - r[m, j]) < 0
                for k, m in itertools.combinations(range(len(r)), 2) for i, j in pairs]
    return float(np.mean(hits))


def test_flip_share_equals_brute_force():
    gen = _gen(1)
    r = (torch.randn(6, 5, generator=gen) * 2).round()  # ties included: a tie is not a flip
    ref = torch.randn(5, generator=gen)
    assert agreement.flip_share(r) == pytest.approx(_flips_brute_force(r.numpy(), None), abs=1e-12)
    assert agreement.flip_share(r, ref) == pytest.approx(_flips_brute_force(r.numpy(), ref.numpy()), abs=1e-12)
    stable = torch.tensor([[1.0, 2.0, 3.0]]).repeat(4, 1)
    assert agreement.flip_share(stable) == 0.0
    assert agreement.flip_share(torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])) == 1.0


def test_bootstrap_means_are_means_of_resampled_inputs():
    scores = torch.rand(3, 40, generator=_gen(2), dtype=torch.float64)
    means = agreement.bootstrap_means(scores, resamples=25, seed=7)
    draws = torch.randint(40, (25, 40), generator=_gen(7))  # the documented draw
    assert torch.allclose(means, scores[:, draws].mean(-1).T, atol=1e-12)
    assert torch.equal(means, agreement.bootstrap_means(scores, resamples=25, seed=7))


def test_bootstrap_flip_share_oracles():
    gen = _gen(3)
    noise = torch.randn(200, generator=gen)
    separated = torch.stack([noise + 5, noise, noise - 5])
    assert agreement.bootstrap_flip_share(separated, resamples=300, seed=0) == 0.0
    identical = torch.stack([noise, noise])  # every resample ties them: no flip
    assert agreement.bootstrap_flip_share(identical, resamples=300, seed=0) == 0.0
    a, b = torch.randn(200, generator=gen), torch.randn(200, generator=gen)
    b = b - b.mean() + a.mean() + 1e-4  # equal means: the resampled order is a coin toss
    share = agreement.bootstrap_flip_share(torch.stack([a, b]), resamples=2000, seed=0)
    assert 0.4 < share < 0.6


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="a"):
        agreement.kendall_tau([1.0], [2.0])
    with pytest.raises(ValueError, match="a, b"):
        agreement.kendall_tau([1.0, 2.0], [2.0, 1.0, 3.0])
    with pytest.raises(ValueError, match="b"):
        agreement.kendall_tau([1.0, 2.0], [float("nan"), 1.0])
    with pytest.raises(ValueError, match="higher_is_better"):
        agreement.kendall_tau([1.0, 2.0], [2.0, 1.0], (1, 0))
    with pytest.raises(ValueError, match="replicates"):
        agreement.flip_share(torch.rand(1, 3))
    with pytest.raises(ValueError, match="reference"):
        agreement.flip_share(torch.rand(2, 3), torch.rand(4))
    with pytest.raises(ValueError, match="scores"):
        agreement.bootstrap_means(torch.rand(3))
    with pytest.raises(ValueError, match="resamples"):
        agreement.bootstrap_means(torch.rand(2, 5), resamples=0)
    with pytest.raises(ValueError, match="seed"):
        agreement.bootstrap_means(torch.rand(2, 5), seed=-1)
