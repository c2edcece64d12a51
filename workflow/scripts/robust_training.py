"""Models of the ``robustness`` target: the small texture CNN and its four trainings, and public ResNet-50 checkpoints.

Training kinds (``robustness.models.<name>.training``), all on inputs in [0, 1] with an L-inf budget ``epsilon``:

- ``erm``: empirical risk minimisation, ART ``PyTorchClassifier.fit``;
- ``madry``: PGD adversarial training (Madry et al., 2018), ART ``AdversarialTrainerMadryPGD`` (every training
  example replaced by its PGD example: ``steps`` steps of ``step_size`` from a random start);
- ``fast``: FGSM with a random start, "fast is better than free" (Wong et al., 2020), ART
  ``AdversarialTrainerFBFPyTorch`` (its cyclic learning rate, rescaled to peak at ``lr``, and its gradient clipping
  at norm 0.5);
- ``free``: free adversarial training with minibatch replay (Shafahi et al., 2019), :func:`free_training`,
  written here: ART has no free trainer.

Every kind uses Adam at ``lr`` (FBF follows its schedule up to ``lr``). Free training replays each minibatch
``replay`` times and makes ``ceil(epochs / replay)`` passes, so that it takes as many optimiser steps as ``epochs``
epochs of the others (Shafahi et al.'s equal-cost setting).

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
import math
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from workflow.scripts import io

KINDS = ("erm", "madry", "fast", "free")
FBF_PEAK_LR = 0.21  # the peak of ART's FBF learning-rate schedule (adversarial_trainer_fbf_pytorch.py)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# RobustBench's ImageNet L-inf ResNet-50s (robustbench/model_zoo/imagenet.py): Google-Drive ids of the
# state dicts; Standard_R50 is torchvision's resnet50(pretrained=True), i.e. the IMAGENET1K_V1 file.
GDRIVE = "https://drive.usercontent.google.com/download?id={}&export=download&confirm=t"
ROBUSTBENCH = {
    "Standard_R50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "Engstrom2019Robustness": GDRIVE.format("1T2Fvi1eCJTeAOEzrH_4TAIwO8HTOYVyn"),
    "Salman2020Do_R50": GDRIVE.format("1TmT5oGa1UvVjM3d-XeSj_XmKqBNRUg8r"),
    "Wong2020Fast": GDRIVE.format("1deM2ZNS5tf3S_-eRURJi-IlvUL8WJQ_w"),
}


# ----------------------------------------------------------------------------- networks


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


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel (RobustBench's ``ImageNormalizer``)."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def resnet50() -> nn.Module:
    """``Normalize`` then torchvision ``resnet50`` (random weights): images ``[B, 3, H, W]`` in [0, 1]."""
    from torchvision.models import resnet50 as tv_resnet50

    return nn.Sequential(Normalize(), tv_resnet50(weights=None))


ARCHITECTURES = {"texture_cnn": TextureCNN, "resnet50": resnet50}


def build(arch: str, **kwargs) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch: expected one of {sorted(ARCHITECTURES)}, got {arch!r}")
    return ARCHITECTURES[arch](**kwargs).eval()


# ----------------------------------------------------------------------------- training


def art_classifier(model: nn.Module, n_classes: int, input_shape: tuple[int, ...], lr: float,
                   device: torch.device):
    """ART ``PyTorchClassifier`` around ``model`` (inputs clipped to [0, 1], cross-entropy, Adam at ``lr``)."""
    from art.estimators.classification import PyTorchClassifier

    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(input_shape),
                             nb_classes=n_classes, optimizer=optimizer, clip_values=(0.0, 1.0),
                             device_type="gpu" if device.type == "cuda" else "cpu")


def free_training(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
                  epsilon: float, replay: int, epochs: int, batch_size: int, generator: torch.Generator
                  ) -> torch.Tensor:
    """Free adversarial training (Shafahi et al., 2019, Algorithm 1), in place.

    One perturbation ``delta`` ``[batch_size, *x.shape[1:]]`` lives across minibatches. Each minibatch
    ``(x_b, y_b)`` is replayed ``replay`` times; each replay takes one optimiser step on
    ``cross_entropy(model(clip(x_b + delta)), y_b)`` and, from the same backward pass, updates
    ``delta <- clip(delta + epsilon * sign(d loss / d delta), -epsilon, epsilon)``. ``ceil(epochs / replay)``
    passes over ``x`` (shuffled with ``generator``), so the number of optimiser steps matches ``epochs`` epochs of
    plain training. Inputs are clipped to [0, 1]. With ``epsilon = 0`` and ``replay = 1`` it is plain training.
    Returns the final ``delta``; the model is left in eval mode.
    """
    if replay < 1 or epsilon < 0:
        raise ValueError(f"replay, epsilon: expected replay >= 1 and epsilon >= 0, got {replay!r}, {epsilon!r}")
    device = next(model.parameters()).device
    delta = torch.zeros(batch_size, *x.shape[1:], device=device)
    model.train()
    for _ in tqdm(range(math.ceil(epochs / replay)), desc="free training passes", leave=False):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x[idx].to(device), y[idx].to(device)
            for _ in range(replay):
                d = delta[:len(idx)].clone().requires_grad_(True)
                loss = F.cross_entropy(model((xb + d).clamp(0, 1)), yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                delta[:len(idx)] = (d.detach() + epsilon * d.grad.sign()).clamp(-epsilon, epsilon)
    model.eval()
    return delta


def _fbf_trainer(classifier, epsilon: float, lr: float):
    """ART's ``AdversarialTrainerFBFPyTorch`` with its cyclic learning rate (0 -> peak at 2/5 of the epochs -> 0)
    rescaled to peak at ``lr`` instead of the CIFAR SGD value 0.21 it hard-codes (with that peak and SGD, momentum
    0.9, the texture CNN stalled: chance with BatchNorm, 37 % test accuracy with GroupNorm after 6 epochs);
    everything else is ART's."""
    from art.defences.trainer import AdversarialTrainerFBFPyTorch

    class Trainer(AdversarialTrainerFBFPyTorch):
        def _batch_process(self, x_batch, y_batch, l_r):
            return super()._batch_process(x_batch, y_batch, l_r * lr / FBF_PEAK_LR)

    return Trainer(classifier, eps=epsilon)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int, kind: str, *, epsilon: float,
          step_size: float, steps: int, epochs: int, batch_size: int, lr: float, seed: int, replay: int = 4,
          device: torch.device | str = "cpu", key: str = "training") -> nn.Module:
    """Train ``model`` on ``x`` ``[N, C, H, W]`` in [0, 1], ``y`` ``[N]`` with training ``kind`` (``KINDS``).

    ``epsilon`` (L-inf), ``step_size`` and ``steps`` are the adversary's (Madry PGD; FBF and free use ``epsilon``);
    ``key`` names the config entry in errors. Seeded (torch, numpy: ART draws from numpy's global generator).
    Returns the model in eval mode.
    """
    if kind not in KINDS:
        raise ValueError(f"{key}: unknown training kind {kind!r}; expected one of {KINDS}")
    if epsilon < 0:
        raise ValueError(f"{key}: epsilon must be >= 0, got {epsilon!r}")
    device = torch.device(device)
    torch.manual_seed(seed)
    np.random.seed(seed)
    model.to(device)
    if kind == "free":
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        free_training(model, optimizer, x, y, epsilon=epsilon, replay=replay, epochs=epochs, batch_size=batch_size,
                      generator=torch.Generator().manual_seed(seed))
        return model.eval()
    classifier = art_classifier(model, n_classes, tuple(x.shape[1:]), lr, device)
    xn, yn = x.numpy().astype(np.float32), np.eye(n_classes, dtype=np.float32)[y.numpy()]  # ART's FBF needs one-hot
    if kind == "erm":
        classifier.fit(xn, yn, batch_size=batch_size, nb_epochs=epochs)
    elif kind == "madry":
        from art.defences.trainer import AdversarialTrainerMadryPGD

        AdversarialTrainerMadryPGD(classifier, nb_epochs=epochs, batch_size=batch_size, eps=epsilon,
                                   eps_step=step_size, max_iter=steps).fit(xn, yn)
    else:
        _fbf_trainer(classifier, epsilon, lr).fit(xn, yn, batch_size=batch_size, nb_epochs=epochs)
    return model.eval()


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Top-1 classes ``[N]`` of ``model`` on ``x`` (on the model's device, ``batch_size`` at a time)."""
    device = next(model.parameters()).device
    return torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)])


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int, *, epsilon: float, step_size: float,
        steps: int, batch_size: int, seed: int, random_init: bool = True) -> torch.Tensor:
    """L-inf PGD examples ``[N, ...]`` (CPU) with ART ``ProjectedGradientDescentPyTorch`` (untargeted, inputs in
    [0, 1], one random start inside the ball when ``random_init``; seeded)."""
    from art.attacks.evasion import ProjectedGradientDescentPyTorch

    if epsilon < 0:
        raise ValueError(f"epsilon: must be >= 0, got {epsilon!r}")
    device = next(model.parameters()).device
    np.random.seed(seed)
    torch.manual_seed(seed)
    classifier = art_classifier(model, n_classes, tuple(x.shape[1:]), 0.0, device)
    attack = ProjectedGradientDescentPyTorch(classifier, norm=np.inf, eps=epsilon, eps_step=step_size,
                                             max_iter=steps, num_random_init=int(random_init),
                                             batch_size=batch_size, verbose=False)
    adv = attack.generate(x.numpy().astype(np.float32), y=y.numpy())
    model.eval()
    return torch.from_numpy(adv)


# ----------------------------------------------------------------------------- checkpoints


def _torchvision_prefix(url: str) -> str | None:
    """torchvision names its files ``<name>-<first 8 hex digits of the sha256>.pth``: that prefix, or None."""
    match = re.search(r"-([0-9a-f]{8})\.pth?$", url.split("?")[0])
    return match.group(1) if match else None


def fetch(url: str, dest: Path, sha256: str | None, key: str) -> tuple[Path, str]:
    """Download ``url`` to ``dest`` (cache), checksum-verified; returns the file and its sha256.

    ``sha256`` given: ``io.download`` verifies it (a mismatch deletes the download and raises). ``sha256`` None:
    trust on first use: the digest of the first download is recorded in ``dest.parent/SHA256SUMS.json`` and every
    later use is verified against it; a torchvision URL's 8-digit prefix is checked too. ``key`` names the config
    entry in errors.
    """
    dest = Path(dest)
    manifest = dest.parent / "SHA256SUMS.json"
    recorded = json.loads(manifest.read_text()) if manifest.is_file() else {}
    want = sha256 or recorded.get(dest.name)
    try:
        io.download(url, dest, sha256=want, timeout=600)
    except ValueError as err:  # a fresh download is never renamed into place; a bad cached file is removed here
        dest.unlink(missing_ok=True)
        raise ValueError(f"{key}: {err}; the download was deleted, nothing is kept at {dest}") from err
    digest = io.file_digest(dest)
    prefix = _torchvision_prefix(url)
    if prefix and not digest.startswith(prefix):
        dest.unlink()
        raise ValueError(f"{key}: {dest}: sha256 {digest} does not start with {prefix}, the prefix in the "
                         f"torchvision file name of {url}; the download was deleted, nothing is kept at {dest}")
    if recorded.get(dest.name) != digest:
        io.write_json(manifest, {**recorded, dest.name: digest})
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
    with io.atomic_path(path) as tmp:
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
        digest = io.file_digest(weights)
        if digest != obj["weights"]["sha256"]:
            raise ValueError(f"{path}: {weights} has sha256 {digest}, expected {obj['weights']['sha256']}")
        model[1].load_state_dict(resnet50_state_dict(weights, str(path)))
    return model.eval(), obj["meta"]
