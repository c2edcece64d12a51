"""Guided Backpropagation (Springenberg et al., 2015), captum ``GuidedBackprop``."""

from __future__ import annotations

import torch
from captum.attr import GuidedBackprop as _GuidedBackprop

from baselines.base import Baseline
from baselines.registry import register


@register("guided_backprop")
class GuidedBackprop(Baseline):
    """Gradient with negative gradients zeroed at every ``nn.ReLU`` module (signed).

    Only ``nn.ReLU`` modules are modified (functional ReLUs and other activations pass the plain
    gradient). ``explain(x [B, C, *spatial], y [B]) -> [B, C, *spatial]``.
    """

    def attribute(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        method = _GuidedBackprop(self.model)
        return self.per_chunk(lambda xs, ys: method.attribute(self.leaf(xs), target=ys), x, y)
