"""Extensions touch only what they add: on the ``ci`` configuration with every experiment (``seeds``,
``robustness``, ``audio_separation``, ``perturbation``), run once through Snakemake with stand-in stage scripts,
adding a plug-in method plans only its own explain / score jobs (and its seed replicates) plus the tables, the
figures and the timings; adding a plug-in metric to ``evaluation.metrics`` rescores without explaining, training or
rerunning an experiment. Snakemake's own reasoning decides (``-n``: its rerun triggers, params included)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.workflow.helpers import GRADIENT_X_INPUT, ROOT, write_config
from tests.workflow.helpers import snakemake as run_snakemake

METRIC = '''\
"""A metric plug-in (tests/workflow/stages/test_plugin_dag.py): the mean magnitude of the attribution."""
import metrics


@metrics.register("wb_dag_metric")
def mean_magnitude(model, x, y, attribution, **kwargs):
    return attribution.flatten(1).abs().mean(1)
'''

STUB = '''\
"""Stand-in for a stage script (tests/workflow/stages/test_plugin_dag.py): touches the outputs the dry run listed for
this very command, so that Snakemake runs the real DAG, and records its metadata, in seconds."""
import json
import sys
from pathlib import Path

key = " ".join([__spec__.name.removeprefix("workflow.scripts."), *sys.argv[1:]])
for output in json.loads(Path("stub_jobs.json").read_text())[key]:
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).touch()
'''


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def snakemake(workdir: Path, config: Path, *args: str, ok: bool = True) -> str:
    """Every target (``all``; ``helpers.snakemake``)."""
    return run_snakemake(workdir, config, "all", *args, ok=ok, timeout=300)


def planned(log: str) -> list[dict]:
    """The jobs of a dry run (``-n -p``): rule, wildcards, inputs, outputs and the stage command's arguments."""
    jobs: list[dict] = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", log):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        if rule is None:
            continue
        inputs = re.search(r"^\s+input: (.*)$", block, flags=re.M)
        outputs = re.search(r"^\s+output: (.*)$", block, flags=re.M)
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, flags=re.M)
        command = re.search(r"-m workflow\.scripts\.([\w.]+ .*?)(?: 2>| >| \|)", block)
        jobs.append({"rule": rule.group(1),
                     "wildcards": dict(w.split("=", 1) for w in wildcards.group(1).split(", ")) if wildcards else {},
                     "inputs": inputs.group(1).split(", ") if inputs else [],
                     "outputs": outputs.group(1).split(", ") if outputs else [],
                     "command": command.group(1) if command else None})
    return jobs


def every_experiment() -> dict:
    """Changes of ``ci``: an audio data set and the default's experiment sections."""
    ci, default = (yaml.safe_load((ROOT / "workflow" / "config" / f"{name}.yaml").read_text())
                   for name in ("ci", "default"))
    return {"datasets": {**ci["datasets"], "audio": {**default["datasets"]["audio"], "n_inputs": 2}},
            "wavelet": {**ci["wavelet"], "audio": default["wavelet"]["audio"]},
            "robustness": default["robustness"], "perturbation": default["perturbation"],
            "audio_separation": {**default["audio_separation"], "mel_mask": "saliency", "n_examples": 1}}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The configuration run to the end through Snakemake in a temporary folder with stand-in stage scripts."""
    workdir = tmp_path_factory.mktemp("plugin_dag")
    config, config_file = write_config(workdir, **every_experiment())
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
    return workdir, config, jobs


def report_pages_of(jobs: list[dict], rules: set[str]) -> int:
    """How many report table pages (rule ``report_table``) of the base run read an output of one of ``rules``:
    those a rerun of these rules renders again."""
    written = {path for job in jobs if job["rule"] in rules for path in job["outputs"]}
    return sum(job["rule"] == "report_table" and bool(written & set(job["inputs"])) for job in jobs)


def pairs(config: dict) -> list[tuple[str, str]]:
    return [(d, m) for d, spec in config["datasets"].items() for m in spec["models"]]


def test_the_base_run_has_every_rule(finished):
    """Every rule that could take the whole ``methods`` section is in the DAG the tests below change."""
    _, _, jobs = finished
    rules = {j["rule"] for j in jobs}
    assert {"explain", "score", "tables", "figures", "seed_train", "seed_replicate", "seed_spread",
            "audio_separation_run", "robustness_evaluate", "perturbation_masks", "speed", "timings"} <= rules


def test_adding_a_plugin_method_plans_only_its_jobs_the_tables_figures_and_timings(finished, tmp_path):
    workdir, config, base = finished
    write(workdir / "gxi.py", GRADIENT_X_INPUT.format(name="gradient_x_input"))
    changed = tmp_path / "plugin.yaml"
    changed.write_text(yaml.safe_dump({**config, "plugins": ["gxi.py"]}))
    log = snakemake(workdir, changed, "-n")
    print(log[log.index("Job stats"):])  # the listing (pytest -s shows it)
    jobs = planned(log)
    trained = [(d, m) for d, m in pairs(config) if m != "efficientnet_lite0"]  # pretrained: no seed replicate
    rerun = ["tables", "seed_spread", "timings"]
    expected = (["explain", "score", "figures"] * len(pairs(config)) + ["seed_replicate"] * len(trained)
                + [*rerun, "all"] + ["report_table"] * report_pages_of(base, set(rerun)))
    assert Counter(j["rule"] for j in jobs) == Counter(expected)
    for job in jobs:
        if job["rule"] in ("explain", "score", "seed_replicate"):
            assert job["wildcards"]["method"] == "gradient_x_input"
    assert "gradient_x_input" in (workdir / "results" / "ci" / "config.json").read_text()


def test_adding_a_plugin_metric_rescores_without_explaining_training_or_experiments(finished, tmp_path):
    workdir, config, base = finished
    write(workdir / "wb_dag_metric.py", METRIC)
    evaluation = {**config["evaluation"], "metrics": ["faithfulness_of_spectra", "input_fidelity", "wb_dag_metric"]}
    changed = tmp_path / "metric.yaml"
    changed.write_text(yaml.safe_dump({**config, "plugins": ["wb_dag_metric.py"], "evaluation": evaluation}))
    jobs = planned(snakemake(workdir, changed, "-n"))
    rules = Counter(j["rule"] for j in jobs)
    n_methods, n_trained = len(config["methods"]), len(pairs(config)) - 1
    assert rules == Counter({"score": len(pairs(config)) * n_methods, "seed_replicate": n_trained * n_methods,
                             "figures": len(pairs(config)), "tables": 1, "seed_spread": 1, "timings": 1, "all": 1,
                             "report_table": report_pages_of(base, {"tables", "seed_spread", "timings"})})


def test_a_missing_plugin_module_stops_the_run_naming_it(finished, tmp_path):
    workdir, config, _ = finished
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({**config, "plugins": ["wb_no_such_plugin"]}))
    log = snakemake(workdir, broken, "-n", ok=False)
    assert "plugins: module 'wb_no_such_plugin' not found" in log
