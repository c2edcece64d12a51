"""The speed suite (target ``speed``): every method and metric against its floor, measured in one process.

Rows ``benchmark, variant, device, seconds, reference_seconds, ratio``:

- ``wam-{1d,2d,3d}``: WAM over the model's forward + input-only backward on ``B x n_samples`` inputs
  (:mod:`wam.bench`);
- ``baseline-{name}``: each baseline over the same floor on the inputs it sends through the model
  (``B`` for Saliency and the CAMs, ``B x n_samples`` for SmoothGrad, ``B x n_steps`` for IG);
- ``perturbation-2d``: ``wam.optimize_mask`` (3 alphas) over the same floor on ``B x alphas x steps`` inputs;
- ``metric-deletion-vs-quantus``: Quantus' PixelFlipping over ours at equal work and equal curves
  (the ratio is Quantus' time over ours: how many times faster we are);
- ``metric-deletion-vs-forward``: our deletion over the forward passes alone on the same perturbed inputs.

``speed.scale: small`` fits 2 CPU cores in a few minutes; ``paper`` is the GPU setting (ResNet-50 at 224x224).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

import baselines
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
    table = pd.DataFrame(rows, columns=bench.COLUMNS)
    files.write_text(out, table.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    files.write_json(Path(f"{out}.provenance.json"), files.provenance(stage="speed", speed=speed,
                                                                      device_used=str(device)))
