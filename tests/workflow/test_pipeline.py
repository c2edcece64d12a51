"""The `ci` configuration end to end in a temporary folder: every stage, every output, provenance,
nothing redone on a second run, finished jobs kept when a run resumes, byte-identical tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.workflow.helpers import snakemake, write_config


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
    # per method: its Table 1 cell under both protocols, and both domains under the reference (one repeats)
    assert len(groups) == n_pairs * len(config["methods"]) * 3 * 3 * 2
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
