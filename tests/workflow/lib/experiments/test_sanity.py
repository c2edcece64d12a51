"""The randomisation sanity checks of the workflow (workflow/lib/experiments/sanity.py) with known answers: each cell
recomputed by the library's own checks (metrics.mprt, emprt, random_logit) on the baseline called directly, an
explainer that ignores the model, seeding and block order, batch invariance, the table from per-input rows, the
shuffled-label model at chance, and both targets in the default DAG."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch
from torch import nn

import baselines
import metrics
from metrics.complexity import entropy
from metrics.randomisation import randomise
from tests.models import TinyVolumeCNN, image_model
from tests.workflow.helpers import ROOT, write_medmnist
from wam import transform
from workflow.lib.config import Config
from workflow.lib.experiments import sanity
from workflow.lib.models import zoo

WAVELET = {"wavelet": "haar", "levels": 2, "mode": "reflect"}
CONFIG = Config.from_dict({
    "seed": 0, "device": "cpu", "datasets": {"img": {"modality": "images", "models": ["tiny"]}},
    "methods": {"saliency": {"kind": "baseline", "label": "Saliency"}},
    "wavelet": {"images": WAVELET}, "evaluation": {"batch_size": 4, "bootstrap": 200},
    "sanity": {"methods": ["saliency"], "extra_methods": {"images": ["guided_backprop"]}},
})
TESTS = ["cascading", "independent", "random_logit"]


def _inputs(n: int = 3) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    gen = torch.Generator().manual_seed(3)
    return torch.rand(n, 3, 16, 16, generator=gen), torch.tensor([0, 1, 2, 3, 4][:n]), [f"s{i}" for i in range(n)]


def _rows(model, x, y, ids, seed=0, positions=None, explain=None) -> pd.DataFrame:
    explain = explain or sanity.Explainer(sanity.method_config(CONFIG, "images"), "img", "saliency")
    rows, _ = sanity.randomisation_rows(model, x, y, ids, explain, sanity.model_blocks(model, 8), seed, TESTS,
                                       n_classes=5, positions=positions)
    return pd.DataFrame(rows)


def _values(rows: pd.DataFrame, test: str, step: int, measure: str, domain: str = "pixel") -> torch.Tensor:
    part = rows[(rows["test"] == test) & (rows["step"] == step) & (rows["measure"] == measure)
                & (rows["domain"] == domain)]
    return torch.tensor(part["value"].to_numpy(), dtype=torch.float32)


def _saliency(model, x, y):
    return baselines.get("saliency", model)(x, y)


def test_every_cell_is_the_library_check_on_the_baseline_called_directly():
    """The workflow's rows (explain stage, both domains in one call) against metrics.mprt / emprt / random_logit
    on captum's Saliency called directly: cascading and independent Spearman and SSIM at every step, eMPRT in both
    domains, Random Logit."""
    model, (x, y, ids) = image_model(), _inputs()
    rows = _rows(model, x, y, ids)
    blocks = sanity.model_blocks(model, 8)
    assert blocks == ["head", "features.2", "features.0"]  # output first; the Sequential of two convolutions split
    for order in ("cascading", "independent"):
        ref = metrics.mprt(model, x, y, _saliency, blocks=blocks, order=order, seed=0)
        for step in range(len(blocks) + 1):
            for measure in ("spearman", "ssim"):
                torch.testing.assert_close(_values(rows, order, step, measure), ref.similarity[measure][step])
    torch.testing.assert_close(_values(rows, "emprt", len(blocks), "entropy_ratio"),
                               metrics.emprt(model, x, y, _saliency, blocks=blocks, seed=0))
    logit = metrics.random_logit(model, x, y, _saliency, n_classes=5, seed=0)
    torch.testing.assert_close(_values(rows, "random_logit", 0, "spearman"), logit["spearman"])
    # wavelet domain: |W(saliency map)| of the fully randomised model, its entropy over the original's
    random_model = randomise(model, blocks, seed=0)

    def wavelet_entropy(m):
        bands = transform.bands(transform.wavedec(_saliency(m, x, y).sum(1, keepdim=True), 2, **WAVELET))
        return entropy([b.abs()[:, 0] for b in bands])

    torch.testing.assert_close(_values(rows, "emprt", len(blocks), "entropy_ratio", "wavelet"),
                               (wavelet_entropy(random_model) / wavelet_entropy(model)).float())


def test_a_map_that_ignores_the_model_keeps_similarity_one_everywhere():
    """The input itself as the "explanation": every randomisation leaves it unchanged (Spearman, SSIM and the
    eMPRT ratio all 1, in both domains)."""
    model, (x, y, ids) = image_model(), _inputs()

    def input_map(m, xs, ys):
        return {"pixel": xs.sum(1), "wavelet": [b.sum(1) for b in
                                                transform.bands(transform.wavedec(xs, 2, **WAVELET))]}

    rows = _rows(model, x, y, ids, explain=input_map)
    assert set(rows["test"]) == {*TESTS, "emprt"} and set(rows["domain"]) == {"pixel", "wavelet"}
    assert rows["value"].to_numpy() == pytest.approx(1.0, abs=1e-5)
    assert not rows["degenerate"].any()


def test_blocks_are_recorded_in_order_and_the_randomisation_is_seeded():
    model, (x, y, ids) = image_model(), _inputs()
    rows = _rows(model, x, y, ids)
    cascade = rows[(rows["test"] == "cascading")].drop_duplicates("step").sort_values("step")
    assert cascade["block"].tolist() == ["-", "head", "features.2", "features.0"]
    pd.testing.assert_frame_equal(rows, _rows(model, x, y, ids))  # same seed, same rows
    other = _rows(model, x, y, ids, seed=1)
    changed = other["value"].to_numpy() != rows["value"].to_numpy()
    original = ((rows["step"] == 0) & rows["test"].isin(["cascading", "independent"])).to_numpy()
    assert changed[(rows["step"] > 0).to_numpy()].all() and not changed[original].any()  # every re-drawn model moves


def test_model_blocks_split_containers_one_level_at_a_time():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(),
                          nn.Sequential(nn.Conv2d(2, 2, 3), nn.Sequential(nn.Conv2d(2, 2, 1), nn.Conv2d(2, 2, 1))),
                          nn.Flatten(), nn.Linear(8, 3))
    assert sanity.model_blocks(model, 3) == ["4", "2", "0"]
    assert sanity.model_blocks(model, 4) == ["4", "2.1", "2.0", "0"]
    assert sanity.model_blocks(model, 5) == ["4", "2.1.1", "2.1.0", "2.0", "0"]
    assert sanity.model_blocks(model, 100) == ["4", "2.1.1", "2.1.0", "2.0", "0"]


def test_an_inputs_rows_do_not_depend_on_its_batch():
    model, (x, y, ids) = image_model(), _inputs()
    whole = _rows(model, x, y, ids)
    alone = pd.concat([_rows(model, x[i:i + 1], y[i:i + 1], ids[i:i + 1], positions=[i]) for i in range(len(ids))])
    key = ["test", "step", "domain", "measure", "sample_id"]
    merged = whole.merge(alone, on=key, suffixes=("", "_alone"))
    assert len(merged) == len(whole)
    assert merged["value"].to_numpy() == pytest.approx(merged["value_alone"].to_numpy(), abs=1e-5)


def test_the_table_is_the_mean_of_the_per_input_rows_with_its_interval():
    rows = pd.DataFrame({
        "dataset": "img", "model": "tiny", "method": "saliency", "domain": "pixel", "test": "cascading", "step": 1,
        "block": "head", "measure": "spearman", "sample_id": ["a", "b", "c", "d"], "value": [0.1, 0.2, 0.4, 0.9],
        "degenerate": [False, True, False, False]})
    table = sanity.summary(rows, CONFIG, {"saliency": "Saliency"}, resamples=500, seed=0)
    row = table.iloc[0]
    assert row["value"] == pytest.approx(0.4) and row["n"] == 4 and row["degenerate"] == 1
    assert 0.1 <= row["ci_low"] < 0.4 < row["ci_high"] <= 0.9
    assert list(table.columns) == sanity.TABLE and row["modality"] == "images" and row["label"] == "Saliency"


def test_the_markdown_starts_with_what_good_looks_like_and_states_adebayos_result():
    rows = []
    for method, last in (("saliency", 0.1), ("guided_backprop", 0.6)):
        for step, value in ((0, 1.0), (1, 0.5), (2, last)):
            rows += [{"dataset": "img", "model": "tiny", "method": method, "domain": "pixel", "test": "cascading",
                      "step": step, "block": ["-", "head", "features"][step], "measure": "spearman", "sample_id": s,
                      "value": value, "degenerate": False} for s in "ab"]
    labels = {"saliency": "Saliency", "guided_backprop": "Guided Backprop"}
    table = sanity.summary(pd.DataFrame(rows), CONFIG, labels, resamples=50, seed=0)
    md = sanity.table_markdown(table, {("img", "tiny"): ["head", "features"]})
    assert md.startswith("Randomisation sanity checks") and "Low similarity after randomisation is good" in md
    assert ("after the full cascade (2 blocks), Guided Backprop's Spearman similarity 0.600 [0.600, 0.600] stays "
            "above Saliency's 0.100 [0.100, 0.100]") in md
    assert "| Guided Backprop (pixel) | 1.000 | 0.500 | 0.600 |" in md


def test_report_writes_the_table_and_one_figure_per_modality(tmp_path):
    model, (x, y, ids) = image_model(), _inputs(2)
    explain = sanity.Explainer(sanity.method_config(CONFIG, "images"), "img", "saliency")
    rows, shown = sanity.randomisation_rows(model, x, y, ids, explain, ["head", "features"], 0, TESTS, 5)
    frame = pd.DataFrame(rows).assign(dataset="img", model="tiny", method="saliency")
    frame.to_csv(tmp_path / "rows.csv", index=False)
    torch.save({"dataset": "img", "model": "tiny", "modality": "images", "blocks": ["head", "features"],
                "input": x[0], "sample_id": "s0", "maps": {"saliency": shown["maps"]},
                "labels": {"saliency": "Saliency"}}, tmp_path / "examples.pt")
    table = sanity.report(CONFIG, [tmp_path / "rows.csv"], [tmp_path / "examples.pt"], tmp_path)
    assert shown["maps"].shape == (3, 16, 16)  # the original and two cascading steps
    assert set(table["test"]) == {*TESTS, "emprt"}
    assert (tmp_path / "figures" / "randomisation_images.png").stat().st_size > 10_000
    assert (tmp_path / "tables" / "randomisation.md").read_text().startswith("Randomisation sanity checks")


def test_methods_and_options_are_checked_naming_the_key():
    assert sanity.methods_for(CONFIG, "images") == ["saliency", "guided_backprop"]
    assert sanity.methods_for(CONFIG, "audio") == ["saliency"]
    bad = Config.from_dict({**CONFIG.raw, "sanity": {"methods": ["saliency", "nope"]}})
    with pytest.raises(ValueError, match=r"sanity.methods: \['nope'\]"):
        sanity.settings(bad)
    bad = Config.from_dict({**CONFIG.raw, "sanity": {"methods": ["saliency"], "options": {"wam_sgg": {}}}})
    with pytest.raises(ValueError, match="sanity.options"):
        sanity.settings(bad)


def test_the_shuffled_label_model_is_at_chance_on_a_separable_set(tmp_path, monkeypatch):
    """A bright cube marks class 1: the same network learns it from the true labels (>= 90 % test accuracy) and
    is at chance (50 %, two balanced classes) when trained on the shuffled labels."""
    # registered for this test only: the zoo's names stay those of tests/workflow/lib/test_models.py
    monkeypatch.setitem(zoo.MODELS._entries, "tiny_volume_cnn", lambda n_classes: TinyVolumeCNN(n_classes))
    write_medmnist(tmp_path / "medmnist" / "adrenalmnist3d_8.npz", counts=(64, 16, 40), size=8, cube=True)
    raw = {"seed": 0, "resources": str(tmp_path),
           "datasets": {"v": {"modality": "volumes", "source": "medmnist", "size": 8, "models": ["tiny_volume_cnn"]}},
           "training": {"epochs": 15, "patience": None, "lr": 0.01, "batch_size": 16, "seed": 0},
           "sanity": {"methods": ["saliency"]}}
    torch.manual_seed(123)  # the global random state a job starts with must not matter
    shuffled = sanity.train_shuffled(Config.from_dict(raw), "v", "tiny_volume_cnn", tmp_path / "shuffled")
    assert shuffled["labels"] == "shuffled" and (tmp_path / "shuffled" / "model.pt").is_file()
    torch.manual_seed(456)
    sanity.train_shuffled(Config.from_dict(raw), "v", "tiny_volume_cnn", tmp_path / "again")
    first, again = (torch.load(tmp_path / d / "model.pt", weights_only=False)["state_dict"]
                    for d in ("shuffled", "again"))
    assert all(torch.equal(first[k], again[k]) for k in first)  # a rerun gives the same weights
    assert shuffled["test_accuracy"] == pytest.approx(0.5, abs=0.15)
    from workflow.lib import data, training

    spec = Config.from_dict(raw).datasets["v"]
    splits = [data.load(spec, s, tmp_path, subset=False) for s in ("train", "val", "test")]
    truth = training.train(zoo.build("tiny_volume_cnn", 2), *splits, raw["training"], tmp_path / "true")
    assert truth["test_accuracy"] >= 0.9


def test_the_default_dag_builds_both_targets_with_their_rules():
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "sanity", "metrics_extended"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    for rule in ("sanity_shuffled", "sanity_run", "sanity_report", "metrics_extended_run",
                 "metrics_extended_report"):
        assert f"rule {rule}:" in run.stdout, rule
    # one shuffled-label model per trained model: audio_resnet, resnet3d, vit3d (the image model is pretrained)
    assert run.stdout.count("rule sanity_shuffled:") == 3
