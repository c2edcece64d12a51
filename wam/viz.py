"""Matplotlib views of an :class:`~wam.Explanation`: dyadic map with level boundaries, per-scale maps.

1D explanations are drawn as curves over time, 2D as images, 3D as the middle slice along the first axis.

Example::

    >>> import matplotlib.pyplot as plt, torch
    >>> from wam import WAM, viz
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 5))
    >>> expl = WAM(model, ndim=2, levels=3, method="gradient")(torch.rand(1, 3, 32, 32), [2])
    >>> fig, axes = plt.subplots(1, 5)
    >>> _ = viz.dyadic(expl, index=0, ax=axes[0])
    >>> _ = viz.scales(expl, index=0, axes=axes[1:])
    >>> [ax.get_title() for ax in axes[1:]][0].startswith("level 1")
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

from wam import transform
from wam.explainer import Explanation


def _view(t: torch.Tensor) -> torch.Tensor:
    """A 2D (or 1D) view of one sample's map: 3D volumes show their middle slice."""
    t = t.detach().float().cpu()
    return t[t.shape[0] // 2] if t.dim() == 3 else t


def _show(ax: Axes, t: torch.Tensor, title: str, cmap: str) -> None:
    t = _view(t)
    if t.dim() == 1:
        ax.plot(t.numpy(), lw=0.6)
        ax.set_xlim(0, t.shape[0])
    else:
        ax.imshow(t.numpy(), cmap=cmap)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title, fontsize=8)


def dyadic(expl: Explanation, index: int = 0, ax: Axes | None = None, cmap: str = "hot") -> Axes:
    """Draw sample ``index``'s dyadic map and outline each level's region."""
    ax = ax or plt.gca()
    _show(ax, expl.dyadic()[index], "WAM dyadic map", cmap)
    shapes = [tuple(b.shape[2:]) for b in transform.bands(expl.coeffs)]
    per_level = len(transform.level_keys(expl.ndim))
    # the region covered after each level, coarsest first, scaled to the drawn size
    extent = list(shapes[0])
    scale = [s / e for s, e in zip(expl.size, transform.layout(shapes, expl.ndim)[1], strict=True)]
    for start in range(1, len(shapes), per_level):
        extent = [e + s for e, s in zip(extent, shapes[start + per_level - 1], strict=True)]
        if expl.ndim == 1:
            ax.axvline(extent[0] * scale[0], color="cyan", lw=0.6)
        else:
            h, w = extent[-2] * scale[-2], extent[-1] * scale[-1]
            ax.add_patch(Rectangle((-0.5, -0.5), w, h, fill=False, edgecolor="cyan", lw=0.6))
    return ax


def scales(expl: Explanation, index: int = 0, axes: Sequence[Axes] | None = None, approx: bool = False,
           cmap: str = "hot") -> Sequence[Axes]:
    """Draw sample ``index``'s per-level maps (each band normalised to its maximum, for display), finest first
    (approximation last when ``approx``), each titled with its level's share of the raw attribution
    (:meth:`~wam.Explanation.scale_shares`; reference maps, normalised over the batch, have none)."""
    maps = expl.scales(approx=approx)[index]
    shares = None if expl.reference_maps is not None else expl.scale_shares()[index]
    if axes is None:
        _, axes = plt.subplots(1, maps.shape[0], figsize=(2.2 * maps.shape[0], 2.2), squeeze=False)
        axes = axes[0]
    for level, (ax, m) in enumerate(zip(axes, maps, strict=False)):
        last = approx and level == maps.shape[0] - 1
        title = "approximation" if last else f"level {level + 1}"
        if shares is not None:
            title += f" (share {float(shares[-1 if last else level]):.2f})"
        _show(ax, m, title, cmap)
    return axes
