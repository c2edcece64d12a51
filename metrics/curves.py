"""Insertion, deletion and faithfulness (insertion - deletion) curves and their areas.

Every option of the perturbation (domain, steps, removed value, wavelet, tie order, point counts, pre- and
post-processing, batch size, score) is documented once, in :func:`metrics.perturbation.curve_scores`;
:mod:`metrics.protocols` gives the named sets of options (``reference``, ``clean``).

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
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from metrics.perturbation import check_choice, curve_scores
from metrics.registry import register

AUC_KINDS = ("paper", "trapezoid")


def check_auc(kind: str) -> str:
    return check_choice(kind, AUC_KINDS, "auc")


@dataclass(frozen=True)
class Curve:
    """Scores of the target class along a perturbation path.

    ``probs`` ``[B, P]``: point ``k`` has the top features inserted (``kind="insertion"``; first point:
    everything removed, last: the input) or removed (``kind="deletion"``; first point: the input, last:
    everything removed). ``fractions`` ``[P]``: the perturbed fraction of each point (``k / steps`` unless
    given); ``degenerate`` ``[B]``: the attribution was constant (no ranking information).
    """

    probs: torch.Tensor
    kind: str = "deletion"
    domain: str = "pixel"
    fractions: torch.Tensor | None = None
    degenerate: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.fractions is None:
            k = torch.arange(self.steps + 1, device=self.probs.device, dtype=self.probs.dtype)
            object.__setattr__(self, "fractions", k / self.steps)

    @property
    def steps(self) -> int:
        return self.probs.shape[1] - 1

    def auc(self, kind: str = "paper") -> torch.Tensor:
        """Area ``[B]``: ``"paper"`` = ``sum(p) / (max(p) * len(p))`` (0 where ``max(p) == 0``);
        ``"trapezoid"`` = trapezoid rule over :attr:`fractions`."""
        check_auc(kind)
        p = self.probs
        if kind == "trapezoid":
            return torch.trapezoid(p, x=self.fractions.to(p.dtype), dim=1)
        top = p.max(dim=1).values
        safe = torch.where(top == 0, torch.ones_like(top), top)
        return torch.where(top == 0, torch.zeros_like(top), p.sum(dim=1) / (safe * p.shape[1]))


Model = nn.Module | Callable[[torch.Tensor], torch.Tensor]
Targets = int | Sequence[int] | torch.Tensor


def _curve(order: str, model: Model, x: torch.Tensor, y: Targets, attribution: Any, domain: str,
           **options: Any) -> Curve:
    probs, fractions, degenerate = curve_scores(model, x, y, attribution, order=order, domain=domain, **options)
    return Curve(probs, order, domain, fractions, degenerate)


@register("insertion")
def insertion(model: Model, x: torch.Tensor, y: Targets, attribution: Any, domain: str = "pixel",
              steps: int = 64, **options: Any) -> Curve:
    """Insertion curve: start from the removed input, insert the top-ranked features ``1 / steps`` at a time.

    ``x`` ``[B, C, *spatial]`` (or ``[B, T]``); ``attribution``: pixel domain ``[B, *spatial]`` or
    ``[B, C, *spatial]``; wavelet domain a ptwt coefficient structure (``[B, C, *band]`` tensors) or a
    dyadic map ``[B, *spatial]``. ``options``: those of :func:`metrics.perturbation.curve_scores`
    (``baseline``, ``wavelet``, ``levels``, ``mode``, ``tie_break``, ``counts``, ``preprocess``,
    ``postprocess``, ``batch_size``, ``score`` ...). Returns a :class:`Curve` (last point = ``f(x)``).
    """
    return _curve("insertion", model, x, y, attribution, domain, steps=steps, **options)


@register("deletion")
def deletion(model: Model, x: torch.Tensor, y: Targets, attribution: Any, domain: str = "pixel",
             steps: int = 64, **options: Any) -> Curve:
    """Deletion curve: remove the top-ranked features ``1 / steps`` at a time (same arguments as
    :func:`insertion`). First point = ``f(x)``, last point = the fully removed input."""
    return _curve("deletion", model, x, y, attribution, domain, steps=steps, **options)


@register("faithfulness")
def faithfulness(model: Model, x: torch.Tensor, y: Targets, attribution: Any, domain: str = "pixel",
                 steps: int = 64, auc: str = "paper", **options: Any) -> torch.Tensor:
    """Insertion AUC - deletion AUC ``[B]`` (same domain, same ``auc`` kind: ``"paper"`` or ``"trapezoid"``).

    Example: ``metrics.faithfulness(model, x, y, a, domain="wavelet", auc="trapezoid")``.
    """
    check_auc(auc)
    ins = insertion(model, x, y, attribution, domain, steps, **options)
    dele = deletion(model, x, y, attribution, domain, steps, **options)
    return ins.auc(auc) - dele.auc(auc)
