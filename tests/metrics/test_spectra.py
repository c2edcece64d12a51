"""Faithfulness of Spectra and Input Fidelity: oracles on analytic models (pixel and wavelet domains, 1D, 2D,
3D), equivalence with the deletion / insertion curves at ``steps=2``, protocol options passed through, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import metrics
from metrics import protocols
from wam import transform

FF, FID = "faithfulness_of_spectra", "input_fidelity"


class MaskedSum(nn.Module):
    """Two logits ``[scale * sum(x over positions where mask), 0.05]``: the output depends only on ``mask``;
    an input whose masked positions are all 0 is class 1."""

    def __init__(self, mask: torch.Tensor, scale: float = 0.3) -> None:
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.scale * (x.sum(1) * self.mask).flatten(1).sum(1)
        return torch.stack([v, torch.full_like(v, 0.05)], dim=1)


class LowPass(nn.Module):
    """Two logits from the sums of neighbouring samples of a ``[B, T]`` waveform, i.e. from the level-1 Haar
    approximation alone (the detail coefficients do not move it)."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.register_buffer("w", torch.linspace(0.2, 1.0, length // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = ((x[:, 0::2] + x[:, 1::2]) * self.w).sum(1)
        return torch.stack([v, torch.zeros_like(v)], dim=1)


def _softmax0(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).softmax(1)[:, 0]


@pytest.mark.parametrize("spatial", [(16,), (6, 8), (4, 4, 6)])
def test_a_model_of_the_top_half_gives_the_full_drop_and_fid_in_one(spatial):
    gen = torch.Generator().manual_seed(0)
    n = torch.Size(spatial).numel()
    ranking = torch.randperm(n, generator=gen).float()                  # distinct scores
    top = (ranking >= n / 2).reshape(spatial)                            # the top-ranked half
    model = MaskedSum(top)
    x = torch.rand(3, 2, *spatial, generator=gen) + 0.1                  # positive: class 0 on x
    attribution = ranking.reshape(spatial).expand(3, *spatial)
    ff = metrics.get(FF)(model, x, 0, attribution)
    expected = _softmax0(model, x) - _softmax0(model, torch.zeros_like(x))  # removed = baseline 0
    torch.testing.assert_close(ff, expected)
    assert (ff > 0.1).all()
    assert metrics.get(FID)(model, x, 0, attribution).tolist() == [1.0, 1.0, 1.0]
    # the reversed ranking removes the half the model ignores: no drop
    reversed_ff = metrics.get(FF)(model, x, 0, -attribution)
    assert reversed_ff.abs().max() < 1e-6
    # restricted to the ignored half, the input reads as "all removed": class 1, not x's class 0
    assert metrics.get(FID)(model, x, 0, -attribution).tolist() == [0.0, 0.0, 0.0]


def test_wavelet_domain_oracle_on_the_approximation():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 32, generator=gen) + 0.05
    model = LowPass(32)
    coeffs = transform.wavedec(x.unsqueeze(1), 1, "haar", 1, "reflect")   # [approx (half), detail (half)]
    ranked = [torch.full_like(coeffs[0], 2.0) + torch.rand(coeffs[0].shape, generator=gen),
              torch.rand(coeffs[1].shape, generator=gen)]                # approximation ranked first
    options = {"domain": "wavelet", "levels": 1}
    ff = metrics.get(FF)(model, x, 0, ranked, **options)
    expected = _softmax0(model, x) - _softmax0(model, torch.zeros_like(x))
    torch.testing.assert_close(ff, expected, atol=1e-5, rtol=1e-5)
    assert metrics.get(FID)(model, x, 0, ranked, **options).tolist() == [1.0, 1.0]
    reversed_ff = metrics.get(FF)(model, x, 0, [-c for c in ranked], **options)
    assert reversed_ff.abs().max() < 1e-5


@pytest.mark.parametrize("domain", ["pixel", "wavelet"])
@pytest.mark.parametrize("protocol", ["reference", "clean"])
def test_equal_to_the_curves_at_two_steps(domain, protocol):
    gen = torch.Generator().manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 5)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    x, options = protocols.setup(protocol, "images", domain, torch.rand(4, 3, 16, 16, generator=gen))
    attribution = torch.rand(4, 16, 16, generator=gen)
    y = torch.tensor([0, 1, 2, 3])
    common = {"domain": domain, "batch_size": 3, **options}
    dele = metrics.deletion(model, x, y, attribution, steps=2, **common).probs
    torch.testing.assert_close(metrics.get(FF)(model, x, y, attribution, **common), dele[:, 0] - dele[:, 1])
    post = options["postprocess"] or (lambda t: t)
    predicted = model(post(x)).argmax(1)
    ins = metrics.insertion(model, x, predicted, attribution, steps=2, score="top1", **common).probs
    fid = metrics.get(FID)(model, x, y, attribution, **common)
    torch.testing.assert_close(fid, ins[:, 1])
    assert set(fid.tolist()) <= {0.0, 1.0}
    # independent of the batch size and of the other inputs of the batch
    torch.testing.assert_close(metrics.get(FF)(model, x[1:2], y[1:2], attribution[1:2], **common),
                               metrics.get(FF)(model, x, y, attribution, **common)[1:2])


def test_registered_and_bad_input():
    assert {FF, FID} <= set(metrics.available())
    model = MaskedSum(torch.ones(8, dtype=torch.bool))
    x, a = torch.rand(2, 1, 8), torch.rand(2, 8)
    for bad in (0, 0.0, -0.1, 1.5, True, "half", None):
        for name in (FF, FID):
            with pytest.raises(ValueError, match="fraction"):
                metrics.get(name)(model, x, 0, a, fraction=bad)
    with pytest.raises(ValueError, match="steps"):
        metrics.get(FF)(model, x, 0, a, steps=4)
    with pytest.raises(ValueError, match="fractions"):
        metrics.get(FID)(model, x, 0, a, fractions=[0.5])
    with pytest.raises(ValueError, match="score"):
        metrics.get(FID)(model, x, 0, a, score="softmax")
    with pytest.raises(ValueError, match="domain"):
        metrics.get(FF)(model, x, 0, a, domain="fourier")
    with pytest.raises(ValueError, match="attribution"):
        metrics.get(FF)(model, x, 0, torch.rand(2, 5))
    assert metrics.get(FF)(model, x, 0, a, fraction=1).shape == (2,)
