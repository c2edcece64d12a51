"""The README stays true where a test can tell: its table of contents lists exactly its ``##`` sections, in order,
with GitHub's anchors (so it stays right when a section is added); every repository path it quotes exists; and
LICENSE, CITATION.cff, the README's BibTeX and pyproject.toml agree; every section of measured numbers names its
machine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
TOC_TITLE = "**Contents**"


def prose(text: str) -> str:
    """``text`` without its fenced code blocks (their ``#`` lines are comments, not headings)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def sections(text: str) -> list[str]:
    """The ``##`` headings, in order."""
    return [line[3:].strip() for line in prose(text).splitlines() if line.startswith("## ")]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (hyphens and underscores kept), spaces to
    hyphens.

    >>> anchor("The `wam` command")
    'the-wam-command'
    """
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def contents(text: str) -> list[tuple[str, str]]:
    """The ``(title, anchor)`` entries of the table of contents: the list after ``**Contents**``."""
    block = text.split(f"\n{TOC_TITLE}\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^- \[(.+?)\]\(#(.+?)\)$", block, flags=re.M)


def test_the_table_of_contents_lists_every_section_in_order():
    expected = [(title, anchor(title)) for title in sections(README)]
    wanted = "\n".join(f"- [{t}](#{a})" for t, a in expected)
    assert contents(README) == expected, f"the README's table of contents should read:\n{TOC_TITLE}\n{wanted}"
    intro = README.split("\n## ", 1)[0]
    assert TOC_TITLE in intro  # right after the introduction, before the first section


def test_every_repository_path_the_readme_quotes_exists():
    """(``results/`` is written by the runs, but for ``results/published/``.)"""
    folders = [re.escape(p.name) for p in ROOT.iterdir() if p.is_dir() and p.name not in (".git", "results")]
    quoted = set(re.findall(rf"`((?:{'|'.join(folders)}|results/published)/[\w./-]*)`", README))
    assert len(quoted) > 30
    assert [p for p in sorted(quoted) if not (ROOT / p).exists()] == []
    assert "DESIGN.md" not in README


def test_license_citation_and_bibtex_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    license_text = (ROOT / "LICENSE").read_text()
    assert project["license"] == {"text": "MIT"} and license_text.startswith("MIT License\n")
    assert "Copyright (c) 2026 WAM Bench contributors" in license_text
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT" and cff["version"] == project["version"]
    paper = cff["preferred-citation"]
    (bibtex,) = re.findall(r"```bibtex\n(.*?)```", README, flags=re.S)
    fields = dict(re.findall(r"^\s*(\w+)\s*=\s*\{(.*)\},?$", bibtex, flags=re.M))
    assert fields["title"] == paper["title"]
    assert fields["author"] == " and ".join(f"{a['family-names']}, {a['given-names']}" for a in paper["authors"])
    assert int(fields["year"]) == paper["year"] and fields["volume"] == str(paper["volume"])
    assert fields["pages"] == f"{paper['start']}--{paper['end']}"
    assert f"arXiv:{fields['eprint']}" == paper["identifiers"][0]["value"]


def test_every_measured_section_names_its_machine_and_says_it_is_one_machines_example():
    """Trained models and timings differ across CPU models (the README's AMD EPYC figures did not reproduce on an
    Intel Xeon): a section of measured numbers names the machine and says they are an example from it."""
    measured = [line for line in prose(README).splitlines() if line.startswith("#### Measured")]
    assert len(measured) >= 5
    for heading in measured:
        assert "an example from one machine" in heading and re.search(r"\d-core (Intel|AMD) \w+", heading), heading
