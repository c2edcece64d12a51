"""Audio front-end: waveform -> log-mel spectrogram, as an ``nn.Module`` WAM can differentiate through.

Example::

    >>> import torch
    >>> from wam.audio import LogMel
    >>> LogMel()(torch.zeros(2, 44100)).shape   # [B, 1, n_mels, frames]
    torch.Size([2, 1, 128, 87])
"""

from __future__ import annotations

import torch
from torch import nn
from torchaudio.transforms import AmplitudeToDB, MelSpectrogram


class LogMel(nn.Module):
    """torchaudio ``MelSpectrogram`` followed by ``AmplitudeToDB`` (reference settings by default).

    Input: waveform ``[B, T]`` or ``[B, 1, T]`` (amplitude, any unit). Output: ``[B, 1, n_mels, frames]``
    in decibels, ``frames = T // hop_length + 1``.
    """

    def __init__(
        self,
        sample_rate: int = 44100,
        n_fft: int = 1024,
        hop_length: int | None = None,
        n_mels: int = 128,
        top_db: float | None = None,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.mel = MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels
        )
        self.to_db = AmplitudeToDB(stype="power", top_db=top_db)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() == 3 and waveform.shape[1] == 1:
            waveform = waveform[:, 0]
        if waveform.dim() != 2:
            raise ValueError(
                f"waveform: expected [B, T] or [B, 1, T], got shape {tuple(waveform.shape)}"
            )
        return self.to_db(self.mel(waveform)).unsqueeze(1)


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
