"""The paper's audio noise and overlap experiments, measured (target ``audio_separation``).

For every evaluated clip of the configuration's audio data set (``audio_separation.dataset``; default the first
audio data set) and its first model, two corrupted inputs (:mod:`wam.separation`):

- ``noise``: white Gaussian noise at 0 dB SNR (its RMS rescaled to the clip's; seeded per clip);
- ``overlap``: ``clip + lambda * distractor``, the distractor an evaluated clip of another class drawn with a
  per-clip seed (``audio_separation.lambda``, default 0.2).

Each corrupted input is explained for the clean clip's class by WAM-1D (``audio_separation.methods``: the WAM
entries of ``methods``, their options; ``audio_separation.n_samples`` overrides their ``n_samples``) through the
model's log-mel front-end, and rebuilt from its top ``keep`` coefficients (``Explanation.filter(keep)``, every
``keep`` of ``audio_separation.keeps`` in one batched inverse transform: :func:`wam.separation.filter_many`).
Controls at the same fractions: ``magnitude`` (largest ``|z|``: wavelet-threshold denoising, no model),
``random`` (random coefficients, seeded per clip and condition), and the pixel baseline
``audio_separation.mel_mask`` (a baseline entry of ``methods``, SmoothGrad by default) on the log-mel: its top
``keep`` time-frequency bins, inverted as listed in ``audio_separation.mel_inversions``: ``stft`` (the bins as a
binary mask on the corrupted input's STFT, phase kept) and ``griffin_lim`` (torchaudio ``InverseMelScale`` +
``GriffinLim`` of the masked mel power).

Measured per (clip, condition, method, keep): SI-SDR (dB, torchmetrics) of the reconstruction against the clean
clip, the SI-SDR of the corrupted input itself (the reference line) and the gain over it, and Fid-in: 1 where the
model's top-1 class on the reconstruction is the clip's class. The corrupted input has its own rows (method
``corrupted``, keep 1).

Two stages (``python -m workflow.scripts.experiments.audio_separation {run,report} ...``):

- ``run`` (one shard of the evaluated clips) -> ``audio_separation/{shard}.csv`` (``dataset, model, clip_id,
  distractor_id, condition, method, keep, si_sdr, input_si_sdr, gain, fid_in``) and ``{shard}.pt`` (the
  signals and log-mels of the shard's clips among the first ``n_examples`` evaluated ones);
- ``report`` -> ``tables/audio_separation.{csv,md,tex}`` (per condition, method, keep: mean SI-SDR and gain
  with bootstrap 95 % intervals, Fid-in), ``figures/audio_separation.png`` (SI-SDR against keep, one panel per
  condition), and per example clip ``k``: ``audio/clip{k}_clean.wav``, ``clip{k}_{condition}.wav`` (corrupted),
  ``clip{k}_{condition}_{method}.wav`` (WAM at ``example_keep``), ``figures/audio_separation_clip{k}.png``
  (their log-mels: time in s, frequency in Hz, one dB scale) and ``report/audio_separation_clip{k}.html`` (the
  report's page of the clip: each log-mel with a player of its signal beside it).
"""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from tqdm.auto import tqdm

import baselines
from metrics.spectra import predictions
from wam import WAM, separation, transform
from wam.utils import pick_device
from workflow.lib import files
from workflow.lib.config import Config
from workflow.lib.data import evaluated_shard, shard_indices, take
from workflow.lib.data.esc50 import SAMPLE_RATE
from workflow.lib.models import zoo
from workflow.lib.reporting import pages
from workflow.lib.reporting.figures import colorbar, fit_title, mel_settings, save, spectrogram
from workflow.lib.reporting.tables import cell, markdown, summarise

CONDITIONS = ("noise", "overlap")
INVERSIONS = {"stft": "mel_mask_stft", "griffin_lim": "mel_mask_gl"}
CONTROL_LABELS = {"magnitude": "Largest coefficients (no model)", "random": "Random coefficients",
                  "mel_mask_stft": "{} mel mask, STFT", "mel_mask_gl": "{} mel mask, Griffin-Lim",
                  "corrupted": "Corrupted input"}
ROW_COLUMNS = ["dataset", "model", "clip_id", "distractor_id", "condition", "method", "keep", "si_sdr",
               "input_si_sdr", "gain", "fid_in"]
QUANTITIES = {"si_sdr": "SI-SDR (dB)", "gain": "SI-SDR gain (dB)", "fid_in": "top-1 kept (Fid-in)"}


# ----------------------------------------------------------------------------- settings


def settings(config: Config) -> dict:
    """The ``audio_separation`` section (validated by ``schema.yaml``: ranges, kinds) with its defaults, checked for
    what the schema cannot say (``example_keep`` among ``keeps``, the methods named): ``ValueError`` naming the key."""
    if "audio_separation" not in config:
        raise ValueError("audio_separation: the configuration has no audio_separation section")
    section = config.section("audio_separation")
    key = "audio_separation"
    dataset = config.experiment_dataset(key)
    keeps = [float(k) for k in section.get("keeps", [0.01, 0.02, 0.05, 0.1, 0.2, 0.5])]
    example_keep = float(section.get("example_keep", 0.1))
    if example_keep not in keeps:
        raise ValueError(f"{key}.example_keep: expected one of {key}.keeps {keeps}, got {example_keep!r}")
    methods = list(section.get("methods", ["wam_sg", "wam_ig"]))
    for m in methods:
        if m not in config.methods or config.methods[m].kind != "wam":
            raise ValueError(f"{key}.methods: {m!r} is not a WAM entry of `methods`")
    mel_mask = section.get("mel_mask", "smoothgrad")
    if mel_mask not in config.methods or config.methods[mel_mask].kind != "baseline":
        raise ValueError(f"{key}.mel_mask: {mel_mask!r} is not a baseline entry of `methods`")
    return {"dataset": dataset, "model": config.experiment_model(key), "lambda": float(section.get("lambda", 0.2)),
            "keeps": keeps, "example_keep": example_keep, "methods": methods, "mel_mask": mel_mask,
            "inversions": list(section.get("mel_inversions", list(INVERSIONS))), "n_samples": section.get("n_samples"),
            "n_examples": int(section.get("n_examples", 3)),
            "griffin_lim_iters": int(section.get("griffin_lim_iters", 32))}


def pick_distractors(labels: torch.Tensor, indices: list[int], seed: int) -> list[int]:
    """For each evaluated clip ``indices[i]`` (positions in ``labels`` ``[N]``), a clip of another class, drawn
    uniformly with a generator seeded by ``(seed, index)``: the draw does not depend on the sharding."""
    if len(set(labels.tolist())) < 2:
        raise ValueError(f"audio_separation: the evaluated clips all have one class ({int(labels[0])}); the "
                         "overlap condition needs a distractor from another class (a data set with several classes)")
    out = []
    for index in indices:
        others = torch.nonzero(labels != labels[index]).flatten()
        gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
        out.append(int(others[torch.randint(len(others), (1,), generator=gen)]))
    return out


def corrupt(clean: torch.Tensor, distractor: torch.Tensor, index: int, lam: float, seed: int
            ) -> dict[str, torch.Tensor]:
    """The two corrupted inputs of one clip ``[T]``: 0 dB noise seeded by ``(seed, index)``, and the overlap."""
    gen = torch.Generator(device=clean.device).manual_seed(seed * 1_000_003 + index)
    return {"noise": separation.add_0db_noise(clean[None], gen)[0],
            "overlap": separation.overlap(clean, distractor, lam)}


# ----------------------------------------------------------------------------- run


def reconstructions(config: Config, opts: dict, model: torch.nn.Module, corrupted: torch.Tensor, y: torch.Tensor,
                    seeds: list[int]) -> dict[str, torch.Tensor]:
    """Every method's reconstructions of ``corrupted`` ``[R, T]`` (explained for ``y`` ``[R]``) at every keep:
    method -> ``[R, K, T]``, one batched inverse transform (or STFT / Griffin-Lim) per input and method.
    ``seeds`` ``[R]``: the random control's seed of each input."""
    wavelet = config.section("wavelet")["audio"]
    batch_size, keeps, size = config.section("evaluation")["batch_size"], opts["keeps"], (corrupted.shape[-1],)

    def rebuild(coeffs: list[torch.Tensor], scores: list[torch.Tensor], name: str) -> torch.Tensor:
        return torch.cat([transform.keep_top([c[i:i + 1] for c in coeffs], [s[i:i + 1] for s in scores], keeps, 1,
                                              name, size)[:, :, 0] for i in range(len(corrupted))])

    out: dict[str, torch.Tensor] = {}
    for name in opts["methods"]:
        options = config.methods[name].options_for("audio")
        if opts["n_samples"] is not None:
            options["n_samples"] = opts["n_samples"]
        expl = WAM(model, ndim=1, batch_size=batch_size, seed=config.seed, progress=True, **wavelet,
                   **options)(corrupted, y)
        out[name] = rebuild(transform.bands(expl.coeffs), [g.abs() for g in transform.bands(expl.grads)],
                            expl.wavelet)
    coeffs = transform.bands(transform.wavedec(corrupted.unsqueeze(1), 1, wavelet["wavelet"], wavelet["levels"],
                                               wavelet["mode"]))
    out["magnitude"] = rebuild(coeffs, [c.abs() for c in coeffs], wavelet["wavelet"])
    random = []
    for i, seed in enumerate(seeds):
        gen = torch.Generator(device=corrupted.device).manual_seed(seed)
        random.append([torch.rand(c[i:i + 1].shape, generator=gen, device=c.device) for c in coeffs])
    out["random"] = rebuild(coeffs, [torch.cat(parts) for parts in zip(*random, strict=True)], wavelet["wavelet"])
    options = config.methods[opts["mel_mask"]].options_for("audio")
    if opts["n_samples"] is not None and "n_samples" in options:
        options["n_samples"] = opts["n_samples"]
    explainer = baselines.get(opts["mel_mask"], model.classifier, batch_size=batch_size, **options)
    attribution = explainer(model.frontend(corrupted).detach(), y).sum(1)  # [R, M, F] log-mel bins
    for inversion in opts["inversions"]:
        parts = []
        for i in range(len(corrupted)):
            args = (model.frontend, corrupted[i:i + 1], attribution[i:i + 1], keeps)
            parts.append(separation.mel_mask_stft(*args) if inversion == "stft"
                         else separation.mel_mask(*args, n_iter=opts["griffin_lim_iters"]))
        out[INVERSIONS[inversion]] = torch.cat(parts)
    return out


def corrupted_inputs(config: Config, opts: dict, shard: int, device: torch.device) -> dict:
    """The shard's clean clips, their corrupted inputs ``[C n, T]`` (conditions in :data:`CONDITIONS` order, clips
    inside), targets, distractors and the random control's seeds."""
    seed = config.seed
    # every evaluated clip: the distractors; the shard's clips are its slice, not loaded again
    pool = evaluated_shard(dataclasses.replace(config, shards=1), opts["dataset"], 0)
    indices = shard_indices(len(pool), config.shards, shard)
    data = take(pool, indices)
    distractors = pick_distractors(pool.y, indices, seed)
    clean = data.x.to(device)
    waves = {c: [] for c in CONDITIONS}
    for i, (index, other) in enumerate(zip(indices, distractors, strict=True)):
        for c, wave in corrupt(clean[i], pool.x[other].to(device), index, opts["lambda"], seed).items():
            waves[c].append(wave)
    return {"data": data, "pool": pool, "indices": indices, "distractors": distractors, "clean": clean,
            "inputs": torch.cat([torch.stack(waves[c]) if waves[c] else clean[:0] for c in CONDITIONS]),
            "targets": data.y.to(device).repeat(len(CONDITIONS)),
            "seeds": [seed * 1_000_003 + 7919 * index + j for j in range(len(CONDITIONS)) for index in indices]}


def score_rows(model: torch.nn.Module, case: dict, recon: dict[str, torch.Tensor], opts: dict, model_name: str,
               batch_size: int) -> list[tuple]:
    """One row per (clip, condition, method, keep), and the corrupted input's own row (method ``corrupted``)."""
    data, pool, inputs, targets = case["data"], case["pool"], case["inputs"], case["targets"]
    n, keeps = len(data), opts["keeps"]
    references = case["clean"].repeat(len(CONDITIONS), 1)
    input_sdr = separation.si_sdr(inputs, references)
    input_top1 = (predictions(model, inputs, batch_size=batch_size) == targets).float()
    rows = []
    for r in tqdm(range(len(inputs)), desc="score", unit="input"):
        clip, condition = r % n, CONDITIONS[r // n]
        meta = (opts["dataset"], model_name, data.ids[clip],
                pool.ids[case["distractors"][clip]] if condition == "overlap" else "-", condition)
        base = float(input_sdr[r])
        rows.append((*meta, "corrupted", 1.0, base, base, 0.0, float(input_top1[r])))
        waves = torch.cat([recon[m][r] for m in recon])  # [methods x K, T]
        sdr = separation.si_sdr(waves, references[r:r + 1])
        top1 = (predictions(model, waves, batch_size=batch_size) == targets[r]).float()
        for j, (m, keep) in enumerate((m, k) for m in recon for k in keeps):
            rows.append((*meta, m, keep, float(sdr[j]), base, float(sdr[j]) - base, float(top1[j])))
    return rows


def examples(model: torch.nn.Module, case: dict, recon: dict[str, torch.Tensor], opts: dict) -> list[dict]:
    """Signals, SI-SDRs and log-mels of the shard's clips among the first ``n_examples`` evaluated ones: the clean
    clip, the distractor, each condition's corrupted input and WAM rebuilds at ``example_keep``."""
    data, pool, clean, inputs = case["data"], case["pool"], case["clean"], case["inputs"]
    n, k = len(data), opts["keeps"].index(opts["example_keep"])
    out = []
    for clip, index in enumerate(case["indices"]):
        if index >= opts["n_examples"]:
            continue
        other = case["distractors"][clip]
        signals, sdr = {}, {}
        for j, condition in enumerate(CONDITIONS):
            r = j * n + clip
            signals[(condition, "corrupted")] = inputs[r]
            signals.update({(condition, m): recon[m][r, k] for m in opts["methods"]})
        for key, wave in signals.items():
            sdr[key] = float(separation.si_sdr(wave, clean[clip]))
        everything = {("clean", "clean"): clean[clip], ("distractor", "distractor"): pool.x[other].to(clean.device),
                      **signals}
        with torch.no_grad():
            logmel = model.frontend(torch.stack(list(everything.values())))[:, 0].cpu()
        out.append({"index": index, "id": data.ids[clip], "class": data.class_names[int(data.y[clip])],
                    "distractor_id": pool.ids[other], "distractor_class": pool.class_names[int(pool.y[other])],
                    "distractor": pool.x[other].cpu(), "keep": opts["example_keep"], "clean": clean[clip].cpu(),
                    "signals": {key: w.cpu() for key, w in signals.items()}, "si_sdr": sdr,
                    "logmel": dict(zip(everything, logmel, strict=True))})
    return out


def run(config: Config, model_path: Path, shard: int, rows_path: Path, examples_path: Path) -> None:
    opts = settings(config)
    device = pick_device(config.device)
    case = corrupted_inputs(config, opts, shard, device)
    model = zoo.load(model_path).to(device).eval()
    batch_size = config.section("evaluation")["batch_size"]
    rows, shown = [], []
    if len(case["data"]):
        recon = reconstructions(config, opts, model, case["inputs"], case["targets"], case["seeds"])
        rows = score_rows(model, case, recon, opts, Path(model_path).parent.name, batch_size)
        shown = examples(model, case, recon, opts)
    files.write_csv(pd.DataFrame(rows, columns=ROW_COLUMNS), rows_path)
    with files.atomic_path(examples_path) as tmp:
        torch.save({"examples": shown, "labels": method_labels(config, opts), "mel": mel_settings(model.frontend)},
                   tmp)
    for path in (rows_path, examples_path):
        files.write_json(Path(f"{path}.provenance.json"), files.provenance(
            stage="audio_separation_run", model=str(model_path), shard=shard, settings=opts,
            methods={m: config.raw["methods"][m] for m in [*opts["methods"], opts["mel_mask"]]},
            wavelet=config.section("wavelet")["audio"], seed=config.seed, device_used=str(device)))


def method_labels(config: Config, opts: dict) -> dict[str, str]:
    """Display label of every method of the rows (WAM entries' own labels, the controls')."""
    baseline = config.methods[opts["mel_mask"]].label
    labels = {m: config.methods[m].label for m in opts["methods"]}
    labels.update({m: text.format(baseline) for m, text in CONTROL_LABELS.items()})
    return labels


# ----------------------------------------------------------------------------- report


def summary(rows: pd.DataFrame, resamples: int, seed: int) -> pd.DataFrame:
    """Per (condition, method, keep): ``n``, mean SI-SDR, gain and Fid-in, each with its bootstrap 95 % interval
    (``{quantity}``, ``{quantity}_low``, ``{quantity}_high``), and the corrupted input's mean SI-SDR."""
    long = rows.melt(id_vars=["condition", "method", "keep", "clip_id"], value_vars=list(QUANTITIES),
                     var_name="quantity", value_name="value")
    s = summarise(long, ["condition", "method", "keep", "quantity"], resamples, seed)
    wide = s.pivot_table(index=["condition", "method", "keep"], columns="quantity",
                         values=["mean", "ci_low", "ci_high"], aggfunc="first")
    out = pd.DataFrame(index=wide.index)
    for q in QUANTITIES:
        out[q], out[f"{q}_low"], out[f"{q}_high"] = wide[("mean", q)], wide[("ci_low", q)], wide[("ci_high", q)]
    out.insert(0, "n", s[s["quantity"] == "si_sdr"].set_index(["condition", "method", "keep"])["n"])
    inputs = rows.groupby("condition")["input_si_sdr"].mean()
    out["input_si_sdr"] = [inputs[c] for c, _, _ in out.index]
    return out.reset_index()


def _ordered(table: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    order = {m: i for i, m in enumerate(["corrupted", *[m for m in labels if m != "corrupted"]])}
    return table.sort_values(["condition", "method", "keep"], kind="stable",
                             key=lambda s: s.map(order) if s.name == "method" else s).reset_index(drop=True)


def table_markdown(table: pd.DataFrame, labels: dict[str, str], opts: dict, n_clips: int) -> str:
    cells = []
    for _, r in table.iterrows():
        row = f"{labels.get(r['method'], r['method'])} @ {r['keep']:g}"
        for q, name in QUANTITIES.items():
            cells.append({"row": row, "condition": r["condition"], "quantity": name,
                          "cell": cell({"mean": r[q], "ci_low": r[f"{q}_low"], "ci_high": r[f"{q}_high"]})})
    caption = (f"Audio separation on {opts['dataset']} / {opts['model']} ({n_clips} clips): mean over the clips "
               f"[bootstrap 95 % CI] of the SI-SDR (dB) of each reconstruction against the clean clip, its gain over "
               f"the corrupted input's own SI-SDR, and Fid-in (the model's top-1 class on the reconstruction is the "
               f"clip's class). Conditions: noise = white Gaussian noise at 0 dB SNR; overlap = clip + "
               f"{opts['lambda']:g} x a clip of another class. Methods keep the top `keep` fraction of the "
               f"corrupted input's wavelet coefficients (WAM: |attribution|; largest |z|; random) or of its log-mel "
               f"bins (the pixel baseline's mask, inverted as named). `Corrupted input @ 1` is the reference line.")
    return markdown(pd.DataFrame(cells), "row", ["condition", "quantity"]) + f"\n{caption}\n"


def table_latex(table: pd.DataFrame, labels: dict[str, str]) -> str:
    """booktabs: rows method x keep, per condition SI-SDR, gain and Fid-in; the best SI-SDR of each (condition,
    keep) bold."""
    conditions = list(dict.fromkeys(table["condition"]))
    best = table[table["method"] != "corrupted"].groupby(["condition", "keep"])["si_sdr"].max()
    lines = ["\\begin{tabular}{ll" + "ccc" * len(conditions) + "}", "\\toprule",
             " & & " + " & ".join(f"\\multicolumn{{3}}{{c}}{{{c.title()}}}" for c in conditions) + " \\\\",
             "Method & keep & " + " & ".join("SI-SDR (dB) & Gain (dB) & Fid-in" for _ in conditions) + " \\\\",
             "\\midrule"]
    for (method, keep), group in table.groupby(["method", "keep"], sort=False):
        cells = []
        for c in conditions:
            r = group[group["condition"] == c]
            if r.empty:
                cells += ["--"] * 3
                continue
            r = r.iloc[0]
            sdr = f"{r['si_sdr']:.2f}"
            if method != "corrupted" and math.isclose(r["si_sdr"], best[(c, keep)]):
                sdr = f"\\textbf{{{sdr}}}"
            cells += [sdr, f"{r['gain']:+.2f}", f"{r['fid_in']:.2f}"]
        lines.append(f"{labels.get(method, method)} & {keep:g} & " + " & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def figure(table: pd.DataFrame, labels: dict[str, str], path: Path) -> None:
    """SI-SDR against keep (log axis), one line per method with its 95 % band, one panel per condition; the
    corrupted input's SI-SDR dashed."""
    conditions = list(dict.fromkeys(table["condition"]))
    fig = Figure(figsize=(4.6 * len(conditions) + 2.6, 4.0), layout="constrained")
    axes = fig.subplots(1, len(conditions), squeeze=False, sharey=True)
    for ax, condition in zip(axes[0], conditions, strict=True):
        part = table[table["condition"] == condition]
        for method, group in part[part["method"] != "corrupted"].groupby("method", sort=False):
            line = ax.plot(group["keep"], group["si_sdr"], marker="o", label=labels.get(method, method))[0]
            ax.fill_between(group["keep"], group["si_sdr_low"], group["si_sdr_high"], alpha=0.15,
                            color=line.get_color())
        ax.axhline(part["input_si_sdr"].iloc[0], color="black", linestyle="--", label="corrupted input")
        ax.set_xscale("log")
        ax.set_xlabel("kept fraction of the coefficients / log-mel bins (log scale)", fontsize=8)
        ax.set_title({"noise": "noise: white noise at 0 dB SNR", "overlap": "overlap: clip + lambda x another clip"}
                     .get(condition, condition), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("SI-SDR vs clean clip (dB)")
    handles, names = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right upper", fontsize=7, title="rebuilt from", title_fontsize=7)
    fig.supxlabel("Lines: mean over the clips; bands: bootstrap 95 % interval of the mean.", fontsize=7)
    save(fig, path)


def example_paths(out: Path, k: int, methods: list[str]) -> dict[tuple[str, str], Path]:
    """The ``.wav`` files of example clip ``k``: clean, each condition's corrupted input and WAM rebuilds."""
    audio = out / "audio"
    paths = {("clean", "clean"): audio / f"clip{k}_clean.wav"}
    for c in CONDITIONS:
        paths[(c, "corrupted")] = audio / f"clip{k}_{c}.wav"
        paths.update({(c, m): audio / f"clip{k}_{c}_{m}.wav" for m in methods})
    return paths


def sound_bytes(wave: torch.Tensor, format: str = "WAV") -> bytes:
    """``wave`` at 44.1 kHz, peak-normalised to 0.99 (SI-SDR is scale-invariant; listening needs no clipping), as
    an audio file's bytes: ``WAV`` (16-bit PCM) or ``MP3`` (about 100 kbit/s: a report page is shown from a data
    URI, which Chromium caps at 2 MB, and a clip's eight signals take 7 MB as WAV, 0.5 MB as MP3)."""
    import soundfile as sf

    wave = wave.detach().double().cpu().numpy()
    peak = float(np.abs(wave).max())
    wave = 0.99 * wave / peak if peak > 0 else wave
    buffer = io.BytesIO()
    if format == "MP3":
        sf.write(buffer, wave, SAMPLE_RATE, format="MP3", subtype="MPEG_LAYER_III", compression_level=0.2)
    else:
        sf.write(buffer, wave, SAMPLE_RATE, subtype="PCM_16", format=format)
    return buffer.getvalue()


def write_wav(path: Path, wave: torch.Tensor) -> None:
    """:func:`sound_bytes` of ``wave`` (WAV), written atomically to ``path``."""
    files.write_bytes(path, sound_bytes(wave))


def _example_title(item: dict, key: tuple[str, str], labels: dict[str, str], sdr: bool = True) -> str:
    """What a signal of an example is (and its SI-SDR against the clean clip, when ``sdr``)."""
    if key[0] == "clean":
        return f"clean: {item['id']} ({item['class']})"
    if key[0] == "distractor":
        return f"overlap distractor: {item['distractor_id']}" + (
            f" ({item['distractor_class']})" if "distractor_class" in item else "")
    what = "corrupted input" if key[1] == "corrupted" else f"{labels[key[1]]}, top {item['keep']:g} kept"
    return f"{key[0]}: {what}" + (f", SI-SDR {item['si_sdr'][key]:.1f} dB" if sdr else "")


def example_figure(item: dict, labels: dict[str, str], methods: list[str], paths: dict, path: Path,
                   mel: dict | None = None) -> None:
    """Log-mels of one example (time in s, frequency in Hz, one dB scale for every panel): clean and distractor on
    top; per condition (columns) the corrupted input and each WAM rebuild, titled with its SI-SDR and its ``.wav``
    file."""
    rows = [[("clean", "clean"), ("distractor", "distractor")]] + [
        [(c, m) for c in CONDITIONS] for m in ["corrupted", *methods]]
    fig = Figure(figsize=(11, 2.4 * len(rows) + 0.4), layout="constrained")
    axes = fig.subplots(len(rows), 2, squeeze=False, sharex=True, sharey=True)
    low, high = _db_range(item)
    image = None
    for ax_row, keys in zip(axes, rows, strict=True):
        for ax, key in zip(ax_row, keys, strict=True):
            image = spectrogram(ax, item["logmel"][key], mel or mel_settings(None), vmin=low, vmax=high)
            file = paths.get(key)
            fit_title(ax, _example_title(item, key, labels) + (f"\n{file.name}" if file is not None else ""), 8)
    colorbar(fig, image, axes, "log-mel power (dB)")
    save(fig, path)


def _db_range(item: dict) -> tuple[float, float]:
    """One dB range for every log-mel of an example (comparable colours)."""
    values = torch.stack([v.float() for v in item["logmel"].values()])
    return float(values.min()), float(values.max())


def example_page(item: dict, labels: dict[str, str], paths: dict, mel: dict | None = None) -> str:
    """The report's page of one example: each log-mel (time in s, frequency in Hz, dB) with a player of the signal
    it shows beside it (its ``.wav`` file's signal as MP3, :func:`sound_bytes`; the distractor's own signal, which
    has no file)."""
    mel = mel or mel_settings(None)
    low, high = _db_range(item)
    waves = {("clean", "clean"): item["clean"], ("distractor", "distractor"): item.get("distractor"),
             **item["signals"]}
    rows = []
    for key, logmel in item["logmel"].items():
        fig = Figure(figsize=(6.4, 2.3), layout="constrained")
        ax = fig.subplots()
        colorbar(fig, spectrogram(ax, logmel, mel, vmin=low, vmax=high), ax, "log-mel power (dB)")
        file = paths.get(key)
        wave = waves.get(key)
        rows.append(pages.AudioRow(
            heading=_example_title(item, key, labels, sdr=False), png=pages.figure_png(fig),
            sound=None if wave is None else sound_bytes(wave, "MP3"), mime="audio/mpeg",
            text="" if key[0] in ("clean", "distractor") else
            f"SI-SDR against the clean clip: {item['si_sdr'][key]:.1f} dB.",
            file=f"audio/{file.name}" if file is not None else ""))
    intro = (f"Clip {item['id']} ({item['class']}): the clean clip, the distractor mixed in for `overlap`, each "
             f"corrupted input and its rebuilds from WAM's top {item['keep']:g} coefficients. Each log-mel shares one "
             f"dB scale; the players play the signals shown, peak-normalised (SI-SDR is scale-invariant), as MP3 "
             f"(the lossless .wav files are under audio/).")
    return pages.audio_page(f"Audio separation: example clip {item['index']}", intro, rows)


def report(config: Config, rows_paths: list[Path], examples_paths: list[Path], out: Path) -> None:
    opts = settings(config)
    rows = pd.concat([pd.read_csv(p, keep_default_na=False) for p in rows_paths], ignore_index=True)
    loaded = [torch.load(p, weights_only=False) for p in examples_paths]
    labels = loaded[0]["labels"] if loaded else method_labels(config, opts)
    mel = loaded[0].get("mel") if loaded else None
    table = _ordered(summary(rows, config.section("evaluation")["bootstrap"], config.seed), labels)
    outputs = [out / "tables" / f"audio_separation.{ext}" for ext in ("csv", "md", "tex")]
    files.write_csv(table, outputs[0])
    files.write_text(outputs[1], table_markdown(table, labels, opts, rows["clip_id"].nunique()))
    files.write_text(outputs[2], table_latex(table, labels))
    outputs.append(out / "figures" / "audio_separation.png")
    figure(table, labels, outputs[-1])
    examples = sorted((e for item in loaded for e in item["examples"]), key=lambda e: e["index"])
    for k, item in enumerate(examples):
        paths = example_paths(out, k, opts["methods"])
        write_wav(paths[("clean", "clean")], item["clean"])
        for key, wave in item["signals"].items():
            write_wav(paths[key], wave)
        outputs += [*paths.values(), out / "figures" / f"audio_separation_clip{k}.png"]
        example_figure(item, labels, opts["methods"], paths, outputs[-1], mel)
        outputs.append(out / "report" / f"audio_separation_clip{k}.html")
        files.write_text(outputs[-1], example_page(item, labels, paths, mel))
    for path in outputs:
        files.write_json(Path(f"{path}.provenance.json"), files.provenance(
            stage="audio_separation_report", rows=[str(p) for p in rows_paths], settings=opts,
            bootstrap=config.section("evaluation")["bootstrap"], seed=config.seed))
