"""environment.yml mirrors pyproject.toml's pins (conda users on clusters get the same versions); the test tools are
an extra."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_pins_exactly_the_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(pip) == sorted(project["dependencies"])
    assert "python=3.11" in env["dependencies"]
    text = (ROOT / "environment.yml").read_text()
    assert all(pin in text for pin in project["optional-dependencies"]["cluster"])
    test_line = next(line for line in text.splitlines() if "pytest" in line)  # the test extra, as a comment
    assert sorted(p.strip('"') for p in test_line.split("pip install", 1)[1].split()) == sorted(
        project["optional-dependencies"]["test"])


def test_test_only_packages_are_an_extra_that_make_test_installs():
    """``pip install .`` gets no test tool; ``make test`` (and the other test and lint targets) install the extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {d.split("=")[0].split("<")[0].split(">")[0] for d in project["dependencies"]}
    assert not core & {"pytest", "hypothesis", "ruff", "selenium", "grad-cam"}
    assert {"pytest", "hypothesis", "ruff", "selenium==4.51.0", "grad-cam==1.5.7"} <= set(
        project["optional-dependencies"]["test"])
    makefile = (ROOT / "Makefile").read_text()
    assert "-e '.[test]'" in makefile
    for target in ("test", "test-cluster", "test-report", "lint"):
        (rule,) = [line for line in makefile.splitlines() if line.startswith(f"{target}:")]
        assert "$(TEST_STAMP)" in rule, rule
