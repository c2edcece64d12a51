"""Layer-wise Relevance Propagation (Bach et al., 2015; Montavon et al., 2019) with zennit 0.5.1.

The relevance ``R = f_y(x)`` of the target logit is propagated from the output to ``x`` by zennit's rules (a
*composite* maps each layer type to a rule) on a *canonized* model (batch norms merged into the layer before
them, residual sums and attention products made modules that a rule splits). The attribution is the input's
relevance ``[B, C, *spatial]`` (signed); its sum is the relevance that reached the input (:func:`conservation`
gives it with the logit ``f_y(x)``).

Composites (``composite=``):

- ``"epsilon_plus_flat_conserving"`` (default): zennit's ``EpsilonPlusFlat`` (Flat on the first layer, epsilon on
  dense layers) with :class:`ZPlusOrFlat` on the other convolutions: z+ with the biases ignored, and Flat for the
  outputs that z+ cannot explain (no positive contribution: their value comes from their bias);
- ``"epsilon_plus_flat"``: zennit's ``EpsilonPlusFlat`` as it is (the reference evaluator's): z+ on
  convolutions, whose denominator includes each positive bias;
- ``"epsilon_gamma_box"``: ZBox on the first convolution, with the input bounds ``low`` / ``high`` (numbers, by
  default each input's own minimum and maximum); gamma on convolutions, epsilon on dense layers;
- ``"epsilon"``: epsilon on every convolution and dense layer (``epsilon=0`` is LRP-0).

Activations and batch norms pass relevance on; average pools, residual sums, canonized layer norms and attention
products split it in proportion to their inputs (zennit's Norm rule); max pools route it to the maximum (their
gradient).

Where the relevance goes (``sum(R) / f_y(x)``). Every rule of ``"epsilon_plus_flat_conserving"`` conserves
except the epsilon rule of the dense layers, which gives each bias ``b_j`` its share ``b_j / z_j``, and the
``1e-6`` stabilisers of the Norm rules: on a network whose last layer is the only dense one,
``sum(R) = f_y(x) - b_y`` (EfficientNet-Lite0 on photographs: ``sum(R) / f_y(x)`` 0.993 to 1.002, the rest being the
classifier's bias; zennit's ``EpsilonPlusFlat`` keeps 0.0003 to 0.0008 there: a merged batch norm's positive bias
takes its share of each z+ denominator, and 70 % of the positive outputs of the last depthwise convolution have
no positive contribution at all, 24 % of its 3x3 kernels having no positive weight). On a transformer every
dense layer and layer norm has a bias, the class token and position embedding are constants, and the attention
rule decides the rest: conservative propagation (``"attnlrp"``, ``"vit"``) conserves, AttnLRP's softmax rule
(``"attnlrp_softmax"``) does not (:mod:`baselines.attnlrp`).

Canonizers (``canonizer=``) per model family; ``"auto"`` (default) takes the family's own
(:func:`architecture`, :func:`auto_canonizer`). What was used is kept on the explainer (``family``,
``canonizer_name``, ``composite``) for provenance.

- ``"resnet"`` (torchvision, timm and monai ResNets): batch norms merged (:class:`MergeBatchNorm`), zennit's
  ``ResNetCanonizer`` blocks for torchvision's, :class:`ResidualSum` (the residual ``+`` through a zennit
  ``Sum``) for timm's and monai's, :class:`ConstantGate` for squeeze-and-excitation (SE-ResNets);
- ``"efficientnet"`` (timm's EfficientNet / MobileNet blocks): batch norms merged, :class:`ResidualSum`,
  :class:`ConstantGate` (EfficientNet-B0's squeeze-and-excitation: the sigmoid gate held constant);
- ``"convnext"`` (timm's ConvNeXt blocks): the layer scale merged into the MLP (:class:`MergeLayerScale`),
  :class:`ResidualSum`, layer norms (``LayerNorm2d`` included) with their scale held constant
  (:class:`ConstantScaleLayerNorm`); the depthwise 7x7 convolutions get the composite's convolution rule;
- transformers (monai ``SABlock``, timm ViT / DeiT ``Attention``, Swin ``WindowAttention``): ``"attnlrp"``
  (:mod:`baselines.attnlrp`: AttnLRP, Achtibat et al., 2024, as lxt configures it for vision transformers:
  lxt's layer norm rule, conservative propagation in the attention; ``"auto"``'s choice when lxt is installed),
  ``"attnlrp_softmax"`` (AttnLRP's softmax and product rules in the attention too) or ``"vit"`` (conservative
  propagation, CP-LRP, Ali et al., 2022, written here: the attention weights and each layer norm's scale held
  constant, :class:`ConstantAttention`, :class:`ConstantScaleLayerNorm`, so that the attention product and the
  layer norm are linear maps of their input that the Norm rule splits; ``"auto"``'s choice without lxt; the
  same relevance as ``"attnlrp"``). All three: :class:`ResidualSum` on the blocks, timm's layer scales Pass,
  ``F.scaled_dot_product_attention`` computed as its steps;
- ``"sequential"`` (anything else): batch norms merged (zennit's ``SequentialMergeBatchNorm``, made exact);
- ``"none"``; or a list of zennit ``Canonizer`` instances (``canonizer_name`` ``"custom"``).

A layer that no rule covers would pass the plain gradient: the first call walks the model's autograd graph and
raises a ``ValueError`` naming every such layer (e.g. every residual block under ``canonizer="none"``).

Example::

    >>> import torch, baselines
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ...                       nn.Linear(4, 5)).eval()
    >>> baselines.get("lrp", model)(torch.rand(2, 3, 16, 16), torch.tensor([0, 4])).shape
    torch.Size([2, 3, 16, 16])
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from zennit.canonizers import AttributeCanonizer, Canonizer, CompositeCanonizer, SequentialMergeBatchNorm
from zennit.composites import EpsilonGammaBox, EpsilonPlusFlat, LayerMapComposite, layer_map_base
from zennit.core import BasicHook, Composite, ParamMod
from zennit.layer import Sum
from zennit.rules import ClampMod, Epsilon, Norm, Pass
from zennit.torchvision import ResNetBasicBlockCanonizer, ResNetBottleneckCanonizer
from zennit.types import BatchNorm, Convolution, Linear

from baselines.base import Baseline
from baselines.registry import register
from wam.utils import as_targets

COMPOSITES = ("epsilon_plus_flat_conserving", "epsilon_plus_flat", "epsilon_gamma_box", "epsilon")
CANONIZERS = ("auto", "resnet", "efficientnet", "convnext", "attnlrp", "attnlrp_softmax", "vit", "sequential", "none")

# Autograd operations outside every ruled layer whose gradient is a correct relevance flow: they move, copy,
# select or route values (a max routes to the maximum; a ReLU's mask only zeroes relevance that the rule above
# already made zero), so relevance passes through them unchanged. Any other one is refused by check_rules.
PASS_THROUGH = frozenset({
    "AccumulateGrad", "AdaptiveMaxPool1DBackward0", "AdaptiveMaxPool2DBackward0", "AdaptiveMaxPool3DBackward0",
    "AliasBackward0", "AmaxBackward0", "AsStridedBackward0", "CatBackward0", "CloneBackward0", "CopyBackwards",
    "ConstantPadNdBackward0", "ExpandBackward0", "IdentityBackward", "IndexBackward0", "MaxBackward0",
    "MaxBackward1", "MaxPool1DWithIndicesBackward0", "MaxPool2DWithIndicesBackward0",
    "MaxPool3DWithIndicesBackward0", "NarrowBackward0", "PermuteBackward0", "ReflectionPad1DBackward0",
    "ReflectionPad2DBackward0", "ReflectionPad3DBackward0", "ReluBackward0", "ReplicationPad1DBackward0",
    "ReplicationPad2DBackward0", "ReplicationPad3DBackward0", "ReshapeAliasBackward0", "RollBackward0",
    "SelectBackward0", "SliceBackward0", "SplitBackward0", "SplitWithSizesBackward0", "SqueezeBackward0",
    "SqueezeBackward1",
    "SqueezeBackward2", "StackBackward0", "TBackward0", "ThresholdBackward0", "ToCopyBackward0",
    "TransposeBackward0", "UnbindBackward0", "UnsafeViewBackward0", "UnsqueezeBackward0", "ViewBackward0",
})
# Adding a constant (a bias or a position embedding outside a layer, not a function of x): relevance passes on.
CONSTANT_ADDS = frozenset({"AddBackward0", "AddBackward1", "SubBackward0", "SubBackward1"})
MAX_LISTED = 8  # layers named in check_rules' error
MAX_SUMS = 3  # residual additions per block (a transformer block has 2, 3 with cross-attention)


def _zplus_or_flat_gradients(grad: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """:class:`ZPlusOrFlat`'s normalised relevance: ``R_j / z_j`` for the z+ passes where ``z_j > 0``, ``R_j / n_j``
    for the Flat pass elsewhere (``outputs``: z+ of the positive inputs, of the negative ones, the Flat count)."""
    positive = outputs[0] + outputs[1]  # >= 0: positive weights on positive inputs, negative on negative ones
    explained = positive > 0
    zplus = torch.where(explained, grad / positive.where(explained, 1.0), 0.0)
    flat = torch.where(explained, 0.0, grad / outputs[2].clamp(min=1.0))
    return [zplus, zplus, flat]


class ZPlusOrFlat(BasicHook):
    """LRP rule for convolutions: z+ with the bias ignored, and Flat for the outputs z+ cannot explain.

    Output ``j`` (relevance ``R_j``) with positive contributions ``z_j = sum_i x_i+ w_ij+ + x_i- w_ij- > 0`` gives
    ``R_i = (x_i+ w_ij+ + x_i- w_ij-) / z_j * R_j`` to its inputs (zennit's ``ZPlus`` with ``zero_params=['bias']``);
    an output with ``z_j = 0``, whose value comes from its bias alone (a depthwise kernel whose weights are all
    negative on a post-ReLU input, or a window of zeros), gives ``R_j / n_j`` to each of the ``n_j`` inputs of its
    receptive field (zennit's ``Flat``). Both parts conserve: ``sum_i R_i = sum_j R_j`` exactly, where zennit's
    ``ZPlus`` gives a positive bias its share ``b_j+ / (z_j + b_j+)`` and loses every ``R_j`` with ``z_j = 0``.

    Example (``Conv1d``, kernel ``[-1, 2, -1]``, bias 5; output 0 sees ``[1, 0, 1]``: ``z = 0``, Flat, a third to
    each input; output 1 sees ``[0, 1, 3]``: ``z = 2 * 1``, all to the middle input)::

        >>> import torch
        >>> from torch import nn
        >>> from zennit.composites import LayerMapComposite
        >>> from zennit.types import Convolution
        >>> conv = nn.Conv1d(1, 1, 3)
        >>> with torch.no_grad():
        ...     _ = conv.weight.copy_(torch.tensor([[[-1.0, 2.0, -1.0]]])), conv.bias.fill_(5.0)
        >>> x = torch.tensor([[[1.0, 0.0, 1.0, 3.0]]], requires_grad=True)
        >>> with LayerMapComposite([(Convolution, ZPlusOrFlat())]).context(conv) as ruled:
        ...     out = ruled(x)
        ...     (relevance,) = torch.autograd.grad(out, x, torch.ones_like(out))
        >>> relevance
        tensor([[[0.3333, 0.3333, 1.3333, 0.0000]]])
    """

    def __init__(self) -> None:
        no_bias = ["bias"]
        super().__init__(
            input_modifiers=[lambda x: x.clamp(min=0), lambda x: x.clamp(max=0), torch.ones_like],
            param_modifiers=[ClampMod(min=0.0, zero_params=no_bias), ClampMod(max=0.0, zero_params=no_bias),
                             ParamMod(lambda p, _: torch.ones_like(p), zero_params=no_bias, require_params=False)],
            output_modifiers=[lambda out: out] * 3,
            gradient_mapper=_zplus_or_flat_gradients,
            reducer=lambda inputs, grads: inputs[0] * grads[0] + inputs[1] * grads[1] + grads[2],
        )


def _resnet_blocks() -> tuple[type, ...]:
    """Residual blocks of torchvision's, timm's and monai's ResNets."""
    from monai.networks.nets import resnet as monai_resnet
    from timm.models import resnet as timm_resnet
    from torchvision.models import resnet as torchvision_resnet

    return (torchvision_resnet.BasicBlock, torchvision_resnet.Bottleneck, timm_resnet.BasicBlock,
            timm_resnet.Bottleneck, monai_resnet.ResNetBlock, monai_resnet.ResNetBottleneck)


def _efficientnet_blocks() -> tuple[type, ...]:
    """timm's EfficientNet / MobileNet blocks (depthwise convolutions, squeeze-and-excitation, residual sum)."""
    from timm.models import _efficientnet_blocks as eff

    return (eff.ConvBnAct, eff.DepthwiseSeparableConv, eff.InvertedResidual, eff.UniversalInvertedResidual,
            eff.EdgeResidual, eff.CondConvResidual)


def _convnext_blocks() -> tuple[type, ...]:
    """timm's ConvNeXt blocks: depthwise 7x7 convolution, layer norm, MLP, layer scale ``gamma``, residual sum."""
    from timm.models.convnext import ConvNeXtBlock

    return (ConvNeXtBlock,)


def _transformer_blocks() -> tuple[type, ...]:
    """Transformer blocks (``x + attention(norm(x))``, ``x + mlp(norm(x))``) of monai, timm's ViT / DeiT and Swin."""
    from monai.networks.blocks.transformerblock import TransformerBlock
    from timm.models.swin_transformer import SwinTransformerBlock
    from timm.models.vision_transformer import Block

    return (TransformerBlock, Block, SwinTransformerBlock)


def attention_blocks() -> tuple[type, ...]:
    """Self-attention of monai (``SABlock``), timm's ViT / DeiT (``Attention``) and Swin (``WindowAttention``)."""
    from monai.networks.blocks.selfattention import SABlock
    from timm.layers.attention import Attention
    from timm.models.swin_transformer import WindowAttention

    return (SABlock, Attention, WindowAttention)


def _gate_blocks() -> tuple[type, ...]:
    """Squeeze-and-excitation blocks (timm: EfficientNet-B0's, SE-ResNets'): ``x * sigmoid(g(x))``."""
    from timm.layers.squeeze_excite import EffectiveSEModule, SEModule
    from timm.models._efficientnet_blocks import SqueezeExcite

    return (SqueezeExcite, SEModule, EffectiveSEModule)


def _residual_blocks() -> tuple[type, ...]:
    """Blocks whose forward adds the block's input (or its downsampled copy) to a branch's output with ``+``
    (torchvision's are rewritten by zennit's own canonizers)."""
    from torchvision.models import resnet as torchvision_resnet

    torchvision = (torchvision_resnet.BasicBlock, torchvision_resnet.Bottleneck)
    blocks = _resnet_blocks() + _efficientnet_blocks() + _convnext_blocks() + _transformer_blocks()
    return tuple(b for b in blocks if b not in torchvision)


def _activations() -> tuple[type, ...]:
    """timm's own element-wise activation modules (ConvNeXt's and ViT's ``GELU``, ...), outside zennit's
    ``Activation`` type: the composites pass relevance on, as for torch's."""
    from timm.layers import activations as timm_act

    return (timm_act.Swish, timm_act.Mish, timm_act.Sigmoid, timm_act.Tanh, timm_act.HardSwish,
            timm_act.HardSigmoid, timm_act.HardMish, timm_act.PReLU, timm_act.GELU, timm_act.GELUTanh,
            timm_act.QuickGELU)


def _layer_scales() -> tuple[type, ...]:
    """timm's layer scale modules (``x * gamma``, a constant per channel): the composites pass relevance on."""
    from timm.layers.layer_scale import LayerScale, LayerScale2d

    return (LayerScale, LayerScale2d)


def _mean_pools() -> tuple[type, ...]:
    """timm's global average pool written as ``x.mean(dims)`` (Swin's channels-last head): the Norm rule."""
    from timm.layers.adaptive_avgmax_pool import FastAdaptiveAvgPool

    return (FastAdaptiveAvgPool,)


# Model families and their blocks, in the order :func:`architecture` tries them (a hybrid with attention is a
# transformer)
FAMILIES: dict[str, Callable[[], tuple[type, ...]]] = {
    "transformer": attention_blocks, "convnext": _convnext_blocks, "efficientnet": _efficientnet_blocks,
    "resnet": _resnet_blocks,
}


class MergeBatchNorm(SequentialMergeBatchNorm):
    """zennit's ``SequentialMergeBatchNorm`` (a batch norm right after a convolution or dense layer is merged
    into it), with two changes: a batch norm with children (timm's ``BatchNormAct2d``: norm + activation) counts
    as one layer, and the merged batch norm computes the identity exactly (zennit's leaves ``x / sqrt(1 + eps)``),
    so that the canonized model computes the same logits."""

    def apply(self, root_module: nn.Module) -> list[Canonizer]:
        instances, last = [], None
        for layer in _layers(root_module):
            if isinstance(last, Linear) and isinstance(layer, BatchNorm):
                instance = self.copy()
                instance.register((last,), layer)
                instances.append(instance)
            last = layer
        return instances

    @staticmethod
    def merge_batch_norm(modules: Sequence[nn.Module], batch_norm: nn.Module) -> None:
        SequentialMergeBatchNorm.merge_batch_norm(modules, batch_norm)
        batch_norm.running_var.data = torch.full_like(batch_norm.running_var.data, 1.0 - batch_norm.eps)


def _layers(module: nn.Module) -> Iterator[nn.Module]:
    """Leaf modules in registration order, a batch norm with children counting as a leaf."""
    children = list(module.children())
    if not children or isinstance(module, BatchNorm):
        yield module
        return
    for child in children:
        yield from _layers(child)


class MergeLayerScale(Canonizer):
    """timm's ConvNeXt blocks: the layer scale (``x * gamma`` per channel after the MLP) merged into the MLP's last
    layer ``fc2`` (weight and bias times ``gamma``; ``gamma`` set to ``None`` meanwhile), as a batch norm is merged:
    the same logits, and no product left that no rule covers.

    Example::

        >>> import timm, torch
        >>> net = timm.create_model("convnext_atto", pretrained=False, num_classes=2).eval()
        >>> x = torch.randn(1, 3, 32, 32)
        >>> instances = MergeLayerScale().apply(net)
        >>> merged = net(x)
        >>> for instance in instances:
        ...     instance.remove()
        >>> len(instances), torch.allclose(merged, net(x), atol=1e-5)
        (12, True)
    """

    def __init__(self) -> None:
        super().__init__()
        self.block: nn.Module | None = None
        self.saved: tuple = ()

    def apply(self, root_module: nn.Module) -> list[Canonizer]:
        instances = []
        for module in root_module.modules():
            if isinstance(module, _convnext_blocks()) and module.gamma is not None:
                instance = self.copy()
                instance.register(module)
                instances.append(instance)
        return instances

    def register(self, block: nn.Module) -> None:
        fc2, gamma = block.mlp.fc2, block.gamma
        self.block, self.saved = block, (gamma, fc2.weight.data, None if fc2.bias is None else fc2.bias.data)
        fc2.weight.data = fc2.weight.data * gamma.data.view(-1, *[1] * (fc2.weight.dim() - 1))
        if fc2.bias is not None:
            fc2.bias.data = fc2.bias.data * gamma.data
        block.gamma = None

    def remove(self) -> None:
        gamma, weight, bias = self.saved
        fc2 = self.block.mlp.fc2
        fc2.weight.data = weight
        if bias is not None:
            fc2.bias.data = bias
        self.block.gamma = gamma


class ConstantProduct(nn.Module):
    """``func(*args)`` where every tensor argument but ``args[index]`` is a constant (attention weights, a gate):
    a linear map of that one, ``forward(v)``; set ``call = (func, args, index)`` before calling."""

    call: tuple | None = None

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        func, args, index = self.call
        return func(*args[:index], v, *args[index + 1:])


KEEP = object()  # a rewriter's answer: run the call as it is
ADDS = (torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__, torch.Tensor.__radd__,
        torch.Tensor.__iadd__)
SOFTMAX = (torch.softmax, torch.Tensor.softmax, F.softmax)
MATMULS = (torch.einsum, torch.matmul, torch.bmm, torch.Tensor.__matmul__, torch.Tensor.matmul, torch.Tensor.bmm)
SIGMOIDS = (torch.sigmoid, torch.Tensor.sigmoid, torch.Tensor.sigmoid_, F.sigmoid, F.hardsigmoid)
MULS = (torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__)


def needs_grad(value: object) -> bool:
    """``value`` is a tensor that depends on the input (requires a gradient)."""
    return isinstance(value, torch.Tensor) and value.requires_grad


class Rewriter:
    """One call of a canonized module's forward: ``self(func, args, kwargs)`` is what a torch call made by that
    forward (or by the modules it calls) returns instead, or :data:`KEEP` to run it unchanged (what this base class
    answers to every call); ``call`` runs one call through it."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, func: Callable, args: tuple, kwargs: dict) -> object:
        return KEEP

    def call(self, func: Callable, *args: object) -> object:
        out = self(func, args, {})
        return func(*args) if out is KEEP else out


class _Rewrite(TorchFunctionMode):
    def __init__(self, rewriter: Rewriter) -> None:
        super().__init__()
        self.rewriter = rewriter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = self.rewriter(func, args, kwargs)
        return func(*args, **kwargs) if out is KEEP else out


def _rewritten_forward(module: nn.Module, rewriter: type[Rewriter], *args, **kwargs):
    """``module``'s own forward with its torch calls rewritten by a fresh ``rewriter(module)`` (the values it
    computes are unchanged)."""
    with _Rewrite(rewriter(module)):
        return type(module).forward(module, *args, **kwargs)


class RewrittenForward(AttributeCanonizer):
    """Every module of the types ``blocks()`` forwards through ``rewriter`` (a :class:`Rewriter`), with the
    attributes ``attributes()`` (rule modules) set on it meanwhile; subclasses set the three."""

    blocks: Callable[[], tuple[type, ...]]
    rewriter: type[Rewriter] = Rewriter

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @staticmethod
    def attributes() -> dict[str, object]:
        return {}

    def _attribute_map(self, name: str, module: nn.Module) -> dict | None:
        if isinstance(module, type(self).blocks()):
            return {"forward": partial(_rewritten_forward, module, self.rewriter), **self.attributes()}
        return None


class _ResidualSums(Rewriter):
    """``a + b`` of two same-shaped tensors that depend on the input -> ``module.canonizer_sums[k](stack([a, b]))``
    for the ``k``-th such addition (zennit ``Sum``; Norm rule)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__(module)
        self.count = 0

    def __call__(self, func: Callable, args: tuple, kwargs: dict) -> object:
        if (func not in ADDS or kwargs or len(args) != 2 or not all(needs_grad(a) for a in args)
                or args[0].shape != args[1].shape):
            return KEEP
        if self.count >= MAX_SUMS:
            raise ValueError(f"canonizer: {type(self.module).__name__} has more than {MAX_SUMS} residual sums")
        summed = self.module.canonizer_sums[self.count](torch.stack(args, dim=-1))
        self.count += 1
        # ``x += y`` arrives as the in-place ``add_``: write into ``x`` (its old value gets no relevance)
        return args[0].copy_(summed) if func is torch.Tensor.add_ else summed


class ResidualSum(RewrittenForward):
    """timm's and monai's residual and transformer blocks (:func:`_residual_blocks`): ``canonizer_sums``
    (zennit ``Sum`` modules) and a forward computing the residual additions with them, as zennit's
    ``ResNetCanonizer`` does for torchvision's blocks (whose forward it rewrites)."""

    blocks = staticmethod(_residual_blocks)
    rewriter = _ResidualSums

    @staticmethod
    def attributes() -> dict[str, object]:
        return {"canonizer_sums": nn.ModuleList(Sum() for _ in range(MAX_SUMS))}


def attention_steps(rewriter: Rewriter, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0, is_causal: bool = False,
                    scale: float | None = None, enable_gqa: bool = False) -> torch.Tensor:
    """``F.scaled_dot_product_attention(q, k, v, ...)`` (``[..., L, E]`` queries, ``[..., S, E]`` keys,
    ``[..., S, Ev]`` values -> ``[..., L, Ev]``) as its steps ``softmax(q * scale @ k^T + mask) @ v``, each one a
    call through ``rewriter`` (so that its rules apply); dropout is not applied (evaluation).

    Example (the base :class:`Rewriter` rewrites nothing: the steps compute the fused attention)::

        >>> import torch
        >>> q, k, v = torch.randn(3, 2, 4, 5, 8).unbind(0)
        >>> torch.allclose(attention_steps(Rewriter(None), q, k, v),
        ...                torch.nn.functional.scaled_dot_product_attention(q, k, v), atol=1e-6)
        True
    """
    if is_causal or enable_gqa:
        raise ValueError("canonizer: scaled_dot_product_attention with is_causal or enable_gqa is not supported")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    logits = rewriter.call(torch.matmul, rewriter.call(torch.mul, q, scale), k.transpose(-2, -1))
    if attn_mask is not None:
        logits = (logits.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool
                  else logits + attn_mask)
    return rewriter.call(torch.matmul, rewriter.call(torch.softmax, logits, -1), v)


class _ConstantGates(Rewriter):
    """``gates`` (softmax attention weights, a sigmoid) held constant (detached); their product (``products``)
    with the values -> ``module.canonizer_product`` (:class:`ConstantProduct`; Norm rule), once per forward;
    ``F.scaled_dot_product_attention`` as its steps (:func:`attention_steps`)."""

    gates: tuple = ()
    products: tuple = ()

    def __init__(self, module: nn.Module) -> None:
        super().__init__(module)
        self.count = 0

    def __call__(self, func: Callable, args: tuple, kwargs: dict) -> object:
        if func in self.gates:
            return func(*args, **kwargs).detach()
        if func is F.scaled_dot_product_attention:
            return attention_steps(self, *args, **kwargs)
        grads = [i for i, a in enumerate(args) if needs_grad(a)]
        if func not in self.products or kwargs or len(grads) != 1:
            return KEEP
        if self.count:
            raise ValueError(f"canonizer: {type(self.module).__name__} has more than one gated product")
        self.count += 1
        self.module.canonizer_product.call = (func, args, grads[0])
        return self.module.canonizer_product(args[grads[0]])


class _SqueezeExcitation(_ConstantGates):
    gates, products = SIGMOIDS, MULS


class _ConstantAttention(_ConstantGates):
    gates, products = SOFTMAX, MATMULS


class ConstantGate(RewrittenForward):
    """Squeeze-and-excitation blocks (:func:`_gate_blocks`): the sigmoid gate held constant, ``x * gate`` through
    ``canonizer_product`` (:class:`ConstantProduct`), to which the Norm rule gives all the relevance (``x``)."""

    blocks = staticmethod(_gate_blocks)
    rewriter = _SqueezeExcitation

    @staticmethod
    def attributes() -> dict[str, object]:
        return {"canonizer_product": ConstantProduct()}


class ConstantAttention(ConstantGate):
    """Self-attention (:func:`attention_blocks`), conservative propagation (CP-LRP; Ali et al., 2022): the
    attention weights ``A`` held constant, ``A @ v`` through ``canonizer_product``, a linear map of ``v`` that
    the Norm rule splits (LRP-0); the query-key path gets no relevance."""

    blocks = staticmethod(attention_blocks)
    rewriter = _ConstantAttention


def layer_norm_arguments(args: tuple, kwargs: dict) -> tuple:
    """``F.layer_norm``'s arguments ``(input, normalized_shape, weight, bias, eps)`` with its defaults."""
    names = ("input", "normalized_shape", "weight", "bias", "eps")
    given = dict(zip(names, args, strict=False)) | kwargs
    return tuple(given.get(n, d) for n, d in zip(names, (None, None, None, None, 1e-5), strict=True))


def _constant_scale_layer_norm(x: torch.Tensor, shape: Sequence[int], weight: torch.Tensor | None,
                               bias: torch.Tensor | None, eps: float) -> torch.Tensor:
    """``F.layer_norm(x, shape, weight, bias, eps)`` with ``1 / sqrt(var + eps)`` held constant: the same values,
    a linear map of ``x``."""
    dims = tuple(range(-len(shape), 0))
    scale = torch.rsqrt(x.var(dims, keepdim=True, unbiased=False) + eps).detach()
    out = (x - x.mean(dims, keepdim=True)) * scale
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


class _ConstantScaleNorm(Rewriter):
    def __call__(self, func: Callable, args: tuple, kwargs: dict) -> object:
        return _constant_scale_layer_norm(*layer_norm_arguments(args, kwargs)) if func is F.layer_norm else KEEP


class _ConstantScaleMeta(type):
    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, nn.LayerNorm) and hasattr(instance, "canonizer_constant_scale")


class ConstantScaleLayerNorm(RewrittenForward):
    """Every ``nn.LayerNorm`` (timm's channels-first ``LayerNorm2d`` included): its ``F.layer_norm`` with the
    scale held constant (:func:`_constant_scale_layer_norm`); such a layer norm is an instance of
    :class:`CanonizedLayerNorm`, which the composites give the Norm rule: AttnLRP's layer norm rule (identity on
    the scale, epsilon on the centring and the affine map; its bias keeps its share)."""

    blocks = staticmethod(lambda: (nn.LayerNorm,))
    rewriter = _ConstantScaleNorm

    @staticmethod
    def attributes() -> dict[str, object]:
        return {"canonizer_constant_scale": True}


class CanonizedLayerNorm(metaclass=_ConstantScaleMeta):
    """``isinstance(m, CanonizedLayerNorm)``: ``m`` is an ``nn.LayerNorm`` canonized by
    :class:`ConstantScaleLayerNorm` (the composites' type test for its rule)."""


def named_canonizers(name: str) -> list[Canonizer]:
    """The canonizers of one of :data:`CANONIZERS` but ``"auto"`` (fresh instances)."""
    if name in ("attnlrp", "attnlrp_softmax"):
        try:
            from baselines import attnlrp
        except ImportError as error:
            raise ValueError(f"canonizer: {name!r} needs lxt 2.1 (pip install --no-deps lxt==2.1): {error}") from error
        return attnlrp.attnlrp_canonizers(softmax=name == "attnlrp_softmax")
    return {
        "resnet": lambda: [CompositeCanonizer((MergeBatchNorm(), ResNetBottleneckCanonizer(),
                                               ResNetBasicBlockCanonizer(), ResidualSum(), ConstantGate()))],
        "efficientnet": lambda: [CompositeCanonizer((MergeBatchNorm(), ResidualSum(), ConstantGate()))],
        "convnext": lambda: [CompositeCanonizer((MergeLayerScale(), ResidualSum(), ConstantScaleLayerNorm()))],
        "vit": lambda: [CompositeCanonizer((MergeBatchNorm(), ResidualSum(), ConstantGate(), ConstantAttention(),
                                            ConstantScaleLayerNorm()))],
        "sequential": lambda: [MergeBatchNorm()],
        "none": list,
    }[name]()


def architecture(model: nn.Module) -> str:
    """The family of ``model``: the first of :data:`FAMILIES` (``"transformer"``, ``"convnext"``,
    ``"efficientnet"``, ``"resnet"``) with a block in it, else ``"sequential"``.

    Example::

        >>> import timm
        >>> from torch import nn
        >>> architecture(timm.create_model("convnext_atto", pretrained=False, num_classes=2))
        'convnext'
        >>> architecture(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))
        'sequential'
    """
    modules = list(model.modules())
    return next((family for family, blocks in FAMILIES.items() if any(isinstance(m, blocks()) for m in modules)),
                "sequential")


def auto_canonizer(family: str) -> str:
    """``canonizer="auto"``'s choice for a model of ``family`` (:func:`architecture`): the family's own set;
    for transformers ``"attnlrp"`` (lxt's AttnLRP configuration for vision transformers) when lxt is installed,
    else ``"vit"`` (the same rules written here).

    Example::

        >>> auto_canonizer("efficientnet"), auto_canonizer("transformer") in ("attnlrp", "vit")
        ('efficientnet', True)
    """
    if family == "transformer":
        return "attnlrp" if importlib.util.find_spec("lxt") is not None else "vit"
    return family


@register("lrp")
class LRP(Baseline):
    """Input relevance of the target logit, ``explain(x [B, C, *spatial], y [B]) -> [B, C, *spatial]`` (signed).

    ``composite``: one of :data:`COMPOSITES` (kept in ``composite``); ``epsilon``: the epsilon rule's stabiliser
    (>= 0; 0 is LRP-0); ``gamma``: the gamma rule's parameter (epsilon_gamma_box); ``low``, ``high``: ZBox's
    input bounds (numbers; ``None``: each input's own minimum and maximum); ``canonizer``: one of
    :data:`CANONIZERS` or zennit canonizers. What was used, for provenance: ``family`` (:func:`architecture`),
    ``canonizer_name`` (``"auto"`` resolved; ``"custom"`` for canonizer instances) and ``composite``. A layer no
    rule covers raises ``ValueError`` naming it (on the first call).
    """

    def __init__(self, model: nn.Module, batch_size: int = 64, *, composite: str = "epsilon_plus_flat_conserving",
                 epsilon: float = 1e-6, gamma: float = 0.25, low: float | None = None, high: float | None = None,
                 canonizer: str | Sequence[Canonizer] = "auto") -> None:
        super().__init__(model, batch_size)
        if composite not in COMPOSITES:
            raise ValueError(f"composite: expected one of {', '.join(COMPOSITES)}, got {composite!r}")
        for name, value in (("epsilon", epsilon), ("gamma", gamma)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"{name}: expected a number >= 0, got {value!r}")
        for name, value in (("low", low), ("high", high)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ValueError(f"{name}: expected a number or None, got {value!r}")
        if low is not None and high is not None and not low < high:
            raise ValueError(f"low, high: expected low < high, got {low} and {high}")
        self.family = architecture(model)
        if isinstance(canonizer, str):
            if canonizer not in CANONIZERS:
                raise ValueError(f"canonizer: expected one of {', '.join(CANONIZERS)} or zennit canonizers, "
                                 f"got {canonizer!r}")
            self.canonizer_name = auto_canonizer(self.family) if canonizer == "auto" else canonizer
            self.canonizers = named_canonizers(self.canonizer_name)
        else:
            if not all(isinstance(c, Canonizer) for c in canonizer):
                raise ValueError(f"canonizer: expected zennit Canonizer instances, got {canonizer!r}")
            self.canonizer_name, self.canonizers = "custom", list(canonizer)
        self.composite, self.epsilon, self.gamma, self.low, self.high = composite, epsilon, gamma, low, high
        self.checked = False

    def attribute(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.per_chunk(self._relevance, x, y)

    def make_composite(self, x: torch.Tensor) -> Composite:
        """The zennit composite (with the canonizers) for inputs ``x`` (ZBox's default bounds depend on them)."""
        stabilizer = self.epsilon if self.composite == "epsilon" else 1e-6  # zennit's default for the others
        canonical = [(CanonizedLayerNorm, Norm(stabilizer=stabilizer)), (ConstantProduct, Norm(stabilizer=stabilizer)),
                     (_mean_pools(), Norm(stabilizer=stabilizer)), (_layer_scales() + _activations(), Pass())]
        if self.composite in ("epsilon_plus_flat", "epsilon_plus_flat_conserving"):
            convolutions = [(Convolution, ZPlusOrFlat())] if self.composite == "epsilon_plus_flat_conserving" else []
            return EpsilonPlusFlat(epsilon=self.epsilon, layer_map=canonical + convolutions, canonizers=self.canonizers)
        if self.composite == "epsilon":
            rules = canonical + layer_map_base(stabilizer) + [(Linear, Epsilon(epsilon=self.epsilon))]
            return LayerMapComposite(rules, canonizers=self.canonizers)
        dims = tuple(range(1, x.dim()))
        low = x.amin(dims, keepdim=True) if self.low is None else torch.full_like(x[:, :1], self.low)
        high = x.amax(dims, keepdim=True) if self.high is None else torch.full_like(x[:, :1], self.high)
        return EpsilonGammaBox(low=low.expand_as(x), high=high.expand_as(x), epsilon=self.epsilon, gamma=self.gamma,
                               layer_map=canonical, canonizers=self.canonizers)

    def _relevance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        composite = self.make_composite(x)
        with composite.context(self.model) as model:
            if not self.checked:
                check_rules(model, composite, x[:1])
                self.checked = True
            inputs = self.leaf(x)
            logits = model(inputs)
            target = logits.gather(1, y[:, None]).detach()
            seed = torch.zeros_like(logits).scatter_(1, y[:, None], target)  # relevance f_y(x) at the output
            (relevance,) = torch.autograd.grad(logits, inputs, grad_outputs=seed)
        return relevance



def conservation(model: nn.Module, x: torch.Tensor, y: int | torch.Tensor, **options) -> dict[str, torch.Tensor]:
    """How much of the target logit LRP's relevance keeps: ``{"relevance_sum": [B], "logit": [B]}``.

    ``relevance_sum`` is the sum of ``baselines.get("lrp", model, **options)(x, y)`` over each input
    ``x [B, C, *spatial]`` and ``logit`` is ``f_y(x) = model(x).gather(1, y)``; their ratio is 1 for a conserving
    rule set (the module's docstring says where the rest goes).

    Example (Flat on the convolution, the Norm rule on the pool, epsilon on the dense layer, whose bias keeps its
    share)::

        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 5)).eval()
        >>> kept = conservation(model, torch.rand(2, 3, 16, 16), torch.tensor([0, 4]))
        >>> torch.allclose(kept["relevance_sum"], kept["logit"] - model[4].bias[[0, 4]], atol=1e-5)
        True
    """
    explain = LRP(model, **options)
    relevance = explain(x, y)
    targets = as_targets(y, x.shape[0], x.device)
    with torch.no_grad():
        logit = model(x).gather(1, targets[:, None])[:, 0]
    return {"relevance_sum": relevance.flatten(1).sum(1), "logit": logit}

def check_rules(model: nn.Module, composite: Composite, x: torch.Tensor) -> None:
    """``ValueError`` naming every layer of ``model`` (canonized, ``composite`` registered) where relevance would
    flow as the plain gradient through an operation no rule covers (not in :data:`PASS_THROUGH`).

    One forward pass of ``x`` records, for each call of a ruled layer, where its input enters the graph (its rule
    replaces everything in between) and, for every operation, the innermost layer that ran it; the graph is then
    walked from the logits to ``x``.
    """
    ruled = _ruled_modules(model, composite)
    stack: list[str] = []
    owner: dict[object, str] = {}
    entry: dict[nn.Module, object] = {}
    spans: dict[object, object] = {}  # a ruled call's output node -> its input's node

    class Owners(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, tuple | list) else (out,):
                if isinstance(t, torch.Tensor) and t.grad_fn is not None and stack:
                    owner.setdefault(t.grad_fn, stack[-1])
            return out

    def enter(name: str, module: nn.Module, args: tuple) -> None:
        stack.append(name)
        if module in ruled and args and isinstance(args[0], torch.Tensor):
            entry[module] = args[0].grad_fn  # after the rule's own pre-hook: where the rule takes over

    def leave(name: str, module: nn.Module, args: tuple, out: object) -> None:
        stack.pop()
        if module in ruled and isinstance(out, torch.Tensor) and out.grad_fn is not None:
            spans[out.grad_fn] = entry.get(module)  # the outermost ruled layer returning it is recorded last

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(partial(enter, name or "<model>")))
        handles.append(module.register_forward_hook(partial(leave, name or "<model>")))
    try:
        with Owners():
            logits = model(x.detach().requires_grad_(True))
    finally:
        for h in handles:
            h.remove()
    unruled: dict[str, set[str]] = {}
    seen, todo = set(), [(logits.grad_fn, "<model>")]
    while todo:
        node, parent = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if node in spans:
            todo.append((spans[node], parent))
            continue
        kind, layer = type(node).__name__, owner.get(node, parent)  # an op's internal nodes: its caller's
        inputs = [f for f, _ in node.next_functions if f is not None]
        if kind not in PASS_THROUGH and not _explicit_rule(node) and not (kind in CONSTANT_ADDS and len(inputs) == 1):
            unruled.setdefault(layer, set()).add(kind)
        todo.extend((f, layer) for f in inputs)
    if unruled:
        order = {name or "<model>": i for i, (name, _) in enumerate(model.named_modules())}
        names = sorted(unruled, key=order.get)
        listed = ", ".join(f"{n!r} ({type(model.get_submodule('' if n == '<model>' else n)).__name__}: "
                           f"{', '.join(sorted(unruled[n]))})" for n in names[:MAX_LISTED])
        more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
        raise ValueError(f"model: zennit has no LRP rule for {len(names)} layer(s), whose relevance would be the "
                         f"plain gradient: {listed}{more}; give canonizer= for them, or explain this model with "
                         "another method")


def _explicit_rule(node: object) -> bool:
    """``node`` is the backward of one of lxt's explicit LRP rules (an autograd ``Function`` whose backward
    computes the relevance of its inputs: :mod:`baselines.attnlrp`)."""
    return getattr(getattr(type(node), "_forward_cls", None), "__module__", "").startswith("lxt.")


def _ruled_modules(model: nn.Module, composite: Composite) -> set[nn.Module]:
    """The modules ``composite`` attaches a rule to (its module map replayed on the canonized model)."""
    ctx: dict = {}
    return {m for name, m in model.named_modules() if composite.module_map(ctx, name, m) is not None}
