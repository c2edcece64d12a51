"""Known answers for the gradient baselines: saliency, integrated gradients, SmoothGrad."""

from __future__ import annotations

import pytest
import torch

import baselines
from tests.models import linear_model, smooth_model

SHAPE = (2, 6, 5)  # [C, H, W]


def _inputs(n: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *SHAPE, generator=gen), torch.tensor([0, 2, 1])[:n]


def _autograd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, y[:, None]).sum(), x)
    return grad


def test_saliency_is_the_absolute_analytic_gradient():
    model = linear_model(SHAPE)
    x, y = _inputs()
    a = baselines.get("saliency", model, batch_size=2)(x, y)
    expected = torch.stack([model.gradient(int(c)).abs() for c in y])
    torch.testing.assert_close(a, expected)


def test_saliency_matches_autograd_on_a_nonlinear_model():
    model = smooth_model(SHAPE)
    x, y = _inputs()
    torch.testing.assert_close(baselines.get("saliency", model)(x, y), _autograd(model, x, y).abs())


def test_integrated_gradients_is_exact_on_a_linear_model():
    # exact trapezoid rule: (x - 0) * W[y] for any n_steps (captum's 1/n weights are rescaled)
    model = linear_model(SHAPE)
    x, y = _inputs()
    expected = torch.stack([xi * model.gradient(int(c)) for xi, c in zip(x, y, strict=True)])
    for n_steps in (2, 7):
        a = baselines.get("integrated_gradients", model, n_steps=n_steps)(x, y)
        torch.testing.assert_close(a, expected)


def test_integrated_gradients_completeness_error_shrinks_with_n_steps():
    model = smooth_model(SHAPE).double()
    x, y = _inputs()
    x = 3 * x.double()
    with torch.no_grad():
        gap = (model(x) - model(torch.zeros_like(x))).gather(1, y[:, None])[:, 0]
    errors = []
    for n_steps in (3, 9, 27):
        a = baselines.get("integrated_gradients", model, n_steps=n_steps, batch_size=5)(x, y)
        assert a.dtype == torch.float64
        errors.append((a.flatten(1).sum(1) - gap).abs().max().item())
    assert errors[0] > 0
    # trapezoid rule: error O(1/n^2), so tripling n divides it by about 9
    assert errors[1] < errors[0] / 4 and errors[2] < errors[1] / 4, errors
    assert errors[2] < 1e-2 * gap.abs().max().item(), errors


def test_integrated_gradients_signed_and_with_tensor_baseline():
    model = linear_model(SHAPE)
    x, y = _inputs()
    x0 = torch.full(SHAPE, 0.5)
    a = baselines.get("integrated_gradients", model, n_steps=4, baseline=x0)(x, y)
    expected = torch.stack([(xi - x0) * model.gradient(int(c)) for xi, c in zip(x, y, strict=True)])
    torch.testing.assert_close(a, expected)
    assert (a < 0).any() and (a > 0).any()


@pytest.mark.parametrize("noise", [0.0, 0.25, 3.0])
def test_smoothgrad_is_the_signed_gradient_on_a_linear_model(noise):
    model = linear_model(SHAPE)
    x, y = _inputs()
    a = baselines.get("smoothgrad", model, n_samples=7, noise=noise, batch_size=4)(x, y)
    expected = torch.stack([model.gradient(int(c)) for c in y])
    torch.testing.assert_close(a, expected)


def test_smoothgrad_approaches_the_gradient_as_noise_vanishes():
    model = smooth_model(SHAPE).double()
    x, y = _inputs()
    x = x.double()
    grad = _autograd(model, x, y)
    errors = [
        (baselines.get("smoothgrad", model, n_samples=16, noise=s)(x, y) - grad).abs().max().item()
        for s in (0.3, 0.03, 0.003)
    ]
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 1e-2 * grad.abs().max().item(), errors


def test_smoothgrad_seeded_and_batch_size_invariant():
    model = smooth_model(SHAPE)
    x, y = _inputs()
    make = lambda **kw: baselines.get("smoothgrad", model, n_samples=5, **kw)  # noqa: E731
    a = make(batch_size=64)(x, y)
    torch.testing.assert_close(make(batch_size=64)(x, y), a, rtol=0, atol=0)
    for batch_size in (1, 2, 4, 7):
        torch.testing.assert_close(make(batch_size=batch_size)(x, y), a)
    assert not torch.allclose(make(seed=43)(x, y), a)
    # the global RNG is neither used nor disturbed
    torch.manual_seed(0)
    make()(x, y)
    after = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), after)


def test_no_parameter_gradients_and_flags_restored():
    model = smooth_model(SHAPE)
    model.net[1].weight.requires_grad_(False)  # a mixed state must come back as it was
    flags = [p.requires_grad for p in model.parameters()]
    x, y = _inputs()
    for name in baselines.available():
        if baselines.is_cam(name):
            continue
        baselines.get(name, model, **({"n_samples": 2} if name == "smoothgrad" else {}))(x, y)
        assert all(p.grad is None for p in model.parameters()), name
        assert [p.requires_grad for p in model.parameters()] == flags, name


@pytest.mark.parametrize("rectifier", [torch.nn.ReLU, torch.nn.ReLU6])
def test_guided_backprop_known_answer_through_relu_and_relu6(rectifier):
    """x -> W1 -> rectifier -> W2 -> logits: Guided Backprop is ``W1^T [(0 < h < top) * relu(W2[y])]`` (ReLU6:
    ``top`` 6, so a saturated unit passes nothing), and differs from the plain gradient. captum hooks ``nn.ReLU``
    only; without the ReLU6 hook EfficientNet-Lite's Guided Backprop was its gradient."""
    gen = torch.Generator().manual_seed(0)
    w1, w2 = torch.randn(8, 6, generator=gen) * 3, torch.randn(3, 8, generator=gen)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 8, bias=False), rectifier(),
                                torch.nn.Linear(8, 3, bias=False)).eval()
    with torch.no_grad():
        model[1].weight.copy_(w1)
        model[3].weight.copy_(w2)
    x, y = torch.randn(4, 1, 2, 3, generator=gen), torch.tensor([0, 1, 2, 0])
    h = x.flatten(1) @ w1.T
    top = 6.0 if rectifier is torch.nn.ReLU6 else float("inf")
    assert rectifier is torch.nn.ReLU or bool((h > 6).any())  # the ReLU6 case saturates some units
    passed = ((h > 0) & (h < top)).float() * w2[y].clamp_min(0)
    expected = (passed @ w1).view_as(x)
    a = baselines.get("guided_backprop", model)(x, y)
    torch.testing.assert_close(a, expected)
    assert not torch.allclose(a, _autograd(model, x, y))
