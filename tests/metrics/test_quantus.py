"""Cross-check with Quantus 0.6.0: deletion with a per-sample min ("black") baseline == PixelFlipping."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import quantus
import torch

import metrics
from metrics.bench import compare_with_quantus
from tests.metrics.helpers import OneChannelCNN


@pytest.mark.parametrize("features_in_step", [4, 16])
def test_deletion_matches_pixel_flipping(features_in_step):
    gen = torch.Generator().manual_seed(0)
    model = OneChannelCNN()
    x = torch.rand(3, 1, 16, 16, generator=gen)
    y = torch.tensor([0, 2, 3])
    a = torch.rand(3, 16, 16, generator=gen)  # continuous: no ties
    steps = 256 // features_in_step
    black = x.flatten(1).amin(1).view(3, 1, 1, 1)
    ours = metrics.deletion(model, x, y, a, domain="pixel", steps=steps, baseline=black).probs
    metric = quantus.PixelFlipping(features_in_step=features_in_step, perturb_baseline="black",
                                   disable_warnings=True, display_progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a[:, None].numpy(),
                        device="cpu", softmax=True)
    theirs = np.asarray(theirs)
    assert theirs.shape == (3, steps)
    np.testing.assert_allclose(ours[:, 1:].numpy(), theirs, atol=1e-5, rtol=0)


def test_bench_runs_and_agrees():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, 8, 8, generator=gen)
    out = compare_with_quantus(OneChannelCNN(), x, torch.tensor([1, 3]), torch.rand(2, 8, 8, generator=gen),
                               features_in_step=4, batch_size=8, repeat=1)
    assert set(out) == {"seconds", "quantus_seconds", "forward_floor_seconds", "max_abs_diff"}
    assert out["max_abs_diff"] < 1e-5 and all(v >= 0 for v in out.values())
