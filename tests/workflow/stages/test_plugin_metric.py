"""A metric plug-in end to end on the ``ci`` configuration (its volumes, two methods): a module written outside the
repository registers ``@metrics.register``, the configuration lists it under ``plugins`` and ``evaluation.metrics``,
and its values reach ``scores.csv`` and ``tables/appendix_metrics``. The metric is the mean score drop along the
deletion curve, so each of its values is checked against the deletion curve the score stage wrote for the same
Table 1 cell: it was called on the same model, inputs, ranked attribution and protocol options."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.workflow.helpers import snakemake, write_config
from workflow.lib.config import Config
from workflow.lib.scoring import scoring_plan

METRIC = '''\
"""Mean drop of the target's score along the deletion curve (tests/workflow/stages/test_plugin_metric.py)."""
import metrics


@metrics.register("wb_mean_drop")
def mean_drop(model, x, y, attribution, **kwargs):
    probs = metrics.deletion(model, x, y, attribution, steps=8, **kwargs).probs  # [B, 9], the first point f(x)
    return (probs[:, :1] - probs).mean(dim=1)
'''


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("metric_plugin")
    (workdir / "plugins").mkdir()
    (workdir / "plugins" / "wb_mean_drop.py").write_text(METRIC)
    base, _ = write_config(workdir)
    evaluation = {**base["evaluation"], "steps": 8,
                  "metrics": ["faithfulness_of_spectra", "input_fidelity", "wb_mean_drop"]}
    config, config_file = write_config(
        workdir, seeds=[42], plugins=[str(workdir / "plugins" / "wb_mean_drop.py")], evaluation=evaluation,
        datasets={"volumes": base["datasets"]["volumes"]},
        methods={m: base["methods"][m] for m in ("saliency", "wam_sg")})
    snakemake(workdir, config_file, "tables")
    return workdir / "results" / "ci", config


def test_the_plugin_metric_is_scored_in_each_table1_cell(run):
    results, config = run
    scores = pd.read_csv(results / "scores" / "scores.csv", keep_default_na=False)
    for method in config["methods"]:
        curves = pd.read_csv(results / "curves" / "volumes" / "resnet3d" / method / "0.csv", keep_default_na=False)
        protocol, domain, ranking = scoring_plan(Config.from_dict(config), method, "volumes")[0]
        mine = scores[(scores["metric"] == "wb_mean_drop") & (scores["method"] == method)]
        assert len(mine) == config["datasets"]["volumes"]["n_inputs"]
        assert set(zip(mine["protocol"], mine["domain"], mine["ranking"], mine["auc"], strict=True)) == {
            (protocol, domain, ranking, "-")}
        cell = curves[(curves["metric"] == "deletion") & (curves["protocol"] == protocol)
                      & (curves["domain"] == domain) & (curves["ranking"] == ranking)]
        for sample_id, value in zip(mine["sample_id"], mine["value"], strict=True):
            probs = cell[cell["sample_id"] == sample_id].sort_values("fraction")["value"].to_numpy()
            assert len(probs) == 9
            assert value == pytest.approx((probs[0] - probs).mean(), abs=1e-5)


def test_the_plugin_metric_reaches_the_appendix_table(run):
    results, config = run
    table = pd.read_csv(results / "tables" / "appendix_metrics.csv")
    assert set(table["metric"]) == {"faithfulness_of_spectra", "input_fidelity", "mu_fidelity", "wb_mean_drop"}
    assert set(table[table["metric"] == "wb_mean_drop"]["method"]) == set(config["methods"])
    md = (results / "tables" / "appendix_metrics.md").read_text()
    assert "volumes / resnet3d / wb_mean_drop" in md and "Also from `evaluation.metrics`" in md
    assert "wb\\_mean\\_drop" in (results / "tables" / "appendix_metrics.tex").read_text()
