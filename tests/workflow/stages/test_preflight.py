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

from tests.workflow.helpers import ROOT, write_esc50, write_medmnist
from workflow.lib import files as io
from workflow.lib.config import Config
from workflow.lib.data import checks


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
        npz = write_medmnist(tmp_path / "resources" / "medmnist" / "adrenalmnist3d.npz", (4, 4, 4), 28)
        arrays = io.load_npz(npz)
        arrays["test_images"] = arrays["test_images"][..., :27]
        io.write_npz(npz, **arrays)
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
    write_medmnist(tmp_path / "resources" / "medmnist" / "adrenalmnist3d.npz", (4, 4, 4), 28)
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


# ----------------------------------------------------------------------------- every input checked, every defect named

WNIDS = ("n01440764", "n01443537")


def _imagenet_folder(root: Path, per_class: int = 4) -> Path:
    """An ImageNet class-folder layout of tiny JPEGs: ``per_class`` per wnid."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for wnid in WNIDS:
        (root / wnid).mkdir(parents=True)
        for k in range(per_class):
            Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(root / wnid / f"{k}.JPEG")
    return root


def _full_config(tmp_path: Path, **changes) -> dict:
    """ImageNet (8 images, all evaluated), an extracted ESC-50 (10 clips), a MedMNIST file; saliency and SmoothGrad."""
    images = _imagenet_folder(tmp_path / "val")
    esc50 = write_esc50(tmp_path / "ESC-50", manifest=False, rate=44100)
    write_medmnist(tmp_path / "resources" / "medmnist" / "adrenalmnist3d.npz", (4, 4, 4), 28)
    config = {"name": "t", "seed": 0, "device": "cpu", "resources": str(tmp_path / "resources"), "shards": 2,
              "datasets": {"images": {"modality": "images", "source": "imagenet", "path": str(images), "n_inputs": 8,
                                      "models": ["efficientnet_lite0"]},
                           "audio": {"modality": "audio", "source": "esc50", "path": str(esc50), "clips": 10,
                                     "n_inputs": 2, "models": ["audio_resnet"]},
                           "volumes": {"modality": "volumes", "source": "medmnist", "n_inputs": 2,
                                       "models": ["resnet3d"]}},
              "methods": {"saliency": {"kind": "baseline", "label": "Saliency"},
                          "smoothgrad": {"kind": "baseline", "label": "SmoothGrad", "options": {"n_samples": 4}},
                          "wam_sg": {"kind": "wam", "label": "WAM-SG", "options": {"method": "smooth"}}},
              "evaluation": {"steps": 4, "mu_fidelity": {"samples": 4}}}
    config.update(changes)
    return config


def _plant(tmp_path: Path, config: dict, defect: str) -> str:
    """Plant ``defect`` in the files or the config of :func:`_full_config`; the pattern its problem line must match
    (the config key, the file and the fix)."""
    import soundfile as sf

    root, esc50 = Path(config["datasets"]["images"]["path"]), Path(config["datasets"]["audio"]["path"])
    npz = tmp_path / "resources" / "medmnist" / "adrenalmnist3d.npz"
    if defect == "zero_byte_jpeg":
        (root / WNIDS[1] / "3.JPEG").write_bytes(b"")
        return r"datasets\.images\.path: 1 image file\(s\) cannot be opened: .*n01443537/3\.JPEG: corrupt or unreadable"
    if defect == "truncated_jpeg":  # its header reads, its pixels stop half way
        from PIL import Image

        path = root / WNIDS[1] / "2.JPEG"
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return r"datasets\.images\.path: 1 image file\(s\) of the evaluated subset do not decode: .*2\.JPEG.*replace"
    if defect == "loose_jpeg":
        (root / "stray.JPEG").write_bytes((root / WNIDS[0] / "0.JPEG").read_bytes())
        return r"datasets\.images\.path: 1 \(stray\.JPEG\) image file\(s\) lie loose beside the class folders"
    if defect == "devkit_inside":
        (root / "ILSVRC2012_devkit_t12" / "data").mkdir(parents=True)
        (root / "ILSVRC2012_devkit_t12" / "data" / "meta.mat").write_bytes(b"")
        return r"datasets\.images\.path: .*ILSVRC2012_devkit_t12 is the ImageNet devkit, not images: move it out"
    if defect == "clip_22050":
        sf.write(esc50 / "audio" / "3-1000-A-0.wav", np.zeros(22050 * 5), 22050)
        return r"datasets\.audio\.path: .*3-1000-A-0\.wav is 22050 Hz, 5\.000 s; ESC-50 clips are 44100 Hz, 5 s"
    if defect == "stereo_clip":
        sf.write(esc50 / "audio" / "2-1010-A-1.wav", np.zeros((44100 * 5, 2)), 44100)
        return r"datasets\.audio\.path: .*2-1010-A-1\.wav has 2 channels; ESC-50 clips are mono: convert it"
    if defect == "mislabelled_row":
        csv_path = esc50 / "meta" / "esc50.csv"
        csv_path.write_text(csv_path.read_text().replace("4-1010-A-1.wav,4,1,", "4-1010-A-1.wav,4,0,"))
        return r"datasets\.audio\.path: .*esc50\.csv line 9: target 0 disagrees with the file name 4-1010-A-1\.wav"
    if defect == "nan_voxel":
        arrays = io.load_npz(npz)
        arrays["test_images"] = arrays["test_images"].astype(np.float32) / 255
        arrays["test_images"][1, 3, 4, 5] = np.nan
        io.write_npz(npz, **arrays)
        return (r"datasets\.volumes: .*adrenalmnist3d\.npz test_images has 1 NaN value\(s\) in 1 volume\(s\) "
                r"\(first: volume 1\)")
    if defect == "channel_axis":
        arrays = io.load_npz(npz)
        arrays["test_images"] = arrays["test_images"][:, None]
        io.write_npz(npz, **arrays)
        return (r"datasets\.volumes: .*adrenalmnist3d\.npz test_images is \(4, 1, 28, 28, 28\), with a channel axis "
                r"\(axis 1\).*np\.squeeze")
    if defect == "n_inputs":
        config["datasets"]["volumes"]["n_inputs"] = 1000
        return r"datasets\.volumes\.n_inputs: 1000 > the 4 inputs available in its test split"
    if defect == "shards":
        config["shards"] = 9
        return (r"shards: 9 > the evaluated inputs of datasets\.images \(8\), datasets\.audio \(2\), datasets\.volumes "
                r"\(2\) \(datasets\.<key>\.n_inputs\): every shard needs one input at least; lower shards to at most 2")
    if defect == "unknown_method":
        config["methods"]["smoothgrd"] = {"kind": "baseline", "label": "typo"}
        return r"methods\.smoothgrd: unknown baseline 'smoothgrd' \(did you mean 'smoothgrad'\?\); available: "
    if defect == "unknown_option":
        config["methods"]["smoothgrad"]["options"] = {"n_sample": 4}
        return r"methods\.smoothgrad\.options\.n_sample: unknown option; accepted: batch_size, n_samples, noise"
    raise AssertionError(defect)


DEFECTS = ["zero_byte_jpeg", "truncated_jpeg", "loose_jpeg", "devkit_inside", "clip_22050", "stereo_clip",
           "mislabelled_row", "nan_voxel", "channel_axis", "n_inputs", "shards", "unknown_method", "unknown_option"]


def test_the_clean_inputs_pass(tmp_path):
    problems, _ = checks.run(Config.from_dict(_full_config(tmp_path)))
    assert problems == []


@pytest.mark.parametrize("defect", DEFECTS)
def test_each_planted_defect_is_named_with_its_key_file_and_fix(tmp_path, defect):
    config = _full_config(tmp_path)
    expected = _plant(tmp_path, config, defect)
    problems, _ = checks.run(Config.from_dict(config))
    assert len(problems) == 1 and re.search(expected, problems[0]), problems


def test_seven_defects_at_once_are_all_reported_in_one_run(tmp_path):
    """A copy with seven defects planted: a zero-byte JPEG, a loose JPEG, a 22,050 Hz clip, a mislabelled CSV row,
    ``n_sample``, an unknown method name and ``shards: 9`` for 8 inputs; preflight names all seven, one line each."""
    config = _full_config(tmp_path)
    seven = ["zero_byte_jpeg", "loose_jpeg", "clip_22050", "mislabelled_row", "unknown_option", "unknown_method",
             "shards"]
    expected = [_plant(tmp_path, config, defect) for defect in seven]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    run = _preflight(path, tmp_path)
    assert run.returncode == 1, run.stderr
    assert f"preflight found {len(seven)} problem(s)" in run.stderr, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("- ")]
    for pattern in expected:
        assert sum(bool(re.search(pattern, line)) for line in lines) == 1, (pattern, lines)
