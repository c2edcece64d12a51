"""Small helpers shared by ``wam``, ``baselines`` and ``metrics``: input checks, gradient hygiene and the registry
behind every plug-in point (methods, metrics, models)."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

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


T = TypeVar("T")


class Registry:
    """Names of one ``kind`` of plug-in (``"baseline"``, ``"metric"``, ``"model"``) bound to objects.

    The built-in entries live in ``package``; ``lazy`` maps a built-in name to the module that registers it
    (imported the first time the name is asked for, so that a job loads only its method's library); without
    ``lazy``, every module of ``package`` is imported on the first lookup. A name registered by two different
    objects is a ``ValueError`` naming both; the same object registered again (a module reloaded) replaces itself.

    Example::

        >>> shapes = Registry("shape", package="wam", lazy={})  # nothing built in
        >>> @shapes.register("square")
        ... def square(n: int) -> int:
        ...     return n * n
        >>> shapes.get("square")(3), shapes.available()
        (9, ['square'])
        >>> shapes.get("sqare")
        Traceback (most recent call last):
        ValueError: name: unknown shape 'sqare' (did you mean 'square'?); available: square
    """

    def __init__(self, kind: str, package: str, lazy: Mapping[str, str] | None = None) -> None:
        self.kind, self.package, self.lazy = kind, package, dict(lazy or {})
        self._entries: dict[str, Any] = {}
        self._discovered = lazy is not None  # a lazy registry imports one module per name, never the package

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated class or function under ``name``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: expected a non-empty string, got {name!r}")

        def decorate(obj: T) -> T:
            if name in self.lazy and obj.__module__ != self.lazy[name] and name not in self._entries:
                importlib.import_module(self.lazy[name])  # the built-in first, for the clash below
            known = self._entries.get(name)
            if known is not None and qualified_name(known) != qualified_name(obj):
                raise ValueError(f"name: {self.kind} {name!r} of {qualified_name(obj)} clashes with the "
                                 f"{self.origin(known)} {qualified_name(known)}; register it under another name")
            self._entries[name] = obj
            return obj

        return decorate

    def origin(self, obj: Any) -> str:
        """``"built-in"`` for an object of ``package``, ``"plug-in"`` for any other module's."""
        return "built-in" if obj.__module__.split(".")[0] == self.package.split(".")[0] else "plug-in"

    def available(self) -> list[str]:
        """Sorted names: the built-in ones (imported or not) and those plug-ins registered."""
        self._discover()
        return sorted(set(self._entries) | set(self.lazy))

    def __contains__(self, name: str) -> bool:
        return name in self.available()

    def get(self, name: str) -> Any:
        """The object registered as ``name``; ``ValueError`` with the closest names and the available ones."""
        self._discover()
        if name not in self._entries and name in self.lazy:
            importlib.import_module(self.lazy[name])
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), self.available(), n=1)
            raise ValueError(f"name: unknown {self.kind} {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                             + f"; available: {', '.join(self.available())}")
        return self._entries[name]

    def is_builtin(self, name: str) -> bool:
        """True for a name of ``package``, False for a plug-in's."""
        return name in self.lazy or self.origin(self.get(name)) == "built-in"

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")


def qualified_name(obj: Any) -> str:
    """``module.QualifiedName`` of a class or function."""
    return f"{obj.__module__}.{obj.__qualname__}"
