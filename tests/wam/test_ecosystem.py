"""WAM inside the ecosystem: a Quantus ``explain_func``, the log-mel front-end, the tiling helpers."""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
from torchaudio.transforms import AmplitudeToDB, MelSpectrogram

from tests import models
from wam import WAM, quantus_explain, transform
from wam.audio import LogMel


def test_quantus_explain_matches_wam_and_runs_a_quantus_metric(image_model, image_batch):
    x, y = image_batch
    kwargs = {"method": "smooth", "n_samples": 3, "levels": 2}
    a = quantus_explain(image_model, x.numpy(), y.numpy(), **kwargs)
    assert a.shape == (3, 1, 32, 32)
    np.testing.assert_allclose(a[:, 0], WAM(image_model, **kwargs).attribute(x, y).numpy(), rtol=1e-5)
    # Quantus calls explain_func itself (a_batch=None) and scores the heatmaps.
    scores = quantus.Sparseness(disable_warnings=True)(
        model=image_model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None,
        explain_func=quantus_explain, explain_func_kwargs=kwargs, device="cpu",
    )
    expected = quantus.Sparseness(disable_warnings=True)(
        model=image_model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a, device="cpu",
    )
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    assert all(0 < s < 1 for s in scores)


def test_log_mel_is_torchaudio_mel_then_decibels():
    wave = torch.randn(2, 8000, generator=torch.Generator().manual_seed(0))
    ours = LogMel(sample_rate=8000, n_fft=256, n_mels=32)(wave)
    theirs = AmplitudeToDB()(MelSpectrogram(sample_rate=8000, n_fft=256, n_mels=32)(wave)).unsqueeze(1)
    torch.testing.assert_close(ours, theirs)
    assert LogMel()(torch.zeros(1, 1, 44100)).shape == (1, 1, 128, 87)
    with pytest.raises(ValueError, match="waveform: expected"):
        LogMel()(torch.zeros(2, 3, 100))


@pytest.mark.parametrize("ndim,shape", [(1, (2, 1, 64)), (2, (2, 3, 32, 32)), (3, (1, 1, 8, 8, 8))])
def test_bands_round_trip_and_dyadic_tiling_is_invertible(ndim, shape):
    x = torch.rand(*shape)
    coeffs = transform.wavedec(x, ndim, "haar", 3, "reflect")
    flat = transform.bands(coeffs)
    torch.testing.assert_close(transform.waverec(transform.unbands(flat, ndim), ndim, "haar", shape[2:]), x)
    maps = [b.mean(1) for b in flat]
    dyadic = transform.tile(maps, ndim, shape[2:])
    assert dyadic.shape == (shape[0], *shape[2:])
    for got, want in zip(transform.untile(dyadic, [m.shape[1:] for m in maps], ndim), maps, strict=True):
        torch.testing.assert_close(got, want)


def test_dyadic_layout_puts_the_finest_diagonal_bottom_right():
    # approx and level 2 (H, V, D) are 4 x 4, level 1 (H, V, D) 8 x 8
    maps = [torch.full((1, 4, 4) if i < 4 else (1, 8, 8), float(i)) for i in range(7)]
    dyadic = transform.tile(maps, 2, (16, 16))[0]
    assert dyadic[0, 0] == 0 and dyadic[0, 5] == 1 and dyadic[5, 0] == 2 and dyadic[5, 5] == 3
    assert dyadic[0, 12] == 4 and dyadic[12, 0] == 5 and dyadic[12, 12] == 6


def test_levels_deeper_than_the_input_allows_are_refused():
    with pytest.raises(ValueError, match=r"levels: expected an integer in \[1, 2\]"):
        WAM(models.linear_model((1, 4)), ndim=1, levels=3)(torch.rand(1, 1, 4), 0)


@pytest.mark.parametrize("ndim,shape", [(1, (1, 1, 256)), (2, (1, 3, 32, 32)), (3, (1, 1, 16, 16, 16))])
def test_viz_draws_the_dyadic_map_with_one_outline_per_level_and_each_scale(ndim, shape):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wam import viz

    expl = WAM(models.smooth_model(shape[1:]), ndim=ndim, method="gradient", levels=3)(torch.rand(*shape), 0)
    fig, axes = plt.subplots(1, 5)
    ax = viz.dyadic(expl, ax=axes[0])
    outlines = ax.lines[1:] if ndim == 1 else ax.patches  # 1D: the curve, then one line per level
    assert len(outlines) == 3
    viz.scales(expl, axes=axes[1:], approx=True)
    shares = expl.scale_shares()[0].tolist()
    assert [a.get_title() for a in axes[1:]] == [f"{name} (share {share:.2f})" for name, share in
                                                 zip(["level 1", "level 2", "level 3", "approximation"], shares,
                                                     strict=True)]
    plt.close(fig)
