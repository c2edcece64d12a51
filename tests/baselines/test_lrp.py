"""LRP (zennit 0.5.1) known answers: conservation, LRP-0 = Input x Gradient, a layer without a rule named in the
error, options. Exact canonizers on every registry model: ``tests/workflow/lib/test_zoo_explained.py``."""

from __future__ import annotations

import pytest
import timm
import torch
from captum.attr import InputXGradient
from torch import nn

import baselines
from baselines.lrp import LRP
from tests.models import target_logit

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
POOL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


def bias_free_relu_net(dims: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(CONV[dims](2, 6, 3, bias=False), nn.ReLU(), CONV[dims](6, 8, 3, padding=1, bias=False),
                         nn.ReLU(), POOL[dims](1), nn.Flatten(), nn.Linear(8, 4, bias=False)).eval()


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_epsilon_rule_conserves_the_target_logit_on_a_bias_free_relu_net(dims):
    model = bias_free_relu_net(dims)
    gen = torch.Generator().manual_seed(dims)
    x = torch.rand(3, 2, *[9] * dims, generator=gen) - 0.3
    y = torch.tensor([0, 3, 1])
    relevance = baselines.get("lrp", model, composite="epsilon", epsilon=1e-9)(x, y)
    assert relevance.shape == x.shape
    torch.testing.assert_close(relevance.flatten(1).sum(1), target_logit(model, x, y), rtol=0, atol=1e-4)


def test_lrp0_equals_input_times_gradient_on_a_bias_free_linear_model():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.Flatten(), nn.Linear(4 * 6 * 6, 5, bias=False)).eval()
    x = torch.randn(4, 3, 8, 8)
    y = torch.tensor([0, 1, 4, 2])
    expected = InputXGradient(model).attribute(x.clone().requires_grad_(True), target=y).detach()
    got = baselines.get("lrp", model, composite="epsilon", epsilon=0.0)(x, y)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_the_model_is_left_as_it_was(image_model, image_batch):
    x, y = image_batch
    state = {k: v.clone() for k, v in image_model.state_dict().items()}
    baselines.get("lrp", image_model)(x, y)
    after = image_model.state_dict()
    assert state.keys() == after.keys() and all(torch.equal(state[k], after[k]) for k in state)
    assert all(p.requires_grad for p in image_model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in image_model.modules())


def test_a_layer_without_a_rule_is_named_not_passed_as_the_gradient():
    torch.manual_seed(0)
    net = timm.create_model("resnet18", pretrained=False, num_classes=10).eval()
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"'layer1\.0' \(BasicBlock: AddBackward0\).*canonizer="):
        baselines.get("lrp", net, canonizer="none")(x, [0])
    norm_net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.LayerNorm(8), nn.Linear(8, 3)).eval()
    with pytest.raises(ValueError, match=r"'2' \(LayerNorm: NativeLayerNormBackward0\)"):
        baselines.get("lrp", norm_net)(torch.rand(2, 1, 4, 4), [0, 1])
    a = baselines.get("lrp", norm_net, canonizer="vit")(torch.rand(2, 1, 4, 4), [0, 1])  # override: constant scale
    assert torch.isfinite(a).all()


@pytest.mark.parametrize("composite", ["epsilon_plus_flat_conserving", "epsilon_plus_flat", "epsilon_gamma_box",
                                       "epsilon"])
def test_output_does_not_depend_on_batch_size_or_the_rest_of_the_batch(composite, image_model, image_batch):
    x, y = image_batch
    ref = baselines.get("lrp", image_model, composite=composite)(x, y)
    torch.testing.assert_close(baselines.get("lrp", image_model, composite=composite, batch_size=1)(x, y), ref,
                               rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(baselines.get("lrp", image_model, composite=composite)(x[1:2], y[1:2]), ref[1:2],
                               rtol=1e-4, atol=1e-7)


def test_epsilon_gamma_box_bounds_from_the_input_or_the_options(image_model, image_batch):
    x, y = image_batch  # in [0, 1]: its own bounds are about (0, 1)
    own = baselines.get("lrp", image_model, composite="epsilon_gamma_box")(x, y)
    given = baselines.get("lrp", image_model, composite="epsilon_gamma_box", low=0.0, high=1.0)(x, y)
    wider = baselines.get("lrp", image_model, composite="epsilon_gamma_box", low=-5.0, high=5.0)(x, y)
    assert torch.isfinite(own).all() and not torch.allclose(own, wider)
    torch.testing.assert_close(own, given, rtol=0.05, atol=1e-3)


@pytest.mark.parametrize("kwargs,match", [
    ({"composite": "alpha_beta"}, "composite: expected one of epsilon_plus_flat_conserving, epsilon_plus_flat"),
    ({"epsilon": -1.0}, "epsilon: expected a number >= 0"),
    ({"canonizer": "densenet"}, "canonizer: expected one of auto"),
    ({"canonizer": ["merge"]}, "canonizer: expected zennit Canonizer"),
    ({"low": 1.0, "high": 0.0}, "low, high: expected low < high"),
])
def test_bad_options_name_the_argument(kwargs, match, image_model):
    with pytest.raises(ValueError, match=match):
        LRP(image_model, **kwargs)

