"""Saliency (Simonyan et al., 2014): absolute gradient of the target logit (captum ``Saliency``)."""

from __future__ import annotations

import torch
from captum.attr import Saliency as _Saliency

from baselines.base import Baseline
from baselines.registry import register


@register("saliency")
class Saliency(Baseline):
    """``|d f_y(x) / d x|``: ``explain(x [B, C, *spatial], y [B]) -> [B, C, *spatial]`` (>= 0)."""

    def attribute(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        method = _Saliency(self.model)
        return self.per_chunk(lambda xs, ys: method.attribute(self.leaf(xs), target=ys, abs=True), x, y)
