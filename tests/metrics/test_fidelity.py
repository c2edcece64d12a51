"""mu-Fidelity: oracles (f = sum(x)), 1D / 3D, batch invariance, errors."""

from __future__ import annotations

import pytest
import torch

import metrics
from metrics.fidelity import cell_index, spearman
from tests.metrics.helpers import SumModel


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_sum_model_perfect_correlation():
    x = torch.rand(3, 1, 20, 20, generator=_gen(0))
    model = SumModel()
    assert torch.allclose(metrics.mu_fidelity(model, x, 0, x, score="logit"), torch.ones(3))
    assert torch.allclose(metrics.mu_fidelity(model, x, 0, -x, score="logit"), -torch.ones(3))


def test_sum_model_channels_and_cells():
    """Several channels (attribution summed over C) and cells bigger than one position."""
    x = torch.rand(2, 3, 56, 40, generator=_gen(1))
    rho = metrics.mu_fidelity(SumModel(), x, 0, x, grid=8, samples=64, score="logit")
    assert torch.allclose(rho, torch.ones(2))


def test_sum_model_1d_and_3d():
    wave = torch.rand(2, 300, generator=_gen(2))
    assert torch.allclose(metrics.mu_fidelity(SumModel(), wave, 0, wave, score="logit", samples=40),
                          torch.ones(2))
    vol = torch.rand(2, 1, 9, 30, 10, generator=_gen(3))
    assert torch.allclose(metrics.mu_fidelity(SumModel(), vol, 0, vol, grid=6, samples=40, score="logit"),
                          torch.ones(2))


def test_cell_index():
    cell, n = cell_index((4, 6), 3, torch.device("cpu"))
    assert n == 9
    assert cell.view(4, 6)[0].tolist() == [0, 0, 1, 1, 2, 2]
    assert cell.view(4, 6)[:, 0].tolist() == [0, 0, 3, 6]
    cell, n = cell_index((5,), 28, torch.device("cpu"))
    assert n == 5 and cell.tolist() == [0, 1, 2, 3, 4]


def test_spearman_ties_and_constant():
    a = torch.tensor([[1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]])
    b = torch.tensor([[10.0, 20.0, 20.0, 30.0], [5.0, 5.0, 5.0, 5.0]])
    rho = spearman(a, b)
    assert torch.allclose(rho, torch.tensor([1.0, 0.0]))


def test_image_model_batch_invariance_and_seed(image_model, image_batch, audio_model, audio_batch):
    x, y = image_batch
    a = torch.rand(3, 32, 32, generator=_gen(4))
    r1 = metrics.mu_fidelity(image_model, x, y, a, samples=16, batch_size=5)
    r2 = metrics.mu_fidelity(image_model, x, y, a, samples=16, batch_size=64)
    assert r1.shape == (3,) and (r1.abs() <= 1).all()
    assert torch.allclose(r1, r2, atol=1e-6)
    r3 = metrics.mu_fidelity(image_model, x, y, a, samples=16, seed=1)
    assert not torch.allclose(r1, r3)
    wave, yw = audio_batch
    ra = metrics.mu_fidelity(audio_model.classifier, wave, yw, torch.rand(wave.shape), samples=16,
                             preprocess=audio_model.frontend)
    rb = metrics.mu_fidelity(audio_model, wave, yw, torch.rand(wave.shape, generator=_gen(0)), samples=16)
    assert ra.shape == rb.shape == (2,)


def test_bad_inputs(image_model, image_batch):
    x, y = image_batch
    a = torch.rand(3, 32, 32)
    with pytest.raises(ValueError, match="attribution"):
        metrics.mu_fidelity(image_model, x, y, torch.rand(3, 16, 16))
    nan = a.clone()
    nan[1, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="attribution"):
        metrics.mu_fidelity(image_model, x, y, nan)
    with pytest.raises(ValueError, match="subset"):
        metrics.mu_fidelity(image_model, x, y, a, subset=1.5)
    with pytest.raises(ValueError, match="samples"):
        metrics.mu_fidelity(image_model, x, y, a, samples=1)
    with pytest.raises(ValueError, match="grid"):
        metrics.mu_fidelity(image_model, x, y, a, grid=0)
    with pytest.raises(ValueError, match="score"):
        metrics.mu_fidelity(image_model, x, y, a, score="p")
