"""The extended metrics of the workflow (workflow/lib/experiments/metrics_extended.py) with known answers: each row
recomputed by the library metric called directly, per-input scores independent of the batch, the tables from
per-input rows, Kendall tau and the flip shares on constructed rankings, Table 1's scores picked from scores.csv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch

import baselines
import metrics
from tests.models import image_model
from wam import transform
from workflow.lib.config import Config
from workflow.lib.experiments import metrics_extended as ext

WAVELET = {"wavelet": "haar", "levels": 2, "mode": "reflect"}
RAW = {"seed": 0, "device": "cpu",
       "datasets": {"img": {"modality": "images", "models": ["tiny"]}},
       "methods": {"saliency": {"kind": "baseline", "label": "Saliency"},
                   "gradcam": {"kind": "baseline", "label": "GradCAM"}},
       "wavelet": {"images": WAVELET},
       "evaluation": {"batch_size": 4, "bootstrap": 200, "protocol": "reference", "domains": ["pixel", "wavelet"],
                      "ranking": "per_band"},
       "metrics_extended": {"methods": ["saliency", "gradcam"], "stability": {"radius": {"images": 0.1}}}}
CONFIG = Config.from_dict(RAW)
ROAD = {"percentages": [20, 60], "noise": 0.01, "stencil": "axes", "batch_size": 4, "seed": 0, **WAVELET}


def _inputs(n: int = 3) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    gen = torch.Generator().manual_seed(5)
    return torch.rand(n, 3, 16, 16, generator=gen), torch.tensor([0, 1, 2, 3][:n]), [f"s{i}" for i in range(n)]


def _maps(model, x, y):
    pixel = baselines.get("saliency", model)(x, y).sum(1)
    bands = [b.abs() for b in transform.bands(transform.wavedec(pixel.unsqueeze(1), 2, **WAVELET))]
    return pixel, bands


def _rows(model, x, y, ids) -> pd.DataFrame:
    """ROAD, complexity and stability rows of Saliency, as ``run`` computes them for one method."""
    out = ext.Rows("img", "tiny", ids)
    pixel, bands = _maps(model, x, y)
    ranked = {"pixel": pixel, "wavelet": transform.unbands(bands, 2)}
    spaces = {d: (model, x, None) for d in ext.DOMAINS}
    with torch.no_grad():
        ext.road_rows(out, "saliency", spaces, y, ranked, ROAD)
    ext.complexity_rows(out, "saliency", pixel, bands)
    explain = ext.DomainExplainer(CONFIG.with_methods(["saliency"], "images"), "img", "saliency")
    ext.stability_rows(out, "saliency", explain, model, x, y, 0.1, samples=3, seed=0, batch_size=4, wavelet=WAVELET)
    return out.frames()[0]


def _cell(rows: pd.DataFrame, metric: str, domain: str, auc: str = "-") -> torch.Tensor:
    part = rows[(rows["metric"] == metric) & (rows["domain"] == domain) & (rows["auc"] == auc)]
    return torch.tensor(part["value"].to_numpy(), dtype=torch.float32)


def test_each_row_is_the_library_metric_called_directly():
    model, (x, y, ids) = image_model(), _inputs()
    rows = _rows(model, x, y, ids)
    pixel, bands = _maps(model, x, y)
    options = {k: v for k, v in ROAD.items()}
    morf = metrics.road_morf(model, x, y, pixel, **options)
    lerf = metrics.road_lerf(model, x, y, pixel, **options)
    torch.testing.assert_close(_cell(rows, "road_morf", "pixel", "paper"), morf.auc("paper"))
    torch.testing.assert_close(_cell(rows, "road", "pixel", "trapezoid"), lerf.auc("trapezoid") - morf.auc("trapezoid"))
    wavelet = metrics.road_morf(model, x, y, transform.unbands(bands, 2), domain="wavelet", **options)
    torch.testing.assert_close(_cell(rows, "road_morf", "wavelet", "paper"), wavelet.auc("paper"))
    torch.testing.assert_close(_cell(rows, "sparseness", "wavelet"), metrics.sparseness([b[:, 0] for b in bands]))
    torch.testing.assert_close(_cell(rows, "complexity", "pixel"), metrics.complexity(pixel))

    def saliency(m, xs, ys):
        return baselines.get("saliency", m)(xs, ys).sum(1)

    torch.testing.assert_close(_cell(rows, "max_sensitivity", "pixel"), metrics.max_sensitivity(
        model, x, y, explain=saliency, samples=3, lower_bound=0.1, seed=0))
    torch.testing.assert_close(_cell(rows, "relative_input_stability", "pixel"), metrics.relative_input_stability(
        model, x, y, explain=saliency, samples=3, lower_bound=0.01, upper_bound=0.1, seed=0))
    assert set(rows["metric"]) == {*ext.ROAD, *ext.STABILITY, *ext.COMPLEXITY}
    assert len(rows) == len(ids) * 2 * (3 * 2 + 3 + 2)  # inputs x domains x (ROAD x AUCs + stability + complexity)


def test_an_inputs_scores_do_not_depend_on_its_batch():
    """In float64 (in float32, RIS, which divides by every map value, moves by up to 3 % with the rounding of a
    gradient computed in another batch)."""
    model, (x, y, ids) = image_model().double(), _inputs()
    x = x.double()
    whole = _rows(model, x, y, ids)
    alone = pd.concat([_rows(model, x[i:i + 1], y[i:i + 1], ids[i:i + 1]) for i in range(len(ids))])
    merged = whole.merge(alone, on=["metric", "domain", "auc", "sample_id"], suffixes=("", "_alone"))
    assert len(merged) == len(whole)
    assert merged["value"].to_numpy() == pytest.approx(merged["value_alone"].to_numpy(), rel=1e-6, abs=1e-9)


def test_the_tables_are_means_of_the_per_input_rows():
    rows = pd.DataFrame({"dataset": "img", "model": "tiny", "method": ["gradcam"] * 3 + ["saliency"] * 3,
                         "metric": "road_morf", "domain": "pixel", "auc": "paper", "sample_id": list("abcabc"),
                         "value": [0.2, 0.4, 0.9, 0.1, 0.1, 0.4]})
    table = ext.metric_table(rows, ext.ROAD, CONFIG, resamples=300, seed=0)
    assert table["method"].tolist() == ["saliency", "gradcam"]  # configuration order
    assert table["mean"].tolist() == pytest.approx([0.2, 0.5]) and table["n"].tolist() == [3, 3]
    assert (table["ci_low"] <= table["mean"]).all() and (table["mean"] <= table["ci_high"]).all()
    md = ext.metric_markdown(table, ext.CAPTIONS["road"])
    assert md.startswith("ROAD (Rong et al., 2022)") and "Good: a low MoRF AUC" in md
    assert "| Saliency | 0.200 [" in md
    tiny = table.assign(mean=table["mean"] * 1e-6, ci_low=table["ci_low"] * 1e-6, ci_high=table["ci_high"] * 1e-6)
    assert "| Saliency | 2.00e-07 [" in ext.metric_markdown(tiny, ext.CAPTIONS["road"])  # never read as 0.000


def _long(values: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """Per-input scores ``{metric: {method: [values]}}`` in :func:`long_scores`' layout."""
    return pd.DataFrame([{"dataset": "img", "model": "tiny", "modality": "images", "method": method, "metric": metric,
                          "sample_id": f"s{i}", "value": v}
                         for metric, per_method in values.items() for method, vs in per_method.items()
                         for i, v in enumerate(vs)])


def test_kendall_tau_is_scipys_on_the_oriented_means_and_the_flip_shares_have_known_answers():
    long = _long({
        "insertion (pixel)": {"a": [0.9, 0.8], "b": [0.5, 0.4], "c": [0.6, 0.7]},    # a > c > b
        "deletion (pixel)": {"a": [0.1, 0.1], "b": [0.2, 0.3], "c": [0.5, 0.4]},     # lower is better: a > b > c
        "complexity (wavelet)": {"a": [3.0, 1.0], "b": [2.0, 2.0], "c": [np.inf, 1.0]},  # c not finite: left out
    })
    table = ext.agreement(long, resamples=4000, seed=0)
    tau = table[table["measure"] == "kendall_tau"].set_index(["metric", "other"])
    expected = scipy.stats.kendalltau([0.85, 0.45, 0.65], [-0.1, -0.25, -0.45]).statistic
    assert tau.loc[("insertion (pixel)", "deletion (pixel)"), "value"] == pytest.approx(expected)
    assert tau.loc[("insertion (pixel)", "complexity (wavelet)"), "n_methods"] == 2
    flips = table[table["measure"] == "flip_bootstrap"].set_index("metric")["value"]
    assert flips["insertion (pixel)"] == 0.0  # every input orders the methods alike
    # b - a on the inputs: +3, -1 (mean +1); a resample flips the order when it draws the -1 twice (p = 1/4)
    two = ext.agreement(_long({"sparseness (pixel)": {"a": [0.0, 1.0], "b": [3.0, 0.0]}}), resamples=4000, seed=0)
    assert two["value"].iloc[0] == pytest.approx(0.25, abs=0.02)


def test_the_seed_flip_share_compares_every_pair_of_training_seeds():
    long = _long({"insertion (pixel)": {"a": [0.2], "b": [0.5]}})
    seeds = pd.concat([_long({"insertion (pixel)": {"a": [a], "b": [b]}}).assign(seed=s)
                       for s, (a, b) in enumerate([(0.2, 0.5), (0.1, 0.6), (0.7, 0.3)])])
    row = ext.agreement(long, 100, 0, seeds).set_index("measure").loc["flip_seeds"]
    assert row["value"] == pytest.approx(2 / 3) and row["n_replicates"] == 3  # seed 2 flips against seeds 0 and 1
    md = ext.agreement_markdown(ext.agreement(long, 100, 0, seeds))
    assert md.startswith("Do the metrics agree?") and "| insertion (pixel) | 0.000 (2 methods, 100) |" in md


def test_table1_scores_of_the_agreement_are_the_same_domain_cells():
    base = {"dataset": "img", "model": "tiny", "method": "saliency", "sample_id": "s0", "degenerate": False}
    scores = pd.DataFrame([
        {**base, "metric": "insertion", "domain": "pixel", "auc": "paper", "protocol": "reference", "ranking": "-",
         "value": 1.0},
        {**base, "metric": "insertion", "domain": "wavelet", "auc": "paper", "protocol": "reference",
         "ranking": "per_band", "value": 2.0},
        {**base, "metric": "insertion", "domain": "wavelet", "auc": "paper", "protocol": "reference",
         "ranking": "raw", "value": 9.0},   # another ranking: not a same-domain cell
        {**base, "metric": "insertion", "domain": "pixel", "auc": "trapezoid", "protocol": "reference",
         "ranking": "-", "value": 9.0},
        {**base, "metric": "deletion", "domain": "pixel", "auc": "paper", "protocol": "clean", "ranking": "-",
         "value": 9.0},
        {**base, "metric": "mu_fidelity", "domain": "pixel", "auc": "-", "protocol": "reference", "ranking": "-",
         "value": 3.0},
        {**base, "metric": "mu_fidelity", "domain": "pixel", "auc": "-", "protocol": "reference_unequal",
         "ranking": "-", "value": 9.0}])
    rows = pd.DataFrame([{"dataset": "img", "model": "tiny", "method": "saliency", "metric": "road", "domain": "pixel",
                          "auc": a, "sample_id": "s0", "value": v} for a, v in (("paper", 4.0), ("trapezoid", 9.0))])
    long = ext.long_scores(rows, scores, CONFIG, ["saliency"])
    assert dict(zip(long["metric"], long["value"], strict=True)) == {
        "insertion (pixel)": 1.0, "insertion (wavelet)": 2.0, "mu_fidelity (pixel)": 3.0, "road (pixel)": 4.0}


def test_settings_name_the_key_of_what_the_schema_cannot_check():
    assert ext.settings(CONFIG)["road"]["stencil"] == "axes"
    with pytest.raises(ValueError, match=r"metrics_extended.methods: \['lrp'\]"):
        ext.settings(Config.from_dict({**RAW, "metrics_extended": {**RAW["metrics_extended"], "methods": ["lrp"]}}))
    with pytest.raises(ValueError, match=r"metrics_extended.stability.radius: .*\['images'\]"):
        ext.settings(Config.from_dict({**RAW, "metrics_extended": {"methods": ["saliency"],
                                                                    "stability": {"radius": {"audio": 0.1}}}}))


def test_seed_scores_are_table1s_of_every_seed_on_the_inputs_of_the_rows(tmp_path):
    """The main run's scores for training.seed and a replicate file for seed 7; input s1 (not in the rows) and the
    new metrics are left out, so the flip share compares the seeds' insertion on s0 alone: one flip in one pair."""
    config = Config.from_dict({**RAW, "training": {"seed": 42}})
    base = {"dataset": "img", "model": "tiny", "metric": "insertion", "domain": "pixel", "auc": "paper",
            "protocol": "reference", "ranking": "-", "degenerate": False}

    def scores(values):
        return pd.DataFrame([{**base, "method": m, "sample_id": sid, "value": v}
                             for (m, sid), v in values.items()])

    main = scores({("saliency", "s0"): 0.9, ("gradcam", "s0"): 0.1, ("saliency", "s1"): 0.0, ("gradcam", "s1"): 5.0})
    scores({("saliency", "s0"): 0.2, ("gradcam", "s0"): 0.3}).assign(seed=7).to_csv(tmp_path / "r.csv", index=False)
    rows = pd.DataFrame([{"dataset": "img", "model": "tiny", "method": m, "metric": "sparseness", "domain": "pixel",
                          "auc": "-", "sample_id": "s0", "value": 0.5} for m in ("saliency", "gradcam")])
    seeds = ext.seed_scores(config, rows, main, [tmp_path / "r.csv"], ["saliency", "gradcam"])
    assert sorted(seeds["seed"].unique()) == [7, 42] and set(seeds["metric"]) == {"insertion (pixel)"}
    assert set(seeds["sample_id"]) == {"s0"}
    table = ext.agreement(ext.long_scores(rows, main, config, ["saliency", "gradcam"]), 50, 0, seeds)
    assert table.set_index(["measure", "metric"]).loc[("flip_seeds", "insertion (pixel)"), "value"] == 1.0
