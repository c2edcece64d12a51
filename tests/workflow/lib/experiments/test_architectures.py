"""The architectures target (workflow/lib/experiments/architectures.py): the five family builders on 32x32 inputs and
their CAM targets, the table's arithmetic recomputed from per-sample scores by numpy, degenerate counts, WAM's
advantage and its verdict, LRP conservation, bad settings naming their key, the preflight's weights check, a
two-architecture run of every stage, and the target in the default DAG."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from baselines.cam_target import CamTarget, resolve_cam_target
from baselines.lrp import architecture, auto_canonizer
from tests.workflow.helpers import ROOT
from workflow.lib.config import Config
from workflow.lib.data import checks
from workflow.lib.experiments import architectures as A
from workflow.lib.models import zoo
from workflow.lib.models.families import FAMILIES
from workflow.lib.scoring import SCORE_COLUMNS

DEFAULT = yaml.safe_load((ROOT / "workflow" / "config" / "default.yaml").read_text())

# family -> (the CAM target resolved on a 32x32 input, the LRP family)
EXPECTED = {
    "resnet": (CamTarget("layer4", "feature_map", (4, 4)), "resnet"),
    "convnext": (CamTarget("stages", "feature_map", (4, 4)), "convnext"),
    "vit": (CamTarget("blocks.3.norm1", "tokens", (8, 8), 1), "transformer"),
    "swin": (CamTarget("layers.1.blocks.1.norm1", "channels_last", (4, 4)), "transformer"),
    "efficientnet": (CamTarget("bn2", "feature_map", (4, 4)), "efficientnet"),
}


def raw_config(tmp_path: Path, **section) -> dict:
    c = copy.deepcopy(DEFAULT)
    c["resources"] = str(tmp_path / "resources")
    c["architectures"].update(section)
    return c


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_maps_a_32x32_input_to_logits_and_its_cam_target_is_found(family, tmp_path):
    torch.manual_seed(0)
    model = zoo.build(FAMILIES[family], 5)
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, 5)
    target, lrp_family = EXPECTED[family]
    assert resolve_cam_target(model, x) == target
    assert architecture(model) == lrp_family
    assert auto_canonizer(lrp_family) == {"transformer": "attnlrp"}.get(lrp_family, lrp_family)
    back = zoo.load(zoo.save(model, tmp_path / "m.pt"))
    with torch.no_grad():
        assert torch.equal(back(x), logits)


# ----------------------------------------------------------------------------- the table's arithmetic

METHODS = {"saliency": "baseline", "gradcam": "baseline", "wam_sg": "wam", "wam_ig": "wam"}
SAMPLES = [f"s{i}" for i in range(6)]


def synthetic(seed: int = 0) -> tuple[Config, pd.DataFrame, list[dict]]:
    """Two architectures x four methods x two domains x three metrics over six inputs, seeded values; on ``a`` WAM-IG
    is far ahead of every baseline in the wavelet domain, on ``b`` both WAM methods far behind; GradCAM's maps on
    ``b`` are degenerate on the first two inputs; LRP-like conservation rows on ``a``; distractor rows of another
    protocol, AUC and metric, which the table must ignore."""
    raw = raw_config(Path("/nonexistent"), models={"a": {"label": "A", "model": "tiny_resnet"},
                                                    "b": {"label": "B", "model": "tiny_vit"}},
                     methods=list(METHODS), n_inputs=len(SAMPLES))
    raw["methods"] = {m: {"kind": k, "label": m.upper()} for m, k in METHODS.items()}
    config = Config.from_dict(raw)
    rng = np.random.default_rng(seed)
    rows = []
    for arch in ("a", "b"):
        for method in METHODS:
            for domain in ("pixel", "wavelet"):
                ranking = "per_band" if domain == "wavelet" else "-"
                for i, sample in enumerate(SAMPLES):
                    ins, dele = rng.uniform(0.3, 0.6), rng.uniform(0.1, 0.4)
                    if METHODS[method] == "wam" and domain == "wavelet":
                        ins = ins + (0.5 if (arch, method) == ("a", "wam_ig") else -0.5 if arch == "b" else 0.0)
                    degenerate = arch == "b" and method == "gradcam" and i < 2
                    for metric, value in (("insertion", ins), ("deletion", dele), ("faithfulness", ins - dele)):
                        base = ("images", arch, method, metric, domain)
                        rows.append((*base, "paper", "reference", ranking, degenerate, sample, value))
                        rows.append((*base, "trapezoid", "reference", ranking, degenerate, sample, value + 7))
                        rows.append((*base, "paper", "clean", ranking, degenerate, sample, value - 7))
                    rows.append(("images", arch, method, "mu_fidelity", "pixel", "-", "reference", "-", False,
                                 sample, 9.0))
    for i, sample in enumerate(SAMPLES):
        rows.append(("images", "a", "saliency", "conservation_ratio", "-", "-", "-", "-", False, sample, 0.9 + i / 100))
    summaries = [{"architecture": a, "label": a.upper(), "model": m, "family": f, "n_parameters": 10,
                  "test_accuracy": 0.9, "eval_accuracy": 1.0, "lrp": {"canonizer": c}}
                 for a, m, f, c in (("a", "tiny_resnet", "resnet", "resnet"),
                                    ("b", "tiny_vit", "transformer", "attnlrp"))]
    return config, pd.DataFrame(rows, columns=SCORE_COLUMNS), summaries


def numpy_bootstrap(values: np.ndarray, resamples: int, seed: int) -> tuple[float, float, float]:
    """Mean and 95 % percentile interval, written apart from workflow.lib.reporting.tables.bootstrap."""
    picks = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    means = np.take(values, picks).mean(axis=1)
    return float(np.mean(values)), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def test_every_cell_is_the_numpy_mean_and_bootstrap_of_its_rows_and_counts_its_degenerate_maps():
    config, scores, summaries = synthetic()
    table = A.summary_table(config, scores, summaries)
    cells = table[table["method"] != A.ADVANTAGE]
    assert len(cells) == 2 * len(METHODS) * 2 * 3
    resamples = config.section("evaluation")["bootstrap"]
    for row in cells.itertuples():
        mine = scores[(scores["model"] == row.architecture) & (scores["method"] == row.method)
                      & (scores["domain"] == row.domain) & (scores["metric"] == row.metric)
                      & (scores["auc"] == "paper") & (scores["protocol"] == "reference")]
        values = mine["value"].to_numpy()
        assert row.n == len(SAMPLES) == len(values)
        np.testing.assert_allclose((row.mean, row.ci_low, row.ci_high),
                                   numpy_bootstrap(values, resamples, config.seed), rtol=0, atol=1e-12)
        assert row.degenerate == (2 if (row.architecture, row.method) == ("b", "gradcam") else 0)
    conserved = table[table["architecture"] == "a"].iloc[0]
    ratios = 0.9 + np.arange(6) / 100
    np.testing.assert_allclose([conserved.conservation_median, conserved.conservation_min, conserved.conservation_max,
                                conserved.conservation_error],
                               [np.median(ratios), ratios.min(), ratios.max(), np.median(np.abs(ratios - 1))])
    assert table[table["architecture"] == "b"]["conservation_median"].isna().all()
    assert set(table["lrp_canonizer"]) == {"resnet", "attnlrp"}


def test_wams_advantage_is_the_paired_gap_of_the_best_of_each_kind_with_its_verdict():
    config, scores, summaries = synthetic()
    table = A.summary_table(config, scores, summaries)
    gaps = table[table["method"] == A.ADVANTAGE].set_index(["architecture", "domain"])
    assert sorted(gaps.index) == sorted((a, s) for a in "ab" for s in A.SETTINGS)
    faith = scores[(scores["metric"] == "faithfulness") & (scores["auc"] == "paper")
                   & (scores["protocol"] == "reference")]
    for (arch, setting), row in gaps.iterrows():
        wam_domain, baseline_domain = A.SETTINGS[setting]
        per = {d: faith[(faith["model"] == arch) & (faith["domain"] == d)].pivot(
            index="sample_id", columns="method", values="value") for d in ("pixel", "wavelet")}
        best_wam = max(("wam_sg", "wam_ig"), key=lambda m: per[wam_domain][m].mean())
        best_baseline = max(("saliency", "gradcam"), key=lambda m: per[baseline_domain][m].mean())
        assert (row.best_wam, row.best_baseline) == (best_wam, best_baseline)
        gap = (per[wam_domain][best_wam] - per[baseline_domain][best_baseline]).to_numpy()
        mean, low, high = numpy_bootstrap(gap, config.section("evaluation")["bootstrap"], config.seed)
        np.testing.assert_allclose((row["mean"], row.ci_low, row.ci_high), (mean, low, high), atol=1e-12)
        assert row.verdict == ("ahead" if low > 0 else "behind" if high < 0 else "tied")
    assert gaps.loc[("a", "wavelet"), "verdict"] == "ahead" and gaps.loc[("b", "wavelet"), "verdict"] == "behind"
    text = A.markdown(config, table)
    assert "WAM's advantage does not hold across families" in text
    assert "both in the wavelet domain: ahead on 1 (A), behind on 1 (B) of 2" in text
    assert "| GRADCAM | 0 / 0 | 2 / 2 |" in text  # degenerate counts per method and architecture, both domains
    assert "GRADCAM on B (2 of 6, pixel domain)" in text
    assert "| A | resnet | resnet | 0.925 | 0.900 | 0.950 | 0.075 |" in text  # conservation median, min, max, error


# ----------------------------------------------------------------------------- settings and preflight


@pytest.mark.parametrize(("change", "key"), [
    ({"data": "audio"}, "architectures.data"),
    ({"methods": ["wam_sg", "nope"]}, "architectures.methods"),
    ({"models": {"r": {"model": "tiny_resnt"}}}, "architectures.models.r.model"),
    ({"models": {"r": {"model": "timm:resnet50"}}}, "architectures.models.r.model"),  # pretrained on textures
    ({"data": "images", "models": {"r": {"model": "tiny_resnet"}}}, "architectures.models.r.model"),  # trained
    ({"n_inputs": 321}, "architectures.n_inputs"),
])
def test_bad_settings_raise_naming_the_key(change, key, tmp_path):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        A.settings(Config.from_dict(raw_config(tmp_path, **change)))


def test_the_preflight_names_each_pretrained_model_whose_weights_need_the_network(tmp_path, monkeypatch):
    monkeypatch.setattr(checks, "hub_cached", lambda repo: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = Config.from_dict(raw_config(tmp_path, data="images", n_inputs=None, models={
        "r50": {"model": "timm:resnet50"}, "swin": {"model": "timm:swin_tiny_patch4_window7_224"}}))
    with pytest.raises(ValueError) as error:
        A.preflight(config)
    message = str(error.value)
    for key, name in (("r50", "resnet50"), ("swin", "swin_tiny_patch4_window7_224")):
        assert (f"architectures.models.{key}.model (timm:{name}): pretrained weights are not in the Hugging Face "
                f"cache") in message
    assert "HF_HUB_OFFLINE forbids downloading them" in message
    monkeypatch.setattr(checks, "hub_cached", lambda repo: True)
    A.preflight(config)  # cached: no problem


# ----------------------------------------------------------------------------- the stages, end to end


def test_two_architectures_trained_explained_scored_and_reported(tmp_path):
    """One epoch each (the pipeline, not the accuracy), three methods on five crops: the table has every cell,
    LRP takes AttnLRP on the Swin and zennit's EfficientNet canonizer, the CAM targets are recorded."""
    models = {"efficientnet": {"label": "EfficientNet", "model": "tiny_efficientnet"},
              "swin": {"label": "Swin", "model": "tiny_swin"}}
    raw = raw_config(tmp_path, models=models, methods=["gradcam", "lrp", "wam_sg"], n_inputs=5,
                     training={"epochs": 1, "batch_size": 64, "lr": 0.001, "seed": 0})
    raw["methods"]["wam_sg"]["options"]["n_samples"] = 2
    raw["evaluation"]["steps"] = 4
    config = Config.from_dict(raw)
    A.prepare(config, tmp_path / "data.json")
    outputs = {}
    for name in models:
        metrics = A.build_model(config, name, tmp_path / name)
        assert metrics["epochs"] == 1 and 0 <= metrics["test_accuracy"] <= 1
        paths = [tmp_path / f"{name}.{ext}" for ext in ("csv", "json", "pt")]
        A.evaluate(config, name, tmp_path / name / "model.pt", *paths)
        outputs[name] = paths
    table = A.write_tables(config, *[[outputs[n][i] for n in models] for i in range(3)], tmp_path, tmp_path / "f.png")
    assert len(table[table["method"] != A.ADVANTAGE]) == 2 * 3 * 2 * 3
    assert (table["n"] == 5).all()
    by_arch = table.drop_duplicates("architecture").set_index("architecture")
    assert by_arch.loc["swin", "lrp_canonizer"] == "attnlrp"
    assert by_arch.loc["efficientnet", "lrp_canonizer"] == "efficientnet"
    assert by_arch["conservation_median"].notna().all()
    summary = yaml.safe_load((tmp_path / "swin.json").read_text())
    assert summary["cam_targets"]["gradcam"]["layer"] == "layers.1.blocks.1.norm1"
    example = torch.load(tmp_path / "swin.pt", weights_only=False)
    assert example["maps"]["wam_sg"].shape == (32, 32) and example["x"].shape == (1, 32, 32)
    assert (tmp_path / "architectures.md").read_text().count("| Swin |") >= 2
    assert (tmp_path / "f.png").stat().st_size > 0


def test_the_default_dag_builds_the_architectures_target():
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "architectures"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    counts = {line.split()[0]: int(line.split()[1]) for line in run.stdout.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert counts["architectures_model"] == counts["architectures_evaluate"] == len(DEFAULT["architectures"]["models"])
    assert counts["architectures_data"] == counts["architectures_table"] == 1
