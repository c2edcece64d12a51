"""ROAD: exact linear imputation (1D / 2D / 3D, one grid or several), equality with pytorch-grad-cam's and
Quantus' noisy linear imputation and with Quantus' ROAD, oracles in both domains, batch invariance, errors."""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pytest
import quantus
import torch
from pytorch_grad_cam.metrics.road import NoisyLinearImputer
from quantus.functions.perturb_func import noisy_linear_imputation

import metrics
from metrics import road as road_module
from metrics.road import impute
from tests import models
from tests.metrics.helpers import OneChannelCNN, Recording, SumModel
from wam import transform


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ramps(shape: tuple[int, ...], channels: int) -> torch.Tensor:
    """``[channels, prod(shape)]``: channel ``c`` is ``c + 1 + sum_k (k + 1 + c) * coord_k / size_k``."""
    coords = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float64) / s for s in shape], indexing="ij"))
    coords = coords.reshape(len(shape), -1)
    return torch.stack([c + 1 + sum((k + 1 + c) * coords[k] for k in range(len(shape))) for c in range(channels)])


def _interior(shape: tuple[int, ...]) -> torch.Tensor:
    inside = torch.ones(shape, dtype=torch.bool)
    for axis, size in enumerate(shape):
        edge = [slice(None)] * len(shape)
        for i in (0, size - 1):
            edge[axis] = i
            inside[tuple(edge)] = False
    return inside.flatten()


def test_doctests():
    assert doctest.testmod(road_module).failed == 0


# --------------------------------------------------------------------------- imputation


@pytest.mark.parametrize("stencil", ["road", "axes"])
@pytest.mark.parametrize("shape", [(11,), (7, 9), (6, 5, 7)])
def test_linear_ramp_is_exact(shape, stencil):
    """Interior points of a linear function removed (a random subset, then all of them): the solved values
    equal the function (both stencils are symmetric, so a linear function solves every equation)."""
    values = _ramps(shape, 2)[None].expand(2, -1, -1)
    interior = _interior(shape)
    removed = torch.stack([interior & (torch.rand(interior.shape, generator=_gen(1)) < 0.6), interior])
    out = impute(values.clone(), removed, [shape], stencil)
    assert removed[0].sum() > 0 and removed[1].sum() == interior.sum()
    torch.testing.assert_close(out, values, atol=1e-12, rtol=0)


def test_bands_are_separate_grids():
    """Several grids (the wavelet domain's bands): each one's ramp is recovered from its own cells only."""
    shapes = [(4, 4), (4, 4), (8, 8)]
    values = torch.cat([(i + 1) * 10 + _ramps(s, 3) for i, s in enumerate(shapes)], dim=1)[None]
    removed = torch.cat([_interior(s) for s in shapes])[None]
    torch.testing.assert_close(impute(values, removed, shapes), values, atol=1e-12, rtol=0)
    # a grid with every cell removed has nothing to impute from: it is set to 0; the others are untouched
    removed = torch.cat([torch.ones(16, dtype=torch.bool), _interior((4, 4)), torch.zeros(64, dtype=torch.bool)])
    out = impute(values, removed[None], shapes)
    assert (out[0, :, :16] == 0).all()
    torch.testing.assert_close(out[0, :, 16:], values[0, :, 16:], atol=1e-12, rtol=0)


def test_rows_solved_together_equal_rows_alone():
    """Rows are factorised together (one block-diagonal system): each row's values are those it gets alone,
    a grid removed whole in one row (set to 0) included."""
    shapes = [(3, 3), (6, 5)]
    values = torch.rand(40, 2, 39, generator=_gen(19), dtype=torch.float64)
    removed = torch.rand(40, 39, generator=_gen(20)) < torch.linspace(0.05, 0.95, 40)[:, None]
    removed[3, :9] = True
    together = impute(values, removed, shapes)
    alone = torch.cat([impute(values[i : i + 1], removed[i : i + 1], shapes) for i in range(40)])
    torch.testing.assert_close(together, alone, atol=1e-13, rtol=0)
    assert (together[3, :, :9] == 0).all() and torch.equal(together[~removed[:, None].expand_as(values)],
                                                          values[~removed[:, None].expand_as(values)])


def test_weighted_mean_of_the_in_grid_neighbours():
    """One removed cell: the mean of its in-grid neighbours (corner cell: 3 of the 8 'road' neighbours)."""
    v = torch.arange(12, dtype=torch.float64).view(1, 1, 12) ** 2  # not linear
    grid = v.view(3, 4)
    removed = torch.zeros(1, 12, dtype=torch.bool)
    removed[0, 5] = True  # (1, 1): 8 neighbours, edges 1/6, corners 1/12
    out = impute(v, removed, [(3, 4)])
    edges = grid[0, 1] + grid[2, 1] + grid[1, 0] + grid[1, 2]
    corners = grid[0, 0] + grid[0, 2] + grid[2, 0] + grid[2, 2]
    assert torch.isclose(out[0, 0, 5], edges / 6 + corners / 12)
    removed[0, 5], removed[0, 0] = False, True  # (0, 0): neighbours (0, 1), (1, 0) weight 2, (1, 1) weight 1
    out = impute(v, removed, [(3, 4)], "road")
    assert torch.isclose(out[0, 0, 0], (2 * grid[0, 1] + 2 * grid[1, 0] + grid[1, 1]) / 5)
    out = impute(v, removed, [(3, 4)], "axes")
    assert torch.isclose(out[0, 0, 0], (grid[0, 1] + grid[1, 0]) / 2)


def test_matches_gradcam_and_quantus_imputation():
    """Identical 2D inputs (3 channels) and masks, noise 0: pytorch-grad-cam's NoisyLinearImputer (float32
    output) and Quantus' noisy_linear_imputation (float64) give our values."""
    h, w = 13, 17
    x = torch.rand(3, 3, h, w, generator=_gen(2), dtype=torch.float64)
    removed = torch.rand(3, h * w, generator=_gen(3)) < torch.tensor([[0.2], [0.6], [0.95]])
    ours = impute(x.flatten(2), removed, [(h, w)]).view(3, 3, h, w)
    for i in range(3):
        kept = (~removed[i]).float().view(h, w)
        gradcam = NoisyLinearImputer(noise=0.0)(x[i].float(), kept)
        torch.testing.assert_close(ours[i].float(), gradcam, atol=1e-6, rtol=0)
        theirs = noisy_linear_imputation(x[i].numpy(), np.flatnonzero(removed[i].numpy()), noise=0.0)
        np.testing.assert_allclose(ours[i].numpy(), theirs, atol=1e-12, rtol=0)


# --------------------------------------------------------------------------- ROAD against Quantus


def test_road_matches_quantus():
    """Quantus' ROAD (noise 0, its default percentages) on one-channel images: the same perturbed inputs (to
    float32 round-off) and the same per-image ``y == argmax f`` at every percentage."""
    model = OneChannelCNN()
    x = torch.rand(3, 1, 12, 12, generator=_gen(4))
    a = torch.rand(3, 1, 12, 12, generator=_gen(5))  # continuous: no ties
    y = model(x).argmax(1).detach()
    ours_model, their_model = Recording(model).eval(), Recording(model).eval()
    ours = metrics.get("road_morf")(ours_model, x, y, a, noise=0.0, score="top1", batch_size=7)
    metric = quantus.ROAD(noise=0.0, disable_warnings=True, display_progressbar=False)
    theirs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(3):  # one image per call: Quantus returns the batch mean per percentage
            out = metric(model=their_model, x_batch=x[i : i + 1].numpy(), y_batch=y[i : i + 1].numpy(),
                         a_batch=a[i : i + 1].numpy(), device="cpu")
            theirs.append([out[p] for p in range(1, 100, 2)])
    assert ours.probs.shape == (3, 50)
    np.testing.assert_array_equal(ours.probs.numpy(), np.asarray(theirs, dtype=np.float32))
    seen_ours = ours_model.seen().view(3, 50, 1, 12, 12)
    seen_theirs = their_model.seen().view(3, 50, 1, 12, 12)
    torch.testing.assert_close(seen_ours, seen_theirs, atol=1e-6, rtol=0)
    assert (seen_ours != x[:, None]).any()


# --------------------------------------------------------------------------- oracles


def _band_attribution(x4: torch.Tensor, levels: int, approx: float) -> list[torch.Tensor]:
    """Per-band attribution: ``approx`` on the approximation band, random in (1, 2) on the details."""
    bands = transform.bands(transform.wavedec(x4, x4.dim() - 2, "haar", levels, "reflect"))
    gen = _gen(6)
    return [torch.full(b[:, :1].shape, approx) if i == 0 else 1 + torch.rand(b[:, :1].shape, generator=gen)
            for i, b in enumerate(bands)]


@pytest.mark.parametrize("order", ["morf", "lerf"])
@pytest.mark.parametrize("domain", ["pixel", "wavelet"])
@pytest.mark.parametrize("spatial", [(64,), (8, 8), (8, 8, 8)])
def test_constant_input_gives_a_flat_curve(spatial, domain, order):
    """A constant input is its own imputation (wavelet domain: the approximation band is constant, the details
    zero, and the attribution keeps the approximation band from being removed whole), so every point of the
    curve is f(x), at any percentage and with any ranking."""
    x = torch.full((2, 2, *spatial), 0.7)
    if domain == "pixel":
        attribution = torch.rand(2, *spatial, generator=_gen(7))
        options = {}
    else:
        levels = 1 if len(spatial) == 3 else 3
        # MoRF removes the top first: the approximation ranked last; LeRF removes the bottom first: ranked first
        attribution = transform.unbands(_band_attribution(x, levels, 0.0 if order == "morf" else 10.0), len(spatial))
        options = {"levels": levels}
    curve = road_module.road_curve(SumModel(), x, 0, attribution, order=order, domain=domain, noise=0.0,
                                   score="logit", **options)
    assert curve.probs.shape == (2, 50)
    torch.testing.assert_close(curve.probs, torch.full((2, 50), 0.7 * x[0].numel()), rtol=1e-6, atol=0)


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_removed_features_are_the_ranked_ones(order):
    """Noise 0: the features that change at percentage p are exactly the floor(N p / 100) ranked first (MoRF)
    or last (LeRF); every channel of a removed position changes."""
    x = torch.rand(2, 3, 10, 10, generator=_gen(8))
    a = torch.rand(2, 10, 10, generator=_gen(9))
    model = Recording(SumModel())
    percentages = [5, 30, 90]
    road_module.road_curve(model, x, 0, a, order=order, percentages=percentages, noise=0.0, score="logit")
    changed = (model.seen().view(2, 3, 3, 100) != x.view(2, 1, 3, 100)).all(2)  # [B, P, N]
    rank = a.flatten(1).argsort(1, descending=True).argsort(1)
    for k, p in enumerate(percentages):
        count = 100 * p // 100
        expected = rank < count if order == "morf" else rank >= 100 - count
        assert torch.equal(changed[:, k], expected)


def test_noise_is_added_to_the_removed_features_only():
    x = torch.rand(1, 2, 32, 32, generator=_gen(10))
    a = torch.rand(1, 32, 32, generator=_gen(11))
    clean, noisy = Recording(SumModel()), Recording(SumModel())
    for model, noise in ((clean, 0.0), (noisy, 0.05)):
        metrics.get("road_morf")(model, x, 0, a, percentages=[50], noise=noise, score="logit", seed=3)
    diff = (noisy.seen() - clean.seen()).view(2, -1)  # [C, N]
    removed = a.flatten().argsort(descending=True).argsort() < 512  # the top half
    assert (diff[:, ~removed] == 0).all()
    assert abs(float(diff[:, removed].std()) - 0.05) < 0.005


def test_road_is_lerf_minus_morf(image_model, image_batch):
    x, y = image_batch
    a = torch.rand(3, 32, 32, generator=_gen(12))
    options = {"percentages": [10, 40, 70], "seed": 5}
    for auc in ("paper", "trapezoid"):
        lerf = metrics.get("road_lerf")(image_model, x, y, a, **options).auc(auc)
        morf = metrics.get("road_morf")(image_model, x, y, a, **options).auc(auc)
        torch.testing.assert_close(metrics.get("road")(image_model, x, y, a, auc=auc, **options), lerf - morf)


# --------------------------------------------------------------------------- batch invariance, shapes


@pytest.mark.parametrize("domain", ["pixel", "wavelet"])
def test_batch_invariance(domain):
    """16 inputs scored together (16 rows per model call) or one at a time (1 row per call): same curves,
    noise included (one noise field per percentage, shared by the inputs)."""
    model = models.TinyImageCNN(n_classes=4, in_channels=1)
    models._seeded(model, 1)
    x = torch.rand(16, 1, 12, 12, generator=_gen(13))
    a = torch.rand(16, 12, 12, generator=_gen(14))
    y = torch.arange(16) % 4
    options = {"domain": domain, "percentages": [3, 25, 60, 97], "levels": 2}
    together = metrics.get("road_lerf")(model, x, y, a, batch_size=16, **options).probs
    alone = torch.cat([metrics.get("road_lerf")(model, x[i : i + 1], y[i : i + 1], a[i : i + 1], batch_size=1,
                                                **options).probs for i in range(16)])
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=0)


def test_audio_and_volume(audio_model, audio_batch, volume_model, volume_batch):
    """Waveforms ``[B, T]`` (wavelet domain) and volumes: percentage 0 scores the input itself, f(x)."""
    wave, y = audio_batch
    morf = metrics.get("road_morf")(audio_model, wave, y, torch.rand(2, wave.shape[1], generator=_gen(15)),
                                    domain="wavelet", percentages=[0, 20, 80], batch_size=4)
    fx = audio_model(wave).softmax(1)[torch.arange(2), y].detach()
    assert morf.probs.shape == (2, 3) and morf.kind == "morf" and morf.domain == "wavelet"
    torch.testing.assert_close(morf.probs[:, 0], fx)
    assert (morf.probs[:, 1:] != fx[:, None]).all()
    vol, y = volume_batch
    lerf = metrics.get("road_lerf")(volume_model, vol, y, torch.rand(2, *vol.shape[2:], generator=_gen(16)),
                                    percentages=[0, 50])
    fx = volume_model(vol).softmax(1)[torch.arange(2), y].detach()
    torch.testing.assert_close(lerf.probs[:, 0], fx)
    assert (lerf.probs[:, 1] != fx).all()


# --------------------------------------------------------------------------- errors and registry


def test_registered():
    names = metrics.available()
    assert {"road", "road_morf", "road_lerf"} <= set(names)


@pytest.mark.parametrize("kwargs, name", [
    ({"percentages": [50, 101]}, "percentages"),
    ({"percentages": []}, "percentages"),
    ({"percentages": 50}, "percentages"),
    ({"noise": -0.1}, "noise"),
    ({"stencil": "hex"}, "stencil"),
    ({"batch_size": 0}, "batch_size"),
    ({"score": "margin"}, "score"),
])
def test_errors_name_the_argument(kwargs, name):
    x = torch.rand(1, 1, 6, 6)
    with pytest.raises(ValueError, match=name):
        metrics.get("road_morf")(SumModel(), x, 0, torch.rand(1, 6, 6), **kwargs)


def test_impute_errors():
    v = torch.rand(1, 1, 6)
    with pytest.raises(ValueError, match="removed"):
        impute(v, torch.zeros(1, 5, dtype=torch.bool), [(6,)])
    with pytest.raises(ValueError, match="values"):
        impute(v, torch.zeros(1, 6, dtype=torch.bool), [(5,)])
    with pytest.raises(ValueError, match="grids"):
        impute(v, torch.zeros(1, 6, dtype=torch.bool), [(2, 3), (0,)])
    with pytest.raises(ValueError, match="order"):
        road_module.road_curve(SumModel(), torch.rand(1, 1, 6), 0, torch.rand(1, 6), order="both")


@pytest.mark.gpu
@pytest.mark.parametrize("domain", ["pixel", "wavelet"])
def test_cuda_matches_cpu(domain):
    """On a GPU (the solves on the CPU, the rest on the device): the CPU's curves, noise 0."""
    x, a = torch.rand(2, 1, 16, 16, generator=_gen(17)), torch.rand(2, 16, 16, generator=_gen(18))
    y = torch.tensor([0, 1])
    options = {"domain": domain, "noise": 0.0, "percentages": [10, 50, 90]}
    cpu = metrics.get("road_lerf")(OneChannelCNN(), x, y, a, **options).probs
    gpu = metrics.get("road_lerf")(OneChannelCNN().cuda(), x.cuda(), y.cuda(), a.cuda(), **options).probs
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=0)


def test_bench_examples_run_and_agree():
    """metrics.bench's examples: ROAD and the stability metrics timed against Quantus, equal results."""
    from metrics import bench

    assert doctest.testmod(bench).failed == 0
    with pytest.raises(ValueError, match="x"):
        bench.compare_road_with_quantus(OneChannelCNN(), torch.rand(1, 3, 8, 8), 0, torch.rand(1, 8, 8))


@pytest.mark.parametrize("shape", [(40,), (24, 20), (10, 12, 9)])
def test_conjugate_gradients_give_the_direct_imputation(shape):
    """solver="cg" and "auto" (the same SPD system, relative residual 1e-10) against the factorisation, both
    stencils, random and contiguous removals, several channels; a linear ramp stays exact."""
    gen = torch.Generator().manual_seed(4)
    n = int(np.prod(shape))
    values = torch.rand(3, 2, n, generator=gen, dtype=torch.float64)
    removed = torch.rand(3, n, generator=gen) < torch.tensor([[0.3], [0.9], [0.0]])
    removed[2, n // 4: 3 * n // 4] = True  # one contiguous hole
    for stencil in ("road", "axes"):
        direct = impute(values, removed, [shape], stencil)
        for solver in ("cg", "auto"):
            torch.testing.assert_close(impute(values, removed, [shape], stencil, solver), direct, atol=1e-8, rtol=0)
    ramp = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float64) for s in shape], indexing="ij")).sum(0)
    ramp = ramp.reshape(1, 1, n)
    inner = torch.zeros(shape, dtype=torch.bool)
    inner[tuple(slice(1, -1) for _ in shape)] = True  # a linear function is reproduced away from the border
    hole = removed[1:2] & inner.reshape(1, n)
    torch.testing.assert_close(impute(ramp, hole, [shape], "axes", solver="cg"), ramp, atol=1e-7, rtol=0)
    with pytest.raises(ValueError, match="solver"):
        impute(values, removed, [shape], solver="lu")
