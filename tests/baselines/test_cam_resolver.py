"""CAM targets resolved from the model's structure (:mod:`baselines.cam_target`) on every model family, and our
GradCAM, GradCAM++ and LayerCAM on them against pytorch-grad-cam 1.5.7 (:mod:`tests.baselines.grad_cam_reference`
says how its normalisation and its GradCAM++ ``eps`` are matched).

Families: seeded untrained timm ResNet-18, ConvNeXt-atto and EfficientNet-B0 (``output_stride=8``: a 4 x 4 last
map at 32 x 32 rather than 1 x 1), a timm ViT (patch 4 on 32 x 32: 8 x 8 patch tokens after the class token),
the same with 4 register tokens, a global-average-pool ViT with 4 registers and no class token (the
configuration of timm's ``*_reg4_gap_*`` models, without their layer scale, whose ``1e-5`` at initialisation
leaves gradients of ~1e-9 at ``norm1``), a timm Swin (window 4, two stages: 8 x 8 then 4 x 4), and in 3D
monai's ResNet-18 and ViT (patch 7 at 28^3: 4^3 tokens after the class token, wrapped to return the logits only,
like the workflow's).
pytorch-grad-cam is given the same layer and a ``reshape_transform`` written independently of ours: its own
``vit_reshape_transform`` for the plain ViT, ``tokens[:, P:]`` on the grid for the others; its
``swinT_reshape_transform`` expects the ``[B, H * W, C]`` tokens of older timm and fails on timm 1.0's
``[B, H, W, C]`` stage maps, so the Swin gets a ``permute``.
"""

from __future__ import annotations

import doctest
import functools
from collections.abc import Callable
from typing import NamedTuple

import monai
import numpy as np
import pytest
import timm
import torch
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform
from torch import nn
from torch.nn import functional as F

import baselines
import baselines.base
import baselines.cam_target
import metrics
from baselines.base import upsample_cam
from baselines.cam_target import CamTarget, resolve_cam_target
from tests.baselines.grad_cam_reference import (
    EPS,
    gradcampp_with_eps,
    like_pytorch_grad_cam,
    run_theirs,
    theirs_at_the_layer,
    upsample,
)
from wam import WAM, transform

METHODS = ["gradcam", "gradcampp", "layercam"]
Y = torch.tensor([2, 1])  # every method's map is non-constant on every family for these classes (see the zero cases)


class Logits(nn.Module):
    """monai's ``ViT(classification=True)`` returns ``(logits, hidden_states)``: the logits only."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.vit = vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(x)[0]


def patch_tokens(prefix: int, grid: tuple[int, ...]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``[B, prefix + N, D] -> [B, D, *grid]``, written apart from :meth:`CamTarget.reshape`."""
    return lambda t: t[:, prefix:].reshape(t.shape[0], *grid, t.shape[-1]).movedim(-1, 1)


def _timm(name: str, **kw) -> nn.Module:
    return timm.create_model(name, pretrained=False, num_classes=5, **kw)


def _vit(**kw) -> nn.Module:
    return _timm("vit_tiny_patch16_224", img_size=32, patch_size=4, depth=2, **kw)


class Family(NamedTuple):
    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    target: CamTarget  # the expected resolution
    their_reshape: Callable[[torch.Tensor], torch.Tensor] | None


FAMILIES = {
    "resnet": Family(lambda: _timm("resnet18", output_stride=8), (3, 32, 32),
                     CamTarget("layer4", "feature_map", (4, 4)), None),
    "convnext": Family(lambda: _timm("convnext_atto", output_stride=8), (3, 32, 32),
                       CamTarget("stages", "feature_map", (4, 4)), None),  # not its nn.Identity ``norm_pre``
    "efficientnet": Family(lambda: _timm("efficientnet_b0", output_stride=8), (3, 32, 32),
                           CamTarget("bn2", "feature_map", (4, 4)), None),
    "vit": Family(_vit, (3, 32, 32), CamTarget("blocks.1.norm1", "tokens", (8, 8), 1),
                  functools.partial(vit_reshape_transform, height=8, width=8)),
    "vit_registers": Family(lambda: _vit(reg_tokens=4), (3, 32, 32),
                            CamTarget("blocks.1.norm1", "tokens", (8, 8), 5), patch_tokens(5, (8, 8))),
    "vit_gap": Family(lambda: _vit(class_token=False, reg_tokens=4, no_embed_class=True, global_pool="avg"),
                      (3, 32, 32), CamTarget("blocks.1.norm1", "tokens", (8, 8), 4), patch_tokens(4, (8, 8))),
    "swin": Family(lambda: _timm("swin_tiny_patch4_window7_224", img_size=32, window_size=4, embed_dim=16,
                                 depths=(2, 2), num_heads=(1, 2)),
                   (3, 32, 32), CamTarget("layers.1.blocks.1.norm1", "channels_last", (4, 4)),
                   lambda t: t.permute(0, 3, 1, 2)),
    "resnet3d": Family(lambda: monai.networks.nets.resnet18(spatial_dims=3, n_input_channels=1, num_classes=4,
                                                            widen_factor=0.25, conv1_t_stride=2, no_max_pool=True),
                       (1, 28, 28, 28), CamTarget("layer4", "feature_map", (2, 2, 2)), None),
    "vit3d": Family(lambda: Logits(monai.networks.nets.ViT(
        in_channels=1, img_size=28, patch_size=7, hidden_size=96, mlp_dim=192, num_layers=4, num_heads=4,
        classification=True, num_classes=4, spatial_dims=3, post_activation=None)),
        (1, 28, 28, 28), CamTarget("vit.blocks.3.norm1", "tokens", (4, 4, 4), 1), patch_tokens(1, (4, 4, 4))),
}


@functools.cache
def family(name: str) -> tuple[nn.Module, torch.Tensor]:
    """The seeded model (eval mode) and two seeded inputs ``[2, *input_shape]`` in [0, 1]."""
    torch.manual_seed(0)
    net = FAMILIES[name].build().eval()
    return net, torch.rand(2, *FAMILIES[name].input_shape, generator=torch.Generator().manual_seed(1))


def constant(a: torch.Tensor) -> list[bool]:
    flat = a.flatten(1)
    return (flat.amax(1) == flat.amin(1)).tolist()


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_target_is_resolved_from_the_structure_and_recorded(name):
    net, x = family(name)
    expected = FAMILIES[name].target
    assert resolve_cam_target(net, x) == expected
    explain = baselines.get("gradcam", net)
    assert explain.cam_target is None and explain.layer_name is None
    explain(x, Y)
    assert explain.cam_target == expected and explain.layer_name == expected.layer
    assert explain.layer is net.get_submodule(expected.layer)
    assert explain.cam_target.provenance() == {"layer": expected.layer, "kind": expected.kind,
                                               "grid": list(expected.grid), "prefix_tokens": expected.prefix_tokens}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_maps_have_the_input_size_are_not_constant_and_equal_pytorch_grad_cam(name, method):
    """2D: the upsampled map scaled like pytorch-grad-cam's equals its output; 3D (it resizes with a cubic spline,
    we trilinearly): the layer-resolution maps after its first scaling. GradCAM++: ours is the formula without
    ``eps``, its output our formula with its ``eps``."""
    net, x = family(name)
    ours = baselines.get(method, net)
    a = ours(x, Y)
    assert a.shape == x.shape and torch.equal(a, a[:, :1].expand_as(a))
    assert constant(a) == [False, False]
    acts, grads = ours.activations_and_gradients(x, Y)
    raw = ours.cam(acts, grads)[:, 0]
    torch.testing.assert_close(a[:, 0], upsample(raw, x))  # the output is the layer's map, upsampled
    if method == "gradcampp":
        torch.testing.assert_close(raw, gradcampp_with_eps(acts, grads, 0.0))
        raw = gradcampp_with_eps(acts, grads, EPS)
    layer, reshape = net.get_submodule(ours.layer_name), FAMILIES[name].their_reshape
    if x.dim() == 4:
        got, expected = like_pytorch_grad_cam(upsample(raw, x), raw), run_theirs(method, net, layer, x, Y, reshape)
    else:
        got, expected = scale_cam_image(raw.numpy()), theirs_at_the_layer(method, net, layer, x, Y, reshape)
    assert expected.shape == ((2, *raw.shape[1:]) if x.dim() == 5 else (2, *x.shape[2:]))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_swin_windows_are_back_in_place():
    """A Swin block attends within windows of its normalised map and puts them back: changing one 4 x 4 image
    patch (grid cell (1, 6)) changes the first block's output in that patch's 4 x 4 window only (rows 0-3,
    columns 4-7 of the 8 x 8 map), at the window's place in image order, so ``norm1``'s ``[B, H, W, C]`` needs
    only a ``permute`` to be a map."""
    net, x = family("swin")
    x2 = x.clone()
    x2[:, :, 4:8, 24:28] += 1.0
    outs = []
    handle = net.layers[0].blocks[0].register_forward_hook(lambda m, a, out: outs.append(out))
    with torch.no_grad():
        net(torch.cat([x, x2]))
    handle.remove()
    changed = (outs[0][:2] - outs[0][2:]).abs().amax((0, 3)) > 0
    window = torch.zeros(8, 8, dtype=torch.bool)
    window[0:4, 4:8] = True
    assert torch.equal(changed, window)


def test_the_token_grid_follows_the_input_size():
    """A ViT taking any size (timm ``dynamic_img_size``): resolved again when the input's size changes."""
    torch.manual_seed(0)
    net = _vit(dynamic_img_size=True).eval()
    explain = baselines.get("gradcam", net)
    for size, grid in ((32, (8, 8)), (36, (9, 9)), (32, (8, 8))):
        x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(size))
        a = explain(x, Y)
        assert explain.cam_target == CamTarget("blocks.1.norm1", "tokens", grid, 1)
        assert a.shape == x.shape and constant(a) == [False, False]
    raw = explain.cam(*explain.activations_and_gradients(x, Y))[:, 0]
    theirs = run_theirs("gradcam", net, explain.layer, x, Y, patch_tokens(1, grid))
    np.testing.assert_allclose(like_pytorch_grad_cam(a[:, 0], raw), theirs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", ["gradcam", "layercam"])
def test_an_all_zero_map_is_a_negative_weighted_sum_and_is_flagged_degenerate(method):
    """For class 3 the register ViT's maps are all zero on both inputs, for every method, though the gradients
    are not: the weighted sum of the tokens (``sum_k w_k A_k``, GradCAM ``w_k = mean(g_k)``, LayerCAM
    ``w_k = relu(g_k)``) is negative at all 64 positions, and the ReLU leaves nothing: in this untrained ViT the
    patch tokens' normalised vectors are all close to their mean (cosine > 0.8) and so are their gradients
    (cosine > 0.99), so the sign of one position's sum holds at every position. The scoring flags
    such a map as degenerate (``Curve.degenerate``, from ``metrics.perturbation.constant_rows``), and the maps of
    other classes not."""
    net, x = family("vit_registers")
    explain = baselines.get(method, net)
    y = torch.tensor([3, 3])
    a = explain(x, y)
    acts, grads = explain.activations_and_gradients(x, y)
    weights = grads.mean((2, 3), keepdim=True) if method == "gradcam" else grads.clamp(min=0)
    weighted = (weights * acts).sum(1).flatten(1)
    assert (a == 0).all() and (weighted.amax(1) < 0).all() and (grads.flatten(1).abs().amax(1) > 0).all()
    for t, least in ((acts, 0.8), (grads, 0.99)):
        assert F.cosine_similarity(t.flatten(2), t.flatten(2).mean(2, keepdim=True), dim=1).min() > least
    assert baselines.get("gradcampp", net)(x, y).abs().max() == 0
    assert metrics.deletion(net, x, y, a, steps=4).degenerate.tolist() == [True, True]
    assert metrics.deletion(net, x, Y, explain(x, Y), steps=4).degenerate.tolist() == [False, False]


def test_a_one_position_map_is_constant_and_flagged_degenerate():
    """A ResNet-18 at its usual stride 32 on 32 x 32 inputs pools a 1 x 1 map: its CAM is one number spread over
    the image (constant, here non-zero), recorded as ``grid [1, 1]`` and flagged degenerate. Exactly constant:
    torch's bilinear upsampling of a constant map has 1-ulp ripples, which would rank the pixels by rounding
    noise; :func:`baselines.base.upsample_cam` keeps constant maps constant."""
    ripples = F.interpolate(torch.full((1, 1, 1, 1), 0.123456789), size=(32, 32), mode="bilinear")
    assert ripples.unique().numel() > 1
    assert upsample_cam(torch.full((2, 1, 4, 4), 0.123456789), torch.zeros(2, 3, 32, 32)).unique().numel() == 1
    torch.manual_seed(0)
    net = _timm("resnet18").eval()
    x = family("resnet")[1]
    explain = baselines.get("gradcam", net)
    a = explain(x, Y)
    assert explain.cam_target.provenance()["grid"] == [1, 1]
    assert constant(a) == [True, True] and (a > 0).any()
    assert metrics.deletion(net, x, Y, a, steps=4).degenerate.tolist() == [True, True]


def test_given_layer_and_reshape_override_the_resolution():
    net, x = family("vit_registers")
    reshape = patch_tokens(5, (8, 8))
    explain = baselines.get("layercam", net, layer="blocks.0.norm1", reshape=reshape)
    assert explain.cam_target == CamTarget("blocks.0.norm1", "custom", custom=reshape)
    assert explain.cam_target.custom is reshape
    a = explain(x, Y)
    assert explain.layer_name == "blocks.0.norm1" and a.shape == x.shape
    raw = explain.cam(*explain.activations_and_gradients(x, Y))[:, 0]
    theirs = run_theirs("layercam", net, net.blocks[0].norm1, x, Y, reshape)
    np.testing.assert_allclose(like_pytorch_grad_cam(a[:, 0], raw), theirs, rtol=0, atol=1e-5)


def test_bad_targets_raise_value_errors_naming_the_argument():
    net, x = family("vit")
    with pytest.raises(ValueError, match="^reshape: "):
        baselines.get("gradcam", net, reshape=lambda t: t)
    with pytest.raises(ValueError, match="^kind: "):
        CamTarget("blocks.1.norm1", "patches")
    with pytest.raises(ValueError, match="^custom: "):
        CamTarget("blocks.1.norm1", "custom")
    with pytest.raises(ValueError, match="^x: .*resolved"):
        FAMILIES["vit"].target.reshape(torch.zeros(2, 1 + 81, 192))  # a 9 x 9 grid's tokens
    from timm.models.vision_transformer import ResPostBlock

    torch.manual_seed(0)
    post_norm = _vit(block_fn=ResPostBlock).eval()  # x + norm1(attn(x)): norm1 after the attention
    with pytest.raises(ValueError, match="^layer: .*post-norm"):
        resolve_cam_target(post_norm, x)


@pytest.mark.parametrize("name,size,levels", [("vit", 32, 3), ("swin", 32, 3), ("vit_dynamic", 36, 2),
                                              ("vit_dynamic", 36, 3)])
def test_wam_on_transformers_needs_no_patch_aligned_levels(name, size, levels):
    """WAM differentiates through the inverse transform, so wavelet levels need not match the patch (4): 3 levels
    at 32 (8-pixel coarsest support), a 36 x 36 input (9 x 9 patches) at 2 and 3 levels (36 -> 18 -> 9 -> 5: an
    odd band, padded). Maps of the input's size, finite and non-zero; where the Haar transform is orthonormal
    (even sizes at every level: 32/3, 36/2) the coefficient gradient is the transform of the pixel gradient."""
    if name == "vit_dynamic":
        torch.manual_seed(0)
        net = _vit(dynamic_img_size=True).eval()
    else:
        net = family(name)[0]
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(size))
    expl = WAM(net, ndim=2, levels=levels, method="gradient")(x, Y)
    heat = expl.heatmap()
    assert heat.shape == (2, size, size) and expl.dyadic().shape == (2, size, size)
    assert torch.isfinite(heat).all() and (heat.flatten(1).amax(1) > 0).all()
    if (size >> levels) << levels == size:
        xg = x.clone().requires_grad_(True)
        (pixel,) = torch.autograd.grad(net(xg).gather(1, Y[:, None]).sum(), xg)
        expected = transform.bands(transform.wavedec(pixel, 2, "haar", levels, "reflect"))
        for got, want in zip(transform.bands(expl.grads), expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("module", [baselines.cam_target, baselines.base])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
