"""Seeded tiny models shared by every test (built in a few milliseconds, no download)."""

from __future__ import annotations

import torch
from torch import nn

from wam.audio import LogMel, WaveformClassifier

AUDIO_RATE = 8000          # Hz, the tiny audio model's sample rate
AUDIO_LENGTH = 4000        # samples (0.5 s)
IMAGE_SIZE = 32
VOLUME_SIZE = 28


def _seeded(module: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return module.eval()


class TinyImageCNN(nn.Module):
    """[B, 3, H, W] -> [B, n_classes]; last convolution is ``features[2]`` (for GradCAM)."""

    def __init__(self, n_classes: int = 5, in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


class TinyVolumeCNN(nn.Module):
    """[B, 1, D, H, W] -> [B, n_classes]; last convolution is ``features[2]``."""

    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 8, 3, padding=1), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head = nn.Linear(8, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


def tiny_audio_model(n_classes: int = 4) -> WaveformClassifier:
    """[B, T] waveform at 8 kHz -> log-mel [B, 1, 32, frames] -> small CNN -> [B, n_classes]."""
    classifier = TinyImageCNN(n_classes=n_classes, in_channels=1)
    frontend = LogMel(sample_rate=AUDIO_RATE, n_fft=256, hop_length=128, n_mels=32)
    return WaveformClassifier(frontend, _seeded(classifier, 2)).eval()


class LinearModel(nn.Module):
    """Analytic model: logits = W @ flatten(x) + b. The gradient of logit c is ``W[c]`` reshaped."""

    def __init__(self, in_shape: tuple[int, ...], n_classes: int = 3) -> None:
        super().__init__()
        numel = 1
        for s in in_shape:
            numel *= s
        self.in_shape = tuple(in_shape)
        self.linear = nn.Linear(numel, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))

    def gradient(self, c: int) -> torch.Tensor:
        return self.linear.weight[c].detach().reshape(self.in_shape)


class SmoothModel(nn.Module):
    """Smooth non-linear model: logits = V softplus(W flatten(x)) (for completeness tests)."""

    def __init__(self, in_shape: tuple[int, ...], n_classes: int = 3, hidden: int = 16) -> None:
        super().__init__()
        numel = 1
        for s in in_shape:
            numel *= s
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(numel, hidden), nn.Softplus(), nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConstantModel(nn.Module):
    """Logits that do not depend on the input (gradient exactly zero, still differentiable)."""

    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.arange(n_classes, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1) + 0.0 * x.flatten(1).sum(1, keepdim=True)


def image_model() -> TinyImageCNN:
    return _seeded(TinyImageCNN(), 0)


def volume_model() -> TinyVolumeCNN:
    return _seeded(TinyVolumeCNN(), 1)


def linear_model(in_shape: tuple[int, ...], n_classes: int = 3, seed: int = 3) -> LinearModel:
    return _seeded(LinearModel(in_shape, n_classes), seed)


def smooth_model(in_shape: tuple[int, ...], n_classes: int = 3, seed: int = 4) -> SmoothModel:
    return _seeded(SmoothModel(in_shape, n_classes), seed)


def target_logit(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[B]``: each input's logit of its class ``y``, without gradient."""
    with torch.no_grad():
        return model(x).gather(1, y[:, None])[:, 0]


def audio_clips() -> torch.Tensor:
    """``[3, 22050]``: 0.5 s at 44.1 kHz of a loud 440 Hz tone, a 3 kHz tone 60 dB under it, and seeded noise."""
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(22050) / 44100
    loud = torch.sin(2 * torch.pi * 440 * t)
    quiet = 1e-3 * torch.sin(2 * torch.pi * 3000 * t)
    return torch.stack([loud, quiet, 0.1 * torch.randn(22050, generator=gen)])
