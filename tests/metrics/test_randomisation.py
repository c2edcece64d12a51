"""Randomisation sanity checks: equal to Quantus 0.6 (MPRT, EfficientMPRT, RandomLogit) with identical
re-initialisation and classes; oracles (a model-blind map stays identical, Saliency of a re-drawn model is
unrelated); Adebayo's Guided Backprop vs Saliency result; seeding, the caller's model and RNG untouched;
1D / 2D / 3D inputs, pixel and wavelet maps; batch invariance; errors."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import quantus
import scipy.stats
import torch
from torch import nn

import baselines
import metrics
from metrics.bench import quantus_layer_order, quantus_other_classes
from metrics.maps import reduce
from metrics.randomisation import (
    default_blocks,
    derive_seed,
    emprt,
    mprt,
    other_classes,
    random_logit,
    randomise,
    randomised_models,
    reinitialise,
)
from tests.metrics.helpers import saliency
from wam import WAM, transform


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def model_blind(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """An "explainer" that ignores the model: the input itself."""
    return x


def _quantus_explain(model, inputs, targets, **_):
    x = torch.as_tensor(inputs)
    return reduce(saliency(model, x, torch.as_tensor(targets).long()), x).numpy()


def _quantus(metric, model, x, y, a_batch=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a_batch,
                      explain_func=_quantus_explain, device="cpu")


@pytest.fixture
def small_batch():
    return torch.rand(4, 3, 16, 16, generator=_gen(0)), torch.tensor([0, 1, 2, 4])


def test_registered():
    for name, fn in (("mprt", mprt), ("emprt", emprt), ("random_logit", random_logit)):
        assert metrics.get(name) is fn
    assert "data_randomisation" in metrics.available()


# -- Quantus 0.6 on identical inputs and identical randomisation -------------------------------------------------


@pytest.mark.parametrize(("order", "quantus_order"), [("cascading", "top_down"), ("independent", "independent")])
def test_mprt_equals_quantus(image_model, small_batch, order, quantus_order):
    """Quantus re-initialises every module with reset_parameters() after torch.manual_seed(seed + 1): the same
    blocks (quantus_layer_order) with one seed each (43) re-draw the same weights."""
    x, y = small_batch
    blocks = quantus_layer_order(image_model, order)
    ours = mprt(image_model, x, y, saliency, blocks=blocks, order=order, seed=[43] * len(blocks))
    theirs = _quantus(quantus.MPRT(layer_order=quantus_order, seed=42, disable_warnings=True), image_model, x, y)
    assert list(theirs) == ["original", *blocks]
    np.testing.assert_allclose(ours.similarity["spearman"].numpy(), np.array(list(theirs.values())),
                               atol=1e-5, rtol=0)


def test_emprt_equals_quantus(image_model, small_batch):
    """Quantus returns the relative rise ``after / before - 1``; given the same entropy as its complexity."""
    x, y = small_batch
    blocks = quantus_layer_order(image_model)
    ours = emprt(image_model, x, y, saliency, blocks=blocks, seed=[43] * len(blocks))
    metric = quantus.EfficientMPRT(complexity_func=lambda a, x, **_: scipy.stats.entropy(np.abs(a).ravel()),
                                   complexity_func_kwargs={"n_bins": 100}, normalise=False, abs=False, seed=42,
                                   layer_order="top_down", disable_warnings=True)
    theirs = np.asarray(_quantus(metric, image_model, x, y), dtype=np.float64)
    np.testing.assert_allclose(ours.double().numpy() - 1, theirs, atol=1e-5, rtol=0)


def test_random_logit_equals_quantus(image_model, small_batch):
    x, y = small_batch
    other = quantus_other_classes(y, 5, seed=42)
    assert not (other == y).any()
    ours = random_logit(image_model, x, y, saliency, other=other)
    metric = quantus.RandomLogit(num_classes=5, seed=42, abs=True, disable_warnings=True,
                                 similarity_func=quantus.similarity_func.correlation_spearman)
    np.testing.assert_allclose(ours["spearman"].numpy(), _quantus(metric, image_model, x, y), atol=1e-5, rtol=0)


# -- Oracles -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("modality", ["audio", "image", "volume"])
def test_model_blind_map_stays_identical(request, modality):
    model = request.getfixturevalue(f"{modality}_model")
    x, y = request.getfixturevalue(f"{modality}_batch")
    for order in ("cascading", "independent"):
        r = mprt(model, x, y, model_blind, order=order)
        assert len(r.randomised) == len(default_blocks(model)) + 1
        for measure in ("spearman", "ssim"):
            assert torch.allclose(r.similarity[measure], torch.ones_like(r.similarity[measure]), atol=1e-5)
    assert torch.allclose(emprt(model, x, y, model_blind), torch.ones(x.shape[0]))
    same = random_logit(model, x, y, model_blind, seed=3)
    assert torch.allclose(same["spearman"], torch.ones(x.shape[0])) and torch.allclose(same["ssim"],
                                                                                          torch.ones(x.shape[0]))


def test_model_blind_wavelet_map_stays_identical(image_model, image_batch):
    x, y = image_batch

    def coefficients(model, x, y):  # ptwt structure [B, C, *band]: summed over channels by the check
        return transform.wavedec(x, 2, "haar", 3, "reflect")

    r = mprt(image_model, x, y, coefficients)
    assert torch.allclose(r.similarity["spearman"], torch.ones(3, 3)) and torch.allclose(r.similarity["ssim"],
                                                                                         torch.ones(3, 3))


def test_saliency_of_a_redrawn_model_is_unrelated(image_model):
    """Spearman of |Saliency| of the model and of the same architecture with every block re-drawn, on random
    inputs: within 0.25 of 0 for every input and 0.12 on average. Measured (32 inputs x 3 input draws x 4 re-draws):
    |rho| <= 0.21, means 0.01 to 0.10 depending on the re-draw (the maps share the input and the zero padding's
    border pattern, hence a small positive bias; a map unrelated to the model would give 1 here)."""
    x, y = torch.rand(16, 3, 32, 32, generator=_gen(1)), torch.arange(16) % 5
    original = reduce(baselines.get("saliency", image_model)(x, y), x)
    for seed in range(3):
        redrawn = reduce(baselines.get("saliency", randomise(image_model, seed=seed))(x, y), x)
        rho = metrics.similarity.spearman(original, redrawn)
        assert rho.abs().max() < 0.25 and abs(float(rho.mean())) < 0.12


def test_guided_backprop_survives_the_cascade_more_than_saliency(image_model):
    """Adebayo et al. (2018): after the full cascade Guided Backprop's maps stay closer to the original than
    Saliency's. Measured here (8 inputs, mean Spearman at the last step): default blocks GB 0.147, Saliency
    0.011; per layer GB 0.208, Saliency 0.094."""
    x, y = torch.rand(8, 3, 32, 32, generator=_gen(0)), torch.arange(8) % 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum: backward hooks on ReLU
        for blocks in (None, ["head", "features.2", "features.0"]):
            last = {name: mprt(image_model, x, y, lambda m, x, y, name=name: baselines.get(name, m)(x, y),
                               blocks=blocks, measures=("spearman",)).similarity["spearman"][-1].mean()
                    for name in ("saliency", "guided_backprop")}
            assert last["guided_backprop"] > last["saliency"] + 0.1


# -- Re-initialisation ---------------------------------------------------------------------------------------------


def test_default_blocks():
    from tests import models

    assert default_blocks(models.image_model()) == ["head", "features"]
    assert default_blocks(models.tiny_audio_model()) == ["classifier.head", "classifier.features"]
    assert default_blocks(nn.Linear(3, 2)) == [""]


def test_reinitialise_uses_each_layers_own_initialiser_seeded():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(7.0)
        model[1].running_mean.fill_(3.0)
    expected = copy.deepcopy(model)
    torch.manual_seed(123)
    for layer in (expected[0], expected[1], expected[4]):
        layer.reset_parameters()
    state = torch.get_rng_state()
    reinitialise(model, 123)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is untouched
    for (name, a), b in zip(model.state_dict().items(), expected.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(model[1].running_mean, torch.zeros(4)) and torch.equal(model[1].weight, torch.ones(4))


def test_the_full_cascade_leaves_no_trained_parameter_of_a_vision_transformer():
    """A timm ViT's class token and position embeddings have no initialiser and sit on the model, outside every
    default block: the full cascade permutes them (same values, other places); every parameter moves. Blocks that
    leave layers out leave them alone."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(img_size=8, patch_size=4, in_chans=1, num_classes=3, embed_dim=8, depth=1, num_heads=2)
    with torch.no_grad():  # "trained": no parameter at its initial value
        for parameter in vit.parameters():
            parameter.add_(torch.randn_like(parameter))
    full = randomise(vit, seed=1)
    for (name, before), after in zip(vit.named_parameters(), full.parameters(), strict=True):
        assert not torch.equal(before, after), name
    for name in ("cls_token", "pos_embed"):
        before, after = getattr(vit, name), getattr(full, name)
        assert torch.equal(before.flatten().sort().values, after.flatten().sort().values), name  # permuted
    head_only = randomise(vit, blocks=["head"], seed=1)
    assert torch.equal(head_only.cls_token, vit.cls_token) and torch.equal(head_only.pos_embed, vit.pos_embed)
    independent = list(copy.deepcopy(m.state_dict()) for m in randomised_models(vit, seed=1, order="independent"))
    assert torch.equal(independent[0]["cls_token"], vit.cls_token)  # only the input-side step takes them
    assert torch.equal(independent[-1]["cls_token"], full.cls_token)


def test_steps_are_seeded_per_block_and_leave_the_caller_alone(image_model):
    original = copy.deepcopy(image_model.state_dict())
    state = torch.get_rng_state()
    cascading = [copy.deepcopy(m.state_dict()) for m in randomised_models(image_model, seed=5)]
    independent = [copy.deepcopy(m.state_dict()) for m in randomised_models(image_model, seed=5, order="independent")]
    assert torch.equal(torch.get_rng_state(), state)
    for k, v in image_model.state_dict().items():
        assert torch.equal(v, original[k])  # never modified
    for step, block in enumerate(["head", "features"]):
        for key in original:
            inside = key.startswith(block + ".")
            assert torch.equal(independent[step][key], original[key]) != inside, key  # only this block moved
            if inside:  # the same seed for block k in both orders
                assert torch.equal(independent[step][key], cascading[step][key])
    full = randomise(image_model, seed=5).state_dict()
    assert all(torch.equal(full[k], cascading[-1][k]) for k in full)
    again, other = randomise(image_model, seed=5).state_dict(), randomise(image_model, seed=6).state_dict()
    assert all(torch.equal(full[k], again[k]) for k in full)
    assert not torch.equal(full["head.weight"], other["head.weight"])
    assert derive_seed(5, 0) != derive_seed(5, 1) != derive_seed(6, 0)


def test_other_classes():
    y = torch.arange(400) % 5
    other = other_classes(y, 5, seed=1)
    assert not (other == y).any() and set(other.tolist()) == set(range(5))
    for c in range(5):
        assert set(other[y == c].tolist()) == set(range(5)) - {c}
    assert torch.equal(other, other_classes(y, 5, seed=1))
    assert not torch.equal(other, other_classes(y, 5, seed=2))
    assert torch.equal(other_classes(y[7:12], 5, seed=1, sample_ids=range(7, 12)), other[7:12])


# -- Shapes, domains and batches -----------------------------------------------------------------------------------


@pytest.mark.parametrize("modality", ["audio", "volume"])
def test_1d_and_3d_inputs(request, modality):
    model = request.getfixturevalue(f"{modality}_model")
    x, y = request.getfixturevalue(f"{modality}_batch")
    r = mprt(model, x, y, saliency, order="independent")
    for measure in ("spearman", "ssim"):
        assert r.similarity[measure].shape == (3, 2)
        assert torch.allclose(r.similarity[measure][0], torch.ones(2), atol=1e-5)
        assert (r.similarity[measure][1:] < 0.999).all()
    assert emprt(model, x, y, saliency).shape == (2,)
    assert random_logit(model, x, y, saliency)["ssim"].shape == (2,)


def test_wavelet_maps(image_model, image_batch):
    x, y = image_batch

    def wam_gradient(model, x, y):
        return WAM(model, ndim=2, method="gradient", levels=3)(x, y).band_maps()

    r = mprt(image_model, x, y, wam_gradient)
    assert torch.allclose(r.similarity["spearman"][0], torch.ones(3), atol=1e-5)
    assert (r.similarity["spearman"][1:] < 0.999).all() and r.similarity["ssim"].shape == (3, 3)
    assert random_logit(image_model, x, y, wam_gradient)["spearman"].shape == (3,)
    assert torch.isfinite(emprt(image_model, x, y, wam_gradient)).all()


def test_batch_invariance(image_model):
    x, y = torch.rand(16, 3, 16, 16, generator=_gen(2)), torch.arange(16) % 5
    whole = mprt(image_model, x, y, saliency, seed=1)
    ratio = emprt(image_model, x, y, saliency, seed=1)
    logit = random_logit(image_model, x, y, saliency, seed=1)
    for i in range(16):
        xi, yi = x[i : i + 1], y[i : i + 1]
        alone = mprt(image_model, xi, yi, saliency, seed=1)
        for m in ("spearman", "ssim"):
            assert (whole.similarity[m][:, i] - alone.similarity[m][:, 0]).abs().max() <= 1e-6
        assert abs(float(ratio[i] - emprt(image_model, xi, yi, saliency, seed=1)[0])) <= 1e-6
        single = random_logit(image_model, xi, yi, saliency, seed=1, sample_ids=[i])
        for m in ("spearman", "ssim"):
            assert abs(float(logit[m][i] - single[m][0])) <= 1e-6


def test_data_randomisation_is_the_similarity_of_two_maps():
    a, b = torch.rand(2, 12, 12, generator=_gen(3)), torch.rand(2, 12, 12, generator=_gen(4))
    out = metrics.get("data_randomisation")(a, b)
    assert torch.equal(out["spearman"], metrics.similarity.spearman(a, b))
    assert torch.allclose(metrics.get("data_randomisation")(a, a)["ssim"], torch.ones(2))


def test_errors_name_the_argument(image_model, small_batch):
    x, y = small_batch
    cases = [
        (dict(blocks=["nope"]), "blocks"),
        (dict(blocks=["pool"]), "blocks"),
        (dict(blocks=["head", "head"]), "blocks"),
        (dict(blocks="head"), "blocks"),
        (dict(seed=[1]), "seed"),
        (dict(seed=-1), "seed"),
        (dict(order="bottom_up"), "order"),
        (dict(measures=("kendall",)), "measures"),
    ]
    for kwargs, name in cases:
        with pytest.raises(ValueError, match=name):
            mprt(image_model, x, y, saliency, **kwargs)
    with pytest.raises(ValueError, match="explain"):
        mprt(image_model, x, y, "saliency")
    with pytest.raises(ValueError, match="explain"):
        mprt(image_model, x, y, lambda m, x, y: x[:, :, :5])
    with pytest.raises(ValueError, match="model"):
        emprt(lambda v: v, x, y, saliency)
    with pytest.raises(ValueError, match="other"):
        random_logit(image_model, x, y, saliency, other=y)
    with pytest.raises(ValueError, match="n_classes"):
        random_logit(image_model, x, y, saliency, n_classes=1)
    with pytest.raises(ValueError, match="sample_ids"):
        random_logit(image_model, x, y, saliency, sample_ids=[0, 1])
    with pytest.raises(ValueError, match="y"):
        random_logit(image_model, x, torch.tensor([0, 1, 2, 9]), saliency)
