"""Data sets of the benchmark: prepare (write, download or locate) and load them.

One dataset section of the config drives everything (``cfg`` below)::

    images:  {modality: images,  source: offline | imagenet, n_inputs: 8, models: [...],
              path: <ImageNet val folder>, labels: <devkit ground-truth file>}
    audio:   {modality: audio,   source: offline | esc50, n_inputs: 20, fold: 1, models: [...],
              sha256: <optional override of the pinned ESC-50 archive digest>}
    volumes: {modality: volumes, source: offline | medmnist, n_inputs: 20,
              flag: adrenalmnist3d, size: 28, models: [...]}

Optional in every section: ``seed`` (default 42) for the evaluated subset.

Layout under ``resources/`` (every file written atomically; ``manifest.json`` is written last in
each prepared folder, so its presence means "complete"; ``prepare`` is idempotent)::

    offline/images/{wnid}/{name}.JPEG          ImageNet class-folder layout; real photographs from
                                               scikit-image / scikit-learn; the folder (= target)
                                               is efficientnet_lite0's top-1 class, computed once
                                               at prepare time on the written file
    offline/audio/audio/{fold}-{src}-{take}-{target}.wav   ESC-50 layout, PCM-16 mono 44.1 kHz 5 s
    offline/audio/meta/esc50.csv               ESC-50 columns (filename, fold, target, category,
                                               esc10, src_file, take), 5 folds
    offline/audio/meta/onsets.csv              ground truth: filename, onset, length (samples),
                                               gain, noise
    offline/volumes/synth3d_{size}.npz         MedMNIST format: {split}_images uint8 [N,S,S,S],
                                               {split}_labels int [N,1], split in train/val/test
    offline/volumes/synth3d_{size}_truth.npz   ground truth: {split}_masks uint8 [N,S,S,S],
                                               {split}_centers float [N,3], {split}_sizes float [N]
    esc50/ESC-50-master/{audio,meta}           the public archive, extracted (sha256 verified;
                                               the zip is deleted after extraction)
    medmnist/{flag}.npz, medmnist/{flag}_64.npz   medmnist's own files (md5 from medmnist.INFO)

ImageNet is never copied: ``path`` points at the validation images, either in class folders
(``{wnid}/*.JPEG``) or flat (``ILSVRC2012_val_*.JPEG``) with ``labels`` the devkit's
``ILSVRC2012_validation_ground_truth.txt`` (ILSVRC2012 ids 1..1000, mapped to classes with the
devkit's ``meta.mat`` in the same folder; a file of one wnid per line works too). Class indices
are timm's (sorted wnids).

Splits: ``"test"`` is the evaluated set, a deterministic, class-balanced, seeded subset of
``n_inputs`` items of the test split (ImageNet val; ESC-50 fold ``fold``; MedMNIST test), or all
of it with ``load(..., subset=False)``. ESC-50 ``"val"`` is fold ``fold % 5 + 1`` and ``"train"``
the three other folds. Images have only a test split (the model is pretrained).

``Split.x``: images ``[N, 3, H, W]`` (the model's timm data config), audio ``[N, 220500]`` float32
mono 44.1 kHz, volumes ``[N, 1, S, S, S]`` float32 in [0, 1].
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io as _stdio
import json
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from workflow.scripts import io

SAMPLE_RATE = 44100
CLIP_SECONDS = 5
CLIP_SAMPLES = SAMPLE_RATE * CLIP_SECONDS
IMAGE_EXTENSIONS = {".jpeg", ".jpg", ".png"}
FLAT_IMAGENET_NAME = re.compile(r"ILSVRC2012_val_(\d{8})")
FREEDESKTOP_SOUNDS = Path("/usr/share/sounds/freedesktop/stereo")
# One class per distinct clip of Debian's sound-theme-freedesktop (duplicates left out).
AUDIO_CLIPS = (
    "bell", "camera-shutter", "complete", "device-added", "dialog-error", "message",
    "message-new-instant", "phone-incoming-call", "service-login", "trash-empty",
)
AUDIO_CLIPS_PER_FOLD = 4          # per class and fold: 20 per class, 200 clips (88 MB), 40 per fold
VOLUME_CLASSES = ("ball", "shell", "rod", "cluster")
VOLUME_SPLIT_SIZES = {"train": 720, "val": 80, "test": 120}
ESC50_URL = "https://github.com/karolpiczak/ESC-50/archive/master.zip"
# sha256 of the master archive (645,695,005 bytes) as recorded in March 2026 by a third party;
# not re-verified here (no network). GitHub regenerates archives: override with cfg["sha256"].
ESC50_SHA256 = "805afc618aff80eff0641d51311647871fead5807da68bb18e43a27db47a79ce"
ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
ESC50_CLIPS = 2000
ESC50_NAME = re.compile(r"(\d+)-([^-]+)-([^-]+)-(\d+)\.wav")  # {fold}-{source clip}-{take}-{target}.wav
SKIMAGE_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "retina", "hubble_deep_field",
                  "immunohistochemistry", "motorcycle")
SKLEARN_PHOTOS = ("china", "flower")
OFFLINE_IMAGE_LABELLER = "efficientnet_lite0"  # the offline photographs' class folders: its top-1 class


@dataclasses.dataclass
class Split:
    """A loaded split: ``x`` [N, ...] float32 (layout per modality), ``y`` [N] long,
    ``ids`` N stable identifiers (file names or ``{split}-{index:04d}``)."""

    x: torch.Tensor
    y: torch.Tensor
    ids: list[str]
    n_classes: int
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y) or len(self.y) != len(self.ids):
            raise ValueError(f"Split: x {len(self.x)}, y {len(self.y)}, ids {len(self.ids)} differ")


# ----------------------------------------------------------------------------- config helpers


def _key(cfg: dict) -> str:
    return str(cfg.get("_key") or cfg.get("modality") or "?")


def _need(cfg: dict, name: str):
    if cfg.get(name) in (None, ""):
        raise ValueError(f"datasets.{_key(cfg)}.{name}: required but not set")
    return cfg[name]


def _modality_source(cfg: dict) -> tuple[str, str]:
    modality = _need(cfg, "modality")
    source = cfg.get("source", "offline")
    valid = {"images": ("offline", "imagenet"), "audio": ("offline", "esc50"),
             "volumes": ("offline", "medmnist")}
    if modality not in valid:
        raise ValueError(f"datasets.{_key(cfg)}.modality: {modality!r} not in {sorted(valid)}")
    if source not in valid[modality]:
        raise ValueError(f"datasets.{_key(cfg)}.source: {source!r} not in {valid[modality]}")
    return modality, source


def dataset_folder(cfg: dict, resources: Path) -> Path:
    """Folder that ``prepare`` fills (or the ImageNet path)."""
    modality, source = _modality_source(cfg)
    resources = Path(resources)
    if source == "offline":
        return resources / "offline" / modality
    if source == "imagenet":
        return Path(_need(cfg, "path"))
    if source == "esc50":
        return Path(cfg["path"]) if cfg.get("path") else resources / "esc50" / "ESC-50-master"
    return resources / "medmnist"


def _volume_file(cfg: dict, resources: Path) -> Path:
    _, source = _modality_source(cfg)
    size = int(cfg.get("size", 28))
    if source == "offline":
        return dataset_folder(cfg, resources) / f"synth3d_{size}.npz"
    flag = cfg.get("flag", "adrenalmnist3d")
    return dataset_folder(cfg, resources) / (f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz")


# ----------------------------------------------------------------------------- prepare


def prepare(key: str, cfg: dict, resources: Path) -> Path:
    """Write (offline), download (ESC-50, MedMNIST) or locate (ImageNet) data set ``key``.

    Returns its folder. Idempotent: a folder whose ``manifest.json`` exists is left alone.
    """
    cfg = {**cfg, "_key": key}
    modality, source = _modality_source(cfg)
    resources = Path(resources)
    folder = dataset_folder(cfg, resources)
    if source == "imagenet":
        image_index(cfg)  # validates the folder, the layout and the labels
        return folder
    if modality == "volumes":
        target = _volume_file(cfg, resources)
        if not target.is_file():
            if source == "offline":
                _write_offline_volumes(target, int(cfg.get("size", 28)), seed=0)
            else:
                _download_medmnist(cfg, target)
        fail(check_volumes(cfg, target))
        return folder
    if source == "esc50" and cfg.get("path"):  # an extracted copy: validated, used in place
        fail(check_esc50(cfg, folder, every_clip=True))
        return folder
    if (folder / "manifest.json").is_file():
        return folder
    if modality == "images":
        _write_offline_images(folder, OFFLINE_IMAGE_LABELLER)
    elif source == "offline":
        _write_offline_audio(folder, seed=0)
    else:
        _download_esc50(cfg, folder)
        fail(check_esc50(cfg, folder, every_clip=True))
    return folder


def fail(problems: list[str]) -> None:
    """``ValueError`` listing ``problems`` (one per line), if any."""
    if problems:
        raise ValueError("\n".join(problems))


def _manifest(folder: Path, **extra) -> None:
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    io.write_json(folder / "manifest.json", io.provenance(n_files=len(files), **extra))


# images ----------------------------------------------------------------------


def _offline_photos() -> dict[str, np.ndarray]:
    """Real RGB photographs shipped with scikit-image and scikit-learn: name -> uint8 [H, W, 3]."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    out = {}
    for name in SKIMAGE_PHOTOS:
        img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(
            skimage.data, name)()
        out[name] = np.ascontiguousarray(img[..., :3])
    sk = load_sample_images()
    for fname, img in zip(sk.filenames, sk.images, strict=True):
        name = Path(fname).stem
        if name in SKLEARN_PHOTOS:
            out[name] = np.ascontiguousarray(img)
    return out


def _write_offline_images(folder: Path, model_name: str) -> None:
    from PIL import Image

    from workflow.scripts import models

    with io.atomic_dir(folder) as tmp:
        staging = tmp / "_staging"
        staging.mkdir()
        paths = []
        for name, img in _offline_photos().items():
            p = staging / f"{name}.JPEG"
            Image.fromarray(img).save(p, format="JPEG", quality=95)
            paths.append(p)
        preprocessing = models.ImagePreprocessing.of(model_name)
        model = models.build(model_name, 1000)
        with torch.no_grad():
            top1 = model(preprocessing.normalize()(decode_images(paths, preprocessing))).argmax(1).tolist()
        wnids = _imagenet_wnids()
        for p, c in zip(paths, top1, strict=True):
            (tmp / wnids[c]).mkdir(exist_ok=True)
            p.rename(tmp / wnids[c] / p.name)
        staging.rmdir()
        _manifest(tmp, labels_from=model_name,
                  targets={p.stem: int(c) for p, c in zip(paths, top1, strict=True)})


def _imagenet_wnids() -> list[str]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_label_name(i) for i in range(info.num_classes())]


def imagenet_names() -> list[str]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(info.num_classes())]


@dataclasses.dataclass(frozen=True)
class ImageIndex:
    """An ImageNet-layout folder indexed without decoding anything: ``files`` and their class ``labels`` (timm's
    indices), and the non-image ``ignored`` files (never read; preflight lists them)."""

    root: Path
    files: list[Path]
    labels: list[int]
    ignored: list[Path]

    def __len__(self) -> int:
        return len(self.files)

    def ids(self, idx: list[int]) -> list[str]:
        """Stable identifiers of files ``idx``: their paths relative to ``root``."""
        return [self.files[i].relative_to(self.root).as_posix() for i in idx]


DEVKIT_MARKERS = ("meta.mat", "ILSVRC2012_validation_ground_truth.txt")


def _is_devkit(folder: Path) -> bool:
    """The ImageNet devkit (``ILSVRC2012_devkit_t12``, or any folder holding its ``data/meta.mat`` or ground truth)."""
    return folder.name.lower().startswith("ilsvrc2012_devkit") or any(
        (folder / "data" / m).is_file() or (folder / m).is_file() for m in DEVKIT_MARKERS)


def _listed(paths: list[Path], limit: int = 3) -> str:
    """``n`` and the first few of ``paths``, for a message."""
    shown = ", ".join(p.name for p in paths[:limit])
    return f"{len(paths)} ({shown}{', ...' if len(paths) > limit else ''})"


def index_images(cfg: dict) -> tuple[ImageIndex | None, list[str]]:
    """Index an ImageNet-layout folder (class folders ``{wnid}/*.JPEG``, or flat ``ILSVRC2012_val_%08d`` files with
    the devkit ``labels``) without decoding it: ``(index, problems)``, every inconsistency its own problem naming
    the config key, the file and the fix (``index`` is ``None`` when the folder cannot be indexed at all)."""
    key = f"datasets.{_key(cfg)}"
    root = Path(_need(cfg, "path"))
    if not root.is_dir():
        return None, [f"{key}.path: {root} is not a folder; set it to the ImageNet validation images (class folders, "
                      "or flat ILSVRC2012_val_%08d files with `labels`)"]
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    folders = [p for p in entries if p.is_dir()]
    devkits = [d for d in folders if _is_devkit(d)]
    loose = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    ignored = [p for p in entries if p.is_file() and p.suffix.lower() not in IMAGE_EXTENSIONS]
    problems = [f"{key}.path: {d} is the ImageNet devkit, not images: move it out of {root} ({key}.labels can point "
                "at its data/ILSVRC2012_validation_ground_truth.txt where it lies)" for d in devkits]
    classes = [d for d in folders if d not in devkits]
    files, labels = [], []
    if classes:
        wnid_index = {w: i for i, w in enumerate(_imagenet_wnids())}
        unknown = [d for d in classes if d.name not in wnid_index]
        if unknown:
            problems.append(f"{key}.path: {_listed(unknown)} folder(s) in {root} are not ImageNet class folders "
                            "(named by a wnid such as n01440764): move them out of the image folder")
        if loose:
            problems.append(f"{key}.path: {_listed(loose)} image file(s) lie loose beside the class folders of {root}; "
                            "they would be left out: move each into its class folder, or out of the image folder")
        for d in classes:
            if d.name not in wnid_index:
                continue
            for f in sorted(d.iterdir()):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                    files.append(f)
                    labels.append(wnid_index[d.name])
                elif not f.name.startswith("."):
                    ignored.append(f)
    elif loose:
        if cfg.get("labels") in (None, ""):
            return None, problems + [f"{key}.labels: required for the flat ImageNet layout in {root} (the devkit's "
                                     "ILSVRC2012_validation_ground_truth.txt)"]
        try:
            truth = _devkit_labels(Path(cfg["labels"]), {w: i for i, w in enumerate(_imagenet_wnids())}, key)
        except ValueError as e:
            return None, problems + [str(e)]
        unnamed = [f for f in loose if FLAT_IMAGENET_NAME.fullmatch(f.stem) is None]
        if unnamed:
            problems.append(f"{key}.path: {_listed(unnamed)} file(s) in the flat folder {root} are not named "
                            "ILSVRC2012_val_%08d.JPEG (the number is the line of the devkit ground truth): rename or "
                            "remove them")
        for f in loose:
            if f not in unnamed:
                try:
                    labels.append(_flat_label(f, truth, cfg))
                    files.append(f)
                except ValueError as e:
                    problems.append(str(e))
    if not files and not problems:
        problems.append(f"{key}.path: no images in {root}")
    return ImageIndex(root, files, labels, ignored), problems


def image_index(cfg: dict) -> ImageIndex:
    """:func:`index_images`, raising one ``ValueError`` that lists every problem."""
    index, problems = index_images(cfg)
    fail(problems)
    return index


def _flat_label(path: Path, truth: list[int], cfg: dict) -> int:
    """Class of a flat-layout validation image: the devkit's line number ``k`` of ``ILSVRC2012_val_{k:08d}``
    (never the file's position in the folder: a folder may hold any subset of the 50,000 images)."""
    match = FLAT_IMAGENET_NAME.fullmatch(path.stem)
    if match is None:
        raise ValueError(f"{path}: a flat ImageNet folder (datasets.{_key(cfg)}.path) must hold files named "
                         "ILSVRC2012_val_%08d.JPEG; the number is the line of the devkit ground truth")
    number = int(match.group(1))
    if not 1 <= number <= len(truth):
        raise ValueError(f"datasets.{_key(cfg)}.labels: {path} is image number {number}, which has no label in "
                         f"{cfg['labels']} ({len(truth)} lines)")
    return truth[number - 1]


def _devkit_labels(path: Path, wnid_index: dict[str, int], key: str = "datasets.images") -> list[int]:
    if not path.is_file():
        raise ValueError(f"{key}.labels: {path} not found (the devkit's ILSVRC2012_validation_ground_truth.txt)")
    tokens = path.read_text().split()
    if all(t in wnid_index for t in tokens):
        return [wnid_index[t] for t in tokens]
    try:
        ids = [int(t) for t in tokens]
    except ValueError as e:
        raise ValueError(f"{key}.labels: {path}: expected ILSVRC2012 ids (1..1000) or wnids, one a line") from e
    meta = path.parent / "meta.mat"
    if not meta.is_file():
        raise ValueError(f"{key}.labels: {path}: ILSVRC2012 ids need the devkit's meta.mat beside it ({meta})")
    from scipy.io import loadmat

    try:
        synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
        id_to_wnid = {int(s[0]): str(s[1]) for s in synsets if int(s[0]) <= 1000}
    except Exception as e:
        raise ValueError(f"{meta}: corrupt devkit meta.mat ({type(e).__name__}: {e})") from e
    try:
        return [wnid_index[id_to_wnid[i]] for i in ids]
    except KeyError as e:
        raise ValueError(f"{path}: id {e} not an ILSVRC2012 class in {meta}") from e


def open_image(path: Path, full: bool = True):
    """The RGB PIL image of ``path`` (``full``: decoded; otherwise only its header read), or ``ValueError`` naming
    the file (a zero-byte, truncated or non-image file)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if full:
                im.load()
                return im.convert("RGB")
            return im.size
    except Exception as e:
        raise ValueError(f"{path}: corrupt or unreadable image ({type(e).__name__}: {e})") from e


class ImageFiles(torch.utils.data.Dataset):
    """Image files decoded one at a time by ``preprocessing`` (a :class:`workflow.scripts.models.ImagePreprocessing`)
    into ``[3, H, W]`` in [0, 1], with their labels: what a ``DataLoader`` streams (memory stays one batch)."""

    def __init__(self, files: list[Path], labels: list[int], preprocessing) -> None:
        self.files, self.labels, self.transform = files, labels, preprocessing.transform()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(open_image(self.files[i])), self.labels[i]


def decode_images(paths: list[Path], preprocessing) -> torch.Tensor:
    """Decode ``paths`` with a model's resize and crop (``preprocessing``): ``[N, 3, H, W]`` in [0, 1] (not
    normalised: the model's own ``preprocessing.normalize()`` follows any perturbation)."""
    dataset = ImageFiles(list(paths), [0] * len(paths), preprocessing)
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


# audio -----------------------------------------------------------------------


def read_clip(path: Path) -> tuple[np.ndarray, int]:
    """Read with soundfile -> mono float32 [T], sample rate; ValueError naming a bad file."""
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        raise ValueError(f"{path}: corrupt or unreadable audio file ({type(e).__name__}: {e})") from e
    if data.shape[0] == 0:
        raise ValueError(f"{path}: empty audio file")
    return data.mean(axis=1), int(sr)


def resample(wave: np.ndarray, sr: int, target: int = SAMPLE_RATE) -> np.ndarray:
    if sr == target:
        return wave
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(wave), sr, target).numpy()


def _freedesktop_clips() -> dict[str, np.ndarray]:
    if not FREEDESKTOP_SOUNDS.is_dir():
        raise ValueError(
            f"{FREEDESKTOP_SOUNDS}: missing; the offline audio set is built from Debian's "
            "sound-theme-freedesktop: run `apt-get install sound-theme-freedesktop` (or `make run`)")
    out = {}
    for name in AUDIO_CLIPS:
        wave, sr = read_clip(FREEDESKTOP_SOUNDS / f"{name}.oga")
        wave = resample(wave, sr)
        wave = wave / max(float(np.abs(wave).max()), 1e-6)
        loud = np.flatnonzero(np.abs(wave) > 1e-2)  # trim silence: the mask covers the sound
        out[name] = wave[loud[0]:loud[-1] + 1].astype(np.float32)
    return out


def _write_offline_audio(folder: Path, seed: int = 0) -> None:
    import soundfile as sf

    clips = _freedesktop_clips()
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    with io.atomic_dir(folder) as tmp:
        (tmp / "audio").mkdir()
        (tmp / "meta").mkdir()
        for target, name in enumerate(AUDIO_CLIPS):
            clip = clips[name][:CLIP_SAMPLES]
            for fold in range(1, 6):
                for k in range(AUDIO_CLIPS_PER_FOLD):
                    src = 100000 + 100 * target + 10 * fold + k
                    fname = f"{fold}-{src}-A-{target}.wav"
                    onset = int(rng.integers(0, CLIP_SAMPLES - len(clip) + 1))
                    gain = float(rng.uniform(0.5, 1.0))
                    noise = float(rng.uniform(0.002, 0.01))
                    wave = (noise * rng.standard_normal(CLIP_SAMPLES)).astype(np.float32)
                    wave[onset:onset + len(clip)] += gain * clip
                    sf.write(str(tmp / "audio" / fname), np.clip(wave, -1, 1), SAMPLE_RATE,
                             subtype="PCM_16")
                    rows.append((fname, fold, target, name, "False", f"freedesktop/{name}.oga", "A"))
                    truth.append((fname, onset, len(clip), round(gain, 6), round(noise, 6)))
        _write_csv(tmp / "meta" / "esc50.csv", ESC50_COLUMNS, rows)
        _write_csv(tmp / "meta" / "onsets.csv", ("filename", "onset", "length", "gain", "noise"),
                   truth)
        _manifest(tmp, source="sound-theme-freedesktop", classes=list(AUDIO_CLIPS), seed=seed)


def _write_csv(path: Path, header, rows) -> None:
    buf = _stdio.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    io.write_text(path, buf.getvalue())


def _read_csv(path: Path, required: tuple[str, ...]) -> list[dict]:
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except Exception as e:
        raise ValueError(f"{path}: unreadable csv ({e})") from e
    if rows and not set(required) <= set(rows[0]):
        raise ValueError(f"{path}: needs columns {list(required)}, has {list(rows[0])}")
    return rows


def _download_esc50(cfg: dict, folder: Path) -> None:
    archive = folder.parent / "ESC-50-master.zip"
    io.download(ESC50_URL, archive, sha256=cfg.get("sha256") or ESC50_SHA256, timeout=120)
    with io.atomic_dir(folder) as tmp:
        try:
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        except zipfile.BadZipFile as e:
            raise ValueError(f"{archive}: corrupt zip archive ({e})") from e
        inner = tmp / "ESC-50-master"
        for p in inner.iterdir():
            p.rename(tmp / p.name)
        inner.rmdir()
        _manifest(tmp, source=ESC50_URL, sha256=cfg.get("sha256") or ESC50_SHA256)
    archive.unlink()


def check_esc50(cfg: dict, folder: Path, every_clip: bool = False) -> list[str]:
    """Problems of an extracted ESC-50 folder, each naming the config key (empty: usable).

    ``meta/esc50.csv`` with the ESC-50 columns, ``datasets.<key>.clips`` rows (2,000 for ESC-50; ``null``
    skips the count), folds 1-5, integer targets, every row's ``fold`` and ``target`` equal to those in its file
    name (``{fold}-{source}-{take}-{target}.wav``), every listed clip under ``audio/``, and the sample rate
    (44.1 kHz), length (5 s) and channels (mono) of the first clip, or of ``every_clip`` (a shorter one is
    accepted, with a warning, when ``datasets.<key>.allow_short_clips``).
    """
    key = f"datasets.{_key(cfg)}"
    where = f"{key}.path" if cfg.get("path") else f"{key} (downloaded to {folder})"
    if not folder.is_dir():
        return [f"{where}: {folder} is not a folder (an extracted ESC-50: audio/ and meta/esc50.csv)"]
    csv_path = folder / "meta" / "esc50.csv"
    try:
        rows = _read_csv(csv_path, ESC50_COLUMNS[:4])
    except ValueError as e:
        return [f"{where}: {e}"]
    problems = []
    expected = cfg.get("clips", ESC50_CLIPS)
    if expected is not None and len(rows) != int(expected):
        problems.append(f"{where}: {csv_path} lists {len(rows)} clips, expected {expected} ({key}.clips)")
    try:
        folds = {int(r["fold"]) for r in rows}
        targets = {int(r["target"]) for r in rows}
    except ValueError:
        return problems + [f"{where}: {csv_path} has a non-integer fold or target"]
    if folds != set(range(1, 6)):
        problems.append(f"{where}: {csv_path} has folds {sorted(folds)}, expected 1 to 5")
    if targets and min(targets) < 0:
        problems.append(f"{where}: {csv_path} has negative targets")
    problems += esc50_row_problems(rows, csv_path, where)
    missing = [r["filename"] for r in rows if not (folder / "audio" / r["filename"]).is_file()]
    if missing:
        problems.append(f"{where}: {len(missing)} clips listed in {csv_path} are missing from "
                        f"{folder / 'audio'} (first: {missing[0]})")
    else:
        import soundfile as sf

        for row in rows if every_clip else rows[:1]:
            path = folder / "audio" / row["filename"]
            try:
                info = sf.info(str(path))
            except Exception as e:
                problems.append(f"{where}: {path} is unreadable ({type(e).__name__}: {e})")
                continue
            seconds = info.frames / info.samplerate
            short = seconds < CLIP_SECONDS - 1e-3
            if info.channels != 1:
                problems.append(f"{where}: {path} has {info.channels} channels; ESC-50 clips are mono: convert it "
                                "(e.g. sox in.wav -c 1 out.wav)")
            if info.samplerate != SAMPLE_RATE or abs(seconds - CLIP_SECONDS) > 1e-3:
                message = (f"{where}: {path} is {info.samplerate} Hz, {seconds:.3f} s; ESC-50 clips are "
                           f"{SAMPLE_RATE} Hz, {CLIP_SECONDS} s")
                if short and cfg.get("allow_short_clips", False) and info.samplerate == SAMPLE_RATE:
                    warnings.warn(f"{message} (zero-padded: {key}.allow_short_clips)", stacklevel=2)
                else:
                    problems.append(message + (f" (a damaged clip; {key}.allow_short_clips: true zero-pads it)"
                                               if short else ""))
    return problems


def esc50_row_problems(rows: list[dict], csv_path: Path, where: str) -> list[str]:
    """One problem per ``esc50.csv`` row whose ``fold`` or ``target`` disagrees with its file name
    (``{fold}-{source}-{take}-{target}.wav``), or whose name has not that form: a wrong row would be scored with
    the wrong label."""
    problems = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        match = ESC50_NAME.fullmatch(row["filename"])
        if match is None:
            problems.append(f"{where}: {csv_path} line {number}: {row['filename']!r} is not named "
                            "{fold}-{source}-{take}-{target}.wav; fix the row or the file name")
            continue
        named = {"fold": match.group(1), "target": match.group(4)}
        for column, value in named.items():
            if str(row[column]).strip() != value:
                problems.append(f"{where}: {csv_path} line {number}: {column} {row[column]} disagrees with the file "
                                f"name {row['filename']} ({column} {value}); correct the row")
    return problems


def _esc50_rows(cfg: dict, resources: Path, split: str) -> list[dict]:
    folder = dataset_folder(cfg, resources)
    csv_path = folder / "meta" / "esc50.csv"
    rows = _read_csv(csv_path, ("filename", "fold", "target", "category"))
    fail(esc50_row_problems(rows, csv_path, f"datasets.{_key(cfg)}"))
    test_fold = int(cfg.get("fold", 1))
    if not 1 <= test_fold <= 5:
        raise ValueError(f"datasets.{_key(cfg)}.fold: {test_fold} not in 1..5")
    val_fold = test_fold % 5 + 1
    folds = {"test": {test_fold}, "val": {val_fold},
             "train": set(range(1, 6)) - {test_fold, val_fold}}[split]
    return [r for r in rows if int(r["fold"]) in folds]


def _clip(path: Path, cfg: dict) -> np.ndarray:
    """One clip as the models see it: mono, 44.1 kHz, exactly 5 s ``[220500]``, peak-normalised
    (``x / max|x|``, as the reference's ``wf / wf.max()``; a silent clip stays zero).

    Every ESC-50 clip lasts exactly 5 s: a shorter file is damaged and is an error naming it and its
    length, unless ``datasets.<key>.allow_short_clips`` is true (then it is zero-padded, with a warning).
    A longer one is cut to 5 s.
    """
    wave, sr = read_clip(path)
    wave = resample(wave, sr)
    if len(wave) < CLIP_SAMPLES:
        message = (f"{path}: {len(wave) / SAMPLE_RATE:.3f} s ({len(wave)} samples at {SAMPLE_RATE} Hz), "
                   f"expected {CLIP_SECONDS} s: a damaged or truncated clip")
        if not cfg.get("allow_short_clips", False):
            raise ValueError(f"{message}; set datasets.{_key(cfg)}.allow_short_clips: true to zero-pad it")
        warnings.warn(f"{message}; zero-padded (datasets.{_key(cfg)}.allow_short_clips)", stacklevel=2)
        wave = np.pad(wave, (0, CLIP_SAMPLES - len(wave)))
    wave = wave[:CLIP_SAMPLES]
    peak = float(np.abs(wave).max())
    return wave / peak if peak > 0 else wave


def _load_audio(cfg: dict, split: str, resources: Path) -> Split:
    folder = dataset_folder(cfg, resources)
    all_rows = _read_csv(folder / "meta" / "esc50.csv", ("filename", "fold", "target", "category"))
    names = {int(r["target"]): r["category"] for r in all_rows}
    class_names = [names.get(i, str(i)) for i in range(max(names) + 1)]
    rows = _esc50_rows(cfg, resources, split)
    waves = [_clip(folder / "audio" / r["filename"], cfg) for r in rows]
    x = torch.from_numpy(np.stack(waves).astype(np.float32)) if waves else torch.zeros(0, CLIP_SAMPLES)
    y = torch.tensor([int(r["target"]) for r in rows], dtype=torch.long)
    return Split(x, y, [r["filename"] for r in rows], len(class_names), class_names)


# volumes ---------------------------------------------------------------------


def _mni_backgrounds(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Random cubic crops of the MNI152 template (nilearn, 2 mm), resized to size^3, in [0, 1]."""
    import torch.nn.functional as F
    from nilearn.datasets import load_mni152_template

    tpl = np.asarray(load_mni152_template(resolution=2).get_fdata(), dtype=np.float32)
    tpl = tpl / tpl.max()
    out = np.empty((n, size, size, size), np.float32)
    for i in range(n):
        c = int(rng.integers(40, 65))
        o = [int(rng.integers(0, max(1, s - c + 1))) for s in tpl.shape]
        crop = tpl[o[0]:o[0] + c, o[1]:o[1] + c, o[2]:o[2] + c]
        crop = np.pad(crop, [(0, c - s) for s in crop.shape])
        out[i] = F.interpolate(torch.from_numpy(crop)[None, None], size=(size,) * 3,
                               mode="trilinear", align_corners=False)[0, 0].numpy()
    return out


def _structure(cls: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Soft mask [S, S, S] in [0, 1] of one class structure, its centre [3] and size (radius)."""
    g = np.stack(np.meshgrid(*[np.arange(size, dtype=np.float32)] * 3, indexing="ij"))
    s = size / 28.0
    margin = 9 * s
    center = rng.uniform(margin, size - 1 - margin, 3).astype(np.float32)

    def ball(c, r):
        d = np.sqrt(((g - c[:, None, None, None]) ** 2).sum(0))
        return np.clip(r + 0.5 - d, 0, 1)

    # Sizes are chosen so that the four shapes differ clearly (solid / hollow / elongated /
    # scattered) and also in how many voxels they light up, so that small models trained in a
    # minute on CPU separate them.
    if cls == 0:  # solid ball
        r = float(rng.uniform(3.5, 4.5)) * s
        m = ball(center, r)
    elif cls == 1:  # hollow shell, larger than any ball
        r = float(rng.uniform(6.0, 7.5)) * s
        m = np.clip(ball(center, r) - ball(center, r - 1.5 * s), 0, 1)
    elif cls == 2:  # thin rod along a random axis, longer than any other structure
        axis = int(rng.integers(0, 3))
        r, half = float(rng.uniform(1.0, 1.5)) * s, float(rng.uniform(7.5, 9.0)) * s
        d = g - center[:, None, None, None]
        radial = np.sqrt(sum(d[a] ** 2 for a in range(3) if a != axis))
        m = np.clip(r + 0.5 - radial, 0, 1) * np.clip(half + 0.5 - np.abs(d[axis]), 0, 1)
        r = half
    else:  # cluster of small balls (fine scale)
        r = 7.0 * s
        m = np.zeros((size,) * 3, np.float32)
        for _ in range(6):
            off = rng.normal(0, 1, 3)
            off = off / np.linalg.norm(off) * rng.uniform(3.5, 6.5) * s
            m = np.maximum(m, ball(center + off.astype(np.float32), float(rng.uniform(1.0, 1.4)) * s))
    return m.astype(np.float32), center, r


def _write_offline_volumes(target: Path, size: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    arrays, truth = {}, {}
    for split, n in VOLUME_SPLIT_SIZES.items():
        labels = np.arange(n) % len(VOLUME_CLASSES)
        rng.shuffle(labels)
        bg = 0.25 * _mni_backgrounds(n, size, rng)  # tissue dimmer than the structures
        vols = np.empty_like(bg)
        masks = np.empty(bg.shape, np.uint8)
        centers = np.empty((n, 3), np.float32)
        sizes = np.empty(n, np.float32)
        for i, c in enumerate(labels):
            m, centers[i], sizes[i] = _structure(int(c), size, rng)
            vols[i] = np.maximum(bg[i], m * rng.uniform(0.9, 1.0))
            masks[i] = m > 0.5
        arrays[f"{split}_images"] = np.round(np.clip(vols, 0, 1) * 255).astype(np.uint8)
        arrays[f"{split}_labels"] = labels.astype(np.int64)[:, None]
        truth.update({f"{split}_masks": masks, f"{split}_centers": centers, f"{split}_sizes": sizes})
    truth["class_names"] = np.array(VOLUME_CLASSES)
    io.write_npz(target.with_name(target.stem + "_truth.npz"), **truth)
    io.write_npz(target, **arrays)  # last: its presence means "complete"
    io.write_json(target.parent / "manifest.json",
                  io.provenance(file=target.name, classes=list(VOLUME_CLASSES), seed=seed,
                                template="nilearn MNI152 2 mm", split_sizes=VOLUME_SPLIT_SIZES))


def medmnist_info(cfg: dict) -> dict:
    """medmnist's ``INFO`` entry of ``datasets.<key>.flag`` (a 3D flag); ``ValueError`` naming the key."""
    from medmnist import INFO

    flag = cfg.get("flag", "adrenalmnist3d")
    if flag not in INFO or not flag.endswith("3d"):
        raise ValueError(f"datasets.{_key(cfg)}.flag: {flag!r} is not a MedMNIST 3D flag "
                         f"({sorted(k for k in INFO if k.endswith('3d'))})")
    return INFO[flag]


def medmnist_url(cfg: dict) -> tuple[str, str]:
    """Download address and md5 of the MedMNIST file ``datasets.<key>.{flag, size}`` names."""
    size = int(cfg.get("size", 28))
    if size not in (28, 64):
        raise ValueError(f"datasets.{_key(cfg)}.size: {size} not in (28, 64)")
    info, sfx = medmnist_info(cfg), "" if size == 28 else f"_{size}"
    return info[f"url{sfx}"], info[f"MD5{sfx}"]


def _download_medmnist(cfg: dict, target: Path) -> None:
    url, md5 = medmnist_url(cfg)
    io.download(url, target, md5=md5, timeout=120)


def check_volumes(cfg: dict, path: Path) -> list[str]:
    """Problems of a MedMNIST-format ``.npz`` (empty: usable), each naming the file and the config key:
    ``{split}_images`` ``[N, S, S, S]`` (uint8, or float in [0, 1]) with ``S = datasets.<key>.size`` and
    ``{split}_labels`` ``[N]`` or ``[N, 1]`` integers in ``[0, classes)`` for train, val and test."""
    key = f"datasets.{_key(cfg)}"
    try:
        arrays = io.load_npz(path)
    except ValueError as e:
        return [f"{key}: {e}"]
    size, n_classes = int(cfg.get("size", 28)), len(_volume_class_names(cfg))
    problems = []
    for split in ("train", "val", "test"):
        images, labels = arrays.get(f"{split}_images"), arrays.get(f"{split}_labels")
        if images is None or labels is None:
            problems.append(f"{key}: {path} has no {split}_images / {split}_labels (has {sorted(arrays)})")
            continue
        problems += _volume_array_problems(images, f"{path} {split}_images", key, size)
        if labels.reshape(-1).shape[0] != images.shape[0] or not np.issubdtype(labels.dtype, np.integer):
            problems.append(f"{key}: {path} {split}_labels is {labels.dtype} {labels.shape}, expected "
                            f"{images.shape[0]} integers")
        elif labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            problems.append(f"{key}: {path} {split}_labels span [{labels.min()}, {labels.max()}], expected "
                            f"[0, {n_classes - 1}] ({n_classes} classes)")
    return problems


def _volume_array_problems(images: np.ndarray, where: str, key: str, size: int) -> list[str]:
    """Shape (``[N, S, S, S]``, a channel axis named as one), dtype and finiteness of a MedMNIST image array."""
    shape = images.shape
    channel = [a for a in (1, 4) if images.ndim == 5 and shape[a] == 1
               and tuple(d for i, d in enumerate(shape[1:], 1) if i != a) == (size,) * 3]
    if channel:
        return [f"{key}: {where} is {shape}, with a channel axis (axis {channel[0]}); MedMNIST stores [N, {size}, "
                f"{size}, {size}]: remove it (np.squeeze(images, axis={channel[0]}))"]
    if images.ndim != 4 or shape[1:] != (size,) * 3:
        return [f"{key}.size: {where} is {shape}, expected [N, {size}, {size}, {size}] (a volume of side "
                f"{key}.size = {size})"]
    if images.dtype == np.uint8:
        return []
    if not np.issubdtype(images.dtype, np.floating):
        return [f"{key}: {where} is {images.dtype}, expected uint8 or floats in [0, 1]"]
    bad = ~np.isfinite(images)
    if bad.any():
        volumes = np.flatnonzero(bad.reshape(len(images), -1).any(1))
        kind = "NaN" if np.isnan(images).any() else "infinite"
        return [f"{key}: {where} has {int(bad.sum())} {kind} value(s) in {len(volumes)} volume(s) (first: volume "
                f"{volumes[0]}); replace them with finite values in [0, 1]"]
    if images.min() < 0 or images.max() > 1:
        return [f"{key}: {where} spans [{images.min():.3g}, {images.max():.3g}], expected uint8 or floats in [0, 1]"]
    return []


def _volume_class_names(cfg: dict) -> list[str]:
    if _modality_source(cfg)[1] == "offline":
        return list(VOLUME_CLASSES)
    labels = medmnist_info(cfg)["label"]
    return [labels[str(i)] for i in range(len(labels))]


def _load_volumes(cfg: dict, split: str, resources: Path) -> Split:
    path = _volume_file(cfg, resources)
    if not path.is_file():
        raise ValueError(f"{path}: not prepared (run `datasets prepare --key {_key(cfg)}`)")
    z = io.load_npz(path, [f"{split}_images", f"{split}_labels"])
    imgs, labels = z[f"{split}_images"], z[f"{split}_labels"].reshape(-1)
    fail(_volume_array_problems(imgs, f"{path} {split}_images", f"datasets.{_key(cfg)}", int(cfg.get("size", 28))))
    scale = 255.0 if imgs.dtype == np.uint8 else 1.0
    x = torch.from_numpy(imgs.astype(np.float32) / scale)[:, None]
    class_names = _volume_class_names(cfg)
    ids = [f"{split}-{i:04d}" for i in range(len(labels))]
    return Split(x, torch.from_numpy(labels.astype(np.int64)), ids, len(class_names), class_names)


# ----------------------------------------------------------------------------- load

NDIM = {"audio": 1, "images": 2, "volumes": 3}  # spatial dimensions of each modality's inputs


def shard_indices(n: int, shards: int, shard: int) -> list[int]:
    """Contiguous, near-equal slices of ``range(n)``: shard ``shard`` of ``shards``."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard: expected 0 <= shard < {shards}, got {shard}")
    bounds = [round(i * n / shards) for i in range(shards + 1)]
    return list(range(bounds[shard], bounds[shard + 1]))


def evaluated_shard(config: dict, dataset: str, shard: int, preprocessing=None) -> Split:
    """The evaluated (test) inputs of data set ``dataset`` of a full ``config`` that fall in ``shard``; images are
    decoded (only this shard's files) with ``preprocessing``, the explained model's own."""
    cfg = {**config["datasets"][dataset], "seed": config["seed"]}
    return load(cfg, "test", Path(config["resources"]), key=dataset, preprocessing=preprocessing,
                part=lambda n: shard_indices(n, config["shards"], shard))


def model_inputs(config: dict, dataset: str, model: torch.nn.Module, shard: int) -> tuple[Split, torch.Tensor]:
    """Shard ``shard`` of the evaluated inputs as ``model`` sees them: ``(data, x)``. Images are decoded with the
    model's own resize and crop (``data.x`` in [0, 1], the data's own space) and ``x`` is normalised by the
    model's own statistics (:func:`workflow.scripts.models.preprocessing`); other modalities are used as loaded
    (``x is data.x``)."""
    if config["datasets"][dataset]["modality"] != "images":
        data = evaluated_shard(config, dataset, shard)
        return data, data.x
    from workflow.scripts import models

    preprocessing = models.preprocessing(model)
    data = evaluated_shard(config, dataset, shard, preprocessing)
    return data, preprocessing.normalize()(data.x)


def balanced_subset(y: list[int] | torch.Tensor, n: int, seed: int) -> list[int]:
    """Deterministic class-balanced subset of ``n`` indices (sorted): classes are visited in a
    seeded order, one item each per round, items drawn in a seeded order within a class."""
    y = [int(v) for v in y]
    if n >= len(y):
        return list(range(len(y)))
    g = torch.Generator().manual_seed(int(seed))
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(y):
        by_class.setdefault(c, []).append(i)
    classes = sorted(by_class)
    order = [classes[i] for i in torch.randperm(len(classes), generator=g).tolist()]
    queues = {c: [by_class[c][i] for i in torch.randperm(len(by_class[c]), generator=g).tolist()]
              for c in classes}
    picked: list[int] = []
    while len(picked) < n:
        for c in order:
            if queues[c] and len(picked) < n:
                picked.append(queues[c].pop(0))
    return sorted(picked)


def take(s: Split, idx: list[int]) -> Split:
    t = torch.as_tensor(idx, dtype=torch.long)
    return Split(s.x[t], s.y[t], [s.ids[i] for i in idx], s.n_classes, s.class_names)


def image_folder(cfg: dict, resources: Path) -> ImageIndex:
    """The index of an images data set: the ImageNet folder, or the prepared offline photographs."""
    if _modality_source(cfg)[1] == "imagenet":
        return image_index(cfg)
    root = dataset_folder(cfg, resources)
    if not (root / "manifest.json").is_file():
        raise ValueError(f"{root}: not prepared (run `datasets prepare --key {_key(cfg)}`)")
    return image_index({**cfg, "path": root})


def evaluated_indices(cfg: dict, labels: list[int] | torch.Tensor) -> list[int]:
    """The evaluated subset of a test split with ``labels``: ``n_inputs`` of them, class-balanced and seeded
    (``cfg["seed"]``, default 42), or all of them when ``n_inputs`` is not set; ``ValueError`` naming
    ``datasets.<key>.n_inputs`` when fewer are available."""
    n = cfg.get("n_inputs")
    if n and int(n) > len(labels):
        raise ValueError(f"datasets.{_key(cfg)}.n_inputs: {n} > {len(labels)} inputs available in the test split")
    return balanced_subset(labels, int(n), cfg.get("seed", 42)) if n else list(range(len(labels)))


def load(cfg: dict, split: str, resources: Path, *, subset: bool = True, key: str | None = None,
         preprocessing=None, part=None) -> Split:
    """Load ``split`` in {"train", "val", "test"} of a prepared data set.

    ``"test"`` with ``subset=True`` is the evaluated set: ``n_inputs`` items, class-balanced and
    seeded (``cfg["seed"]``, default 42); ``subset=False`` gives the whole test split. ``part(n)``, when given,
    picks the positions to keep among those ``n`` items (a shard) before anything is decoded.

    Images (a test split only: the models are pretrained) are indexed, then only the kept files are decoded with
    ``preprocessing`` (the model's own :class:`workflow.scripts.models.ImagePreprocessing`; required) into [0, 1],
    not normalised. A whole folder is never decoded at once: stream it with :class:`ImageFiles`.
    """
    cfg = {**cfg, "_key": key or cfg.get("_key") or cfg.get("modality")}
    if split not in ("train", "val", "test"):
        raise ValueError(f"split: {split!r} not in ('train', 'val', 'test')")
    modality, _ = _modality_source(cfg)
    resources = Path(resources)
    if modality == "images":
        if split != "test":
            raise ValueError(f"split: images have only a 'test' split (pretrained model), got {split!r}")
        if preprocessing is None:
            raise ValueError("preprocessing: images are decoded with the explained model's own preprocessing "
                             "(workflow.scripts.models.preprocessing(model))")
        index = image_folder(cfg, resources)
        idx = evaluated_indices(cfg, index.labels) if subset else list(range(len(index)))
        if part is not None:
            idx = [idx[i] for i in part(len(idx))]
        x = decode_images([index.files[i] for i in idx], preprocessing)
        y = torch.tensor([index.labels[i] for i in idx], dtype=torch.long)
        return Split(x, y, index.ids(idx), 1000, imagenet_names())
    if modality == "audio":
        if not (dataset_folder(cfg, resources) / "meta" / "esc50.csv").is_file():
            raise ValueError(f"{dataset_folder(cfg, resources)}: not prepared "
                             f"(run `datasets prepare --key {_key(cfg)}`)")
        s = _load_audio(cfg, split, resources)
    else:
        s = _load_volumes(cfg, split, resources)
    if split == "test" and subset:
        s = take(s, evaluated_indices(cfg, s.y))
    return take(s, part(len(s))) if part is not None else s


def ground_truth(cfg: dict, resources: Path, ids: list[str]) -> torch.Tensor | None:
    """Where the class evidence is, for the offline sets; None otherwise.

    Audio: bool ``[N, 220500]``, True where the clip sits. Volumes: bool ``[N, S, S, S]``, the
    inserted structure. ``ids`` as returned by ``load``.
    """
    modality, source = _modality_source(cfg)
    if source != "offline" or modality == "images":
        return None
    resources = Path(resources)
    if modality == "audio":
        path = dataset_folder(cfg, resources) / "meta" / "onsets.csv"
        rows = {r["filename"]: r for r in _read_csv(path, ("filename", "onset", "length"))}
        out = torch.zeros(len(ids), CLIP_SAMPLES, dtype=torch.bool)
        for i, name in enumerate(ids):
            if name not in rows:
                raise ValueError(f"{path}: no ground truth for {name!r}")
            o, n = int(rows[name]["onset"]), int(rows[name]["length"])
            out[i, o:o + n] = True
        return out
    path = _volume_file(cfg, resources)
    path = path.with_name(path.stem + "_truth.npz")
    splits = sorted({i.split("-")[0] for i in ids})
    z = io.load_npz(path, [f"{s}_masks" for s in splits])
    return torch.stack([torch.from_numpy(z[f"{i.split('-')[0]}_masks"][int(i.split("-")[1])])
                        for i in ids]).bool() if ids else None


# ----------------------------------------------------------------------------- CLI


def dataset_section(config: dict, key: str | None) -> dict:
    """The dataset section ``key`` of a full config (``datasets: {key: ...}``), or ``config``
    itself when it is already a section (has ``modality``)."""
    if "datasets" in config:
        if not key:
            raise ValueError(f"--key: required, one of {sorted(config['datasets'])}")
        if key not in config["datasets"]:
            raise ValueError(f"datasets.{key}: not in config (has {sorted(config['datasets'])})")
        return {**config["datasets"][key], "_key": key}
    if "modality" not in config:
        raise ValueError("config: neither a full config (datasets:) nor a dataset section (modality:)")
    return {**config, "_key": key or config["modality"]}


def main(argv: list[str] | None = None) -> None:
    """``python -m workflow.scripts.datasets prepare --key audio --config FILE --resources DIR``.

    Prints the prepared folder. ``--config`` is a full config (JSON/YAML with ``datasets:``) or a
    dataset section.
    """
    ap = argparse.ArgumentParser(prog="python -m workflow.scripts.datasets", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="write / download / locate one data set")
    p.add_argument("--key", help="dataset key in the config (images, audio, volumes)")
    p.add_argument("--config", required=True, type=Path, help="JSON or YAML config file")
    p.add_argument("--resources", default=Path("resources"), type=Path)
    p.add_argument("--out", type=Path, help="also write {folder, provenance} to this JSON file (atomic)")
    i = sub.add_parser("info", help="print split sizes and classes as JSON")
    i.add_argument("--key")
    i.add_argument("--config", required=True, type=Path)
    i.add_argument("--resources", default=Path("resources"), type=Path)
    args = ap.parse_args(argv)
    section = dataset_section(io.read_config(args.config), args.key)
    key = section["_key"]
    if args.command == "prepare":
        folder = prepare(key, section, args.resources)
        if args.out:
            io.write_json(args.out, {"folder": str(folder), "provenance": io.provenance(
                stage="prepare_data", dataset=key, config=section)})
        print(folder)
        return
    images = section["modality"] == "images"
    splits = ["test"] if images else ["train", "val", "test"]
    if images:  # decoded as the data set's first model sees them
        from workflow.scripts import models

        preprocessing = models.ImagePreprocessing.of(section["models"][0])
    info = {}
    for s in splits:
        d = load(section, s, args.resources, preprocessing=preprocessing if images else None)
        info[s] = {"n": len(d), "n_classes": d.n_classes, "x": list(d.x.shape)}
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
