"""Loaders on tiny files written here in the real on-disk formats (no network, no prepared data)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.workflow.helpers import write_esc50, write_medmnist
from workflow.lib import data as D
from workflow.lib import files as io
from workflow.lib.config import DatasetSpec
from workflow.lib.data import esc50, imagenet, offline
from workflow.lib.models.preprocessing import ImagePreprocessing

SR = esc50.SAMPLE_RATE
LITE0 = ImagePreprocessing.of("efficientnet_lite0")


def spec(cfg: dict, key: str | None = None) -> DatasetSpec:
    """The typed data set of a config section (its key: ``key``, else its modality)."""
    return DatasetSpec.from_config(key or cfg["modality"], cfg)


def _write_esc50(root: Path, **kwargs) -> Path:
    return write_esc50(root / "offline" / "audio", **kwargs)


AUDIO = {"modality": "audio", "source": "offline", "n_inputs": 2, "fold": 1}
VOLUMES = {"modality": "volumes", "source": "offline", "n_inputs": 3, "size": 8}


def test_esc50_layout_folds_and_shapes(tmp_path):
    _write_esc50(tmp_path, channels=2)  # stereo: the loader averages it to mono
    test = D.load(spec(AUDIO), "test", tmp_path)
    assert test.x.shape == (2, 5 * SR) and test.x.dtype == torch.float32
    assert test.ids == ["1-1000-A-0.wav", "1-1010-A-1.wav"]
    assert test.y.tolist() == [0, 1] and test.class_names == ["class0", "class1"]
    torch.testing.assert_close(test.x.abs().amax(1), torch.ones(2))  # peak-normalised
    val = D.load(spec(AUDIO), "val", tmp_path)
    train = D.load(spec(AUDIO), "train", tmp_path)
    assert {i[0] for i in val.ids} == {"2"} and {i[0] for i in train.ids} == {"3", "4", "5"}


def test_a_truncated_clip_is_an_error_unless_allowed(tmp_path):
    _write_esc50(tmp_path, seconds=1.0)
    with pytest.raises(ValueError, match=r"1-1000-A-0\.wav: 1\.000 s .*allow_short_clips"):
        D.load(spec(AUDIO), "test", tmp_path)
    with pytest.warns(UserWarning, match=r"1-1000-A-0\.wav: 1\.000 s .*zero-padded"):
        test = D.load(spec({**AUDIO, "allow_short_clips": True}), "test", tmp_path)
    assert test.x.shape == (2, 5 * SR) and test.x[:, SR + 10:].abs().max() == 0


def test_an_extracted_esc50_is_validated_and_used_in_place(tmp_path):
    folder = write_esc50(tmp_path / "ESC-50", manifest=False, rate=SR)
    cfg = {"modality": "audio", "source": "esc50", "path": str(folder), "clips": 10, "n_inputs": 2}
    assert D.prepare(spec(cfg, "audio"), tmp_path / "resources") == folder
    assert not (tmp_path / "resources").exists() and not (folder / "manifest.json").exists()  # no download
    assert D.load(spec(cfg), "test", tmp_path / "resources").ids == ["1-1000-A-0.wav", "1-1010-A-1.wav"]
    with pytest.raises(ValueError, match=r"datasets\.audio.* lists 10 clips, expected 2000 \(datasets\.audio\.clips\)"):
        D.prepare(spec({**cfg, "clips": 2000}, "audio"), tmp_path)
    (folder / "audio" / "3-1000-A-0.wav").unlink()
    with pytest.raises(ValueError, match=r"datasets\.audio\.path: 1 clips .* missing .*3-1000-A-0\.wav"):
        D.prepare(spec(cfg, "audio"), tmp_path)
    with pytest.raises(ValueError, match=r"datasets\.audio\.path: .*nowhere is not a folder"):
        D.prepare(spec({**cfg, "path": str(tmp_path / "nowhere")}, "audio"), tmp_path)


def test_corrupt_wav_names_the_file(tmp_path):
    folder = _write_esc50(tmp_path)
    bad = folder / "audio" / "1-1000-A-0.wav"
    bad.write_bytes(bad.read_bytes()[:30])  # truncated header
    with pytest.raises(ValueError, match="1-1000-A-0.wav"):
        D.load(spec(AUDIO), "test", tmp_path)


def test_esc50_archive_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch):
    archive = tmp_path / "src.zip"
    archive.write_bytes(b"not the archive")
    dest = tmp_path / "esc50" / "ESC-50-master.zip"
    with pytest.raises(ValueError, match="sha256 mismatch"):
        io.download(archive.as_uri(), dest, sha256="0" * 64)
    assert not dest.exists() and not any(dest.parent.iterdir())


def test_medmnist_npz_format(tmp_path):
    write_medmnist(tmp_path / "offline" / "volumes" / "synth3d_8.npz")
    s = D.load(spec(VOLUMES), "test", tmp_path)
    assert s.x.shape == (3, 1, 8, 8, 8) and s.x.dtype == torch.float32
    assert 0 <= s.x.min() and s.x.max() <= 1
    assert sorted(s.y.tolist()) in ([0, 0, 1], [0, 1, 1])  # class-balanced subset
    assert D.load(spec(VOLUMES), "test", tmp_path).ids == s.ids  # deterministic
    assert len(D.load(spec(VOLUMES), "test", tmp_path, subset=False)) == 6
    real = {"modality": "volumes", "source": "medmnist", "flag": "adrenalmnist3d", "size": 8}
    write_medmnist(tmp_path / "medmnist" / "adrenalmnist3d_8.npz")
    m = D.load(spec(real), "train", tmp_path)
    assert m.class_names == ["normal", "hyperplasia"] and m.x.shape == (6, 1, 8, 8, 8)


def test_prepare_validates_the_npz(tmp_path):
    cfg = {"modality": "volumes", "source": "medmnist", "flag": "adrenalmnist3d", "size": 8}
    path = tmp_path / "medmnist" / "adrenalmnist3d_8.npz"
    rng = np.random.default_rng(1)
    arrays = {f"{s}_images": rng.integers(0, 256, (4, 8, 8, 8), dtype=np.uint8) for s in ("train", "val")}
    arrays.update({f"{s}_labels": np.zeros((4, 1), np.int64) for s in ("train", "val")})
    io.write_npz(path, **arrays)
    with pytest.raises(ValueError, match=r"datasets\.volumes: .*adrenalmnist3d_8\.npz has no test_images"):
        D.prepare(spec(cfg, "volumes"), tmp_path)
    arrays.update(test_images=rng.integers(0, 256, (4, 8, 8, 9), dtype=np.uint8), test_labels=np.full((4, 1), 5))
    io.write_npz(path, **arrays)
    with pytest.raises(ValueError, match=r"(?s)datasets\.volumes\.size: .*test_images is \(4, 8, 8, 9\).*"
                                         r"test_labels span \[5, 5\], expected \[0, 1\]"):
        D.prepare(spec(cfg, "volumes"), tmp_path)


def test_corrupt_npz_names_the_file(tmp_path):
    path = tmp_path / "offline" / "volumes" / "synth3d_8.npz"
    write_medmnist(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="synth3d_8.npz"):
        D.load(spec(VOLUMES), "test", tmp_path)


def _write_imagenet(root: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(2)
    for wnid, name in (("n02124075", "a.JPEG"), ("n07920052", "b.JPEG")):
        (root / wnid).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(root / wnid / name)


def test_imagenet_class_folders(tmp_path):
    _write_imagenet(tmp_path / "val")
    cfg = {"modality": "images", "source": "imagenet", "path": str(tmp_path / "val"),
           "n_inputs": 2, "models": ["efficientnet_lite0"]}
    assert D.prepare(spec(cfg, "images"), tmp_path) == tmp_path / "val"
    s = D.load(spec(cfg), "test", tmp_path, preprocessing=LITE0)
    assert s.x.shape == (2, 3, 224, 224) and s.n_classes == 1000
    assert 0 <= float(s.x.min()) and float(s.x.max()) <= 1  # the data's own space: normalised by the model later
    assert s.y.tolist() == [285, 967] and s.ids == ["n02124075/a.JPEG", "n07920052/b.JPEG"]
    assert s.class_names[285] == "Egyptian cat"
    assert D.ground_truth(spec(cfg), tmp_path, s.ids) is None


def test_imagenet_flat_with_wnid_labels(tmp_path):
    _write_imagenet(tmp_path / "src")
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, p in enumerate(sorted((tmp_path / "src").rglob("*.JPEG"))):
        p.rename(flat / f"ILSVRC2012_val_{i + 1:08d}.JPEG")
    (tmp_path / "gt.txt").write_text("n02124075\nn07920052\n")
    cfg = {"modality": "images", "source": "imagenet", "path": str(flat),
           "labels": str(tmp_path / "gt.txt"), "n_inputs": 2}
    assert D.load(spec(cfg), "test", tmp_path, preprocessing=LITE0).y.tolist() == [285, 967]


def test_flat_imagenet_subset_takes_labels_by_file_number(tmp_path):
    """Images 2, 4 and 6 of the validation set: each gets its own devkit line, not the first three."""
    from PIL import Image

    flat = tmp_path / "flat"
    flat.mkdir()
    wnids = imagenet.wnids()
    truth = [wnids[10 * k] for k in range(1, 8)]  # line k -> class 10 k
    (tmp_path / "gt.txt").write_text("\n".join(truth) + "\n")
    for number in (2, 4, 6):
        Image.new("RGB", (40, 40)).save(flat / f"ILSVRC2012_val_{number:08d}.JPEG")
    cfg = {"modality": "images", "source": "imagenet", "path": str(flat), "labels": str(tmp_path / "gt.txt"),
           "n_inputs": None}
    s = D.load(spec(cfg), "test", tmp_path, preprocessing=LITE0)
    assert s.ids == [f"ILSVRC2012_val_{n:08d}.JPEG" for n in (2, 4, 6)]
    assert s.y.tolist() == [20, 40, 60]
    Image.new("RGB", (40, 40)).save(flat / "holiday.JPEG")
    with pytest.raises(ValueError, match=r"datasets\.images\.path: 1 \(holiday\.JPEG\) file.* not named "
                                         r"ILSVRC2012_val_%08d"):
        D.load(spec(cfg), "test", tmp_path, preprocessing=LITE0)


def test_imagenet_errors_name_key_and_file(tmp_path):
    cfg = {"modality": "images", "source": "imagenet", "n_inputs": 2}
    with pytest.raises(ValueError, match=r"datasets\.images\.path"):
        D.prepare(spec(cfg, "images"), tmp_path)
    _write_imagenet(tmp_path / "val")
    bad = tmp_path / "val" / "n02124075" / "a.JPEG"
    bad.write_bytes(bad.read_bytes()[:100])
    cfg["path"] = str(tmp_path / "val")
    with pytest.raises(ValueError, match="a.JPEG"):
        D.load(spec(cfg), "test", tmp_path, preprocessing=LITE0)
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"")
    with pytest.raises(ValueError, match=r"datasets\.images\.labels"):
        D.load(spec({**cfg, "path": str(flat)}), "test", tmp_path, preprocessing=LITE0)


def test_images_are_decoded_with_the_models_own_preprocessing_and_a_shard_decodes_its_files_only(tmp_path,
                                                                                                 monkeypatch):
    _write_imagenet(tmp_path / "val")
    cfg = {"modality": "images", "source": "imagenet", "path": str(tmp_path / "val"), "n_inputs": 2,
           "models": ["efficientnet_lite0"]}
    opened = []
    original = imagenet.open_image
    monkeypatch.setattr(imagenet, "open_image", lambda path, full=True: opened.append(path) or original(path, full))
    other = ImagePreprocessing(input_size=(3, 64, 64), interpolation="bilinear", crop_pct=1.0, crop_mode="center",
                                 mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    s = D.load(spec(cfg), "test", tmp_path, preprocessing=other, part=lambda n: [1])
    assert s.x.shape == (1, 3, 64, 64) and s.ids == ["n07920052/b.JPEG"]
    assert [p.name for p in opened] == ["b.JPEG"]  # the other file was indexed, never decoded
    with pytest.raises(ValueError, match="preprocessing: images are decoded with the explained model's own"):
        D.load(spec(cfg), "test", tmp_path)


@pytest.mark.parametrize("defect,message", [
    ("loose", r"datasets\.images\.path: 1 \(loose\.JPEG\) image file\(s\) lie loose beside the class folders"),
    ("folder", r"datasets\.images\.path: 1 \(holidays\) folder\(s\) .* are not ImageNet class folders"),
    ("devkit", r"datasets\.images\.path: .*ILSVRC2012_devkit_t12 is the ImageNet devkit, not images: move it out"),
])
def test_an_inconsistent_image_folder_gets_its_own_message(tmp_path, defect, message):
    from PIL import Image

    _write_imagenet(tmp_path / "val")
    root = tmp_path / "val"
    if defect == "loose":
        Image.new("RGB", (40, 40)).save(root / "loose.JPEG")
    elif defect == "folder":
        (root / "holidays").mkdir()
    else:
        (root / "ILSVRC2012_devkit_t12" / "data").mkdir(parents=True)
        (root / "ILSVRC2012_devkit_t12" / "data" / "meta.mat").write_bytes(b"")
    index, problems = imagenet.index_images(DatasetSpec("images", "images", "imagenet", path=str(root)))
    assert len(problems) == 1 and re.search(message, problems[0]), problems
    assert len(index.files) == 2  # the class folders are still indexed


def test_a_mislabelled_esc50_row_is_refused_naming_the_line_and_the_file(tmp_path):
    folder = _write_esc50(tmp_path)
    csv_path = folder / "meta" / "esc50.csv"
    text = csv_path.read_text().replace("1-1010-A-1.wav,1,1,", "1-1010-A-1.wav,1,7,")
    csv_path.write_text(text)
    with pytest.raises(ValueError, match=r"esc50\.csv line 3: target 7 disagrees with the file name 1-1010-A-1\.wav "
                                         r"\(target 1\); correct the row"):
        D.load(spec(AUDIO), "test", tmp_path)
    problems = esc50.check(spec({**AUDIO, "clips": None}), folder)
    assert any("line 3: target 7 disagrees" in p for p in problems)


def test_offline_volumes_structures_and_truth(tmp_path, monkeypatch):
    monkeypatch.setattr(offline, "VOLUME_SPLIT_SIZES", {"train": 4, "val": 4, "test": 8})
    cfg = {**VOLUMES, "size": 28, "n_inputs": 4}
    folder = D.prepare(spec(cfg, "volumes"), tmp_path)
    assert (folder / "synth3d_28.npz").is_file() and (folder / "synth3d_28_truth.npz").is_file()
    mtime = (folder / "synth3d_28.npz").stat().st_mtime_ns
    D.prepare(spec(cfg, "volumes"), tmp_path)  # idempotent
    assert (folder / "synth3d_28.npz").stat().st_mtime_ns == mtime
    s = D.load(spec(cfg), "test", tmp_path)
    gt = D.ground_truth(spec(cfg), tmp_path, s.ids)
    assert gt.shape == (4, 28, 28, 28) and gt.dtype == torch.bool
    assert s.y.unique().numel() == 4 and s.class_names == list(offline.VOLUME_CLASSES)
    for x, m in zip(s.x[:, 0], gt, strict=True):
        assert m.any() and x[m].mean() > x[~m].mean() + 0.2  # structure brighter than tissue
    assert not list(folder.glob(".*tmp*"))


def test_offline_audio_requires_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(offline, "FREEDESKTOP_SOUNDS", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="apt-get install sound-theme-freedesktop"):
        D.prepare(spec(AUDIO, "audio"), tmp_path)
    assert not (tmp_path / "offline" / "audio").exists()


@pytest.mark.skipif(not offline.FREEDESKTOP_SOUNDS.is_dir(), reason="sound-theme-freedesktop missing")
def test_offline_audio_set(tmp_path, monkeypatch):
    monkeypatch.setattr(offline, "AUDIO_CLIPS", offline.AUDIO_CLIPS[:2])
    monkeypatch.setattr(offline, "AUDIO_CLIPS_PER_FOLD", 1)
    folder = D.prepare(spec(AUDIO, "audio"), tmp_path)
    assert len(list((folder / "audio").glob("*.wav"))) == 10
    s = D.load(spec(AUDIO), "test", tmp_path)
    gt = D.ground_truth(spec(AUDIO), tmp_path, s.ids)
    assert s.x.shape == gt.shape == (2, 5 * SR)
    for x, m in zip(s.x, gt, strict=True):
        assert x[m].abs().max() > 2 * x[~m].abs().max()  # the clip sits where the mask says
