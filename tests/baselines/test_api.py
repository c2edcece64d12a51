"""Registry, shapes on every modality, batch-size invariance and bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import baselines
from tests.models import ConstantModel, linear_model

METHODS = ["gradcam", "gradcampp", "guided_backprop", "integrated_gradients", "layercam", "lrp", "saliency",
           "smoothgrad"]
FAST = {"integrated_gradients": {"n_steps": 8}, "smoothgrad": {"n_samples": 4}}


def test_available_lists_every_method_sorted():
    assert baselines.available() == METHODS


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("modality", ["image", "volume", "audio"])
def test_every_method_gives_a_finite_map_of_x_shape(name, modality, request):
    model = request.getfixturevalue(f"{modality}_model")
    x, y = request.getfixturevalue(f"{modality}_batch")
    if modality == "audio":  # as in the paper: explain the classifier on the log-mel input
        with torch.no_grad():
            x = model.frontend(x)
        model = model.classifier
        assert x.shape[:2] == (2, 1)
    a = baselines.get(name, model, batch_size=2, **FAST.get(name, {}))(x, y)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.isfinite(a).all() and not a.requires_grad
    assert a.abs().sum() > 0
    if baselines.is_cam(name):
        assert (a >= 0).all() and torch.equal(a, a[:, :1].expand_as(a))  # repeated over channels
    if name == "saliency":
        assert (a >= 0).all()


@pytest.mark.parametrize("name", METHODS)
def test_output_does_not_depend_on_batch_size(name, image_model, image_batch):
    x, y = image_batch
    kw = FAST.get(name, {})
    ref = baselines.get(name, image_model, batch_size=64, **kw)(x, y)
    for batch_size in (1, 2):
        got = baselines.get(name, image_model, batch_size=batch_size, **kw)(x, y)
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-6)


def test_int_target_and_no_grad_context(image_model, image_batch):
    x, _ = image_batch
    explain = baselines.get("saliency", image_model)
    with torch.no_grad():
        a = explain(x, 1)
    torch.testing.assert_close(a, explain(x, torch.tensor([1, 1, 1])))


def test_empty_batch_gives_an_empty_map(image_model):
    x = torch.zeros(0, 3, 32, 32)
    assert baselines.get("gradcam", image_model)(x, torch.zeros(0, dtype=torch.long)).shape == x.shape


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(ValueError, match="available: gradcam, gradcampp, .*smoothgrad"):
        baselines.get("lime", nn.Linear(2, 2))


@pytest.mark.parametrize("name", ["gradcam", "gradcampp", "layercam"])
def test_cam_on_a_model_without_feature_map_names_the_layer_option(name):
    with pytest.raises(ValueError, match="layer="):
        baselines.get(name, linear_model((1, 4, 4)))(torch.rand(2, 1, 4, 4), [0, 1])
    with pytest.raises(ValueError, match="layer: .*'nope'"):
        baselines.get(name, linear_model((1, 4, 4)), layer="nope")


@pytest.mark.parametrize(
    "x,y,match",
    [
        (torch.zeros(2, 1, 4, 4, dtype=torch.long), [0, 1], "x: .*floating"),
        (torch.full((2, 1, 4, 4), float("nan")), [0, 1], "x: .*NaN"),
        (torch.zeros(2, 16), [0, 1], r"x: expected \[B, C, \*spatial\]"),
        ([[0.0]], [0, 1], "x: expected a torch.Tensor"),
        (torch.zeros(2, 1, 4, 4), [0, 1, 2], "y: expected 2"),
        (torch.zeros(2, 1, 4, 4), [0, 7], "y: class index 7 out of range"),
    ],
)
@pytest.mark.parametrize("name", ["saliency", "integrated_gradients", "guided_backprop"])
def test_bad_input_names_the_argument(name, x, y, match):
    explain = baselines.get(name, linear_model((1, 4, 4)), **FAST.get(name, {}))
    with pytest.raises(ValueError, match=match):
        explain(x, y)


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("saliency", {"batch_size": 0}, "batch_size"),
        ("integrated_gradients", {"n_steps": 1}, "n_steps"),
        ("smoothgrad", {"n_samples": 0}, "n_samples"),
        ("smoothgrad", {"noise": -1.0}, "noise"),
    ],
)
def test_bad_options_name_the_argument(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        baselines.get(name, linear_model((1, 4, 4)), **kwargs)


def test_constant_model_gives_zero_not_nan():
    x = torch.rand(2, 1, 4, 4)
    for name in ("saliency", "integrated_gradients", "smoothgrad", "guided_backprop"):
        a = baselines.get(name, ConstantModel(), **FAST.get(name, {}))(x, [0, 2])
        assert torch.equal(a, torch.zeros_like(a)), name
