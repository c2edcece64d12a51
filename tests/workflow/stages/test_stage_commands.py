"""The stage commands (``python -m workflow.scripts.X``) on tiny inputs: their arguments, outputs and errors."""

from __future__ import annotations

import json

import pytest

from tests.workflow.helpers import write_medmnist
from workflow.lib.data import offline
from workflow.scripts import prepare_data, train


def test_the_train_stage_trains_volumes(tmp_path, monkeypatch):
    monkeypatch.setattr(offline, "VOLUME_SPLIT_SIZES", {"train": 8, "val": 4, "test": 8})
    config = {"datasets": {"volumes": {"modality": "volumes", "source": "offline",
                                       "n_inputs": 4, "size": 28, "models": ["vit3d"]}},
              "training": {"epochs": 1, "patience": 1, "lr": 0.001, "batch_size": 4, "seed": 0}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    m = train.main(["--config", str(path), "--key", "volumes", "--model", "vit3d",
                    "--resources", str(tmp_path / "res"), "--out", str(tmp_path / "out")])
    assert m["epochs"] == 1 and m["n_test"] == 8 and m["n_eval"] == 4
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["eval_accuracy"] == m["eval_accuracy"]


def test_the_prepare_data_stage(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    volumes = {"modality": "volumes", "source": "offline", "n_inputs": 3, "size": 8}
    cfg.write_text(json.dumps({"datasets": {"v": volumes}}))
    write_medmnist(tmp_path / "offline" / "volumes" / "synth3d_8.npz")
    prepare_data.main(["--key", "v", "--config", str(cfg), "--resources", str(tmp_path)])
    assert capsys.readouterr().out.strip() == str(tmp_path / "offline" / "volumes")
    with pytest.raises(ValueError, match=r"--key: 'w' is not a data set"):
        prepare_data.main(["--key", "w", "--config", str(cfg), "--resources", str(tmp_path)])
