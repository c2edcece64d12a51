"""The import rules of the layout (README "Layout"): imports run ``workflow/scripts -> workflow/lib -> wam,
baselines, metrics``, never back; no stage script imports another; the library's own tests need no workflow.

Every ``import`` and ``from ... import`` statement is read from the source (module level and inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    """``file: module`` for each import under ``folder`` of a module in (or under) ``forbidden``."""
    return [f"{path.relative_to(ROOT)}: {name}" for path in sources(folder) for name in sorted(imported_modules(path))
            if any(name == f or name.startswith(f"{f}.") for f in forbidden)]


@pytest.mark.parametrize(("folder", "forbidden"), [
    ("wam", ("baselines", "metrics", "workflow", "tests")),
    ("baselines", ("metrics", "workflow", "tests")),
    ("metrics", ("workflow", "tests")),
    ("workflow/lib", ("workflow.scripts", "tests")),
    ("tests/wam", ("workflow",)),
    ("tests/baselines", ("workflow",)),
    ("tests/metrics", ("workflow",)),
])
def test_imports_run_one_way(folder, forbidden):
    assert violations(folder, forbidden) == []


def test_no_stage_script_imports_another():
    found = []
    for path in sources("workflow/scripts"):
        own = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found += [f"{path.relative_to(ROOT)}: {name}" for name in imported_modules(path)
                  if name.startswith("workflow.scripts") and name != own]
    assert found == []


def test_the_rules_catch_a_backward_import(tmp_path):
    """The checker itself: a library module importing the workflow, inside a function, is found."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from workflow.lib.models import zoo\n    import metrics.curves\n")
    assert imported_modules(module) >= {"workflow.lib.models", "workflow.lib.models.zoo", "metrics.curves"}
