"""Source separation with an explanation: corrupt a clip, keep its most important coefficients, score the rebuild.

The paper's audio section (noise and overlap) made measurable (workflow target ``audio_separation``):

- corruptions: :func:`add_0db_noise` (white Gaussian noise whose RMS equals the clip's: SNR exactly 0 dB, the
  reference's ``add_0db_noise``) and :func:`overlap` (``target + lam * distractor``);
- reconstructions at several ``keep`` fractions in ONE batched inverse wavelet transform per call:
  :func:`filter_many` (``Explanation.filter`` for every fraction at once, same threshold rule) and
  :func:`wam.transform.keep_top` for any per-coefficient score (the controls: largest ``|z|``, random scores);
- the pixel-baseline control :func:`mel_mask`: the top time-frequency bins of a log-mel attribution, the
  spectrogram inverted with torchaudio's ``InverseMelScale`` + ``GriffinLim`` (and, as a stronger reference,
  the same bins as a binary mask on the corrupted input's own STFT, its phase kept: :func:`mel_mask_stft`);
- :func:`si_sdr`, torchmetrics' ``scale_invariant_signal_distortion_ratio`` in dB.

Example::

    >>> import torch
    >>> from wam import WAM, separation
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))      # [B, 1, T] -> [B, 3]
    >>> x = torch.randn(2, 64)
    >>> noisy = separation.add_0db_noise(x, torch.Generator().manual_seed(0))
    >>> expl = WAM(model, ndim=1, method="gradient")(noisy, [0, 2])
    >>> rebuilt = separation.filter_many(expl, [0.1, 0.5, 1.0])          # [B, K, T]
    >>> rebuilt.shape, bool(separation.si_sdr(rebuilt[:, 2], noisy).min() > 60)
    (torch.Size([2, 3, 64]), True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import torch
from torch import nn

from wam import transform
from wam.explainer import Explanation


def check_lambda(lam: float, name: str = "lam") -> float:
    if isinstance(lam, bool) or not isinstance(lam, Real) or not math.isfinite(lam) or lam < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {lam!r}")
    return float(lam)


def rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square of each sample ``[B, ...]`` -> ``[B]``."""
    return x.flatten(1).pow(2).mean(1).sqrt()


def add_0db_noise(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``x + n`` with ``n`` white Gaussian noise rescaled so that ``rms(n) == rms(x)`` per sample (SNR 0 dB).

    ``x`` ``[B, ...]``; ``generator`` on ``x``'s device seeds the draw (sample ``i`` gets the ``i``-th draw).
    A silent sample gets no noise (its RMS is 0).
    """
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    scale = rms(x) / rms(noise).clamp_min(torch.finfo(x.dtype).tiny)
    return x + noise * scale.view(-1, *[1] * (x.dim() - 1))


def overlap(target: torch.Tensor, distractor: torch.Tensor, lam: float = 0.2) -> torch.Tensor:
    """``target + lam * distractor`` (same shapes; ``lam >= 0``, the paper's 0.2)."""
    lam = check_lambda(lam)
    if target.shape != distractor.shape:
        raise ValueError(f"distractor: expected the target's shape {tuple(target.shape)}, got "
                         f"{tuple(distractor.shape)}")
    return target + lam * distractor


def filter_many(expl: Explanation, keeps: Sequence[float]) -> torch.Tensor:
    """``Explanation.filter(keep)`` for every ``keep`` at once: ``[B, K, *x]`` (``x``'s own layout without the
    batch axis), one batched inverse transform."""
    out = transform.keep_top(transform.bands(expl.coeffs), [g.abs() for g in transform.bands(expl.grads)], keeps,
                             expl.ndim, expl.wavelet, expl.size)
    return out[:, :, 0] if expl.squeeze_channel else out


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Scale-invariant signal-to-distortion ratio in dB (torchmetrics, ``zero_mean=False``) over the last axis;
    shapes broadcast (e.g. ``[B, K, T]`` against ``[B, 1, T]``)."""
    from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

    estimate, reference = torch.broadcast_tensors(estimate, reference)
    return scale_invariant_signal_distortion_ratio(estimate.double(), reference.double()).float()


def _mel_settings(frontend: nn.Module) -> tuple[nn.Module, int, int, int]:
    mel = frontend.mel
    return mel, mel.n_fft, mel.hop_length, mel.win_length


def mel_power(frontend: nn.Module, decibels: torch.Tensor) -> torch.Tensor:
    """Mel power from ``wam.audio.LogMel``'s decibels: ``F (10^(dB / 10) - 1)`` above an additive floor ``F``
    (``floor_db``), else ``10^(dB / 10)``."""
    if frontend.floor is None:
        return torch.pow(10.0, decibels / 10.0)
    return frontend.floor * torch.expm1(decibels.clamp_min(0) * (math.log(10.0) / 10.0))


def _mel_keep(attribution: torch.Tensor, keeps: Sequence[float]) -> torch.Tensor:
    """``[B, K, M, F]`` bool: the top-``keep`` time-frequency bins of ``attribution`` ``[B, M, F]``."""
    masks = transform.keep_masks(attribution.flatten(1), keeps)
    return masks.reshape(*masks.shape[:2], *attribution.shape[1:])


def mel_mask(frontend: nn.Module, waveform: torch.Tensor, attribution: torch.Tensor, keeps: Sequence[float],
             n_iter: int = 32) -> torch.Tensor:
    """Pixel-baseline reconstruction ``[B, K, T]``: the log-mel of ``waveform`` ``[B, T]`` with only its top-
    ``keep`` bins of ``attribution`` ``[B, M, F]`` (the others silent), inverted to a waveform: mel power
    (:func:`mel_power`) -> torchaudio ``InverseMelScale`` (least squares, clamped at 0) -> ``GriffinLim``
    (``n_iter`` iterations from zero phase, deterministic), all ``B x K`` spectrograms in one batch."""
    from torchaudio.transforms import GriffinLim, InverseMelScale

    mel, n_fft, hop, win = _mel_settings(frontend)
    scale = mel.mel_scale
    keep = _mel_keep(attribution, keeps)
    with torch.no_grad():
        power = mel_power(frontend, frontend(waveform)[:, 0])            # [B, M, F]
        kept = (power.unsqueeze(1) * keep).flatten(0, 1)                 # [B K, M, F]
        inverse = InverseMelScale(n_fft // 2 + 1, scale.n_mels, scale.sample_rate, scale.f_min, scale.f_max,
                                  scale.norm, scale.mel_scale,
                                  driver="gels" if waveform.is_cuda else "gelsd").to(waveform.device)
        linear = inverse(kept)                                          # [B K, n_fft / 2 + 1, F]
        griffin = GriffinLim(n_fft, n_iter=n_iter, win_length=win, hop_length=hop, power=mel.power,
                             length=waveform.shape[-1], rand_init=False).to(waveform.device)
        return griffin(linear).reshape(*keep.shape[:2], waveform.shape[-1])


def mel_mask_stft(frontend: nn.Module, waveform: torch.Tensor, attribution: torch.Tensor, keeps: Sequence[float]
                  ) -> torch.Tensor:
    """The same top-``keep`` mel bins as a binary mask on ``waveform``'s own STFT (its phase kept; no phase
    retrieval): a linear-frequency bin is kept where the filterbank-weighted share of its kept mel bins is at least
    one half; one inverse STFT for all ``B x K``. ``[B, K, T]``."""
    mel, n_fft, hop, win = _mel_settings(frontend)
    fb = mel.mel_scale.fb                                                # [n_freq, M]
    keep = _mel_keep(attribution, keeps).float()                          # [B, K, M, F]
    share = torch.einsum("fm,bkmt->bkft", fb, keep) / fb.sum(1).clamp_min(1e-12)[:, None]
    window = torch.hann_window(win, device=waveform.device, dtype=waveform.dtype)
    with torch.no_grad():
        spec = torch.stft(waveform, n_fft, hop, win, window, center=True, pad_mode="reflect", return_complex=True)
        masked = (spec.unsqueeze(1) * (share >= 0.5)).flatten(0, 1)
        out = torch.istft(masked, n_fft, hop, win, window, center=True, length=waveform.shape[-1])
    return out.reshape(*keep.shape[:2], waveform.shape[-1])
