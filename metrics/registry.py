"""Registry of metrics: ``available()`` lists names, ``get(name)`` returns the function.

A metric registers itself with the ``@register("name")`` decorator in its own module of the
``metrics`` package; every module of the package is imported on the first ``available()`` /
``get()``, so adding a metric is adding one file.

Example::

    >>> import metrics
    >>> "deletion" in metrics.available()
    True
    >>> metrics.get("deletion") is metrics.deletion
    True
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

_REGISTRY: dict[str, Callable] = {}
_discovered = False


def register(name: str) -> Callable[[F], F]:
    """Decorator: register the decorated function under ``name`` (``ValueError`` if taken by another)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}")

    def decorate(fn: F) -> F:
        known = _REGISTRY.get(name)
        if known is not None and _qualified(known) != _qualified(fn):  # the same function reloaded replaces itself
            kind = "built-in" if known.__module__.split(".")[0] == __name__.split(".")[0] else "plug-in"
            raise ValueError(f"name: metric {name!r} of {_qualified(fn)} clashes with the {kind} "
                             f"{_qualified(known)}; register it under another name")
        _REGISTRY[name] = fn
        return fn

    return decorate


def _qualified(fn: Callable) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    package = importlib.import_module("metrics")
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"metrics.{info.name}")
    _discovered = True


def available() -> list[str]:
    """Sorted names of every registered metric."""
    _discover()
    return sorted(_REGISTRY)


def get(name: str) -> Callable:
    """The metric function registered as ``name``; ``ValueError`` listing the names otherwise."""
    _discover()
    if name not in _REGISTRY:
        raise ValueError(f"name: unknown metric {name!r}; expected one of {sorted(_REGISTRY)}")
    return _REGISTRY[name]
