"""The audio_separation stage: settings checks naming their key, distractors of another class independent of the
sharding, and `run` + `report` end to end on a tiny ESC-50-format folder (a clip mixed with silence is rebuilt
perfectly at keep 1; every output written)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from workflow.lib.config import Config
from workflow.lib.data import esc50
from workflow.lib.experiments import audio_separation as stage
from workflow.lib.models import zoo as models

RATE, SAMPLES = esc50.SAMPLE_RATE, esc50.CLIP_SAMPLES


def _config(tmp_path, **section) -> dict:
    return {
        "name": "t", "seed": 42, "device": "cpu", "resources": str(tmp_path / "resources"), "shards": 1,
        "datasets": {"audio": {"modality": "audio", "source": "esc50", "path": str(tmp_path / "esc50"), "fold": 1,
                               "n_inputs": None, "models": ["audio_resnet"]}},
        "methods": {"smoothgrad": {"kind": "baseline", "label": "SmoothGrad", "options": {"n_samples": 50},
                                   "per_modality": {"audio": {"noise": 0.001}}},
                    "wam_sg": {"kind": "wam", "label": "WAM-SG", "options": {"method": "smooth", "n_samples": 25}},
                    "wam_ig": {"kind": "wam", "label": "WAM-IG", "options": {"method": "integrated", "n_samples": 25}}},
        "wavelet": {"audio": {"wavelet": "haar", "levels": 3, "mode": "reflect"}},
        "evaluation": {"batch_size": 16, "bootstrap": 20},
        "audio_separation": {"lambda": 0.0, "keeps": [0.1, 1.0], "n_samples": 2, "n_examples": 2,
                             "example_keep": 0.1, "griffin_lim_iters": 2, **section},
    }


# ranges and kinds are the schema's: tests/workflow/stages/test_dag.py
@pytest.mark.parametrize(("key", "value", "named"), [
    ("example_keep", 0.3, "audio_separation.example_keep"), ("methods", ["smoothgrad"], "audio_separation.methods"),
    ("mel_mask", "wam_sg", "audio_separation.mel_mask"), ("dataset", "images", "audio_separation.dataset"),
])
def test_bad_settings_name_their_key(tmp_path, key, value, named):
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        stage.settings(Config.from_dict(_config(tmp_path, **{key: value})))


def test_distractors_are_of_another_class_and_independent_of_the_shards():
    labels = torch.tensor([0, 0, 1, 2, 2, 1, 0])
    every = stage.pick_distractors(labels, list(range(7)), seed=3)
    assert all(labels[d] != labels[i] for i, d in enumerate(every))
    assert stage.pick_distractors(labels, [4, 5, 6], seed=3) == every[4:]   # a later shard draws the same
    assert stage.pick_distractors(labels, list(range(7)), seed=4) != every
    clean, other = torch.randn(64), torch.randn(64)
    assert torch.equal(stage.corrupt(clean, other, 5, 0.2, 3)["noise"], stage.corrupt(clean, other, 5, 0.2, 3)["noise"])
    with pytest.raises(ValueError, match="another class"):
        stage.pick_distractors(torch.tensor([4, 4, 4]), [0, 1], seed=0)


def _write_esc50(folder, classes=(0, 0, 1)) -> None:
    (folder / "audio").mkdir(parents=True)
    t = np.arange(SAMPLES) / RATE
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for i, target in enumerate(classes):
        envelope = np.exp(-((t - 1.0 - i) ** 2) / 0.02)
        wave = 0.8 * envelope * np.sin(2 * math.pi * (300 + 700 * target) * t) + 0.003 * np.sin(40 * t)
        name = f"1-{i}-A-{target}.wav"
        sf.write(str(folder / "audio" / name), wave.astype(np.float32), RATE, subtype="PCM_16")
        rows.append(f"{name},1,{target},class{target},False,x,A")
    (folder / "meta").mkdir()
    (folder / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")


def test_run_and_report_end_to_end(tmp_path):
    _write_esc50(tmp_path / "esc50")
    config = Config.from_dict(_config(tmp_path))
    torch.manual_seed(0)
    model_path = models.save(models.build("audio_resnet", 2), tmp_path / "models" / "audio_resnet" / "model.pt")
    rows_path, examples_path = tmp_path / "sep" / "0.csv", tmp_path / "sep" / "0.pt"
    stage.run(config, model_path, 0, rows_path, examples_path)
    rows = pd.read_csv(rows_path, keep_default_na=False)
    methods = {"corrupted", "wam_sg", "wam_ig", "magnitude", "random", "mel_mask_stft", "mel_mask_gl"}
    assert set(rows["method"]) == methods and set(rows["condition"]) == {"noise", "overlap"}
    assert len(rows) == 3 * 2 * (1 + 6 * 2)
    # lambda 0: the overlap is the clean clip mixed with silence; every coefficient kept rebuilds it
    overlap = rows[rows["condition"] == "overlap"]
    assert (overlap[overlap["method"] == "corrupted"]["si_sdr"] > 60).all()
    whole = overlap[(overlap["keep"] == 1.0) & overlap["method"].isin(["wam_sg", "wam_ig", "magnitude", "random"])]
    assert len(whole) == 12 and (whole["si_sdr"] >= 60).all()
    assert np.allclose(rows["gain"], rows["si_sdr"] - rows["input_si_sdr"], atol=1e-5)
    assert set(rows["fid_in"]) <= {0.0, 1.0}
    noisy = rows[(rows["condition"] == "noise") & (rows["method"] == "corrupted")]
    assert noisy["si_sdr"].abs().max() < 1.0                         # 0 dB SNR: about 0 dB SI-SDR
    distractors = overlap.drop_duplicates("clip_id").set_index("clip_id")["distractor_id"]
    assert all(d.split("-")[-1] != c.split("-")[-1] for c, d in distractors.items())   # another class

    out = tmp_path / "results"
    stage.report(config, [rows_path], [examples_path], out)
    table = pd.read_csv(out / "tables" / "audio_separation.csv")
    assert {"condition", "method", "keep", "n", "si_sdr", "si_sdr_low", "si_sdr_high", "gain", "fid_in",
            "input_si_sdr"} <= set(table.columns)
    assert (table["n"] == 3).all() and (table["si_sdr_low"] <= table["si_sdr"] + 1e-9).all()
    assert "WAM-IG @ 0.1" in (out / "tables" / "audio_separation.md").read_text()
    assert "\\toprule" in (out / "tables" / "audio_separation.tex").read_text()
    assert (out / "figures" / "audio_separation.png").stat().st_size > 10_000
    for k in range(2):
        assert (out / "figures" / f"audio_separation_clip{k}.png").stat().st_size > 10_000
        for path in stage.example_paths(out, k, ["wam_sg", "wam_ig"]).values():
            wave, rate = sf.read(str(path))
            assert rate == RATE and wave.shape == (SAMPLES,) and np.abs(wave).max() > 0.5
        page = (out / "report" / f"audio_separation_clip{k}.html").read_text()  # the report's page of the clip
        assert page.count("<audio controls") == page.count("<img ") == 8  # clean, distractor, 2 inputs, 4 rebuilds
