"""The perturbation experiment's report (workflow/lib/experiments/perturbation.py) on synthetic rows with known
answers, and the target in the default DAG."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from tests.workflow.helpers import ROOT
from workflow.lib.config import Config
from workflow.lib.experiments import perturbation

LEVELS = ["level1", "level2", "approx"]


def _rows() -> pd.DataFrame:
    """Two images x two alphas. Image a keeps its top-1 at both alphas, image b loses it at alpha 10."""
    rows = []
    for image, keeps, ig in (("a", (1, 1), (0.2, 0.3, 0.5)), ("b", (1, 0), (0.5, 0.3, 0.2))):
        for alpha, sparsity, kept in zip((0.0, 10.0), (0.3, 0.8), keeps, strict=True):
            density = (0.9, 0.9, 0.9) if alpha == 0 else (0.1, 0.4, 0.9)  # constant at alpha 0: no ranking
            rows.append({"sample_id": image, "alpha": alpha, "target": 1, "predicted": 1 if kept else 2,
                         "top1": kept, "sparsity": sparsity + (0.05 if image == "b" else 0.0),
                         "logit": 5.0 - alpha / 10, "probability": 0.9, "logit_unmasked": 4.0, "loss_start": 0.0,
                         "loss_end": 0.0,
                         **{f"mask_density@{n}": d for n, d in zip(LEVELS, density, strict=True)},
                         **{f"mask_share@{n}": d / sum(density) for n, d in zip(LEVELS, density, strict=True)},
                         **{f"wam_ig_density@{n}": v for n, v in zip(LEVELS, ig, strict=True)},
                         **{f"wam_ig_share@{n}": v for n, v in zip(LEVELS, ig, strict=True)}})
    return pd.DataFrame(rows)


def _value(table: pd.DataFrame, quantity: str, alpha: str = "-", level: str = "-") -> pd.Series:
    return table[(table["quantity"] == quantity) & (table["alpha"] == alpha) & (table["level"] == level)].iloc[0]


def test_summary_known_answers():
    table = perturbation.summary(_rows(), resamples=200, seed=0)
    assert _value(table, "sparsity", "10")["mean"] == pytest.approx(0.825)
    assert _value(table, "top1_kept", "10")["mean"] == pytest.approx(0.5)
    # per image the largest sparsity keeping the top-1: a 0.8 (alpha 10), b 0.35 (alpha 0)
    assert _value(table, "max_sparsity_top1")["mean"] == pytest.approx((0.8 + 0.35) / 2)
    # Spearman over the scales: a's mask ranks like its WAM-IG (+1), b's the reverse (-1); alpha 0 undefined
    assert _value(table, "spearman_density", "10")["mean"] == pytest.approx(0.0)
    assert _value(table, "spearman_density", "10")["n"] == 2
    assert table[(table["quantity"] == "spearman_density") & (table["alpha"] == "0")].empty
    assert _value(table, "wam_ig_share", level="approx")["mean"] == pytest.approx(0.35)
    assert _value(table, "mask_density", "10", "level2")["mean"] == pytest.approx(0.4)
    assert (table["ci_low"] <= table["mean"] + 1e-12).all() and (table["mean"] <= table["ci_high"] + 1e-12).all()


def test_the_seed_spread_is_the_sd_of_the_per_seed_means_and_the_mean_averages_each_image_over_the_seeds():
    """Seed 1 moves image a's sparsity at alpha 10 from 0.8 to 0.6: per-seed means over the images 0.825 and 0.725
    (sd 0.0707), image means 0.7 and 0.85 (mean 0.775); WAM-IG's shares do not depend on the seed (sd 0)."""
    first = _rows().assign(seed=0)
    second = first.assign(seed=1)
    second.loc[(second["sample_id"] == "a") & (second["alpha"] == 10.0), "sparsity"] = 0.6
    table = perturbation.summary(pd.concat([first, second], ignore_index=True), resamples=200, seed=0)
    row = _value(table, "sparsity", "10")
    assert row["mean"] == pytest.approx(0.775) and row["n"] == 2 and row["n_seeds"] == 2
    assert row["sd_seeds"] == pytest.approx(abs(0.825 - 0.725) / 2 ** 0.5)
    assert _value(table, "wam_ig_share", level="approx")["sd_seeds"] == pytest.approx(0.0)
    assert _value(table, "sparsity", "0")["sd_seeds"] == pytest.approx(0.0)
    md = perturbation.table_markdown(table, pd.concat([first, second]), "preserve")
    assert "0.775 ± 0.071" in md and "2 optimisation seed(s)" in md


def test_pareto_front_keeps_the_non_dominated_points():
    points = np.array([[0.1, 5.0], [0.5, 4.0], [0.4, 3.0], [0.9, 1.0], [0.2, 5.0], [0.9, 0.5]])
    assert perturbation.pareto_front(points).tolist() == [[0.2, 5.0], [0.5, 4.0], [0.9, 1.0]]


def test_report_writes_the_table_and_both_figures(tmp_path):
    rows_path, examples_path = tmp_path / "rows.csv", tmp_path / "examples.pt"
    _rows().to_csv(rows_path, index=False)
    shapes = [(4, 4), (4, 4), (4, 4), (4, 4), (8, 8), (8, 8), (8, 8)]
    torch.save({"original": torch.rand(1, 3, 16, 16), "minimal": torch.rand(1, 2, 3, 16, 16),
                "mask": torch.rand(1, 2, 16, 16), "probability": torch.rand(1, 2), "sparsity": torch.rand(1, 2),
                "ids": ["a"], "alphas": [0.0, 10.0], "game": "preserve", "shapes": shapes}, examples_path)
    config = {"perturbation": {"game": "preserve"}, "evaluation": {"bootstrap": 50}, "seed": 0,
              "datasets": {"images": {"modality": "images"}}}
    perturbation.report(Config.from_dict(config), rows_path, examples_path, tmp_path)
    md = (tmp_path / "tables" / "perturbation.md").read_text()
    assert "| alpha (penalty) |" in md and "Largest sparsity at which the top-1 prediction still holds: 0.575" in md
    assert list(pd.read_csv(tmp_path / "tables" / "perturbation.csv").columns) == [
        "quantity", "alpha", "level", "n", "mean", "ci_low", "ci_high", "sd_seeds", "n_seeds"]
    for name in ("perturbation_pareto.png", "perturbation_examples.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 5_000
        assert (tmp_path / "figures" / f"{name}.provenance.json").is_file()


def test_the_default_dag_builds_the_perturbation_target():
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "perturbation"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "perturbation_masks" in run.stdout and "perturbation_report" in run.stdout
