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

from collections.abc import Callable

from wam.utils import Registry

METRICS = Registry("metric", package="metrics")


def register(name: str) -> Callable:
    """Decorator: register the decorated function under ``name`` (``ValueError`` if taken by another)."""
    return METRICS.register(name)


def available() -> list[str]:
    """Sorted names of every registered metric."""
    return METRICS.available()


def get(name: str) -> Callable:
    """The metric function registered as ``name``; ``ValueError`` listing the names otherwise."""
    return METRICS.get(name)
