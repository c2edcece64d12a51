"""ImageNet validation folders, indexed without decoding and decoded per model.

A folder holds class folders (``{wnid}/*.JPEG``) or flat ``ILSVRC2012_val_%08d`` files with the devkit's
``ILSVRC2012_validation_ground_truth.txt`` (``datasets.<key>.labels``: ILSVRC2012 ids 1..1000, mapped to classes with
the devkit's ``meta.mat`` beside it, or one wnid per line). Class indices are timm's (sorted wnids). A flat file's
label is the devkit line of its number, never its position in the folder (a folder may hold any subset).

:func:`index_images` lists the files and labels and every inconsistency (loose images beside the class folders,
folders that are not wnids, a devkit inside the folder); :func:`decode_images` decodes files with a model's own
resize and crop (:class:`workflow.lib.models.preprocessing.ImagePreprocessing`) into [0, 1]; :class:`ImageFiles`
is what a ``DataLoader`` streams.

Example::

    >>> import tempfile
    >>> from PIL import Image
    >>> from workflow.lib.config import DatasetSpec
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "n01440764").mkdir()
    >>> Image.new("RGB", (40, 30)).save(root / "n01440764" / "a.JPEG")
    >>> index, problems = index_images(DatasetSpec("images", "images", "imagenet", path=str(root)))
    >>> index.ids([0]), index.labels, problems
    (['n01440764/a.JPEG'], [0], [])
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch

from workflow.lib.config import DatasetSpec
from workflow.lib.data.base import fail

IMAGE_EXTENSIONS = {".jpeg", ".jpg", ".png"}


FLAT_IMAGENET_NAME = re.compile(r"ILSVRC2012_val_(\d{8})")


DEVKIT_MARKERS = ("meta.mat", "ILSVRC2012_validation_ground_truth.txt")


def wnids() -> list[str]:
    """The 1,000 ImageNet class ids (wnids), in timm's class order."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_label_name(i) for i in range(info.num_classes())]



def class_names() -> list[str]:
    """The 1,000 ImageNet class descriptions, in timm's class order."""
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



def _is_devkit(folder: Path) -> bool:
    """The ImageNet devkit (``ILSVRC2012_devkit_t12``, or any folder holding its ``data/meta.mat`` or ground truth)."""
    return folder.name.lower().startswith("ilsvrc2012_devkit") or any(
        (folder / "data" / m).is_file() or (folder / m).is_file() for m in DEVKIT_MARKERS)



def _listed(paths: list[Path], limit: int = 3) -> str:
    """``n`` and the first few of ``paths``, for a message."""
    shown = ", ".join(p.name for p in paths[:limit])
    return f"{len(paths)} ({shown}{', ...' if len(paths) > limit else ''})"



def index_images(spec: DatasetSpec) -> tuple[ImageIndex | None, list[str]]:
    """Index an ImageNet-layout folder (class folders ``{wnid}/*.JPEG``, or flat ``ILSVRC2012_val_%08d`` files with
    the devkit ``labels``) without decoding it: ``(index, problems)``, every inconsistency its own problem naming
    the config key, the file and the fix (``index`` is ``None`` when the folder cannot be indexed at all)."""
    key = spec.where
    root = Path(spec.require("path"))
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
        wnid_index = {w: i for i, w in enumerate(wnids())}
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
        if spec.labels in (None, ""):
            return None, problems + [f"{key}.labels: required for the flat ImageNet layout in {root} (the devkit's "
                                     "ILSVRC2012_validation_ground_truth.txt)"]
        try:
            truth = _devkit_labels(Path(spec.labels), {w: i for i, w in enumerate(wnids())}, key)
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
                    labels.append(_flat_label(f, truth, spec))
                    files.append(f)
                except ValueError as e:
                    problems.append(str(e))
    if not files and not problems:
        problems.append(f"{key}.path: no images in {root}")
    return ImageIndex(root, files, labels, ignored), problems



def image_index(spec: DatasetSpec) -> ImageIndex:
    """:func:`index_images`, raising one ``ValueError`` that lists every problem."""
    index, problems = index_images(spec)
    fail(problems)
    return index



def _flat_label(path: Path, truth: list[int], spec: DatasetSpec) -> int:
    """Class of a flat-layout validation image: the devkit's line number ``k`` of ``ILSVRC2012_val_{k:08d}``
    (never the file's position in the folder: a folder may hold any subset of the 50,000 images)."""
    match = FLAT_IMAGENET_NAME.fullmatch(path.stem)
    if match is None:
        raise ValueError(f"{path}: a flat ImageNet folder (datasets.{spec.key}.path) must hold files named "
                         "ILSVRC2012_val_%08d.JPEG; the number is the line of the devkit ground truth")
    number = int(match.group(1))
    if not 1 <= number <= len(truth):
        raise ValueError(f"datasets.{spec.key}.labels: {path} is image number {number}, which has no label in "
                         f"{spec['labels']} ({len(truth)} lines)")
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
