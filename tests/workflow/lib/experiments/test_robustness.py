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

from tests.workflow.helpers import ROOT
from wam import transform
from workflow.lib import files as io
from workflow.lib import training
from workflow.lib.config import Config
from workflow.lib.data import textures
from workflow.lib.data.base import Split
from workflow.lib.experiments import robustness
from workflow.lib.models import robust
from workflow.lib.training import adversarial

DEFAULT = yaml.safe_load((ROOT / "workflow" / "config" / "default.yaml").read_text())
SIZE = 32


def config(tmp_path: Path, **section) -> dict:
    """The default configuration (a mapping to edit; :class:`Config` reads it), resources under ``tmp_path``, the
    robustness section updated with ``section``."""
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


# ----------------------------------------------------------------------------- scale shares of the stage


@pytest.mark.parametrize("method", ["wam_sg", "wam_ig"])
def test_shares_are_non_negative_sum_to_one_and_do_not_depend_on_the_batch(tmp_path, method):
    torch.manual_seed(3)
    model = robust.TextureCNN(n_classes=5, width=4)
    x, y = torch.rand(5, 1, SIZE, SIZE), torch.tensor([0, 1, 2, 3, 4])
    c = config(tmp_path, batch_size=7)
    shares = robustness.explain_shares(Config.from_dict(c), model, x, y, method)
    assert shares.shape == (5, 4) and (shares >= 0).all()
    torch.testing.assert_close(shares.sum(1), torch.ones(5))
    alone = robustness.explain_shares(Config.from_dict(config(tmp_path, batch_size=3)), model, x[2:3], y[2:3], method)
    torch.testing.assert_close(alone[0], shares[2])


# ----------------------------------------------------------------------------- attacks and training


def test_pgd_with_zero_epsilon_leaves_the_inputs_and_the_accuracy_unchanged(tmp_path):
    torch.manual_seed(4)
    model = robust.TextureCNN(n_classes=5, width=4)
    x, y = torch.rand(12, 1, SIZE, SIZE), torch.arange(12) % 5
    adv = adversarial.pgd(model, x, y, 5, epsilon=0.0, step_size=0.01, steps=5, batch_size=8, seed=0)
    assert torch.equal(adv, x)
    split = Split(x, y, [str(i) for i in range(12)], 5, list("abcde"))
    c = config(tmp_path, attack={"epsilon": 0.0, "step_size": 0.01, "steps": 5})
    acc = robustness.accuracies(Config.from_dict(c), model, split)
    assert acc["robust_accuracy"] == acc["clean_accuracy"]


def test_every_adversarial_training_beats_erm_in_robust_accuracy_on_the_offline_set(texture_resources):
    """The four trainings on the offline training crops (a shorter schedule than the DAG's), robust accuracy at the
    default configuration's epsilon and attack on the whole test split."""
    train, test = textures.load(texture_resources, "train"), textures.load(texture_resources, "test")
    attack = DEFAULT["robustness"]["attack"]
    eps = float(attack["epsilon"])
    robust_accuracy = {}
    for kind in adversarial.KINDS:
        torch.manual_seed(0)
        model = robust.TextureCNN(train.n_classes, width=8)
        adversarial.train(model, train.x, train.y, train.n_classes, kind, epsilon=eps, step_size=1.25 * eps,
                          steps=2, epochs=8, batch_size=32, lr=0.003, seed=0,
                          replay=DEFAULT["robustness"]["training"]["replay"])
        adv = adversarial.pgd(model, test.x, test.y, test.n_classes, epsilon=eps,
                              step_size=float(attack["step_size"]), steps=int(attack["steps"]), batch_size=320, seed=0)
        robust_accuracy[kind] = (training.predict(model, adv, 320) == test.y).float().mean().item()
    for kind in ("madry", "fast", "free"):
        assert robust_accuracy[kind] > robust_accuracy["erm"] + 0.05, robust_accuracy


def test_free_training_with_zero_epsilon_and_no_replay_is_plain_minibatch_training():
    torch.manual_seed(5)
    x, y = torch.rand(20, 1, 8, 8), torch.arange(20) % 3
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    reference = copy.deepcopy(model)
    adversarial.free_training(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, epsilon=0.0, replay=1,
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
    delta = adversarial.free_training(model, opt, x, y, epsilon=0.1, replay=1, epochs=1, batch_size=4,
                                          generator=torch.Generator().manual_seed(0))
    order = torch.randperm(4, generator=torch.Generator().manual_seed(0))  # the shuffle: delta[j] is x[order[j]]
    torch.testing.assert_close(delta, 0.1 * xg.grad[order].sign())
    delta = adversarial.free_training(model, opt, x, y, epsilon=0.1, replay=4, epochs=4, batch_size=4,
                                          generator=torch.Generator().manual_seed(0))
    assert delta.abs().max() <= 0.1 + 1e-7 and delta.abs().max() > 0


# ----------------------------------------------------------------------------- bad input


def test_a_missing_checkpoint_file_names_its_config_key(tmp_path):
    c = config(tmp_path)
    c["robustness"]["models"]["extra"] = {"training": "free", "path": str(tmp_path / "missing.pt")}
    with pytest.raises(ValueError, match=r"robustness\.models\.extra\.path: checkpoint file .*missing\.pt not found"):
        robustness.settings(Config.from_dict(c))


def test_a_model_to_train_needs_the_offline_set(tmp_path):
    c = config(tmp_path, data="images")
    with pytest.raises(ValueError, match=r"robustness\.models\.\w+: no checkpoint"):
        robustness.settings(Config.from_dict(c))


def test_a_checksum_mismatch_deletes_the_download_and_says_so(tmp_path):
    source = tmp_path / "weights.pth"
    source.write_bytes(b"not the expected weights")
    dest = tmp_path / "cache" / "model.pt"
    with pytest.raises(ValueError, match=r"robustness\.models\.m: .*sha256 mismatch.*the download was deleted"):
        robust.fetch(source.as_uri(), dest, "0" * 64, "robustness.models.m")
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_trust_on_first_use_records_the_digest_and_rejects_a_changed_cached_file(tmp_path):
    source = tmp_path / "weights.pth"
    source.write_bytes(b"first download")
    dest = tmp_path / "cache" / "model.pt"
    path, digest = robust.fetch(source.as_uri(), dest, None, "k")
    assert digest == hashlib.sha256(b"first download").hexdigest()
    assert io.read_config(dest.parent / "SHA256SUMS.json") == {"model.pt": digest}
    dest.write_bytes(b"tampered")
    with pytest.raises(ValueError, match="sha256 mismatch.*the download was deleted"):
        robust.fetch(source.as_uri(), dest, None, "k")
    assert not dest.exists()


def test_a_torchvision_file_name_prefix_is_checked(tmp_path):
    source = tmp_path / "resnet50-0676ba61.pth"
    source.write_bytes(b"whatever")
    with pytest.raises(ValueError, match="does not start with 0676ba61"):
        robust.fetch(source.as_uri(), tmp_path / "cache" / "erm.pt", None, "k")
    assert not (tmp_path / "cache" / "erm.pt").exists()


def test_a_wrapped_robust_resnet50_checkpoint_loads_into_torchvision_behind_the_normaliser(tmp_path):
    """A MadryLab-style file (``module.model.*``, ``module.attacker.*``, ``module.normalizer.*`` under ``model``),
    fetched from a file:// URL: the model file references the cached weights, and the loaded model computes the
    reference network on [0, 1] images."""
    torch.manual_seed(7)
    reference = robust.resnet50()
    state = {f"module.model.{k}": v for k, v in reference[1].state_dict().items()}
    state.update({f"module.attacker.model.{k}": v for k, v in list(reference[1].state_dict().items())[:3]})
    state["module.normalizer.new_mean"] = torch.zeros(3)
    source = tmp_path / "engstrom.pt"
    torch.save({"model": state, "epoch": 90}, source)
    c = config(tmp_path, data="images", models={"adv": {"label": "ADV", "training": "madry", "url": source.as_uri()}})
    out = tmp_path / "models" / "adv.pt"
    meta = robustness.build_model(Config.from_dict(c), "adv", 0, out)
    assert meta["sha256"] == io.file_digest(source) and out.stat().st_size < 10_000
    model, _ = robust.load(out)
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


def _haar_detail_energy(x: torch.Tensor, level: int) -> torch.Tensor:
    """Energy ``[N]`` of the level-``level`` Haar details of ``x [N, 1, S, S]``, computed here with block means (an
    own route, not ptwt): the level-(l-1) approximation minus its 2x2-block-mean upsampling."""
    approx = F.avg_pool2d(x, 2 ** (level - 1)) if level > 1 else x
    detail = approx - F.interpolate(F.avg_pool2d(approx, 2), scale_factor=2, mode="nearest")
    return detail.pow(2).flatten(1).sum(1)


def test_every_crop_of_every_class_and_split_has_detail_at_every_level(texture_resources):
    """A pixel-doubled photograph cropped on an even grid has exactly zero finest details (the moon's test crops
    did): every crop, not only every class, must have energy at levels 1 to 3."""
    for split in ("train", "test"):
        data = textures.load(texture_resources, split)
        for level in (1, 2, 3):
            energy = _haar_detail_energy(data.x, level)
            for c, name in enumerate(textures.CLASSES):
                assert (energy[data.y == c] > 0).all(), (split, name, level, int((energy[data.y == c] == 0).sum()))


def test_moon_is_taken_at_its_native_resolution():
    import skimage.data

    shipped = skimage.data.moon()
    assert textures.photograph("moon").shape == (256, 256)
    assert (shipped[::2, ::2].repeat(2, 0).repeat(2, 1) == shipped).all()  # why: scikit-image doubles it


def test_tables_give_each_figure_with_its_seed_spread_and_the_figure_is_written(tmp_path):
    """Three training seeds; coarse shares and robust accuracies chosen so that rho = +1 in seeds 0 and 1 and the
    adversarial models' order flips in seed 2 (rho = 0.2): the table's spread is recomputed here by hand."""
    c = config(tmp_path, seeds=[0, 1, 2])
    names = transform.level_names(3)  # 3 levels and the approximation
    robust = {"erm": [0.2, 0.25, 0.2], "adv": [0.7, 0.7, 0.5], "adv_fast": [0.6, 0.65, 0.6],
              "adv_free": [0.5, 0.5, 0.7]}
    coarse = {"erm": [0.1, 0.12, 0.1], "adv": [0.4, 0.4, 0.4], "adv_fast": [0.3, 0.3, 0.3],
              "adv_free": [0.2, 0.2, 0.2]}
    scores, summaries = [], []
    rng = np.random.default_rng(0)
    for model in robust:
        for seed in (0, 1, 2):
            rows = []
            for method in c["robustness"]["methods"]:
                for i in range(10):
                    fine = rng.dirichlet([1, 1]) * (1 - coarse[model][seed])
                    values = [fine[0], fine[1], coarse[model][seed] / 2, coarse[model][seed] / 2]
                    rows += [(model, seed, method, f"s{i}", 0, level, v)
                             for level, v in zip(names, values, strict=True)]
            scores.append(tmp_path / f"{model}_{seed}.csv")
            pd.DataFrame(rows, columns=["model", "seed", "method", "sample_id", "target", "level", "value"]).to_csv(
                scores[-1], index=False)
            summaries.append(tmp_path / f"{model}_{seed}.json")
            io.write_json(summaries[-1], {"model": model, "seed": seed, "clean_accuracy": 0.9,
                                          "robust_accuracy": robust[model][seed], "n_accuracy": 320})
    robustness.write_tables(Config.from_dict(c), scores, summaries, tmp_path / "tables", tmp_path / "figure.png")
    table = pd.read_csv(tmp_path / "tables" / "robustness_scales.csv", keep_default_na=False)
    assert table["spearman_seeds"].eq("+1.00 +1.00 +0.20").all() and table["spearman_positive"].eq(3).all()
    assert table["spearman_robust_coarse"].iloc[0] == pytest.approx(np.mean([1, 1, 0.2]), abs=1e-6)
    assert table["spearman_sd"].iloc[0] == pytest.approx(np.std([1, 1, 0.2], ddof=1), abs=1e-6)
    assert table["model"].drop_duplicates().tolist() == ["erm", "adv", "adv_fast", "adv_free"]
    erm = table[(table["model"] == "erm") & (table["method"] == "wam_sg")].set_index("level")
    assert erm.loc["approx", "mean"] == pytest.approx(np.mean([0.05, 0.06, 0.05]), abs=1e-6)
    assert erm.loc["approx", "sd_seeds"] == pytest.approx(np.std([0.05, 0.06, 0.05], ddof=1), abs=1e-6)
    assert erm.loc["approx", "robust_accuracy_sd"] == pytest.approx(np.std([0.2, 0.25, 0.2], ddof=1), abs=1e-6)
    assert erm.loc["approx", "coarse_share"] == pytest.approx(np.mean([0.1, 0.12, 0.1]), abs=1e-6)
    np.testing.assert_allclose(table.groupby(["model", "method"])["mean"].sum(), 1, atol=4e-6)  # 4 x %.6f
    md = (tmp_path / "tables" / "robustness_scales.md").read_text()
    assert md.count("rho = +0.73 ± 0.46 over 3 training seed(s)") == 2 and "level 1 (finest)" in md
    assert "ERM's coarse share is below every adversarial model's by at least +0.093" in md
    assert md.index("| ERM |") < md.index("| ADV |")
    assert "\\caption{" in (tmp_path / "tables" / "robustness_scales.tex").read_text()
    assert (tmp_path / "figure.png").stat().st_size > 10_000
    assert (tmp_path / "figure.png.provenance.json").is_file()


def test_adding_a_model_is_one_config_entry(tmp_path):
    """Dry run of the `robustness` target with one more entry: one more training and one more evaluation job per
    training seed (3 by default)."""
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
    assert counts["robustness_model"] == counts["robustness_evaluate"] == str(5 * 3)
    assert "results/default/robustness/models/adv_free_m8/2.pt" in run.stdout


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
    accuracy_set, explained = robustness.evaluation_data(Config.from_dict(c))
    assert accuracy_set is explained and explained.x.shape == (4, 3, 224, 224)
    expected = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
    for x, name in zip(explained.x, explained.ids, strict=True):
        with Image.open(root / name) as im:
            torch.testing.assert_close(x, expected(im.convert("RGB")), atol=1e-5, rtol=0)
    assert explained.y.tolist() == [0, 0, 1, 1]
