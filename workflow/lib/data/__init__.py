"""Data sets of the benchmark: prepare (write, download or locate) and load them, one module per source.

A data set is a :class:`workflow.lib.config.DatasetSpec` (an entry of the configuration's ``datasets``):

- :mod:`~workflow.lib.data.imagenet` (``source: imagenet``): a validation folder, indexed without decoding;
- :mod:`~workflow.lib.data.esc50` (``source: esc50``): the extracted archive, downloaded or used in place;
- :mod:`~workflow.lib.data.medmnist` (``source: medmnist``): the ``.npz`` files;
- :mod:`~workflow.lib.data.offline` (``source: offline``): stand-ins in those same formats, with ground truth;
- :mod:`~workflow.lib.data.textures`: the robustness experiment's offline texture set;
- :mod:`~workflow.lib.data.checks`: what the preflight checks, before any other job.

Splits: ``"test"`` is the evaluated set, a deterministic, class-balanced, seeded subset of ``n_inputs`` items of the
test split (ImageNet val; ESC-50 fold ``fold``; MedMNIST test), or all of it with ``load(..., subset=False)``.
``Split.x``: images ``[N, 3, H, W]`` in [0, 1] at the explained model's own size (normalised by the model after any
perturbation), audio ``[N, 220500]`` float32 mono 44.1 kHz, volumes ``[N, 1, S, S, S]`` float32 in [0, 1].

Layout under ``resources/`` (every file written atomically; ``manifest.json`` is written last in each prepared
folder, so its presence means "complete"; ``prepare`` is idempotent)::

    offline/images/{wnid}/{name}.JPEG, offline/audio/{audio,meta}/..., offline/volumes/synth3d_{size}.npz
    esc50/ESC-50-master/{audio,meta}           the public archive, extracted (sha256 verified)
    medmnist/{flag}.npz, medmnist/{flag}_64.npz   medmnist's own files (md5 from medmnist.INFO)

Example::

    >>> from workflow.lib.config import DatasetSpec
    >>> dataset_folder(DatasetSpec("volumes", "volumes", "medmnist"), Path("resources"))
    PosixPath('resources/medmnist')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from workflow.lib.config import NDIM, Config, DatasetSpec
from workflow.lib.data import esc50, imagenet, medmnist, offline
from workflow.lib.data.base import (
    Split,
    balanced_subset,
    dataset_folder,
    evaluated_indices,
    fail,
    not_prepared,
    shard_indices,
    take,
    volume_file,
)

__all__ = ["NDIM", "Split", "balanced_subset", "dataset_folder", "evaluated_indices", "evaluated_shard", "fail",
           "ground_truth", "image_folder", "load", "model_inputs", "prepare", "shard_indices", "take", "volume_file"]

ground_truth = offline.ground_truth


def prepare(spec: DatasetSpec, resources: Path) -> Path:
    """Write (offline), download (ESC-50, MedMNIST) or locate (ImageNet) a data set; its folder.

    Idempotent: a folder whose ``manifest.json`` exists is left alone; what is there is validated.
    """
    resources = Path(resources)
    folder = dataset_folder(spec, resources)
    if spec.source == "imagenet":
        imagenet.image_index(spec)  # validates the folder, the layout and the labels
        return folder
    if spec.modality == "volumes":
        target = volume_file(spec, resources)
        if not target.is_file():
            if spec.source == "offline":
                offline.write_volumes(target, spec.size, seed=0)
            else:
                medmnist.download(spec, target)
        fail(medmnist.check(spec, target))
        return folder
    if spec.source == "esc50" and spec.path:  # an extracted copy: validated, used in place
        fail(esc50.check(spec, folder, every_clip=True))
        return folder
    if (folder / "manifest.json").is_file():
        return folder
    if spec.modality == "images":
        offline.write_images(folder, offline.OFFLINE_IMAGE_LABELLER)
    elif spec.source == "offline":
        offline.write_audio(folder, seed=0)
    else:
        esc50.download(spec, folder)
        fail(esc50.check(spec, folder, every_clip=True))
    return folder


def image_folder(spec: DatasetSpec, resources: Path) -> imagenet.ImageIndex:
    """The index of an images data set: the ImageNet folder, or the prepared offline photographs."""
    if spec.source == "imagenet":
        return imagenet.image_index(spec)
    root = dataset_folder(spec, resources)
    if not (root / "manifest.json").is_file():
        raise not_prepared(root, spec)
    return imagenet.image_index(dataclasses.replace(spec, path=str(root)))


def load(spec: DatasetSpec, split: str, resources: Path, *, subset: bool = True, preprocessing=None,
         part: Callable[[int], list[int]] | None = None) -> Split:
    """Load ``split`` in {"train", "val", "test"} of a prepared data set.

    ``"test"`` with ``subset=True`` is the evaluated set: ``n_inputs`` items, class-balanced and seeded
    (``spec.seed``); ``subset=False`` gives the whole test split. ``part(n)``, when given, picks the positions to keep
    among those ``n`` items (a shard) before anything is decoded.

    Images (a test split only: the models are pretrained) are indexed, then only the kept files are decoded with
    ``preprocessing`` (the model's own :class:`workflow.lib.models.preprocessing.ImagePreprocessing`; required) into
    [0, 1], not normalised. A whole folder is never decoded at once: stream it with
    :class:`workflow.lib.data.imagenet.ImageFiles`.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split: {split!r} not in ('train', 'val', 'test')")
    resources = Path(resources)
    if spec.modality == "images":
        if split != "test":
            raise ValueError(f"split: images have only a 'test' split (pretrained model), got {split!r}")
        if preprocessing is None:
            raise ValueError("preprocessing: images are decoded with the explained model's own preprocessing "
                             "(workflow.lib.models.preprocessing.preprocessing(model))")
        index = image_folder(spec, resources)
        idx = evaluated_indices(spec, index.labels) if subset else list(range(len(index)))
        if part is not None:
            idx = [idx[i] for i in part(len(idx))]
        x = imagenet.decode_images([index.files[i] for i in idx], preprocessing)
        y = torch.tensor([index.labels[i] for i in idx], dtype=torch.long)
        return Split(x, y, index.ids(idx), 1000, imagenet.class_names())
    if spec.modality == "audio":
        if not (dataset_folder(spec, resources) / "meta" / "esc50.csv").is_file():
            raise not_prepared(dataset_folder(spec, resources), spec)
        s = esc50.load_audio(spec, split, resources)
    else:
        s = medmnist.load_volumes(spec, split, resources)
    if split == "test" and subset:
        s = take(s, evaluated_indices(spec, s.y))
    return take(s, part(len(s))) if part is not None else s


def evaluated_shard(config: Config, dataset: str, shard: int, preprocessing=None) -> Split:
    """The evaluated (test) inputs of data set ``dataset`` that fall in ``shard`` of ``config.shards``; images are
    decoded (only this shard's files) with ``preprocessing``, the explained model's own."""
    return load(config.datasets[dataset], "test", config.resources, preprocessing=preprocessing,
                part=lambda n: shard_indices(n, config.shards, shard))


def model_inputs(config: Config, dataset: str, model: torch.nn.Module, shard: int) -> tuple[Split, torch.Tensor]:
    """Shard ``shard`` of the evaluated inputs as ``model`` sees them: ``(data, x)``. Images are decoded with the
    model's own resize and crop (``data.x`` in [0, 1], the data's own space) and ``x`` is normalised by the
    model's own statistics (:func:`workflow.lib.models.preprocessing.preprocessing`); other modalities are used as
    loaded (``x is data.x``)."""
    if config.datasets[dataset].modality != "images":
        data = evaluated_shard(config, dataset, shard)
        return data, data.x
    from workflow.lib.models.preprocessing import preprocessing as model_preprocessing

    preprocessing = model_preprocessing(model)
    data = evaluated_shard(config, dataset, shard, preprocessing)
    return data, preprocessing.normalize()(data.x)
