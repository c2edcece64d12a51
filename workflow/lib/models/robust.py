"""Models of the ``robustness`` target: the small texture CNN the DAG trains, and public ImageNet ResNet-50
checkpoints.

Checkpoints (paper configuration): torchvision ``resnet50`` state dicts (RobustBench's ImageNet L-inf zoo:
``Standard_R50`` is torchvision's own ``IMAGENET1K_V1`` file; ``Engstrom2019Robustness``, ``Salman2020Do_R50`` and
``Wong2020Fast`` are RobustBench's Google-Drive files), loaded into ``torchvision.models.resnet50`` behind an
ImageNet normaliser, as RobustBench's ``normalize_model`` does: the model takes images in [0, 1].

Model files (``save`` / ``load``): ``torch.save`` of ``{"arch", "kwargs", "state_dict" | "weights", "meta"}``; a
checkpoint model stores only the path and sha256 of its cached weights (``weights``), which ``load`` verifies.

Example::

    >>> model = TextureCNN(n_classes=5)
    >>> model(torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 5])
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn

from workflow.lib import files
from workflow.lib.models.preprocessing import IMAGENET_DEFAULTS, Normalize

# RobustBench's ImageNet L-inf ResNet-50s (robustbench/model_zoo/imagenet.py): Google-Drive ids of the
# state dicts; Standard_R50 is torchvision's resnet50(pretrained=True), i.e. the IMAGENET1K_V1 file.
GDRIVE = "https://drive.usercontent.google.com/download?id={}&export=download&confirm=t"
ROBUSTBENCH = {
    "Standard_R50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "Engstrom2019Robustness": GDRIVE.format("1T2Fvi1eCJTeAOEzrH_4TAIwO8HTOYVyn"),
    "Salman2020Do_R50": GDRIVE.format("1TmT5oGa1UvVjM3d-XeSj_XmKqBNRUg8r"),
    "Wong2020Fast": GDRIVE.format("1deM2ZNS5tf3S_-eRURJi-IlvUL8WJQ_w"),
}


class TextureCNN(nn.Module):
    """Four 3x3 convolutions (stride 1, 2, 2, 2) with ReLU, global average pooling, a linear head.

    ``[B, C, H, W]`` in [0, 1] -> logits ``[B, n_classes]``; widths ``width, 2 width, 4 width, 4 width``. No
    BatchNorm: the network is the same function in train and eval mode (ART's FBF trainer takes its optimiser steps
    with the model left in eval mode by its attack), He-initialised.
    """

    def __init__(self, n_classes: int, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        widths = [in_channels, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers += [nn.Conv2d(a, b, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                       nn.GroupNorm(min(4, b), b), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(2 * x - 1).mean((2, 3)))



def resnet50() -> nn.Module:
    """``Normalize`` then torchvision ``resnet50`` (random weights): images ``[B, 3, H, W]`` in [0, 1]."""
    from torchvision.models import resnet50 as tv_resnet50

    return nn.Sequential(Normalize(IMAGENET_DEFAULTS["mean"], IMAGENET_DEFAULTS["std"]), tv_resnet50(weights=None))



ARCHITECTURES = {"texture_cnn": TextureCNN, "resnet50": resnet50}



def build(arch: str, **kwargs) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch: expected one of {sorted(ARCHITECTURES)}, got {arch!r}")
    return ARCHITECTURES[arch](**kwargs).eval()



def _torchvision_prefix(url: str) -> str | None:
    """torchvision names its files ``<name>-<first 8 hex digits of the sha256>.pth``: that prefix, or None."""
    match = re.search(r"-([0-9a-f]{8})\.pth?$", url.split("?")[0])
    return match.group(1) if match else None



def fetch(url: str, dest: Path, sha256: str | None, key: str) -> tuple[Path, str]:
    """Download ``url`` to ``dest`` (cache), checksum-verified; returns the file and its sha256.

    ``sha256`` given: ``files.download`` verifies it (a mismatch deletes the download and raises). ``sha256`` None:
    trust on first use: the digest of the first download is recorded in ``dest.parent/SHA256SUMS.json`` and every
    later use is verified against it; a torchvision URL's 8-digit prefix is checked too. ``key`` names the config
    entry in errors.
    """
    dest = Path(dest)
    manifest = dest.parent / "SHA256SUMS.json"
    recorded = json.loads(manifest.read_text()) if manifest.is_file() else {}
    want = sha256 or recorded.get(dest.name)
    try:
        files.download(url, dest, sha256=want, timeout=600)
    except ValueError as err:  # a fresh download is never renamed into place; a bad cached file is removed here
        dest.unlink(missing_ok=True)
        raise ValueError(f"{key}: {err}; the download was deleted, nothing is kept at {dest}") from err
    digest = files.file_digest(dest)
    prefix = _torchvision_prefix(url)
    if prefix and not digest.startswith(prefix):
        dest.unlink()
        raise ValueError(f"{key}: {dest}: sha256 {digest} does not start with {prefix}, the prefix in the "
                         f"torchvision file name of {url}; the download was deleted, nothing is kept at {dest}")
    if recorded.get(dest.name) != digest:
        files.write_json(manifest, {**recorded, dest.name: digest})
    return dest, digest



def resnet50_state_dict(path: Path, key: str) -> dict[str, torch.Tensor]:
    """The ``resnet50`` tensors of a checkpoint file, whatever its wrapping.

    Accepts a bare state dict or one under ``state_dict`` / ``model``; drops the prefixes ``module.``,
    ``model.`` and ``attacker.model.`` (MadryLab's ``robustness`` files) and the normaliser's buffers. Every
    torchvision ``resnet50`` key must be present (ValueError naming ``key`` otherwise).
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # MadryLab files pickle more than tensors; this file's sha256 was checked or recorded
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:
            raise ValueError(f"{key}: {path}: unreadable checkpoint ({type(err).__name__}: {err})") from err
    for name in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(name), dict):
            obj = obj[name]
    wanted = resnet50()[1].state_dict()
    out = {}
    for k, v in obj.items():
        if k.startswith(("module.attacker.", "attacker.")):
            continue  # MadryLab's robustness checkpoints keep a second copy for the attacker
        for prefix in ("module.", "model."):
            k = k[len(prefix):] if k.startswith(prefix) else k
        if k in wanted:
            out[k] = v
    missing = sorted(set(wanted) - set(out))
    if missing:
        raise ValueError(f"{key}: {path}: not a torchvision resnet50 checkpoint; missing {missing[:5]} "
                         f"({len(missing)} keys)")
    return out



def save(path: Path, arch: str, kwargs: dict, meta: dict, *, model: nn.Module | None = None,
         weights: dict | None = None) -> Path:
    """Write a model file atomically: the weights themselves (``model``) or a verified reference to a cached
    checkpoint (``weights = {"path", "sha256"}``)."""
    if (model is None) == (weights is None):
        raise ValueError("save: give exactly one of model, weights")
    obj = {"arch": arch, "kwargs": dict(kwargs), "meta": dict(meta)}
    if model is not None:
        obj["state_dict"] = model.state_dict()
    else:
        obj["weights"] = dict(weights)
    with files.atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)



def load(path: Path) -> tuple[nn.Module, dict]:
    """The model (eval mode, CPU) and its ``meta`` from a file written by :func:`save`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: model file not found")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    model = build(obj["arch"], **obj["kwargs"])
    if "state_dict" in obj:
        model.load_state_dict(obj["state_dict"])
    else:
        weights = Path(obj["weights"]["path"])
        if not weights.is_file():
            raise ValueError(f"{path}: cached checkpoint {weights} not found (rerun the robustness_model rule)")
        digest = files.file_digest(weights)
        if digest != obj["weights"]["sha256"]:
            raise ValueError(f"{path}: {weights} has sha256 {digest}, expected {obj['weights']['sha256']}")
        model[1].load_state_dict(resnet50_state_dict(weights, str(path)))
    return model.eval(), obj["meta"]

