"""Speed of :func:`metrics.deletion` against Quantus' ``PixelFlipping`` and against the forward floor.

Called by the workflow's ``speed`` target (ratios measured in one process, never asserted in tests).

Example::

    >>> from metrics.bench import compare_with_quantus
    >>> compare_with_quantus(model, x, y, attribution, features_in_step=16, batch_size=64)  # doctest: +SKIP
    {'seconds': ..., 'quantus_seconds': ..., 'forward_floor_seconds': ..., 'max_abs_diff': ...}
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

from metrics.curves import deletion
from metrics.perturbation import as_batch
from wam.utils import as_targets, chunks


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def compare_with_quantus(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attribution: torch.Tensor,
    features_in_step: int,
    batch_size: int,
    repeat: int = 3,
) -> dict[str, float]:
    """Time ``deletion`` (pixel domain, "black" baseline = per-sample min of ``x``, softmax) vs
    ``quantus.PixelFlipping(features_in_step, perturb_baseline="black")`` on the same curves, and vs the
    floor: the model's forward passes alone over the same number of inputs (``B * (steps + 1)``) in
    chunks of ``batch_size``. Best of ``repeat`` interleaved rounds, after one warm-up.

    ``x`` ``[B, 1, *spatial]`` (one channel: Quantus ranks each channel value separately),
    ``attribution`` ``[B, *spatial]`` without ties. Returns seconds, quantus_seconds,
    forward_floor_seconds and max_abs_diff (our curve without its first point vs Quantus').
    """
    import quantus  # slow to import; only needed here

    x4, _ = as_batch(x)
    if x4.shape[1] != 1:
        raise ValueError(f"x: expected one channel [B, 1, *spatial], got shape {tuple(x.shape)}")
    n = x4[0, 0].numel()
    if features_in_step < 1 or n % features_in_step:
        raise ValueError(f"features_in_step: expected a divisor of the {n} features, got {features_in_step}")
    steps = n // features_in_step
    batch = x.shape[0]
    y = as_targets(y, batch, x.device)
    black = x.flatten(1).amin(dim=1).view(batch, *[1] * (x.dim() - 1))
    model.eval()

    def ours() -> torch.Tensor:
        return deletion(model, x, y, attribution, domain="pixel", steps=steps, baseline=black,
                        batch_size=batch_size).probs

    metric = quantus.PixelFlipping(features_in_step=features_in_step, perturb_baseline="black",
                                   normalise=False, disable_warnings=True, display_progressbar=False)
    x_np, y_np = x.detach().cpu().numpy(), y.cpu().numpy()
    a_np = attribution.detach().reshape(x.shape).cpu().numpy()
    device = "cuda" if x.is_cuda else "cpu"

    def theirs() -> list:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return metric(model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np, device=device,
                          softmax=True, batch_size=batch_size)

    rows = batch * (steps + 1)
    block = x4[:1].expand(min(batch_size, rows), *x4.shape[1:]).reshape(-1, *x.shape[1:]).contiguous()

    def floor() -> None:
        with torch.no_grad():
            for part in chunks(rows, batch_size):
                model(block[: part.stop - part.start]).softmax(dim=1)

    for fn in (ours, floor):
        fn()  # warm-up
    # Interleaved rounds (ours, floor, quantus), best of each: load on a shared machine hits all three alike.
    best = {"ours": float("inf"), "floor": float("inf"), "quantus": float("inf")}
    for _ in range(repeat):
        for name, fn in (("ours", ours), ("floor", floor), ("quantus", theirs)):
            seconds, result = _timed(fn)
            best[name] = min(best[name], seconds)
            if name == "ours":
                probs = result
            elif name == "quantus":
                curves = result
    seconds, floor_seconds, quantus_seconds = best["ours"], best["floor"], best["quantus"]
    diff = (probs[:, 1:].cpu().double() - torch.as_tensor(curves, dtype=torch.float64)).abs().max()
    return dict(seconds=seconds, quantus_seconds=quantus_seconds, forward_floor_seconds=floor_seconds,
                max_abs_diff=float(diff))
