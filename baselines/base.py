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


_GLOBAL_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                 nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
Reshape = Callable[[torch.Tensor], torch.Tensor]


def _is_global_pool(module: nn.Module) -> bool:
    """torch's adaptive pools and timm's ``SelectAdaptivePool2d`` (matched by name: no timm import)."""
    return isinstance(module, _GLOBAL_POOLS) or type(module).__name__.startswith("SelectAdaptivePool")


def last_feature_map(model: nn.Module, x: torch.Tensor) -> str:
    """Dotted name of the module that outputs ``model``'s last spatial feature map for inputs like ``x``.

    One forward pass of ``x[:1]`` with hooks: among the module outputs shaped like a feature map
    (``[B, K, *s]``, as many dimensions as ``x``) that are complete before the first global pooling module
    (torch ``AdaptiveAvg/MaxPool``, timm ``SelectAdaptivePool``) starts, the last one; of the modules that
    return that very tensor (a block and the stage that ends with it), the outermost. This is the map the
    head pools: e.g. ``layer4`` of a ResNet (after its last residual add and activation), ``bn2`` of a timm
    EfficientNet (after the head convolution's batch norm and activation). Models whose last spatial map is
    a token grid (ViTs) need ``layer=`` and ``reshape=`` (:class:`CamBaseline`).
    """
    done: list[tuple[str, torch.Tensor]] = []
    pooling = [False]

    def on_output(name: str):
        def hook(module: nn.Module, args: object, out: object) -> None:
            if not pooling[0] and isinstance(out, torch.Tensor) and out.dim() == x.dim():
                done.append((name, out))
        return hook

    def on_pool(module: nn.Module, args: object) -> None:
        pooling[0] = True

    handles = []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_hook(on_output(name)))
            if _is_global_pool(module):
                handles.append(module.register_forward_pre_hook(on_pool))
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    if not done:
        raise ValueError(
            f"layer: found no module output shaped like a feature map [B, K, *s] ({x.dim()} dimensions) before "
            "the global pooling; pass layer='dotted.module.name' (and reshape= for token maps)"
        )
    last = done[-1][1]
    return [name for name, out in done if out is last][-1]


def find_layer(model: nn.Module, layer: str) -> nn.Module:
    """``model``'s submodule ``layer`` (dotted name); ``ValueError`` naming it when absent."""
    try:
        return model.get_submodule(layer)
    except AttributeError:
        raise ValueError(f"layer: the model has no submodule {layer!r}") from None


def upsample_cam(cam: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``cam [B, 1, *s]`` -> ``[B, C, *spatial]`` of ``x [B, C, *spatial]``.

    (Bi/tri)linear interpolation with ``align_corners=False``, ReLU, repeated over the channels.
    """
    size = tuple(x.shape[2:])
    if cam.dim() != x.dim():
        raise ValueError(
            f"layer: its map [B, K, *s] must have as many spatial dimensions as x "
            f"{tuple(x.shape)}, got {tuple(cam.shape)} (token maps need reshape=)"
        )
    if tuple(cam.shape[2:]) != size:
        cam = F.interpolate(cam, size=size, mode=_MODES[len(size)], align_corners=False)
    return F.relu(cam).expand(-1, x.shape[1], *size).contiguous()


class CamBaseline(Baseline):
    """A class activation map on a layer's feature map ``A [B, K, *s]`` and ``g = d f_y / d A``.

    ``layer``: dotted module name; by default the model's last spatial feature map
    (:func:`last_feature_map`, resolved on the first call and kept in ``layer_name``). ``reshape`` maps the
    layer's output to ``[B, K, *s]`` when it is not one already (a ViT's tokens ``[B, 1 + N, D]`` to its
    patch grid). Subclasses implement ``cam(acts, grads) -> [b, 1, *s]``; ``explain(x, y)`` returns it
    upsampled to ``x``'s spatial size and repeated over ``x``'s channels: ``[B, C, *spatial]``.
    """

    def __init__(self, model: nn.Module, batch_size: int = 64, *, layer: str | None = None,
                 reshape: Reshape | None = None) -> None:
        super().__init__(model, batch_size)
        self.layer_name = layer
        self.layer = None if layer is None else find_layer(model, layer)
        self.reshape = reshape

    def attribute(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.resolve_layer(x)
        return self.per_chunk(lambda xs, ys: upsample_cam(self.cam(*self.activations_and_gradients(xs, ys)), xs),
                              x, y)

    def resolve_layer(self, x: torch.Tensor) -> str:
        """The layer's dotted name, found with :func:`last_feature_map` on ``x`` when not given."""
        if self.layer is None:
            self.layer_name = last_feature_map(self.model, x)
            self.layer = find_layer(self.model, self.layer_name)
        return self.layer_name

    def activations_and_gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's map ``A [b, K, *s]`` (after ``reshape``) and ``d S_y / d A`` for one chunk."""
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
        acts = saved[-1].detach()
        if self.reshape is not None:
            acts, grads = self.reshape(acts), self.reshape(grads)
        return acts, grads

    def cam(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """Map ``[b, 1, *s]`` (>= 0) from the layer's map ``acts`` and its gradient ``grads`` ``[b, K, *s]``."""
        raise NotImplementedError
