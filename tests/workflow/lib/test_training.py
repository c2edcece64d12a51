"""Training loop: seeded and deterministic, early stopping, atomic outputs; pretrained models measured."""

from __future__ import annotations

import json

import torch
from torch import nn

from workflow.lib import training as T
from workflow.lib.config import DatasetSpec, ModelSpec, training_settings
from workflow.lib.data import offline
from workflow.lib.data.base import Split
from workflow.lib.models import zoo as M


def _blobs(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 1, 8, 8, 8, generator=g) * 0.3
    x[:, 0, 2:6, 2:6, 2:6] += (y.float() - 1)[:, None, None, None]
    return Split(x, y, [f"s-{i}" for i in range(n)], 3, ["a", "b", "c"])


CFG = {"epochs": 4, "patience": 2, "lr": 0.01, "batch_size": 8, "seed": 3}


def test_train_is_seeded_and_writes_outputs(tmp_path):
    runs = []
    for k in range(2):
        torch.manual_seed(0)
        model = M.build("resnet3d", 3, widen_factor=0.125, no_max_pool=False)
        cfg = {**CFG, "lr": CFG["lr"] / M.lr_scale(model)}  # lr 0.01 after resnet3d's scale
        m = T.train(model, _blobs(24, 1), _blobs(12, 2), _blobs(12, 3), cfg, tmp_path / str(k))
        assert not model.training
        saved = json.loads((tmp_path / str(k) / "metrics.json").read_text())
        assert {"test_accuracy", "epochs", "seconds", "seed"} <= set(saved) and saved["seed"] == 3
        assert saved["test_accuracy"] == m["test_accuracy"]
        back = M.load(tmp_path / str(k) / "model.pt")
        x = _blobs(12, 3).x
        with torch.no_grad():
            assert torch.equal(back(x), model(x))
        saved.pop("seconds")
        saved["provenance"].pop("git_commit", None)
        runs.append(saved)
        assert sorted(p.name for p in (tmp_path / str(k)).iterdir()) == ["metrics.json", "model.pt"]
    assert runs[0] == runs[1]
    assert runs[0]["test_accuracy"] > 0.6


def test_early_stopping():
    class Const(nn.Module):  # never improves: stops after 1 + patience epochs
        def __init__(self):
            super().__init__()
            self.b = nn.Parameter(torch.zeros(3))
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return self.b.detach().expand(len(x), 3) + 0 * self.w

    model = Const()
    model._wam_bench_spec = {"name": "x", "n_classes": 3, "kwargs": {}}
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        m = T.train(model, _blobs(9, 1), _blobs(6, 2), _blobs(6, 3),
                    {**CFG, "epochs": 20, "patience": 2}, tmp)
    assert m["epochs"] == 3 and m["best_epoch"] == 1


def test_a_pretrained_model_is_measured_not_trained(tmp_path):
    """``fit`` of efficientnet_lite0 on an ImageNet folder: no epoch, its accuracy on the folder."""
    from PIL import Image

    val = tmp_path / "val" / "n07920052"
    val.mkdir(parents=True)
    Image.fromarray(offline._offline_photos()["coffee"]).save(val / "coffee.JPEG")
    spec = DatasetSpec("images", "images", "imagenet", models=("efficientnet_lite0",), n_inputs=1,
                       path=str(tmp_path / "val"))
    model = ModelSpec("efficientnet_lite0", "images", True, training_settings({}, "efficientnet_lite0"))
    m = T.fit(spec, model, tmp_path / "res",
              tmp_path / "img")
    assert m["epochs"] == 0 and m["test_accuracy"] == 1.0 and m["eval_accuracy"] == 1.0 and m["n_eval"] == 1
    assert M.load(tmp_path / "img" / "model.pt").meta["test_accuracy"] == 1.0


def test_stops_at_perfect_validation_accuracy(tmp_path):
    class Oracle(nn.Module):  # reads the label off the input: validation accuracy 1 at epoch 1
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return 10 * torch.nn.functional.one_hot(x[:, 0].long(), 3).float() + 0 * self.w

    def split(n):
        y = torch.arange(n) % 3
        return Split(y[:, None].float(), y, [f"s-{i}" for i in range(n)], 3, ["a", "b", "c"])

    model = Oracle()
    model._wam_bench_spec = {"name": "x", "n_classes": 3, "kwargs": {}}
    m = T.train(model, split(9), split(6), split(6), {**CFG, "epochs": 20, "patience": 5}, tmp_path)
    assert m["epochs"] == 1 and m["best_epoch"] == 1 and m["test_accuracy"] == 1.0


def test_training_does_not_depend_on_the_callers_thread_count(tmp_path):
    """``training.threads`` pins the CPU threads of training: called from a 1-thread or a 2-thread process, the
    same model trains to the same accuracy, the same logits and the same evaluated predictions (unpinned, the
    order of floating-point sums in convolutions and batch norm follows the thread count)."""
    before = torch.get_num_threads()
    runs = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            torch.manual_seed(0)
            model = M.build("resnet3d", 3, widen_factor=0.125, no_max_pool=False)
            m = T.train(model, _blobs(24, 1), _blobs(12, 2), _blobs(12, 3),
                        {**CFG, "patience": None, "threads": 1}, tmp_path / str(n))
            assert m["epochs"] == CFG["epochs"] == m["best_epoch"]  # a fixed budget, the last weights
            with torch.no_grad():
                runs.append((m["test_accuracy"], model(_blobs(12, 3).x), T.predict(model, _blobs(12, 3).x)))
            assert torch.get_num_threads() == n  # restored
    finally:
        torch.set_num_threads(before)
    (acc1, logits1, pred1), (acc2, logits2, pred2) = runs
    assert acc1 == acc2 and torch.equal(pred1, pred2) and torch.equal(logits1, logits2)
