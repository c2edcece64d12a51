"""Faithfulness of Spectra and Input Fidelity in the score stage (once per method, in its Table 1 cell setting) and
the appendix table (tables.appendix_metrics: method x data set, mean with bootstrap CI, LaTeX with the best bold)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import metrics
from metrics import protocols
from wam import transform
from workflow.lib import attribution as explain
from workflow.lib import scoring as evaluate
from workflow.lib.config import Config
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
    for name in evaluate.SPECTRA_METRICS:
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
                             "protocol": "reference", "degenerate": False, "sample_id": str(i),
                             "value": base + 0.1 * i})
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
