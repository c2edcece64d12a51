"""Area over the MoRF perturbation curve (AOPC; Samek et al., 2017): mean drop of the score.

One file, registered by its decorator: the registry imports every module of the package.

Example::

    >>> import metrics, torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    >>> x, y = torch.rand(2, 3, 8, 8), torch.tensor([1, 2])
    >>> metrics.get("aopc")(model, x, y, torch.rand(2, 8, 8), steps=16).shape   # [B]
    torch.Size([2])
"""

from __future__ import annotations

import torch

from metrics.curves import deletion
from metrics.registry import register


@register("aopc")
def aopc(model, x, y, attribution, **kwargs) -> torch.Tensor:
    """``mean_k (f(x) - f(x with the top k/steps features removed))`` ``[B]``; kwargs as ``deletion``."""
    probs = deletion(model, x, y, attribution, **kwargs).probs  # [B, steps + 1], first point f(x)
    return (probs[:, :1] - probs).mean(dim=1)
