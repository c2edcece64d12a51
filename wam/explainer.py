"""The Wavelet Attribution Method: gradients of a classifier with respect to wavelet coefficients.

``z = W(x)`` is the input's discrete wavelet transform and ``f_c`` the model's logit for class ``c``; every
variant differentiates ``f_c(W^-1(z))`` with autograd (the WAM paper, ICML 2025, arXiv 2410.01482):

- ``gradient``:   ``g(z) = d f_c(W^-1(z)) / d z``
- ``smooth``:     mean of ``g`` over ``n_samples`` noisy copies ``W(x + d)``, ``d ~ N(0, s^2)``,
  ``s = noise * (max(x_i) - min(x_i))`` per sample
- ``integrated``: ``(z - z0) * integral_0^1 g(z0 + a (z - z0)) da`` with ``z0 = W(x0)``, trapezoid rule over
  ``n_samples`` points including both ends.

Noisy copies and path points go into the batch dimension, ``batch_size`` rows at a time, so memory does not
grow with ``n_samples``. Noise draw ``j`` is the same standard-normal tensor for every sample (seeded from
``(seed, j)``) and scaled by each sample's own ``s``: the result does not depend on ``batch_size`` nor on the
other samples of the batch.

Example::

    >>> import torch
    >>> from torch import nn
    >>> from wam import WAM
    >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    >>> expl = WAM(model, ndim=2, method="smooth", n_samples=4)(torch.rand(2, 3, 32, 32), [1, 7])
    >>> expl.dyadic().shape, expl.scales().shape, expl.heatmap().shape
    (torch.Size([2, 32, 32]), torch.Size([2, 3, 32, 32]), torch.Size([2, 32, 32]))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from wam import transform
from wam.utils import as_targets, check_signal, check_targets_range, chunks, input_gradients_only

METHODS = ("gradient", "smooth", "integrated")
AGGREGATIONS = ("paper", "reference")
# Reference implementation defaults, per number of spatial dimensions.
DEFAULT_NOISE = {1: 0.001, 2: 0.25, 3: 0.0001}
DEFAULT_MODE = {1: "reflect", 2: "reflect", 3: "symmetric"}


def _band_magnitude(band: torch.Tensor) -> torch.Tensor:
    """``|mean over channels|`` of a band ``[B, C, *band]`` -> ``[B, *band]`` (the reference's reduction)."""
    return band.mean(1).abs()


def _safe_divide(maps: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
    """``maps / peak`` where ``peak > 0``, 0 elsewhere (a zero sub-band stays zero, never NaN)."""
    return torch.where(peak > 0, maps / peak.clamp_min(torch.finfo(maps.dtype).tiny), torch.zeros_like(maps))


def _per_sample_normalize(maps: torch.Tensor) -> torch.Tensor:
    peak = maps.flatten(1).amax(1).reshape(-1, *[1] * (maps.dim() - 1))
    return _safe_divide(maps, peak)


@dataclass
class Explanation:
    """WAM's output for a batch of ``B`` inputs of spatial size ``size``.

    ``grads`` and ``coeffs`` follow ptwt's nested coefficient structure, each tensor ``[B, C, *band]``.
    Maps are built from per-band magnitudes ``|mean_c attribution|``; with ``aggregation="reference"`` they
    are the reference implementation's maps (normalised by the maximum over the batch).
    """

    grads: transform.Coeffs
    coeffs: transform.Coeffs
    ndim: int
    wavelet: str
    size: tuple[int, ...]
    aggregation: str = "paper"
    squeeze_channel: bool = False
    reference_maps: list[torch.Tensor] | None = field(default=None, repr=False)

    @property
    def levels(self) -> int:
        return (len(transform.bands(self.coeffs)) - 1) // len(transform.level_keys(self.ndim))

    def band_maps(self, normalize: bool = True) -> list[torch.Tensor]:
        """Per-band importance maps ``[B, *band]`` in :func:`wam.transform.bands` order.

        ``normalize`` divides each band by its per-sample maximum (``aggregation="paper"``); reference maps are
        already normalised over the batch and are returned as they are.
        """
        if self.reference_maps is not None:
            return self.reference_maps
        maps = [_band_magnitude(b) for b in transform.bands(self.grads)]
        return [_per_sample_normalize(m) for m in maps] if normalize else maps

    def scale_shares(self, per_coefficient: bool = False) -> torch.Tensor:
        """How much of the attribution lies at each scale: ``[B, levels + 1]``, finest level first, the
        approximation last (:func:`wam.transform.level_names`); every row is >= 0 and sums to 1.

        The importance of a level is the sum of ``|mean_c attribution|`` over its coefficients (every detail band
        of the level; the approximation is its own scale), from the raw maps (``band_maps(normalize=False)``: the
        per-band normalised maps are for display only, they would erase the relative size of the levels). The
        share of a level is its importance over the sum of all (normalised per image, as the paper's robustness
        section). ``per_coefficient``: each level's importance is first divided by its number of coefficients
        (a finer level has ``2^ndim`` times more of them), then normalised to sum 1.

        ``ValueError`` for reference maps (already normalised over the batch) and for a sample whose attribution
        is zero everywhere (its shares are undefined).

        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
        >>> expl = WAM(model, ndim=2, method="gradient", levels=2)(torch.rand(2, 3, 16, 16), [1, 7])
        >>> shares = expl.scale_shares()
        >>> shares.shape, bool(torch.allclose(shares.sum(1), torch.ones(2)))
        (torch.Size([2, 3]), True)
        """
        if self.reference_maps is not None:
            raise ValueError("aggregation: scale shares need raw magnitudes; explain with aggregation='paper'")
        maps = self.band_maps(normalize=False)
        importance = transform.level_sums(maps, self.ndim)
        if per_coefficient:
            importance = importance / transform.level_sums([torch.ones_like(m[:1]) for m in maps], self.ndim)
        total = importance.sum(1, keepdim=True)
        if not (total > 0).all():
            bad = torch.nonzero(total[:, 0] <= 0).flatten().tolist()
            raise ValueError(f"grads: zero attribution for samples {bad}; their scale shares are undefined")
        return importance / total

    def dyadic(self, normalize: bool = True) -> torch.Tensor:
        """The tiled map ``[B, *size]``: approximation in the corner, then each level's details (octants)."""
        return transform.tile(self.band_maps(normalize), self.ndim, self.size)

    def scales(self, approx: bool = False, normalize: bool = True) -> torch.Tensor:
        """Per-level importance ``[B, levels (+1), *size]``, finest level first (approximation last).

        Level ``l``'s map is the sum of its detail bands' maps, each upsampled (linear / bilinear / trilinear,
        half-pixel centres) to the input size.
        """
        maps = self.band_maps(normalize)
        per_level = len(transform.level_keys(self.ndim))
        levels = []
        for start in range(len(maps) - per_level, 0, -per_level):  # finest first
            levels.append(sum(transform.resize(m.unsqueeze(1), self.size) for m in maps[start : start + per_level]))
        if approx:
            levels.append(transform.resize(maps[0].unsqueeze(1), self.size))
        return torch.cat(levels, dim=1)

    def heatmap(self, approx: bool = False, normalize: bool = True) -> torch.Tensor:
        """Pixel-domain map ``[B, *size]``: :meth:`scales` summed over levels."""
        return self.scales(approx=approx, normalize=normalize).sum(1)

    def filter(self, keep: float = 0.1) -> torch.Tensor:
        """The input rebuilt from its most important ``keep`` fraction of coefficients (per sample).

        Coefficients are ranked by ``|grads|`` over every band and channel; the others are set to zero
        (:func:`wam.transform.keep_top`; ``ValueError`` unless ``0 < keep <= 1``).
        Returns a tensor shaped like the explained input.
        """
        scores = [g.abs() for g in transform.bands(self.grads)]
        x = transform.keep_top(transform.bands(self.coeffs), scores, [keep], self.ndim, self.wavelet, self.size)[:, 0]
        return x[:, 0] if self.squeeze_channel else x


class WAM:
    """Wavelet Attribution Method for 1D (``ndim=1``), 2D and 3D inputs.

    Args:
        model: classifier returning logits ``[B, n_classes]`` (put it in ``eval()`` mode yourself).
        ndim: number of spatial dimensions of the inputs (1 audio, 2 images, 3 volumes).
        wavelet, levels, mode: the discrete wavelet transform (any ptwt wavelet and boundary mode;
            ``mode=None`` takes the reference default: ``reflect`` for 1D and 2D, ``symmetric`` for 3D).
        method: ``"gradient"``, ``"smooth"`` (WAM-SG) or ``"integrated"`` (WAM-IG).
        n_samples: noisy copies (smooth) or path points including both ends (integrated).
        noise: SmoothGrad spread as a fraction of each input's range; ``None`` takes the reference default
            (0.001 audio, 0.25 images, 0.0001 volumes).
        baseline: ``x0`` of the integrated path (tensor broadcastable to ``x``; ``None`` = zeros).
        aggregation: ``"paper"`` (the equations; maps normalised per sample) or ``"reference"`` (the
            reference implementation's maps: normalised by the maximum over the batch, smooth averaging
            normalised maps, integrated multiplying the normalised ``|z|`` map by the trapezoid integral
            with unit spacing of the normalised gradient maps).
        batch_size: rows (inputs x samples) sent through the model at once.
        seed: seed of the noise (a ``torch.Generator`` on the input's device).
        preprocess: applied to the rebuilt input before the model (e.g. waveform -> log-mel).
        progress: show a progress bar over the batches.
    """

    def __init__(
        self,
        model: nn.Module,
        ndim: int = 2,
        wavelet: str = "haar",
        levels: int = 3,
        mode: str | None = None,
        method: str = "smooth",
        n_samples: int = 25,
        noise: float | None = None,
        baseline: torch.Tensor | float | None = None,
        aggregation: str = "paper",
        batch_size: int = 64,
        seed: int = 42,
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        progress: bool = False,
    ) -> None:
        if ndim not in (1, 2, 3):
            raise ValueError(f"ndim: expected 1, 2 or 3, got {ndim!r}")
        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation: expected one of {AGGREGATIONS}, got {aggregation!r}")
        fewest = 2 if method == "integrated" else 1
        if not isinstance(n_samples, int) or n_samples < fewest:
            raise ValueError(f"n_samples: expected an integer >= {fewest}, got {n_samples!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
        self.model = model
        self.ndim = ndim
        self.wavelet = transform.check_wavelet(wavelet).name
        self.levels = levels
        self.mode = transform.check_mode(mode or DEFAULT_MODE[ndim])
        self.method = method
        self.n_samples = 1 if method == "gradient" else n_samples
        self.noise = DEFAULT_NOISE[ndim] if noise is None else float(noise)
        if self.noise < 0:
            raise ValueError(f"noise: expected a non-negative fraction of the input range, got {noise!r}")
        self.baseline = baseline
        self.aggregation = aggregation
        self.batch_size = batch_size
        self.seed = seed
        self.preprocess = preprocess
        self.progress = progress

    # -- public API -------------------------------------------------------------------------------

    def __call__(self, x: torch.Tensor, y: int | Sequence[int] | torch.Tensor) -> Explanation:
        """Explain ``x`` for classes ``y`` ``[B]``.

        ``x``: 1D ``[B, T]`` or ``[B, C, T]``; 2D ``[B, C, H, W]``; 3D ``[B, C, D, H, W]``.
        """
        squeeze = self.ndim == 1 and isinstance(x, torch.Tensor) and x.dim() == 2
        x = check_signal(x, self.ndim)
        if squeeze:
            x = x.unsqueeze(1)
        x = x.detach()
        size = tuple(x.shape[2:])
        transform.check_levels(self.levels, size, self.wavelet)
        y = as_targets(y, x.shape[0], x.device)
        x0 = self._baseline(x)
        z = transform.bands(transform.wavedec(x, self.ndim, self.wavelet, self.levels, self.mode))
        attribution, reference_maps = self._accumulate(x, y, x0, z)
        if self.method == "integrated":
            z0 = transform.bands(transform.wavedec(x0, self.ndim, self.wavelet, self.levels, self.mode))
            attribution = [(zi - z0i) * a for zi, z0i, a in zip(z, z0, attribution, strict=True)]
            if reference_maps is not None:
                delta = self._reference_normalize([_band_magnitude(zi - z0i) for zi, z0i in zip(z, z0, strict=True)])
                reference_maps = [d * m for d, m in zip(delta, reference_maps, strict=True)]
        return Explanation(
            grads=transform.unbands(attribution, self.ndim),
            coeffs=transform.unbands(z, self.ndim),
            ndim=self.ndim,
            wavelet=self.wavelet,
            size=size,
            aggregation=self.aggregation,
            squeeze_channel=squeeze,
            reference_maps=reference_maps,
        )

    def attribute(self, inputs: torch.Tensor, target: int | Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Captum-style entry point: the pixel-domain :meth:`Explanation.heatmap` ``[B, *spatial]``."""
        return self(inputs, target).heatmap()

    def path_baseline(self, x: torch.Tensor) -> torch.Tensor | None:
        """The start ``x0`` of the integrated path for inputs ``x`` (``method="integrated"``), else ``None``.

        Completeness: the attributions (:attr:`Explanation.grads`) of ``x`` sum to about
        ``f(x) - f(x0)`` (exactly as ``n_samples`` grows).
        """
        return self._baseline(x.detach()) if self.method == "integrated" else None

    # -- internals --------------------------------------------------------------------------------

    def _baseline(self, x: torch.Tensor) -> torch.Tensor:
        if self.baseline is None:
            return torch.zeros_like(x)
        x0 = torch.as_tensor(self.baseline, dtype=x.dtype, device=x.device)
        try:
            return torch.broadcast_to(x0, x.shape).clone()
        except RuntimeError as err:
            raise ValueError(f"baseline: expected a number or a tensor broadcastable to {tuple(x.shape)}, "
                             f"got shape {tuple(x0.shape)}") from err

    def _weights(self, device: torch.device) -> torch.Tensor:
        """Weight of each draw / path point in the paper's estimate (mean, or trapezoid rule on [0, 1])."""
        n = self.n_samples
        if self.method != "integrated":
            return torch.full((n,), 1.0 / n, device=device)
        w = torch.full((n,), 1.0 / (n - 1), device=device)
        w[0] = w[-1] = 0.5 / (n - 1)
        return w

    def _reference_weights(self, device: torch.device) -> torch.Tensor:
        """The reference's weights: mean over draws (smooth) or ``np.trapz`` with unit spacing (integrated)."""
        if self.method != "integrated":
            return torch.full((self.n_samples,), 1.0 / self.n_samples, device=device)
        return self._weights(device) * (self.n_samples - 1)

    def _noise(self, draw: int, shape: torch.Size, x: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator(device=x.device).manual_seed(self.seed * 1_000_003 + draw)
        return torch.randn(shape, generator=gen, device=x.device, dtype=x.dtype)

    def _rows_inputs(self, x: torch.Tensor, x0: torch.Tensor, draws: torch.Tensor, samples: torch.Tensor,
                     noises: dict[int, torch.Tensor]) -> torch.Tensor:
        """Pixel-domain inputs of rows ``(draw, sample)``: noisy copies, path points or the input itself."""
        xs = x[samples]
        if self.method == "smooth":
            spread = (x.flatten(1).amax(1) - x.flatten(1).amin(1)) * self.noise
            for d in draws.unique().tolist():
                if d not in noises:
                    noises[d] = self._noise(d, x.shape[1:], x)
            noise = torch.stack([noises[d] for d in draws.tolist()])
            return xs + spread[samples].reshape(-1, *[1] * (x.dim() - 1)) * noise
        if self.method == "integrated":
            alpha = torch.linspace(0, 1, self.n_samples, device=x.device, dtype=x.dtype)[draws]
            x0s = x0[samples]
            return x0s + alpha.reshape(-1, *[1] * (x.dim() - 1)) * (xs - x0s)
        return xs

    def _coefficient_gradients(self, inputs: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """``d f_y(W^-1(z)) / d z`` for a batch of pixel-domain inputs, per band ``[b, C, *band]``."""
        z = [b.detach().requires_grad_(True)
             for b in transform.bands(transform.wavedec(inputs, self.ndim, self.wavelet, self.levels, self.mode))]
        rebuilt = transform.waverec(transform.unbands(z, self.ndim), self.ndim, self.wavelet, inputs.shape[2:])
        if self.preprocess is not None:
            rebuilt = self.preprocess(rebuilt)
        logits = self.model(rebuilt)
        if logits.dim() != 2:
            raise ValueError(f"model: expected logits [B, n_classes], got shape {tuple(logits.shape)}")
        check_targets_range(y, logits.shape[1])
        return list(torch.autograd.grad(logits.gather(1, y[:, None]).sum(), z))

    def _accumulate(self, x: torch.Tensor, y: torch.Tensor, x0: torch.Tensor, z: list[torch.Tensor]
                    ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """Run every (draw, sample) row through the model; return the weighted gradient sums per band, and
        the reference maps when ``aggregation="reference"``."""
        n_inputs = x.shape[0]
        weights = self._weights(x.device)
        acc = [torch.zeros_like(b) for b in z]
        reference = self.aggregation == "reference"
        ref_weights = self._reference_weights(x.device)
        ref_acc = [x.new_zeros((n_inputs, *b.shape[2:])) for b in z] if reference else None
        pending: dict[int, list[list[torch.Tensor]]] = {}  # draw -> per-band magnitudes of its rows so far
        pending_rows: dict[int, int] = {}
        noises: dict[int, torch.Tensor] = {}
        total = n_inputs * self.n_samples
        bar = tqdm(total=total, disable=not self.progress, desc=f"WAM {self.method}", unit="row")
        with input_gradients_only(self.model), torch.enable_grad():
            for rows in chunks(total, self.batch_size):
                idx = torch.arange(rows.start, rows.stop, device=x.device)
                draws, samples = idx // n_inputs, idx % n_inputs
                grads = self._coefficient_gradients(self._rows_inputs(x, x0, draws, samples, noises), y[samples])
                w = weights[draws]
                for a, g in zip(acc, grads, strict=True):
                    a.index_add_(0, samples, g * w.reshape(-1, *[1] * (g.dim() - 1)))
                if reference:
                    self._collect_reference(draws, grads, pending, pending_rows, ref_acc, ref_weights, n_inputs)
                for d in [d for d in noises if d < int(draws[-1])]:
                    del noises[d]
                bar.update(rows.stop - rows.start)
        bar.close()
        return acc, ref_acc

    def _collect_reference(self, draws, grads, pending, pending_rows, ref_acc, ref_weights, n_inputs) -> None:
        """Gather each draw's rows; once a draw covers the whole batch, normalise its maps over the batch
        (the reference's quirk) and add them, weighted, to ``ref_acc``. Rows arrive in sample order."""
        magnitudes = [_band_magnitude(g) for g in grads]
        for d in draws.unique().tolist():
            sel = draws == d
            pending.setdefault(d, [[] for _ in magnitudes])
            for store, m in zip(pending[d], magnitudes, strict=True):
                store.append(m[sel])
            pending_rows[d] = pending_rows.get(d, 0) + int(sel.sum())
            if pending_rows[d] == n_inputs:
                maps = self._reference_normalize([torch.cat(s) for s in pending.pop(d)])
                del pending_rows[d]
                for a, m in zip(ref_acc, maps, strict=True):
                    a.add_(m * ref_weights[d])

    @staticmethod
    def _reference_normalize(maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each band divided by its maximum over the whole batch (zero bands stay zero)."""
        return [_safe_divide(m, m.amax()) for m in maps]


def quantus_explain(model: nn.Module, inputs, targets, **kwargs):
    """A Quantus ``explain_func``: numpy ``inputs`` ``[B, C, *spatial]`` -> numpy heatmap ``[B, 1, *spatial]``.

    Keyword arguments go to :class:`WAM` (``ndim`` defaults to ``inputs.ndim - 2``); ``device`` (Quantus
    passes it) selects where the computation runs.
    """
    import numpy as np

    device = kwargs.pop("device", None) or next(model.parameters()).device
    kwargs.setdefault("ndim", np.ndim(inputs) - 2)
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=device)
    y = torch.as_tensor(np.asarray(targets), device=device).long().reshape(-1)
    heatmap = WAM(model, **kwargs).attribute(x, y)
    return heatmap.unsqueeze(1).detach().cpu().numpy()
