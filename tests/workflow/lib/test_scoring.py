"""The explain and score stages on a seeded audio model: every audio score is independent of its batch (batch
size 1 or 64, one shard or two), degenerate maps are flagged and counted, completeness is recorded."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from workflow.lib import attribution as explain
from workflow.lib import scoring as evaluate
from workflow.lib.config import Config
from workflow.lib.data.base import Split
from workflow.lib.models import zoo as models
from workflow.lib.reporting import tables

N_CLIPS, SECONDS = 4, 1


def _config(batch_size: int, wam_ig_samples: int = 4) -> Config:
    return Config.from_dict({
        "name": "t", "seed": 42, "resources": "unused", "shards": 1,
        "datasets": {"audio": {"modality": "audio", "source": "esc50", "models": ["audio_resnet"]}},
        "methods": {"saliency": {"kind": "baseline", "label": "Saliency"},
                    "gradcampp": {"kind": "baseline", "label": "GradCAM++"},
                    "wam_ig": {"kind": "wam", "label": "WAM-IG",
                               "options": {"method": "integrated", "n_samples": wam_ig_samples}}},
        "wavelet": {"audio": {"wavelet": "haar", "levels": 3, "mode": "reflect"}},
        "evaluation": {"steps": 4, "batch_size": batch_size, "domains": ["pixel", "wavelet"],
                       "protocol": "reference", "ranking": "per_band",
                       "mu_fidelity": {"grid": 8, "subset": 0.2, "samples": 4}, "bootstrap": 10},
    })


@pytest.fixture(scope="module")
def audio_case():
    torch.manual_seed(0)
    model = models.build("audio_resnet", 3)
    gen = torch.Generator().manual_seed(1)
    t = torch.arange(SECONDS * 44100) / 44100
    x = torch.stack([torch.sin(2 * torch.pi * f * t) * (t > 0.2 * i) for i, f in enumerate((300, 900, 2000, 5000))])
    x = x + 0.01 * torch.randn(x.shape, generator=gen)
    x = x / x.abs().amax(1, keepdim=True)
    data = Split(x, torch.tensor([0, 1, 2, 0]), [f"c{i}" for i in range(N_CLIPS)], 3, ["a", "b", "c"])
    return model, data


def _scores(model, data, batch_size: int, shards: list[slice]) -> pd.DataFrame:
    config = _config(batch_size)
    frames = []
    for part in shards:
        shard = Split(data.x[part], data.y[part], data.ids[part], 3, data.class_names)
        for method in config.methods:
            attributions = explain.explain(config, "audio", model, method, shard.x, shard.y)
            with torch.no_grad():
                frames.append(evaluate.score(config, "audio", "audio_resnet", model, method, shard, attributions,
                                             torch.device("cpu"))[0])
    keys = ["method", "metric", "domain", "auc", "protocol", "ranking", "sample_id"]
    return pd.concat(frames).sort_values(keys).reset_index(drop=True)


def test_every_audio_score_is_independent_of_batch_size_and_shards(audio_case):
    model, data = audio_case
    one = _scores(model, data, 1, [slice(0, N_CLIPS)])
    many = _scores(model, data, 64, [slice(0, N_CLIPS)])
    sharded = _scores(model, data, 64, [slice(0, 2), slice(2, N_CLIPS)])
    for other in (many, sharded):
        pd.testing.assert_frame_equal(one.drop(columns="value"), other.drop(columns="value"))
        assert (one["value"] - other["value"]).abs().max() < 1e-5
    assert set(one["protocol"]) == {"reference", "clean", "-"}
    assert {"completeness_error", "mu_fidelity", "insertion"} <= set(one["metric"])
    # the Table 1 cells of WAM on audio are ranked by raw |grads|, the same-domain table per band
    wam = one[(one["method"] == "wam_ig") & (one["metric"] == "insertion") & (one["domain"] == "wavelet")]
    assert set(zip(wam["protocol"], wam["ranking"], strict=True)) == {
        ("reference", "raw"), ("clean", "raw"), ("reference", "per_band")}


def test_degenerate_maps_are_flagged_kept_and_counted(audio_case):
    model, data = audio_case
    config = _config(64)
    attributions = explain.explain(config, "audio", model, "saliency", data.x, data.y)
    attributions["pixel"][1:3] = 0.0  # two constant maps (as a CAM whose ReLU removed everything)
    with torch.no_grad():
        scores, _ = evaluate.score(config, "audio", "audio_resnet", model, "saliency", data, attributions,
                                   torch.device("cpu"))
    pixel = scores[scores["domain"] == "pixel"]
    assert pixel.groupby("sample_id")["degenerate"].all().tolist() == [False, True, True, False]
    assert not scores[scores["domain"] == "wavelet"]["degenerate"].all()
    cells = tables.table1_scores(scores, config, "reference")
    summary = tables.summarise(cells, ["dataset", "model", "method", "metric"], 10, 0)
    assert (summary["degenerate"] == 2).all() and (summary["n"] == N_CLIPS).all()
    label = summary.assign(label="Saliency")
    assert "Saliency on audio / audio_resnet (2 of 4)" in tables.degenerate_note(label)


def test_completeness_is_recorded_for_path_methods(audio_case):
    model, data = audio_case
    config = _config(64, wam_ig_samples=2)
    attributions = explain.explain(config, "audio", model, "wam_ig", data.x, data.y)
    c = attributions["completeness"]
    with torch.no_grad():
        logits = model(torch.cat([data.x, torch.zeros_like(data.x)]))
    expected = logits[:N_CLIPS].gather(1, data.y[:, None])[:, 0] - logits[N_CLIPS:].gather(1, data.y[:, None])[:, 0]
    torch.testing.assert_close(c["delta"], expected, atol=1e-4, rtol=1e-4)
    assert c["attribution_sum"].shape == (N_CLIPS,)
    assert "completeness" not in explain.explain(config, "audio", model, "saliency", data.x, data.y)
