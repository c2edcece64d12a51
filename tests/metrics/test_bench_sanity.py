"""The speed benches of the sanity and complexity metrics run and agree with Quantus (timings are not asserted)."""

from __future__ import annotations

import torch

from metrics import bench
from tests.metrics.helpers import saliency

KEYS = {"seconds", "floor_seconds", "quantus_seconds", "max_abs_diff"}


def _checked(out: dict[str, float], randomises: bool = False) -> None:
    assert set(out) == (KEYS | {"randomise_seconds"} if randomises else KEYS)
    assert out["max_abs_diff"] < 1e-5 and all(v >= 0 for v in out.values())


def test_benches_run_and_agree(image_model):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 12, 12, generator=gen), torch.tensor([1, 3])
    complexity = bench.bench_complexity(torch.rand(2, 12, 12, generator=gen), repeat=1)
    assert set(complexity) == {"sparseness", "complexity"}
    for out in complexity.values():
        _checked(out)
    for order in ("cascading", "independent"):
        _checked(bench.bench_mprt(image_model, x, y, saliency, order=order, repeat=1), randomises=True)
    _checked(bench.bench_emprt(image_model, x, y, saliency, repeat=1), randomises=True)
    _checked(bench.bench_random_logit(image_model, x, y, saliency, n_classes=5, repeat=1))
