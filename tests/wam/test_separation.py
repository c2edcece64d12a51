"""wam.separation: 0 dB noise, batched reconstructions equal to Explanation.filter, perfect rebuild at keep 1, and
a model that listens to one time window only: WAM keeps that window and beats the random control."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from wam import WAM, separation, transform
from wam.audio import LogMel, WaveformClassifier

RATE, T = 8000, 8192
HOP, N_FFT = 128, 256
FRAMES = (20, 40)                                   # the frames the model listens to
WINDOW = (FRAMES[0] * HOP - N_FFT // 2, (FRAMES[1] - 1) * HOP + N_FFT // 2)  # samples those frames see


class WindowListener(nn.Module):
    """Classifier of a log-mel ``[B, 1, M, F]``: logit 0 = mean level of frames ``FRAMES``, logit 1 = 1.0."""

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        v = spec[..., FRAMES[0]:FRAMES[1]].mean(dim=(1, 2, 3))
        return torch.stack([v, torch.ones_like(v)], dim=1)


def window_model() -> WaveformClassifier:
    return WaveformClassifier(LogMel(RATE, n_fft=N_FFT, hop_length=HOP, n_mels=16, floor_db=5.0),
                              WindowListener()).eval()


def tone(freq: float, start: int, stop: int) -> torch.Tensor:
    """A Hann-windowed tone in ``[start, stop)`` samples, zero elsewhere, ``[T]``."""
    t = torch.arange(T) / RATE
    out = torch.zeros(T)
    out[start:stop] = torch.sin(2 * math.pi * freq * t[start:stop]) * torch.hann_window(stop - start)
    return out


def test_0db_noise_has_snr_zero_and_is_seeded():
    gen = torch.Generator().manual_seed(0)
    x = torch.stack([tone(440, 0, T), 0.01 * torch.randn(T, generator=gen), tone(90, 100, 900)])
    noisy = separation.add_0db_noise(x, torch.Generator().manual_seed(3))
    noise = noisy - x
    snr = 10 * torch.log10(x.pow(2).sum(1) / noise.pow(2).sum(1))
    assert snr.abs().max() < 0.01
    torch.testing.assert_close(noisy, separation.add_0db_noise(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(noisy, separation.add_0db_noise(x, torch.Generator().manual_seed(4)))
    assert torch.equal(separation.add_0db_noise(torch.zeros(1, 16), gen), torch.zeros(1, 16))  # silence stays


def test_filter_many_equals_filter_in_one_inverse_transform(monkeypatch):
    gen = torch.Generator().manual_seed(1)
    model = window_model()
    x = tone(700, 2600, 4900)[None] + 0.05 * torch.randn(2, T, generator=gen)
    expl = WAM(model, ndim=1, method="gradient")(x, [0, 0])
    keeps = [0.01, 0.1, 0.5, 1.0]
    calls = []
    waverec = transform.waverec
    monkeypatch.setattr(transform, "waverec", lambda *a, **k: calls.append(1) or waverec(*a, **k))
    many = separation.filter_many(expl, keeps)
    assert len(calls) == 1 and many.shape == (2, len(keeps), T)
    monkeypatch.undo()
    torch.testing.assert_close(many, torch.stack([expl.filter(k) for k in keeps], dim=1), rtol=0, atol=0)


def test_silence_mix_rebuilt_at_keep_one_is_perfect():
    x = tone(500, 1000, 7000) + 0.01 * tone(3000, 0, T)
    mixed = separation.overlap(x, tone(1200, 0, T), 0.0)         # lambda 0: a mix with silence
    expl = WAM(window_model(), ndim=1, method="smooth", n_samples=2)(mixed[None], [0])
    rebuilt = separation.filter_many(expl, [1.0])[:, 0]
    assert separation.si_sdr(rebuilt, x[None]).item() >= 60
    coeffs = transform.bands(transform.wavedec(mixed[None, None], 1, "haar", 3, "reflect"))
    for scores in ([c.abs() for c in coeffs], [torch.rand(c.shape) for c in coeffs]):
        out = transform.keep_top(coeffs, scores, [1.0], 1, "haar", (T,))[:, 0, 0]
        assert separation.si_sdr(out, x[None]).item() >= 60


def test_wam_keeps_the_window_the_model_listens_to_and_beats_random():
    target = tone(700, 2600, 4900)                                # inside WINDOW
    distractor = tone(300, 200, 2200) + tone(1100, 5400, 8000)     # outside WINDOW
    mixture = separation.overlap(target, distractor, 0.5)
    model = window_model()
    keep = 0.2                                                    # under the window's share of the clip (0.33)
    for method in ("gradient", "integrated"):
        expl = WAM(model, ndim=1, method=method, n_samples=8)(mixture[None], [0])
        flat = torch.cat([g.abs().flatten(1) for g in transform.bands(expl.grads)], dim=1)
        kept = transform.keep_masks(flat, [keep])[0, 0]
        # every kept coefficient's support lies in the window (haar level j: 2^j samples per coefficient)
        coeffs = transform.bands(expl.coeffs)
        starts = torch.cat([torch.arange(c.shape[-1]) * 2 ** level
                            for c, level in zip(coeffs, transform.band_levels(len(coeffs), 1), strict=True)])
        assert ((starts[kept] >= WINDOW[0] - 8) & (starts[kept] < WINDOW[1] + 8)).all()
        rebuilt = separation.filter_many(expl, [keep])[0, 0]
        assert rebuilt[: WINDOW[0] - 8].abs().max() == 0 and rebuilt[WINDOW[1] + 8:].abs().max() == 0
        random = transform.keep_top(coeffs, [torch.rand(c.shape, generator=torch.Generator().manual_seed(0))
                                              for c in coeffs], [keep], 1, "haar", (T,))[0, 0, 0]
        wam_sdr, random_sdr = separation.si_sdr(rebuilt, target).item(), separation.si_sdr(random, target).item()
        input_sdr = separation.si_sdr(mixture, target).item()
        assert wam_sdr > random_sdr + 10 and wam_sdr > input_sdr, (method, wam_sdr, random_sdr, input_sdr)


def test_mel_masks_keep_the_chosen_bins():
    model = window_model()
    x = (tone(700, 2600, 4900) + 0.3 * tone(2500, 200, 2200))[None]
    spec = model.frontend(x)[:, 0]                                  # [1, M, F]
    attribution = torch.zeros_like(spec)
    attribution[..., FRAMES[0]:FRAMES[1]] = 1.0                    # the window's bins ranked first
    share = (FRAMES[1] - FRAMES[0]) / spec.shape[-1]
    stft = separation.mel_mask_stft(model.frontend, x, attribution, [share, 1.0])
    assert stft.shape == (1, 2, T)
    assert stft[0, 0, :WINDOW[0] - N_FFT].abs().max() < 1e-6        # nothing outside the kept frames
    assert separation.si_sdr(stft[0, 1], x[0]).item() > 20          # every bin kept: the STFT round trip
    griffin = separation.mel_mask(model.frontend, x, attribution, [share], n_iter=4)
    assert griffin.shape == (1, 1, T) and torch.isfinite(griffin).all()
    assert griffin[0, 0, :WINDOW[0] - N_FFT].abs().max() < 1e-3 * griffin.abs().max()
    torch.testing.assert_close(separation.mel_power(model.frontend, spec), model.frontend.mel(x),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, [], [0.1, 0], "half", True])
def test_bad_keeps_and_lambda(bad):
    with pytest.raises(ValueError, match="keep"):
        transform.check_keeps(bad)
    with pytest.raises(ValueError, match="lam"):
        separation.overlap(torch.zeros(4), torch.zeros(4), -0.2)
    with pytest.raises(ValueError, match="distractor"):
        separation.overlap(torch.zeros(4), torch.zeros(5), 0.2)


@pytest.mark.gpu
def test_on_cuda_as_on_the_cpu():
    cuda = torch.device("cuda")
    model = window_model()
    x = (tone(700, 2600, 4900) + 0.3 * tone(2500, 200, 2200))[None]
    noisy = separation.add_0db_noise(x.to(cuda), torch.Generator(device=cuda).manual_seed(0))
    assert (10 * torch.log10(x.pow(2).sum() / (noisy.cpu() - x).pow(2).sum())).abs() < 0.01
    keeps = [0.05, 0.2, 1.0]
    cpu = separation.filter_many(WAM(model, ndim=1, method="gradient")(x, [0]), keeps)
    gpu = separation.filter_many(WAM(model.to(cuda), ndim=1, method="gradient")(x.to(cuda), [0]), keeps)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-4)
    attribution = model.frontend(x.to(cuda))[:, 0]
    stft = separation.mel_mask_stft(model.frontend, x.to(cuda), attribution, keeps)
    torch.testing.assert_close(stft.cpu(), separation.mel_mask_stft(model.cpu().frontend, x, attribution.cpu(), keeps),
                               rtol=1e-3, atol=1e-4)
    griffin = separation.mel_mask(model.to(cuda).frontend, x.to(cuda), attribution, keeps, n_iter=4)
    assert griffin.shape == (1, 3, T) and torch.isfinite(griffin).all()
