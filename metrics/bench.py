"""Speed of the metrics against Quantus and against their floors: :func:`metrics.deletion` vs ``PixelFlipping``
(:func:`compare_with_quantus`), ROAD (:func:`compare_road_with_quantus`), the stability metrics
(:func:`compare_stability_with_quantus`), the sanity and complexity metrics (``bench_mprt``, ``bench_emprt``,
``bench_random_logit``, ``bench_complexity``).

Called by the workflow's ``speed`` target (ratios measured in one process, never asserted in tests).

Example::

    >>> import torch
    >>> from metrics.bench import compare_with_quantus
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 8, 4)).eval()
    >>> x, y = torch.rand(2, 1, 8, 8), torch.tensor([0, 1])
    >>> times = compare_with_quantus(model, x, y, torch.rand(2, 8, 8), features_in_step=16, batch_size=64, repeat=1)
    >>> sorted(times), times["max_abs_diff"] < 1e-5
    (['forward_floor_seconds', 'max_abs_diff', 'quantus_seconds', 'seconds'], True)
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from metrics.complexity import complexity, sparseness
from metrics.curves import deletion
from metrics.maps import reduce
from metrics.perturbation import as_batch
from metrics.randomisation import emprt, mprt, random_logit, randomise, randomised_models
from metrics.registry import get
from metrics.road import PERCENTAGES, road_morf
from metrics.stability import Explain, uniform_noise
from wam import bench as wam_bench
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


def _rounds(fns: dict[str, Callable[[], object]], repeat: int) -> tuple[dict[str, float], dict[str, float],
                                                                        dict[str, object]]:
    """Best and worst seconds of each of ``fns`` over ``repeat`` interleaved rounds (after one warm-up call of
    each but the first: Quantus, slow, is timed cold), and the result of each one's last call."""
    for name in list(fns)[:-1]:
        fns[name]()
    times: dict[str, list[float]] = {name: [] for name in fns}
    results: dict[str, object] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            seconds, results[name] = _timed(fn)
            times[name].append(seconds)
    return ({n: min(t) for n, t in times.items()}, {n: max(t) for n, t in times.items()}, results)


def _row(best: dict[str, float], worst: dict[str, float], floor_key: str, diff_key: str, diff: float
         ) -> dict[str, float]:
    """The timing dict: best of ours / Quantus / the floor, each with its worst (``*_max``), and the difference."""
    return {"seconds": best["ours"], "seconds_max": worst["ours"], "quantus_seconds": best["quantus"],
            "quantus_seconds_max": worst["quantus"], floor_key: best["floor"], f"{floor_key}_max": worst["floor"],
            diff_key: diff}


def compare_road_with_quantus(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attribution: torch.Tensor,
    percentages: Sequence[float] = PERCENTAGES,
    batch_size: int = 64,
    repeat: int = 3,
) -> dict[str, float]:
    """Time :func:`metrics.road.road_morf` (noise 0, ``score="top1"``) vs ``quantus.ROAD(noise=0,
    percentages)`` on the same curves, and vs the floor: the model's forward passes alone over the same number of
    inputs (``B * len(percentages)``) in chunks of ``batch_size`` (:func:`wam.bench.forward_floor`). Best and
    worst of ``repeat`` interleaved rounds.

    ``x`` ``[B, 1, *spatial]`` (2D: Quantus' ROAD indexes the flattened ``C H W`` attribution against an ``H W``
    mask, so it fails on several channels), ``attribution`` ``[B, *spatial]`` without ties. Returns seconds,
    quantus_seconds, forward_floor_seconds (each best, and ``*_max``: worst) and max_abs_diff (our per-percentage
    share of inputs still classified as ``y`` vs Quantus', which is that share).

    >>> import torch
    >>> cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 3)).eval()
    >>> x, a = torch.rand(2, 1, 8, 8), torch.rand(2, 8, 8)
    >>> r = compare_road_with_quantus(cnn, x, torch.tensor([0, 1]), a, [10, 50, 90], repeat=1)
    >>> r["max_abs_diff"], r["seconds"] > 0, r["quantus_seconds"] > 0, r["forward_floor_seconds"] > 0
    (0.0, True, True, True)
    """
    import quantus  # slow to import; only needed here

    x4, _ = as_batch(x)
    if x4.shape[1] != 1 or x4.dim() != 4:
        raise ValueError(f"x: expected one-channel images [B, 1, H, W], got shape {tuple(x.shape)}")
    batch = x.shape[0]
    y = as_targets(y, batch, x.device)
    model.eval()
    metric = quantus.ROAD(noise=0.0, percentages=list(percentages), disable_warnings=True,
                          display_progressbar=False)
    x_np, y_np = x.detach().cpu().numpy(), y.cpu().numpy()
    a_np = attribution.detach().reshape(x.shape).cpu().numpy()
    device = "cuda" if x.is_cuda else "cpu"

    def ours() -> torch.Tensor:
        return road_morf(model, x, y, attribution, percentages=percentages, noise=0.0, score="top1",
                         batch_size=batch_size).probs

    def theirs() -> dict:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return metric(model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np, device=device,
                          batch_size=batch_size)

    def floor() -> None:
        wam_bench.forward_floor(model, x, batch * len(percentages), batch_size)

    best, worst, results = _rounds({"ours": ours, "floor": floor, "quantus": theirs}, repeat)
    share = results["ours"].mean(0).cpu().double()
    diff = (share - torch.tensor([results["quantus"][p] for p in percentages], dtype=torch.float64)).abs().max()
    return _row(best, worst, "forward_floor_seconds", "max_abs_diff", float(diff))


STABILITY_QUANTUS = {"max_sensitivity": "MaxSensitivity", "avg_sensitivity": "AvgSensitivity",
                     "relative_input_stability": "RelativeInputStability"}


def compare_stability_with_quantus(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    explain: Explain,
    samples: int = 200,
    batch_size: int = 64,
    repeat: int = 3,
) -> dict[str, dict[str, float]]:
    """For each of Max-Sensitivity, Avg-Sensitivity and RIS (default noise bounds): time ours vs Quantus' metric
    on the same draws (its ``perturb_func`` returns our draw ``s`` at its ``s``-th call; prediction checks off in
    both) and vs the floor: ``explain`` alone over the same number of rows (``samples * B``) in chunks of
    ``batch_size``. Both are given the attribution of ``x``. Best and worst of ``repeat`` interleaved rounds.

    ``x`` ``[B, C, H, W]`` (Quantus' RIS takes 2D images); ``explain(model, x, y)`` returns a tensor map.
    Returns ``{metric: {seconds, quantus_seconds, explain_floor_seconds (best; *_max: worst),
    max_rel_diff}}``, ``max_rel_diff`` our scores vs Quantus'.

    >>> import torch
    >>> cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 3)).eval()
    >>> def gradient(model, x, y):
    ...     x = x.detach().requires_grad_(True)
    ...     return torch.autograd.grad(model(x).gather(1, y[:, None]).sum(), x)[0]
    >>> r = compare_stability_with_quantus(cnn, torch.rand(2, 1, 8, 8), torch.tensor([0, 1]), gradient, samples=4,
    ...                                    repeat=1)
    >>> sorted(r), all(v["max_rel_diff"] < 1e-5 for v in r.values())
    (['avg_sensitivity', 'max_sensitivity', 'relative_input_stability'], True)
    """
    import quantus  # slow to import; only needed here

    if x.dim() != 4:
        raise ValueError(f"x: expected images [B, C, H, W], got shape {tuple(x.shape)}")
    batch = x.shape[0]
    y = as_targets(y, batch, x.device)
    model.eval()
    with torch.enable_grad():
        a = explain(model, x, y).detach()
    x_np, y_np, a_np = x.detach().cpu().numpy(), y.cpu().numpy(), a.cpu().numpy()

    def floor() -> None:
        with torch.enable_grad():
            for part in chunks(samples * batch, batch_size):
                idx = torch.arange(part.start, part.stop, device=x.device) % batch
                explain(model, x[idx], y[idx])

    def quantus_explain(model, inputs, targets, **_):
        t = torch.as_tensor(inputs, device=x.device)
        with torch.enable_grad():
            return explain(model, t, torch.as_tensor(targets, device=x.device).long()).detach().cpu().numpy()

    out = {}
    for name, cls in STABILITY_QUANTUS.items():
        ours_fn = get(name)
        bounds = {"lower_bound": 0.02, "upper_bound": 0.2} if name == "relative_input_stability" else \
            {"lower_bound": 0.2, "upper_bound": None}

        def ours(fn=ours_fn, bounds=bounds) -> torch.Tensor:
            return fn(model, x, y, a, explain=explain, samples=samples, batch_size=batch_size, **bounds)

        def theirs(cls=cls, bounds=bounds) -> np.ndarray:
            draws = iter(range(samples))

            def perturb(arr, indices, **_):
                d = uniform_noise(tuple(x.shape[1:]), next(draws), bounds["lower_bound"], bounds["upper_bound"], 0,
                                  x.device)
                return arr + d.reshape(1, -1).cpu().numpy()

            nan = {"return_nan_when_prediction_changes": False}
            metric = getattr(quantus, cls)(nr_samples=samples, perturb_func=perturb, disable_warnings=True,
                                           display_progressbar=False, **nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return np.asarray(metric(model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np,
                                         explain_func=quantus_explain, device="cuda" if x.is_cuda else "cpu",
                                         batch_size=batch_size), dtype=np.float64)

        best, worst, results = _rounds({"ours": ours, "floor": floor, "quantus": theirs}, repeat)
        mine = results["ours"].cpu().double().numpy()
        diff = float(np.max(np.abs(mine - results["quantus"]) / np.maximum(np.abs(results["quantus"]), 1e-12)))
        out[name] = _row(best, worst, "explain_floor_seconds", "max_rel_diff", diff)
    return out
# -- Sanity and complexity metrics -------------------------------------------------------------------------------
# Each ``bench_*`` times one metric three ways on the same inputs, in interleaved rounds (best of ``repeat`` after a
# warm-up): ours, its floor and, at equal work, Quantus 0.6. The floor of a randomisation check is its explain calls
# alone (on the very models it explains); of a map-only metric, the arithmetic it cannot avoid. Returns seconds,
# floor_seconds, quantus_seconds and max_abs_diff (ours vs Quantus' values); the model-randomising checks add
# randomise_seconds: building their randomised models alone (deep copy and re-drawn weights, Quantus' work too).


def _race(fns: dict[str, Callable[[], object]], repeat: int, own_time: tuple[str, ...] = ()
          ) -> tuple[dict[str, float], dict[str, object]]:
    """Best time of each function over ``repeat`` interleaved rounds (after one warm-up each) and its last result.
    The functions named in ``own_time`` time themselves: their result is their seconds."""
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat: expected a positive integer, got {repeat!r}")
    results = {name: fn() for name, fn in fns.items()}  # warm-up
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            seconds, results[name] = _timed(fn)
            best[name] = min(best[name], results[name] if name in own_time else seconds)
    return best, results


def _quiet(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` with warnings silenced (Quantus warns about its parameterisation on every call)."""

    def call() -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()

    return call


def _report(best: dict[str, float], ours: object, theirs: object) -> dict[str, float]:
    diff = (torch.as_tensor(ours, dtype=torch.float64).cpu() - torch.as_tensor(theirs, dtype=torch.float64)).abs()
    out = dict(seconds=best["ours"], floor_seconds=best["floor"], quantus_seconds=best["quantus"],
               max_abs_diff=float(diff.max()))
    if "randomise" in best:
        out["randomise_seconds"] = best["randomise"]
    return out


def quantus_layer_order(model: nn.Module, order: str = "cascading") -> list[str]:
    """The blocks Quantus' ``MPRT`` randomises, in its order: every module with ``reset_parameters``, output
    first (``"cascading"``, its ``"top_down"``) or as registered (``"independent"``). With one seed per block,
    ``seed + 1`` each (what Quantus draws with), :func:`metrics.randomisation.mprt` re-draws the same weights."""
    names = [name for name, m in model.named_modules() if callable(getattr(m, "reset_parameters", None))]
    return names[::-1] if order == "cascading" else names


def quantus_other_classes(y: torch.Tensor, n_classes: int, seed: int = 42) -> torch.Tensor:
    """The other classes ``[B]`` Quantus' ``RandomLogit`` explains for classes ``y`` ``[B]`` (one batch): after
    ``np.random.seed(seed)``, ``randint(0, n_classes - 1, B)`` indexes each sample's other classes, ascending."""
    y_np = y.cpu().numpy()
    others = np.stack([np.delete(np.arange(n_classes), c) for c in y_np])
    picks = np.random.RandomState(seed).randint(0, n_classes - 1, len(y_np))
    return torch.as_tensor(others[np.arange(len(y_np)), picks], device=y.device)


def _numpy_explain(explain, x: torch.Tensor) -> Callable[..., np.ndarray]:
    """Quantus' ``explain_func(model, inputs, targets)`` (numpy in and out) around ``explain`` (channels summed)."""

    def quantus_explain(model, inputs, targets, **_):
        xs = torch.as_tensor(inputs, device=x.device)
        return reduce(explain(model, xs, torch.as_tensor(targets, device=x.device).long()), xs).cpu().numpy()

    return quantus_explain


def _entropy_floor(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.special.xlogy(a, a).sum(1), a.sum(1)


def bench_complexity(attribution: torch.Tensor, repeat: int = 3) -> dict[str, dict[str, float]]:
    """``sparseness`` and ``complexity`` on maps ``[B, *spatial]`` vs Quantus' ``Sparseness`` and ``Complexity``
    (``normalise=False``, ``abs=True``: the same values up to Quantus' epsilons) and vs their floors, the work
    neither can avoid: one sort of ``|a|`` per row (Gini needs the order); one ``a log a`` per value and two sums
    per row (the entropy). Returns one dict per metric."""
    import quantus

    a = attribution.detach()
    a_np = a.unsqueeze(1).cpu().numpy()
    x_np, y_np = np.zeros_like(a_np), np.zeros(a.shape[0], dtype=int)
    out = {}
    for name, ours, floor, metric in (
        ("sparseness", sparseness, lambda: a.flatten(1).abs().sort(dim=1).values, quantus.Sparseness),
        ("complexity", complexity, lambda: _entropy_floor(a.flatten(1).abs()), quantus.Complexity),
    ):
        q = metric(normalise=False, abs=True, disable_warnings=True, display_progressbar=False)
        best, results = _race({"ours": lambda f=ours: f(a), "floor": floor,
                               "quantus": _quiet(lambda q=q: q(model=None, x_batch=x_np, y_batch=y_np,
                                                               a_batch=a_np.copy()))}, repeat)
        out[name] = _report(best, results["ours"], results["quantus"])
    return out


def bench_mprt(model: nn.Module, x: torch.Tensor, y: torch.Tensor, explain, order: str = "cascading",
               seed: int = 42, repeat: int = 3) -> dict[str, float]:
    """:func:`metrics.randomisation.mprt` (Spearman) vs Quantus' ``MPRT`` at equal work: Quantus' blocks
    (:func:`quantus_layer_order`) and weights (seed ``seed + 1`` per block), the same ``explain`` (through a numpy
    adapter), Quantus given the original maps (``a_batch``) so that both make ``blocks + 1`` explain calls. Floor:
    those explain calls alone, on the model and on each randomised model. ``max_abs_diff``: Spearman, every step.
    ``x`` ``[B, C, *spatial]``."""
    import quantus

    y = as_targets(y, x.shape[0], x.device)
    blocks = quantus_layer_order(model, order)
    seeds = [seed + 1] * len(blocks)
    a_np = reduce(explain(model, x, y), x).cpu().numpy()
    metric = quantus.MPRT(layer_order="top_down" if order == "cascading" else "independent", seed=seed,
                          disable_warnings=True, display_progressbar=False)
    x_np, y_np = x.detach().cpu().numpy(), y.cpu().numpy()
    device = "cuda" if x.is_cuda else "cpu"

    def ours() -> torch.Tensor:
        return mprt(model, x, y, explain, blocks=blocks, order=order, seed=seeds, measures=("spearman",)
                    ).similarity["spearman"]

    def floor() -> float:  # the explain calls' own time: the models are re-drawn between them
        seconds = _timed(lambda: explain(model, x, y))[0]
        for random_model in randomised_models(model, blocks, seeds, order):
            seconds += _timed(lambda m=random_model: explain(m, x, y))[0]
        return seconds

    def theirs() -> list:
        scores = metric(model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np.copy(),
                        explain_func=_numpy_explain(explain, x), device=device, batch_size=x.shape[0])
        return [scores[k] for k in scores]

    best, results = _race({"ours": ours, "floor": floor, "quantus": _quiet(theirs),
                           "randomise": lambda: list(randomised_models(model, blocks, seeds, order))}, repeat,
                          own_time=("floor",))
    return _report(best, results["ours"], results["quantus"])


def bench_emprt(model: nn.Module, x: torch.Tensor, y: torch.Tensor, explain, seed: int = 42,
                repeat: int = 3) -> dict[str, float]:
    """:func:`metrics.randomisation.emprt` vs Quantus' ``EfficientMPRT`` at equal work (its blocks and weights as in
    :func:`bench_mprt`, ``skip_layers``: two explain calls; given the entropy of ``|a| / sum |a|`` as its complexity,
    ``normalise=False``); ``max_abs_diff`` compares ours with Quantus' ``ratio - 1`` plus 1. Floor: ``explain`` on
    the model and on the fully randomised model."""
    import quantus
    import scipy.stats

    y = as_targets(y, x.shape[0], x.device)
    blocks = quantus_layer_order(model)
    seeds = [seed + 1] * len(blocks)
    random_model = randomise(model, blocks, seeds)
    metric = quantus.EfficientMPRT(complexity_func=lambda a, x, **_: scipy.stats.entropy(np.abs(a).ravel()),
                                   complexity_func_kwargs={"n_bins": 100}, normalise=False, abs=False, seed=seed,
                                   layer_order="top_down", disable_warnings=True, display_progressbar=False)
    x_np, y_np = x.detach().cpu().numpy(), y.cpu().numpy()
    device = "cuda" if x.is_cuda else "cpu"

    def floor() -> None:
        explain(model, x, y)
        explain(random_model, x, y)

    def theirs() -> np.ndarray:
        return np.asarray(metric(model=model, x_batch=x_np, y_batch=y_np, a_batch=None, device=device,
                                 explain_func=_numpy_explain(explain, x), batch_size=x.shape[0])) + 1

    best, results = _race({"ours": lambda: emprt(model, x, y, explain, blocks=blocks, seed=seeds),
                           "floor": floor, "quantus": _quiet(theirs),
                           "randomise": lambda: randomise(model, blocks, seeds)}, repeat)
    return _report(best, results["ours"], results["quantus"])


def bench_random_logit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, explain, n_classes: int,
                       seed: int = 42, repeat: int = 3) -> dict[str, float]:
    """:func:`metrics.randomisation.random_logit` (Spearman) vs Quantus' ``RandomLogit`` (Spearman, ``abs=True``)
    at equal work: the other classes Quantus draws (:func:`quantus_other_classes`) given to ours, both computing the
    two maps. Floor: ``explain`` on ``[x, x]`` for ``[y, other]`` (ours makes that one call of ``2 B`` inputs)."""
    import quantus

    y = as_targets(y, x.shape[0], x.device)
    other = quantus_other_classes(y, n_classes, seed)
    metric = quantus.RandomLogit(num_classes=n_classes, seed=seed, abs=True, disable_warnings=True,
                                 similarity_func=quantus.similarity_func.correlation_spearman,
                                 display_progressbar=False)
    x_np, y_np = x.detach().cpu().numpy(), y.cpu().numpy()
    xx, yy = torch.cat([x, x]), torch.cat([y, other])
    device = "cuda" if x.is_cuda else "cpu"

    def ours() -> torch.Tensor:
        return random_logit(model, x, y, explain, other=other, measures=("spearman",))["spearman"]

    def theirs() -> list:
        return metric(model=model, x_batch=x_np, y_batch=y_np, a_batch=None, device=device,
                      explain_func=_numpy_explain(explain, x), batch_size=x.shape[0])

    best, results = _race({"ours": ours, "floor": lambda: explain(model, xx, yy), "quantus": _quiet(theirs)},
                          repeat)
    return _report(best, results["ours"], results["quantus"])
