"""The metrics of ``evaluation.metrics`` (by default Faithfulness of Spectra and Input Fidelity) in the score stage
(once per method, in its Table 1 cell setting) and the appendix table (tables.appendix_metrics: method x data set,
mean with bootstrap CI, LaTeX with the best bold); another registered metric (a plug-in's) in both, and the errors
naming ``evaluation.metrics``."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import metrics
from metrics import protocols
from metrics import registry as metric_registry
from wam import transform
from workflow.lib import attribution as explain
from workflow.lib import scoring as evaluate
from workflow.lib.config import Config
from workflow.lib.data import checks
from workflow.lib.data.base import Split
from workflow.lib.models import zoo as models
from workflow.lib.reporting import tables

CONFIG = Config.from_dict({
    "name": "t", "seed": 42, "resources": "unused", "shards": 1,
    "datasets": {"audio": {"modality": "audio", "source": "esc50", "models": ["audio_resnet"]}},
    "methods": {"saliency": {"kind": "baseline", "label": "Saliency"},
                "wam_sg": {"kind": "wam", "label": "WAM-SG", "options": {"method": "smooth", "n_samples": 2}}},
    "wavelet": {"audio": {"wavelet": "haar", "levels": 3, "mode": "reflect"}},
    "evaluation": {"steps": 4, "batch_size": 8, "domains": ["pixel", "wavelet"], "protocol": "reference",
                   "ranking": "per_band", "mu_fidelity": {"grid": 8, "subset": 0.2, "samples": 4}, "bootstrap": 10},
})


@pytest.mark.parametrize("method", ["saliency", "wam_sg"])
def test_score_adds_ff_and_fid_in_in_the_table1_cell(method):
    torch.manual_seed(0)
    model = models.build("audio_resnet", 3)
    t = torch.arange(22050) / 44100
    x = torch.stack([torch.sin(2 * torch.pi * f * t) for f in (300, 1200, 4000)])
    data = Split(x, torch.tensor([0, 1, 2]), ["a", "b", "c"], 3, ["p", "q", "r"])
    attributions = explain.explain(CONFIG, "audio", model, method, x, data.y)
    with torch.no_grad():
        scores, _ = evaluate.score(CONFIG, "audio", "audio_resnet", model, method, data, attributions,
                                   torch.device("cpu"))
    protocol, domain, ranking = evaluate.scoring_plan(CONFIG, method, "audio")[0]
    net, inputs, _ = evaluate.data_spaces(CONFIG, "audio", model, x)[domain]
    inputs, options = protocols.setup(protocol, "audio", domain, inputs, seed=42)
    attribution = attributions["pixel"]
    if domain == "wavelet":
        attribution = transform.unbands(protocols.rank_maps(attributions["wavelet"], ranking), 1)
        options.update(CONFIG.section("wavelet")["audio"])
    for name in CONFIG.evaluation_metrics:
        rows = scores[scores["metric"] == name]
        assert len(rows) == 3                                        # one per input: the Table 1 cell only
        assert set(zip(rows["protocol"], rows["domain"], rows["ranking"], rows["auc"], strict=True)) == {
            (protocol, domain, ranking, "-")}
        expected = metrics.get(name)(net, inputs, data.y, attribution, domain=domain, **options)
        assert rows["value"].tolist() == pytest.approx(expected.tolist(), abs=1e-6)


def test_appendix_table_summarises_and_marks_the_best():
    rows = []
    for method, base in (("saliency", 0.1), ("wam_sg", 0.5)):
        for metric in ("faithfulness_of_spectra", "input_fidelity", "mu_fidelity", "insertion"):
            for i in range(4):
                rows.append({"dataset": "audio", "model": "audio_resnet", "method": method, "metric": metric,
                             "auc": "paper" if metric == "insertion" else "-", "protocol": "reference",
                             "degenerate": False, "sample_id": str(i), "value": base + 0.1 * i})
                # the protocol-sensitivity row of the same input (unequal settings): never pooled with it
                rows.append({**rows[-1], "protocol": "reference_unequal", "value": 100.0})
    summary = tables.appendix_metrics(pd.DataFrame(rows), CONFIG, 50, 0)
    assert set(summary["metric"]) == {"faithfulness_of_spectra", "input_fidelity", "mu_fidelity"}
    assert summary["label"].tolist()[:1] == ["Saliency"] and (summary["n"] == 4).all()
    wam = summary[(summary["method"] == "wam_sg") & (summary["metric"] == "input_fidelity")].iloc[0]
    assert wam["mean"] == pytest.approx(0.65) and wam["ci_low"] <= 0.65 <= wam["ci_high"]
    md = tables.appendix_markdown(summary, "reference")
    assert md.startswith("| label | audio / audio_resnet / faithfulness_of_spectra |") and "Parekh" in md
    tex = tables.appendix_latex(summary)
    assert "\\toprule" in tex and tex.count("\\textbf{0.650}") == 3 and tex.count("\\underline{0.250}") == 3
    assert tables.appendix_markdown(summary.iloc[:0], "reference") == "(no values)\n"


@pytest.fixture
def own_metrics(monkeypatch):
    """Metrics registered for one test only (a plug-in's, as ``plugins:`` would load them)."""
    metrics.available()
    monkeypatch.setattr(metric_registry.METRICS, "_entries", dict(metric_registry.METRICS._entries))

    @metrics.register("wb_mean_magnitude")
    def mean_magnitude(model, x, y, attribution, **kwargs):
        return attribution.flatten(1).abs().mean(1)

    @metrics.register("wb_drop_curve")
    def drop_curve(model, x, y, attribution, **kwargs):
        return metrics.deletion(model, x, y, attribution, steps=4, **kwargs)

    @metrics.register("wb_no_kwargs")
    def no_kwargs(model, x, y, attribution):
        return x

    @metrics.register("wb_per_feature")
    def per_feature(model, x, y, attribution, **kwargs):
        return attribution


def test_evaluation_metrics_choose_what_score_adds(own_metrics):
    """A ``[B]`` metric gives one row per input (``auc`` ``-``), a curve its two areas; the default's are left out
    when the list does not name them."""
    config = Config.from_dict({**CONFIG.raw, "evaluation": {**CONFIG.section("evaluation"),
                                                            "metrics": ["wb_mean_magnitude", "wb_drop_curve"]}})
    torch.manual_seed(0)
    model = models.build("audio_resnet", 3)
    x = torch.randn(2, 22050)
    data = Split(x, torch.tensor([0, 1]), ["a", "b"], 3, ["p", "q", "r"])
    attributions = explain.explain(config, "audio", model, "saliency", x, data.y)
    with torch.no_grad():
        scores, _ = evaluate.score(config, "audio", "audio_resnet", model, "saliency", data, attributions,
                                   torch.device("cpu"))
    assert not scores["metric"].isin(["faithfulness_of_spectra", "input_fidelity"]).any()
    mine = scores[scores["metric"] == "wb_mean_magnitude"]
    assert mine["auc"].tolist() == ["-", "-"]
    expected = attributions["pixel"].flatten(1).abs().mean(1)  # saliency's Table 1 cell: its pixel (log-mel) map
    assert mine["value"].tolist() == pytest.approx(expected.tolist(), rel=1e-6)
    assert sorted(scores[scores["metric"] == "wb_drop_curve"]["auc"]) == ["paper", "paper", "trapezoid", "trapezoid"]


@pytest.mark.parametrize("names,match", [
    (["wb_no_such_metric"], "evaluation.metrics: unknown metric 'wb_no_such_metric'"),
    (["wb_no_kwargs"], "evaluation.metrics: 'wb_no_kwargs' cannot be called as metric.*takes \\*\\*kwargs"),
    (["wb_per_feature"], "evaluation.metrics: 'wb_per_feature' returned \\(2, 4, 4\\); expected one value per input"),
])
def test_a_metric_the_score_stage_cannot_use_is_named(own_metrics, names, match):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    with pytest.raises(ValueError, match=match):
        evaluate.extra_scores(tuple(names), model, torch.rand(2, 1, 4, 4), torch.tensor([0, 1]), torch.rand(2, 4, 4),
                              "pixel", None, {}, 8)


def test_evaluation_metrics_are_checked_by_the_config_and_the_preflight(own_metrics):
    def config(names):
        return Config.from_dict({"evaluation": {"metrics": names}})

    assert config(["wb_mean_magnitude"]).evaluation_metrics == ("wb_mean_magnitude",)
    with pytest.raises(ValueError, match="evaluation.metrics: 'mu_fidelity' is always scored"):
        config(["mu_fidelity"])
    with pytest.raises(ValueError, match="evaluation.metrics: 'wb_mean_magnitude' is listed twice"):
        config(["wb_mean_magnitude", "wb_mean_magnitude"])
    assert checks.metric_problems(config(["input_fidelity", "wb_mean_magnitude"])) == []
    (problem,) = checks.metric_problems(config(["wb_mean_magnitde"]))
    assert problem.startswith("evaluation.metrics: unknown metric 'wb_mean_magnitde' (did you mean "
                              "'wb_mean_magnitude'?)") and problem.endswith("(or a plug-in: `plugins:`)")


def test_another_metric_joins_the_appendix_table_unmarked():
    """A plug-in metric of ``evaluation.metrics`` gets its columns after the three built-in ones, in the Markdown
    (named in the caption) and in LaTeX, where its best value is not marked (its direction is its own)."""
    config = Config.from_dict({**CONFIG.raw, "evaluation": {**CONFIG.section("evaluation"),
                                                            "metrics": ["input_fidelity", "wb_mean_magnitude"]}})
    rows = [{"dataset": "audio", "model": "audio_resnet", "method": method, "metric": metric, "auc": "-",
             "protocol": "reference",
             "degenerate": False, "sample_id": str(i), "value": base + 0.1 * i}
            for method, base in (("saliency", 0.1), ("wam_sg", 0.5))
            for metric in ("faithfulness_of_spectra", "input_fidelity", "mu_fidelity", "wb_mean_magnitude")
            for i in range(2)]
    summary = tables.appendix_metrics(pd.DataFrame(rows), config, 20, 0)
    assert set(summary["metric"]) == {"input_fidelity", "mu_fidelity", "wb_mean_magnitude"}  # FF: not listed
    assert "wb_mean_magnitude, as each metric defines it" in tables.appendix_markdown(summary, "reference")
    tex = tables.appendix_latex(summary)
    assert "Fid-in ($\\uparrow$) & $\\mu$-Fidelity ($\\uparrow$) & wb\\_mean\\_magnitude \\\\" in tex
    assert tex.count("\\textbf{") == 2 and "0.550 \\\\" in tex  # wam_sg's mean, unmarked in the last column
