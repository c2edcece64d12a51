"""Insertion / deletion / faithfulness: oracles, shapes in 1D / 2D / 3D, batch invariance, errors."""

from __future__ import annotations

import pytest
import torch

import metrics
from metrics.curves import Curve
from tests import models
from tests.metrics.helpers import MinOverModel, Recording, SumModel
from wam import transform


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- AUC


def test_auc_paper_and_trapezoid_formulas():
    p = torch.tensor([[0.2, 0.4, 0.8, 0.4], [0.0, 0.0, 0.0, 0.0], [0.0, 1 / 3, 2 / 3, 1.0]])
    c = Curve(p)
    assert torch.allclose(c.fractions, torch.tensor([0.0, 1 / 3, 2 / 3, 1.0]))
    paper = c.auc("paper")
    assert torch.allclose(paper[0], torch.tensor(1.8 / (0.8 * 4)))
    assert paper[1] == 0 and not torch.isnan(paper).any()  # max == 0 -> 0, never NaN
    trap = c.auc("trapezoid")
    assert torch.allclose(trap[2], torch.tensor(0.5))
    assert trap[1] == 0


def test_unknown_auc_kind():
    with pytest.raises(ValueError, match="auc"):
        Curve(torch.rand(2, 5)).auc("simpson")


# --------------------------------------------------------------------------- oracles


def test_collapsing_model_deletion_auc_near_zero():
    """The score drops to 0 as soon as any top-ranked feature is removed."""
    x = 1 + torch.rand(2, 3, 8, 8, generator=_gen(0))
    top = torch.tensor([5, 17, 40, 63])
    attribution = torch.rand(2, 64, generator=_gen(1))
    attribution[:, top] += 10
    attribution = attribution.view(2, 8, 8)
    model = MinOverModel(top)
    steps = 16
    d = metrics.deletion(model, x, 0, attribution, steps=steps, score="logit")
    fx = model(x)[:, 0]
    assert torch.allclose(d.probs[:, 0], fx)
    assert (d.probs[:, 1:] == 0).all()
    assert torch.allclose(d.auc("paper"), torch.full((2,), 1 / (steps + 1)))
    assert (d.auc("paper") < 0.06).all()
    # insertion: score 0 until every top feature is back, f(x) from then on (|top| = 4 = N / steps)
    i = metrics.insertion(model, x, 0, attribution, steps=steps, score="logit")
    assert (i.probs[:, 0] == 0).all()
    assert torch.allclose(i.probs[:, 1:], fx[:, None].expand(2, steps))
    # AOPC (the README's worked example): mean drop = f(x) * steps / (steps + 1)
    assert torch.allclose(metrics.get("aopc")(model, x, 0, attribution, steps=steps, score="logit"),
                          fx * steps / (steps + 1))


@pytest.mark.parametrize("domain", ["pixel", "wavelet"])
def test_end_points_are_f_of_x(image_model, image_batch, domain):
    x, y = image_batch
    attribution = torch.randn(3, 32, 32, generator=_gen(2))
    fx = image_model(x).softmax(1)[torch.arange(3), y].detach()
    ins = metrics.insertion(image_model, x, y, attribution, domain=domain, steps=8, batch_size=10)
    dele = metrics.deletion(image_model, x, y, attribution, domain=domain, steps=8, batch_size=10)
    assert ins.probs.shape == dele.probs.shape == (3, 9)
    assert torch.allclose(ins.probs[:, -1], fx, atol=1e-6)
    assert torch.allclose(dele.probs[:, 0], fx, atol=1e-6)
    # both fully removed ends see the same input
    assert torch.allclose(ins.probs[:, 0], dele.probs[:, -1], atol=1e-6)


def test_pixel_rows_remove_top_positions_in_rank_order():
    """Row k has exactly the (k N) // steps top positions at the baseline, all channels together."""
    x = 1 + torch.rand(2, 2, 4, 5, generator=_gen(3))
    attribution = torch.randn(2, 2, 4, 5, generator=_gen(4))  # summed over channels to rank
    model = Recording(SumModel())
    steps = 6
    metrics.deletion(model, x, 0, attribution, steps=steps, baseline=-1.0, score="logit", batch_size=5)
    seen = model.seen().view(2, steps + 1, 2, 20)
    order = attribution.sum(1).flatten(1).argsort(dim=1, descending=True, stable=True)
    for k in range(steps + 1):
        count = (k * 20) // steps
        removed = torch.zeros(2, 20, dtype=torch.bool)
        removed.scatter_(1, order[:, :count], True)
        expected = torch.where(removed[:, None], torch.tensor(-1.0), x.flatten(2))
        assert torch.equal(seen[:, k], expected)


def test_ties_are_ranked_by_index():
    x = 1 + torch.rand(1, 1, 3, 4, generator=_gen(5))
    model = Recording(SumModel())
    metrics.deletion(model, x, 0, torch.zeros(1, 3, 4), steps=12, score="logit")
    seen = model.seen().view(13, 12)
    for k in range(13):
        assert (seen[k, :k] == 0).all() and torch.equal(seen[k, k:], x.flatten()[k:])


def test_wavelet_deletion_of_everything_gives_zeros(image_model, image_batch):
    x, y = image_batch
    model = Recording(image_model)
    steps = 4
    z = transform.wavedec(x, 2, "haar", 3, "reflect")
    attribution = [torch.rand_like(b) for b in transform.bands(z)]
    attribution = transform.unbands(attribution, 2)
    metrics.deletion(model, x, y, attribution, domain="wavelet", steps=steps, batch_size=4)
    seen = model.seen().view(3, steps + 1, *x.shape[1:])
    assert torch.equal(seen[:, -1], torch.zeros_like(x))
    assert torch.equal(seen[:, 0], x)
    # an intermediate point: the input rebuilt from the kept coefficients
    flat = transform.bands(z)
    scores = torch.cat([a.sum(1).flatten(1) for a in transform.bands(attribution)], dim=1)
    n = scores.shape[1]
    order = scores.argsort(dim=1, descending=True, stable=True)
    keep = torch.ones(3, n)
    keep.scatter_(1, order[:, : (2 * n) // steps], 0.0)
    sizes = [b[0, 0].numel() for b in flat]
    parts = torch.split(torch.cat([b.flatten(2) for b in flat], 2) * keep[:, None], sizes, dim=2)
    parts = [p.reshape(b.shape) for p, b in zip(parts, flat, strict=True)]
    rebuilt = transform.waverec(transform.unbands(parts, 2), 2, "haar", (32, 32))
    assert torch.allclose(seen[:, 2], rebuilt, atol=1e-6)


def test_dyadic_map_matches_untiled_structure(image_model, image_batch):
    x, y = image_batch
    dyadic = torch.rand(3, 32, 32, generator=_gen(6))
    shapes = [tuple(b.shape[2:]) for b in transform.bands(transform.wavedec(x, 2, "haar", 3, "reflect"))]
    per_band = [m.unsqueeze(1) for m in transform.untile(dyadic, shapes, 2)]
    a = metrics.deletion(image_model, x, y, dyadic, domain="wavelet", steps=8)
    b = metrics.deletion(image_model, x, y, transform.unbands(per_band, 2), domain="wavelet", steps=8)
    assert torch.equal(a.probs, b.probs)


@pytest.mark.parametrize("domain", ["pixel", "wavelet"])
def test_batch_size_invariance(image_model, image_batch, domain):
    x, y = image_batch
    attribution = torch.randn(3, 3, 32, 32, generator=_gen(7))
    if domain == "wavelet":
        attribution = attribution.mean(1)
    curves = [
        metrics.deletion(image_model, x, y, attribution, domain=domain, steps=8, batch_size=bs).probs
        for bs in (1, 7, 100)
    ]
    assert torch.allclose(curves[0], curves[1], atol=1e-6)
    assert torch.allclose(curves[0], curves[2], atol=1e-6)


def test_faithfulness_is_insertion_minus_deletion(image_model, image_batch):
    x, y = image_batch
    attribution = torch.rand(3, 32, 32, generator=_gen(8))
    for auc in ("paper", "trapezoid"):
        f = metrics.faithfulness(image_model, x, y, attribution, steps=8, auc=auc)
        ins = metrics.insertion(image_model, x, y, attribution, steps=8).auc(auc)
        dele = metrics.deletion(image_model, x, y, attribution, steps=8).auc(auc)
        assert f.shape == (3,)
        assert torch.allclose(f, ins - dele)


def test_tensor_baseline(image_model, image_batch):
    x, y = image_batch
    baseline = x.mean(dim=(2, 3), keepdim=True)  # per sample and channel
    model = Recording(image_model)
    metrics.deletion(model, x, y, torch.rand(3, 32, 32, generator=_gen(9)), steps=4, baseline=baseline)
    last = model.seen().view(3, 5, 3, 32, 32)[:, -1]
    assert torch.equal(last, baseline.expand_as(x))


# --------------------------------------------------------------------------- 1D, 3D


def test_audio_wavelet_with_preprocess(audio_model, audio_batch):
    wave, y = audio_batch
    steps = 16
    dyadic = torch.rand(2, wave.shape[1], generator=_gen(10))
    whole = metrics.deletion(audio_model, wave, y, dyadic, domain="wavelet", steps=steps)
    split = metrics.deletion(audio_model.classifier, wave, y, dyadic, domain="wavelet", steps=steps,
                             preprocess=audio_model.frontend)
    assert whole.probs.shape == (2, steps + 1)
    assert torch.allclose(whole.probs, split.probs, atol=1e-6)
    z = transform.wavedec(wave.unsqueeze(1), 1, "haar", 3, "reflect")
    coeffs = transform.unbands([torch.rand_like(b) for b in transform.bands(z)], 1)
    ins = metrics.insertion(audio_model, wave, y, coeffs, domain="wavelet", steps=steps)
    fx = audio_model(wave).softmax(1)[torch.arange(2), y].detach()
    assert ins.probs.shape == (2, steps + 1)
    assert torch.allclose(ins.probs[:, -1], fx, atol=1e-6)


def test_audio_pixel_domain_time_frequency_bins(audio_model, audio_batch):
    wave, y = audio_batch
    spec = audio_model.frontend(wave)  # [B, 1, mels, frames]
    c = metrics.insertion(audio_model.classifier, spec, y, torch.rand(spec.shape), steps=8,
                          baseline=spec.amin(dim=(1, 2, 3), keepdim=True))
    assert c.probs.shape == (2, 9) and torch.isfinite(c.probs).all()


def test_volume_wavelet(volume_model, volume_batch):
    x, y = volume_batch
    z = transform.wavedec(x, 3, "haar", 2, "symmetric")
    coeffs = transform.unbands([torch.rand_like(b) for b in transform.bands(z)], 3)
    c = metrics.deletion(volume_model, x, y, coeffs, domain="wavelet", steps=4, levels=2, mode="symmetric")
    assert c.probs.shape == (2, 5) and torch.isfinite(c.probs).all()
    fx = volume_model(x).softmax(1)[torch.arange(2), y].detach()
    assert torch.allclose(c.probs[:, 0], fx, atol=1e-6)
    p = metrics.insertion(volume_model, x, y, torch.rand(2, 28, 28, 28), steps=4)
    assert p.probs.shape == (2, 5)


def test_odd_size_and_longer_wavelet():
    x = torch.rand(2, 1, 13, 21, generator=_gen(11))
    model = Recording(SumModel())
    c = metrics.deletion(model, x, 0, torch.rand(2, 13, 21), domain="wavelet", wavelet="db2", levels=2,
                         mode="symmetric", steps=5, score="logit")
    assert c.probs.shape == (2, 6)
    assert torch.allclose(c.probs[:, 0], x.flatten(1).sum(1))
    assert torch.equal(model.seen().view(2, 6, 1, 13, 21)[:, -1], torch.zeros_like(x))


# --------------------------------------------------------------------------- errors


def test_bad_inputs(image_model, image_batch):
    x, y = image_batch
    a = torch.rand(3, 32, 32)
    with pytest.raises(ValueError, match="attribution"):
        metrics.deletion(image_model, x, y, torch.rand(3, 31, 32))
    with pytest.raises(ValueError, match="attribution"):
        metrics.deletion(image_model, x, y, torch.rand(2, 32, 32))
    nan = a.clone()
    nan[0, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="attribution"):
        metrics.insertion(image_model, x, y, nan)
    with pytest.raises(ValueError, match="attribution"):
        metrics.insertion(image_model, x, y, nan, domain="wavelet")
    with pytest.raises(ValueError, match="steps"):
        metrics.deletion(image_model, x, y, a, steps=32 * 32 + 1)
    with pytest.raises(ValueError, match="domain"):
        metrics.deletion(image_model, x, y, a, domain="fourier")
    with pytest.raises(ValueError, match="auc"):
        metrics.faithfulness(image_model, x, y, a, auc="roc")
    with pytest.raises(ValueError, match="score"):
        metrics.deletion(image_model, x, y, a, score="prob")
    with pytest.raises(ValueError, match="baseline"):
        metrics.deletion(image_model, x, y, a, baseline=torch.zeros(2, 3, 1, 1))
    with pytest.raises(ValueError, match="x"):
        metrics.deletion(image_model, x[0, 0, 0], y, a)
    with pytest.raises(ValueError, match="batch_size"):
        metrics.deletion(image_model, x, y, a, batch_size=0)
    with pytest.raises(ValueError, match="y"):
        metrics.deletion(image_model, x, torch.tensor([0, 1]), a)
    with pytest.raises(ValueError, match="levels"):
        metrics.deletion(image_model, x, y, a, domain="wavelet", levels=9)
    with pytest.raises(ValueError, match="wavelet"):
        metrics.deletion(image_model, x, y, a, domain="wavelet", wavelet="nope")
    z = transform.bands(transform.wavedec(x, 2, "haar", 3, "reflect"))
    with pytest.raises(ValueError, match="attribution"):  # levels 2 structure for a levels 3 transform
        metrics.deletion(image_model, x, y, transform.wavedec(x, 2, "haar", 2, "reflect"), domain="wavelet")
    with pytest.raises(ValueError, match="attribution"):  # a band of the wrong size
        bad = [b.clone() for b in z]
        bad[-1] = bad[-1][..., :-1]
        metrics.deletion(image_model, x, y, transform.unbands(bad, 2), domain="wavelet")
    with pytest.raises(ValueError, match="attribution"):
        metrics.deletion(image_model, x, y, {"a": a}, domain="wavelet")


def test_models_fixture_shapes_are_consistent():
    assert models.IMAGE_SIZE == 32  # the tests above assume it


def test_target_out_of_range_in_a_later_chunk(image_model, image_batch):
    x, _ = image_batch
    with pytest.raises(ValueError, match="y"):
        metrics.deletion(image_model, x, torch.tensor([0, 1, 7]), torch.rand(3, 32, 32), steps=4, batch_size=2)
    with pytest.raises(ValueError, match="y"):
        metrics.mu_fidelity(image_model, x, torch.tensor([0, 1, 7]), torch.rand(3, 32, 32), samples=4,
                            batch_size=2)
