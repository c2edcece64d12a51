"""Plug-ins: modules from outside this repository that register baselines (``@baselines.register``) and
metrics (``@metrics.register``), loaded before the DAG is built and by every stage that looks methods up.

Where they come from:

- the config key ``plugins: [module, ...]``: each entry an importable module name (``my_package.methods``,
  found on the Python path) or the path of a Python file (``~/wam_methods/gradient_x_input.py``; a relative
  path is taken from the working directory, where Snakemake and its jobs run), loaded as the module named
  after the file;
- the entry-point group ``wam_bench.plugins`` of installed packages, found without any config, e.g. in the
  package's ``pyproject.toml``::

      [project.entry-points."wam_bench.plugins"]
      my_methods = "my_package.methods"

- the entry-point group ``wam_bench.metrics``: a module that registers metrics, or one metric function, which is
  registered under the entry point's name (unless its module registered it under that name already)::

      [project.entry-points."wam_bench.metrics"]
      my_metric = "my_package.metrics:my_metric"

A module must be importable: an installed package, or a folder on ``PYTHONPATH`` (Snakemake's jobs inherit it).

A plug-in's baselines join the configuration's ``methods`` (``{kind: baseline, label: cls.label or its
name}``) unless ``methods`` names them already (to set their label or options there): they are then explained,
scored and shown in every table and figure like a built-in method, and in the speed suite (which times every
registered baseline). Adding one reruns only its own ``explain`` / ``score`` jobs, the tables and the figures.
A plug-in metric is scored when ``evaluation.metrics`` lists it (:attr:`workflow.lib.config.Config.evaluation_metrics`).

Errors stop the run before any job: a module that does not exist or raises on import (``PluginError`` naming
the module, and the entry point), and a baseline or metric name already taken by a built-in (the registry's
``ValueError`` naming both).

Example (not run by the doctests: it would register the plug-in for the rest of the test session; the same
steps run in ``tests/workflow/lib/test_plugins.py``)::

    >>> config = {"plugins": ["~/wam_methods/gradient_x_input.py"], "methods": {}}   # doctest: +SKIP
    >>> configure(config)                                                              # doctest: +SKIP
    ['gradient_x_input']
    >>> config["methods"]["gradient_x_input"]                                          # doctest: +SKIP
    {'kind': 'baseline', 'label': 'Gradient x Input'}
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType

ENTRY_POINTS = "wam_bench.plugins"
METRIC_ENTRY_POINTS = "wam_bench.metrics"


class PluginError(ValueError):
    """A plug-in module could not be found or raised while it was imported."""


def load(config: dict | None = None) -> list[str]:
    """Import the plug-ins of ``config["plugins"]`` and of the ``wam_bench.plugins`` and ``wam_bench.metrics``
    entry points (each once per process); returns their module names. Does nothing (imports no library) when there
    are none."""
    specs = list((config or {}).get("plugins") or [])
    points = [(group, point) for group in (ENTRY_POINTS, METRIC_ENTRY_POINTS) for point in entry_points(group=group)]
    if not specs and not points:
        return []
    import metrics

    metrics.available()  # the built-in metrics first: a plug-in reusing one of their names is the one refused
    # (baselines.register imports a built-in baseline itself when a plug-in takes its name)
    names = [_import(spec, f"plugins: module {spec!r}") for spec in specs]
    for group, point in points:
        dist = point.dist.name if point.dist is not None else "?"
        where = f"entry point {point.name!r} = {point.value!r} ({group}, package {dist})"
        names.append(_load_entry_point(point, where, metric=group == METRIC_ENTRY_POINTS))
    return names


def configure(config: dict) -> list[str]:
    """:func:`load` the plug-ins, then add each plug-in baseline missing from ``config["methods"]`` to it;
    returns the names added. Called by ``workflow/rules/common.smk`` before the DAG is built."""
    if not load(config):
        return []
    from baselines import registry

    added = []
    for name in registry.available():
        if not registry.is_builtin(name) and name not in config["methods"]:
            label = getattr(registry.method_class(name), "label", None) or name
            config["methods"][name] = {"kind": "baseline", "label": str(label)}
            added.append(name)
    return added


def _import(spec: str, where: str) -> str:
    """Import the module name or Python file ``spec``; :class:`PluginError` naming it (``where``) on failure."""
    if not isinstance(spec, str) or not spec:
        raise PluginError(f"plugins: expected a module name or a .py file, got {spec!r}")
    if spec.endswith(".py") or "/" in spec:
        return _import_file(Path(spec).expanduser().resolve(), where).__name__
    try:
        importlib.import_module(spec)
    except Exception as e:
        raise _failure(where, spec, e) from e
    return spec


def _import_file(path: Path, where: str) -> ModuleType:
    """The Python file ``path`` as the module named after it (loaded once; a different module of that name is
    refused)."""
    if not path.is_file():
        raise PluginError(f"{where} not found (no file {path})")
    known = sys.modules.get(path.stem)
    if known is not None:
        if getattr(known, "__file__", None) and Path(known.__file__).resolve() == path:
            return known
        raise PluginError(f"{where}: its module name {path.stem!r} is taken by {known!r}; rename the file")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[path.stem]
        raise _failure(where, None, e) from e
    return module


def _load_entry_point(point: EntryPoint, where: str, metric: bool = False) -> str:
    """Load ``point``; a ``wam_bench.metrics`` point (``metric``) that names a function registers it as a metric
    under the point's name."""
    try:
        loaded = point.load()
        if metric and not isinstance(loaded, ModuleType):
            from metrics import registry

            if point.name not in registry.available() or registry.get(point.name) is not loaded:
                if not callable(loaded):
                    raise TypeError(f"{loaded!r} is neither a module nor a metric function")
                registry.register(point.name)(loaded)
    except Exception as e:
        raise _failure(where, point.module, e) from e
    return point.module


def _failure(where: str, module: str | None, error: Exception) -> PluginError:
    """A "not found" error when ``module`` itself (or a package above it) is missing, else what its import raised."""
    if isinstance(error, ModuleNotFoundError) and module is not None and error.name is not None and (
            module == error.name or module.startswith(f"{error.name}.")):
        return PluginError(f"{where} not found (no module named {error.name!r} on the Python path)")
    return PluginError(f"{where} raised {type(error).__name__} while being imported: {error}")
