"""The paper configuration end to end on the paper's loaders: ``paper.yaml`` with its sizes overridden to tiny
values, on data written in the three real formats (a flat ImageNet folder holding a non-contiguous subset of the
validation images with the devkit's labels, an extracted ESC-50, a MedMNIST ``.npz``), with the offline image
model (no network), through ``evaluation``; and a damaged clip stops the run at the preflight, on the console."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from tests.workflow.helpers import ROOT, snakemake, write_esc50, write_medmnist
from workflow.lib.data import imagenet

NUMBERS = (3, 7, 11, 20)  # validation images held in the flat folder


def _imagenet(folder: Path) -> Path:
    from PIL import Image

    folder.mkdir()
    wnids = imagenet.wnids()
    labels = folder.parent / "ILSVRC2012_validation_ground_truth.txt"
    labels.write_text("\n".join(wnids[(7 * k) % 1000] for k in range(1, 25)) + "\n")
    rng = np.random.default_rng(0)
    for n in NUMBERS:
        Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(folder / f"ILSVRC2012_val_{n:08d}.JPEG")
    return labels


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("paper")
    labels = _imagenet(workdir / "imagenet")
    esc50 = write_esc50(workdir / "ESC-50-master", manifest=False, rate=44100)
    write_medmnist(workdir / "resources" / "medmnist" / "adrenalmnist3d.npz", (8, 4, 4), 28, cube=True)
    config = yaml.safe_load((ROOT / "workflow" / "config" / "paper.yaml").read_text())
    schema = yaml.safe_load((ROOT / "workflow" / "config" / "schema.yaml").read_text())
    config = {k: v for k, v in config.items() if k in schema["required"]}  # Table 1's pipeline, no experiments
    config.update(resources=str(workdir / "resources"), shards=1)
    images, audio, volumes = (config["datasets"][k] for k in ("images", "audio", "volumes"))
    images.update(path=str(workdir / "imagenet"), labels=str(labels), n_inputs=2, models=["efficientnet_lite0"])
    audio.update(path=str(esc50), clips=10, n_inputs=2)
    volumes.update(n_inputs=2)
    config["training"].update(epochs=1, patience=1, batch_size=4)
    config["methods"] = {"saliency": config["methods"]["saliency"], "gradcam": config["methods"]["gradcam"],
                         "wam_ig": {**config["methods"]["wam_ig"], "options": {"method": "integrated", "n_samples": 3}}}
    config["evaluation"].update(steps=4, mu_fidelity={"grid": 4, "subset": 0.2, "samples": 4}, bootstrap=20,
                                protocol_sensitivity={"wam": {"steps": 4, "mu_fidelity": {"samples": 4, "blur": 2}},
                                                      "baseline": {"steps": 8, "mu_fidelity": {"samples": 8}}})
    path = workdir / "paper-tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    snakemake(workdir, path, "evaluation")
    return workdir, config, path


def test_the_paper_configuration_runs_on_the_real_formats(paper_run):
    workdir, config, _ = paper_run
    results = workdir / "results" / "paper"
    table = pd.read_csv(results / "tables" / "table1.csv")
    assert set(table["modality"]) == {"images", "audio", "volumes"}
    assert set(table["method"]) == set(config["methods"])
    # Table 1 shows the first volume model; every model has its own table
    assert set(table[table["modality"] == "volumes"]["model"]) == {"vit3d"}
    for dataset, spec in config["datasets"].items():
        for model in spec["models"]:
            assert (results / "tables" / f"table1_{dataset}_{model}.csv").is_file()
    assert "First model of each modality" in (results / "tables" / "table1.md").read_text()
    scores = pd.read_csv(results / "scores" / "scores.csv", keep_default_na=False)
    explained = torch.load(results / "attributions" / "images" / "efficientnet_lite0" / "saliency" / "0.pt",
                           weights_only=False)
    numbers = [int(name[len("ILSVRC2012_val_"):-len(".JPEG")]) for name in explained["ids"]]
    assert len(numbers) == 2 and set(numbers) <= set(NUMBERS)  # two of the four files, by name
    assert sorted(set(scores[scores["dataset"] == "images"]["sample_id"])) == sorted(explained["ids"])
    wnids = imagenet.wnids()
    truth = (workdir / "ILSVRC2012_validation_ground_truth.txt").read_text().split()
    assert explained["y"].tolist() == [wnids.index(truth[n - 1]) for n in numbers]  # labels by file number
    assert (results / "preflight.json").is_file()


def test_a_truncated_clip_stops_the_run_at_the_preflight_with_its_message_on_the_console(paper_run):
    """A truncated clip (2 s), not the first one: the preflight reads every clip and stops the run before any other
    job, and plain ``snakemake`` (the default workflow profile) prints why."""
    workdir, config, _ = paper_run
    import soundfile as sf

    clip = Path(config["datasets"]["audio"]["path"]) / "audio" / "4-1000-A-0.wav"
    sf.write(clip, np.zeros(44100 * 2), 44100)
    bad = workdir / "bad.yaml"
    bad.write_text(yaml.safe_dump({**config, "name": "bad"}))
    console = snakemake(workdir, bad, str(Path("results") / "bad" / "data" / "audio.json"), ok=False)
    assert "4-1000-A-0.wav is 44100 Hz, 2.000 s; ESC-50 clips are 44100 Hz, 5 s" in console
    assert "allow_short_clips: true zero-pads it" in console
    assert "preflight found 1 problem(s)" in console and "rule prepare_data" not in console
