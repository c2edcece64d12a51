"""Stability of an explanation under small input noise: Max-Sensitivity and Avg-Sensitivity (Yeh et al., 2019)
and Relative Input Stability (RIS; Agarwal et al., 2022), with Quantus 0.6's definitions and defaults.

The explanation is recomputed on ``samples`` noisy copies of each input by ``explain(model, x, y) -> map``, a
callable given by the caller; the map is a tensor (``[B, *s]`` or ``[B, C, *s]``) or a per-band wavelet
structure (ptwt coefficients, or any list of ``[B, ...]`` tensors), compared in that representation, flattened.

- Noise (Quantus' ``batch_uniform_noise``): i.i.d. uniform on ``[-lower_bound, lower_bound]`` when
  ``upper_bound`` is None, else on ``[lower_bound, upper_bound]``, added to every value of the input
  (``domain="pixel"``: every channel of every position) or to every coefficient of the input's own wavelet
  transform (``domain="wavelet"``; the input is rebuilt with the inverse transform). Noise ``s`` is drawn by a
  ``torch.Generator`` on the input's device seeded with ``seed * 1_000_003 + s`` (as WAM's own noise), the same
  for every input of the batch, so a score does not depend on the batch it is computed in.
- Max- / Avg-Sensitivity: ``||a(x) - a(x + d_s)||_F / ||a(x)||_F`` (Quantus' defaults: ``similarity_func =
  difference``, ``norm_numerator = norm_denominator = fro_norm``), the maximum / mean over the ``samples``
  draws. Defaults as Quantus: ``samples=200``, ``lower_bound=0.2``, ``upper_bound=None``. A zero map gives 0
  where the noisy maps are zero too, ``inf`` otherwise (Quantus: NaN or inf).
- RIS: ``max_s ||(a - a_s) / a~||_F / max(||(v - v_s) / v~||_F, eps)``, ``a~`` = ``a`` with zeros replaced by
  ``eps``, ``v`` the input (pixel domain) or its coefficients (wavelet domain), ``v~`` likewise; ``eps = 1e-6``.
  Quantus' defaults: noise uniform on ``[0.02, 0.2]`` (``lower_bound=0.02, upper_bound=0.2``), 200 samples.
  Dividing by each map value makes RIS sensitive to the round-off of tiny map values: a float32 gradient
  computed in a batch of 16 or of 1 can move RIS by 1e-3 (relative), Max-Sensitivity by 2e-7.
- ``nan_when_prediction_changes``: a draw that changes the model's top-1 class makes the input's score NaN
  (Quantus' ``return_nan_when_prediction_changes=True``, its default for RIS only). Default here: False for all
  three (a score for every input; the draws changing the prediction are kept).

Every noisy copy is one row: the ``samples x B`` rows go through ``explain`` in chunks of ``batch_size``.

Example::

    >>> import torch, metrics
    >>> from torch import nn
    >>> def gradient(model, x, y):
    ...     x = x.detach().requires_grad_(True)
    ...     return torch.autograd.grad(model(x).gather(1, y[:, None]).sum(), x)[0]
    >>> linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    >>> x, y = torch.rand(2, 3, 8, 8), torch.tensor([0, 3])
    >>> metrics.get("max_sensitivity")(linear, x, y, explain=gradient, samples=8)  # constant gradient: 0
    tensor([0., 0.])
    >>> cnn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 4)).eval()
    >>> metrics.get("relative_input_stability")(cnn, x, y, explain=gradient, samples=8, domain="wavelet").shape
    torch.Size([2])
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Real
from typing import Any

import torch

from metrics.curves import Model, Targets
from metrics.perturbation import (
    DOMAINS,
    Preprocess,
    as_batch,
    check_choice,
    wavelet_features,
)
from metrics.registry import register
from wam import transform
from wam.utils import as_targets, check_input, chunks

Explain = Callable[[Model, torch.Tensor, torch.Tensor], Any]
KINDS = ("sensitivity", "ris")
EPS = 1e-6  # quantus.RelativeInputStability's eps_min


def uniform_noise(shape: tuple[int, ...], draw: int, lower_bound: float, upper_bound: float | None, seed: int,
                  device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Noise draw ``draw`` ``[*shape]``: uniform on ``[-lower_bound, lower_bound]`` (``upper_bound`` None) or
    ``[lower_bound, upper_bound]``, from a generator on ``device`` seeded with ``seed * 1_000_003 + draw``.

    >>> d = uniform_noise((1000,), 0, 0.2, None, seed=0, device=torch.device("cpu"))
    >>> bool(d.min() >= -0.2 and d.max() <= 0.2), torch.equal(d, uniform_noise((1000,), 0, 0.2, None, 0, d.device))
    (True, True)
    """
    low, high = (-lower_bound, lower_bound) if upper_bound is None else (lower_bound, upper_bound)
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + draw)
    return low + (high - low) * torch.rand(shape, generator=gen, device=device, dtype=dtype)


def flat_map(explanation: Any, rows: int, name: str = "attribution") -> torch.Tensor:
    """An explanation as ``[rows, F]`` float64: a tensor ``[rows, ...]`` flattened, or a per-band structure
    (ptwt coefficients or a list of ``[rows, ...]`` tensors) flattened band after band."""
    if isinstance(explanation, torch.Tensor):
        parts = [explanation]
    elif isinstance(explanation, list | tuple) and explanation:
        parts = transform.bands(explanation)
    else:
        raise ValueError(f"{name}: expected a tensor [{rows}, ...] or a per-band structure of [{rows}, ...] "
                         f"tensors, got {type(explanation).__name__}")
    for p in parts:
        if not isinstance(p, torch.Tensor) or p.dim() < 1 or p.shape[0] != rows:
            raise ValueError(f"{name}: expected tensors with {rows} rows, got {getattr(p, 'shape', type(p))}")
        if not torch.isfinite(p).all():
            raise ValueError(f"{name}: contains NaN or inf")
    return torch.cat([p.detach().reshape(rows, -1).double() for p in parts], dim=1)


def _relative(delta: torch.Tensor, ref: torch.Tensor, eps: float) -> torch.Tensor:
    """``||delta / ref~||`` per row, ``ref~`` = ``ref`` with its zeros replaced by ``eps`` (Quantus' RIS)."""
    return (delta / torch.where(ref == 0, torch.full_like(ref, eps), ref)).norm(dim=1)


def _check_options(explain: Any, samples: Any, lower_bound: Any, upper_bound: Any, batch_size: Any) -> None:
    if not callable(explain):
        raise ValueError(f"explain: expected a callable explain(model, x, y) -> map, got {explain!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples: expected a positive integer, got {samples!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    if isinstance(lower_bound, bool) or not isinstance(lower_bound, Real) or lower_bound < 0:
        raise ValueError(f"lower_bound: expected a number >= 0, got {lower_bound!r}")
    if upper_bound is not None and (isinstance(upper_bound, bool) or not isinstance(upper_bound, Real)
                                    or upper_bound <= lower_bound):
        raise ValueError(f"upper_bound: expected None or a number > lower_bound ({lower_bound}), got {upper_bound!r}")


def stability_scores(
    model: Model,
    x: torch.Tensor,
    y: Targets,
    attribution: Any = None,
    *,
    explain: Explain | None = None,
    kind: str = "sensitivity",
    domain: str = "pixel",
    samples: int = 200,
    lower_bound: float = 0.2,
    upper_bound: float | None = None,
    eps: float = EPS,
    seed: int = 0,
    batch_size: int = 64,
    nan_when_prediction_changes: bool = False,
    preprocess: Preprocess = None,
    wavelet: str = "haar",
    levels: int = 3,
    mode: str = "reflect",
) -> torch.Tensor:
    """Per-draw scores ``[B, samples]`` (float64): the sensitivity ``||a - a_s|| / ||a||`` (``kind=
    "sensitivity"``) or the RIS objective (``kind="ris"``) of every noisy copy ``s`` of every input.

    ``x`` ``[B, C, *spatial]`` (1, 2 or 3 spatial dims) or ``[B, T]``; ``attribution``: ``explain``'s map of
    ``x`` (computed when None); ``explain(model, inputs, targets)``: the explanation of ``[R, ...]`` inputs in
    ``x``'s layout for classes ``[R]``, called under ``torch.enable_grad()`` on chunks of ``batch_size`` rows.
    ``preprocess`` maps an input to the model's (used only for the prediction check of
    ``nan_when_prediction_changes``). Noise, domains and the rest: see the module docstring.
    """
    check_choice(kind, KINDS, "kind")
    check_choice(domain, DOMAINS, "domain")
    _check_options(explain, samples, lower_bound, upper_bound, batch_size)
    check_input(x, (2, 3, 4, 5), "x", "[B, C, *spatial] with 1, 2 or 3 spatial dims, or [B, T]")
    x4, squeezed = as_batch(x)
    batch, device = x.shape[0], x.device
    targets = as_targets(y, batch, device)

    def explained(inputs: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            return flat_map(explain(model, inputs, classes), inputs.shape[0], "explain")

    if attribution is None:
        a = torch.cat([explained(x[part], targets[part]) for part in chunks(batch, batch_size)])
    else:
        a = flat_map(attribution, batch)
    if domain == "pixel":
        space = x

        def inputs_of(v: torch.Tensor) -> torch.Tensor:
            return v
    else:
        space, shapes = wavelet_features(x4, wavelet, levels, mode)

        def inputs_of(v: torch.Tensor) -> torch.Tensor:
            out = transform.waverec_flat(v, shapes, wavelet, x4.shape[2:]).to(x.dtype)
            return out[:, 0] if squeezed else out

    def predicted(inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(inputs if preprocess is None else preprocess(inputs)).argmax(1)

    before = None
    if nan_when_prediction_changes:
        before = torch.cat([predicted(x[part]) for part in chunks(batch, batch_size)])
    a_norm = a.norm(dim=1)
    out = torch.empty(samples * batch, dtype=torch.float64, device=device)
    for part in chunks(samples * batch, batch_size):
        rows = torch.arange(part.start, part.stop, device=device)
        draw, i = rows // batch, rows % batch  # noise-major: draw s of every input, then draw s + 1
        noise = {s: uniform_noise(tuple(space.shape[1:]), s, lower_bound, upper_bound, seed, device, space.dtype)
                 for s in draw.unique().tolist()}
        v = space[i] + torch.stack([noise[s] for s in draw.tolist()])
        inputs = inputs_of(v)
        maps = explained(inputs, targets[i])
        if maps.shape[1] != a.shape[1]:
            raise ValueError(f"explain: returned maps of {maps.shape[1]} values per input, the attribution of x "
                             f"has {a.shape[1]}")
        delta = a[i] - maps
        if kind == "sensitivity":
            num, den = delta.norm(dim=1), a_norm[i]
            value = torch.where(den > 0, num / torch.where(den > 0, den, 1.0),
                                torch.where(num > 0, torch.inf, 0.0))
        else:
            ref = space[i].flatten(1).double()
            den = _relative(ref - v.flatten(1).double(), ref, eps)
            value = _relative(delta, a[i], eps) / torch.where(den == 0, torch.full_like(den, eps), den)
        if before is not None:
            value = torch.where(predicted(inputs) != before[i], torch.nan, value)
        out[part] = value
    return out.view(samples, batch).T


@register("max_sensitivity")
def max_sensitivity(model: Model, x: torch.Tensor, y: Targets, attribution: Any = None, *,
                    explain: Explain | None = None, domain: str = "pixel", samples: int = 200,
                    lower_bound: float = 0.2, upper_bound: float | None = None, **options: Any) -> torch.Tensor:
    """Max-Sensitivity ``[B]``: ``max_s ||a(x) - a(x + d_s)||_F / ||a(x)||_F``; lower is more stable.
    Quantus' ``MaxSensitivity`` defaults. ``options``: ``seed``, ``batch_size``, ``nan_when_prediction_changes``,
    ``preprocess``, ``wavelet``, ``levels``, ``mode`` (:func:`stability_scores`)."""
    scores = stability_scores(model, x, y, attribution, explain=explain, kind="sensitivity", domain=domain,
                              samples=samples, lower_bound=lower_bound, upper_bound=upper_bound, **options)
    return scores.amax(1).float()


@register("avg_sensitivity")
def avg_sensitivity(model: Model, x: torch.Tensor, y: Targets, attribution: Any = None, *,
                    explain: Explain | None = None, domain: str = "pixel", samples: int = 200,
                    lower_bound: float = 0.2, upper_bound: float | None = None, **options: Any) -> torch.Tensor:
    """Avg-Sensitivity ``[B]``: the mean over the draws of :func:`max_sensitivity`'s ratio; Quantus'
    ``AvgSensitivity`` defaults."""
    scores = stability_scores(model, x, y, attribution, explain=explain, kind="sensitivity", domain=domain,
                              samples=samples, lower_bound=lower_bound, upper_bound=upper_bound, **options)
    return scores.mean(1).float()


@register("relative_input_stability")
def relative_input_stability(model: Model, x: torch.Tensor, y: Targets, attribution: Any = None, *,
                             explain: Explain | None = None, domain: str = "pixel", samples: int = 200,
                             lower_bound: float = 0.02, upper_bound: float | None = 0.2, **options: Any
                             ) -> torch.Tensor:
    """Relative Input Stability ``[B]``: ``max_s ||(a - a_s) / a|| / max(||(v - v_s) / v||, eps)``;
    lower is more stable. Quantus' ``RelativeInputStability`` defaults (noise uniform on [0.02, 0.2], 200
    draws, ``eps=1e-6``) except ``nan_when_prediction_changes`` (False here, True in Quantus). ``options``:
    ``eps`` and those of :func:`max_sensitivity`."""
    scores = stability_scores(model, x, y, attribution, explain=explain, kind="ris", domain=domain, samples=samples,
                              lower_bound=lower_bound, upper_bound=upper_bound, **options)
    return scores.amax(1).float()
