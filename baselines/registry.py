"""Registry of attribution methods: ``@register("name")`` on a class, ``get(name, model, **kw)``.

A registered class is built as ``cls(model, **kwargs)`` and called as ``explain(x, y)``
(``x [B, C, *spatial]``, ``y [B]`` class indices) returning an attribution of ``x``'s shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from wam.utils import Registry

T = TypeVar("T", bound=type)

# The built-in methods and the module that registers each. A module is imported the first time its method is
# asked for, so that ``import baselines`` stays light and a job loads only its method's library (captum, zennit).
METHODS = Registry("baseline", package="baselines", lazy={
    "gradcam": "baselines.gradcam",
    "gradcampp": "baselines.gradcampp",
    "guided_backprop": "baselines.guided_backprop",
    "integrated_gradients": "baselines.integrated_gradients",
    "layercam": "baselines.layercam",
    "lrp": "baselines.lrp",
    "saliency": "baselines.saliency",
    "smoothgrad": "baselines.smoothgrad",
})


def register(name: str) -> Callable[[T], T]:
    """Class decorator: ``baselines.get(name, model, **kwargs)`` builds ``cls(model, **kwargs)``."""

    def decorate(cls: T) -> T:
        METHODS.register(name)(cls)
        cls.name = name
        return cls

    return decorate


def method_class(name: str) -> type:
    """The class registered as ``name`` (``ValueError`` listing the available ones if none is)."""
    return METHODS.get(name)


def is_builtin(name: str) -> bool:
    """True for this package's methods, False for a plug-in's (``workflow/lib/plugins.py``)."""
    return METHODS.is_builtin(name)


def available() -> list[str]:
    """Sorted names of the attribution methods: the built-in ones and those registered by plug-ins."""
    return METHODS.available()


def is_cam(name: str) -> bool:
    """True when method ``name`` is a class activation map (takes ``layer`` / ``reshape`` options)."""
    from baselines.base import CamBaseline

    return issubclass(METHODS.get(name), CamBaseline)


def get(name: str, model: nn.Module, **kwargs: Any) -> Any:
    """Method ``name`` bound to ``model``: a callable ``explain(x, y) -> [B, C, *spatial]``.

    ``kwargs`` are the method's options (e.g. ``batch_size``, ``n_steps``, ``layer``); an unknown
    ``name`` raises ``ValueError`` listing the available ones.
    """
    return METHODS.get(name)(model, **kwargs)
