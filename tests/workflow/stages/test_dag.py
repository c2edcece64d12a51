"""Configurations: schema validation with clear messages, the DAG of each config, the SLURM profile."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted((ROOT / "workflow" / "config").glob("[!s]*.yaml"))
SCHEMA = ROOT / "workflow" / "config" / "schema.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "workflow" / "config" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_validates_and_is_named_after_its_file(path):
    config = yaml.safe_load(path.read_text())
    validate(config, str(SCHEMA))
    assert config["name"] == path.stem


def test_default_config_is_offline_with_every_table1_method_and_all_modalities():
    config = load("default")
    assert {d["source"] for d in config["datasets"].values()} == {"offline"}
    assert {d["modality"] for d in config["datasets"].values()} == {"images", "audio", "volumes"}
    labels = {m["label"] for m in config["methods"].values()}
    assert {"Saliency", "SmoothGrad", "Integrated Gradients", "GradCAM", "GradCAM++", "WAM-SG", "WAM-IG"} <= labels


def test_a_misspelled_key_fails_validation_naming_the_key():
    config = load("ci")
    config["evaluation"]["stpes"] = config["evaluation"].pop("steps")
    with pytest.raises(Exception, match="stpes"):
        validate(config, str(SCHEMA))


@pytest.mark.parametrize(("path", "value", "instance"), [
    ("robustness.attack.epsilon", -0.1, "['robustness']['attack']['epsilon']"),
    ("robustness.attack.step_size", 0.0, "['robustness']['attack']['step_size']"),
    ("robustness.models.erm.training", "trades", "['robustness']['models']['erm']['training']"),
    ("robustness.seeds", [0, 0], "['robustness']['seeds']"),
    ("audio_separation.lambda", -0.1, "['audio_separation']['lambda']"),
    ("audio_separation.keeps", [0.1, 0.0], "['audio_separation']['keeps'][1]"),
    ("audio_separation.keeps", [1.5], "['audio_separation']['keeps'][0]"),
    ("audio_separation.keeps", [], "['audio_separation']['keeps']"),
    ("audio_separation.mel_inversions", ["fft"], "['audio_separation']['mel_inversions'][0]"),
    ("audio_separation.n_samples", 1, "['audio_separation']['n_samples']"),
])
def test_an_out_of_range_experiment_setting_fails_validation_naming_its_key(path, value, instance):
    """Ranges and kinds of the experiments' settings are the schema's alone (the stages check what it cannot
    say: keys of other sections, files)."""
    config = load("default")
    *parents, last = path.split(".")
    section = config
    for key in parents:
        section = section[key]
    section[last] = value
    with pytest.raises(Exception, match=re.escape(f"On instance{instance}")):
        validate(config, str(SCHEMA))


def test_snakemake_refuses_a_misspelled_key_with_its_name(tmp_path):
    config = load("ci")
    config["shardz"] = config.pop("shards")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    run = subprocess.run([*SNAKEMAKE, "-n", "--configfile", str(bad)], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode != 0
    assert "'shardz' was unexpected" in run.stdout + run.stderr


def _dry_run(*args: str) -> str:
    """The whole planned DAG (``--forceall``: whatever results already exist here)."""
    run = subprocess.run([*SNAKEMAKE, "-n", "--forceall", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout + run.stderr


def _job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1].split("Reasons:")[0]
    counts = {}
    for line in table.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_default_dag_has_one_job_per_dataset_model_method_shard():
    config = load("default")
    pairs = sum(len(d["models"]) for d in config["datasets"].values())
    counts = _job_counts(_dry_run())
    per_stage = pairs * len(config["methods"]) * config["shards"]
    assert counts["explain"] == counts["score"] == per_stage
    assert counts["train"] == pairs and counts["prepare_data"] == len(config["datasets"])
    assert counts["tables"] == 1 and counts["speed"] == 1 and counts["figures"] == pairs


def test_slurm_profile_plans_the_paper_configuration_with_gpu_jobs():
    """`snakemake -n --workflow-profile workflow/profiles/slurm` on the paper config: shards become jobs,
    GPU rules carry the gpu resource (the executor turns it into --gpus), CPU rules do not."""
    out = _dry_run("--workflow-profile", "workflow/profiles/slurm", "--configfile", "workflow/config/paper.yaml")
    config = load("paper")
    pairs = sum(len(d["models"]) for d in config["datasets"].values())
    counts = _job_counts(out)
    assert counts["explain"] == counts["score"] == pairs * len(config["methods"]) * config["shards"]
    blocks = {block.split(":")[0].strip(): block for block in out.split("\nrule ")[1:]}
    assert "gpu=1" in blocks["explain"] and "gpu=1" in blocks["train"]
    assert "gpu=" not in blocks["tables"] and "gpu=" not in blocks["prepare_data"]
    profile = yaml.safe_load((ROOT / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm" and "slurm_account" not in str(profile.get("default-resources"))
