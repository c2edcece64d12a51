"""Where a class activation map reads its feature map, found from the model's structure.

:func:`resolve_cam_target` runs one input through the model with hooks and returns a :class:`CamTarget`: the
layer (dotted module name) and how its output becomes a map ``[B, K, *s]`` (its ``kind``):

- ``"feature_map"`` (CNNs: no transformer block): the last spatial feature map complete before the global
  pooling (:func:`last_feature_map`), already ``[B, K, *s]``: ``layer4`` of a ResNet, ``stages`` of a ConvNeXt,
  ``bn2`` of an EfficientNet.
- ``"tokens"`` (ViTs: timm ``VisionTransformer`` and its relatives, monai ``ViT``): the last transformer
  block's ``norm1``, its normalised input tokens ``[B, P + N, D]``; the ``P`` prefix tokens (class,
  distillation, register tokens: timm and monai put them first) are dropped and the ``N`` patch tokens laid on
  the patch grid, ``[B, D, *grid]`` (2D and 3D). The grid is the spatial size of the patch projection: the last
  convolution before the block with ``D`` output channels (timm ``patch_embed.proj``, monai
  ``patch_embedding.patch_embeddings``), so it follows the input's size (timm ``dynamic_img_size``), and
  ``P`` is the number of tokens less ``prod(grid)``.
- ``"channels_last"`` (timm Swin, whose stages pass ``[B, H, W, C]`` maps): the last block's ``norm1``,
  ``[B, *grid, C] -> [B, C, *grid]``. Its windows are already in place: a Swin block partitions its
  normalised map into windows, attends within each and reverses the partition (and the cyclic shift) before it
  returns, so ``norm1`` reads, and every stage returns, the map in image order.

A transformer block is a module with ``norm1`` and ``attn`` submodules that runs ``norm1`` before ``attn``
(pre-norm: timm's ViT, DeiT, EVA, BEiT and Swin blocks, monai's ``TransformerBlock``); the last to run is the
last block. Why its ``norm1`` (pytorch-grad-cam's choice too: ``blocks[-1].norm1`` for ViTs,
``layers[-1].blocks[-1].norm1`` for Swins): in a class-token ViT only the prefix tokens of the last block's
output reach the head, so its patch tokens get exactly zero gradient (an all-zero map), while the normalised
input of the last attention still reaches the class token from every patch. Global-average-pool ViTs (no class
token, e.g. timm's ``*_gap_*``) and Swins average the last block's output tokens, so that output would serve as
well; the same ``norm1`` is kept for them, one rule for every token model. Post-norm blocks (``norm1`` after
``attn``, e.g. SwinV2) and patch projections that are not convolutions are not resolved: pass ``layer=`` and
``reshape=`` to the CAM.

Example::

    >>> import timm, torch
    >>> from baselines.cam_target import resolve_cam_target
    >>> vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
    ...                         embed_dim=16, num_heads=2, reg_tokens=4, num_classes=3).eval()
    >>> target = resolve_cam_target(vit, torch.rand(1, 3, 32, 32))
    >>> target
    CamTarget(layer='blocks.1.norm1', kind='tokens', grid=(4, 4), prefix_tokens=5)
    >>> target.reshape(torch.rand(2, 5 + 16, 16)).shape  # class + 4 register tokens dropped
    torch.Size([2, 16, 4, 4])
    >>> resnet = timm.create_model("resnet18", pretrained=False, output_stride=8, num_classes=3).eval()
    >>> resolve_cam_target(resnet, torch.rand(1, 3, 32, 32)).provenance()
    {'layer': 'layer4', 'kind': 'feature_map', 'grid': [4, 4], 'prefix_tokens': 0}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

Reshape = Callable[[torch.Tensor], torch.Tensor]
KINDS = ("feature_map", "tokens", "channels_last", "custom")
_GLOBAL_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                 nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class CamTarget:
    """A CAM's layer (dotted name) and how its output becomes a map ``[B, K, *s]`` (``kind``, one of ``KINDS``).

    ``grid``: the map's spatial size ``s`` for the input it was resolved on (``None`` for ``"custom"``);
    ``prefix_tokens``: tokens before the patch tokens (``"tokens"``); ``custom``: the caller's own reshape
    (``"custom"``).
    """

    layer: str
    kind: str = "feature_map"
    grid: tuple[int, ...] | None = None
    prefix_tokens: int = 0
    custom: Reshape | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {self.kind!r}")
        if (self.custom is not None) != (self.kind == "custom"):
            raise ValueError("custom: a reshape function goes with kind='custom', and only with it")
        if self.kind == "tokens" and self.grid is None:
            raise ValueError("grid: kind='tokens' needs the patch grid")

    def reshape(self, out: torch.Tensor) -> torch.Tensor:
        """The layer's output ``out`` as a map ``[B, K, *s]`` (``feature_map``: ``out`` itself; ``tokens``:
        ``[B, P + N, D] -> [B, D, *grid]``; ``channels_last``: ``[B, *s, C] -> [B, C, *s]``)."""
        if self.kind == "custom":
            return self.custom(out)
        if self.kind == "channels_last":
            return out.movedim(-1, 1)
        if self.kind == "feature_map":
            return out
        n = math.prod(self.grid)
        if out.dim() != 3 or out.shape[1] != self.prefix_tokens + n:
            raise ValueError(
                f"x: {self.layer!r} returned {tuple(out.shape)}, expected [B, {self.prefix_tokens} + {n}, D] tokens "
                f"(grid {self.grid}) as for the input the target was resolved on"
            )
        patches = out[:, self.prefix_tokens:]
        return patches.transpose(1, 2).reshape(out.shape[0], out.shape[2], *self.grid)

    def provenance(self) -> dict[str, object]:
        """``{"layer", "kind", "grid", "prefix_tokens"}``, JSON-ready (what an output file records)."""
        grid = None if self.grid is None else list(self.grid)
        return {"layer": self.layer, "kind": self.kind, "grid": grid, "prefix_tokens": self.prefix_tokens}


@dataclass(frozen=True, eq=False)
class _Call:
    """One module's return in a traced forward pass (compared by identity): ``pooling`` is true once a global
    pooling has started."""

    name: str
    module: nn.Module
    out: torch.Tensor
    pooling: bool


def _is_global_pool(module: nn.Module) -> bool:
    """torch's adaptive pools and timm's ``SelectAdaptivePool`` (matched by name: no timm import)."""
    return isinstance(module, _GLOBAL_POOLS) or type(module).__name__.startswith("SelectAdaptivePool")


def _trace(model: nn.Module, x: torch.Tensor) -> list[_Call]:
    """The tensor each submodule of ``model`` returns for ``x[:1]``, in the order they return.

    ``nn.Identity`` modules are left out: they compute nothing, so they never name a layer.
    """
    calls: list[_Call] = []
    pooling = [False]

    def on_output(name: str):
        def hook(module: nn.Module, args: object, out: object) -> None:
            if isinstance(out, torch.Tensor):
                calls.append(_Call(name, module, out, pooling[0]))
        return hook

    def on_pool(module: nn.Module, args: object) -> None:
        pooling[0] = True

    handles = []
    for name, module in model.named_modules():
        if name and not isinstance(module, nn.Identity):
            handles.append(module.register_forward_hook(on_output(name)))
            if _is_global_pool(module):
                handles.append(module.register_forward_pre_hook(on_pool))
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    return calls


def _last_feature_map(calls: list[_Call], x: torch.Tensor) -> _Call:
    """Of the traced outputs shaped like a feature map (as many dimensions as ``x``) complete before the
    global pooling, the last; of the modules returning that very tensor, the outermost (the last to return)."""
    done = [c for c in calls if not c.pooling and c.out.dim() == x.dim()]
    if not done:
        raise ValueError(
            f"layer: found no module output shaped like a feature map [B, K, *s] ({x.dim()} dimensions) before "
            "the global pooling; pass layer='dotted.module.name' (and reshape= for token maps)"
        )
    return [c for c in done if c.out is done[-1].out][-1]


def last_feature_map(model: nn.Module, x: torch.Tensor) -> str:
    """Dotted name of the module that outputs ``model``'s last spatial feature map for inputs like ``x``.

    One forward pass of ``x[:1]`` with hooks: among the module outputs shaped like a feature map
    (``[B, K, *s]``, as many dimensions as ``x``) that are complete before the first global pooling module
    (torch ``AdaptiveAvg/MaxPool``, timm ``SelectAdaptivePool``) starts, the last one; of the (non-identity)
    modules that return that very tensor (a block and the stage that ends with it), the outermost. This is the
    map the head pools: e.g. ``layer4`` of a ResNet (after its last residual add and activation), ``bn2`` of a
    timm EfficientNet (after the head convolution's batch norm and activation), ``stages`` of a ConvNeXt.
    Token models need :func:`resolve_cam_target`.

    >>> from torch import nn
    >>> cnn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    >>> last_feature_map(cnn, torch.rand(1, 3, 8, 8))  # after the ReLU
    '1'
    """
    return _last_feature_map(_trace(model, x), x).name


def _last_block(calls: list[_Call]) -> _Call | None:
    """The last transformer block to return: a module with ``norm1`` and ``attn`` submodules (``None``: none)."""
    blocks = [c for c in calls
              if isinstance(getattr(c.module, "norm1", None), nn.Module)
              and isinstance(getattr(c.module, "attn", None), nn.Module)]
    return blocks[-1] if blocks else None


def _index(calls: list[_Call], module: nn.Module, before: int) -> int | None:
    """Index of ``module``'s last return among ``calls[:before]`` (``None``: it did not return there)."""
    found = [i for i, c in enumerate(calls[:before]) if c.module is module]
    return found[-1] if found else None


def _patch_grid(calls: list[_Call], width: int, n_tokens: int, spatial_dims: int) -> tuple[int, ...]:
    """Spatial size of the last convolution in ``calls`` with ``width`` output channels (the patch projection)."""
    grids = [tuple(c.out.shape[2:]) for c in calls
             if isinstance(c.module, _CONVS) and c.out.dim() == spatial_dims + 2 and c.out.shape[1] == width]
    if not grids or math.prod(grids[-1]) > n_tokens:
        raise ValueError(
            f"layer: found no patch projection (a convolution with {width} output channels and at most {n_tokens} "
            "positions) before the last transformer block; pass layer= and reshape= ([B, tokens, D] -> [B, D, *grid])"
        )
    return grids[-1]


def resolve_cam_target(model: nn.Module, x: torch.Tensor) -> CamTarget:
    """The CAM target of ``model`` for inputs like ``x`` ``[B, C, *spatial]`` (one forward pass of ``x[:1]``).

    See the module's docstring for the rules; ``ValueError`` naming ``layer`` where none applies.
    """
    calls = _trace(model, x)
    block = _last_block(calls)
    if block is None:
        found = _last_feature_map(calls, x)
        return CamTarget(found.name, "feature_map", tuple(found.out.shape[2:]))
    end = calls.index(block)
    norm1 = _index(calls, block.module.norm1, end)
    attn = _index(calls, block.module.attn, end)
    layer = f"{block.name}.norm1"
    if norm1 is None or (attn is not None and attn < norm1):
        raise ValueError(f"layer: {layer!r} does not normalise the input of {block.name!r}'s attention (post-norm "
                         "block?); pass layer= and reshape=")
    out = calls[norm1].out
    if out.dim() == 3:
        grid = _patch_grid(calls[:norm1], out.shape[2], out.shape[1], x.dim() - 2)
        return CamTarget(layer, "tokens", grid, out.shape[1] - math.prod(grid))
    if out.dim() == x.dim():
        return CamTarget(layer, "channels_last", tuple(out.shape[1:-1]))
    raise ValueError(f"layer: {layer!r} returns {tuple(out.shape)}, neither tokens [B, N, D] nor a channels-last "
                     f"map of {x.dim()} dimensions; pass layer= and reshape=")
