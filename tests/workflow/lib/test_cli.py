"""The ``wam`` command: figures with the expected panels on an image, a .wav and volumes, and its errors.

Known answers: EfficientNet-Lite0 calls scikit-image's ``coffee`` an espresso (class 967); the maps equal the
library's on the same input; a stereo 22.05 kHz clip becomes the mean of its channels resampled to 44.1 kHz;
uint8 volumes are divided by 255 and NIfTI rescaled to [0, 1].
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from wam import WAM, Explanation, transform
from workflow.lib import cli
from workflow.lib.data import imagenet
from workflow.lib.models import zoo as models
from workflow.lib.models.preprocessing import IMAGENET_DEFAULTS, ImagePreprocessing

DPI, PANEL_W, PANEL_H = 110, 2.5, 3.0  # cli.draw's figure geometry, and the dpi main saves with


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The inputs and models of the tests, written once."""
    import nibabel as nib
    import skimage.data
    import soundfile as sf
    from PIL import Image

    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    f = {k: d / name for k, name in [
        ("photo", "coffee.png"), ("wav", "tone.wav"), ("npz", "volume.npz"), ("stack", "stack.npz"),
        ("nifti", "scan.nii.gz"), ("audio_model", "audio.pt"), ("volume_model", "volume.pt"),
        ("scripted", "scripted.pt"), ("text", "notes.txt"), ("bad_png", "bad.png"), ("bad_model", "bad.pt"),
        ("bad_wav", "bad.wav"), ("bad_npz", "bad.npz")]}
    Image.fromarray(skimage.data.coffee()).save(f["photo"])
    t = np.arange(22050) / 22050
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * ((t > 0.4) & (t < 0.6)) + 0.01 * rng.standard_normal(t.size))
    sf.write(f["wav"], np.stack([tone, np.zeros_like(tone)], 1).astype(np.float32), 22050)  # stereo, right silent
    np.savez(f["npz"], rng.integers(0, 256, (28, 28, 28)).astype(np.uint8))
    np.savez(f["stack"], test_images=rng.integers(0, 256, (3, 28, 28, 28)).astype(np.uint8),
             test_labels=np.arange(3)[:, None])
    nib.save(nib.Nifti1Image((rng.random((28, 28, 28)) * 900 + 100).astype(np.float32), np.eye(4)), f["nifti"])
    torch.manual_seed(0)  # seeded weights: these tests check panels and plumbing, not accuracy
    models.save(models.build("audio_resnet", 3), f["audio_model"], meta={"class_names": ["bell", "chirp", "hum"]})
    models.save(models.build("resnet3d", 4), f["volume_model"])
    scripted = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)).eval()
    with warnings.catch_warnings():  # torch 2.x marks TorchScript deprecated; users still have such files
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(scripted), f["scripted"])
    f["text"].write_text("not an input")
    f["bad_png"].write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    f["bad_model"].write_bytes(b"not a checkpoint")
    f["bad_wav"].write_bytes(b"RIFF\x00\x00 not a wav")
    f["bad_npz"].write_bytes(b"PK\x03\x04 not a zip")
    return f


def run(tmp_path: Path, *args: str) -> tuple[dict, Path]:
    """``wam explain *args --out FIG --save maps.pt``; returns the saved record and the figure path."""
    fig, saved = tmp_path / "fig.png", tmp_path / "maps.pt"
    assert cli.main(["explain", *map(str, args), "--out", str(fig), "--save", str(saved)]) == 0
    return torch.load(saved, weights_only=True), fig


def check_figure(record: dict, fig: Path, input_title: str, levels: int, curves: bool) -> None:
    """Panels: input, dyadic map, one per level, heatmap over the input; images (or curves for 1D) in each;
    the written PNG has the size of that many panels."""
    from PIL import Image

    titles = [p["title"] for p in record["panels"]]
    shares = record["scale_shares"]
    assert titles == [input_title, "WAM dyadic map",
                      *[f"level {i} (share {float(shares[i - 1]):.2f})" for i in range(1, levels + 1)],
                      "heatmap on input"]
    assert record["panels"][0]["images"] == 1
    for panel in record["panels"][1:]:
        assert (panel["lines"] if curves else panel["images"]) >= 1, panel
    assert record["panels"][-1]["lines" if curves else "images"] == 2  # the input, then the heatmap over it
    with Image.open(fig) as im:
        assert im.size == (round(PANEL_W * (levels + 3) * DPI), round(PANEL_H * DPI))
    assert record["figure"] == str(fig)


def test_image_offline_photo_is_an_espresso(files, tmp_path):
    record, fig = run(tmp_path, files["photo"], "--method", "gradient")
    check_figure(record, fig, "input", levels=3, curves=False)
    assert record["prediction"]["index"] == 967 and record["prediction"]["name"] == "espresso"
    assert record["target"] == record["prediction"] and record["model"] == "efficientnet_lite0"
    preprocessing = ImagePreprocessing.of("efficientnet_lite0")
    x = preprocessing.normalize()(imagenet.decode_images([files["photo"]], preprocessing))
    torch.testing.assert_close(record["x"], x[0])  # the benchmark's own preprocessing
    assert record["dyadic"].shape == (224, 224) and record["scales"].shape == (3, 224, 224)
    torch.testing.assert_close(record["heatmap"], record["scales"].sum(0))
    grads = record["grads"]  # approximation, then levels 3, 2, 1 (3 bands each): the finest level's raw share
    raw = [g.mean(0).abs().sum() for g in grads]
    torch.testing.assert_close(record["scale_shares"][0], sum(raw[-3:]) / sum(raw))
    torch.testing.assert_close(record["scale_shares"].sum(), torch.tensor(1.0))
    grads, coeffs = ([b[None] for b in record[k]] for k in ("grads", "coeffs"))  # per band [1, C, *band]
    expl = Explanation(grads=transform.unbands(grads, 2), coeffs=transform.unbands(coeffs, 2), ndim=2,
                       wavelet="haar", size=(224, 224))
    torch.testing.assert_close(record["dyadic"], expl.dyadic()[0])  # the saved maps are those of the saved grads


def test_audio_wav_with_a_benchmark_audio_checkpoint(files, tmp_path):
    record, fig = run(tmp_path, files["wav"], "--model", files["audio_model"], "--levels", "4",
                      "--n-samples", "2")
    check_figure(record, fig, "input (log-mel)", levels=4, curves=True)
    import soundfile as sf
    import torchaudio.functional as AF

    stereo, rate = sf.read(files["wav"], dtype="float32")
    mono = AF.resample(torch.from_numpy(stereo.mean(1)), rate, 44100)
    assert record["sample_rate"] == 44100 and record["x"].shape == (44100,)
    torch.testing.assert_close(record["x"], mono)
    with torch.no_grad():
        logits = models.load(files["audio_model"])(record["x"][None])
    assert record["prediction"]["index"] == int(logits.argmax())
    assert record["prediction"]["name"] == ["bell", "chirp", "hum"][int(logits.argmax())]  # from the meta
    assert record["heatmap"].shape == (44100,) and record["scales"].shape == (4, 44100)


def test_npz_volume_with_a_resnet3d_checkpoint(files, tmp_path):
    record, fig = run(tmp_path, files["npz"], "--model", files["volume_model"], "--levels", "2",
                      "--method", "integrated", "--n-samples", "3", "--target", "1")
    check_figure(record, fig, "input (middle slice)", levels=2, curves=False)
    assert record["target"]["index"] == 1 and record["target"]["name"] == "class 1"  # no names in the meta
    volume = np.load(files["npz"])["arr_0"]
    torch.testing.assert_close(record["x"], torch.from_numpy(volume / 255.0).float()[None])
    assert record["heatmap"].shape == (28, 28, 28) and record["scales"].shape == (2, 28, 28, 28)
    assert len(record["probabilities"]) == 4


def test_volume_stack_key_index_size_and_nifti(files, tmp_path):
    record, _ = run(tmp_path, files["stack"], "--model", files["volume_model"], "--key", "test_images",
                    "--index", "1", "--size", "16", "--method", "gradient", "--levels", "2")
    item = torch.from_numpy(np.load(files["stack"])["test_images"][1] / 255.0).float()[None, None]
    torch.testing.assert_close(record["x"], transform.resize(item, (16, 16, 16))[0])
    record, _ = run(tmp_path, files["nifti"], "--model", files["volume_model"], "--method", "gradient")
    import nibabel as nib

    data = torch.from_numpy(np.asarray(nib.load(files["nifti"]).dataobj, dtype=np.float32))
    torch.testing.assert_close(record["x"], ((data - data.min()) / (data.max() - data.min()))[None])


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_model_maps_match_the_library_and_the_figure_shows_them(files):
    result = cli.explain(files["photo"], model=str(files["scripted"]), method="integrated", n_samples=3,
                         levels=2, wavelet="db2", target=1)
    assert len(result.figure.axes) == 5 and result.class_names == [f"class {i}" for i in range(5)]
    preprocessing = ImagePreprocessing.from_dict(IMAGENET_DEFAULTS)  # timm's ImageNet defaults
    x = preprocessing.normalize()(imagenet.decode_images([files["photo"]], preprocessing))
    torch.testing.assert_close(result.x, x)
    expected = WAM(torch.jit.load(files["scripted"]), ndim=2, method="integrated", n_samples=3, levels=2,
                   wavelet="db2")(x, [1])
    expl = result.explanation
    for band, oracle in zip(transform.bands(expl.grads), transform.bands(expected.grads), strict=True):
        torch.testing.assert_close(band, oracle)
    np.testing.assert_allclose(result.figure.axes[1].images[0].get_array(), expl.dyadic()[0].numpy())
    for level, ax in enumerate(result.figure.axes[2:4]):
        np.testing.assert_allclose(ax.images[0].get_array(), expl.scales()[0, level].numpy())
    np.testing.assert_allclose(result.figure.axes[-1].images[1].get_array(), cli._normalised(expl.heatmap()[0]),
                               atol=1e-6)


@pytest.mark.gpu
def test_cuda_gives_the_cpu_maps(files, tmp_path):
    args = (files["npz"], "--model", files["volume_model"], "--method", "integrated", "--n-samples", "3")
    cpu, _ = run(tmp_path / "cpu", *args, "--device", "cpu")
    gpu, _ = run(tmp_path / "gpu", *args, "--device", "cuda")
    assert gpu["prediction"]["index"] == cpu["prediction"]["index"]
    for key in ("dyadic", "heatmap"):  # maps normalised to [0, 1]; cuDNN may use TF32 for the 3D convolutions
        torch.testing.assert_close(gpu[key], cpu[key], rtol=1e-2, atol=1e-3)


def _offline_without(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    cfg = __import__("timm").models.get_pretrained_cfg(name)
    return not isinstance(try_to_load_from_cache(cfg.hf_hub_id, "model.safetensors"), str)


ERRORS = {
    "missing file": (["{tmp}/missing.png"], "INPUT: ", "no such file"),
    "unsupported extension": (["{text}"], "INPUT: ", "unsupported extension '.txt'"),
    "unreadable image": (["{bad_png}", "--model", "{scripted}"], "INPUT: ", "unreadable image"),
    "unreadable wav": (["{bad_wav}", "--model", "{audio_model}"], "INPUT: ", "unreadable audio file"),
    "unreadable npz": (["{bad_npz}", "--model", "{volume_model}"], "INPUT: ", "unreadable array file"),
    "audio without model": (["{wav}"], "--model: ", "required for a .wav input"),
    "audio with an image model": (["{wav}", "--model", "{scripted}"], "--model: ", "needs an audio model"),
    "audio with a volume model": (["{wav}", "--model", "{volume_model}"], "--model: ", "needs an audio model"),
    "image with an audio model": (["{photo}", "--model", "{audio_model}"], "--model: ", "INPUT must be a .wav"),
    "unknown model": (["{photo}", "--model", "efficientnet_lite"], "--model: ", "unknown model"),
    "missing model file": (["{photo}", "--model", "{tmp}/model.pt"], "--model: ", "no such file"),
    "corrupt model file": (["{photo}", "--model", "{bad_model}"], "--model: ", "neither a TorchScript"),
    "untrained registry model": (["{npz}", "--model", "resnet3d"], "--model: ", "pass its checkpoint"),
    "target out of range": (["{photo}", "--model", "{scripted}", "--target", "5"], "--target: ",
                            "5 out of range for a model with 5 classes"),
    "too many levels": (["{photo}", "--model", "{scripted}", "--levels", "9"], "--levels: ", "[1, 7]"),
    "unknown wavelet": (["{photo}", "--wavelet", "nope"], "--wavelet: ", "unknown discrete wavelet"),
    "npz without key": (["{stack}", "--model", "{volume_model}"], "--key: ", "holds 2 arrays"),
    "stack without index": (["{stack}", "--model", "{volume_model}", "--key", "test_images"], "INPUT: ",
                            "does not fit --model"),
    "index on one volume": (["{npz}", "--model", "{volume_model}", "--index", "0"], "--index: ",
                            "picks one item of a stack"),
    "index out of range": (["{stack}", "--model", "{volume_model}", "--key", "test_images", "--index", "3"],
                           "--index: ", "3 out of range for a stack of 3 items"),
    "unknown device": (["{photo}", "--model", "{scripted}", "--device", "nope"], "--device: ", "not usable"),
    "size on an image": (["{photo}", "--size", "8"], "--size: ", "only for volume inputs"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_name_the_argument_in_one_line(case, files, tmp_path, capsys):
    args, argument, what = ERRORS[case]
    with pytest.raises(SystemExit) as exit_:
        cli.main(["explain", *[a.format(tmp=tmp_path, **files) for a in args], "--out", str(tmp_path / "f.png")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith(f"wam explain: error: {argument}") and err.count("\n") == 1, err
    assert what in err and "Traceback" not in err
    assert not (tmp_path / "f.png").exists()


def test_unknown_wavelet_lists_only_discrete_families(files, tmp_path, capsys):
    """``--wavelet`` takes a discrete wavelet only: the message lists those families, not the continuous ones."""
    with pytest.raises(SystemExit):
        cli.main(["explain", str(files["photo"]), "--wavelet", "foo", "--out", str(tmp_path / "f.png")])
    err = capsys.readouterr().err
    families = err.split("discrete families: ", 1)[1].rstrip(")\n").split(", ")
    assert families == transform.discrete_families()
    assert {"haar", "db", "sym", "coif", "bior", "rbio", "dmey"} == set(families)  # no gaus, mexh, morl, cmor ...


@pytest.mark.parametrize("argument", ["--out", "--save"])
def test_a_missing_output_folder_is_an_error_naming_it_and_nothing_is_created(files, tmp_path, capsys, argument):
    missing = tmp_path / "nonexistent" / "dir"
    paths = {"--out": tmp_path / "f.png", "--save": tmp_path / "maps.pt", argument: missing / "x.png"}
    with pytest.raises(SystemExit) as exit_:
        cli.main(["explain", str(files["photo"]), "--model", str(files["scripted"]),
                  "--out", str(paths["--out"]), "--save", str(paths["--save"])])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"wam explain: error: {argument}: cannot write {missing / 'x.png'}: the folder {missing} "
                          "does not exist")
    assert list(tmp_path.iterdir()) == []  # no folder made, no figure written


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_write_error_names_the_users_path_not_a_temporary_one(files, capsys):
    """/proc exists but takes no new file, even for root: the message names the path asked for."""
    with pytest.raises(SystemExit):
        cli.main(["explain", str(files["photo"]), "--model", str(files["scripted"]), "--out", "/proc/x.png"])
    err = capsys.readouterr().err
    assert err.startswith("wam explain: error: --out: cannot write /proc/x.png (") and err.count("\n") == 1
    assert err.endswith(": '/proc/x.png')\n") and ".tmp" not in err, err


def test_timm_model_offline_without_cache_suggests_the_offline_model(files, tmp_path, capsys):
    if not _offline_without("resnet10t"):
        pytest.skip("resnet10t weights are in the local Hugging Face cache")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["explain", str(files["photo"]), "--model", "timm:resnet10t", "--out", str(tmp_path / "f.png")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("wam explain: error: --model: ") and err.count("\n") == 1
    assert "--model efficientnet_lite0" in err and "--no-pretrained" in err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["explain", "x.png", "--target", "dog"])
    assert exit_.value.code == 2 and "argument --target: expected auto or a class index" in capsys.readouterr().err


def test_bench_forwards_its_arguments(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: wam bench ") and "--scale" in out and "--repeats" in out


def test_console_script_exit_status(tmp_path):
    script = Path(sys.executable).with_name("wam")
    if not script.is_file():
        pytest.skip("the wam console script is not installed in this environment")
    proc = subprocess.run([str(script), "explain", str(tmp_path / "missing.png")], capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"wam explain: error: INPUT: {tmp_path / 'missing.png'}: no such file\n"
