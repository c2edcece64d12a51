"""Registry of attribution methods: ``@register("name")`` on a class, ``get(name, model, **kw)``.

A registered class is built as ``cls(model, **kwargs)`` and called as ``explain(x, y)``
(``x [B, C, *spatial]``, ``y [B]`` class indices) returning an attribution of ``x``'s shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

T = TypeVar("T", bound=type)

_REGISTRY: dict[str, type] = {}


def register(name: str) -> Callable[[T], T]:
    """Class decorator: ``baselines.get(name, model, **kwargs)`` builds ``cls(model, **kwargs)``."""

    def decorate(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"name: {name!r} is already registered by {_REGISTRY[name]!r}")
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return decorate


def available() -> list[str]:
    """Sorted names of the registered attribution methods."""
    return sorted(_REGISTRY)


def get(name: str, model: nn.Module, **kwargs: Any) -> Any:
    """Method ``name`` bound to ``model``: a callable ``explain(x, y) -> [B, C, *spatial]``.

    ``kwargs`` are the method's options (e.g. ``batch_size``, ``n_steps``, ``layer``); an unknown
    ``name`` raises ``ValueError`` listing the available ones.
    """
    if name not in _REGISTRY:
        raise ValueError(f"name: unknown baseline {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name](model, **kwargs)
