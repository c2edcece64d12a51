"""Max-/Avg-Sensitivity and Relative Input Stability: equality with Quantus on identical inputs and noise,
oracles (constant gradient: 0; a map proportional to the input: RIS 1) in 1D / 2D / 3D and both domains,
batch invariance, NaN on changed predictions, errors."""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pytest
import quantus
import torch

import metrics
from metrics import stability
from metrics.stability import uniform_noise
from tests import models
from tests.metrics.helpers import OneChannelCNN
from wam import WAM, transform


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def gradient(model, x, y):
    """Input gradient of the target logit ``[B, *x.shape[1:]]`` (batched)."""
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(model(x).gather(1, y[:, None]).sum(), x)[0]


def wam_gradient(model, x, y):
    """WAM's gradient in the wavelet domain: per-band maps (ptwt structure)."""
    return WAM(model, ndim=x.dim() - 2, method="gradient", levels=2)(x, y).grads


def test_doctests():
    assert doctest.testmod(stability).failed == 0


# --------------------------------------------------------------------------- Quantus


def _quantus(metric_cls, model, x, y, a, samples, lower_bound, upper_bound, **kwargs):
    """Run a Quantus robustness metric whose perturbation returns our draw ``s`` at its ``s``-th call."""
    draws = iter(range(samples))

    def perturb(arr, indices, **_):
        d = uniform_noise(tuple(x.shape[1:]), next(draws), lower_bound, upper_bound, 0, x.device)
        return arr + d.reshape(1, -1).numpy()

    def explain(model, inputs, targets, **_):
        return gradient(model, torch.as_tensor(inputs), torch.as_tensor(targets).long()).numpy()

    metric = metric_cls(nr_samples=samples, perturb_func=perturb, disable_warnings=True, display_progressbar=False,
                        **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), explain_func=explain,
                     device="cpu")
    return np.asarray(out, dtype=np.float64)


@pytest.mark.parametrize("name, cls", [("max_sensitivity", quantus.MaxSensitivity),
                                       ("avg_sensitivity", quantus.AvgSensitivity)])
def test_sensitivity_matches_quantus(name, cls):
    model = models.image_model()
    x = torch.rand(3, 3, 16, 16, generator=_gen(0))
    y = torch.tensor([0, 2, 4])
    a = gradient(model, x, y)
    ours = metrics.get(name)(model, x, y, a, explain=gradient, samples=6, batch_size=5)
    theirs = _quantus(cls, model, x, y, a, 6, 0.2, None)
    assert (ours > 0.01).all()
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("nan", [False, True])
def test_relative_input_stability_matches_quantus(nan):
    """Quantus' RIS on the same draws (its defaults: noise on [0.02, 0.2]); with ``nan`` its own default,
    NaN where a draw changes the prediction (a strong noise here, so that some do and some do not)."""
    model = OneChannelCNN()
    x = torch.rand(6, 1, 12, 12, generator=_gen(1))
    y = model(x).argmax(1).detach()
    a = gradient(model, x, y)
    low, high = (0.02, 0.2) if not nan else (0.0, 1.5)
    ours = metrics.get("relative_input_stability")(model, x, y, a, explain=gradient, samples=5, batch_size=4,
                                                   lower_bound=low, upper_bound=high,
                                                   nan_when_prediction_changes=nan)
    theirs = _quantus(quantus.RelativeInputStability, model, x, y, a, 5, low, high,
                      return_nan_when_prediction_changes=nan)
    if nan:
        assert ours.isnan().any() and not ours.isnan().all()
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=0)


# --------------------------------------------------------------------------- oracles


@pytest.mark.parametrize("domain", ["pixel", "wavelet"])
@pytest.mark.parametrize("in_shape", [(2, 32), (3, 8, 8), (1, 8, 8, 8)])
def test_constant_gradient_is_perfectly_stable(in_shape, domain):
    """The gradient of a linear model does not depend on the input: Max- and Avg-Sensitivity and RIS are 0,
    for the pixel gradient and for WAM's per-band gradient, whichever domain the noise is drawn in."""
    model = models.linear_model(in_shape)
    x = torch.rand(2, *in_shape, generator=_gen(2))
    y = torch.tensor([0, 2])
    for explain in (gradient, wam_gradient):
        for name in ("max_sensitivity", "avg_sensitivity", "relative_input_stability"):
            out = metrics.get(name)(model, x, y, explain=explain, samples=4, domain=domain, levels=2)
            assert torch.equal(out, torch.zeros(2)), (name, explain.__name__)


@pytest.mark.parametrize("in_shape", [(2, 32), (3, 8, 8), (1, 8, 8, 8)])
def test_map_proportional_to_the_input_has_ris_one(in_shape):
    """``a(x) = 3 x`` (pixel domain) or ``3 W(x)`` (wavelet domain): the relative change of the map is the
    relative change of the input, so RIS is 1 (inputs away from 0)."""
    x = 0.5 + torch.rand(2, *in_shape, generator=_gen(3), dtype=torch.float64)
    ndim = len(in_shape) - 1

    def scaled_input(model, inputs, y):
        return 3 * inputs

    def scaled_coefficients(model, inputs, y):
        return [3 * b for b in transform.bands(transform.wavedec(inputs, ndim, "haar", 2, "reflect"))]

    for domain, explain in (("pixel", scaled_input), ("wavelet", scaled_coefficients)):
        out = metrics.get("relative_input_stability")(None, x, 0, explain=explain, samples=5, domain=domain,
                                                      levels=2, lower_bound=0.1, upper_bound=0.3)
        torch.testing.assert_close(out, torch.ones(2), atol=1e-6, rtol=0)


def test_avg_is_at_most_max_and_bounds_scale_the_noise():
    model = models.image_model()
    x = torch.rand(2, 3, 16, 16, generator=_gen(4))
    y = torch.tensor([1, 3])
    scores = stability.stability_scores(model, x, y, explain=gradient, samples=6, lower_bound=0.2)
    assert scores.shape == (2, 6)
    mx = metrics.get("max_sensitivity")(model, x, y, explain=gradient, samples=6)
    avg = metrics.get("avg_sensitivity")(model, x, y, explain=gradient, samples=6)
    torch.testing.assert_close(mx, scores.amax(1).float())
    torch.testing.assert_close(avg, scores.mean(1).float())
    assert (avg <= mx).all() and (avg > 0).all()
    # the draws: [-0.2, 0.2] by default, [lower, upper] when upper is given
    d = uniform_noise((10000,), 3, 0.2, None, 0, torch.device("cpu"))
    assert -0.2 <= d.min() < -0.19 and 0.19 < d.max() <= 0.2
    d = uniform_noise((10000,), 3, 0.02, 0.2, 0, torch.device("cpu"))
    assert 0.02 <= d.min() < 0.03 and 0.19 < d.max() <= 0.2


# --------------------------------------------------------------------------- batch invariance, layouts


@pytest.mark.parametrize("domain", ["pixel", "wavelet"])
def test_batch_invariance(domain):
    """16 inputs together (16 rows per explain call) or one at a time (1 row per call): the same scores. In
    float64: RIS divides by each map value, so float32 round-off of a tiny gradient value (which depends on the
    batch size of the convolution) would show up as a difference of 1e-3 in RIS (Max-Sensitivity: 2e-7)."""
    model = models.image_model().double()
    x = torch.rand(16, 3, 8, 8, generator=_gen(5), dtype=torch.float64)
    y = torch.arange(16) % 5
    explain = gradient if domain == "pixel" else wam_gradient
    for name in ("max_sensitivity", "relative_input_stability"):
        fn = metrics.get(name)
        together = fn(model, x, y, explain=explain, samples=3, domain=domain, levels=2, batch_size=16)
        alone = torch.cat([fn(model, x[i : i + 1], y[i : i + 1], explain=explain, samples=3, domain=domain,
                              levels=2, batch_size=1) for i in range(16)])
        torch.testing.assert_close(together, alone, rtol=1e-7, atol=0)


def test_waveform_layout(audio_model, audio_batch):
    """``[B, T]`` waveforms: noise on the samples or on the waveform's coefficients; maps of any layout."""
    wave, y = audio_batch
    for domain in ("pixel", "wavelet"):
        out = metrics.get("avg_sensitivity")(audio_model, wave, y, explain=gradient, samples=2, domain=domain,
                                             lower_bound=0.01)
        assert out.shape == (2,) and torch.isfinite(out).all() and (out > 0).all()


def test_zero_map():
    """A map that is zero everywhere and stays zero is perfectly stable (0, not 0/0)."""
    out = metrics.get("max_sensitivity")(None, torch.rand(2, 1, 6, 6), 0,
                                         explain=lambda m, x, y: torch.zeros_like(x), samples=2)
    assert torch.equal(out, torch.zeros(2))
    out = metrics.get("max_sensitivity")(None, torch.rand(2, 1, 6, 6), 0, torch.zeros(2, 1, 6, 6),
                                         explain=lambda m, x, y: x, samples=2)
    assert torch.isinf(out).all()


@pytest.mark.gpu
def test_cuda():
    """On a GPU: noise drawn on the device; the constant-gradient oracle holds in both domains."""
    model = models.linear_model((3, 8, 8)).cuda()
    x, y = torch.rand(2, 3, 8, 8, device="cuda"), torch.tensor([0, 1], device="cuda")
    for domain in ("pixel", "wavelet"):
        out = metrics.get("relative_input_stability")(model, x, y, explain=gradient, samples=4, domain=domain)
        assert out.device.type == "cuda" and torch.equal(out.cpu(), torch.zeros(2))


# --------------------------------------------------------------------------- errors and registry


def test_registered():
    assert {"max_sensitivity", "avg_sensitivity", "relative_input_stability"} <= set(metrics.available())


@pytest.mark.parametrize("kwargs, name", [
    ({"explain": None}, "explain"),
    ({"samples": 0}, "samples"),
    ({"lower_bound": -1.0}, "lower_bound"),
    ({"upper_bound": 0.1}, "upper_bound"),  # below the lower bound 0.2
    ({"batch_size": 0}, "batch_size"),
    ({"domain": "fourier"}, "domain"),
    ({"explain": lambda m, x, y: x[:, :, :3]}, "explain"),  # a map of another size than the attribution's
    ({"explain": lambda m, x, y: x * torch.nan}, "explain"),
])
def test_errors_name_the_argument(kwargs, name):
    x = torch.rand(2, 1, 6, 6)
    options = {"explain": lambda m, x, y: x, "samples": 2, **kwargs}
    with pytest.raises(ValueError, match=name):
        metrics.get("max_sensitivity")(None, x, 0, torch.rand(2, 1, 6, 6), **options)
