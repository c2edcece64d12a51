"""The preflight names the config key of every problem, in seconds, without network (HF_HUB_OFFLINE=1, an empty
Hugging Face cache), and passes a configuration whose data and models are all there."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.workflow.test_datasets import write_esc50
from workflow.scripts import io

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, **datasets: dict) -> Path:
    config = {"name": "t", "seed": 0, "device": "cpu", "resources": str(tmp_path / "resources"), "shards": 1,
              "datasets": datasets, "methods": {"saliency": {"kind": "baseline", "label": "Saliency"}},
              "evaluation": {"steps": 4, "mu_fidelity": {"samples": 4}}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def _preflight(config: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    return subprocess.run([sys.executable, "-m", "workflow.scripts.preflight", "--config", str(config),
                           "--out", str(tmp_path / "preflight.json")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _npz(path: Path, test_images: tuple[int, ...] = (4, 28, 28, 28)) -> Path:
    rng = np.random.default_rng(0)
    arrays = {f"{s}_images": rng.integers(0, 256, (4, 28, 28, 28), dtype=np.uint8) for s in ("train", "val")}
    arrays["test_images"] = rng.integers(0, 256, test_images, dtype=np.uint8)
    arrays.update({f"{s}_labels": np.zeros((4, 1), np.int64) for s in ("train", "val", "test")})
    return io.write_npz(path, **arrays)


@pytest.mark.parametrize("case", ["imagenet_folder", "weights", "npz", "esc50_folder"])
def test_each_problem_names_its_config_key(tmp_path, case):
    images = {"modality": "images", "source": "offline", "models": ["efficientnet_lite0"]}
    if case == "imagenet_folder":
        images = {"modality": "images", "source": "imagenet", "path": str(tmp_path / "no-imagenet"),
                  "models": ["efficientnet_lite0"]}
        expected = r"datasets.images.path: .*no-imagenet is not a folder"
    elif case == "weights":
        images["models"] = ["timm:efficientnet_b0"]
        expected = (r"datasets.images.models \(timm:efficientnet_b0\): pretrained weights are not in the Hugging "
                    r"Face cache .* HF_HUB_OFFLINE .* efficientnet_lite0")
    datasets = {"images": images}
    if case == "npz":
        _npz(tmp_path / "resources" / "medmnist" / "adrenalmnist3d.npz", test_images=(4, 28, 28, 27))
        datasets["volumes"] = {"modality": "volumes", "source": "medmnist", "models": ["resnet3d"]}
        expected = r"datasets.volumes.size: .*adrenalmnist3d.npz test_images is \(4, 28, 28, 27\)"
    if case == "esc50_folder":
        folder = write_esc50(tmp_path / "ESC-50", manifest=False, rate=44100)
        datasets["audio"] = {"modality": "audio", "source": "esc50", "path": str(folder), "models": ["audio_resnet"]}
        expected = r"datasets.audio.path: .*esc50.csv lists 10 clips, expected 2000 \(datasets.audio.clips\)"
    run = _preflight(_config(tmp_path, **datasets), tmp_path)
    assert run.returncode == 1, run.stderr
    assert "preflight found 1 problem(s)" in run.stderr
    assert re.search(expected, run.stderr), run.stderr
    assert not (tmp_path / "preflight.json").exists()


def test_a_complete_configuration_passes_and_reports_the_device(tmp_path):
    folder = write_esc50(tmp_path / "ESC-50", manifest=False, rate=44100)
    _npz(tmp_path / "resources" / "medmnist" / "adrenalmnist3d.npz")
    config = _config(tmp_path,
                     images={"modality": "images", "source": "offline", "n_inputs": 2,
                             "models": ["efficientnet_lite0"]},
                     audio={"modality": "audio", "source": "esc50", "path": str(folder), "clips": 10, "n_inputs": 2,
                            "models": ["audio_resnet"]},
                     volumes={"modality": "volumes", "source": "medmnist", "n_inputs": 2, "models": ["resnet3d"]})
    run = _preflight(config, tmp_path)
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "preflight.json").read_text())["report"]
    assert report[:3] == ["datasets.images: offline images, models ['efficientnet_lite0']: ok",
                          "datasets.audio: esc50 audio, models ['audio_resnet']: ok",
                          "datasets.volumes: medmnist volumes, models ['resnet3d']: ok"]
    assert "device: no GPU (CPU only); estimated time on this CPU:" in report  # the config says device: cpu
    estimates = [line for line in report if "forward passes" in line]
    assert len(estimates) == 3 and report[-1].startswith("  about ")
