"""MedMNIST 3D (``source: medmnist``): ``.npz`` files of ``{split}_images`` ``[N, S, S, S]`` (uint8, or floats in
[0, 1]) and ``{split}_labels`` ``[N]`` or ``[N, 1]``, for the splits ``train``, ``val`` and ``test``; downloaded
from medmnist's own addresses (md5 checked) or copied by hand; the offline stand-in has the same format.

Example::

    >>> array_problems(np.zeros((2, 1, 28, 28, 28), np.uint8), "x.npz test_images", "datasets.volumes", 28)[0]
    'datasets.volumes: x.npz test_images is (2, 1, 28, 28, 28), with a channel axis ...'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from workflow.lib import files
from workflow.lib.config import DatasetSpec
from workflow.lib.data.base import Split, fail, not_prepared, volume_file
from workflow.lib.data.offline import VOLUME_CLASSES


def flag_info(spec: DatasetSpec) -> dict:
    """medmnist's ``INFO`` entry of ``datasets.<key>.flag`` (a 3D flag); ``ValueError`` naming the key."""
    from medmnist import INFO

    flag = spec.flag
    if flag not in INFO or not flag.endswith("3d"):
        raise ValueError(f"{spec.where}.flag: {flag!r} is not a MedMNIST 3D flag "
                         f"({sorted(k for k in INFO if k.endswith('3d'))})")
    return INFO[flag]


def download_url(spec: DatasetSpec) -> tuple[str, str]:
    """Download address and md5 of the MedMNIST file ``datasets.<key>.{flag, size}`` names."""
    size = int(spec.size)
    if size not in (28, 64):
        raise ValueError(f"{spec.where}.size: {size} not in (28, 64)")
    entry, sfx = flag_info(spec), "" if size == 28 else f"_{size}"
    return entry[f"url{sfx}"], entry[f"MD5{sfx}"]


def download(spec: DatasetSpec, target: Path) -> None:
    address, md5 = download_url(spec)
    files.download(address, target, md5=md5, timeout=120)


def check(spec: DatasetSpec, path: Path) -> list[str]:
    """Problems of a MedMNIST-format ``.npz`` (empty: usable), each naming the file and the config key:
    ``{split}_images`` ``[N, S, S, S]`` (uint8, or float in [0, 1]) with ``S = datasets.<key>.size`` and
    ``{split}_labels`` ``[N]`` or ``[N, 1]`` integers in ``[0, classes)`` for train, val and test."""
    key = spec.where
    try:
        arrays = files.load_npz(path)
    except ValueError as e:
        return [f"{key}: {e}"]
    size, n_classes = int(spec.size), len(class_names(spec))
    problems = []
    for split in ("train", "val", "test"):
        images, labels = arrays.get(f"{split}_images"), arrays.get(f"{split}_labels")
        if images is None or labels is None:
            problems.append(f"{key}: {path} has no {split}_images / {split}_labels (has {sorted(arrays)})")
            continue
        problems += array_problems(images, f"{path} {split}_images", key, size)
        if labels.reshape(-1).shape[0] != images.shape[0] or not np.issubdtype(labels.dtype, np.integer):
            problems.append(f"{key}: {path} {split}_labels is {labels.dtype} {labels.shape}, expected "
                            f"{images.shape[0]} integers")
        elif labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            problems.append(f"{key}: {path} {split}_labels span [{labels.min()}, {labels.max()}], expected "
                            f"[0, {n_classes - 1}] ({n_classes} classes)")
    return problems


def array_problems(images: np.ndarray, where: str, key: str, size: int) -> list[str]:
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


def class_names(spec: DatasetSpec) -> list[str]:
    if spec.source == "offline":
        return list(VOLUME_CLASSES)
    labels = flag_info(spec)["label"]
    return [labels[str(i)] for i in range(len(labels))]


def load_volumes(spec: DatasetSpec, split: str, resources: Path) -> Split:
    path = volume_file(spec, resources)
    if not path.is_file():
        raise not_prepared(path, spec)
    z = files.load_npz(path, [f"{split}_images", f"{split}_labels"])
    imgs, labels = z[f"{split}_images"], z[f"{split}_labels"].reshape(-1)
    fail(array_problems(imgs, f"{path} {split}_images", f"{spec.where}", int(spec.size)))
    scale = 255.0 if imgs.dtype == np.uint8 else 1.0
    x = torch.from_numpy(imgs.astype(np.float32) / scale)[:, None]
    names = class_names(spec)
    ids = [f"{split}-{i:04d}" for i in range(len(labels))]
    return Split(x, torch.from_numpy(labels.astype(np.int64)), ids, len(names), names)


