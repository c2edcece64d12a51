"""Known answers for the class activation maps: Grad-CAM and Grad-CAM++.

The oracle model is ``A = conv1x1(x)`` with an identity kernel (so the last feature map is the
input itself, or its stride-2 subsample), then global average pooling over the ``N`` positions
and a linear head ``W``. Then ``d f_c / d A_kij = W_ck / N`` everywhere, and

- Grad-CAM: weights ``mean_ij(W_ck / N) = W_ck / N``, map ``ReLU(sum_k W_ck A_k) / N``;
- Grad-CAM++: ``g_k = W_ck / N`` is constant over positions, so with ``S_k = sum_ij A_kij``,
  ``alpha_k = g_k^2 / (2 g_k^2 + S_k g_k^3) = 1 / (2 + S_k g_k)``,
  ``w_k = sum_ij alpha_k ReLU(g_k) = N ReLU(g_k) / (2 + S_k g_k)``, map ``ReLU(sum_k w_k A_k)``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import baselines

CONV = {2: nn.Conv2d, 3: nn.Conv3d}
MODE = {2: "bilinear", 3: "trilinear"}


class IdentityConvGAP(nn.Module):
    """``x [B, K, *s] -> A = x[..., ::stride] -> mean over positions -> W A + b``."""

    def __init__(self, channels: int, n_classes: int, dims: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = CONV[dims](channels, channels, 1, stride=stride, bias=False)
        self.head = nn.Linear(channels, n_classes)
        gen = torch.Generator().manual_seed(5)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(channels).reshape(self.conv.weight.shape))
            self.head.weight.copy_(torch.rand(n_classes, channels, generator=gen) * 2 - 1)
            self.head.bias.copy_(torch.randn(n_classes, generator=gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).flatten(2).mean(2))


def _case(dims: int, stride: int, positive: bool):
    torch.manual_seed(0)
    channels, size = 4, (6, 8) if dims == 2 else (4, 6, 4)
    model = IdentityConvGAP(channels, 3, dims, stride).eval()
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(2, channels, *size, generator=gen)
    x = 0.1 + x if positive else 2 * x - 1
    y = torch.tensor([2, 0])
    acts = x[(slice(None), slice(None)) + (slice(None, None, stride),) * dims]
    return model, x, y, acts, model.head.weight.detach()[y]  # W_y [B, K]


def _upsample(cam: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if cam.shape[2:] != x.shape[2:]:
        cam = F.interpolate(cam, size=x.shape[2:], mode=MODE[x.dim() - 2], align_corners=False)
    return cam.expand_as(x)


def _expand(w: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    return w.reshape(*w.shape, *[1] * (acts.dim() - 2))


@pytest.mark.parametrize("dims,stride", [(2, 1), (2, 2), (3, 1), (3, 2)])
def test_gradcam_equals_the_analytic_map(dims, stride):
    model, x, y, acts, w = _case(dims, stride, positive=False)
    n = acts[0, 0].numel()
    expected = F.relu((_expand(w, acts) * acts).sum(1, keepdim=True)) / n
    a = baselines.get("gradcam", model, batch_size=1)(x, y)
    torch.testing.assert_close(a, _upsample(expected, x))
    assert (a == 0).any() and (a > 0).any()  # the ReLU acted


@pytest.mark.parametrize("dims,stride", [(2, 1), (2, 2), (3, 1)])
def test_gradcampp_equals_its_closed_form(dims, stride):
    model, x, y, acts, w = _case(dims, stride, positive=True)
    n = acts[0, 0].numel()
    g = w / n  # [B, K], constant over positions
    s = acts.flatten(2).sum(2)  # S_k
    weights = n * F.relu(g) / (2 + s * g)
    expected = F.relu((_expand(weights, acts) * acts).sum(1, keepdim=True))
    a = baselines.get("gradcampp", model)(x, y)
    torch.testing.assert_close(a, _upsample(expected, x))
    assert (a > 0).any()


def test_gradcampp_zero_gradient_gives_zero_map_not_nan():
    model, x, y, _, _ = _case(2, 1, positive=True)
    with torch.no_grad():
        model.head.weight.zero_()
    a = baselines.get("gradcampp", model)(x, y)
    assert torch.equal(a, torch.zeros_like(a))


def test_default_layer_is_the_last_feature_map_and_layer_overrides(image_model, image_batch):
    x, y = image_batch
    explain = baselines.get("gradcam", image_model)
    assert explain.resolve_layer(x) == "features"  # after the last ReLU: the map the head pools
    first = baselines.get("gradcam", image_model, layer="features.0")
    assert first.layer is image_model.features[0]
    assert first(x, y).shape == x.shape
    assert not torch.allclose(first(x, y), explain(x, y))


@pytest.mark.parametrize("layer", ["features.2", "features"])  # a convolution; the default (after ReLU)
def test_gradcam_matches_captum_on_the_tiny_cnn(image_model, image_batch, layer):
    from captum.attr import LayerAttribution, LayerGradCam

    x, y = image_batch
    cam = LayerGradCam(image_model, image_model.get_submodule(layer)).attribute(
        x, target=y, relu_attributions=True
    )
    expected = LayerAttribution.interpolate(cam, x.shape[2:], "bilinear").expand_as(x)
    ours = baselines.get("gradcam", image_model, layer=None if layer == "features" else layer)(x, y)
    torch.testing.assert_close(ours, expected)
