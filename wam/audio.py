"""Audio front-end: waveform -> log-mel spectrogram, as an ``nn.Module`` WAM can differentiate through.

Every clip's spectrogram is computed on its own: a clip's output never depends on the other clips of its
batch (torchaudio's ``AmplitudeToDB`` takes its ``top_db`` floor over the whole tensor it is given, so it is
applied here to ``[B, 1, mels, frames]``: one floor per clip).

Example::

    >>> import torch
    >>> from wam.audio import LogMel
    >>> LogMel()(torch.zeros(2, 44100)).shape   # [B, 1, n_mels, frames]
    torch.Size([2, 1, 128, 87])
    >>> LogMel(floor_db=5.0)(torch.zeros(1, 44100)).abs().max()   # silence is 0 dB above the floor
    tensor(0.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchaudio.transforms import AmplitudeToDB, MelSpectrogram


class LogMel(nn.Module):
    """torchaudio ``MelSpectrogram`` (power) in decibels, per clip (reference settings by default).

    Input: waveform ``[B, T]`` or ``[B, 1, T]`` (amplitude, any unit). Output: ``[B, 1, n_mels, frames]``,
    ``frames = T // hop_length + 1`` (``hop_length`` defaults to ``n_fft // 2``).

    - ``floor_db=None`` (reference): ``AmplitudeToDB(stype="power", top_db=top_db)``: ``10 log10(max(P,
      1e-10))``, clamped ``top_db`` under the clip's own peak when ``top_db`` is set.
    - ``floor_db=F``: decibels above an additive power floor, ``10 log10(1 + P / 10^(F / 10))``: 0 dB is
      silence, a bin far above the floor reads ``10 log10(P) - F``. Unlike the clamps above, the floor is
      smooth and fixed, so the model is not invariant to the clip's level: along Integrated Gradients'
      straight path from silence, ``f(a x)`` rises from ``f(0)`` as the clip's bins emerge from the floor.
    """

    def __init__(
        self,
        sample_rate: int = 44100,
        n_fft: int = 1024,
        hop_length: int | None = None,
        n_mels: int = 128,
        top_db: float | None = None,
        floor_db: float | None = None,
    ) -> None:
        super().__init__()
        if top_db is not None and floor_db is not None:
            raise ValueError("top_db, floor_db: give at most one of them")
        self.sample_rate = sample_rate
        self.mel = MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
        self.to_db = AmplitudeToDB(stype="power", top_db=top_db)
        self.floor = None if floor_db is None else 10.0 ** (float(floor_db) / 10.0)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() == 2:
            waveform = waveform.unsqueeze(1)
        if waveform.dim() != 3 or waveform.shape[1] != 1:
            raise ValueError(
                f"waveform: expected [B, T] or [B, 1, T], got shape {tuple(waveform.shape)}"
            )
        power = self.mel(waveform)  # [B, 1, n_mels, frames]: AmplitudeToDB's top_db is then per clip
        if self.floor is None:
            return self.to_db(power)
        return (10.0 / math.log(10.0)) * torch.log1p(power / self.floor)


class WaveformClassifier(nn.Module):
    """A classifier of waveforms made of a front-end and a spectrogram classifier.

    ``model(wave) == model.classifier(model.frontend(wave))``. WAM-1D differentiates through the whole
    module (wavelet coefficients of the waveform); pixel-domain baselines explain ``model.classifier``
    on ``model.frontend(wave)`` (time-frequency bins), as in the paper.
    """

    def __init__(self, frontend: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.classifier = classifier

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.frontend(waveform))


def samples_to_frames(signal: torch.Tensor, hop_length: int, frames: int) -> torch.Tensor:
    """Average ``[B, K, T]`` samples over each STFT frame -> ``[B, K, frames]``.

    Frame ``t`` of a centred STFT (torchaudio's default) sits at sample ``hop_length * t``; it gets the mean
    of the samples in ``[hop t - hop / 2, hop t + hop / 2)`` (edges repeated beyond the signal). Used to put a
    per-sample map (WAM's heatmap, a ground-truth mask) on the spectrogram's frames.
    """
    half = hop_length // 2
    padded = F.pad(signal, (half, hop_length * frames - signal.shape[-1] - half), mode="replicate")
    return F.avg_pool1d(padded, hop_length, hop_length)[..., :frames]

