"""Figures of one (dataset, model): example maps, insertion / deletion curves, per-scale importance; and the drawing
helpers every figure of the workflow uses (titles that fit their panel, colour bars with units, spectrograms with
time and frequency axes).

- ``examples_{dataset}_{model}.png``: for the first inputs of shard 0 (one row each), the input (audio: its log-mel
  in dB, time in s, frequency in Hz; volumes: the middle slice), titled with its file and class name; the first WAM
  method's dyadic map and its per-level maps (titled with that method's label and each level's share), and each
  method's map; maps drawn as ``|attribution| / max`` with one colour bar per row;
- ``curves_{dataset}_{model}.png``: insertion (left) and deletion (right) curves, one row per feature domain
  (pixels / log-mel bins / voxels, and wavelet coefficients), every method scored in that domain (solid in its
  Table 1 domain, dashed in the other): the mean over the evaluated inputs and a band of one standard error
  (Table 1's protocol);
- ``scales_{dataset}_{model}.png``: WAM's mean share of importance per level and, where the data set records a
  ground truth, the share of each level's attribution on it.

Every figure is a :class:`matplotlib.figure.Figure` (no pyplot state) with ``layout="constrained"``.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from metrics.protocols import reference_ranking
from wam import Explanation, transform, viz
from workflow.lib import files
from workflow.lib.config import NDIM, Config
from workflow.lib.data import model_inputs
from workflow.lib.models import zoo
from workflow.lib.scoring import home_domain, same_domain_ranking

N_EXAMPLES = 2
MAX_COLUMNS = 8  # panels side by side in the examples figure; an input's further panels wrap onto the next line
MAP_LABEL = "|attribution| / max"
DOMAIN_FEATURES = {"pixel": {"images": "pixels", "audio": "log-mel bins", "volumes": "voxels"},
                   "wavelet": "wavelet coefficients"}
# The reference log-mel front-end (wam.audio.LogMel's defaults): axes of a spectrogram whose model is not at hand.
MEL_DEFAULTS = {"sample_rate": 44100, "hop_length": 512, "n_mels": 128, "f_min": 0.0, "f_max": None}


# ----------------------------------------------------------------------------- drawing helpers


def fit_title(ax: Axes, text: str, fontsize: float = 7.0) -> None:
    """Title ``ax`` with ``text`` wrapped to the panel's width (no title runs into its neighbour or off the
    figure); the figure's layout then makes room for the extra lines."""
    fig = ax.get_figure()
    width_in = ax.get_position().width * fig.get_figwidth()
    chars = max(8, int(width_in * 72 / (0.6 * fontsize)))
    lines = [textwrap.fill(part, chars, break_long_words=True, break_on_hyphens=False) for part in text.split("\n")]
    ax.set_title("\n".join(lines), fontsize=fontsize)


def colorbar(fig: Figure, mappable, axes, label: str) -> None:
    """A colour bar for ``mappable`` beside ``axes`` (one axes or several sharing the scale), labelled with its
    quantity and unit."""
    bar = fig.colorbar(mappable, ax=axes, shrink=0.9, pad=0.02, aspect=25)
    bar.set_label(label, fontsize=6)
    bar.ax.tick_params(labelsize=6)


def mel_settings(frontend: torch.nn.Module | None) -> dict:
    """Sample rate, hop length, number of mels and band edges (Hz) of a log-mel front-end (``wam.audio.LogMel``:
    its torchaudio ``MelSpectrogram`` at ``.mel``); :data:`MEL_DEFAULTS` without one."""
    mel = getattr(frontend, "mel", None)
    if mel is None:
        return dict(MEL_DEFAULTS)
    return {"sample_rate": int(mel.sample_rate), "hop_length": int(mel.hop_length), "n_mels": int(mel.n_mels),
            "f_min": float(mel.f_min), "f_max": None if mel.f_max is None else float(mel.f_max)}


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=float) / 700.0)  # HTK, torchaudio's default


def mel_bin(frequency: float, settings: dict) -> float:
    """The (fractional) mel bin whose centre is ``frequency`` (Hz), for a front-end's ``settings``.

    >>> round(mel_bin(0.0, MEL_DEFAULTS), 3), round(mel_bin(22050.0, MEL_DEFAULTS), 3)
    (-1.0, 128.0)
    """
    low = float(_hz_to_mel(settings["f_min"]))
    high = float(_hz_to_mel(settings["f_max"] or settings["sample_rate"] / 2))
    step = (high - low) / (settings["n_mels"] + 1)
    return (float(_hz_to_mel(frequency)) - low) / step - 1.0


def spectrogram(ax: Axes, values: torch.Tensor | np.ndarray, settings: dict, cmap: str = "magma",
                vmin: float | None = None, vmax: float | None = None, labels: bool = True):
    """Draw ``values`` ``[n_mels, frames]`` (a log-mel in dB, or a map over its bins) with time in seconds and
    frequency in Hz (mel-spaced ticks); returns the image for a colour bar."""
    values = np.asarray(values.detach().float().cpu() if isinstance(values, torch.Tensor) else values)
    n_mels, frames = values.shape
    seconds = frames * settings["hop_length"] / settings["sample_rate"]
    image = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                      extent=(0.0, seconds, -0.5, n_mels - 0.5), interpolation="nearest")
    top = settings["f_max"] or settings["sample_rate"] / 2
    ticks = [f for f in (100, 250, 500, 1000, 2000, 4000, 8000, 16000) if settings["f_min"] <= f <= top]
    positions = [mel_bin(f, settings) for f in ticks]
    keep = [i for i, p in enumerate(positions) if -0.5 <= p <= n_mels - 0.5]
    ax.set_yticks([positions[i] for i in keep],
                  [f"{ticks[i] // 1000}k" if ticks[i] >= 1000 else str(ticks[i]) for i in keep])
    ax.tick_params(labelsize=6)
    if labels:
        ax.set_xlabel("time (s)", fontsize=6)
        ax.set_ylabel("frequency (Hz)", fontsize=6)
    return image


def _plain(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _unit_max(t: torch.Tensor) -> torch.Tensor:
    """``|t|`` divided by its maximum (zeros stay zeros)."""
    t = t.detach().float().cpu().abs()
    peak = float(t.max()) if t.numel() else 0.0
    return t / peak if peak > 0 else t


def _middle(t: torch.Tensor) -> torch.Tensor:
    """A 3D volume's middle slice along its first axis; 1D and 2D maps as they are."""
    return t[t.shape[0] // 2] if t.dim() == 3 else t


def stored_explanation(config: Config, modality: str, attribution: dict, size: tuple[int, ...]) -> Explanation:
    """The WAM explanation rebuilt from the stored per-band maps (exactly what was scored)."""
    ndim = NDIM[modality]
    bands = transform.unbands(attribution["wavelet"], ndim)
    return Explanation(grads=bands, coeffs=bands, ndim=ndim, wavelet=config.section("wavelet")[modality]["wavelet"],
                       size=size)


# ----------------------------------------------------------------------------- examples


def _input_panel(fig: Figure, ax: Axes, modality: str, shown: torch.Tensor, mel: dict) -> None:
    """The input as the model sees it: an RGB image, a log-mel (dB) or a volume's middle slice."""
    shown = shown.detach().float().cpu()
    if modality == "audio":
        colorbar(fig, spectrogram(ax, shown[0], mel), ax, "log-mel power (dB)")
    elif modality == "images":
        rgb = shown.permute(1, 2, 0)
        ax.imshow(((rgb - rgb.min()) / (rgb.max() - rgb.min() + 1e-12)).numpy())
        _plain(ax)
    else:
        image = ax.imshow(_middle(shown[0]).numpy(), cmap="gray")
        colorbar(fig, image, ax, "intensity")
        _plain(ax)


def _map_panel(ax: Axes, modality: str, values: torch.Tensor, mel: dict, time_axis: bool = False):
    """One attribution map as ``|a| / max``: a log-mel map (audio), a curve over time (a level of WAM-1D) or an
    image (images, a volume's middle slice)."""
    values = _unit_max(values)
    if modality == "audio" and values.dim() == 2:
        return spectrogram(ax, values, mel, cmap="hot", vmin=0, vmax=1, labels=False)
    if values.dim() == 1:
        seconds = np.arange(values.shape[0]) / mel["sample_rate"] if time_axis else np.arange(values.shape[0])
        ax.plot(seconds, values.numpy(), lw=0.5, color="C3")
        ax.set_ylim(0, 1.05)
        ax.set_xlim(seconds[0], seconds[-1])
        ax.tick_params(labelsize=6)
        if time_axis:
            ax.set_xlabel("time (s)", fontsize=6)
        return None
    image = ax.imshow(_middle(values).numpy(), cmap="hot", vmin=0, vmax=1)
    _plain(ax)
    return image


def _dyadic_panel(ax: Axes, expl: Explanation, index: int, label: str) -> None:
    """WAM's dyadic map with each level's region outlined (1D: the coefficient vector, approximation first)."""
    viz.dyadic(expl, index=index, ax=ax)
    if expl.ndim == 1:
        line = ax.get_lines()[0]
        line.set_ydata(_unit_max(torch.as_tensor(line.get_ydata())).numpy())
        ax.set_ylim(0, 1.05)
        shapes = [b.shape[-1] for b in transform.bands(expl.coeffs)]
        edges = np.cumsum([0, *shapes]) * expl.size[0] / sum(shapes)
        names = ["approx."] + [f"level {expl.levels - i}" for i in range(expl.levels)]
        ax.set_xticks((edges[:-1] + edges[1:]) / 2, names, rotation=90, fontsize=5)
        ax.set_xlabel("coefficient", fontsize=6)
        ax.tick_params(labelsize=6)
    else:
        ax.images[0].set_clim(0, 1)
    fit_title(ax, f"{label}: dyadic map")


def examples_figure(modality: str, inputs: Sequence[torch.Tensor], titles: Sequence[str], maps: dict[str, torch.Tensor],
                    expl: Explanation | None = None, wam_label: str = "", mel: dict | None = None,
                    heading: str = "") -> Figure:
    """One row per input, wrapped over several lines past :data:`MAX_COLUMNS` panels: the input as the model sees
    it (``inputs[i]``: ``[3, H, W]`` in [0, 1], a log-mel ``[1, mels, frames]`` in dB or a volume ``[1, D, H, W]``)
    titled ``titles[i]``; ``expl``'s dyadic map and per-level maps (titled with ``wam_label`` and each level's
    share); each method's map (``maps``: label -> ``[n, *spatial]``), all as ``|a| / max`` with one colour bar per
    input."""
    mel = mel or dict(MEL_DEFAULTS)
    n, n_levels = len(inputs), expl.levels if expl is not None else 0
    count = 1 + (1 + n_levels if expl is not None else 0) + len(maps)  # panels per input
    lines = math.ceil(count / MAX_COLUMNS)  # an input's panels wrap over this many lines of the grid
    columns = math.ceil(count / lines)
    fig = Figure(figsize=(1.75 * columns + 1.0, 2.1 * n * lines + 0.5), layout="constrained")
    grid = fig.subplots(n * lines, columns, squeeze=False)
    shares = _shares(expl)
    for i in range(n):
        cells = [ax for line in grid[i * lines : (i + 1) * lines] for ax in line]
        for ax in cells[count:]:  # the last line's unused cells: no empty panel
            fig.delaxes(ax)
        _input_panel(fig, cells[0], modality, inputs[i], mel)
        fit_title(cells[0], titles[i])
        image, used = None, cells[1:count]
        if expl is not None:
            _dyadic_panel(used[0], expl, i, wam_label)
            level_maps = expl.scales()[i]
            for level, ax in enumerate(used[1 : 1 + n_levels]):
                image = _map_panel(ax, modality, level_maps[level], mel, time_axis=True) or image
                share = "" if shares is None else f", share {float(shares[i, level]):.2f}"
                fit_title(ax, f"{wam_label}: level {level + 1}{' (finest)' if level == 0 else ''}{share}")
        for ax, (label, values) in zip(used[count - 1 - len(maps) :], maps.items(), strict=True):
            image = _map_panel(ax, modality, values[i], mel) or image
            fit_title(ax, label)
        if image is not None:
            colorbar(fig, image, used, MAP_LABEL)
    note = f"; {wam_label}'s dyadic map: each band divided by its own maximum" if expl is not None else ""
    note += "; volumes: the middle slice along the first axis" if modality == "volumes" else ""
    fig.suptitle(textwrap.fill(f"{heading}{': ' if heading else ''}inputs and attribution maps (signed maps shown "
                               f"as |a|, each divided by its maximum{note})", 40 * columns // 2), fontsize=8)
    return fig


def _shares(expl: Explanation | None) -> torch.Tensor | None:
    """``expl``'s scale shares ``[n, levels + 1]``, or None where they are undefined (a zero map)."""
    if expl is None:
        return None
    try:
        return expl.scale_shares()
    except ValueError:
        return None


def examples(config: Config, dataset: str, model_name: str, out: Path) -> None:
    """The examples figure of one (data set, model) from its stored attributions (shard 0)."""
    modality = config.datasets[dataset].modality
    results = Path("results") / config.name
    model = zoo.load(results / "models" / dataset / model_name / "model.pt").eval()
    data, _ = model_inputs(config, dataset, model, 0)  # images in [0, 1]
    n = min(N_EXAMPLES, len(data))
    stored = {m: torch.load(results / "attributions" / dataset / model_name / m / "0.pt", weights_only=False)
              for m in config.methods}
    wam_method = next((m for m, s in config.methods.items() if s.kind == "wam"), None)
    size = tuple(data.x.shape[1:] if modality == "audio" else data.x.shape[2:])
    expl = stored_explanation(config, modality, stored[wam_method], size) if wam_method else None
    with torch.no_grad():
        inputs = [model.frontend(data.x[i : i + 1])[0] if modality == "audio" else data.x[i] for i in range(n)]
    titles = [f"{Path(str(data.ids[i])).name}\nclass: "
              + (data.class_names[int(data.y[i])] if data.class_names else str(int(data.y[i]))) for i in range(n)]
    maps = {config.methods[m].label: a["pixel"][:n] for m, a in stored.items()}
    fig = examples_figure(modality, inputs, titles, maps, expl, config.methods[wam_method].label if wam_method else "",
                          mel_settings(getattr(model, "frontend", None)), f"{dataset} / {model_name}")
    save(fig, out / f"examples_{dataset}_{model_name}.png")


# ----------------------------------------------------------------------------- curves


def curve_ranking(config: Config, method: str, modality: str, domain: str) -> str:
    """How a method's map is ranked in a curve of ``domain``: as Table 1 ranks it in its own domain
    (:func:`metrics.protocols.reference_ranking`), as the same-domain tables rank every method in the other
    (``evaluation.ranking`` in the wavelet domain)."""
    if home_domain(config, method) == domain:
        return reference_ranking(modality, domain)
    return same_domain_ranking(config, domain)


def curve_panels(config: Config, frame: pd.DataFrame, modality: str) -> dict[tuple[str, str], dict[str, pd.DataFrame]]:
    """The curves of each (domain, kind) panel: per method scored in that domain, its rows ranked as
    :func:`curve_ranking` says."""
    panels: dict[tuple[str, str], dict[str, pd.DataFrame]] = {}
    for domain in ("pixel", "wavelet"):
        for kind in ("insertion", "deletion"):
            per_method = {}
            for method in config.methods:
                part = frame[(frame["method"] == method) & (frame["metric"] == kind) & (frame["domain"] == domain)
                             & (frame["ranking"] == curve_ranking(config, method, modality, domain))]
                if not part.empty:
                    per_method[method] = part
            if per_method:
                panels[(domain, kind)] = per_method
    return panels


def curves(config: Config, dataset: str, model_name: str, out: Path) -> None:
    """The curves figure of one (data set, model) from its stored per-sample curves."""
    paths = [Path("results") / config.name / "curves" / dataset / model_name / m / f"{s}.csv"
             for m in config.methods for s in range(config.shards)]
    frame = pd.concat([pd.read_csv(f, keep_default_na=False) for f in paths], ignore_index=True)
    fig = curves_figure(config, frame, config.datasets[dataset].modality, f"{dataset} / {model_name}")
    save(fig, out / f"curves_{dataset}_{model_name}.png")


def curves_figure(config: Config, frame: pd.DataFrame, modality: str, heading: str) -> Figure:
    """Insertion and deletion curves (columns), one row per feature domain with curves (:func:`curve_panels`):
    per method the mean over the inputs (``frame``'s rows: method, metric, domain, ranking, protocol, sample_id,
    fraction, value) and a band of one standard error; the legend outside the panels, the bands explained under
    them."""
    protocol = config.section("evaluation")["protocol"]
    frame = frame[frame["protocol"] == protocol]
    panels = curve_panels(config, frame, modality)
    domains = list(dict.fromkeys(d for d, _ in panels))
    fig = Figure(figsize=(9.5, 2.9 * len(domains) + 0.9), layout="constrained")
    axes = fig.subplots(len(domains), 2, squeeze=False, sharey=True)
    colours = {m: f"C{i % 10}" for i, m in enumerate(config.methods)}
    n_inputs = frame["sample_id"].nunique() if "sample_id" in frame.columns else None
    for r, domain in enumerate(domains):
        features = DOMAIN_FEATURES[domain] if domain == "wavelet" else DOMAIN_FEATURES[domain][modality]
        for c, kind in enumerate(("insertion", "deletion")):
            ax = axes[r][c]
            for method, part in panels.get((domain, kind), {}).items():
                spec = config.methods[method]
                stats = part.groupby("fraction")["value"].agg(["mean", "sem"]).fillna(0.0)
                home = home_domain(config, method) == domain
                ax.plot(stats.index, stats["mean"], color=colours[method], label=spec.label,
                        lw=1.8 if spec.kind == "wam" else 1.0, linestyle="-" if home else "--")
                ax.fill_between(stats.index, stats["mean"] - stats["sem"], stats["mean"] + stats["sem"],
                                color=colours[method], alpha=0.12, lw=0)
            ax.set_xlabel(f"fraction of {features} " + ("inserted" if kind == "insertion" else "removed"), fontsize=7)
            ax.set_ylabel("probability of the target class", fontsize=7)
            ax.set_xlim(0, 1)
            ax.tick_params(labelsize=6)
            ax.grid(alpha=0.3)
            fit_title(ax, f"{kind.title()} in the {domain} domain ({features})", fontsize=8)
    shown = [m for m in config.methods if any(m in panel for panel in panels.values())]
    handles = [Line2D([], [], color=colours[m], lw=1.8 if config.methods[m].kind == "wam" else 1.0) for m in shown]
    handles += [Line2D([], [], color="0.3", linestyle=style) for style in ("-", "--")]
    names = [config.methods[m].label for m in shown] + ["its Table 1 domain", "the other domain"]
    fig.legend(handles, names, loc="outside right upper", fontsize=7, title="method", title_fontsize=7)
    n_text = f"the {n_inputs} evaluated inputs" if n_inputs else "the evaluated inputs"
    fig.suptitle(f"Insertion and deletion curves: {heading}, `{protocol}` protocol", fontsize=9)
    fig.supxlabel(textwrap.fill(
        f"Lines: mean over {n_text}; bands: one standard error of that mean. Solid: the method's Table 1 curve "
        "(its own domain: WAM wavelet coefficients, baselines pixels / log-mel bins / voxels; ranked as Table 1 "
        "ranks); dashed: the same method scored in the other domain, ranked as the same-domain tables rank "
        "(table1_<domain>_<auc>).", 150), fontsize=7)
    return fig


# ----------------------------------------------------------------------------- scales


def scales(config: Config, dataset: str, model_name: str, scores: pd.DataFrame, out: Path) -> None:
    """The scales figure of one (data set, model) from the gathered scores."""
    part = scores[(scores["dataset"] == dataset) & (scores["model"] == model_name)]
    save(scales_figure(config, part, f"{dataset} / {model_name}"), out / f"scales_{dataset}_{model_name}.png")


def scales_figure(config: Config, scores: pd.DataFrame, heading: str) -> Figure:
    """One bar panel per quantity that has values among ``scores`` (``scale_share@level``; ``localisation@level``
    where the data set records a ground truth): per method and level the mean over the inputs with one standard
    error; the legend outside the bars."""
    part = scores[scores["metric"].str.contains("@")]
    quantities = [(prefix, ylabel) for prefix, ylabel in (
        ("scale_share", "share of WAM's importance\n(levels sum to 1 per input)"),
        ("localisation", "share of the positive attribution\non the ground truth"))
        if part["metric"].str.startswith(prefix + "@").any()]
    fig = Figure(figsize=(4.6 * max(1, len(quantities)) + 1.4, 3.3), layout="constrained")
    axes = fig.subplots(1, max(1, len(quantities)), squeeze=False)[0]
    if not quantities:
        axes[0].text(0.5, 0.5, "no per-scale scores for this data set and model", ha="center", va="center")
        axes[0].set_axis_off()
    for ax, (prefix, ylabel) in zip(axes, quantities, strict=False):
        sel = part[part["metric"].str.startswith(prefix + "@")]
        sel = sel.assign(level=sel["metric"].str.split("@").str[1])
        levels = list(dict.fromkeys(sorted(sel["level"], key=_level_key)))
        methods = [m for m in config.methods if (sel["method"] == m).any()]
        width = 0.8 / max(1, len(methods))
        for k, method in enumerate(methods):
            stats = sel[sel["method"] == method].groupby("level")["value"].agg(["mean", "sem"]).reindex(levels)
            pos = np.arange(len(levels)) + (k - (len(methods) - 1) / 2) * width
            ax.bar(pos, stats["mean"], width, yerr=stats["sem"].fillna(0.0), capsize=2, color=f"C{k}",
                   label=config.methods[method].label)
        ax.set_xticks(np.arange(len(levels)), [_level_name(n) for n in levels], fontsize=7)
        ax.set_ylabel(ylabel, fontsize=7)
        ax.set_xlabel("wavelet level", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.suptitle(f"Per-scale importance: {heading} (mean over the inputs; error bars: one standard error)",
                 fontsize=8)
    return fig


def _level_key(name: str) -> float:
    return math.inf if name == "approx" else float(name.removeprefix("level"))


def _level_name(name: str) -> str:
    """``level1`` -> ``level 1 (finest)``, ``approx`` -> ``approx.``."""
    if name == "approx":
        return "approx."
    number = name.removeprefix("level")
    return f"level {number}" + ("\n(finest)" if number == "1" else "")


def save(fig: Figure, path: Path) -> None:
    """Save atomically, without a timestamp in the file (so reruns give the same bytes)."""
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, metadata={"Software": None})


def write_figures(config: Config, dataset: str, model_name: str, scores_path: Path, out: Path) -> None:
    """The example, curve and scale figures of one (data set, model) under ``out``."""
    examples(config, dataset, model_name, out)
    curves(config, dataset, model_name, out)
    scales(config, dataset, model_name, pd.read_csv(scores_path, keep_default_na=False), out)
    files.write_json(out / f"provenance_{dataset}_{model_name}.json", files.provenance(
        stage="figures", dataset=dataset, model=model_name, seed=config.seed))
