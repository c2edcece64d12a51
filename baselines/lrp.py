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
dense layer has a bias, and the attention rules decide the rest (see the canonizers).

Canonizers (``canonizer=``), ``"auto"`` (default) choosing from the architecture:

- ``"resnet"`` (models with residual blocks: torchvision, timm ResNet and EfficientNet, monai ResNet): batch
  norms merged (:class:`MergeBatchNorm`), zennit's ``ResNetCanonizer`` blocks for torchvision's ResNets,
  :class:`ResidualSum` (the residual ``+`` through a zennit ``Sum``) for timm's and monai's blocks, and
  :class:`ConstantGate` for squeeze-and-excitation (EfficientNet-B0: the sigmoid gate held constant);
- ``"vit"`` (models with monai ``SABlock`` attention): conservative propagation (Ali et al., 2022, "XAI for
  Transformers"): :class:`ResidualSum` on the transformer blocks, the attention weights and each layer norm's
  scale held constant (:class:`ConstantGate`, :class:`ConstantScaleLayerNorm`), so that the attention
  product and the layer norm are linear maps of their input that the Norm rule splits (written here: zennit
  0.5.1 has no transformer rules);
- ``"sequential"`` (anything else): batch norms merged (zennit's ``SequentialMergeBatchNorm``, made exact);
- ``"none"``; or a list of zennit ``Canonizer`` instances.

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

from collections.abc import Iterator, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from zennit.canonizers import AttributeCanonizer, Canonizer, CompositeCanonizer, SequentialMergeBatchNorm
from zennit.composites import EpsilonGammaBox, EpsilonPlusFlat, LayerMapComposite, layer_map_base
from zennit.core import BasicHook, Composite, ParamMod
from zennit.layer import Sum
from zennit.rules import ClampMod, Epsilon, Norm
from zennit.torchvision import ResNetBasicBlockCanonizer, ResNetBottleneckCanonizer
from zennit.types import BatchNorm, Convolution, Linear

from baselines.base import Baseline
from baselines.registry import register
from wam.utils import as_targets

COMPOSITES = ("epsilon_plus_flat_conserving", "epsilon_plus_flat", "epsilon_gamma_box", "epsilon")
CANONIZERS = ("auto", "resnet", "vit", "sequential", "none")

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
    "ReplicationPad2DBackward0", "ReplicationPad3DBackward0", "ReshapeAliasBackward0", "SelectBackward0",
    "SliceBackward0", "SplitBackward0", "SplitWithSizesBackward0", "SqueezeBackward0", "SqueezeBackward1",
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


def _residual_blocks() -> tuple[type, ...]:
    """Block classes of timm (ResNet, EfficientNet) and monai (ResNet, transformer) whose forward adds the
    block's input (or its downsampled copy) to a branch's output with ``+``."""
    from monai.networks.blocks.transformerblock import TransformerBlock
    from monai.networks.nets import resnet as monai_resnet
    from timm.models import _efficientnet_blocks as eff
    from timm.models import resnet as timm_resnet

    return (timm_resnet.BasicBlock, timm_resnet.Bottleneck, eff.ConvBnAct, eff.DepthwiseSeparableConv,
            eff.InvertedResidual, eff.UniversalInvertedResidual, eff.EdgeResidual, eff.CondConvResidual,
            monai_resnet.ResNetBlock, monai_resnet.ResNetBottleneck, TransformerBlock)


def _attention_blocks() -> tuple[type, ...]:
    from monai.networks.blocks.selfattention import SABlock

    return (SABlock,)


def _gate_blocks() -> tuple[type, ...]:
    """Squeeze-and-excitation blocks (timm: EfficientNet-B0's, SE-ResNets'): ``x * sigmoid(g(x))``."""
    from timm.layers.squeeze_excite import EffectiveSEModule, SEModule
    from timm.models._efficientnet_blocks import SqueezeExcite

    return (SqueezeExcite, SEModule, EffectiveSEModule)


def _torchvision_blocks() -> tuple[type, ...]:
    from torchvision.models.resnet import BasicBlock, Bottleneck

    return BasicBlock, Bottleneck


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


class ConstantProduct(nn.Module):
    """``func(*args)`` where every tensor argument but ``args[index]`` is a constant (attention weights):
    a linear map of that one, ``forward(v)``; set ``call = (func, args, index)`` before calling."""

    call: tuple | None = None

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        func, args, index = self.call
        return func(*args[:index], v, *args[index + 1:])


class _Canonical(TorchFunctionMode):
    """Active during one canonized block's forward (the values it computes are unchanged):

    - ``a + b`` of two same-shaped tensors that depend on the input -> ``block.canonizer_sums[k](stack([a, b]))``
      for the ``k``-th such addition (zennit ``Sum``; Norm rule);
    - attention blocks: the softmax weights detached (constant), and their product (einsum, matmul) with the
      values -> ``block.canonizer_product`` (:class:`ConstantProduct`; Norm rule); squeeze-and-excitation blocks:
      the sigmoid gate detached, and ``x * gate`` -> ``block.canonizer_product`` (all relevance to ``x``).
    """

    ADDS = (torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__, torch.Tensor.__radd__,
            torch.Tensor.__iadd__)
    SOFTMAX = (torch.softmax, torch.Tensor.softmax, F.softmax)
    MATMULS = (torch.einsum, torch.matmul, torch.bmm, torch.Tensor.__matmul__, torch.Tensor.matmul)
    SIGMOIDS = (torch.sigmoid, torch.Tensor.sigmoid, torch.Tensor.sigmoid_, F.sigmoid, F.hardsigmoid)
    MULS = (torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__)

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block
        self.sums = 0
        self.products = 0
        self.gates, self.linear = (
            (self.SOFTMAX, self.MATMULS) if isinstance(block, _attention_blocks())
            else (self.SIGMOIDS, self.MULS) if isinstance(block, _gate_blocks()) else ((), ()))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        block = self.block
        if func in self.gates:
            return func(*args, **kwargs).detach()
        grads = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad]
        if (hasattr(block, "canonizer_sums") and func in self.ADDS and not kwargs and len(args) == len(grads) == 2
                and args[0].shape == args[1].shape):
            summed = block.canonizer_sums[self._next("sums", MAX_SUMS)](torch.stack(args, dim=-1))
            # ``x += y`` arrives as the in-place ``add_``: write into ``x`` (its old value gets no relevance)
            return args[0].copy_(summed) if func is torch.Tensor.add_ else summed
        if func in self.linear and not kwargs and len(grads) == 1:
            self._next("products", 1)
            block.canonizer_product.call = (func, args, grads[0])
            return block.canonizer_product(args[grads[0]])
        return func(*args, **kwargs)

    def _next(self, kind: str, limit: int) -> int:
        """Index of the next ``kind`` module of the block; one module per call (a rule stores its input)."""
        count = getattr(self, kind)
        if count >= limit:
            raise ValueError(f"canonizer: {type(self.block).__name__} has more than {limit} {kind} per forward")
        setattr(self, kind, count + 1)
        return count


def _canonical_forward(block: nn.Module, *args, **kwargs):
    with _Canonical(block):
        return type(block).forward(block, *args, **kwargs)


class ResidualSum(AttributeCanonizer):
    """timm's and monai's residual and transformer blocks (:func:`_residual_blocks`): ``canonizer_sums``
    (zennit ``Sum`` modules) and a forward computing the residual additions with them (:class:`_Canonical`), as
    zennit's ``ResNetCanonizer`` does for torchvision's blocks (whose forward it rewrites)."""

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(name: str, module: nn.Module) -> dict | None:
        if isinstance(module, _residual_blocks()):
            return {"forward": partial(_canonical_forward, module),
                    "canonizer_sums": nn.ModuleList(Sum() for _ in range(MAX_SUMS))}
        return None


class ConstantGate(AttributeCanonizer):
    """Gated blocks (:func:`_attention_blocks`: monai self-attention; :func:`_gate_blocks`: timm
    squeeze-and-excitation): the gate (attention weights, sigmoid) held constant, and its product with the values
    through ``canonizer_product`` (:class:`ConstantProduct`), which the composite's Norm rule splits (LRP-0 on the
    linear map ``v -> A v``; for ``x * gate`` all of it goes to ``x``)."""

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(name: str, module: nn.Module) -> dict | None:
        if isinstance(module, _attention_blocks() + _gate_blocks()):
            return {"forward": partial(_canonical_forward, module), "canonizer_product": ConstantProduct()}
        return None


def _constant_scale_layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)`` with ``1 / sqrt(var + eps)`` held constant: the same values, a linear map of ``x``."""
    dims = tuple(range(-len(norm.normalized_shape), 0))
    scale = torch.rsqrt(x.var(dims, keepdim=True, unbiased=False) + norm.eps).detach()
    out = (x - x.mean(dims, keepdim=True)) * scale
    if norm.weight is not None:
        out = out * norm.weight
    return out if norm.bias is None else out + norm.bias


class _ConstantScaleMeta(type):
    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, nn.LayerNorm) and hasattr(instance, "canonizer_constant_scale")


class ConstantScaleLayerNorm(AttributeCanonizer):
    """Every ``nn.LayerNorm``: forward with its scale held constant (:func:`_constant_scale_layer_norm`); such a
    layer norm is an instance of :class:`CanonizedLayerNorm`, which the composites give the Norm rule."""

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(name: str, module: nn.Module) -> dict | None:
        if isinstance(module, nn.LayerNorm):
            return {"forward": partial(_constant_scale_layer_norm, module), "canonizer_constant_scale": True}
        return None


class CanonizedLayerNorm(metaclass=_ConstantScaleMeta):
    """``isinstance(m, CanonizedLayerNorm)``: ``m`` is an ``nn.LayerNorm`` canonized by
    :class:`ConstantScaleLayerNorm` (the composites' type test for its rule)."""


def named_canonizers(name: str) -> list[Canonizer]:
    """The canonizers of ``"resnet"``, ``"vit"``, ``"sequential"`` or ``"none"`` (fresh instances)."""
    return {
        "resnet": lambda: [CompositeCanonizer((MergeBatchNorm(), ResNetBottleneckCanonizer(),
                                               ResNetBasicBlockCanonizer(), ResidualSum(), ConstantGate()))],
        "vit": lambda: [CompositeCanonizer((MergeBatchNorm(), ResidualSum(), ConstantGate(),
                                            ConstantScaleLayerNorm()))],
        "sequential": lambda: [MergeBatchNorm()],
        "none": list,
    }[name]()


def architecture(model: nn.Module) -> str:
    """``"vit"`` (attention blocks), ``"resnet"`` (residual blocks) or ``"sequential"``: ``canonizer="auto"``."""
    if any(isinstance(m, _attention_blocks()) for m in model.modules()):
        return "vit"
    residual = _residual_blocks() + _torchvision_blocks()
    return "resnet" if any(isinstance(m, residual) for m in model.modules()) else "sequential"


@register("lrp")
class LRP(Baseline):
    """Input relevance of the target logit, ``explain(x [B, C, *spatial], y [B]) -> [B, C, *spatial]`` (signed).

    ``composite``: ``"epsilon_plus_flat"`` | ``"epsilon_gamma_box"`` | ``"epsilon"``; ``epsilon``: the epsilon
    rule's stabiliser (>= 0; 0 is LRP-0); ``gamma``: the gamma rule's parameter (epsilon_gamma_box); ``low``,
    ``high``: ZBox's input bounds (numbers; ``None``: each input's own minimum and maximum); ``canonizer``:
    ``"auto"`` | ``"resnet"`` | ``"vit"`` | ``"sequential"`` | ``"none"`` or zennit canonizers (the name used is
    kept in ``canonizer_name``). A layer no rule covers raises ``ValueError`` naming it (on the first call).
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
        if isinstance(canonizer, str):
            if canonizer not in CANONIZERS:
                raise ValueError(f"canonizer: expected one of {', '.join(CANONIZERS)} or zennit canonizers, "
                                 f"got {canonizer!r}")
            self.canonizer_name = architecture(model) if canonizer == "auto" else canonizer
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
        canonical = [(CanonizedLayerNorm, Norm(stabilizer=stabilizer)), (ConstantProduct, Norm(stabilizer=stabilizer))]
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
        if kind not in PASS_THROUGH and not (kind in CONSTANT_ADDS and len(inputs) == 1):
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


def _ruled_modules(model: nn.Module, composite: Composite) -> set[nn.Module]:
    """The modules ``composite`` attaches a rule to (its module map replayed on the canonized model)."""
    ctx: dict = {}
    return {m for name, m in model.named_modules() if composite.module_map(ctx, name, m) is not None}
