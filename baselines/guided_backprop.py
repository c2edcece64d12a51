"""Guided Backpropagation (Springenberg et al., 2015), captum ``GuidedBackprop``."""

from __future__ import annotations

import torch
from captum._utils.common import _register_backward_hook
from captum.attr import GuidedBackprop as _GuidedBackprop
from torch import nn

from baselines.base import Baseline
from baselines.registry import register


class _GuidedBackprop6(_GuidedBackprop):
    """captum's ``GuidedBackprop`` (pinned 0.9.0) with its guided hook on ``nn.ReLU6`` modules too: captum hooks
    ``nn.ReLU`` only, so on a ReLU6 network (EfficientNet-Lite, MobileNetV2) it returned the plain gradient. The
    rule is captum's: the gradient leaving the rectifier, which its own derivative already zeroes outside the
    linear range, has its negative entries set to 0."""

    def _register_hooks(self, module: nn.Module) -> None:
        if isinstance(module, nn.ReLU6):
            self.backward_hooks.extend(_register_backward_hook(module, self._backward_hook, self))
        else:
            super()._register_hooks(module)


@register("guided_backprop")
class GuidedBackprop(Baseline):
    """Gradient with negative gradients zeroed at every ``nn.ReLU`` and ``nn.ReLU6`` module (signed).

    Only these modules are modified (functional ReLUs and other activations pass the plain gradient).
    ``explain(x [B, C, *spatial], y [B]) -> [B, C, *spatial]``.
    """

    def attribute(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        method = _GuidedBackprop6(self.model)
        return self.per_chunk(lambda xs, ys: method.attribute(self.leaf(xs), target=ys), x, y)
