"""The metric registry (the README's "Add a metric" example, a plug-in, runs in tests/workflow/lib/test_plugins.py)."""

from __future__ import annotations

import pytest
import torch

import metrics
from metrics.registry import register


def test_available_and_get():
    names = metrics.available()
    for name in ("insertion", "deletion", "faithfulness", "mu_fidelity", "aopc"):
        assert name in names
    assert metrics.get("deletion") is metrics.deletion
    assert metrics.get("mu_fidelity") is metrics.mu_fidelity
    with pytest.raises(ValueError, match="name"):
        metrics.get("no-such-metric")


def test_register_refuses_a_taken_name():
    with pytest.raises(ValueError, match="name"):
        register("deletion")(lambda *a: None)


def test_aopc_gives_one_value_per_sample(image_model, image_batch):
    x, y = image_batch
    value = metrics.get("aopc")(image_model, x, y, torch.rand(3, 32, 32), steps=8)
    assert value.shape == (3,) and torch.isfinite(value).all()
