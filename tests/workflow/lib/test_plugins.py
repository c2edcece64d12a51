"""Plug-ins (workflow/lib/plugins.py): config modules and files, the ``wam_bench.plugins`` and ``wam_bench.metrics``
entry points, errors naming the module, name clashes naming both, the README's "Add a baseline" and "Add a metric"
examples. The DAG (what adding a plug-in reruns) is tests/workflow/stages/test_plugin_dag.py."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

import baselines
import metrics
from baselines import registry as baseline_registry
from metrics import registry as metric_registry
from tests.models import linear_model
from tests.workflow.helpers import GRADIENT_X_INPUT, ROOT
from workflow.lib import plugins
from workflow.lib.config import Config
from workflow.lib.plugins import PluginError

README = ROOT / "README.md"


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """The registries and ``sys.modules`` as they were, after the test: plug-ins register into copies, and the
    modules loaded from ``tmp_path`` are forgotten. The built-ins are imported first: one imported inside the test
    would register only into the copy, and stay imported, so unregistered, afterwards."""
    metrics.available()
    for name in baseline_registry.METHODS.lazy:
        baseline_registry.method_class(name)
    metric_registry.available()
    monkeypatch.setattr(baseline_registry.METHODS, "_entries", dict(baseline_registry.METHODS._entries))
    monkeypatch.setattr(metric_registry.METRICS, "_entries", dict(metric_registry.METRICS._entries))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def installed(site: Path, package: str, group: str, entries: str) -> None:
    """An installed distribution ``package`` in the folder ``site`` (its ``dist-info``) with the entry points
    ``entries`` (``name = value`` lines) in ``group``."""
    info = site / f"{package.replace('-', '_')}-0.1.dist-info"
    write(info / "METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    write(info / "entry_points.txt", f"[{group}]\n{entries}\n")


def test_a_plugin_file_registers_its_method_which_joins_the_config(isolated, tmp_path):
    path = write(tmp_path / "wb_gxi.py", GRADIENT_X_INPUT.format(name="wb_gxi"))
    config = {"plugins": [str(path)], "methods": {"saliency": {"kind": "baseline", "label": "Saliency"}}}
    assert plugins.configure(config) == ["wb_gxi"]
    assert config["methods"]["wb_gxi"] == {"kind": "baseline", "label": "Gradient x Input"}
    assert plugins.load(config) == ["wb_gxi"]  # loading again (another stage) is a no-op
    assert not baseline_registry.is_builtin("wb_gxi") and baseline_registry.is_builtin("lrp")


def test_a_plugin_module_on_the_python_path_and_a_metric(isolated, tmp_path, monkeypatch):
    write(tmp_path / "wb_pkg" / "__init__.py", "")
    write(tmp_path / "wb_pkg" / "extra.py", """\
        import torch
        import metrics


        @metrics.register("wb_mean_attribution")
        def mean_attribution(model, x, y, attribution, **kwargs):
            return attribution.flatten(1).mean(1)
        """)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert plugins.load({"plugins": ["wb_pkg.extra"]}) == ["wb_pkg.extra"]
    assert "wb_mean_attribution" in metrics.available()
    value = metrics.get("wb_mean_attribution")(None, None, None, torch.ones(2, 3))
    assert value.tolist() == [1.0, 1.0]


def test_an_installed_package_is_found_through_its_entry_point(isolated, tmp_path, monkeypatch):
    site = tmp_path / "site"
    write(site / "wb_ep_methods.py", GRADIENT_X_INPUT.format(name="wb_ep_gxi"))
    installed(site, "wb-ep-pkg", "wam_bench.plugins", "methods = wb_ep_methods")
    monkeypatch.syspath_prepend(str(site))
    config = {"methods": {}}  # no `plugins` key: found without config
    assert plugins.configure(config) == ["wb_ep_gxi"]
    assert config["methods"]["wb_ep_gxi"]["label"] == "Gradient x Input"


def test_a_metric_entry_point_registers_a_function_under_its_name_or_loads_a_module(isolated, tmp_path,
                                                                                     monkeypatch):
    site = tmp_path / "site"
    write(site / "wb_ep_metrics.py", """\
        import metrics


        def top_share(model, x, y, attribution, **kwargs):
            return attribution.flatten(1).amax(1) / attribution.flatten(1).sum(1)


        @metrics.register("wb_ep_sum")
        def total(model, x, y, attribution, **kwargs):
            return attribution.flatten(1).sum(1)
        """)
    installed(site, "wb-ep-m", "wam_bench.metrics",
              "wb_ep_top_share = wb_ep_metrics:top_share\nwb_ep_sum = wb_ep_metrics:total")
    monkeypatch.syspath_prepend(str(site))
    assert plugins.load({}) == ["wb_ep_metrics", "wb_ep_metrics"]  # no `plugins` key: found without config
    attribution = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    assert metrics.get("wb_ep_top_share")(None, None, None, attribution).tolist() == [0.75, 0.5]
    assert metrics.get("wb_ep_sum") is sys.modules["wb_ep_metrics"].total  # registered by its module, once
    assert plugins.load({}) == ["wb_ep_metrics", "wb_ep_metrics"]  # again (another stage): a no-op


@pytest.mark.parametrize("group,source,entry,match", [
    ("wam_bench.plugins", "raise RuntimeError('half-installed')\n", "broken = wb_ep_broken",
     r"entry point 'broken' = 'wb_ep_broken' \(wam_bench.plugins, package wb-broken\) raised RuntimeError.*: "
     r"half-installed"),
    ("wam_bench.metrics", "def deletion(model, x, y, attribution, **kwargs):\n    return x\n",
     "deletion = wb_ep_broken:deletion",
     r"entry point 'deletion' = 'wb_ep_broken:deletion' \(wam_bench.metrics, package wb-broken\) raised "
     r"ValueError.*clashes with the built-in metrics\.curves\.deletion"),
])
def test_a_broken_entry_point_names_itself_and_its_package(isolated, tmp_path, monkeypatch, group, source, entry,
                                                           match):
    site = tmp_path / "site"
    write(site / "wb_ep_broken.py", source)
    installed(site, "wb-broken", group, entry)
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PluginError, match=match):
        plugins.load({})


@pytest.mark.parametrize("spec,source,match", [
    ("wb_no_such_module", None, "plugins: module 'wb_no_such_module' not found"),
    ("wb_missing/wb_nothing.py", None, "plugins: module '.*wb_nothing.py' not found"),
    ("wb_raises", "raise RuntimeError('boom')\n", "plugins: module 'wb_raises' raised RuntimeError.*boom"),
    ("wb_raises_file.py", "import wb_not_installed\n",
     "plugins: module '.*wb_raises_file.py' raised ModuleNotFoundError.*wb_not_installed"),
])
def test_a_missing_or_raising_module_is_named(isolated, tmp_path, monkeypatch, spec, source, match):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # a file is taken from the working directory
    if source is not None:
        write(tmp_path / (spec if spec.endswith(".py") else f"{spec}.py"), source)
    with pytest.raises(PluginError, match=match):
        plugins.load({"plugins": [spec]})


def test_a_name_taken_by_a_builtin_is_refused_naming_both(isolated, tmp_path):
    path = write(tmp_path / "wb_clash.py", GRADIENT_X_INPUT.format(name="saliency"))
    with pytest.raises(PluginError, match=r"baseline 'saliency' of wb_clash\.GradientXInput clashes with the "
                                          r"built-in baselines\.saliency\.Saliency"):
        plugins.load({"plugins": [str(path)]})
    assert baselines.registry.method_class("saliency").__module__ == "baselines.saliency"
    path = write(tmp_path / "wb_metric_clash.py", """\
        import metrics


        @metrics.register("deletion")
        def deletion(model, x, y, attribution, **kwargs):
            return x
        """)
    with pytest.raises(PluginError, match=r"metric 'deletion' of wb_metric_clash\.deletion clashes with the "
                                          r"built-in metrics\.curves\.deletion"):
        plugins.load({"plugins": [str(path)]})


def readme_example(section: str = "Add a baseline") -> tuple[str, str]:
    """The Python file of a README section ("Add a baseline", "Add a metric") and its configuration lines."""
    text = README.read_text().split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    (source,) = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    (config,) = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    return source, config


def test_readme_add_a_baseline_example_runs_as_a_plugin(isolated, tmp_path, image_batch):
    """The README's file, saved outside the repository, and its one config line: the method joins the
    configuration and computes x * W_y on a linear model (Gradient x Input's known answer)."""
    source, line = readme_example()
    entry = yaml.safe_load(line)["plugins"][0]
    path = write(tmp_path / Path(entry).name, source)
    config = {"plugins": [str(path)], "methods": {}}
    (name,) = plugins.configure(config)
    assert config["methods"][name]["kind"] == "baseline"
    model = linear_model((3, 8, 8), n_classes=4)
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 3, 1])
    expected = torch.stack([x[i] * model.gradient(int(c)) for i, c in enumerate(y)])
    torch.testing.assert_close(baselines.get(name, model)(x, y), expected)


def test_readme_add_a_metric_example_runs_as_a_plugin(isolated, tmp_path, image_model, image_batch):
    """The README's file, saved outside the repository, and its configuration: the metric is registered by a
    plug-in, listed in evaluation.metrics after the default's two, gives one value per input (in both domains),
    equals the built-in AOPC with ``share=1`` and is 0 on a model that ignores its input (a known answer)."""
    source, lines = readme_example("Add a metric")
    entries = yaml.safe_load(lines)
    path = write(tmp_path / Path(entries["plugins"][0]).name, source)
    assert plugins.load({"plugins": [str(path)]}) == [path.stem]
    name = entries["evaluation"]["metrics"][-1]
    assert entries["evaluation"]["metrics"][:-1] == list(Config.from_dict({}).evaluation_metrics)
    assert not metric_registry.METRICS.is_builtin(name)
    metric, (x, y) = metrics.get(name), image_batch
    attribution = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert metric(image_model, x, y, attribution, domain="wavelet").shape == (3,)
    torch.testing.assert_close(metric(image_model, x, y, attribution, steps=8, share=1.0),
                               metrics.get("aopc")(image_model, x, y, attribution, steps=8))
    blind = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 4))
    torch.nn.init.zeros_(blind[1].weight)
    assert metric(blind, x, y, attribution).abs().max() == 0
