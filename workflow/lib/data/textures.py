"""The offline texture/region set of the ``robustness`` target: 32x32 crops of real photographs, native resolution.

Each class is one real photograph shipped inside the scikit-image wheel (no network), taken at its native
resolution (no resampling): ``brick``, ``grass``, ``gravel`` (the three texture photographs), ``moon`` (lunar
surface) and ``hubble_deep_field`` (stars and galaxies, converted to grey with ``skimage.color.rgb2gray``).
scikit-image ships ``moon`` pixel-doubled (512 x 512, every 2 x 2 block from an even row and column constant): it is
taken at its native 256 x 256 (every other pixel, an exact inverse; :data:`PIXEL_DOUBLED`), so that its crops have
detail at the finest level wherever they lie.
Crops are 32x32, so a 3-level Haar decomposition has 16x16, 8x8 and 4x4 detail bands and a 4x4 approximation:
brick has its mortar lines and brick faces (coarse), gravel its stones (middle), grass its blades and every
photograph its grain and edges (fine), so there is real detail at every analysed level.

- Train and test come from **disjoint regions** of each photograph: the left ``TRAIN_FRACTION`` of the columns
  gives the training crops (``n_train`` per class), the columns to the right of it the test crops (``n_test`` per
  class), both at seeded random positions (overlapping; a grid of even offsets would align with any 2 x 2
  structure of the photograph). No test pixel is in any training crop.
- Each region (training columns, test columns) of each photograph is histogram-equalised as a whole
  (``skimage.exposure.equalize_hist``) before cropping, so that every class has the same grey-level distribution
  in both splits: the classes differ by structure, not by their overall brightness, and the test region is not
  brighter or darker than the training region of its photograph.

On disk (written once, atomically; ``manifest.json`` last, with provenance)::

    {resources}/offline/textures/textures_32.npz   {split}_images uint8 [N, 32, 32], {split}_labels int64 [N],
                                                   {split}_origins int64 [N, 2] (top-left row, col in the
                                                   photograph), class_names; split in train / test
    {resources}/offline/textures/manifest.json      classes, regions, sizes, seed, package versions

``load(resources, split)`` gives a :class:`workflow.lib.data.base.Split` with ``x`` float32 ``[N, 1, 32, 32]``
in [0, 1].

Example::

    >>> photograph("moon").shape          # scikit-image ships it pixel-doubled: taken at its native resolution
    (256, 256)
    >>> train, _, test, origins = crops(photograph("brick"), n_train=3, n_test=2, rng=np.random.default_rng(0))
    >>> train.shape, test.shape, bool((origins[:, 1] >= int(512 * TRAIN_FRACTION)).all())
    ((3, 32, 32), (2, 32, 32), True)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from workflow.lib import files
from workflow.lib.data.base import Split

if TYPE_CHECKING:
    from workflow.lib.config import Config

CLASSES = ("brick", "grass", "gravel", "moon", "hubble_deep_field")
SIZE = 32
TRAIN_FRACTION = 0.75
N_TRAIN = 240            # per class, seeded random positions in the training region
N_TEST = 64              # per class, seeded random positions in the test region
SEED = 0
PIXEL_DOUBLED = {"moon"}  # shipped at twice its native resolution: every other pixel restores it exactly


def data_source(config: Config, experiment: str) -> str:
    """``<experiment>.data`` of an experiment that runs on this set or on ImageNet: ``"textures"`` (the default) or
    the key of an images data set of ``datasets``; ``ValueError`` naming the key otherwise."""
    source = config.section(experiment).get("data", "textures")
    if source != "textures":
        spec = config.datasets.get(source)
        if spec is None or spec.modality != "images":
            raise ValueError(f"{experiment}.data: expected 'textures' or the key of an images data set of "
                             f"`datasets`, got {source!r}")
    return source


def folder(resources: str | Path) -> Path:
    return Path(resources) / "offline" / "textures"


def data_file(resources: str | Path) -> Path:
    return folder(resources) / f"textures_{SIZE}.npz"


def photograph(name: str) -> np.ndarray:
    """The photograph ``name`` of ``CLASSES`` in grey, float64 ``[H, W]`` in [0, 1], native resolution."""
    import skimage.data
    from skimage.color import rgb2gray

    if name not in CLASSES:
        raise ValueError(f"name: expected one of {CLASSES}, got {name!r}")
    img = getattr(skimage.data, name)()
    if name in PIXEL_DOUBLED:
        native = img[::2, ::2]
        if not np.array_equal(np.repeat(np.repeat(native, 2, 0), 2, 1), img):
            raise ValueError(f"name: {name!r} is no longer shipped pixel-doubled by scikit-image; update PIXEL_DOUBLED")
        img = native
    return rgb2gray(img[..., :3]) if img.ndim == 3 else img.astype(np.float64) / 255.0


def _equalised(region: np.ndarray) -> np.ndarray:
    from skimage.exposure import equalize_hist

    return np.round(equalize_hist(region) * 255).astype(np.uint8)


def crops(img: np.ndarray, n_train: int, n_test: int, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training and test crops (uint8) of one grey photograph ``img`` ``[H, W]`` from disjoint column ranges,
    each range histogram-equalised on its own.

    Returns ``train [n_train, S, S]``, ``train_origins [n_train, 2]``, ``test [n_test, S, S]``, ``test_origins
    [n_test, 2]`` (top-left ``row, col`` in ``img``), at seeded random positions left and right of the split column.
    """
    h, w = img.shape
    split = int(w * TRAIN_FRACTION)
    if split < SIZE or w - split < SIZE or h < SIZE:
        raise ValueError(f"img: {img.shape} too small for {SIZE}x{SIZE} crops on both sides of column {split}")
    left, right = _equalised(img[:, :split]), _equalised(img[:, split:])
    train_origins = np.stack([rng.integers(0, h - SIZE + 1, n_train), rng.integers(0, split - SIZE + 1, n_train)], 1)
    test_origins = np.stack([rng.integers(0, h - SIZE + 1, n_test), rng.integers(split, w - SIZE + 1, n_test)], 1)
    train = np.stack([left[r:r + SIZE, c:c + SIZE] for r, c in train_origins])
    test = np.stack([right[r:r + SIZE, c - split:c - split + SIZE] for r, c in test_origins])
    return train, train_origins.astype(np.int64), test, test_origins.astype(np.int64)


def prepare(resources: str | Path, n_train: int = N_TRAIN, n_test: int = N_TEST, seed: int = SEED) -> Path:
    """Write the set under ``resources`` (idempotent: an existing ``manifest.json`` means complete). Returns the
    ``.npz`` path."""
    target = data_file(resources)
    if (folder(resources) / "manifest.json").is_file() and target.is_file():
        return target
    rng = np.random.default_rng(seed)
    arrays: dict[str, list] = {f"{s}_{k}": [] for s in ("train", "test") for k in ("images", "labels", "origins")}
    regions = {}
    for label, name in enumerate(CLASSES):
        img = photograph(name)
        train, train_origins, test, test_origins = crops(img, n_train, n_test, rng)
        for split, x, origins in (("train", train, train_origins), ("test", test, test_origins)):
            arrays[f"{split}_images"].append(x)
            arrays[f"{split}_labels"].append(np.full(len(x), label, np.int64))
            arrays[f"{split}_origins"].append(origins)
        regions[name] = {"shape": list(img.shape), "train_columns": [0, int(img.shape[1] * TRAIN_FRACTION)],
                         "test_columns": [int(img.shape[1] * TRAIN_FRACTION), int(img.shape[1])],
                         "n_train": len(train), "n_test": len(test)}
    out = {k: np.concatenate(v) for k, v in arrays.items()}
    files.write_npz(target, class_names=np.array(CLASSES), **out)
    files.write_json(folder(resources) / "manifest.json", files.provenance(
        file=target.name, source="scikit-image data (skimage.data)", classes=list(CLASSES), size=SIZE,
        seed=seed, equalisation="skimage.exposure.equalize_hist per region (train, test columns) of each photograph",
        regions=regions,
        sha256=files.file_digest(target)))
    return target


def load(resources: str | Path, split: str) -> Split:
    """``split`` in {"train", "test"}: ``x`` float32 ``[N, 1, 32, 32]`` in [0, 1], ``y`` ``[N]``, ids
    ``{split}-{class}-{row}-{col}`` (the crop's origin in its photograph)."""
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    path = data_file(resources)
    if not (folder(resources) / "manifest.json").is_file():
        raise ValueError(f"{folder(resources)}: not prepared (run the robustness_data rule)")
    z = files.load_npz(path, [f"{split}_images", f"{split}_labels", f"{split}_origins", "class_names"])
    images, labels, origins = z[f"{split}_images"], z[f"{split}_labels"], z[f"{split}_origins"]
    names = [str(c) for c in z["class_names"]]
    if images.ndim != 3 or images.shape[1:] != (SIZE, SIZE):
        raise ValueError(f"{path}: {split}_images has shape {images.shape}, expected [N, {SIZE}, {SIZE}]")
    x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    ids = [f"{split}-{names[c]}-{r}-{k}" for c, (r, k) in zip(labels.tolist(), origins.tolist(), strict=True)]
    return Split(x, torch.from_numpy(labels.astype(np.int64)), ids, len(names), names)
