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

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
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


def find_layer(model: nn.Module, layer: str | None) -> tuple[str, nn.Module]:
    """``(name, module)``: ``model``'s submodule ``layer`` (dotted name), by default its last conv.

    The last ``nn.Conv1d/2d/3d`` in ``model.modules()`` order (the last feature map of timm,
    torchvision and monai CNNs).
    """
    if layer is None:
        convs = [(n, m) for n, m in model.named_modules() if isinstance(m, _CONVS)]
        if not convs:
            raise ValueError(
                "layer: the model has no nn.Conv1d/Conv2d/Conv3d to take a class activation map "
                "from; pass layer='dotted.module.name'"
            )
        return convs[-1]
    try:
        return layer, model.get_submodule(layer)
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
            f"{tuple(x.shape)}, got {tuple(cam.shape)}"
        )
    if tuple(cam.shape[2:]) != size:
        cam = F.interpolate(cam, size=size, mode=_MODES[len(size)], align_corners=False)
    return F.relu(cam).expand(-1, x.shape[1], *size).contiguous()


class CamBaseline(Baseline):
    """A class activation map on ``layer`` (default: the last convolution; dotted name otherwise).

    Subclasses implement ``cam(x, y) -> [B, 1, *s]`` on one chunk; ``explain(x, y)`` returns it
    upsampled to ``x``'s spatial size and repeated over ``x``'s channels: ``[B, C, *spatial]``.
    """

    def __init__(self, model: nn.Module, batch_size: int = 64, *, layer: str | None = None) -> None:
        super().__init__(model, batch_size)
        self.layer_name, self.layer = find_layer(model, layer)

    def attribute(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.per_chunk(lambda xs, ys: upsample_cam(self.cam(xs, ys), xs), x, y)

    def cam(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Map ``[b, 1, *s]`` (>= 0) on the layer's grid for a chunk ``x [b, C, *spatial]``."""
        raise NotImplementedError
