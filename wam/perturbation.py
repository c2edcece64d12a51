"""Meaningful perturbation in the wavelet domain (Fong & Vedaldi, 2017, carried to ``z = W(x)``).

A mask ``m`` in ``[0, 1]`` over the wavelet coefficients ``z`` of an input is optimised with NAdam, starting
from ``m0 = 1`` (less a seeded ``1e-6``, below), for each penalty weight ``alpha``:

- ``game="preserve"``: minimise ``-f_c(W^-1(z * m)) + alpha * ||m||_1 / N`` (the smallest mask that keeps the
  class score);
- ``game="delete"``:   minimise ``f_c(W^-1(z * m)) + alpha * ||1 - m||_1 / N`` (the smallest removal that
  destroys it),

``f_c`` the model's logit of class ``c`` and ``N`` the number of coefficients of one input (every band and
channel: one mask value per coefficient). The mask is the parameter itself, projected onto the box after each
step (``m <- clamp(m, 0, 1)``: projected NAdam, no sigmoid), so ``||m||_1 = sum(m)`` and the box optimum of a
linear model is reached exactly: keep coefficient ``k`` (preserve) iff its contribution ``c_k = z_k d f / d z_k``
exceeds ``alpha / N``; delete it (delete game) iff ``c_k > alpha / N``.

Every ``(input, alpha)`` pair is one row of one batch: the rows are optimised together, ``batch_size`` rows at
a time, each on its own:

- its own loss: the gradient of row ``r`` is that of row ``r``'s objective alone (``grad_outputs`` of 1 per
  row, never a mean over the batch, which would scale the steps with the number of rows);
- its own mask values and NAdam state: NAdam is elementwise (momenta per coefficient), and its scalar state
  (step count, momentum product) is the same for every row, since all rows of a chunk start together;
- its own start and seed: ``m0 = 1`` (``seed=None``) or ``1 - JITTER * u`` seeded by ``(seed of the input,
  alpha)`` alone (:func:`initial_mask`).

So the batch size, the order of the rows and the other inputs change no arithmetic of the optimiser (tested
bitwise with the model called one row at a time). They can still change the model's own float rounding: a
convolution kernel may round a row differently alone and in a batch (oneDNN with several threads, cuDNN), or
on another number of threads or device. The optimisation amplifies such differences: NAdam normalises each
coefficient's step (a coefficient whose gradient is near zero moves by up to ``lr`` in the direction its
rounding picks) and the model is piecewise (ReLU6 kinks), so two runs that differ by float rounding alone,
or by a start ``1e-6`` away, end with visibly different masks after a few dozen steps. On EfficientNet-Lite0
(one 224 px image, alphas 0 to 100) the final logit at alpha 0 spreads over 35 to 46 at 40 steps (67 to 82 at
500) and the sparsity over up to 0.012 (0.024) across seeds, as much as between batch sizes 1 and 4 on two
threads; rows in another order at the same batch size give bitwise the same result. A result is therefore one
draw: report the mean and spread over a few seeds (each seed gives the same result at any batch size where the
model's kernels round a row alike, e.g. one CPU thread).

Example::

    >>> import torch
    >>> from torch import nn
    >>> from wam.perturbation import optimize_mask
    >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)).eval()
    >>> result = optimize_mask(model, torch.rand(2, 3, 32, 32), [1, 7], ndim=2, alphas=[0.0, 10.0], steps=20)
    >>> result.mask.shape, result.sparsity.shape, result.loss.shape        # N = 3 * 32 * 32 coefficients
    (torch.Size([2, 2, 3072]), torch.Size([2, 2]), torch.Size([20, 2, 2]))
    >>> result.minimal().shape, result.dyadic().shape, result.level_mass().shape
    (torch.Size([2, 2, 3, 32, 32]), torch.Size([2, 2, 32, 32]), torch.Size([2, 2, 4]))
"""

from __future__ import annotations

import hashlib
import math
import numbers
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from wam import transform
from wam.explainer import DEFAULT_MODE
from wam.utils import as_targets, check_signal, check_targets_range, chunks, input_gradients_only

GAMES = ("preserve", "delete")
JITTER = 1e-6
"""Size of the seeded start: ``m0 = 1 - JITTER * u``, ``u ~ U[0, 1)`` per coefficient (float rounding scale)."""


@dataclass
class MaskResult:
    """Optimised masks of ``B`` inputs for ``A`` penalty weights (rows ``[B, A]``).

    The masks are kept flat: ``mask[b, a]`` holds one value per coefficient of input ``b``, ``N`` of them, in
    :func:`wam.transform.bands` order (approximation, then each level's details, coarsest to finest; within a
    band channel-major, then the band's own layout). :meth:`bands`, :meth:`coefficients`, :meth:`minimal`,
    :meth:`level_mass` and :meth:`dyadic` give the other views.

    Attributes:
        mask: ``[B, A, N]`` the final masks, in ``[0, 1]``.
        coeffs: ``[B, N]`` the input's coefficients ``z`` (same order).
        shapes: ``(C, *band)`` of each band.
        alphas: ``[A]`` the penalty weights.
        logits: ``[B, A]`` final ``f_c(W^-1(z * m))``; ``probs`` ``[B, A]`` its softmax probability;
            ``predicted`` ``[B, A]`` the top-1 class of the masked input.
        sparsity: ``[B, A]`` fraction of coefficients with ``m < 0.5``.
        loss: ``[steps, B, A]`` the objective of every row before each NAdam step.
    """

    mask: torch.Tensor
    coeffs: torch.Tensor
    shapes: list[tuple[int, ...]]
    alphas: torch.Tensor
    logits: torch.Tensor
    probs: torch.Tensor
    predicted: torch.Tensor
    sparsity: torch.Tensor
    loss: torch.Tensor
    ndim: int
    wavelet: str
    size: tuple[int, ...]
    game: str
    squeeze_channel: bool = False

    @property
    def levels(self) -> int:
        return (len(self.shapes) - 1) // len(transform.level_keys(self.ndim))

    def bands(self) -> list[torch.Tensor]:
        """The masks per band ``[B, A, C, *band]`` in :func:`wam.transform.bands` order."""
        return transform.unflatten_bands(self.mask, self.shapes)

    def coefficients(self, alpha_index: int) -> transform.Coeffs:
        """The masks of penalty ``alphas[alpha_index]`` in ptwt's nested structure (tensors ``[B, C, *band]``)."""
        return transform.unbands([m[:, alpha_index] for m in self.bands()], self.ndim)

    def minimal(self) -> torch.Tensor:
        """The masked inputs ``W^-1(z * m)`` ``[B, A, C, *size]`` (1D inputs given as ``[B, T]``: ``[B, A, T]``)."""
        b, a, n = self.mask.shape
        masked = (self.coeffs[:, None] * self.mask).reshape(b * a, n)
        x = transform.waverec_flat(masked, self.shapes, self.wavelet, self.size)
        x = x.reshape(b, a, *x.shape[1:])
        return x[:, :, 0] if self.squeeze_channel else x

    def level_mass(self) -> torch.Tensor:
        """Mean mask per level ``[B, A, levels + 1]``: ``sum of m over the level's coefficients / their number``
        (every detail band and channel of the level), finest level first, the approximation last."""
        b, a, _ = self.mask.shape
        rows = [m.flatten(0, 1) for m in self.bands()]  # [B A, C, *band]
        sums = transform.level_sums(rows, self.ndim)
        counts = transform.level_sums([torch.ones_like(m[:1]) for m in rows], self.ndim)
        return (sums / counts).reshape(b, a, -1)

    def dyadic(self) -> torch.Tensor:
        """The masks tiled like WAM's dyadic map ``[B, A, *size]`` (mean over channels, no normalisation)."""
        b, a = self.mask.shape[:2]
        maps = [m.mean(2).reshape(b * a, *m.shape[3:]) for m in self.bands()]
        tiled = transform.tile(maps, self.ndim, self.size)
        return tiled.reshape(b, a, *tiled.shape[1:])


def row_seed(seed: int, alpha: float) -> int:
    """The generator seed of the row (sample seeded ``seed``, penalty ``alpha``): a 63-bit hash of the pair.

    It depends on nothing else (not the row's position, its chunk, the other alphas or the other samples).

    >>> row_seed(42, 20.0) == row_seed(42, 20.0), row_seed(42, 20.0) == row_seed(42, 5.0)
    (True, False)
    """
    digest = hashlib.blake2b(struct.pack("<qd", int(seed), float(alpha)), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def initial_mask(n: int, seed: int | None, alpha: float, like: torch.Tensor) -> torch.Tensor:
    """The start ``m0`` ``[n]`` of one row (``like``'s dtype and device): ``1`` for ``seed=None``, otherwise
    ``1 - JITTER * u`` with ``u ~ U[0, 1)`` drawn from a ``torch.Generator`` on ``like``'s device seeded with
    :func:`row_seed` ``(seed, alpha)``.

    >>> m0 = initial_mask(5, 42, 20.0, torch.zeros(1))
    >>> bool((m0 <= 1).all() and (m0 >= 1 - JITTER).all()), torch.equal(m0, initial_mask(5, 42, 20.0, m0))
    (True, True)
    >>> initial_mask(3, None, 20.0, torch.zeros(1))
    tensor([1., 1., 1.])
    """
    if seed is None:
        return torch.ones(n, dtype=like.dtype, device=like.device)
    gen = torch.Generator(device=like.device).manual_seed(row_seed(seed, alpha))
    return 1 - JITTER * torch.rand(n, generator=gen, dtype=like.dtype, device=like.device)


def _check_seeds(seed: int | Sequence[int] | torch.Tensor | None, n_inputs: int) -> list[int | None]:
    """One seed per sample: ``None`` for all, an int for all, or ``n_inputs`` ints."""
    def valid(s: object) -> bool:
        return isinstance(s, numbers.Integral) and not isinstance(s, bool) and -(2**63) <= int(s) < 2**63

    if seed is None:
        return [None] * n_inputs
    if valid(seed):
        return [int(seed)] * n_inputs
    values = seed.tolist() if isinstance(seed, torch.Tensor) else seed
    if not isinstance(values, (list, tuple)) or len(values) != n_inputs or not all(valid(s) for s in values):
        raise ValueError(f"seed: expected None, an int, or {n_inputs} ints (one per input), got {seed!r}")
    return [int(s) for s in values]


def _check_alphas(alphas: Sequence[float] | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    try:
        values = torch.as_tensor(alphas, dtype=like.dtype, device=like.device).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"alphas: expected a sequence of non-negative numbers, got {alphas!r}") from err
    if values.numel() == 0:
        raise ValueError("alphas: expected at least one penalty weight, got an empty sequence")
    if not torch.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"alphas: expected finite non-negative numbers, got {values.tolist()}")
    return values


def optimize_mask(
    model: nn.Module,
    x: torch.Tensor,
    y: int | Sequence[int] | torch.Tensor,
    ndim: int,
    alphas: Sequence[float] | torch.Tensor,
    steps: int = 500,
    lr: float = 0.1,
    game: str = "preserve",
    wavelet: str = "haar",
    levels: int = 3,
    mode: str | None = None,
    batch_size: int = 64,
    seed: int | Sequence[int] | torch.Tensor | None = 42,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False,
) -> MaskResult:
    """Optimise a wavelet-domain mask for every ``(input, alpha)`` pair (see the module docstring).

    Args:
        model: classifier returning logits ``[R, n_classes]`` (put it in ``eval()`` mode yourself); its
            parameters never get gradients.
        x: 1D ``[B, T]`` or ``[B, C, T]``; 2D ``[B, C, H, W]``; 3D ``[B, C, D, H, W]``.
        y: class indices ``[B]`` (or one int for all).
        ndim: number of spatial dimensions (1, 2 or 3).
        alphas: ``A`` non-negative penalty weights (the paper sweeps [0, 100]).
        steps: NAdam steps (the paper: 500); ``lr`` its learning rate.
        game: ``"preserve"`` or ``"delete"``.
        wavelet, levels, mode: the transform, as in :class:`wam.WAM` (``mode=None``: ``reflect`` for 1D and 2D,
            ``symmetric`` for 3D).
        batch_size: rows (inputs x alphas) optimised at once (memory and speed only: each row is optimised on
            its own, see the module docstring).
        seed: the start of each row: ``None`` starts every row at ``m0 = 1`` exactly; an int (every input) or
            one int per input starts row ``(b, alpha)`` at :func:`initial_mask` ``(seed_b, alpha)`` =
            ``1 - JITTER * u`` (``JITTER = 1e-6``, ``u`` uniform, seeded by the pair alone). A perturbation of
            the size of float rounding: runs with different seeds sample the spread that rounding alone
            (another batch size, thread count or device) gives the result.
        preprocess: applied to the rebuilt input before the model (e.g. waveform -> log-mel), as in WAM.
        progress: show a progress bar over row-steps.

    Returns:
        :class:`MaskResult` (masks ``[B, A, N]``, final logits / probabilities / top-1 ``[B, A]``, sparsity
        ``[B, A]``, loss trace ``[steps, B, A]``).

    Example (one seed per input; the batch size changes nothing beyond the model's rounding)::

        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 10)).eval()
        >>> x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> run = lambda **kw: optimize_mask(model, x, [1, 7, 2], ndim=2, alphas=[0.0, 10.0], steps=5, **kw)
        >>> one, six = run(batch_size=1, seed=[0, 1, 2]), run(batch_size=6, seed=[0, 1, 2])
        >>> bool((one.mask - six.mask).abs().max() < 1e-4)
        True
        >>> alone = optimize_mask(model, x[2:], [2], ndim=2, alphas=[10.0], steps=5, seed=2)  # input 2 alone
        >>> bool((alone.mask[0, 0] - six.mask[2, 1]).abs().max() < 1e-4)
        True
        >>> start = run(seed=None).loss[0] - run(seed=0).loss[0]      # the starts differ by at most 1e-6
        >>> bool(start.abs().max() < 1e-4)
        True
    """
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim: expected 1, 2 or 3, got {ndim!r}")
    if game not in GAMES:
        raise ValueError(f"game: expected one of {GAMES}, got {game!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected an integer >= 1, got {steps!r}")
    if not isinstance(lr, (int, float)) or not lr > 0 or not math.isfinite(lr):
        raise ValueError(f"lr: expected a positive learning rate, got {lr!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    squeeze = ndim == 1 and isinstance(x, torch.Tensor) and x.dim() == 2
    x = check_signal(x, ndim)
    x = (x.unsqueeze(1) if squeeze else x).detach()
    alpha = _check_alphas(alphas, x)
    wavelet = transform.check_wavelet(wavelet).name
    mode = transform.check_mode(mode or DEFAULT_MODE[ndim])
    size = tuple(x.shape[2:])
    transform.check_levels(levels, size, wavelet)
    n_inputs, n_alphas = x.shape[0], alpha.numel()
    y = as_targets(y, n_inputs, x.device)
    seeds = _check_seeds(seed, n_inputs)

    z_bands = transform.bands(transform.wavedec(x, ndim, wavelet, levels, mode))
    z, shapes = transform.flatten_bands(z_bands)  # [B, N]
    total = n_inputs * n_alphas  # row r = (input r // A, alpha r % A)
    mask = z.new_empty(total, z.shape[1])
    logits, probs = z.new_empty(total), z.new_empty(total)
    predicted = torch.empty(total, dtype=torch.long, device=x.device)
    loss = z.new_empty(steps, total)
    sign = -1.0 if game == "preserve" else 1.0

    def class_logits(m: torch.Tensor, zr: torch.Tensor) -> torch.Tensor:
        rebuilt = transform.waverec_flat(zr * m, shapes, wavelet, size)
        out = model(preprocess(rebuilt) if preprocess is not None else rebuilt)
        if out.dim() != 2:
            raise ValueError(f"model: expected logits [B, n_classes], got shape {tuple(out.shape)}")
        return out

    bar = tqdm(total=total * steps, disable=not progress, desc=f"mask ({game})", unit="row-step")
    with input_gradients_only(model), torch.enable_grad():
        for rows in chunks(total, batch_size):
            idx = torch.arange(rows.start, rows.stop, device=x.device)
            zr, yr, ar = z[idx // n_alphas], y[idx // n_alphas], alpha[idx % n_alphas]
            m = torch.stack([initial_mask(z.shape[1], seeds[r // n_alphas], float(alpha[r % n_alphas]), z)
                             for r in range(rows.start, rows.stop)]).requires_grad_(True)
            # one parameter [R, N], but every row on its own: NAdam is elementwise and its scalar state
            # (step, momentum product) is the same for every row, all rows of a chunk starting together
            optimizer = torch.optim.NAdam([m], lr=lr)
            for step in range(steps):
                out = class_logits(m, zr)
                if step == 0:
                    check_targets_range(yr, out.shape[1])
                penalty = m.mean(1) if game == "preserve" else (1 - m).mean(1)  # ||.||_1 / N (m in [0, 1])
                objective = sign * out.gather(1, yr[:, None])[:, 0] + ar * penalty
                # each row's own loss (grad_outputs 1 per row: never a mean, which would scale the steps by R)
                (m.grad,) = torch.autograd.grad(objective, m, grad_outputs=torch.ones_like(objective))
                optimizer.step()
                with torch.no_grad():
                    m.clamp_(0.0, 1.0)
                loss[step, rows] = objective.detach()
                bar.update(rows.stop - rows.start)
            with torch.no_grad():
                out = class_logits(m, zr)
                logits[rows] = out.gather(1, yr[:, None])[:, 0]
                probs[rows] = out.softmax(1).gather(1, yr[:, None])[:, 0]
                predicted[rows] = out.argmax(1)
                mask[rows] = m.detach()
    bar.close()
    if not torch.isfinite(logits).all():
        raise ValueError("model: returned non-finite logits for a masked input")
    shape = (n_inputs, n_alphas)
    return MaskResult(
        mask=mask.reshape(*shape, -1), coeffs=z, shapes=shapes, alphas=alpha, logits=logits.reshape(shape),
        probs=probs.reshape(shape), predicted=predicted.reshape(shape),
        sparsity=(mask < 0.5).to(z.dtype).mean(1).reshape(shape), loss=loss.reshape(steps, *shape),
        ndim=ndim, wavelet=wavelet, size=size, game=game, squeeze_channel=squeeze)
