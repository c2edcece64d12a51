"""The appendix table of baselines (tables.appendix_baselines): every method of the configuration on every data
set and model, both domains, both AUCs, under the configured protocol and same-domain ranking; known means."""

from __future__ import annotations

import itertools

import pandas as pd

from workflow.lib.config import Config
from workflow.lib.reporting import tables

CONFIG = Config.from_dict({
    "seed": 0,
    "datasets": {"images": {"modality": "images", "models": ["efficientnet_lite0"]},
                 "volumes": {"modality": "volumes", "models": ["resnet3d", "vit3d"]}},
    "methods": {"wam_sg": {"kind": "wam", "label": "WAM-SG"}, "lrp": {"kind": "baseline", "label": "LRP"},
                "layercam": {"kind": "baseline", "label": "LayerCAM"},
                "guided_backprop": {"kind": "baseline", "label": "Guided Backprop"}},
    "evaluation": {"protocol": "reference", "ranking": "per_band", "bootstrap": 50},
})
PAIRS = [("images", "efficientnet_lite0"), ("volumes", "resnet3d"), ("volumes", "vit3d")]
RANK = {"pixel": "-", "wavelet": "per_band"}


def value(method: str, metric: str, domain: str, auc: str, sample: int) -> float:
    """A known value per cell: methods in config order score 0.1 apart, deletion the other way round."""
    i = list(CONFIG.methods).index(method)
    base = {"insertion": 0.5 + 0.1 * i, "deletion": 0.5 - 0.1 * i}.get(metric, 0.2 * i)
    return base + 0.01 * (domain == "wavelet") + 0.001 * (auc == "trapezoid") + 0.0001 * sample


def scores() -> pd.DataFrame:
    rows = []
    for (dataset, model), method, metric, domain, auc, sample in itertools.product(
            PAIRS, [*CONFIG.methods, "saliency"], tables.METRICS, ("pixel", "wavelet"), ("paper", "trapezoid"),
            range(3)):
        v = value(method, metric, domain, auc, sample) if method != "saliency" else 9.0
        rows.append((dataset, model, method, metric, domain, auc, "reference", RANK[domain], False, f"s{sample}", v))
        # rows the table must leave out: the other protocol, the other wavelet ranking
        rows.append((dataset, model, method, metric, domain, auc, "clean", RANK[domain], False, f"s{sample}", 9.0))
        if domain == "wavelet":
            rows.append((dataset, model, method, metric, domain, auc, "reference", "raw", False, f"s{sample}", 9.0))
    rows.append(("images", "efficientnet_lite0", "lrp", "mu_fidelity", "pixel", "-", "reference", "-", False, "s0",
                 9.0))
    return pd.DataFrame(rows, columns=["dataset", "model", "method", "metric", "domain", "auc", "protocol",
                                       "ranking", "degenerate", "sample_id", "value"])


def test_every_configured_method_dataset_domain_and_auc_with_known_means():
    summary = tables.appendix_baselines(scores(), CONFIG, resamples=50, seed=0)
    assert len(summary) == len(PAIRS) * len(CONFIG.methods) * 3 * 2 * 2
    assert set(summary["method"]) == set(CONFIG.methods)  # saliency is registered but not configured
    assert list(dict.fromkeys(summary["label"])) == ["WAM-SG", "LRP", "LayerCAM", "Guided Backprop"]
    assert list(dict.fromkeys(zip(summary["domain"], summary["auc"], strict=True))) == [
        ("pixel", "paper"), ("pixel", "trapezoid"), ("wavelet", "paper"), ("wavelet", "trapezoid")]
    for row in summary.itertuples():
        assert row.n == 3
        expected = sum(value(row.method, row.metric, row.domain, row.auc, s) for s in range(3)) / 3
        assert abs(row.mean - expected) < 1e-12  # no excluded row (9.0) leaked in
        assert row.ci_low <= row.mean <= row.ci_high


def test_markdown_and_latex_show_each_block_and_mark_the_best():
    summary = tables.appendix_baselines(scores(), CONFIG, resamples=50, seed=0)
    md = tables.appendix_baselines_markdown(summary, CONFIG)
    for block in ("pixel domain, paper AUC", "pixel domain, trapezoid AUC", "wavelet domain, paper AUC",
                  "wavelet domain, trapezoid AUC"):
        assert f"**{block}**" in md
    assert "`reference` protocol" in md and "ranked `per_band`" in md
    tex = tables.appendix_baselines_latex(summary)
    assert tex.count("\\textit{") == 4 and tex.count("\\midrule") == 4
    # Guided Backprop (last in config order) has the highest insertion and the lowest deletion: bold in every
    # insertion and deletion column; LayerCAM second
    gbp = next(line for line in tex.splitlines() if line.startswith("Guided Backprop"))
    assert gbp.count("\\textbf{") == 3 * len(PAIRS)
    assert gbp.startswith("Guided Backprop & \\textbf{0.800} & \\textbf{0.200} & \\textbf{0.600}")  # pixel, paper
    layercam = next(line for line in tex.splitlines() if line.startswith("LayerCAM"))
    assert layercam.count("\\underline{") == 3 * len(PAIRS)
    assert tables.appendix_baselines_latex(summary.iloc[:0]) == "% no values\n"
    assert tables.appendix_baselines_markdown(summary.iloc[:0], CONFIG) == "(no values)\n"
