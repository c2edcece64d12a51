"""ESC-50 (``source: esc50``): the extracted public archive, downloaded or used in place, and its clips.

Layout: ``audio/{fold}-{source}-{take}-{target}.wav`` (mono, 44.1 kHz, 5 s) and ``meta/esc50.csv`` (columns
:data:`ESC50_COLUMNS`, folds 1 to 5). The evaluated ``test`` split is fold ``fold``; ``val`` is fold ``fold % 5 + 1``
and ``train`` the three other folds. A clip is read with soundfile (``torchaudio.load`` needs torchcodec),
resampled to 44.1 kHz, made mono, cut to 5 s and peak-normalised.

Example::

    >>> row = {"filename": "1-100-A-3.wav", "fold": "1", "target": "7"}
    >>> row_problems([row], Path("esc50.csv"), "datasets.audio")[0].split(": ", 2)[2]
    'target 7 disagrees with the file name 1-100-A-3.wav (target 3); correct the row'
"""

from __future__ import annotations

import csv
import io as stdio
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from workflow.lib import files
from workflow.lib.config import DatasetSpec
from workflow.lib.data.base import Split, dataset_folder, fail, write_manifest

SAMPLE_RATE = 44100
CLIP_SECONDS = 5
CLIP_SAMPLES = SAMPLE_RATE * CLIP_SECONDS
ESC50_URL = "https://github.com/karolpiczak/ESC-50/archive/master.zip"
# sha256 of the master archive (645,695,005 bytes) as recorded in March 2026 by a third party;
# not re-verified here (no network). GitHub regenerates archives: override with datasets.<key>.sha256.
ESC50_SHA256 = "805afc618aff80eff0641d51311647871fead5807da68bb18e43a27db47a79ce"
ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
ESC50_NAME = re.compile(r"(\d+)-([^-]+)-([^-]+)-(\d+)\.wav")  # {fold}-{source clip}-{take}-{target}.wav


def read_clip(path: Path) -> tuple[np.ndarray, int]:
    """Read with soundfile -> mono float32 [T], sample rate; ValueError naming a bad file."""
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        raise ValueError(f"{path}: corrupt or unreadable audio file ({type(e).__name__}: {e})") from e
    if data.shape[0] == 0:
        raise ValueError(f"{path}: empty audio file")
    return data.mean(axis=1), int(sr)



def resample(wave: np.ndarray, sr: int, target: int = SAMPLE_RATE) -> np.ndarray:
    if sr == target:
        return wave
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(wave), sr, target).numpy()



def write_csv(path: Path, header, rows) -> None:
    buf = stdio.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    files.write_text(path, buf.getvalue())



def read_csv(path: Path, required: tuple[str, ...]) -> list[dict]:
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except Exception as e:
        raise ValueError(f"{path}: unreadable csv ({e})") from e
    if rows and not set(required) <= set(rows[0]):
        raise ValueError(f"{path}: needs columns {list(required)}, has {list(rows[0])}")
    return rows



def download(spec: DatasetSpec, folder: Path) -> None:
    archive = folder.parent / "ESC-50-master.zip"
    files.download(ESC50_URL, archive, sha256=spec.sha256 or ESC50_SHA256, timeout=120)
    with files.atomic_dir(folder) as tmp:
        try:
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        except zipfile.BadZipFile as e:
            raise ValueError(f"{archive}: corrupt zip archive ({e})") from e
        inner = tmp / "ESC-50-master"
        for p in inner.iterdir():
            p.rename(tmp / p.name)
        inner.rmdir()
        write_manifest(tmp, source=ESC50_URL, sha256=spec.sha256 or ESC50_SHA256)
    archive.unlink()



def check(spec: DatasetSpec, folder: Path, every_clip: bool = False) -> list[str]:
    """Problems of an extracted ESC-50 folder, each naming the config key (empty: usable).

    ``meta/esc50.csv`` with the ESC-50 columns, ``datasets.<key>.clips`` rows (2,000 for ESC-50; ``null``
    skips the count), folds 1-5, integer targets, every row's ``fold`` and ``target`` equal to those in its file
    name (``{fold}-{source}-{take}-{target}.wav``), every listed clip under ``audio/``, and the sample rate
    (44.1 kHz), length (5 s) and channels (mono) of the first clip, or of ``every_clip`` (a shorter one is
    accepted, with a warning, when ``datasets.<key>.allow_short_clips``).
    """
    key = spec.where
    where = f"{key}.path" if spec.path else f"{key} (downloaded to {folder})"
    if not folder.is_dir():
        return [f"{where}: {folder} is not a folder (an extracted ESC-50: audio/ and meta/esc50.csv)"]
    csv_path = folder / "meta" / "esc50.csv"
    try:
        rows = read_csv(csv_path, ESC50_COLUMNS[:4])
    except ValueError as e:
        return [f"{where}: {e}"]
    problems = []
    expected = spec.clips
    if expected is not None and len(rows) != int(expected):
        problems.append(f"{where}: {csv_path} lists {len(rows)} clips, expected {expected} ({key}.clips)")
    try:
        folds = {int(r["fold"]) for r in rows}
        targets = {int(r["target"]) for r in rows}
    except ValueError:
        return problems + [f"{where}: {csv_path} has a non-integer fold or target"]
    if folds != set(range(1, 6)):
        problems.append(f"{where}: {csv_path} has folds {sorted(folds)}, expected 1 to 5")
    if targets and min(targets) < 0:
        problems.append(f"{where}: {csv_path} has negative targets")
    problems += row_problems(rows, csv_path, where)
    missing = [r["filename"] for r in rows if not (folder / "audio" / r["filename"]).is_file()]
    if missing:
        problems.append(f"{where}: {len(missing)} clips listed in {csv_path} are missing from "
                        f"{folder / 'audio'} (first: {missing[0]})")
    else:
        import soundfile as sf

        for row in rows if every_clip else rows[:1]:
            path = folder / "audio" / row["filename"]
            try:
                info = sf.info(str(path))
            except Exception as e:
                problems.append(f"{where}: {path} is unreadable ({type(e).__name__}: {e})")
                continue
            seconds = info.frames / info.samplerate
            short = seconds < CLIP_SECONDS - 1e-3
            if info.channels != 1:
                problems.append(f"{where}: {path} has {info.channels} channels; ESC-50 clips are mono: convert it "
                                "(e.g. sox in.wav -c 1 out.wav)")
            if info.samplerate != SAMPLE_RATE or abs(seconds - CLIP_SECONDS) > 1e-3:
                message = (f"{where}: {path} is {info.samplerate} Hz, {seconds:.3f} s; ESC-50 clips are "
                           f"{SAMPLE_RATE} Hz, {CLIP_SECONDS} s")
                if short and spec.allow_short_clips and info.samplerate == SAMPLE_RATE:
                    warnings.warn(f"{message} (zero-padded: {key}.allow_short_clips)", stacklevel=2)
                else:
                    problems.append(message + (f" (a damaged clip; {key}.allow_short_clips: true zero-pads it)"
                                               if short else ""))
    return problems



def row_problems(rows: list[dict], csv_path: Path, where: str) -> list[str]:
    """One problem per ``esc50.csv`` row whose ``fold`` or ``target`` disagrees with its file name
    (``{fold}-{source}-{take}-{target}.wav``), or whose name has not that form: a wrong row would be scored with
    the wrong label."""
    problems = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        match = ESC50_NAME.fullmatch(row["filename"])
        if match is None:
            problems.append(f"{where}: {csv_path} line {number}: {row['filename']!r} is not named "
                            "{fold}-{source}-{take}-{target}.wav; fix the row or the file name")
            continue
        named = {"fold": match.group(1), "target": match.group(4)}
        for column, value in named.items():
            if str(row[column]).strip() != value:
                problems.append(f"{where}: {csv_path} line {number}: {column} {row[column]} disagrees with the file "
                                f"name {row['filename']} ({column} {value}); correct the row")
    return problems



def rows_of(spec: DatasetSpec, resources: Path, split: str) -> list[dict]:
    folder = dataset_folder(spec, resources)
    csv_path = folder / "meta" / "esc50.csv"
    rows = read_csv(csv_path, ("filename", "fold", "target", "category"))
    fail(row_problems(rows, csv_path, spec.where))
    test_fold = int(spec.fold)
    if not 1 <= test_fold <= 5:
        raise ValueError(f"datasets.{spec.key}.fold: {test_fold} not in 1..5")
    val_fold = test_fold % 5 + 1
    folds = {"test": {test_fold}, "val": {val_fold},
             "train": set(range(1, 6)) - {test_fold, val_fold}}[split]
    return [r for r in rows if int(r["fold"]) in folds]



def _clip(path: Path, spec: DatasetSpec) -> np.ndarray:
    """One clip as the models see it: mono, 44.1 kHz, exactly 5 s ``[220500]``, peak-normalised
    (``x / max|x|``, as the reference's ``wf / wf.max()``; a silent clip stays zero).

    Every ESC-50 clip lasts exactly 5 s: a shorter file is damaged and is an error naming it and its
    length, unless ``datasets.<key>.allow_short_clips`` is true (then it is zero-padded, with a warning).
    A longer one is cut to 5 s.
    """
    wave, sr = read_clip(path)
    wave = resample(wave, sr)
    if len(wave) < CLIP_SAMPLES:
        message = (f"{path}: {len(wave) / SAMPLE_RATE:.3f} s ({len(wave)} samples at {SAMPLE_RATE} Hz), "
                   f"expected {CLIP_SECONDS} s: a damaged or truncated clip")
        if not spec.allow_short_clips:
            raise ValueError(f"{message}; set datasets.{spec.key}.allow_short_clips: true to zero-pad it")
        warnings.warn(f"{message}; zero-padded (datasets.{spec.key}.allow_short_clips)", stacklevel=2)
        wave = np.pad(wave, (0, CLIP_SAMPLES - len(wave)))
    wave = wave[:CLIP_SAMPLES]
    peak = float(np.abs(wave).max())
    return wave / peak if peak > 0 else wave



def load_audio(spec: DatasetSpec, split: str, resources: Path) -> Split:
    folder = dataset_folder(spec, resources)
    all_rows = read_csv(folder / "meta" / "esc50.csv", ("filename", "fold", "target", "category"))
    names = {int(r["target"]): r["category"] for r in all_rows}
    class_names = [names.get(i, str(i)) for i in range(max(names) + 1)]
    rows = rows_of(spec, resources, split)
    waves = [_clip(folder / "audio" / r["filename"], spec) for r in rows]
    x = torch.from_numpy(np.stack(waves).astype(np.float32)) if waves else torch.zeros(0, CLIP_SAMPLES)
    y = torch.tensor([int(r["target"]) for r in rows], dtype=torch.long)
    return Split(x, y, [r["filename"] for r in rows], len(class_names), class_names)


