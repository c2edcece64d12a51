"""The examples in the docstrings of the sanity, complexity and meta-evaluation modules run (tiny models)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["metrics.maps", "metrics.similarity", "metrics.complexity", "metrics.randomisation", "metrics.agreement"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
