"""The library's explainers on the workflow's registry models (:mod:`workflow.lib.models.zoo`): our CAMs equal
pytorch-grad-cam 1.5.7 on a timm ResNet-18 and on EfficientNet-Lite0 with its ImageNet weights (to 1e-5); LRP
canonizes every registry model exactly and conserves when bias-free; the audio model's logits, WAM and baseline
maps do not depend on the batch.

How pytorch-grad-cam's normalisation and its GradCAM++ ``eps`` are matched: :mod:`tests.baselines.grad_cam_reference`.
On these pretrained-size networks (|g| ~ 1e-3, g^2 ~ eps) :func:`test_gradcampp_differs_by_its_epsilon_only` checks
that its GradCAM++ is our formula with that ``eps``, that the ``eps`` matters, and that ours equals its output where
the gradients are large (head scaled by 1e3). Target layer: it takes the layer you give it; its README uses
``model.layer4[-1]`` for ResNets, which returns the very tensor of our default ``layer4`` (the map the head pools),
so both conventions give one map.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import baselines
from baselines.lrp import architecture, auto_canonizer
from tests.baselines.grad_cam_reference import EPS, gradcampp_with_eps, like_pytorch_grad_cam, run_theirs, upsample
from tests.models import audio_clips, target_logit
from wam import WAM
from workflow.lib.models import zoo as models


@pytest.fixture(scope="module")
def networks():
    """A timm ResNet-18 (seeded, no download) and EfficientNet-Lite0 with its ImageNet weights, 2 inputs each."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    out = {}
    for name in ("timm:resnet18", "efficientnet_lite0"):
        net = models.build(name, 1000, pretrained=name == "efficientnet_lite0")
        x = torch.rand(2, 3, 64, 64, generator=gen)  # 2 x 2 maps at the last layer
        with torch.no_grad():
            out[name] = (net, x, net(x).argmax(1))
    return out


@pytest.mark.parametrize("method", ["gradcam", "layercam"])
@pytest.mark.parametrize("name", ["timm:resnet18", "efficientnet_lite0"])
def test_gradcam_and_layercam_equal_pytorch_grad_cam(networks, name, method):
    net, x, y = networks[name]
    ours = baselines.get(method, net)
    layer = ours.resolve_layer(x)
    assert layer == {"timm:resnet18": "layer4", "efficientnet_lite0": "bn2"}[name]
    raw = ours.cam(*ours.activations_and_gradients(x, y))[:, 0]
    expected = run_theirs(method, net, net.get_submodule(layer), x, y)
    np.testing.assert_allclose(like_pytorch_grad_cam(ours(x, y)[:, 0], raw), expected, rtol=0, atol=1e-5)
    if name == "timm:resnet18":  # its README's ResNet convention, the last block: the same tensor, the same map
        np.testing.assert_array_equal(run_theirs(method, net, net.layer4[-1], x, y), expected)


@pytest.mark.parametrize("name", ["timm:resnet18", "efficientnet_lite0"])
def test_gradcampp_differs_by_its_epsilon_only(networks, name):
    net, x, y = networks[name]
    ours = baselines.get("gradcampp", net)
    layer = net.get_submodule(ours.resolve_layer(x))
    acts, grads = ours.activations_and_gradients(x, y)
    theirs = run_theirs("gradcampp", net, layer, x, y)
    with_eps = gradcampp_with_eps(acts, grads, EPS)
    np.testing.assert_allclose(like_pytorch_grad_cam(upsample(with_eps, x), with_eps), theirs, rtol=0, atol=1e-5)
    raw = ours.cam(acts, grads)[:, 0]
    torch.testing.assert_close(raw, gradcampp_with_eps(acts, grads, 0.0))  # ours: the same formula without eps
    gap = np.abs(like_pytorch_grad_cam(upsample(raw, x), raw) - theirs).max()
    assert gap > 1e-4, "at |g| ~ 1e-3 (g^2 ~ eps) the eps changes the map"
    head = net.get_classifier()
    saved = head.weight.detach().clone()
    with torch.no_grad():
        head.weight.mul_(1e3)  # |g| ~ 1: eps no longer matters
    try:
        raw = ours.cam(*ours.activations_and_gradients(x, y))[:, 0]
        expected = run_theirs("gradcampp", net, layer, x, y)
        np.testing.assert_allclose(like_pytorch_grad_cam(upsample(raw, x), raw), expected, rtol=0, atol=1e-5)
    finally:
        with torch.no_grad():
            head.weight.copy_(saved)


def _registry_case(name: str):
    """(network, input): the 1D (log-mel) classifier, 2D and 3D networks of the model registry."""
    gen = torch.Generator().manual_seed(2)
    if name == "audio_resnet":  # as the explain stage does: the classifier on the log-mel input
        return models.build("audio_resnet", 5).classifier.eval(), torch.randn(2, 1, 32, 24, generator=gen)
    if name in ("efficientnet_lite0", "timm:resnet18", "timm:efficientnet_b0"):  # B0: the paper's, with SE gates
        net = models.build(name, 1000, pretrained=name == "efficientnet_lite0")  # Lite0: its ImageNet weights
        return net, torch.rand(2, 3, 48, 48, generator=gen)
    return models.build(name, 3), torch.rand(2, 1, 28, 28, 28, generator=gen)


REGISTRY = {"audio_resnet": "resnet", "efficientnet_lite0": "efficientnet", "timm:resnet18": "resnet",
            "timm:efficientnet_b0": "efficientnet", "resnet3d": "resnet", "vit3d": "transformer"}


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registry_model_canonizes_exactly_and_conserves_when_bias_free(name):
    """The canonized model (batch norms merged, residual sums, attention products and squeeze-and-excitation
    gates as modules, layer norms with a constant scale) computes the same logits; with every bias (and the ViT's
    class token) zeroed, the epsilon rule conserves the logit: no relevance leaks at any canonized layer (the ViT
    with conservative propagation, ``canonizer="vit"``: AttnLRP's softmax rule does not conserve)."""
    net, x = _registry_case(name)
    y = torch.tensor([1, 2])
    explain = baselines.get("lrp", net)
    assert explain.family == REGISTRY[name] == architecture(net)
    assert explain.canonizer_name == auto_canonizer(REGISTRY[name])
    composite = explain.make_composite(x)
    with composite.context(net) as canonized:  # an input that requires a gradient: the canonizers rewrite
        torch.testing.assert_close(canonized(x.clone().requires_grad_(True)).gather(1, y[:, None])[:, 0].detach(),
                                   target_logit(net, x, y), rtol=1e-5, atol=1e-5)
    relevance = explain(x, y)
    assert relevance.shape == x.shape and torch.isfinite(relevance).all() and relevance.abs().sum() > 0
    with torch.no_grad():
        for pname, p in net.named_parameters():
            if pname.endswith("bias") or pname.endswith("cls_token"):
                p.zero_()
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.zero_()  # a batch norm's shift is a bias too
    canonizer = "vit" if REGISTRY[name] == "transformer" else "auto"
    relevance = baselines.get("lrp", net, composite="epsilon", epsilon=1e-9, canonizer=canonizer)(x, y)
    torch.testing.assert_close(relevance.flatten(1).sum(1), target_logit(net, x, y), rtol=1e-4, atol=1e-4)


def test_audio_model_logits_wam_and_baseline_maps_do_not_depend_on_the_batch():
    torch.manual_seed(0)
    model = models.build("audio_resnet", 3).eval()
    x = audio_clips()
    y = torch.tensor([0, 1, 2])
    with torch.no_grad():
        logits = model(x)
    wam = WAM(model, ndim=1, method="integrated", n_samples=3, batch_size=16)
    maps = wam(x, y).dyadic()
    spectrogram = model.frontend(x)
    saliency = baselines.get("saliency", model.classifier)(spectrogram, y)
    for i in range(len(x)):
        alone = x[i : i + 1]
        with torch.no_grad():
            torch.testing.assert_close(model(alone)[0], logits[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(wam(alone, y[i : i + 1]).dyadic()[0], maps[i], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(baselines.get("saliency", model.classifier)(model.frontend(alone), y[i : i + 1])[0],
                                   saliency[i], atol=1e-5, rtol=1e-4)
