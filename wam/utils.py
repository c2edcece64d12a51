"""Small helpers shared by ``wam``, ``baselines`` and ``metrics``: input checks and gradient hygiene."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def input_gradients_only(model: nn.Module) -> Iterator[None]:
    """Within the block, no parameter of ``model`` requires a gradient (restored afterwards).

    Attribution needs ``d output / d input`` only; parameter gradients would cost up to 1.8x more.
    """
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def check_input(x: torch.Tensor, dims: Sequence[int], name: str = "x", layout: str = "") -> torch.Tensor:
    """``ValueError`` unless ``x`` is a floating tensor with ``x.dim()`` in ``dims`` and only finite values."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in dims:
        raise ValueError(f"{name}: expected {layout or f'{dims} dimensions'}, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return x


LAYOUTS = {1: "[B, T] or [B, C, T]", 2: "[B, C, H, W]", 3: "[B, C, D, H, W]"}
"""The input layout expected for each number of spatial dimensions (``ndim``), as error messages spell it."""


def check_signal(x: torch.Tensor, ndim: int, name: str = "x") -> torch.Tensor:
    """:func:`check_input` for an input of ``ndim`` spatial dimensions, in the layout :data:`LAYOUTS` names
    (1D ``[B, T]`` or ``[B, C, T]``; 2D ``[B, C, H, W]``; 3D ``[B, C, D, H, W]``).

    >>> check_signal(torch.zeros(2, 3, 8, 8), 2).shape
    torch.Size([2, 3, 8, 8])
    >>> check_signal(torch.zeros(3, 8, 8), 2)
    Traceback (most recent call last):
    ...
    ValueError: x: expected [B, C, H, W], got shape (3, 8, 8)
    """
    if ndim not in LAYOUTS:
        raise ValueError(f"ndim: expected 1, 2 or 3, got {ndim!r}")
    return check_input(x, (ndim + 1, ndim + 2) if ndim == 1 else (ndim + 2,), name, LAYOUTS[ndim])


def as_targets(y: int | Sequence[int] | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """Class indices ``[batch]`` (long, on ``device``) from an int, a sequence or a tensor."""
    if isinstance(y, int):
        return torch.full((batch,), y, dtype=torch.long, device=device)
    y = torch.as_tensor(y, device=device)
    if y.dim() == 0:
        y = y.expand(batch)
    if y.dim() != 1 or y.shape[0] != batch or y.is_floating_point():
        raise ValueError(f"y: expected {batch} integer class indices, got shape {tuple(y.shape)}, {y.dtype}")
    if (y < 0).any():
        raise ValueError(f"y: class indices must be >= 0, got {y.tolist()}")
    return y.long()


def check_targets_range(y: torch.Tensor, n_classes: int) -> None:
    if int(y.max()) >= n_classes:
        raise ValueError(f"y: class index {int(y.max())} out of range for a model with {n_classes} outputs")


def pick_device(name: str) -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def chunks(total: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering ``range(total)``."""
    if size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {size!r}")
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))
