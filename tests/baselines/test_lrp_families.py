"""LRP per model family (tiny seeded instances): the default composite's conservation (depthwise convolutions,
EfficientNet blocks with squeeze-and-excitation, EfficientNet-Lite0's architecture), ``canonizer="auto"``'s
choice, exact canonization, conservation when bias-free; AttnLRP (lxt) against lxt's own rules written out, and
lxt's layer norm rule against ours."""

from __future__ import annotations

from functools import partial

import monai
import pytest
import timm
import torch
import torchvision
from timm.models._efficientnet_blocks import InvertedResidual, SqueezeExcite
from torch import nn

import baselines
from baselines.lrp import LRP, auto_canonizer, conservation


def randomize_batch_norms(model: nn.Module, seed: int) -> nn.Module:
    """Seeded running statistics and affine parameters for every batch norm, as training leaves them: once merged
    into the convolution before it, each gives that convolution a bias (the source of the relevance zennit's z+
    gives away)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(0.5 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.5 * torch.randn(n, generator=gen))
    return model.eval()


def bias_driven_depthwise_net() -> nn.Module:
    """1x1 convolution -> ReLU6 -> depthwise 3x3 convolution whose kernels are all negative, with bias 1 -> ReLU6 ->
    1x1 convolution -> pool -> bias-free dense layer: each depthwise output's positive value comes from its bias
    alone (what EfficientNet-Lite0's depthwise convolutions do on most of their positive outputs)."""
    torch.manual_seed(3)
    depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4)
    with torch.no_grad():
        depthwise.weight.copy_(-depthwise.weight.abs())
        depthwise.bias.fill_(1.0)
    return nn.Sequential(nn.Conv2d(2, 4, 1), nn.ReLU6(), depthwise, nn.ReLU6(), nn.Conv2d(4, 6, 1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3, bias=False)).eval()


def test_bias_driven_depthwise_outputs_keep_their_relevance():
    """zennit's z+ gives all of it to the bias (the attribution is exactly 0); ZPlusOrFlat spreads it over the
    receptive field: the relevance sums to the logit (no dense bias). Tolerance: float32 rounding and the 1e-6
    stabiliser of the pool's Norm rule (measured largest error 8.4e-7 on logits 0.014 to 0.30); atol 1e-5."""
    net = bias_driven_depthwise_net()
    x = torch.rand(3, 2, 8, 8, generator=torch.Generator().manual_seed(4))
    y = torch.tensor([0, 1, 2])
    assert torch.equal(baselines.get("lrp", net, composite="epsilon_plus_flat")(x, y), torch.zeros_like(x))
    kept = conservation(net, x, y)
    assert kept["logit"].abs().min() > 0.01
    torch.testing.assert_close(kept["relevance_sum"], kept["logit"], rtol=0, atol=1e-5)


def efficientnet_block_net(seed: int) -> nn.Module:
    """Stem, two timm ``InvertedResidual`` blocks (ReLU6, depthwise 3x3, squeeze-and-excitation; the first with its
    residual sum), head, pool, dense layer; batch norms randomised (:func:`randomize_batch_norms`)."""
    torch.manual_seed(seed)
    se = partial(SqueezeExcite, rd_ratio=0.25)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
                        InvertedResidual(8, 8, exp_ratio=4, se_layer=se, act_layer=nn.ReLU6),
                        InvertedResidual(8, 16, stride=2, exp_ratio=4, se_layer=se, act_layer=nn.ReLU6),
                        nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(32, 5))
    return randomize_batch_norms(net, seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_efficientnet_block_with_squeeze_excitation_conserves_up_to_the_classifier_bias(seed):
    """Known answer of the default composite: ``sum(R) = f_y(x) - b_y``, the dense layer's epsilon rule giving the
    bias ``b_y`` its share ``b_y / f_y(x)`` of ``R = f_y(x)`` and every other rule conserving. Tolerance: measured
    largest error 1.6e-5 over 5 seeds x 4 inputs (logits 0.1 to 1: the Norm rules' 1e-6 stabilisers on the
    residual sum, the gate product and the pool, and float32 rounding); atol 1e-4."""
    net = efficientnet_block_net(seed)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    y = torch.tensor([0, 1, 2, 4])
    kept = conservation(net, x, y)
    torch.testing.assert_close(kept["relevance_sum"], kept["logit"] - net[-1].bias[y].detach(), rtol=0, atol=1e-4)


def test_lite0_depthwise_convolutions_no_longer_lose_relevance():
    """timm's ``tf_efficientnet_lite0`` (the default image model's architecture, random weights, batch norms
    randomised): zennit's ``EpsilonPlusFlat`` keeps below 1 % of the logit (measured 0.12 % and 0.16 %), the default
    keeps ``f_y(x) - b_y`` (measured error 3e-6 relative; rtol 1e-4)."""
    net = randomize_batch_norms(timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=10), 1)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([3, 7])
    reference = conservation(net, x, y, composite="epsilon_plus_flat")
    assert (reference["relevance_sum"] / reference["logit"]).abs().max() < 0.01
    kept = conservation(net, x, y)
    torch.testing.assert_close(kept["relevance_sum"], kept["logit"] - net.classifier.bias[y].detach(), rtol=1e-4,
                               atol=1e-5)


class Logits(nn.Module):
    """monai's ViT classifier returns ``(logits, hidden states)``: its logits alone."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]


def family_case(name: str) -> tuple[nn.Module, torch.Tensor]:
    """(tiny seeded model in eval mode, batch norms randomised, 2 inputs) of one family."""
    torch.manual_seed(0)
    image = (2, 3, 32, 32)
    vit = {"pretrained": False, "img_size": 32, "patch_size": 4, "depth": 2, "num_classes": 5}
    net, shape = {
        "torchvision_resnet18": lambda: (torchvision.models.resnet18(num_classes=5), image),
        "timm_resnet18": lambda: (timm.create_model("resnet18", pretrained=False, num_classes=5), image),
        "monai_resnet18_3d": lambda: (monai.networks.nets.resnet18(
            spatial_dims=3, n_input_channels=1, num_classes=4, widen_factor=0.25, conv1_t_stride=2,
            no_max_pool=True), (2, 1, 16, 16, 16)),
        "timm_efficientnet_b0": lambda: (timm.create_model("efficientnet_b0", pretrained=False, num_classes=5),
                                         image),
        "timm_convnext_atto": lambda: (timm.create_model("convnext_atto", pretrained=False, num_classes=5), image),
        "timm_vit": lambda: (timm.create_model("vit_tiny_patch16_224", **vit), image),
        "timm_deit": lambda: (timm.create_model("deit_tiny_patch16_224", **vit), image),
        "timm_swin": lambda: (timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=32,
                                                window_size=4, embed_dim=24, depths=(2, 2), num_heads=(2, 4),
                                                num_classes=5), image),
        "monai_vit3d": lambda: (Logits(monai.networks.nets.ViT(
            in_channels=1, img_size=14, patch_size=7, hidden_size=48, mlp_dim=96, num_layers=2, num_heads=4,
            classification=True, num_classes=4, spatial_dims=3, post_activation=None)), (2, 1, 14, 14, 14)),
    }[name]()
    return randomize_batch_norms(net, 0), torch.randn(*shape, generator=torch.Generator().manual_seed(1))


FAMILIES = {"torchvision_resnet18": "resnet", "timm_resnet18": "resnet", "monai_resnet18_3d": "resnet",
            "timm_efficientnet_b0": "efficientnet", "timm_convnext_atto": "convnext", "timm_vit": "transformer",
            "timm_deit": "transformer", "timm_swin": "transformer", "monai_vit3d": "transformer"}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_auto_takes_each_familys_canonizer_which_computes_the_same_logits(name):
    """``family`` and ``canonizer_name`` recorded; the canonized model (an input that requires a gradient, so that
    every rewrite happens) computes the logits of the model (measured difference at most 4.3e-6, logits up to 7);
    LRP runs (no layer without a rule) and leaves the model as it was (ConvNeXt's layer scales restored)."""
    net, x = family_case(name)
    y = torch.tensor([1, 3])
    state = {k: v.clone() for k, v in net.state_dict().items()}
    explain = LRP(net)
    assert (explain.family, explain.canonizer_name) == (FAMILIES[name], auto_canonizer(FAMILIES[name]))
    with explain.make_composite(x).context(net) as canonized:
        got = canonized(x.clone().requires_grad_(True)).detach()
    torch.testing.assert_close(got, net(x).detach(), rtol=1e-5, atol=1e-5)
    relevance = explain(x, y)
    assert relevance.shape == x.shape and torch.isfinite(relevance).all() and relevance.abs().sum() > 0
    after = net.state_dict()
    assert state.keys() == after.keys() and all(torch.equal(state[k], after[k]) for k in state)


def zero_constants(net: nn.Module) -> nn.Module:
    """Every bias, class token and position embedding zeroed (a batch norm's running mean too): what absorbs
    relevance besides the rules themselves."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("bias", "cls_token", "pos_embed", "position_embeddings")):
                p.zero_()
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.zero_()
    return net


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_conserves_the_logit_when_bias_free(name):
    """With the epsilon rule (1e-12) and every constant zeroed, the relevance sums to the logit: no relevance leaks
    at any canonized layer (``canonizer="auto"``: transformers with conservative propagation in the attention,
    ``"attnlrp"`` with lxt installed, ``"vit"`` without). Tolerance: measured
    largest relative error 1.6e-5 (timm's ViT, logit 0.018; float32 and the 1e-12 stabilisers: bias-free
    EfficientNet-B0's logits are 3e-5); rtol 1e-4."""
    net, x = family_case(name)
    zero_constants(net)
    y = torch.tensor([1, 3])
    kept = conservation(net, x, y, composite="epsilon", epsilon=1e-12)
    torch.testing.assert_close(kept["relevance_sum"], kept["logit"], rtol=1e-4, atol=0)


TRANSFORMERS = [n for n, family in FAMILIES.items() if family == "transformer"]


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_attnlrp_is_conservative_propagation_with_lxts_layer_norm_rule(name):
    """``canonizer="attnlrp"`` (lxt's configuration for vision transformers) gives the relevance of ``"vit"``
    (conservative propagation written here, the constant-scale layer norm under the Norm rule in place of lxt's
    layer norm rule), default composite, on every transformer family. Tolerance: the stabilisers differ in form
    (zennit adds 1e-6 with the denominator's sign, lxt adds +1e-6); measured largest difference 1.2e-4 of the
    largest relevance (Swin; 8.5e-5 timm's ViT, 9.0e-6 monai's ViT); atol 1e-3 x the largest relevance."""
    pytest.importorskip("lxt")
    net, x = family_case(name)
    y = torch.tensor([1, 3])
    lxt_rules = baselines.get("lrp", net, canonizer="attnlrp")(x, y)
    written_here = baselines.get("lrp", net, canonizer="vit")(x, y)
    torch.testing.assert_close(lxt_rules, written_here, rtol=0, atol=1e-3 * written_here.abs().max().item())


@pytest.mark.parametrize("canonizer", ["attnlrp", "attnlrp_softmax"])
@pytest.mark.parametrize("name", ["timm_vit", "timm_swin", "monai_vit3d"])
def test_attnlrp_conserves_wherever_lxt_rules_are_made_conservative(name, canonizer):
    """lxt's own sanity check (``lxt.explicit.check.conservation_check``) makes each lxt rule give its output's
    relevance evenly to its inputs (over the whole batch: one input per call here); then nothing but the rules
    may lose relevance: on a model with every constant zeroed the relevance sums to the logit. Tolerance: the
    even split sends relevance to neurons of near-zero value, whose epsilon rule then cancels in float32
    (measured largest relative error 2.9 % on monai's ViT, 0.075 % timm's ViT, 0.019 % Swin); rtol 0.1."""
    pytest.importorskip("lxt")
    from lxt.explicit.check import conservation_check

    net, x = family_case(name)
    zero_constants(net)
    y = torch.tensor([1, 3])
    with conservation_check():
        kept = conservation(net, x, y, canonizer=canonizer, batch_size=1)
    torch.testing.assert_close(kept["relevance_sum"], kept["logit"], rtol=0.1, atol=0)


class FirstToken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


def vit_block_net() -> nn.Module:
    """Tokens ``[B, N, 8]`` -> one timm ViT block (layer norm, 2-head attention, residual sums, GELU MLP) -> first
    token -> dense layer."""
    torch.manual_seed(5)
    from timm.models.vision_transformer import Block

    return nn.Sequential(Block(8, num_heads=2, mlp_ratio=2.0, qkv_bias=True), FirstToken(), nn.Linear(8, 3)).eval()


def lxt_reference(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """AttnLRP's relevance of ``x`` for :func:`vit_block_net`, written out with lxt's explicit rules (epsilon 1e-6
    on the dense layers and sums)."""
    import lxt.explicit.functional as lf
    from lxt.explicit.rules import identity

    block, head = net[0], net[2]
    attn, mlp = block.attn, block.mlp
    x = x.clone().requires_grad_(True)
    b, n, c = x.shape
    qkv = lf.linear_epsilon(lf.layer_norm(x, block.norm1.weight, block.norm1.bias, block.norm1.eps), attn.qkv.weight,
                            attn.qkv.bias)
    q, k, v = qkv.reshape(b, n, 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
    weights = lf.softmax(lf.matmul(lf.mul2(q, attn.scale), k.transpose(-2, -1), epsilon=1e-6), -1)
    heads = lf.matmul(weights, v, epsilon=1e-6).transpose(1, 2).reshape(b, n, c)
    x1 = lf.add2(x, lf.linear_epsilon(heads, attn.proj.weight, attn.proj.bias), epsilon=1e-6)
    hidden = lf.linear_epsilon(lf.layer_norm(x1, block.norm2.weight, block.norm2.bias, block.norm2.eps),
                               mlp.fc1.weight, mlp.fc1.bias)
    x2 = lf.add2(x1, lf.linear_epsilon(identity(mlp.act, hidden), mlp.fc2.weight, mlp.fc2.bias), epsilon=1e-6)
    logits = lf.linear_epsilon(x2[:, 0], head.weight, head.bias)
    seed = torch.zeros_like(logits).scatter_(1, y[:, None], logits.gather(1, y[:, None]).detach())
    (relevance,) = torch.autograd.grad(logits, x, seed)
    return relevance


def test_attnlrp_softmax_on_a_timm_block_is_lxts_attnlrp_written_out():
    """``canonizer="attnlrp_softmax"`` on timm's own ``Block`` (fused attention, layer norm and GELU modules) gives the
    relevance of the same block written with lxt's functions. Tolerance: the stabilisers differ in form (zennit
    adds 1e-6 with the denominator's sign, lxt adds +1e-6), measured largest difference 7.8e-6 of the largest
    relevance here (at most 4.5e-5 over the input seeds 7 to 15; seed 6 has a residual sum of 2.6e-6, where the
    two forms part by design); atol 1e-4 x the largest relevance."""
    pytest.importorskip("lxt")
    net = vit_block_net()
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(7))
    y = torch.tensor([0, 2])
    got = baselines.get("lrp", net, composite="epsilon", epsilon=1e-6, canonizer="attnlrp_softmax")(x, y)
    expected = lxt_reference(net, x, y)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4 * expected.abs().max().item())


def test_lxt_layer_norm_rule_is_the_constant_scale_norm_rule():
    """AttnLRP's layer norm rule (lxt, ``"attnlrp"``) and the Norm rule on the layer norm with its scale held
    constant (``"vit"``) are the same rule: identical relevance up to the stabilisers' form (measured 7.4e-6 of the
    largest relevance); atol 1e-4 x the largest relevance."""
    pytest.importorskip("lxt")
    torch.manual_seed(7)
    net = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.Flatten(), nn.Linear(32, 3)).eval()
    x = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(8))
    y = torch.tensor([1, 2])
    lxt_rule = baselines.get("lrp", net, composite="epsilon", epsilon=1e-6, canonizer="attnlrp")(x, y)
    norm_rule = baselines.get("lrp", net, composite="epsilon", epsilon=1e-6, canonizer="vit")(x, y)
    torch.testing.assert_close(lxt_rule, norm_rule, rtol=0, atol=1e-4 * norm_rule.abs().max().item())
