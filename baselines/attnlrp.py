"""AttnLRP (Achtibat et al., ICML 2024, "AttnLRP: Attention-Aware Layer-wise Relevance Propagation for
Transformers") for timm's ViT / DeiT / Swin and monai's ViT, with the explicit rules of lxt 2.1: LRP's
``canonizer="attnlrp"`` (the choice of ``canonizer="auto"`` for transformers when lxt is installed).

Rules, each an autograd ``Function`` of lxt whose backward computes the relevance of its inputs, applied by
rewriting the torch calls of each attention block's and layer norm's own forward (:class:`AttnLRPAttention`,
:class:`AttnLRPLayerNorm`; ``F.scaled_dot_product_attention`` is computed as its steps):

- softmax (attention weights ``s`` of logits ``x``): lxt ``softmax`` (AttnLRP Prop. 3.1, Taylor decomposition at
  the input with the bias term: ``R_in = x * (R - s * sum(R))`` along the last dimension); it does not conserve:
  ``sum(R_in) = sum(x * R) - sum(x * s) * sum(R)``, the rest going to the bias term;
- products of two input-dependent tensors (``q @ k^T``, ``A @ v``, monai's einsums): lxt's
  ``uniform_epsilon_lrp_fn`` (Prop. 3.3: epsilon rule, then half to each factor; conserves up to ``1e-6``);
- products with a constant (``q * scale``): lxt ``mul2`` (all the relevance to the tensor);
- layer norms (``F.layer_norm`` over the last dimension): lxt ``layer_norm`` (Prop. 3.4: identity on
  ``1 / std``, epsilon on the centring and the affine map, whose bias keeps its share);
- the rest from the composite (zennit): GELU and the other activations Pass (AttnLRP's identity rule, Eq. 9),
  dense layers epsilon (Eq. 8), residual sums zennit ``Sum`` with the Norm rule (Eq. 8 on an addition), timm's
  layer scales Pass, the patch embedding (the first layer) Flat.

Measured ``sum(R) / f_y(x)`` (random-weight models, 3 inputs each; min to max): timm ViT-Tiny/16 at 224 on
photographs 0.40 to 0.44 (``"vit"``: 0.81 to 1.02), Swin-Tiny 0.64 to 0.72 (``"vit"``: 1.00), monai's 3D ViT
0.18 to 0.38: with near-uniform attention the softmax logits ``x`` are small, and so is what the softmax rule
passes on of the half of each attention product's relevance that the product rule gives the weights.

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
    """Self-attention blocks (monai ``SABlock``, timm ``Attention`` and ``WindowAttention``): AttnLRP's rules."""

    blocks = staticmethod(attention_blocks)
    rewriter = _AttnLRPAttention


class AttnLRPLayerNorm(RewrittenForward):
    """Every ``nn.LayerNorm`` (timm's channels-first ``LayerNorm2d`` included): lxt's layer norm rule."""

    blocks = staticmethod(lambda: (nn.LayerNorm,))
    rewriter = _AttnLRPNorm


def attnlrp_canonizers() -> list[Canonizer]:
    """``canonizer="attnlrp"``: batch norms merged, residual sums, squeeze-and-excitation gates held constant (as for
    the other families), attention and layer norms through lxt's AttnLRP rules."""
    return [CompositeCanonizer((MergeBatchNorm(), ResidualSum(), ConstantGate(), AttnLRPAttention(),
                                AttnLRPLayerNorm()))]
