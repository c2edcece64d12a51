"""AttnLRP (Achtibat et al., ICML 2024, "AttnLRP: Attention-Aware Layer-wise Relevance Propagation for
Transformers") for timm's ViT / DeiT / Swin and monai's ViT, with the explicit rules of lxt 2.1. Two
configurations, LRP's ``canonizer=``:

- ``"attnlrp"`` (the choice of ``canonizer="auto"`` for transformers when lxt is installed): lxt's own
  configuration for vision transformers (``lxt.efficient.models.vit_torch``; the docstring of
  ``lxt.explicit.special.multi_head_attention_cp``; the AttnLRP paper's appendix A.2.3): AttnLRP's rules outside
  the attention (lxt's layer norm rule, the identity rule on GELU) and conservative propagation inside it
  (CP-LRP: the attention weights held constant, so that all of the attention's relevance goes to the values);
- ``"attnlrp_softmax"``: AttnLRP's softmax and product rules inside the attention too (lxt's configuration for
  language models).

Rules, each an autograd ``Function`` of lxt whose backward computes the relevance of its inputs, applied by
rewriting the torch calls of each attention block's and layer norm's own forward (:class:`AttnLRPAttention`,
:class:`AttnLRPLayerNorm`; ``F.scaled_dot_product_attention`` is computed as its steps):

- layer norms (``F.layer_norm`` over the last dimension): lxt ``layer_norm`` (Prop. 3.4: identity on
  ``1 / std``, epsilon on the centring and the affine map, whose bias keeps its share);
- ``"attnlrp"``'s attention: the softmax's output detached, ``A @ v`` a linear map of ``v`` that the Norm rule
  splits (:class:`baselines.lrp.ConstantAttention`); the query-key path gets no relevance;
- ``"attnlrp_softmax"``'s attention: the softmax (weights ``s`` of logits ``x``) through lxt ``softmax``
  (Prop. 3.1, Taylor decomposition at the input with the bias term: ``R_in = x * (R - s * sum(R))`` along the last
  dimension), which does not conserve: ``sum(R_in) = sum(x * R) - sum(x * s) * sum(R)``, the rest going to the
  bias term; products of two input-dependent tensors (``q @ k^T``, ``A @ v``, monai's einsums) through lxt's
  ``uniform_epsilon_lrp_fn`` (Prop. 3.3: epsilon rule, then half to each factor); products with a constant
  (``q * scale``) through lxt ``mul2`` (all the relevance to the tensor);
- the rest from the composite (zennit): GELU and the other activations Pass (AttnLRP's identity rule, Eq. 9),
  dense layers epsilon (Eq. 8), residual sums zennit ``Sum`` with the Norm rule (Eq. 8 on an addition), timm's
  layer scales Pass, the patch embedding (the first layer) Flat.

Why ``"attnlrp"`` by default. ``sum(R) / f_y(x)`` (median [min, max] over the 10 explained inputs of the offline
default run's trained models, ``f_y`` the logit of the true class), ``"attnlrp"`` against ``"attnlrp_softmax"``:
monai's 3D ViT 0.88 [-0.16, 1.13] against 0.14 [-2.54, 0.85]; the texture ViT 0.94 [-3.78, 1.35] against 0.68
[-0.08, 4.65]; the texture Swin 1.25 [0.26, 3.98] against 0.75 [0.11, 2.43]. These small models' attention is
near uniform, so the softmax logits ``x`` are small and the softmax rule passes on little of the half of each
attention product's relevance that the product rule gives the weights. What ``"attnlrp"`` does not conserve is
the share of the dense layers' and layer norms' biases (epsilon rule), of either sign: on the 3D ViT the
attention output projections' biases take 11 % of the logit; the extreme ratios are those of inputs whose target
logit is near 0. With lxt's layer norm rule in place of the constant-scale layer norm, ``"attnlrp"`` is ``"vit"``
(written here without lxt): equal relevance up to the stabilisers' form (tested).

lxt 2.1's ``lxt.efficient`` and ``lxt.explicit.core`` import ``transformers`` (for the language models they
patch), which this project does not install; ``lxt.explicit.functional`` and ``lxt.explicit.rules``, used
here, import torch alone. Install: ``pip install --no-deps lxt==2.1`` (the extra ``attnlrp``).

Example (a one-block timm ViT)::

    >>> import timm, torch, baselines
    >>> vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=16, patch_size=4, depth=1,
    ...                         embed_dim=24, num_heads=2, num_classes=3).eval()
    >>> explain = baselines.get("lrp", vit)
    >>> explain.family, explain.canonizer_name
    ('transformer', 'attnlrp')
    >>> explain(torch.rand(2, 3, 16, 16), torch.tensor([0, 2])).shape
    torch.Size([2, 3, 16, 16])
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch.nn.functional as F
from lxt.explicit.functional import layer_norm, mul2, softmax
from lxt.explicit.rules import uniform_epsilon_lrp_fn
from torch import nn
from zennit.canonizers import Canonizer, CompositeCanonizer

from baselines.lrp import (
    KEEP,
    MATMULS,
    MULS,
    SOFTMAX,
    ConstantAttention,
    ConstantGate,
    MergeBatchNorm,
    ResidualSum,
    Rewriter,
    RewrittenForward,
    attention_blocks,
    attention_steps,
    layer_norm_arguments,
    needs_grad,
)

EPSILON = 1e-6  # stabiliser of the products' epsilon rule (lxt's UniformEpsilonRule default)


class _AttnLRPAttention(Rewriter):
    """An attention block's softmax, products and scaling through lxt's rules (the module's docstring)."""

    def __call__(self, func: Callable, args: tuple, kwargs: dict) -> object:
        if func is F.scaled_dot_product_attention:
            return attention_steps(self, *args, **kwargs)
        if func in SOFTMAX and needs_grad(args[0]):
            dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
            last = dim is not None and dim % args[0].dim() == args[0].dim() - 1  # lxt's rule sums the last one
            return softmax(args[0], -1, kwargs.get("dtype")) if last else KEEP
        if func in MATMULS and not kwargs and len(args) >= 2 and all(needs_grad(a) for a in args[-2:]):
            *equation, a, b = args  # einsum: (equation, a, b)
            return uniform_epsilon_lrp_fn.apply(partial(func, *equation), EPSILON, a, b)
        if func in MULS and not kwargs and any(needs_grad(a) for a in args):
            return mul2(*args)
        return KEEP


class _AttnLRPNorm(Rewriter):
    def __call__(self, func: Callable, args: tuple, kwargs: dict) -> object:
        if func is not F.layer_norm:
            return KEEP
        x, shape, weight, bias, eps = layer_norm_arguments(args, kwargs)
        if len(shape) != 1:
            raise ValueError(f"canonizer: attnlrp's layer norm rule normalises one dimension, got {tuple(shape)}")
        return layer_norm(x, weight, bias, eps)


class AttnLRPAttention(RewrittenForward):
    """Self-attention blocks (monai ``SABlock``, timm ``Attention`` and ``WindowAttention``): AttnLRP's softmax and
    product rules (``"attnlrp_softmax"``)."""

    blocks = staticmethod(attention_blocks)
    rewriter = _AttnLRPAttention


class AttnLRPLayerNorm(RewrittenForward):
    """Every ``nn.LayerNorm`` (timm's channels-first ``LayerNorm2d`` included): lxt's layer norm rule."""

    blocks = staticmethod(lambda: (nn.LayerNorm,))
    rewriter = _AttnLRPNorm


def attnlrp_canonizers(softmax: bool = False) -> list[Canonizer]:
    """``canonizer="attnlrp"`` (lxt's configuration for vision transformers): batch norms merged, residual sums,
    squeeze-and-excitation gates held constant (as for the other families), conservative propagation in the
    attention, lxt's layer norm rule; ``softmax=True`` (``canonizer="attnlrp_softmax"``): AttnLRP's softmax and
    product rules in the attention instead."""
    attention = AttnLRPAttention() if softmax else ConstantAttention()
    return [CompositeCanonizer((MergeBatchNorm(), ResidualSum(), ConstantGate(), attention, AttnLRPLayerNorm()))]
