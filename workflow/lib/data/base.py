"""What every data source shares: the loaded :class:`Split`, where a data set lies, subsets and shards.

Example::

    >>> balanced_subset([0, 0, 0, 1, 1, 2], n=3, seed=0)        # one item of each class, seeded
    [2, 4, 5]
    >>> shard_indices(10, shards=3, shard=1)
    [3, 4, 5, 6]
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from workflow.lib import files
from workflow.lib.config import DatasetSpec


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


def fail(problems: list[str]) -> None:
    """``ValueError`` listing ``problems`` (one per line), if any."""
    if problems:
        raise ValueError("\n".join(problems))


def take(s: Split, idx: list[int]) -> Split:
    """The items ``idx`` of a split."""
    t = torch.as_tensor(idx, dtype=torch.long)
    return Split(s.x[t], s.y[t], [s.ids[i] for i in idx], s.n_classes, s.class_names)


def shard_indices(n: int, shards: int, shard: int) -> list[int]:
    """Contiguous, near-equal slices of ``range(n)``: shard ``shard`` of ``shards``."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard: expected 0 <= shard < {shards}, got {shard}")
    bounds = [round(i * n / shards) for i in range(shards + 1)]
    return list(range(bounds[shard], bounds[shard + 1]))


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


def evaluated_indices(spec: DatasetSpec, labels: list[int] | torch.Tensor) -> list[int]:
    """The evaluated subset of a test split with ``labels``: ``n_inputs`` of them, class-balanced and seeded
    (``spec.seed``), or all of them when ``n_inputs`` is not set; ``ValueError`` naming ``datasets.<key>.n_inputs``
    when fewer are available."""
    n = spec.n_inputs
    if n and int(n) > len(labels):
        raise ValueError(f"{spec.where}.n_inputs: {n} > {len(labels)} inputs available in the test split")
    return balanced_subset(labels, int(n), spec.seed) if n else list(range(len(labels)))


def dataset_folder(spec: DatasetSpec, resources: Path) -> Path:
    """The folder that ``prepare`` fills (or the ImageNet path)."""
    resources = Path(resources)
    if spec.source == "offline":
        return resources / "offline" / spec.modality
    if spec.source == "imagenet":
        return Path(spec.require("path"))
    if spec.source == "esc50":
        return Path(spec.path) if spec.path else resources / "esc50" / "ESC-50-master"
    return resources / "medmnist"


def volume_file(spec: DatasetSpec, resources: Path) -> Path:
    """The MedMNIST-format ``.npz`` of a volumes data set (offline: ``synth3d_{size}.npz``)."""
    folder = dataset_folder(spec, resources)
    if spec.source == "offline":
        return folder / f"synth3d_{spec.size}.npz"
    return folder / (f"{spec.flag}.npz" if spec.size == 28 else f"{spec.flag}_{spec.size}.npz")


def not_prepared(path: Path, spec: DatasetSpec) -> ValueError:
    """The error for a data set that ``prepare_data`` has not written yet."""
    return ValueError(f"{path}: not prepared (run `python -m workflow.scripts.prepare_data --key {spec.key} "
                      "--config CONFIG`)")


def write_manifest(folder: Path, **extra) -> None:
    """``manifest.json`` of a prepared folder (its file count and provenance), written last: its presence means
    "complete"."""
    listed = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    files.write_json(folder / "manifest.json", files.provenance(n_files=len(listed), **extra))
