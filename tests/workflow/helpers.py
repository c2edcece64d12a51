"""Running the workflow in a temporary folder, for the end-to-end tests (pipeline, plug-ins, paper, report)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def write_config(workdir: Path, name: str = "ci", **changes) -> tuple[dict, Path]:
    """``workflow/config/{name}.yaml`` with its resources under ``workdir`` and ``changes`` applied, written to
    ``workdir/{name}.yaml``: ``(config, path)``."""
    config = yaml.safe_load((ROOT / "workflow" / "config" / f"{name}.yaml").read_text())
    config.update(resources=str(workdir / "resources"), **changes)
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return config, path


def snakemake(workdir: Path, config: Path, *args: str, ok: bool | None = True, timeout: float = 1800) -> str:
    """Run ``snakemake *args`` on 2 cores in ``workdir`` (with the default workflow profile, as ``make run`` and
    plain ``snakemake``); its console output. ``ok``: the exit status must be zero (True) or not (False); ``None``
    checks nothing."""
    cmd = [sys.executable, "-m", "snakemake", *args, "--cores", "2", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(config)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if ok is not None:
        assert (run.returncode == 0) == ok, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout + run.stderr
