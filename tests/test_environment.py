"""environment.yml mirrors pyproject.toml's pins (conda users on clusters get the same versions)."""

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
