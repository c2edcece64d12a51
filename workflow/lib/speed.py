"""The speed suite (target ``speed``): every method and metric against its floor, measured in one process.

Rows ``benchmark, variant, device, seconds, reference_seconds, ratio``:

- ``wam-{1d,2d,3d}``: WAM over the model's forward + input-only backward on ``B x n_samples`` inputs
  (:mod:`wam.bench`);
- ``baseline-{name}``: each baseline over the same floor on the inputs it sends through the model
  (``B`` for Saliency and the CAMs, ``B x n_samples`` for SmoothGrad, ``B x n_steps`` for IG);
- ``perturbation-2d``: ``wam.optimize_mask`` (3 alphas) over the same floor on ``B x alphas x steps`` inputs;
- ``metric-deletion-vs-quantus``: Quantus' PixelFlipping over ours at equal work and equal curves
  (the ratio is Quantus' time over ours: how many times faster we are);
- ``metric-deletion-vs-forward``: our deletion over the forward passes alone on the same perturbed inputs;
- ``metric-{name}-vs-floor`` and ``metric-{name}-vs-quantus`` for the metrics of the ``sanity`` and
  ``metrics_extended`` targets (:func:`sanity_metric_rows`): MPRT (cascading, independent), eMPRT, Random Logit,
  ROAD, Max-/Avg-Sensitivity, RIS, Sparseness, Complexity, each over its floor (the model calls it needs, alone; for
  Sparseness and Complexity the sort / ``a log a`` they cannot avoid) and Quantus' time over ours at equal work.

``speed.scale: small`` fits 2 CPU cores in a few minutes; ``paper`` is the GPU setting (ResNet-50 at 224x224).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

import baselines
from metrics import bench as metric_bench
from metrics.bench import compare_with_quantus
from wam import bench
from wam.utils import pick_device
from workflow.lib import files, plugins
from workflow.lib.config import Config

BASELINE_OPTIONS = {"smoothgrad": ("n_samples", 50), "integrated_gradients": ("n_steps", 50)}


def baseline_rows(model: torch.nn.Module, x: torch.Tensor, batch_size: int, repeats: int) -> list[dict]:
    y = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    rows = []
    for name in baselines.available():
        option, count = BASELINE_OPTIONS.get(name, (None, 1))
        kwargs = {option: count} if option else {}
        explain = baselines.get(name, model, batch_size=batch_size, **kwargs)
        seconds = bench.best_time(lambda explain=explain: explain(x, y), repeats, x.device)
        floor = bench.best_time(lambda count=count: bench.gradient_floor(model, x, y, x.shape[0] * count, batch_size),
                                repeats, x.device)
        rows.append(bench.ratio_row(f"baseline-{name}", f"{option or 'single pass'}={count} B={x.shape[0]} "
                                    f"{tuple(x.shape[1:])}", x.device, seconds, floor))
    return rows


def metric_rows(device: torch.device, scale: str, repeats: int) -> list[dict]:
    """Deletion vs Quantus and vs the forward floor on a one-channel CNN (Quantus ranks channel values)."""
    import timm

    side = 224 if scale == "paper" else 32
    model = timm.create_model("resnet50" if scale == "paper" else "resnet18", pretrained=False, in_chans=1,
                              num_classes=10).eval().to(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16 if scale == "paper" else 4, 1, side, side, generator=gen).to(device)
    attribution = torch.rand(x.shape[0], side, side, generator=gen).to(device)
    features = side * side // (672 if scale == "paper" else 64)
    y = torch.zeros(x.shape[0], dtype=torch.long, device=device)
    r = compare_with_quantus(model, x, y, attribution, features_in_step=features,
                             batch_size=64, repeat=repeats)
    variant = f"steps={side * side // features} B={x.shape[0]} {tuple(x.shape[1:])} max|diff|={r['max_abs_diff']:.1e}"
    return [bench.ratio_row("metric-deletion-vs-quantus", variant, device, r["quantus_seconds"], r["seconds"]),
            bench.ratio_row("metric-deletion-vs-forward", variant, device, r["seconds"], r["forward_floor_seconds"])]


def _pair(name: str, variant: str, device: torch.device, r: dict, floor_key: str, diff_key: str) -> list[dict]:
    """The ``-vs-floor`` and ``-vs-quantus`` rows of one timing dict of :mod:`metrics.bench`."""
    label = {"max_abs_diff": "max|diff|", "max_rel_diff": "max|diff|/|quantus|"}[diff_key]
    variant = f"{variant} {label}={r[diff_key]:.1e}"
    return [bench.ratio_row(f"metric-{name}-vs-floor", variant, device, r["seconds"], r[floor_key]),
            bench.ratio_row(f"metric-{name}-vs-quantus", variant, device, r["quantus_seconds"], r["seconds"])]


def sanity_metric_rows(device: torch.device, scale: str, repeats: int) -> list[dict]:
    """The sanity and extended metrics vs their floors and vs Quantus (:mod:`metrics.bench`) on a one-channel
    ResNet (Quantus' ROAD takes one channel), Saliency (the gradient) as the explainer."""
    import timm

    side, batch = (224, 16) if scale == "paper" else (32, 4)
    model = timm.create_model("resnet50" if scale == "paper" else "resnet18", pretrained=False, in_chans=1,
                              num_classes=10).eval().to(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 1, side, side, generator=gen).to(device)
    attribution = torch.rand(batch, side, side, generator=gen).to(device)
    y = torch.arange(batch, device=device) % 10

    def saliency(m, xs, ys):
        xs = xs.detach().requires_grad_(True)
        return torch.autograd.grad(m(xs).gather(1, ys[:, None]).sum(), xs)[0]

    shape = f"B={batch} {tuple(x.shape[1:])}"
    samples = 200 if scale == "paper" else 10
    rows = []
    for order in ("cascading", "independent"):
        r = metric_bench.bench_mprt(model, x, y, saliency, order=order, repeat=repeats)
        rows += _pair(f"mprt-{order}", f"Saliency, every layer, {shape}", device, r, "floor_seconds", "max_abs_diff")
    r = metric_bench.bench_emprt(model, x, y, saliency, repeat=repeats)
    rows += _pair("emprt", f"Saliency, {shape}", device, r, "floor_seconds", "max_abs_diff")
    r = metric_bench.bench_random_logit(model, x, y, saliency, n_classes=10, repeat=repeats)
    rows += _pair("random-logit", f"Saliency, {shape}", device, r, "floor_seconds", "max_abs_diff")
    r = metric_bench.compare_road_with_quantus(model, x, y, attribution, batch_size=64, repeat=repeats)
    rows += _pair("road", f"50 percentages, noise 0, {shape}", device, r, "forward_floor_seconds", "max_abs_diff")
    for name, r in metric_bench.compare_stability_with_quantus(model, x, y, saliency, samples=samples, batch_size=64,
                                                               repeat=repeats).items():
        rows += _pair(name.replace("_", "-"), f"Saliency, {samples} draws, {shape}", device, r,
                      "explain_floor_seconds", "max_rel_diff")
    maps = torch.rand(16, 224, 224, generator=gen).to(device)  # map-only metrics: microseconds on 4 maps of 32x32
    for name, r in metric_bench.bench_complexity(maps, repeat=repeats).items():
        rows += _pair(name, "B=16 224x224", device, r, "floor_seconds", "max_abs_diff")
    return rows


def write_speed(config: Config, out: Path) -> None:
    """Measure every row (see the module docstring) and write ``out`` (CSV) and its provenance."""
    plugins.load(config.raw)  # plug-in baselines are timed like the built-in ones (baseline_rows)
    device = pick_device(config.device)
    speed = config.section("speed")
    scale, repeats = speed["scale"], speed["repeats"]
    rows = bench.run(scale, str(device), repeats).to_dict("records")
    _, image_model, images, _ = bench.cases(scale, device)[0]
    batch_size = 64 if device.type == "cuda" else 16
    inputs = images if scale == "paper" else images[:2]
    rows += baseline_rows(image_model, inputs, batch_size, repeats)
    y = torch.zeros(inputs.shape[0], dtype=torch.long, device=device)
    rows.append(bench.perturbation_vs_floor("perturbation-2d", image_model, inputs, y, 2, [0.0, 10.0, 100.0],
                                            50 if scale == "paper" else 10, batch_size, repeats))
    rows += metric_rows(device, scale, repeats)
    rows += sanity_metric_rows(device, scale, repeats)
    table = pd.DataFrame(rows, columns=bench.COLUMNS)
    files.write_text(out, table.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    files.write_json(Path(f"{out}.provenance.json"), files.provenance(stage="speed", speed=speed,
                                                                      device_used=str(device)))
