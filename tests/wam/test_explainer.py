"""WAM against known answers: orthogonal-wavelet identity, completeness, SmoothGrad limits, reference maps."""

from __future__ import annotations

import pytest
import torch

from tests import models
from wam import WAM, transform

SHAPES = {1: (1, 64), 2: (3, 16, 16), 3: (1, 8, 8, 8)}


def _flat(coeffs) -> torch.Tensor:
    return torch.cat([b.flatten(1) for b in transform.bands(coeffs)], 1)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_gradient_is_the_transform_of_the_pixel_gradient(ndim):
    """Haar is orthogonal: d f / d z = W (d f / d x) exactly, on power-of-two sizes."""
    shape = SHAPES[ndim]
    model = models.linear_model(shape, n_classes=3)
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([2, 0])
    expl = WAM(model, ndim=ndim, levels=2, method="gradient")(x, y)
    pixel_grad = torch.stack([model.gradient(int(c)) for c in y])
    expected = _flat(transform.wavedec(pixel_grad, ndim, "haar", 2, "reflect"))
    got = _flat(expl.grads)
    assert (got - expected).norm() / expected.norm() < 1e-5


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_integrated_completeness_improves_with_samples(ndim):
    shape = SHAPES[ndim]
    model = models.smooth_model(shape)
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(1)) * 3
    y = torch.tensor([1, 2])
    with torch.no_grad():
        target = (model(x) - model(torch.zeros_like(x))).gather(1, y[:, None])[:, 0]
    errors = []
    for n in (3, 9, 65):
        expl = WAM(model, ndim=ndim, levels=2, method="integrated", n_samples=n)(x, y)
        errors.append((_flat(expl.grads).sum(1) - target).abs().max().item())
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < 2e-3 * target.abs().max().item()


def test_integrated_with_a_baseline_is_complete_on_a_linear_model():
    model = models.linear_model((3, 16, 16))
    gen = torch.Generator().manual_seed(2)
    x, x0 = torch.rand(2, 3, 16, 16, generator=gen), torch.rand(1, 3, 16, 16, generator=gen)
    y = torch.tensor([0, 1])
    expl = WAM(model, ndim=2, method="integrated", n_samples=2, baseline=x0)(x, y)
    with torch.no_grad():
        target = (model(x) - model(x0.expand_as(x))).gather(1, y[:, None])[:, 0]
    torch.testing.assert_close(_flat(expl.grads).sum(1), target, rtol=1e-4, atol=1e-4)


def test_smooth_is_the_gradient_on_a_linear_model_and_tends_to_it_as_noise_vanishes():
    shape = SHAPES[2]
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([1, 0])
    linear = models.linear_model(shape)
    exact = _flat(WAM(linear, method="gradient", levels=2)(x, y).grads)
    smooth = _flat(WAM(linear, method="smooth", levels=2, n_samples=5, noise=0.5)(x, y).grads)
    torch.testing.assert_close(smooth, exact, rtol=1e-4, atol=1e-6)

    nonlinear = models.smooth_model(shape)
    grad = _flat(WAM(nonlinear, method="gradient", levels=2)(x, y).grads)
    errors = [
        (_flat(WAM(nonlinear, method="smooth", levels=2, n_samples=8, noise=s)(x, y).grads) - grad).norm().item()
        for s in (0.3, 0.03, 0.0003)
    ]
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < 1e-3 * grad.norm().item()


@pytest.mark.parametrize("method", ["smooth", "integrated"])
@pytest.mark.parametrize("aggregation", ["paper", "reference"])
def test_same_seed_same_result_whatever_the_batch_size(image_model, image_batch, method, aggregation):
    x, y = image_batch
    kwargs = dict(method=method, n_samples=5, aggregation=aggregation, levels=2)
    a = WAM(image_model, batch_size=64, **kwargs)(x, y)
    b = WAM(image_model, batch_size=4, **kwargs)(x, y)
    torch.testing.assert_close(_flat(a.grads), _flat(b.grads), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(a.dyadic(), b.dyadic(), rtol=1e-5, atol=1e-7)
    other_seed = WAM(image_model, batch_size=4, seed=7, **kwargs)(x, y)
    if method == "smooth":
        assert not torch.allclose(_flat(a.grads), _flat(other_seed.grads))


def test_paper_maps_of_a_batch_equal_its_samples_one_by_one(image_model, image_batch):
    x, y = image_batch
    wam = WAM(image_model, method="smooth", n_samples=4, levels=2, batch_size=5)
    batch = wam(x, y)
    for i in range(x.shape[0]):
        alone = wam(x[i : i + 1], y[i : i + 1])
        torch.testing.assert_close(batch.dyadic()[i : i + 1], alone.dyadic(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(batch.scales()[i : i + 1], alone.scales(), rtol=1e-5, atol=1e-6)


def _two_class_linear_model() -> models.LinearModel:
    """1 x 2 x 2 inputs; class 0 weights: a vertical edge, class 1: [[5, 0], [2, -2]]."""
    model = models.LinearModel((1, 2, 2), n_classes=2)
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor([[1.0, -1.0, 1.0, -1.0], [5.0, 0.0, 2.0, -2.0]]))
        model.linear.bias.zero_()
    return model.eval()


def test_reference_maps_on_a_hand_computed_case():
    """Orthonormal haar of [[a, b], [c, d]]: approximation (a + b + c + d) / 2, horizontal (a + b - c - d) / 2,
    vertical (a - b + c - d) / 2, diagonal (a - b - c + d) / 2. Class 0: (0, 0, 2, 0); class 1:
    (2.5, 2.5, 4.5, 0.5). The reference divides each band by its maximum over the batch and tiles
    approximation top-left, horizontal top-right, vertical bottom-left, diagonal bottom-right."""
    model = _two_class_linear_model()
    x = torch.rand(2, 1, 2, 2, generator=torch.Generator().manual_seed(4))
    y = torch.tensor([0, 1])
    reference = WAM(model, method="gradient", levels=1, aggregation="reference")(x, y).dyadic()
    torch.testing.assert_close(reference, torch.tensor([[[0.0, 0.0], [2 / 4.5, 0.0]], [[1.0, 1.0], [1.0, 1.0]]]))
    paper = WAM(model, method="gradient", levels=1)(x, y).dyadic()  # per sample: sample 0's band is its own max
    torch.testing.assert_close(paper, torch.tensor([[[0.0, 0.0], [1.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]]))
    # smooth: the normalised maps do not depend on the noise for a linear model
    smooth = WAM(model, method="smooth", n_samples=3, levels=1, aggregation="reference")(x, y).dyadic()
    torch.testing.assert_close(smooth, reference)
    # integrated: normalised |z| map times the unit-spacing trapezoid integral (n - 1) of the gradient maps
    integrated = WAM(model, method="integrated", n_samples=5, levels=1, aggregation="reference")(x, y)
    z_maps = WAM._reference_normalize([b.mean(1).abs() for b in transform.bands(integrated.coeffs)])
    expected = transform.tile([4 * m * zm for m, zm in zip(
        WAM(model, method="gradient", levels=1, aggregation="reference")(x, y).band_maps(), z_maps, strict=True)],
        2, (2, 2))
    torch.testing.assert_close(integrated.dyadic(), expected)


@pytest.mark.parametrize("aggregation", ["paper", "reference"])
@pytest.mark.parametrize("method", ["gradient", "smooth", "integrated"])
def test_constant_model_gives_zero_maps_not_nan(aggregation, method):
    x = torch.rand(2, 3, 16, 16)
    expl = WAM(models.ConstantModel(), method=method, n_samples=3, aggregation=aggregation)(x, [0, 1])
    for out in (expl.dyadic(), expl.scales(approx=True), expl.heatmap()):
        assert torch.isfinite(out).all() and (out == 0).all()


@pytest.mark.parametrize(
    "ndim,shape,wavelet,mode",
    [(1, (1, 2205), "db2", "reflect"), (2, (3, 30, 22), "sym3", "symmetric"), (3, (1, 30, 30, 30), "haar", "zero")],
)
def test_any_size_wavelet_and_mode(ndim, shape, wavelet, mode):
    model = models.smooth_model(shape)
    x = torch.rand(2, *shape)
    expl = WAM(model, ndim=ndim, wavelet=wavelet, mode=mode, levels=2, method="smooth", n_samples=2)(x, [0, 1])
    spatial = shape[1:]
    assert expl.dyadic().shape == (2, *spatial)
    assert expl.scales(approx=True).shape == (2, 3, *spatial)
    assert expl.heatmap().shape == (2, *spatial)
    assert expl.filter(keep=1.0).shape == x.shape
    torch.testing.assert_close(expl.filter(keep=1.0), x, atol=1e-5, rtol=1e-5)


def test_filter_keeps_the_requested_fraction():
    x = torch.rand(1, 1, 64)
    model = models.linear_model((1, 64))
    expl = WAM(model, ndim=1, method="gradient", levels=3)(x, 0)
    kept = transform.wavedec(expl.filter(keep=0.25), 1, "haar", 3, "reflect")
    nonzero = (_flat(kept).abs() > 1e-6).sum().item()
    assert nonzero <= 16


def test_audio_waveforms_through_a_log_mel_model(audio_model, audio_batch):
    x, y = audio_batch  # [B, T]
    expl = WAM(audio_model, ndim=1, method="smooth", n_samples=3)(x, y)
    assert expl.dyadic().shape == x.shape and expl.filter(0.1).shape == x.shape
    assert torch.isfinite(expl.heatmap()).all() and expl.heatmap().abs().sum() > 0


def test_three_d_volumes(volume_model, volume_batch):
    x, y = volume_batch
    expl = WAM(volume_model, ndim=3, method="integrated", n_samples=3, levels=2)(x, y)
    assert expl.dyadic().shape == (2, 28, 28, 28) and expl.scales().shape == (2, 2, 28, 28, 28)


def test_parameters_keep_their_requires_grad_and_get_no_gradient(image_model, image_batch):
    x, y = image_batch
    WAM(image_model, method="gradient")(x, y)
    assert all(p.requires_grad and p.grad is None for p in image_model.parameters())


def test_captum_style_attribute(image_model, image_batch):
    x, y = image_batch
    wam = WAM(image_model, method="smooth", n_samples=2)
    torch.testing.assert_close(wam.attribute(x, target=y), wam(x, y).heatmap())


@pytest.mark.parametrize(
    "kwargs,call,match",
    [
        ({}, lambda w: w(torch.rand(2, 16, 16), [0, 1]), "x: expected"),
        ({}, lambda w: w(torch.rand(2, 3, 16, 16), [0, 1, 2]), "y: expected 2"),
        ({}, lambda w: w(torch.rand(2, 3, 16, 16), [0, 9]), "y: class index 9"),
        ({}, lambda w: w(torch.full((1, 3, 16, 16), float("nan")), [0]), "x: contains NaN"),
        ({"levels": 9}, lambda w: w(torch.rand(1, 3, 16, 16), [0]), "levels: expected"),
        ({"wavelet": "nope"}, None, "wavelet: unknown"),
        ({"method": "magic"}, None, "method: expected"),
        ({"ndim": 4}, None, "ndim: expected"),
        ({"aggregation": "max"}, None, "aggregation: expected"),
    ],
)
def test_bad_input_names_the_argument(image_model, kwargs, call, match):
    with pytest.raises(ValueError, match=match):
        wam = WAM(image_model, **{"method": "gradient", **kwargs})
        call(wam)
