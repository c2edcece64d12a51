"""Speed of WAM against its physical floor, measured in one process.

The floor of a gradient method is the same model's forward pass plus a backward pass to the input alone
(``torch.autograd.grad(output, input)``, parameters not requiring gradients) over the same number of inputs
(``B x n_samples``), same dtype and batch size. ``ratio = seconds / reference_seconds``.

Run ``python -m wam.bench`` (``--scale paper`` for the GPU setting: ResNet-50, 16 images 224x224,
n = 25; the default ``small`` fits 2 CPU cores in about a minute). Output: CSV rows
``benchmark, variant, device, seconds, reference_seconds, ratio``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import pandas as pd
import torch
from torch import nn

from wam.explainer import WAM
from wam.perturbation import optimize_mask
from wam.utils import chunks, input_gradients_only, pick_device

COLUMNS = ["benchmark", "variant", "device", "seconds", "reference_seconds", "ratio"]


def best_time(fn: Callable[[], object], repeats: int = 3, device: torch.device | None = None) -> float:
    """Best wall time of ``repeats`` calls of ``fn`` after one warm-up call (CUDA synchronised), seconds."""
    def sync() -> None:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def gradient_floor(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rows: int, batch_size: int) -> None:
    """Forward + input-only backward of ``model`` over ``rows`` inputs (cycled from ``x``) in chunks."""
    with input_gradients_only(model):
        for rows_slice in chunks(rows, batch_size):
            idx = torch.arange(rows_slice.start, rows_slice.stop, device=x.device) % x.shape[0]
            inputs = x[idx].detach().requires_grad_(True)
            logits = model(inputs)
            torch.autograd.grad(logits.gather(1, y[idx, None]).sum(), inputs)


def forward_floor(model: nn.Module, x: torch.Tensor, rows: int, batch_size: int) -> None:
    """Forward passes alone of ``model`` over ``rows`` inputs (cycled from ``x``), without gradients."""
    with torch.no_grad():
        for rows_slice in chunks(rows, batch_size):
            idx = torch.arange(rows_slice.start, rows_slice.stop, device=x.device) % x.shape[0]
            model(x[idx])


def ratio_row(benchmark: str, variant: str, device: torch.device, seconds: float, reference: float) -> dict:
    return {"benchmark": benchmark, "variant": variant, "device": str(device), "seconds": seconds,
            "reference_seconds": reference, "ratio": seconds / reference}


def wam_vs_floor(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ndim: int, method: str,
                 n_samples: int, batch_size: int, repeats: int = 3) -> dict:
    """One benchmark row: WAM(method) on ``x`` against the gradient floor on ``B x n_samples`` inputs."""
    explainer = WAM(model, ndim=ndim, method=method, n_samples=n_samples, batch_size=batch_size)
    rows = x.shape[0] * explainer.n_samples
    seconds = best_time(lambda: explainer(x, y), repeats, x.device)
    reference = best_time(lambda: gradient_floor(model, x, y, rows, batch_size), repeats, x.device)
    return ratio_row(name, f"{method} n={n_samples} B={x.shape[0]} {tuple(x.shape[1:])}", x.device, seconds, reference)


def perturbation_vs_floor(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ndim: int,
                          alphas: list[float], steps: int, batch_size: int, repeats: int = 3) -> dict:
    """One benchmark row: :func:`wam.perturbation.optimize_mask` on ``B x A`` rows for ``steps`` steps against
    the gradient floor on ``B x A x steps`` inputs, sent ``min(batch_size, B x A)`` at a time (the batch of one
    optimisation step)."""
    rows = x.shape[0] * len(alphas)
    seconds = best_time(lambda: optimize_mask(model, x, y, ndim, alphas, steps=steps, batch_size=batch_size),
                        repeats, x.device)
    reference = best_time(lambda: gradient_floor(model, x, y, rows * steps, min(batch_size, rows)), repeats,
                          x.device)
    return ratio_row(name, f"steps={steps} A={len(alphas)} B={x.shape[0]} {tuple(x.shape[1:])}", x.device,
                     seconds, reference)


def cases(scale: str, device: torch.device) -> list[tuple[str, nn.Module, torch.Tensor, int]]:
    """(name, model, input batch, ndim) for each modality, at the requested scale."""
    import timm
    from monai.networks.nets import resnet18

    from wam.audio import LogMel, WaveformClassifier

    paper = scale == "paper"
    gen = torch.Generator().manual_seed(0)
    image_net = timm.create_model("resnet50" if paper else "resnet18", pretrained=False, num_classes=1000)
    image = torch.rand(16 if paper else 4, 3, 224 if paper else 112, 224 if paper else 112, generator=gen)
    audio_net = WaveformClassifier(LogMel(), timm.create_model("resnet18", pretrained=False, in_chans=1,
                                                                num_classes=50))
    audio = torch.randn(16 if paper else 2, 220500 if paper else 44100, generator=gen) * 0.1
    volume_net = resnet18(spatial_dims=3, n_input_channels=1, num_classes=3)
    side = 64 if paper else 28
    volume = torch.rand(16 if paper else 2, 1, side, side, side, generator=gen)
    return [
        ("wam-2d", image_net.eval().to(device), image.to(device), 2),
        ("wam-1d", audio_net.eval().to(device), audio.to(device), 1),
        ("wam-3d", volume_net.eval().to(device), volume.to(device), 3),
    ]


def run(scale: str = "small", device: str = "auto", repeats: int = 3, batch_size: int | None = None) -> pd.DataFrame:
    """Every WAM benchmark: 2D and 3D smooth and integrated, 1D smooth (with log-mel)."""
    dev = pick_device(device)
    n_samples = 25 if scale == "paper" else 8
    rows = []
    for name, model, x, ndim in cases(scale, dev):
        y = torch.zeros(x.shape[0], dtype=torch.long, device=dev)
        bs = batch_size or (64 if dev.type == "cuda" else 16)
        for method in ("smooth",) if ndim == 1 else ("smooth", "integrated"):
            rows.append(wam_vs_floor(name, model, x, y, ndim, method, n_samples, bs, repeats))
            print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), file=sys.stderr)
    return pd.DataFrame(rows, columns=COLUMNS)


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    """The command line (``python -m wam.bench``; ``wam bench`` passes ``prog="wam bench"``)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=["small", "paper"], default="small")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--out", default="-", help="CSV path ('-': standard output)")
    args = parser.parse_args(argv)
    table = run(args.scale, args.device, args.repeats, args.batch_size)
    table.to_csv(sys.stdout if args.out == "-" else args.out, index=False, float_format="%.6g")


if __name__ == "__main__":
    main()
