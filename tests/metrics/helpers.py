"""Small analytic models for the metric tests."""

from __future__ import annotations

import torch
from torch import nn


class Recording(nn.Module):
    """Wraps a model and keeps every input it sees (concatenated by :meth:`seen`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        return self.model(x)

    def seen(self) -> torch.Tensor:
        return torch.cat(self.inputs)


class SumModel(nn.Module):
    """One output: ``sum(x)`` over every axis but the batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).sum(1, keepdim=True)


class MinOverModel(nn.Module):
    """Two logits: ``[min over positions idx of sum_c x, 0]`` (collapses to 0 once one of idx is 0)."""

    def __init__(self, idx: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("idx", idx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.flatten(2).sum(1)[:, self.idx].amin(1)
        return torch.stack([v, torch.zeros_like(v)], dim=1)


class OneChannelCNN(nn.Module):
    """A small seeded [B, 1, H, W] -> 4 classes CNN."""

    def __init__(self, seed: int = 5) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64, 4)
        )
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def saliency(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Explain function ``(model, x, y) -> map``: the signed input gradient of the target logit."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        return torch.autograd.grad(model(x).gather(1, y[:, None]).sum(), x)[0]
