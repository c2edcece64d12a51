"""Faithfulness of Spectra and Input Fidelity: one-point deletion and insertion scores.

- ``faithfulness_of_spectra`` (FF; Parekh et al., 2022, "Listen to interpret"): the drop of the target's score
  when the top ``fraction`` of the features (default 0.5, as the reference evaluators) is removed,
  ``p_c(x) - p_c(x without its top features)``. Higher is more faithful.
- ``input_fidelity`` (Fid-in; Paissan et al., 2023, "Posthoc interpretation via quantization"): 1 where the
  model's top-1 class on the input restricted to its top ``fraction`` of features equals its top-1 class on
  ``x``, else 0. Averaged over inputs it is the share of inputs whose decision the kept features preserve.

Both are points of the shared perturbation engine (:func:`metrics.deletion` / :func:`metrics.insertion` with
``fractions=``): the same features (pixels, time-frequency bins, voxels, or wavelet coefficients), the same
removed value, ranking and protocol options (``tie_break``, ``counts``, ``postprocess``, ``preprocess``, ``swap_hv``,
``baseline``, ``wavelet`` ...; :mod:`metrics.protocols`) as the curves, for 1D, 2D and 3D inputs.

Example::

    >>> import torch, metrics
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    >>> x, y, a = torch.rand(2, 3, 8, 8), torch.tensor([0, 3]), torch.rand(2, 8, 8)
    >>> metrics.get("faithfulness_of_spectra")(model, x, y, a).shape
    torch.Size([2])
    >>> metrics.get("input_fidelity")(model, x, y, a, domain="wavelet", fraction=0.25).shape
    torch.Size([2])
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import torch

from metrics.curves import Model, Targets, deletion, insertion
from metrics.perturbation import as_batch
from metrics.registry import register
from wam.utils import chunks


def check_fraction(fraction: Any) -> float:
    """``fraction`` as a float in (0, 1]; ``ValueError`` naming ``fraction`` otherwise."""
    if isinstance(fraction, bool) or not isinstance(fraction, Real) or not 0 < fraction <= 1:
        raise ValueError(f"fraction: expected a number in (0, 1], got {fraction!r}")
    return float(fraction)


def _one_point(options: dict[str, Any], name: str) -> None:
    for key in ("steps", "fractions"):
        if key in options:
            raise ValueError(f"{key}: {name} perturbs a single share of the features; give `fraction` instead")


@register("faithfulness_of_spectra")
def faithfulness_of_spectra(model: Model, x: torch.Tensor, y: Targets, attribution: Any, domain: str = "pixel",
                            fraction: float = 0.5, **options: Any) -> torch.Tensor:
    """FF ``[B]``: ``p_y(x) - p_y(x with its top floor(fraction N) features removed)``.

    Arguments as :func:`metrics.deletion` (``x`` ``[B, C, *spatial]`` or ``[B, T]``; ``attribution`` in the
    ``domain``'s layout; ``options`` of :func:`metrics.perturbation.curve_scores`, ``score`` included:
    softmax probability by default). It is the deletion curve at the two points ``(0, fraction)``.
    """
    _one_point(options, "faithfulness_of_spectra")
    fraction = check_fraction(fraction)
    probs = deletion(model, x, y, attribution, domain, steps=None, fractions=[0.0, fraction], **options).probs
    return probs[:, 0] - probs[:, 1]


@register("input_fidelity")
def input_fidelity(model: Model, x: torch.Tensor, y: Targets, attribution: Any, domain: str = "pixel",
                   fraction: float = 0.5, **options: Any) -> torch.Tensor:
    """Fid-in ``[B]`` in {0, 1}: the top-1 class of ``x`` restricted to its top ``floor(fraction N)`` features
    (the others removed) equals the top-1 class of ``x``.

    ``y`` (the explained class) is only checked for its shape: Fid-in compares predictions. Arguments as
    :func:`metrics.insertion`; ``score`` is fixed (``"top1"``). It is the insertion curve at the point
    ``fraction``, scored as ``top1`` for the targets ``argmax f(x)`` (``x`` seen through ``postprocess`` and
    ``preprocess``, as every point of the curve).
    """
    _one_point(options, "input_fidelity")
    if "score" in options:
        raise ValueError("score: input_fidelity always scores the top-1 class; do not pass `score`")
    fraction = check_fraction(fraction)
    x4, _ = as_batch(x)
    if torch.as_tensor(y).numel() not in (1, x4.shape[0]):
        raise ValueError(f"y: expected {x4.shape[0]} class indices, got {torch.as_tensor(y).numel()}")
    predicted = predictions(model, x, options.get("preprocess"), options.get("postprocess"),
                            options.get("batch_size", 64))
    curve = insertion(model, x, predicted, attribution, domain, steps=None, fractions=[fraction], score="top1",
                      **options)
    return curve.probs[:, 0]


def predictions(model: Model, x: torch.Tensor, preprocess=None, postprocess=None, batch_size: int = 64
                ) -> torch.Tensor:
    """Top-1 class ``[B]`` of ``model`` on ``x`` seen as the perturbation engine shows its points
    (``postprocess``, then ``preprocess``), ``batch_size`` inputs per call, without gradients."""
    out = []
    with torch.no_grad():
        for part in chunks(x.shape[0], batch_size):
            inputs = x[part] if postprocess is None else postprocess(x[part])
            logits = model(inputs if preprocess is None else preprocess(inputs))
            if logits.dim() != 2:
                raise ValueError(f"model: expected outputs [rows, classes], got shape {tuple(logits.shape)}")
            out.append(logits.argmax(dim=1))
    return torch.cat(out)
