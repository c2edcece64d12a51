"""Registry and the README's "Add a metric" worked example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import metrics
from metrics.registry import register

ROOT = Path(__file__).resolve().parents[2]


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


def test_readme_block_is_the_example_module(image_model, image_batch):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Add a metric", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None, "README 'Add a metric' has no python block"
    assert block.group(1) == (ROOT / "metrics" / "aopc.py").read_text()
    x, y = image_batch
    value = metrics.get("aopc")(image_model, x, y, torch.rand(3, 32, 32), steps=8)
    assert value.shape == (3,) and torch.isfinite(value).all()
