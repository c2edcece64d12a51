"""Plug-ins (workflow/lib/plugins.py): config modules and files, the ``wam_bench.plugins`` entry points, errors
naming the module, name clashes naming both, the README's "Add a baseline" example, and the DAG: adding a plug-in
method plans only its own explain / score jobs, the tables and the figures."""

from __future__ import annotations

import json
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
from tests.workflow.helpers import ROOT, write_config
from tests.workflow.helpers import snakemake as run_snakemake
from workflow.lib import plugins
from workflow.lib.plugins import PluginError

README = ROOT / "README.md"

GRADIENT_X_INPUT = '''\
"""Gradient x Input as a plug-in (tests/workflow/lib/test_plugins.py)."""
from captum.attr import InputXGradient

from baselines import Baseline, register


@register("{name}")
class GradientXInput(Baseline):
    label = "Gradient x Input"

    def attribute(self, x, y):
        method = InputXGradient(self.model)
        return self.per_chunk(lambda xs, ys: method.attribute(self.leaf(xs), target=ys), x, y)
'''


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
    write(site / "wb_ep_pkg-0.1.dist-info" / "METADATA", "Metadata-Version: 2.1\nName: wb-ep-pkg\nVersion: 0.1\n")
    write(site / "wb_ep_pkg-0.1.dist-info" / "entry_points.txt", "[wam_bench.plugins]\nmethods = wb_ep_methods\n")
    monkeypatch.syspath_prepend(str(site))
    config = {"methods": {}}  # no `plugins` key: found without config
    assert plugins.configure(config) == ["wb_ep_gxi"]
    assert config["methods"]["wb_ep_gxi"]["label"] == "Gradient x Input"


def test_a_broken_entry_point_names_itself_and_its_package(isolated, tmp_path, monkeypatch):
    site = tmp_path / "site"
    write(site / "wb_ep_broken.py", "raise RuntimeError('half-installed')\n")
    write(site / "wb_broken-0.1.dist-info" / "METADATA", "Metadata-Version: 2.1\nName: wb-broken\nVersion: 0.1\n")
    write(site / "wb_broken-0.1.dist-info" / "entry_points.txt", "[wam_bench.plugins]\nbroken = wb_ep_broken\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PluginError, match=r"entry point 'broken' = 'wb_ep_broken' \(wam_bench.plugins, package "
                                          r"wb-broken\) raised RuntimeError.*: half-installed"):
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


def readme_example() -> tuple[str, str]:
    """The "Add a baseline" section's Python file and its config line."""
    section = README.read_text().split("## Add a baseline", 1)[1].split("\n## ", 1)[0]
    (source,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    (config,) = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
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


# --- the DAG ----------------------------------------------------------------------------------------------------

STUB = '''\
"""Stand-in for a stage script (tests/workflow/lib/test_plugins.py): touches the outputs the dry run listed for
this very command, so that Snakemake runs the real DAG, and records its metadata, in seconds."""
import json
import sys
from pathlib import Path

key = " ".join([__spec__.name.removeprefix("workflow.scripts."), *sys.argv[1:]])
for output in json.loads(Path("stub_jobs.json").read_text())[key]:
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).touch()
'''


def snakemake(workdir: Path, config: Path, *args: str, ok: bool = True) -> str:
    """The ``evaluation`` target (``helpers.snakemake``)."""
    return run_snakemake(workdir, config, "evaluation", *args, ok=ok, timeout=300)


def planned(log: str) -> list[dict]:
    """The jobs of a dry run (``-n -p``): rule, wildcards, outputs and the stage command's arguments."""
    jobs: list[dict] = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", log):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        if rule is None:
            continue
        outputs = re.search(r"^\s+output: (.*)$", block, flags=re.M)
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, flags=re.M)
        command = re.search(r"-m workflow\.scripts\.([\w.]+ .*?)(?: 2>| >| \|)", block)
        jobs.append({"rule": rule.group(1),
                     "wildcards": dict(w.split("=", 1) for w in wildcards.group(1).split(", ")) if wildcards else {},
                     "outputs": outputs.group(1).split(", ") if outputs else [],
                     "command": command.group(1) if command else None})
    return jobs


@pytest.fixture(scope="module")
def ci_done(tmp_path_factory):
    """The ci configuration run through Snakemake in a temporary folder with stand-in stage scripts."""
    workdir = tmp_path_factory.mktemp("dag")
    config, config_file = write_config(workdir)
    jobs = planned(snakemake(workdir, config_file, "-n", "-p"))
    (workdir / "stub_jobs.json").write_text(json.dumps({j["command"]: j["outputs"] for j in jobs if j["command"]}))
    for stage in {j["command"].split()[0] for j in jobs if j["command"]}:  # `python -m workflow.scripts.X` run
        *packages, module = stage.split(".")                                   # there finds these first
        write(workdir / "workflow" / "scripts" / Path(*packages, f"{module}.py"), STUB)
        for depth in range(len(packages) + 1):
            write(workdir / "workflow" / "scripts" / Path(*packages[:depth], "__init__.py"), "")
    write(workdir / "workflow" / "__init__.py", "")
    snakemake(workdir, config_file)
    assert "Nothing to be done" in snakemake(workdir, config_file, "-n")
    return workdir, config, config_file


def test_adding_a_plugin_method_reruns_only_its_jobs_the_tables_and_figures(ci_done):
    workdir, config, config_file = ci_done
    write(workdir / "gxi.py", GRADIENT_X_INPUT.format(name="gradient_x_input"))
    config_file.write_text(yaml.safe_dump({**config, "plugins": ["gxi.py"]}))
    log = snakemake(workdir, config_file, "-n")
    print(log[log.index("Job stats"):])  # the listing (pytest -s shows it)
    jobs = planned(log)
    pairs = [(d, m) for d, spec in config["datasets"].items() for m in spec["models"]]
    assert sorted(j["rule"] for j in jobs) == sorted(["explain", "score", "figures"] * len(pairs)
                                                     + ["tables", "evaluation"])
    for job in jobs:
        if job["rule"] in ("explain", "score"):
            assert job["wildcards"]["method"] == "gradient_x_input"
    assert "gradient_x_input" in (workdir / "results" / "ci" / "config.json").read_text()


def test_a_missing_plugin_module_stops_the_run_naming_it(ci_done, tmp_path):
    workdir, config, _ = ci_done
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({**config, "plugins": ["wb_no_such_plugin"]}))
    log = snakemake(workdir, broken, "-n", ok=False)
    assert "plugins: module 'wb_no_such_plugin' not found" in log
