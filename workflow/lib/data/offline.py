"""The offline stand-ins of the paper's data sets (``source: offline``), written once under ``resources/offline/``
in the real formats and read by the same loaders, with their known ground truth:

- images: real photographs shipped in the scikit-image and scikit-learn wheels, in an ImageNet class-folder layout
  (``images/{wnid}/{name}.JPEG``; the folder is :data:`OFFLINE_IMAGE_LABELLER`'s top-1 class, computed once);
- audio: an ESC-50-format set (``audio/audio/{fold}-{src}-{take}-{target}.wav``, ``meta/esc50.csv``) of the real
  clips of Debian's ``sound-theme-freedesktop`` placed at known times over noise (``meta/onsets.csv``);
- volumes: a MedMNIST-format ``volumes/synth3d_{size}.npz`` of class structures inserted into MNI152 crops, with
  their masks in ``synth3d_{size}_truth.npz``.

:func:`ground_truth` gives where the class evidence is (audio: the clip's samples; volumes: the structure's voxels).

Example::

    >>> len(SKIMAGE_PHOTOS) + len(SKLEARN_PHOTOS), len(AUDIO_CLIPS), VOLUME_CLASSES
    (10, 10, ('ball', 'shell', 'rod', 'cluster'))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from workflow.lib import files
from workflow.lib.config import DatasetSpec
from workflow.lib.data import esc50, imagenet
from workflow.lib.data.base import dataset_folder, volume_file, write_manifest

FREEDESKTOP_SOUNDS = Path("/usr/share/sounds/freedesktop/stereo")
# One class per distinct clip of Debian's sound-theme-freedesktop (duplicates left out).
AUDIO_CLIPS = (
    "bell", "camera-shutter", "complete", "device-added", "dialog-error", "message",
    "message-new-instant", "phone-incoming-call", "service-login", "trash-empty",
)
AUDIO_CLIPS_PER_FOLD = 4          # per class and fold: 20 per class, 200 clips (88 MB), 40 per fold
VOLUME_CLASSES = ("ball", "shell", "rod", "cluster")
VOLUME_SPLIT_SIZES = {"train": 720, "val": 80, "test": 120}
SKIMAGE_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "retina", "hubble_deep_field",
                  "immunohistochemistry", "motorcycle")
SKLEARN_PHOTOS = ("china", "flower")
OFFLINE_IMAGE_LABELLER = "efficientnet_lite0"  # the offline photographs' class folders: its top-1 class


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



def write_images(folder: Path, model_name: str) -> None:
    from PIL import Image

    from workflow.lib.models import preprocessing as image_preprocessing
    from workflow.lib.models import zoo

    with files.atomic_dir(folder) as tmp:
        staging = tmp / "_staging"
        staging.mkdir()
        paths = []
        for name, img in _offline_photos().items():
            p = staging / f"{name}.JPEG"
            Image.fromarray(img).save(p, format="JPEG", quality=95)
            paths.append(p)
        preprocessing = image_preprocessing.ImagePreprocessing.of(model_name)
        model = zoo.build(model_name, 1000)
        with torch.no_grad():
            top1 = model(preprocessing.normalize()(imagenet.decode_images(paths, preprocessing))).argmax(1).tolist()
        classes = imagenet.wnids()
        for p, c in zip(paths, top1, strict=True):
            (tmp / classes[c]).mkdir(exist_ok=True)
            p.rename(tmp / classes[c] / p.name)
        staging.rmdir()
        write_manifest(tmp, labels_from=model_name,
                  targets={p.stem: int(c) for p, c in zip(paths, top1, strict=True)})



def _freedesktop_clips() -> dict[str, np.ndarray]:
    if not FREEDESKTOP_SOUNDS.is_dir():
        raise ValueError(
            f"{FREEDESKTOP_SOUNDS}: missing; the offline audio set is built from Debian's "
            "sound-theme-freedesktop: run `apt-get install sound-theme-freedesktop` (or `make run`)")
    out = {}
    for name in AUDIO_CLIPS:
        wave, sr = esc50.read_clip(FREEDESKTOP_SOUNDS / f"{name}.oga")
        wave = esc50.resample(wave, sr)
        wave = wave / max(float(np.abs(wave).max()), 1e-6)
        loud = np.flatnonzero(np.abs(wave) > 1e-2)  # trim silence: the mask covers the sound
        out[name] = wave[loud[0]:loud[-1] + 1].astype(np.float32)
    return out



def write_audio(folder: Path, seed: int = 0) -> None:
    import soundfile as sf

    clips = _freedesktop_clips()
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    with files.atomic_dir(folder) as tmp:
        (tmp / "audio").mkdir()
        (tmp / "meta").mkdir()
        for target, name in enumerate(AUDIO_CLIPS):
            clip = clips[name][:esc50.CLIP_SAMPLES]
            for fold in range(1, 6):
                for k in range(AUDIO_CLIPS_PER_FOLD):
                    src = 100000 + 100 * target + 10 * fold + k
                    fname = f"{fold}-{src}-A-{target}.wav"
                    onset = int(rng.integers(0, esc50.CLIP_SAMPLES - len(clip) + 1))
                    gain = float(rng.uniform(0.5, 1.0))
                    noise = float(rng.uniform(0.002, 0.01))
                    wave = (noise * rng.standard_normal(esc50.CLIP_SAMPLES)).astype(np.float32)
                    wave[onset:onset + len(clip)] += gain * clip
                    sf.write(str(tmp / "audio" / fname), np.clip(wave, -1, 1), esc50.SAMPLE_RATE,
                             subtype="PCM_16")
                    rows.append((fname, fold, target, name, "False", f"freedesktop/{name}.oga", "A"))
                    truth.append((fname, onset, len(clip), round(gain, 6), round(noise, 6)))
        esc50.write_csv(tmp / "meta" / "esc50.csv", esc50.ESC50_COLUMNS, rows)
        esc50.write_csv(tmp / "meta" / "onsets.csv", ("filename", "onset", "length", "gain", "noise"),
                   truth)
        write_manifest(tmp, source="sound-theme-freedesktop", classes=list(AUDIO_CLIPS), seed=seed)



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



def write_volumes(target: Path, size: int, seed: int = 0) -> None:
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
    files.write_npz(target.with_name(target.stem + "_truth.npz"), **truth)
    files.write_npz(target, **arrays)  # last: its presence means "complete"
    files.write_json(target.parent / "manifest.json",
                     files.provenance(file=target.name, classes=list(VOLUME_CLASSES), seed=seed,
                                template="nilearn MNI152 2 mm", split_sizes=VOLUME_SPLIT_SIZES))



def ground_truth(spec: DatasetSpec, resources: Path, ids: list[str]) -> torch.Tensor | None:
    """Where the class evidence is, for the offline sets; None otherwise.

    Audio: bool ``[N, 220500]``, True where the clip sits. Volumes: bool ``[N, S, S, S]``, the
    inserted structure. ``ids`` as returned by ``load``.
    """
    modality, source = (spec.modality, spec.source)
    if source != "offline" or modality == "images":
        return None
    resources = Path(resources)
    if modality == "audio":
        path = dataset_folder(spec, resources) / "meta" / "onsets.csv"
        rows = {r["filename"]: r for r in esc50.read_csv(path, ("filename", "onset", "length"))}
        out = torch.zeros(len(ids), esc50.CLIP_SAMPLES, dtype=torch.bool)
        for i, name in enumerate(ids):
            if name not in rows:
                raise ValueError(f"{path}: no ground truth for {name!r}")
            o, n = int(rows[name]["onset"]), int(rows[name]["length"])
            out[i, o:o + n] = True
        return out
    path = volume_file(spec, resources)
    path = path.with_name(path.stem + "_truth.npz")
    splits = sorted({i.split("-")[0] for i in ids})
    z = files.load_npz(path, [f"{s}_masks" for s in splits])
    return torch.stack([torch.from_numpy(z[f"{i.split('-')[0]}_masks"][int(i.split("-")[1])])
                        for i in ids]).bool() if ids else None


