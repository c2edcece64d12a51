"""Registry of attribution methods: ``@register("name")`` on a class, ``get(name, model, **kw)``.

A registered class is built as ``cls(model, **kwargs)`` and called as ``explain(x, y)``
(``x [B, C, *spatial]``, ``y [B]`` class indices) returning an attribution of ``x``'s shape.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

T = TypeVar("T", bound=type)

_REGISTRY: dict[str, type] = {}
# The built-in methods and the module that registers each. A module is imported the first time its method is
# asked for, so that ``import baselines`` stays light and a job loads only its method's library (captum, zennit).
BUILTINS = {
    "gradcam": "baselines.gradcam",
    "gradcampp": "baselines.gradcampp",
    "guided_backprop": "baselines.guided_backprop",
    "integrated_gradients": "baselines.integrated_gradients",
    "layercam": "baselines.layercam",
    "lrp": "baselines.lrp",
    "saliency": "baselines.saliency",
    "smoothgrad": "baselines.smoothgrad",
}


def register(name: str) -> Callable[[T], T]:
    """Class decorator: ``baselines.get(name, model, **kwargs)`` builds ``cls(model, **kwargs)``."""

    def decorate(cls: T) -> T:
        if name in BUILTINS and cls.__module__ != BUILTINS[name]:
            _known(name)  # the built-in, imported, for the message below
        known = _REGISTRY.get(name)
        if known is not None and _qualified(known) != _qualified(cls):  # the same class reloaded replaces itself
            raise ValueError(f"name: baseline {name!r} of {_qualified(cls)} clashes with the {_kind(known)} "
                             f"{_qualified(known)}; register it under another name")
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return decorate


def _qualified(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _kind(obj: Any) -> str:
    """``"built-in"`` for this package's methods, ``"plug-in"`` for any other module's."""
    return "built-in" if obj.__module__.split(".")[0] == __name__.split(".")[0] else "plug-in"


def method_class(name: str) -> type:
    """The class registered as ``name`` (``ValueError`` listing the available ones if none is)."""
    return _known(name)


def is_builtin(name: str) -> bool:
    """True for this package's methods, False for a plug-in's (``workflow/scripts/plugins.py``)."""
    return name in BUILTINS or _kind(_known(name)) == "built-in"


def available() -> list[str]:
    """Sorted names of the attribution methods: the built-in ones and those registered by plug-ins."""
    return sorted(set(_REGISTRY) | set(BUILTINS))


def is_cam(name: str) -> bool:
    """True when method ``name`` is a class activation map (takes ``layer`` / ``reshape`` options)."""
    from baselines.base import CamBaseline

    return issubclass(_known(name), CamBaseline)


def _known(name: str) -> type:
    if name not in _REGISTRY and name in BUILTINS:
        importlib.import_module(BUILTINS[name])
    if name not in _REGISTRY:
        raise ValueError(f"name: unknown baseline {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name]


def get(name: str, model: nn.Module, **kwargs: Any) -> Any:
    """Method ``name`` bound to ``model``: a callable ``explain(x, y) -> [B, C, *spatial]``.

    ``kwargs`` are the method's options (e.g. ``batch_size``, ``n_steps``, ``layer``); an unknown
    ``name`` raises ``ValueError`` listing the available ones.
    """
    return _known(name)(model, **kwargs)
