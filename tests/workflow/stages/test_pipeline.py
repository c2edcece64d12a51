"""The `ci` configuration end to end in a temporary folder: every stage, every output, provenance,
nothing redone on a second run, finished jobs kept when a run resumes, byte-identical tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.workflow.helpers import snakemake, write_config
from workflow.lib import data as D
from workflow.lib.config import Config, DatasetSpec
from workflow.lib.experiments import seeds
from workflow.lib.models import zoo


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    """Run the ci configuration once: first one score file (an interrupted run), then everything."""
    workdir = tmp_path_factory.mktemp("ci")
    config, config_file = write_config(workdir)
    first = "results/ci/scores/volumes/resnet3d/wam_sg/0.csv"
    snakemake(workdir, config_file, first)
    before = {p: p.stat().st_mtime_ns for p in (workdir / "results" / "ci").rglob("*") if p.is_file()}
    log = snakemake(workdir, config_file, "evaluation")
    return workdir, config, config_file, before, log


def test_every_table_and_figure_is_written(ci_run):
    workdir, config, _, _, _ = ci_run
    results = workdir / "results" / "ci"
    tables = ["table1", "table1_clean", "table1_pixel_paper", "table1_pixel_trapezoid", "table1_wavelet_paper",
              "table1_wavelet_trapezoid", "mu_fidelity", "completeness", "localisation", "scales"]
    tables += [f"table1_{d}_{m}" for d, spec in config["datasets"].items() for m in spec["models"]]
    for name in tables:
        assert (results / "tables" / f"{name}.csv").stat().st_size > 0
        assert (results / "tables" / f"{name}.md").read_text().startswith("|")
    assert "\\toprule" in (results / "tables" / "table1.tex").read_text()
    for dataset, spec in config["datasets"].items():
        for model in spec["models"]:
            for kind in ("examples", "curves", "scales"):
                assert (results / "figures" / f"{kind}_{dataset}_{model}.png").stat().st_size > 10_000


def test_scores_are_tidy_and_complete(ci_run):
    workdir, config, _, _, _ = ci_run
    scores = pd.read_csv(workdir / "results" / "ci" / "scores" / "scores.csv", keep_default_na=False)
    assert list(scores.columns) == ["dataset", "model", "method", "metric", "domain", "auc", "protocol", "ranking",
                                    "degenerate", "sample_id", "value"]
    curves = scores[scores["metric"].isin(["insertion", "deletion", "faithfulness"])]
    keys = ["dataset", "model", "method", "metric", "domain", "auc", "protocol", "ranking"]
    groups = curves.groupby(keys).size()
    n_pairs = sum(len(d["models"]) for d in config["datasets"].values())
    # per method: its Table 1 cell under both protocols and under the reference's unequal settings, and both
    # domains under the reference (one repeats)
    assert len(groups) == n_pairs * len(config["methods"]) * 4 * 3 * 2
    for (dataset, *_), n in groups.items():
        assert n == config["datasets"][dataset]["n_inputs"]
    faith = curves.pivot_table(index=[k for k in keys if k != "metric"] + ["sample_id"],
                               columns="metric", values="value")
    assert ((faith["insertion"] - faith["deletion"] - faith["faithfulness"]).abs() < 1e-5).all()
    assert scores["value"].notna().all()
    # the offline volumes record where the evidence is: a localisation per method, and per scale for WAM
    local = scores[scores["metric"].str.startswith("localisation") & (scores["dataset"] == "volumes")]
    assert set(local["method"]) == set(config["methods"])
    assert "localisation@level1" in set(local[local["method"] == "wam_sg"]["metric"])
    # the CAM layers are the last feature maps: no GradCAM map is all zero on the ci inputs
    assert not scores[scores["method"] == "gradcam"]["degenerate"].any()
    assert set(scores[scores["metric"] == "completeness_error"]["method"]) == {"wam_ig"}


def test_a_scales_cell_is_recomputed_from_the_stored_raw_band_magnitudes(ci_run):
    """``tables/scales``: WAM-IG's level-1 share on the volumes, recomputed from the attribution file's raw per-band
    magnitudes (3D: 7 detail bands per level, the finest last), not from the scores."""
    workdir, config, _, _, _ = ci_run
    results = workdir / "results" / "ci"
    stored = torch.load(results / "attributions" / "volumes" / "resnet3d" / "wam_ig" / "0.pt", weights_only=False)
    totals = [b.flatten(1).sum(1) for b in stored["wavelet"]]
    expected = (sum(totals[-7:]) / sum(totals)).mean().item()
    table = pd.read_csv(results / "tables" / "scales.csv")
    cell = table[(table["dataset"] == "volumes") & (table["method"] == "wam_ig") & (table["quantity"] == "share")
                 & (table["level"] == "level1")]
    assert cell["mean"].item() == pytest.approx(expected, abs=1e-6)
    assert "normalised per image" in (results / "tables" / "scales.md").read_text()


def test_a_mu_fidelity_cell_is_the_mean_over_the_evaluated_inputs_under_the_run_protocol(ci_run):
    """``tables/mu_fidelity`` and ``appendix_metrics``: one value per evaluated input (the protocol-sensitivity
    rows of the same inputs, under unequal settings, are not pooled in), recomputed with numpy."""
    workdir, config, _, _, _ = ci_run
    results = workdir / "results" / "ci"
    scores = pd.read_csv(results / "scores" / "scores.csv", keep_default_na=False)
    part = scores[(scores["dataset"] == "volumes") & (scores["method"] == "saliency")
                  & (scores["metric"] == "mu_fidelity") & (scores["protocol"] == config["evaluation"]["protocol"])]
    assert len(part) == config["datasets"]["volumes"]["n_inputs"]
    for name in ("mu_fidelity", "appendix_metrics"):
        table = pd.read_csv(results / "tables" / f"{name}.csv")
        row = table[(table["dataset"] == "volumes") & (table["method"] == "saliency")
                    & (table["metric"] == "mu_fidelity")]
        assert row["n"].item() == len(part)
        assert row["mean"].item() == pytest.approx(float(np.mean(part["value"].astype(float))), abs=1e-6)


def test_a_protocol_sensitivity_cell_is_recomputed_from_the_per_sample_scores(ci_run):
    """``tables/protocol_sensitivity``: GradCAM's deletion on the volumes under the unequal settings (16 steps for
    the baselines in ``ci.yaml``) is the mean of its per-sample scores of protocol ``reference_unequal``, and its
    rank among the methods is recomputed from the means."""
    workdir, config, _, _, _ = ci_run
    results = workdir / "results" / "ci"
    scores = pd.read_csv(results / "scores" / "scores.csv", keep_default_na=False)
    part = scores[(scores["dataset"] == "volumes") & (scores["metric"] == "deletion") & (scores["auc"] == "paper")
                  & (scores["protocol"] == "reference_unequal")]
    means = part.groupby("method")["value"].mean()
    table = pd.read_csv(results / "tables" / "protocol_sensitivity.csv")
    row = table[(table["dataset"] == "volumes") & (table["method"] == "gradcam") & (table["metric"] == "deletion")]
    assert row["unequal"].item() == pytest.approx(means["gradcam"], abs=1e-6)
    assert row["rank_unequal"].item() == int((means < means["gradcam"]).sum()) + 1  # deletion: lowest is best
    curves = pd.read_csv(results / "curves" / "volumes" / "resnet3d" / "gradcam" / "0.csv", keep_default_na=False)
    assert curves["fraction"].nunique() == config["evaluation"]["steps"] + 1  # the equal-settings curves only


def test_an_lrp_conservation_cell_is_recomputed_from_the_maps_and_the_model(ci_run):
    """``tables/lrp_conservation``: the median ratio of the stored LRP map's sum to the model's own target logit."""
    workdir, config, _, _, _ = ci_run
    results = workdir / "results" / "ci"
    stored = torch.load(results / "attributions" / "volumes" / "resnet3d" / "lrp" / "0.pt", weights_only=False)
    model = zoo.load(results / "models" / "volumes" / "resnet3d" / "model.pt")
    spec = DatasetSpec.from_config("volumes", config["datasets"]["volumes"], config["seed"])
    data = D.load(spec, "test", workdir / "resources")
    with torch.no_grad():
        logits = model(data.x).gather(1, data.y[:, None])[:, 0]
    ratios = stored["pixel"].flatten(1).sum(1) / logits
    table = pd.read_csv(results / "tables" / "lrp_conservation.csv")
    row = table[(table["dataset"] == "volumes") & (table["model"] == "resnet3d")]
    assert row["median"].item() == pytest.approx(float(np.median(ratios.numpy())), abs=1e-5)
    assert row["max"].item() == pytest.approx(ratios.max().item(), abs=1e-5)


def test_table1_has_every_method_and_the_published_value(ci_run):
    workdir, config, _, _, _ = ci_run
    table = pd.read_csv(workdir / "results" / "ci" / "tables" / "table1.csv")
    assert set(table["method"]) == set(config["methods"])
    assert set(table["modality"]) == {d["modality"] for d in config["datasets"].values()}
    wam_ig_images = table[(table["label"] == "WAM-IG") & (table["modality"] == "images")
                          & (table["metric"] == "insertion")].iloc[0]
    assert wam_ig_images["published"] == pytest.approx(0.447)
    # both values are written rounded to 6 decimals (io.write_csv): they agree to 1e-6 plus float round-off
    assert wam_ig_images["difference"] == pytest.approx(wam_ig_images["mean"] - 0.447, abs=2e-6)
    assert (table["ci_low"] <= table["mean"] + 1e-9).all() and (table["mean"] <= table["ci_high"] + 1e-9).all()


def test_every_output_records_its_provenance(ci_run):
    workdir, _, _, _, _ = ci_run
    results = workdir / "results" / "ci"
    for kind, suffix in (("attributions", ".pt"), ("scores", ".csv")):
        files = [p for p in (results / kind).rglob(f"*{suffix}") if p.name != "scores.csv"]
        assert files
        for f in files:
            sidecar = Path(f"{f}.provenance.json")
            assert sidecar.is_file(), sidecar
            assert '"git_commit"' in sidecar.read_text() and '"packages"' in sidecar.read_text()


def test_a_resumed_run_keeps_finished_jobs_and_a_second_run_does_nothing(ci_run):
    workdir, _, config_file, before, _ = ci_run
    for path, mtime in before.items():
        if path.suffix in (".pt", ".csv") and "scores" in path.parts or "attributions" in path.parts:
            assert path.stat().st_mtime_ns == mtime, f"{path} was redone"
    assert "Nothing to be done" in snakemake(workdir, config_file, "evaluation", "-n")


def test_tables_are_byte_identical_when_rebuilt(ci_run):
    workdir, _, config_file, _, _ = ci_run
    tables = sorted((workdir / "results" / "ci" / "tables").glob("*.csv"))
    first = {p.name: p.read_bytes() for p in tables}
    snakemake(workdir, config_file, "tables", "--forcerun", "tables")
    assert {p.name: p.read_bytes() for p in tables} == first


def test_seed_spread_reports_each_cell_over_the_training_seeds(ci_run):
    """ci's `seeds: [42, 7]`: resnet3d retrained with seed 7; seed 42's values are Table 1's own means (computed
    there through the bootstrap summary), the spread is the sample standard deviation of the two."""
    workdir, config, config_file, _, _ = ci_run
    snakemake(workdir, config_file, "seed_spread")
    results = workdir / "results" / "ci"
    spread = pd.read_csv(results / "tables" / "seed_spread.csv")
    table1 = pd.read_csv(results / "tables" / "table1_volumes_resnet3d.csv")
    assert set(spread["model"]) == {"resnet3d"}  # efficientnet_lite0 is pretrained: no training seed
    assert len(spread) == len(table1) == len(config["methods"]) * 3
    merged = spread.merge(table1, on=["method", "metric"], suffixes=("", "_t1"))
    assert len(merged) == len(spread)
    assert (merged["seed_42"] - merged["mean_t1"]).abs().max() < 1e-6
    pair = spread[["seed_42", "seed_7"]].to_numpy()
    assert abs(spread["sd"] - abs(pair[:, 0] - pair[:, 1]) / 2 ** 0.5).max() < 1e-6
    assert (spread["sd"] > 0).any(), "a second training seed changed no cell: the replicate did not retrain"
    assert "± " in (results / "tables" / "seed_spread.md").read_text()


def test_a_replicate_with_the_main_seed_reproduces_the_main_scores(ci_run, tmp_path):
    """The seed replicate (train, then explain and score each method) is the DAG's own pipeline: with training.seed
    it gives the main run's scores exactly."""
    workdir, _, _, _, _ = ci_run
    results = workdir / "results" / "ci"
    config = Config.load(results / "config.json")
    seeds.train(config, "volumes", "resnet3d", 42, tmp_path)
    paths = [seeds.replicate(config, "volumes", "resnet3d", method, 42, tmp_path) for method in config.methods]
    keys = ["method", "metric", "domain", "auc", "protocol", "ranking", "sample_id"]
    mine = pd.concat([pd.read_csv(p) for p in paths]).sort_values(keys).reset_index(drop=True)
    main = pd.read_csv(results / "scores" / "scores.csv")
    main = main[main["model"] == "resnet3d"].sort_values(keys).reset_index(drop=True)
    assert len(mine) == len(main) > 0
    assert (mine[keys] == main[keys]).all().all()
    assert (mine["value"].to_numpy() == main["value"].to_numpy()).all()
