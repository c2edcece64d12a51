"""Sparseness (Gini) and Complexity (entropy): equal to Quantus 0.6 on identical 2D maps, exact values on known
maps, 1D / 2D / 3D and wavelet maps, batch invariance, registry."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import quantus
import torch

import metrics
from metrics.complexity import complexity, entropy, sparseness
from wam import transform


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_registered():
    assert metrics.get("sparseness") is sparseness and metrics.get("complexity") is complexity


@pytest.mark.parametrize(("ours", "theirs"), [(sparseness, quantus.Sparseness), (complexity, quantus.Complexity)])
def test_equals_quantus_on_identical_2d_maps(ours, theirs):
    gen = _gen(0)
    x = torch.rand(5, 1, 16, 16, generator=gen)
    a = torch.randn(5, 16, 16, generator=gen)
    a[0] = a[0] ** 8  # a peaked map
    a[1, :8] = 0.0  # half zeros
    # Quantus divides by the batch-wide max |a| and then adds 1e-7 (Sparseness): a sample's score moves with its
    # batch mates (0.006 here without this step). Both metrics are scale invariant: give each sample max |a| = 1.
    a = a / a.abs().flatten(1).amax(1).view(5, 1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = theirs(disable_warnings=True)(model=None, x_batch=x.numpy(), y_batch=np.zeros(5, dtype=int),
                                                  a_batch=a[:, None].numpy().copy())  # abs, max-normalised
    expected = np.asarray(expected, dtype=np.float64)
    np.testing.assert_allclose(ours(a)[1:].numpy(), expected[1:], atol=1e-6, rtol=0)
    # The peaked map differs by Quantus' epsilon alone: Gini(|a| + e) = Gini(|a|) * S / (S + N e), S = sum |a|.
    total, eps = a.abs().flatten(1).sum(1).double(), 1e-7 if ours is sparseness else 0.0
    shifted = ours(a).double() * total / (total + 256 * eps)
    np.testing.assert_allclose(shifted.numpy(), expected, atol=1e-6, rtol=0)


def test_exact_values():
    n = 64
    one_hot = torch.zeros(2, 8, 8)
    one_hot[0, 3, 4], one_hot[1, 0, 0] = 2.0, -0.5
    uniform = torch.full((2, 8, 8), 0.3)
    assert torch.allclose(sparseness(one_hot), torch.full((2,), (n - 1) / n))
    assert torch.equal(sparseness(uniform), torch.zeros(2))
    assert torch.allclose(complexity(one_hot), torch.zeros(2), atol=1e-7, rtol=0)
    assert torch.allclose(entropy(uniform), torch.full((2,), math.log(n), dtype=torch.float64), atol=1e-6, rtol=0)
    half = torch.tensor([[0.0, 0.0, 1.0, 1.0]])  # sorted weights -3, -1, 1, 3: (1 + 3) / (4 * 2)
    assert torch.allclose(sparseness(half), torch.tensor([0.5]))
    assert torch.allclose(complexity(half), torch.tensor([math.log(2)]))
    zeros = torch.zeros(1, 10)  # counted as constant / uniform
    assert sparseness(zeros).item() == 0 and complexity(zeros).item() == pytest.approx(math.log(10))


def test_scale_and_sign_invariant():
    a = torch.randn(4, 30, generator=_gen(1))
    for f in (sparseness, complexity):
        assert torch.allclose(f(a), f(-7.5 * a), atol=1e-6)


@pytest.mark.parametrize("shape", [(3, 100), (3, 12, 14), (3, 6, 7, 8), (3, 2, 12, 14)])
def test_any_shape_is_its_values(shape):
    a = torch.randn(shape, generator=_gen(2))
    for f in (sparseness, complexity):
        assert torch.allclose(f(a), f(a.flatten(1)))


@pytest.mark.parametrize(("ndim", "size"), [(1, (64,)), (2, (16, 16)), (3, (8, 8, 8))])
def test_wavelet_maps_are_their_bands_values(ndim, size):
    x = torch.randn(2, 1, *size, generator=_gen(3))
    bands = [b[:, 0] for b in transform.bands(transform.wavedec(x, ndim, "haar", 2, "reflect"))]
    flat = torch.cat([b.flatten(1) for b in bands], dim=1)
    for f in (sparseness, complexity):
        assert torch.allclose(f(bands), f(flat))
        assert torch.allclose(f(transform.tile(bands, ndim, size)), f(flat), atol=1e-6)  # haar: exact tiling


def test_batch_invariance():
    a = torch.randn(16, 24, 24, generator=_gen(4))
    for f in (sparseness, complexity):
        whole = f(a)
        alone = torch.cat([f(a[i : i + 1]) for i in range(16)])
        assert (whole - alone).abs().max() <= 1e-6


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="attribution"):
        sparseness(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="attribution"):
        complexity(torch.ones(5, dtype=torch.long).view(1, 5))
    with pytest.raises(ValueError, match="attribution"):
        complexity(np.ones((2, 4)))
