"""How an image model sees its input: resize, crop and interpolation into [0, 1], then its own normalisation.

Every image model carries its own :class:`ImagePreprocessing` (timm's pretrained config of the model; for a
checkpoint, the one the train rule recorded in ``meta["preprocessing"]``), so two models with different statistics
on one data set are each explained and scored on their own: images are decoded into [0, 1] with the model's resize
and crop, perturbed there, and normalised by :class:`Normalize` after any perturbation.

Example::

    >>> import torch
    >>> pp = ImagePreprocessing.of("timm:resnet18")
    >>> pp.mean
    (0.485, 0.456, 0.406)
    >>> x = torch.rand(1, 3, 4, 4)
    >>> torch.allclose(pp.normalize().inverse(pp.normalize()(x)), x, atol=1e-6)
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from workflow.lib.models.zoo import TIMM_PREFIX, spec

# timm's ImageNet defaults, for image models that carry no data config of their own (TorchScript files, the
# torchvision networks of the robustness experiment).
IMAGENET_DEFAULTS = {"input_size": (3, 224, 224), "interpolation": "bicubic", "mean": (0.485, 0.456, 0.406),
                     "std": (0.229, 0.224, 0.225), "crop_pct": 0.875, "crop_mode": "center"}


class Normalize(nn.Module):
    """An image model's input normalisation ``(x - mean) / std`` per channel, for ``x [B, C, H, W]`` in [0, 1]
    RGB (``inverse`` undoes it). The evaluation perturbs unnormalised images and applies this after."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean



@dataclass(frozen=True)
class ImagePreprocessing:
    """How an image model sees a file: timm's data config (``input_size`` ``(3, H, W)``, ``interpolation``,
    ``crop_pct``, ``crop_mode``) for the resize and crop into [0, 1], then ``(x - mean) / std``.

    >>> pp = ImagePreprocessing.of("efficientnet_lite0")
    >>> pp.input_size, pp.mean
    ((3, 224, 224), (0.5, 0.5, 0.5))
    """

    input_size: tuple[int, int, int]
    interpolation: str
    crop_pct: float
    crop_mode: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, name: str) -> ImagePreprocessing:
        """The preprocessing of registry or timm model ``name`` (its pretrained config; nothing downloaded)."""
        cfg = data_config(name)
        return cls(tuple(cfg["input_size"]), str(cfg["interpolation"]), float(cfg["crop_pct"]),
                   str(cfg.get("crop_mode", "center")), tuple(float(v) for v in cfg["mean"]),
                   tuple(float(v) for v in cfg["std"]))

    @classmethod
    def from_dict(cls, record: dict) -> ImagePreprocessing:
        return cls(**{**record, "input_size": tuple(record["input_size"]), "mean": tuple(record["mean"]),
                      "std": tuple(record["std"])})

    def as_dict(self) -> dict:
        return asdict(self)

    def transform(self) -> Callable:
        """PIL image -> ``[3, H, W]`` float in [0, 1]: timm's eval transform without its normalisation."""
        from timm.data import create_transform

        return create_transform(input_size=self.input_size, interpolation=self.interpolation, crop_pct=self.crop_pct,
                                crop_mode=self.crop_mode, mean=(0.0,) * 3, std=(1.0,) * 3, is_training=False)

    def normalize(self) -> Normalize:
        return Normalize(self.mean, self.std)



def preprocessing(model: nn.Module | str) -> ImagePreprocessing:
    """The preprocessing of an image model: the one its checkpoint recorded (``meta["preprocessing"]``, written by
    the train rule), else its registry or timm name's pretrained config."""
    record = getattr(model, "meta", {}).get("preprocessing") if isinstance(model, nn.Module) else None
    if record:
        return ImagePreprocessing.from_dict(record)
    name = model if isinstance(model, str) else (spec(model) or {}).get("name")
    if name is None:
        raise ValueError("model: not built by workflow.lib.models.zoo.build and no recorded preprocessing")
    return ImagePreprocessing.of(name)



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

