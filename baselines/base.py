"""Common base of the baselines: input and target checks, no parameter gradients, chunking.

A method subclasses :class:`Baseline` (or :class:`CamBaseline` for class activation maps) and
implements ``attribute(x, y)`` on already-checked inputs; ``__call__`` does the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from baselines.cam_target import CamTarget, Reshape, resolve_cam_target
from wam.utils import as_targets, check_input, check_targets_range, chunks, input_gradients_only

_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}
ChunkFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Baseline:
    """A pixel-domain attribution method bound to ``model`` (``[B, C, *spatial] -> [B, classes]``).

    ``explain(x, y)``: ``x`` a floating finite tensor ``[B, C, *spatial]`` (1 to 3 spatial
    dimensions), ``y`` an int or ``B`` class indices; returns a detached attribution of ``x``'s
    shape. At most ``batch_size`` inputs go through the model at once; the output does not depend
    on ``batch_size``. No parameter gradient is ever computed. The model's mode (eval/train) is
    left as the caller set it.
    """

    name: str = ""

    def __init__(self, model: nn.Module, batch_size: int = 64) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
        self.model = model
        self.batch_size = batch_size

    def __call__(self, x: torch.Tensor, y: int | torch.Tensor) -> torch.Tensor:
        """Attribution ``[B, C, *spatial]`` of ``x [B, C, *spatial]`` for the classes ``y [B]``."""
        check_input(x, (3, 4, 5), "x", "[B, C, *spatial] with 1 to 3 spatial dimensions")
        y = as_targets(y, x.shape[0], x.device)
        x = x.detach()
        if x.shape[0] == 0:
            return torch.zeros_like(x)
        with torch.enable_grad(), input_gradients_only(self.model), _checked_outputs(self.model, y):
            attribution = self.attribute(x, y)
        return attribution.detach()

    def attribute(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Method's work on checked ``x [B, C, *spatial]``, ``y [B]`` (long) -> ``x``'s shape."""
        raise NotImplementedError

    def path_baseline(self, x: torch.Tensor) -> torch.Tensor | None:
        """The start ``x0`` of a path method's integral for inputs ``x`` (its attributions sum to about
        ``f(x) - f(x0)``: completeness), ``None`` for the other methods."""
        return None

    def per_chunk(self, fn: ChunkFn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``fn(x[s], y[s])`` over consecutive chunks ``s`` of <= ``batch_size`` inputs, joined."""
        return torch.cat([fn(x[s], y[s]) for s in chunks(x.shape[0], self.batch_size)])

    @staticmethod
    def leaf(x: torch.Tensor) -> torch.Tensor:
        """``x`` detached, as a leaf that requires a gradient (what captum's gradient methods expect)."""
        return x.detach().requires_grad_(True)


@contextmanager
def _checked_outputs(model: nn.Module, y: torch.Tensor) -> Iterator[None]:
    """Within the block, each ``model`` call must return ``[n, classes]`` logits covering ``y``."""
    y_max = int(y.max())

    def hook(module: nn.Module, args: object, out: object) -> None:
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"model: expected logits [B, n_classes], got {shape}")
        if y_max >= out.shape[1]:
            check_targets_range(y, out.shape[1])

    handle = model.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def find_layer(model: nn.Module, layer: str) -> nn.Module:
    """``model``'s submodule ``layer`` (dotted name); ``ValueError`` naming it when absent."""
    try:
        return model.get_submodule(layer)
    except AttributeError:
        raise ValueError(f"layer: the model has no submodule {layer!r}") from None


def upsample_cam(cam: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``cam [B, 1, *s]`` -> ``[B, C, *spatial]`` of ``x [B, C, *spatial]``.

    (Bi/tri)linear interpolation with ``align_corners=False``, ReLU, repeated over the channels. A map constant
    at the layer (all zero, or one position: a 1 x 1 map) stays exactly constant: interpolation would add 1-ulp
    ripples, and the scoring, which flags constant maps as degenerate (``metrics.perturbation.constant_rows``),
    would rank the pixels by rounding noise instead.
    """
    size = tuple(x.shape[2:])
    if cam.dim() != x.dim():
        raise ValueError(
            f"layer: its map [B, K, *s] must have as many spatial dimensions as x "
            f"{tuple(x.shape)}, got {tuple(cam.shape)} (token maps need reshape=)"
        )
    if tuple(cam.shape[2:]) != size:
        low = cam.flatten(1).amin(1).reshape(-1, 1, *[1] * len(size))
        same = low == cam.flatten(1).amax(1).reshape(low.shape)
        cam = torch.where(same, low, F.interpolate(cam, size=size, mode=_MODES[len(size)], align_corners=False))
    return F.relu(cam).expand(-1, x.shape[1], *size).contiguous()


class CamBaseline(Baseline):
    """A class activation map on a layer's feature map ``A [B, K, *s]`` and ``g = d f_y / d A``.

    By default the layer and the reshape of its output to ``[B, K, *s]`` are resolved from the model's
    structure (:func:`~baselines.cam_target.resolve_cam_target`: a CNN's last spatial feature map, a ViT's or a
    Swin's last block's ``norm1`` on its patch grid) on the first call, and again when the input's shape
    changes; ``cam_target`` (a :class:`~baselines.cam_target.CamTarget`, ``None`` before the first call) and
    ``layer_name`` record the choice. ``layer``: a dotted module name instead, whose output is a map already or,
    with ``reshape``, becomes one (e.g. a ViT's tokens ``[B, 1 + N, D]`` to its patch grid). Subclasses
    implement ``cam(acts, grads) -> [b, 1, *s]``; ``explain(x, y)`` returns it upsampled to ``x``'s spatial
    size and repeated over ``x``'s channels: ``[B, C, *spatial]``.

    Example (a timm ViT, patch 8 on 32 x 32 inputs: a 4 x 4 grid of patch tokens after the class token)::

        >>> import timm, torch, baselines
        >>> vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
        ...                         embed_dim=16, num_heads=2, num_classes=3).eval()
        >>> explain = baselines.get("gradcam", vit)
        >>> explain(torch.rand(2, 3, 32, 32), torch.tensor([0, 2])).shape
        torch.Size([2, 3, 32, 32])
        >>> explain.cam_target
        CamTarget(layer='blocks.1.norm1', kind='tokens', grid=(4, 4), prefix_tokens=1)
    """

    def __init__(self, model: nn.Module, batch_size: int = 64, *, layer: str | None = None,
                 reshape: Reshape | None = None) -> None:
        super().__init__(model, batch_size)
        if reshape is not None and layer is None:
            raise ValueError("reshape: give it with layer= (without layer=, the layer and its reshape are resolved "
                             "from the model's structure)")
        self._resolved_for: tuple[int, ...] | None = None  # x.shape[1:] the automatic target was resolved on
        self.cam_target: CamTarget | None = None
        self.layer: nn.Module | None = None
        if layer is not None:
            self.cam_target = CamTarget(layer, "feature_map") if reshape is None else CamTarget(
                layer, "custom", custom=reshape)
            self.layer = find_layer(model, layer)

    @property
    def layer_name(self) -> str | None:
        """The layer's dotted name (``None`` until resolved)."""
        return None if self.cam_target is None else self.cam_target.layer

    def attribute(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.per_chunk(lambda xs, ys: upsample_cam(self.cam(*self.activations_and_gradients(xs, ys)), xs),
                              x, y)

    def resolve_layer(self, x: torch.Tensor) -> str:
        """The layer's dotted name; unless given, ``cam_target`` is resolved on ``x`` (when its shape changed)."""
        if self.layer is None or (self._resolved_for is not None and self._resolved_for != tuple(x.shape[1:])):
            self.cam_target = resolve_cam_target(self.model, x)
            self.layer = find_layer(self.model, self.cam_target.layer)
            self._resolved_for = tuple(x.shape[1:])
        return self.cam_target.layer

    def activations_and_gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's map ``A [b, K, *s]`` and ``d S_y / d A`` for one chunk (``cam_target.reshape`` applied;
        the target resolved first when needed, :meth:`resolve_layer`)."""
        self.resolve_layer(x)
        saved: list[torch.Tensor] = []

        def hook(module: nn.Module, args: object, out: object) -> torch.Tensor:
            if not isinstance(out, torch.Tensor):
                raise ValueError(f"layer: {self.layer_name!r} must return a tensor, got {type(out).__name__}")
            saved.append(out)
            return out.clone()  # later in-place ops (e.g. ReLU(inplace=True)) leave ``out`` intact

        handle = self.layer.register_forward_hook(hook)
        try:
            logits = self.model(self.leaf(x))  # a leaf that requires grad: the layer's map then does too
        finally:
            handle.remove()
        if not saved:
            raise ValueError(f"layer: {self.layer_name!r} was not called by the model's forward")
        (grads,) = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), saved[-1])
        return self.cam_target.reshape(saved[-1].detach()), self.cam_target.reshape(grads)

    def cam(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """Map ``[b, 1, *s]`` (>= 0) from the layer's map ``acts`` and its gradient ``grads`` ``[b, K, *s]``."""
        raise NotImplementedError
