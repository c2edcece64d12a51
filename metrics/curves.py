"""Insertion, deletion and faithfulness (insertion - deletion) curves and their areas.

Example::

    >>> import torch, metrics
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    >>> x, y = torch.rand(2, 3, 8, 8), torch.tensor([0, 3])
    >>> c = metrics.deletion(model, x, y, torch.rand(2, 8, 8), steps=16)
    >>> c.probs.shape, c.auc("paper").shape, c.fractions.shape
    (torch.Size([2, 17]), torch.Size([2]), torch.Size([17]))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from metrics.perturbation import Preprocess, check_choice, curve_scores
from metrics.registry import register

AUC_KINDS = ("paper", "trapezoid")


def check_auc(kind: str) -> str:
    return check_choice(kind, AUC_KINDS, "auc")


@dataclass(frozen=True)
class Curve:
    """Scores of the target class along a perturbation path.

    ``probs`` ``[B, steps + 1]``: point ``k`` has the top ``(k * N) // steps`` features inserted
    (``kind="insertion"``; first point: everything removed, last: the input) or removed
    (``kind="deletion"``; first point: the input, last: everything removed).
    """

    probs: torch.Tensor
    kind: str = "deletion"
    domain: str = "pixel"

    @property
    def steps(self) -> int:
        return self.probs.shape[1] - 1

    @property
    def fractions(self) -> torch.Tensor:
        """Perturbed fraction ``k / steps`` of each point, ``[steps + 1]`` in [0, 1]."""
        k = torch.arange(self.steps + 1, device=self.probs.device, dtype=self.probs.dtype)
        return k / self.steps

    def auc(self, kind: str = "paper") -> torch.Tensor:
        """Area ``[B]``: ``"paper"`` = ``sum(p) / (max(p) * len(p))`` (0 where ``max(p) == 0``);
        ``"trapezoid"`` = trapezoid rule over :attr:`fractions`."""
        check_auc(kind)
        p = self.probs
        if kind == "trapezoid":
            return torch.trapezoid(p, x=self.fractions, dim=1)
        top = p.max(dim=1).values
        safe = torch.where(top == 0, torch.ones_like(top), top)
        return torch.where(top == 0, torch.zeros_like(top), p.sum(dim=1) / (safe * p.shape[1]))


Model = nn.Module | Callable[[torch.Tensor], torch.Tensor]
Targets = int | Sequence[int] | torch.Tensor


def _curve(order: str, model: Model, x: torch.Tensor, y: Targets, attribution: Any, domain: str,
           **kwargs: Any) -> Curve:
    probs = curve_scores(model, x, y, attribution, order=order, domain=domain, **kwargs)
    return Curve(probs, order, domain)


@register("insertion")
def insertion(
    model: Model,
    x: torch.Tensor,
    y: Targets,
    attribution: Any,
    domain: str = "pixel",
    steps: int = 64,
    baseline: float | torch.Tensor = 0.0,
    wavelet: str = "haar",
    levels: int = 3,
    mode: str = "reflect",
    preprocess: Preprocess = None,
    batch_size: int = 64,
    score: str = "softmax",
) -> Curve:
    """Insertion curve: start from the removed input, insert the top-ranked features ``1 / steps`` at a time.

    ``x`` ``[B, C, *spatial]`` (or ``[B, T]``); ``attribution``: pixel domain ``[B, *spatial]`` or
    ``[B, C, *spatial]``; wavelet domain a ptwt coefficient structure (``[B, C, *band]`` tensors) or a
    dyadic map ``[B, *spatial]``. ``baseline`` (pixel domain): number or tensor broadcastable to ``x``.
    ``preprocess`` maps a perturbed input to the model's input. Returns a :class:`Curve`
    (``probs`` ``[B, steps + 1]``, last point = ``f(x)``).
    """
    return _curve("insertion", model, x, y, attribution, domain, steps=steps, baseline=baseline,
                  wavelet=wavelet, levels=levels, mode=mode, preprocess=preprocess,
                  batch_size=batch_size, score=score)


@register("deletion")
def deletion(
    model: Model,
    x: torch.Tensor,
    y: Targets,
    attribution: Any,
    domain: str = "pixel",
    steps: int = 64,
    baseline: float | torch.Tensor = 0.0,
    wavelet: str = "haar",
    levels: int = 3,
    mode: str = "reflect",
    preprocess: Preprocess = None,
    batch_size: int = 64,
    score: str = "softmax",
) -> Curve:
    """Deletion curve: remove the top-ranked features ``1 / steps`` at a time (same arguments as
    :func:`insertion`). First point = ``f(x)``, last point = the fully removed input."""
    return _curve("deletion", model, x, y, attribution, domain, steps=steps, baseline=baseline,
                  wavelet=wavelet, levels=levels, mode=mode, preprocess=preprocess,
                  batch_size=batch_size, score=score)


@register("faithfulness")
def faithfulness(
    model: Model,
    x: torch.Tensor,
    y: Targets,
    attribution: Any,
    domain: str = "pixel",
    steps: int = 64,
    baseline: float | torch.Tensor = 0.0,
    wavelet: str = "haar",
    levels: int = 3,
    mode: str = "reflect",
    preprocess: Preprocess = None,
    batch_size: int = 64,
    score: str = "softmax",
    auc: str = "paper",
) -> torch.Tensor:
    """Insertion AUC - deletion AUC ``[B]`` (same domain, same ``auc`` kind: ``"paper"`` or ``"trapezoid"``).

    Example: ``metrics.faithfulness(model, x, y, a, domain="wavelet", auc="trapezoid")``.
    """
    check_auc(auc)
    kwargs = dict(steps=steps, baseline=baseline, wavelet=wavelet, levels=levels, mode=mode,
                  preprocess=preprocess, batch_size=batch_size, score=score)
    ins = _curve("insertion", model, x, y, attribution, domain, **kwargs)
    dele = _curve("deletion", model, x, y, attribution, domain, **kwargs)
    return ins.auc(auc) - dele.auc(auc)
