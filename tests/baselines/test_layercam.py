"""LayerCAM, and our CAMs against pytorch-grad-cam 1.5.7 (LayerCAM, GradCAM, GradCAMPlusPlus) on a timm
ResNet-18 and on EfficientNet-Lite0 (the registry's, with its ImageNet weights), to 1e-5.

How its normalisation and its GradCAM++ ``eps`` are matched: :mod:`tests.baselines.grad_cam_reference`. On these
pretrained-size networks (|g| ~ 1e-3, g^2 ~ eps) :func:`test_gradcampp_differs_by_its_epsilon_only` checks that
its GradCAM++ is our formula with that ``eps``, that the ``eps`` matters, and that ours equals its output where
the gradients are large (head scaled by 1e3). Target layer: it takes the layer you give it; its README uses
``model.layer4[-1]`` for ResNets, which returns the very tensor of our default ``layer4`` (the map the head pools),
so both conventions give one map. Token models (ViT, Swin, 3D ViT): ``tests/baselines/test_cam_resolver.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import baselines
from tests.baselines.grad_cam_reference import EPS, gradcampp_with_eps, like_pytorch_grad_cam, run_theirs, upsample
from workflow.scripts import models

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


class ConvGAP(nn.Module):
    """``x -> A = conv(x) -> mean over positions -> W A``: ``d f_c / d A_k = W_ck / N`` at every position."""

    def __init__(self, dims: int, positive_head: bool) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(dims)
        self.conv = CONV[dims](2, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=gen))
            head = torch.rand(3, 4, generator=gen) + 0.1
            self.head.weight.copy_(head if positive_head else head - 0.6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).flatten(2).mean(2))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_layercam_equals_gradcam_when_the_gradients_are_constant_and_positive(dims):
    """Positive head weights: ``g_k = W_yk / N > 0`` at every position, so LayerCAM's ``ReLU(g_k)`` is Grad-CAM's
    ``mean_s(g_k)``; with mixed signs the two differ (LayerCAM drops the negative channels)."""
    x = torch.randn(2, 2, *[6] * dims, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 2])
    model = ConvGAP(dims, positive_head=True).eval()
    layercam = baselines.get("layercam", model, layer="conv")(x, y)
    torch.testing.assert_close(layercam, baselines.get("gradcam", model, layer="conv")(x, y), rtol=1e-5, atol=1e-7)
    assert (layercam > 0).any() and (layercam == 0).any()
    mixed = ConvGAP(dims, positive_head=False).eval()
    assert not torch.allclose(baselines.get("layercam", mixed, layer="conv")(x, y),
                              baselines.get("gradcam", mixed, layer="conv")(x, y))


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
