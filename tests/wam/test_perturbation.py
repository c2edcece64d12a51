"""Meaningful perturbation in the wavelet domain (``wam.perturbation.optimize_mask``): known answers.

Linear model ``f = <w, W^-1(z * m)> + b``: the objective is linear in ``m``, so its box optimum is closed-form.
With contributions ``c_k = z_k * d f / d z_k`` (WAM's gradient times the coefficient), the preserve game
``min -f + alpha * mean(m)`` keeps ``m_k = 1`` iff ``c_k > alpha / N`` and drops it otherwise; the delete game
``min f + alpha * mean(1 - m)`` removes ``m_k = 0`` iff ``c_k > alpha / N``. ``alpha = 0`` keeps every positive
contribution; a large alpha keeps only the top ones.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests import models
from wam import WAM, transform
from wam.perturbation import JITTER, initial_mask, optimize_mask

STEPS, LR = 40, 0.1  # constant gradients: NAdam moves ~LR per step, so 1 -> 0 takes ~10 steps


def _contributions(model, x, y, ndim, levels, mode, preprocess=None) -> torch.Tensor:
    """``c = z * d f_y / d z`` ``[B, N]`` in bands order, from WAM's plain gradient."""
    expl = WAM(model, ndim=ndim, method="gradient", levels=levels, mode=mode, preprocess=preprocess)(x, y)
    grads, coeffs = transform.bands(expl.grads), transform.bands(expl.coeffs)
    return torch.cat([(g * z).flatten(1) for g, z in zip(grads, coeffs, strict=True)], dim=1)


CASES = {  # ndim -> (input, levels, mode, preprocess)
    1: (lambda g: torch.randn(2, 64, generator=g), 3, "reflect", lambda s: 3.0 * s.flip(-1)),
    2: (lambda g: torch.randn(2, 3, 16, 16, generator=g), 2, "reflect", None),
    3: (lambda g: torch.randn(2, 1, 8, 8, 8, generator=g), 2, "symmetric", None),
}


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("game", ["preserve", "delete"])
@pytest.mark.parametrize("seed", [None, 42])
def test_linear_model_reaches_the_closed_form_box_optimum(ndim, game, seed):
    make, levels, mode, preprocess = CASES[ndim]
    x = make(torch.Generator().manual_seed(ndim))
    channels = 1 if x.dim() == 2 else x.shape[1]
    model = models.linear_model((channels, *x.shape[-ndim:]))
    y = torch.tensor([0, 2])
    c = _contributions(model, x, y, ndim, levels, mode, preprocess)
    n = c.shape[1]
    top = c.sort(dim=1, descending=True).values
    # alpha = 0, and a large alpha with its threshold alpha / N halfway between the 5th and 6th contribution
    large = (0.5 * (top[:, 4] + top[:, 5]) * n).tolist()
    result = optimize_mask(model, x, y, ndim, alphas=[0.0, *large], steps=STEPS, lr=LR, game=game, levels=levels,
                           mode=mode, preprocess=preprocess, seed=seed)
    for i in range(2):
        for j, alpha in enumerate([0.0, *large]):
            keep = c[i] > alpha / n
            expected = keep if game == "preserve" else ~keep
            torch.testing.assert_close(result.mask[i, j], expected.float(), atol=1e-6, rtol=0)
    keep_top = result.mask[0, 1] > 0.5 if game == "preserve" else result.mask[0, 1] < 0.5
    assert set(keep_top.nonzero()[:, 0].tolist()) == set(c[0].topk(5).indices.tolist())
    # alpha = 0 (preserve): every positive contribution kept, every negative one dropped
    if game == "preserve":
        assert torch.equal(result.mask[:, 0] > 0.5, c > 0)
    # sparsity, the final logit and the loss trace agree with the closed form
    torch.testing.assert_close(result.sparsity, (result.mask < 0.5).float().mean(2))
    with torch.no_grad():
        inputs = result.minimal().reshape(-1, *result.minimal().shape[2:])
        logits = model(preprocess(inputs) if preprocess else inputs).reshape(2, 3, -1)
    torch.testing.assert_close(result.logits, logits.gather(2, y[:, None, None].expand(2, 3, 1))[..., 0])
    torch.testing.assert_close(result.probs, logits.softmax(2).gather(2, y[:, None, None].expand(2, 3, 1))[..., 0])
    with torch.no_grad():
        f_x = model(preprocess(x) if preprocess else x).gather(1, y[:, None])
    sign = -1.0 if game == "preserve" else 1.0
    alphas = torch.tensor([[0.0, *large]] * 2)
    m0 = torch.stack([torch.stack([initial_mask(n, seed, a, c) for a in result.alphas.tolist()])] * 2)
    assert ((m0 == 1).all() if seed is None else (m0 >= 1 - JITTER).all() and (m0 < 1).any())
    first_penalty = m0.mean(2) if game == "preserve" else (1 - m0).mean(2)
    torch.testing.assert_close(result.loss[0], sign * f_x.expand(2, 3) + alphas * first_penalty, atol=1e-4, rtol=1e-5)
    assert result.loss.shape == (STEPS, 2, 3)
    assert (result.loss[-1] <= result.loss[0] + 1e-4).all()


class OneCoefficient(nn.Module):
    """Class 0's logit is ``scale * z_j``, one wavelet coefficient of the input; class 1's is 0."""

    def __init__(self, band: int, index: tuple[int, ...], scale: float) -> None:
        super().__init__()
        self.band, self.index, self.scale = band, index, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = transform.bands(transform.wavedec(x, 2, "haar", 2, "reflect"))[self.band]
        value = self.scale * z[(slice(None), *self.index)]
        return torch.stack([value, torch.zeros_like(value)], dim=1)


def test_a_model_of_one_coefficient_keeps_that_coefficient_alone():
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    band, index = 2, (1, 3, 2)  # level 2 (coarsest) vertical detail, channel 1
    z = transform.bands(transform.wavedec(x, 2, "haar", 2, "reflect"))
    model = OneCoefficient(band, index, scale=5.0 * float(z[band][(0, *index)].sign())).eval()
    result = optimize_mask(model, x, 0, ndim=2, alphas=[1.0, 10.0], steps=STEPS, lr=LR, levels=2)
    expected = [torch.zeros_like(b) for b in z]
    expected[band][(0, *index)] = 1.0
    for mask, want in zip(result.bands(), expected, strict=True):
        for j in range(2):
            torch.testing.assert_close(mask[:, j], want, atol=1e-6, rtol=0)
    n = sum(b.numel() for b in z)
    torch.testing.assert_close(result.sparsity, torch.full((1, 2), (n - 1) / n))
    # level mass: 1 / (coefficients of level 2) at level 2, zero elsewhere (finest first, approximation last)
    level2 = sum(b.numel() for b in z[1:4])
    torch.testing.assert_close(result.level_mass()[0, 0], torch.tensor([0.0, 1.0 / level2, 0.0]))
    # the ptwt view holds the same masks
    assert transform.bands(result.coefficients(1))[band][(0, *index)] == 1.0


class RowByRow(nn.Module):
    """``model`` called on one row at a time: its float rounding cannot depend on the batch size, so any
    difference between batch sizes would come from the optimiser."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model(row[None]) for row in x])


def test_the_result_does_not_depend_on_batch_size_nor_on_the_other_inputs(image_model, image_batch):
    """Each row (input, alpha) is optimised on its own: the chunking, the order of the alphas and the other inputs
    change nothing, bitwise, where the model rounds a row alike at every batch size (RowByRow)."""
    x, y = image_batch
    model = RowByRow(image_model)
    kwargs = dict(ndim=2, steps=6, lr=0.05, seed=[3, 4, 5])
    alphas = [0.0, 20.0, 200.0]
    names = ("mask", "logits", "probs", "predicted", "sparsity", "loss")
    whole = optimize_mask(model, x, y, alphas=alphas, batch_size=9, **kwargs)
    for batch_size in (4, 2, 1):
        part = optimize_mask(model, x, y, alphas=alphas, batch_size=batch_size, **kwargs)
        for name in names:
            assert torch.equal(getattr(part, name), getattr(whole, name)), (batch_size, name)
    reverse = optimize_mask(model, x, y, alphas=alphas[::-1], batch_size=4, **kwargs)
    for name in names:
        assert torch.equal(getattr(reverse, name).flip(2 if name == "loss" else 1), getattr(whole, name)), name
    alone = optimize_mask(model, x[1:2], y[1:2], alphas=alphas[1:], batch_size=9,
                          **{**kwargs, "seed": 4})  # input 1's seed; alphas 20 and 200 only
    for name in names:
        mine, theirs = (getattr(alone, name), getattr(whole, name)[..., 1:2, 1:, :] if name == "mask"
                        else getattr(whole, name)[..., 1:2, 1:])
        assert torch.equal(mine, theirs), name
    assert (whole.mask.amin() >= 0) and (whole.mask.amax() <= 1)
    assert whole.dyadic().shape == (3, 3, *x.shape[2:])


def test_the_plain_tiny_model_differs_across_batch_sizes_by_its_rounding_only(image_model, image_batch):
    """Called on the whole chunk, the model's convolution may round a row differently at another batch size:
    over a few steps the results stay within 1e-5."""
    x, y = image_batch
    kwargs = dict(ndim=2, alphas=[0.0, 20.0, 200.0], steps=6, lr=0.05)
    whole = optimize_mask(image_model, x, y, batch_size=9, **kwargs)
    for batch_size in (4, 1):
        part = optimize_mask(image_model, x, y, batch_size=batch_size, **kwargs)
        for name in ("mask", "logits", "probs", "sparsity", "loss"):
            torch.testing.assert_close(getattr(part, name), getattr(whole, name), atol=1e-5, rtol=1e-5)


def test_the_seed_sets_each_rows_start_and_nothing_else(image_model, image_batch):
    x, y = image_batch
    kwargs = dict(ndim=2, alphas=[0.0, 20.0], steps=3, lr=0.05)
    first = optimize_mask(image_model, x, y, seed=7, **kwargs)
    again = optimize_mask(image_model, x, y, seed=[7, 7, 7], **kwargs)  # an int is the seed of every input
    for name in ("mask", "logits", "loss"):
        assert torch.equal(getattr(first, name), getattr(again, name)), name
    other = optimize_mask(image_model, x, y, seed=8, **kwargs)
    plain = optimize_mask(image_model, x, y, seed=None, **kwargs)
    assert not torch.equal(other.mask, first.mask) and not torch.equal(plain.mask, first.mask)
    # the starts differ by at most JITTER: the first loss (before any step) moves by rounding only
    for result in (other, plain):
        torch.testing.assert_close(result.loss[0], first.loss[0], atol=1e-4, rtol=1e-5)
    # row (b, alpha)'s start depends on (seed_b, alpha) alone
    z = first.coeffs
    starts = {(s, a): initial_mask(z.shape[1], s, a, z) for s in (7, 8) for a in (0.0, 20.0)}
    assert len({tuple(m[:8].tolist()) for m in starts.values()}) == 4
    assert all((m <= 1).all() and (m >= 1 - JITTER).all() and (m < 1).any() for m in starts.values())
    assert torch.equal(initial_mask(z.shape[1], None, 20.0, z), torch.ones_like(z[0]))


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"alphas": []}, "alphas"),
    ({"alphas": [1.0, -0.5]}, "alphas"),
    ({"steps": 0}, "steps"),
    ({"game": "keep"}, "game"),
    ({"seed": 1.5}, "seed"),
    ({"seed": [1, 2]}, "seed"),
])
def test_bad_input_raises_a_value_error_naming_the_argument(image_model, image_batch, kwargs, name):
    x, y = image_batch
    args = {"ndim": 2, "alphas": [1.0], "steps": 2, **kwargs}
    with pytest.raises(ValueError, match=f"^{name}:"):
        optimize_mask(image_model, x, y, **args)
