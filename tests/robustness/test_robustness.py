"""The robustness target: scale-share oracles, PGD and the four trainings on the offline texture set, free training,
checkpoints, bad input, the tables. Known answers throughout; no network (checkpoints come from file:// URLs)."""

from __future__ import annotations

import copy
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from wam import WAM
from workflow.scripts import io, robust_training, robustness, textures
from workflow.scripts.datasets import Split
from workflow.scripts.evaluate import level_names

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((ROOT / "workflow" / "config" / "default.yaml").read_text())
SIZE = 32


def config(tmp_path: Path, **section) -> dict:
    """The default configuration, resources under ``tmp_path``, the robustness section updated with ``section``."""
    c = copy.deepcopy(DEFAULT)
    c["resources"] = str(tmp_path / "resources")
    c["robustness"].update(section)
    return c


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run fastest on one thread (and do not suffer from a busy machine as two threads do)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def texture_resources(tmp_path_factory) -> Path:
    resources = tmp_path_factory.mktemp("resources")
    textures.prepare(resources)
    return resources


# ----------------------------------------------------------------------------- scale-share oracles


class ApproximationOnly(nn.Module):
    """A Haar low-pass (8x8 block means = the level-3 approximation of a 32x32 input) before a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3 * 16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.avg_pool2d(x, 8).flatten(1))


class FinestOnly(nn.Module):
    """Only the finest detail band: the input minus its 2x2 block means (the level-1 approximation), then linear."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3 * SIZE * SIZE, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        detail = x - F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
        return self.head(detail.flatten(1))


def _shares(model: nn.Module, method: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(0)
    expl = WAM(model.eval(), ndim=2, wavelet="haar", levels=3, mode="reflect", method=method, n_samples=4)(x, y)
    return robustness.scale_shares(expl)


@pytest.mark.parametrize("method", ["smooth", "integrated"])
def test_a_model_that_sees_only_the_approximation_puts_its_share_there(method):
    torch.manual_seed(1)
    x = torch.rand(3, 3, SIZE, SIZE)
    shares = _shares(ApproximationOnly(), method, x, torch.tensor([0, 1, 2]))
    assert shares.shape == (3, 4)
    assert (shares[:, -1] >= 0.99).all(), shares


@pytest.mark.parametrize("method", ["smooth", "integrated"])
def test_a_model_that_sees_only_the_finest_band_puts_its_share_on_level_1(method):
    torch.manual_seed(2)
    x = torch.rand(3, 3, SIZE, SIZE)
    shares = _shares(FinestOnly(), method, x, torch.tensor([3, 1, 0]))
    assert (shares[:, 0] >= 0.99).all(), shares


@pytest.mark.parametrize("method", ["wam_sg", "wam_ig"])
def test_shares_are_non_negative_sum_to_one_and_do_not_depend_on_the_batch(tmp_path, method):
    torch.manual_seed(3)
    model = robust_training.TextureCNN(n_classes=5, width=4)
    x, y = torch.rand(5, 1, SIZE, SIZE), torch.tensor([0, 1, 2, 3, 4])
    c = config(tmp_path, batch_size=7)
    shares = robustness.explain_shares(c, model, x, y, method)
    assert shares.shape == (5, 4) and (shares >= 0).all()
    torch.testing.assert_close(shares.sum(1), torch.ones(5))
    alone = robustness.explain_shares(config(tmp_path, batch_size=3), model, x[2:3], y[2:3], method)
    torch.testing.assert_close(alone[0], shares[2])


def test_a_zero_attribution_is_an_error_not_a_nan():
    model = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 2))
    nn.init.zeros_(model[1].weight)
    expl = WAM(model, ndim=2, method="gradient")(torch.rand(2, 1, SIZE, SIZE), [0, 1])
    with pytest.raises(ValueError, match="zero WAM importance"):
        robustness.scale_shares(expl)


# ----------------------------------------------------------------------------- attacks and training


def test_pgd_with_zero_epsilon_leaves_the_inputs_and_the_accuracy_unchanged(tmp_path):
    torch.manual_seed(4)
    model = robust_training.TextureCNN(n_classes=5, width=4)
    x, y = torch.rand(12, 1, SIZE, SIZE), torch.arange(12) % 5
    adv = robust_training.pgd(model, x, y, 5, epsilon=0.0, step_size=0.01, steps=5, batch_size=8, seed=0)
    assert torch.equal(adv, x)
    split = Split(x, y, [str(i) for i in range(12)], 5, list("abcde"))
    acc = robustness.accuracies(config(tmp_path, attack={"epsilon": 0.0, "step_size": 0.01, "steps": 5}), model,
                                split)
    assert acc["robust_accuracy"] == acc["clean_accuracy"]


def test_every_adversarial_training_beats_erm_in_robust_accuracy_on_the_offline_set(texture_resources):
    """The four trainings on the offline training crops (a shorter schedule than the DAG's), robust accuracy at the
    default configuration's epsilon and attack on the whole test split."""
    train, test = textures.load(texture_resources, "train"), textures.load(texture_resources, "test")
    attack = DEFAULT["robustness"]["attack"]
    eps = float(attack["epsilon"])
    robust = {}
    for kind in robust_training.KINDS:
        torch.manual_seed(0)
        model = robust_training.TextureCNN(train.n_classes, width=8)
        robust_training.train(model, train.x, train.y, train.n_classes, kind, epsilon=eps, step_size=1.25 * eps,
                              steps=2, epochs=8, batch_size=32, lr=0.003, seed=0,
                              replay=DEFAULT["robustness"]["training"]["replay"])
        adv = robust_training.pgd(model, test.x, test.y, test.n_classes, epsilon=eps,
                                  step_size=float(attack["step_size"]), steps=int(attack["steps"]), batch_size=320,
                                  seed=0)
        robust[kind] = (robust_training.predict(model, adv, 320) == test.y).float().mean().item()
    for kind in ("madry", "fast", "free"):
        assert robust[kind] > robust["erm"] + 0.05, robust


def test_free_training_with_zero_epsilon_and_no_replay_is_plain_minibatch_training():
    torch.manual_seed(5)
    x, y = torch.rand(20, 1, 8, 8), torch.arange(20) % 3
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    reference = copy.deepcopy(model)
    robust_training.free_training(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, epsilon=0.0, replay=1,
                                  epochs=2, batch_size=8, generator=torch.Generator().manual_seed(7))
    opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(7)
    for _ in range(2):
        order = torch.randperm(20, generator=gen)
        for start in range(0, 20, 8):
            idx = order[start:start + 8]
            opt.zero_grad()
            F.cross_entropy(reference(x[idx]), y[idx]).backward()
            opt.step()
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_free_training_replays_a_minibatch_and_moves_delta_by_epsilon_times_the_gradient_sign():
    """lr = 0: the model is fixed, so after one replay delta is the FGSM step eps * sign(grad_x loss); after m
    replays every coordinate stays within the epsilon ball."""
    torch.manual_seed(6)
    x, y = 0.25 + 0.5 * torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    xg = x.clone().requires_grad_(True)
    F.cross_entropy(model(xg), y).backward()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    delta = robust_training.free_training(model, opt, x, y, epsilon=0.1, replay=1, epochs=1, batch_size=4,
                                          generator=torch.Generator().manual_seed(0))
    order = torch.randperm(4, generator=torch.Generator().manual_seed(0))  # the shuffle: delta[j] is x[order[j]]
    torch.testing.assert_close(delta, 0.1 * xg.grad[order].sign())
    delta = robust_training.free_training(model, opt, x, y, epsilon=0.1, replay=4, epochs=4, batch_size=4,
                                          generator=torch.Generator().manual_seed(0))
    assert delta.abs().max() <= 0.1 + 1e-7 and delta.abs().max() > 0


# ----------------------------------------------------------------------------- bad input


def test_an_unknown_training_kind_names_its_config_key(tmp_path):
    c = config(tmp_path)
    c["robustness"]["models"]["erm"]["training"] = "trades"
    with pytest.raises(ValueError, match=r"robustness\.models\.erm\.training: unknown training kind 'trades'"):
        robustness.settings(c)


def test_a_negative_epsilon_names_its_config_key(tmp_path):
    with pytest.raises(ValueError, match=r"robustness\.attack\.epsilon: must be >= 0"):
        robustness.settings(config(tmp_path, attack={"epsilon": -0.1, "step_size": 0.01, "steps": 3}))


def test_a_missing_checkpoint_file_names_its_config_key(tmp_path):
    c = config(tmp_path)
    c["robustness"]["models"]["extra"] = {"training": "free", "path": str(tmp_path / "missing.pt")}
    with pytest.raises(ValueError, match=r"robustness\.models\.extra\.path: checkpoint file .*missing\.pt not found"):
        robustness.settings(c)


def test_a_model_to_train_needs_the_offline_set(tmp_path):
    c = config(tmp_path, data="images")
    with pytest.raises(ValueError, match=r"robustness\.models\.\w+: no checkpoint"):
        robustness.settings(c)


def test_a_checksum_mismatch_deletes_the_download_and_says_so(tmp_path):
    source = tmp_path / "weights.pth"
    source.write_bytes(b"not the expected weights")
    dest = tmp_path / "cache" / "model.pt"
    with pytest.raises(ValueError, match=r"robustness\.models\.m: .*sha256 mismatch.*the download was deleted"):
        robust_training.fetch(source.as_uri(), dest, "0" * 64, "robustness.models.m")
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_trust_on_first_use_records_the_digest_and_rejects_a_changed_cached_file(tmp_path):
    source = tmp_path / "weights.pth"
    source.write_bytes(b"first download")
    dest = tmp_path / "cache" / "model.pt"
    path, digest = robust_training.fetch(source.as_uri(), dest, None, "k")
    assert digest == hashlib.sha256(b"first download").hexdigest()
    assert io.read_config(dest.parent / "SHA256SUMS.json") == {"model.pt": digest}
    dest.write_bytes(b"tampered")
    with pytest.raises(ValueError, match="sha256 mismatch.*the download was deleted"):
        robust_training.fetch(source.as_uri(), dest, None, "k")
    assert not dest.exists()


def test_a_torchvision_file_name_prefix_is_checked(tmp_path):
    source = tmp_path / "resnet50-0676ba61.pth"
    source.write_bytes(b"whatever")
    with pytest.raises(ValueError, match="does not start with 0676ba61"):
        robust_training.fetch(source.as_uri(), tmp_path / "cache" / "erm.pt", None, "k")
    assert not (tmp_path / "cache" / "erm.pt").exists()


def test_a_wrapped_robust_resnet50_checkpoint_loads_into_torchvision_behind_the_normaliser(tmp_path):
    """A MadryLab-style file (``module.model.*``, ``module.attacker.*``, ``module.normalizer.*`` under ``model``),
    fetched from a file:// URL: the model file references the cached weights, and the loaded model computes the
    reference network on [0, 1] images."""
    torch.manual_seed(7)
    reference = robust_training.resnet50()
    state = {f"module.model.{k}": v for k, v in reference[1].state_dict().items()}
    state.update({f"module.attacker.model.{k}": v for k, v in list(reference[1].state_dict().items())[:3]})
    state["module.normalizer.new_mean"] = torch.zeros(3)
    source = tmp_path / "engstrom.pt"
    torch.save({"model": state, "epoch": 90}, source)
    c = config(tmp_path, data="images", models={"adv": {"label": "ADV", "training": "madry", "url": source.as_uri()}})
    out = tmp_path / "models" / "adv.pt"
    meta = robustness.build_model(c, "adv", out)
    assert meta["sha256"] == io.file_digest(source) and out.stat().st_size < 10_000
    model, _ = robust_training.load(out)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference.eval()(x))


# ----------------------------------------------------------------------------- data, tables


def test_texture_train_and_test_crops_come_from_disjoint_columns(texture_resources):
    train, test = textures.load(texture_resources, "train"), textures.load(texture_resources, "test")
    assert train.x.shape[1:] == test.x.shape[1:] == (1, SIZE, SIZE)
    assert train.y.bincount().tolist() == [textures.N_TRAIN] * 5 and test.y.bincount().tolist() == [64] * 5
    z = io.load_npz(textures.data_file(texture_resources))
    for c, name in enumerate(textures.CLASSES):
        split = int(textures.photograph(name).shape[1] * textures.TRAIN_FRACTION)
        assert (z["train_origins"][z["train_labels"] == c][:, 1] + SIZE <= split).all()
        assert (z["test_origins"][z["test_labels"] == c][:, 1] >= split).all()
    assert 0.4 < float(train.x.mean()) < 0.6 and float(train.x.std()) > 0.2  # equalised: real contrast


def test_tables_state_the_spearman_value_and_the_figure_is_written(tmp_path):
    c = config(tmp_path)
    names = level_names(4)  # 3 levels and the approximation
    robust = {"erm": 0.2, "adv": 0.7, "adv_fast": 0.6, "adv_free": 0.5}
    coarse = {"erm": 0.1, "adv": 0.4, "adv_fast": 0.3, "adv_free": 0.2}  # same order: rho = 1
    scores, summaries = [], []
    rng = np.random.default_rng(0)
    for model, r in robust.items():
        rows = []
        for method in c["robustness"]["methods"]:
            for i in range(10):
                fine = rng.dirichlet([1, 1]) * (1 - coarse[model])
                values = [fine[0], fine[1], coarse[model] / 2, coarse[model] / 2]
                rows += [(model, method, f"s{i}", 0, level, v) for level, v in zip(names, values, strict=True)]
        scores.append(tmp_path / f"{model}.csv")
        pd.DataFrame(rows, columns=["model", "method", "sample_id", "target", "level", "value"]).to_csv(
            scores[-1], index=False)
        summaries.append(tmp_path / f"{model}.json")
        io.write_json(summaries[-1], {"model": model, "clean_accuracy": 0.9, "robust_accuracy": r, "n_accuracy": 320})
    robustness.write_tables(c, scores, summaries, tmp_path / "tables", tmp_path / "figure.png")
    table = pd.read_csv(tmp_path / "tables" / "robustness_scales.csv")
    assert (table["spearman_robust_coarse"] == 1.0).all()
    assert table["model"].drop_duplicates().tolist() == ["erm", "adv", "adv_fast", "adv_free"]
    erm = table[(table["model"] == "erm") & (table["method"] == "wam_sg")].set_index("level")
    assert erm.loc["approx", "mean"] == pytest.approx(0.05) and erm.loc["approx", "ci_low"] == pytest.approx(0.05)
    assert table.groupby(["model", "method"])["mean"].sum().round(6).eq(1).all()
    md = (tmp_path / "tables" / "robustness_scales.md").read_text()
    assert md.count("rho = +1.00") == 2 and "level 1 (finest)" in md
    assert md.index("| ERM |") < md.index("| ADV |")
    assert "\\caption{" in (tmp_path / "tables" / "robustness_scales.tex").read_text()
    assert (tmp_path / "figure.png").stat().st_size > 10_000
    assert (tmp_path / "figure.png.provenance.json").is_file()


def test_adding_a_model_is_one_config_entry(tmp_path):
    """Dry run of the `robustness` target with one more entry: one more training and one more evaluation job."""
    c = config(tmp_path)
    c["robustness"]["models"]["adv_free_m8"] = {"label": "ADV-Free (m = 8)", "training": "free"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(c))
    run = subprocess.run([sys.executable, "-m", "snakemake", "robustness", "-n", "--forceall", "--cores", "1",
                          "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                          str(path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    counts = dict(line.split() for line in run.stdout.split("Job stats:")[1].split("total")[0].splitlines()
                  if len(line.split()) == 2 and line.split()[1].isdigit())
    assert counts["robustness_model"] == counts["robustness_evaluate"] == "5"
    assert "results/default/robustness/models/adv_free_m8.pt" in run.stdout


def test_imagenet_images_get_robustbench_preprocessing_in_zero_one(tmp_path):
    """``data: images`` (the paper's): Resize(256) + CenterCrop(224) + ToTensor, RobustBench's ``Res256Crop224``
    (the models normalise their inputs themselves)."""
    from PIL import Image
    from torchvision import transforms

    rng = np.random.default_rng(0)
    root = tmp_path / "val"
    files = []
    for wnid in ("n01440764", "n01443537"):
        (root / wnid).mkdir(parents=True)
        for k in range(2):
            files.append(root / wnid / f"{k}.JPEG")
            Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(files[-1])
    c = config(tmp_path, data="images", n_inputs=None, models={"erm": {"training": "erm", "path": str(files[0])}})
    c["datasets"]["images"].update(source="imagenet", path=str(root), n_inputs=4)
    accuracy_set, explained = robustness.evaluation_data(c)
    assert accuracy_set is explained and explained.x.shape == (4, 3, 224, 224)
    expected = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
    for x, name in zip(explained.x, explained.ids, strict=True):
        with Image.open(root / name) as im:
            torch.testing.assert_close(x, expected(im.convert("RGB")), atol=1e-5, rtol=0)
    assert explained.y.tolist() == [0, 0, 1, 1]
