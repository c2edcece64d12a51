"""Running the workflow in a temporary folder, for the end-to-end tests (pipeline, plug-ins, paper, report), the
tiny data files they read, and a plug-in's source."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from workflow.lib.data import esc50

ROOT = Path(__file__).resolve().parents[2]
# A plug-in baseline's source (``.format(name=...)``): Gradient x Input, captum's, on the Baseline base class.
GRADIENT_X_INPUT = '''\
"""Gradient x Input as a plug-in (tests/workflow/helpers.py)."""
from captum.attr import InputXGradient

from baselines import Baseline, register


@register("{name}")
class GradientXInput(Baseline):
    label = "Gradient x Input"

    def attribute(self, x, y):
        method = InputXGradient(self.model)
        return self.per_chunk(lambda xs, ys: method.attribute(self.leaf(xs), target=ys), x, y)
'''


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


def write_esc50(folder: Path, n_per_fold: int = 1, seconds: float = 5.0, manifest: bool = True,
                rate: int = 22050, channels: int = 1) -> Path:
    """A tiny ESC-50-format folder: 5 folds x 2 classes x ``n_per_fold`` clips of ``channels`` at ``rate`` Hz."""
    import soundfile as sf

    (folder / "audio").mkdir(parents=True)
    (folder / "meta").mkdir()
    rows = []
    rng = np.random.default_rng(0)
    for fold in range(1, 6):
        for target in range(2):
            for k in range(n_per_fold):
                name = f"{fold}-{1000 + 10 * target + k}-A-{target}.wav"
                # 22.05 kHz by default: the loader must give 44.1 kHz, 5 s, peak-normalised
                sf.write(folder / "audio" / name, 0.1 * rng.standard_normal((int(rate * seconds), channels)), rate)
                rows.append([name, fold, target, f"class{target}", False, "x", "A"])
    with open(folder / "meta" / "esc50.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(esc50.ESC50_COLUMNS)
        w.writerows(rows)
    if manifest:
        (folder / "manifest.json").write_text("{}")
    return folder


def write_medmnist(path: Path, counts: tuple[int, int, int] = (6, 4, 6), size: int = 8, cube: bool = False) -> Path:
    """A MedMNIST-format ``.npz``: ``counts`` (train, val, test) uint8 volumes of ``size``^3 with labels alternating
    0, 1 (shape ``(n, 1)``); ``cube``: class 1 gets a bright centred cube (learnable), else the voxels are noise."""
    from workflow.lib import files

    rng = np.random.default_rng(1)
    arrays = {}
    for split, n in zip(("train", "val", "test"), counts, strict=True):
        labels = np.arange(n) % 2
        images = rng.integers(0, 60 if cube else 256, (n, size, size, size), dtype=np.uint8)
        if cube:
            lo, hi = size * 5 // 14, size * 9 // 14
            images[labels == 1, lo:hi, lo:hi, lo:hi] = 250
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels[:, None]
    return files.write_npz(path, **arrays)
