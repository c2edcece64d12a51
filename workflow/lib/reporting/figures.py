"""Figures of one (dataset, model): example maps, insertion / deletion curves, per-scale importance.

- ``examples_{dataset}_{model}.png``: for the first inputs of shard 0, the input (audio: its log-mel), the
  first WAM method's dyadic map and per-scale maps (from the stored attributions) and each method's map;
- ``curves_{dataset}_{model}.png``: mean curve and one-standard-error band per method: Table 1's curves
  (``evaluation.protocol``, WAM in the wavelet domain, baselines in the pixel domain);
- ``scales_{dataset}_{model}.png``: WAM's mean share of importance per level (and localisation per level
  when a ground truth exists).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from matplotlib.figure import Figure

from metrics.protocols import reference_ranking
from wam import Explanation, transform, viz
from workflow.lib import files
from workflow.lib.config import NDIM, Config
from workflow.lib.data import model_inputs
from workflow.lib.models import zoo
from workflow.lib.scoring import home_domain

N_EXAMPLES = 2


def _image(ax, t: torch.Tensor, title: str, cmap: str = "hot") -> None:
    """Show an RGB image ``[3, H, W]``, a map ``[H, W]`` or ``[1, H, W]``, a volume's middle slice or a curve."""
    t = t.detach().float().cpu()
    if t.dim() == 4 or (t.dim() == 3 and t.shape[0] == 1):  # drop a single channel
        t = t[0]
    if t.dim() == 3 and t.shape[0] == 3:  # RGB image, rescaled to [0, 1]
        t = t.permute(1, 2, 0)
        t = (t - t.min()) / (t.max() - t.min() + 1e-12)
        cmap = None
    elif t.dim() == 3:  # volume: middle slice
        t = t[t.shape[0] // 2]
    if t.dim() == 1:
        ax.plot(t.numpy(), lw=0.5)
    else:
        ax.imshow(t.numpy(), cmap=cmap, aspect="auto")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)


def stored_explanation(config: Config, modality: str, attribution: dict, size: tuple[int, ...]) -> Explanation:
    """The WAM explanation rebuilt from the stored per-band maps (exactly what was scored)."""
    ndim = NDIM[modality]
    bands = transform.unbands(attribution["wavelet"], ndim)
    return Explanation(grads=bands, coeffs=bands, ndim=ndim, wavelet=config.section("wavelet")[modality]["wavelet"],
                       size=size)


def examples(config: Config, dataset: str, model_name: str, out: Path) -> None:
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
    n_levels = config.section("wavelet")[modality]["levels"] if expl else 0
    columns = 1 + (1 + n_levels if expl else 0) + len(stored)
    fig = Figure(figsize=(1.6 * columns, 1.7 * n))
    axes = fig.subplots(n, columns, squeeze=False)
    for i in range(n):
        row = axes[i]
        with torch.no_grad():
            shown = model.frontend(data.x[i : i + 1])[0] if modality == "audio" else data.x[i]
        _image(row[0], shown, f"{data.ids[i]} (class {int(data.y[i])})", cmap="magma")
        if expl is not None:
            viz.dyadic(expl, index=i, ax=row[1])
            viz.scales(expl, index=i, axes=row[2 : 2 + n_levels])
        for ax, (method, attribution) in zip(row[columns - len(stored) :], stored.items(), strict=True):
            _image(ax, attribution["pixel"][i].abs(), config.methods[method].label)  # signed maps: |a|
    fig.tight_layout()
    save(fig, out / f"examples_{dataset}_{model_name}.png")


def curves(config: Config, dataset: str, model_name: str, out: Path) -> None:
    paths = [Path("results") / config.name / "curves" / dataset / model_name / m / f"{s}.csv"
             for m in config.methods for s in range(config.shards)]
    frame = pd.concat([pd.read_csv(f, keep_default_na=False) for f in paths], ignore_index=True)
    modality = config.datasets[dataset].modality
    frame = frame[frame["protocol"] == config.section("evaluation")["protocol"]]
    fig = Figure(figsize=(9, 3.4))
    axes = fig.subplots(1, 2)
    for ax, kind in zip(axes, ("insertion", "deletion"), strict=True):
        for method, spec in config.methods.items():
            domain = home_domain(config, method)
            part = frame[(frame["method"] == method) & (frame["metric"] == kind) & (frame["domain"] == domain)
                         & (frame["ranking"] == reference_ranking(modality, domain))]
            if part.empty:
                continue
            stats = part.groupby("fraction")["value"].agg(["mean", "sem"]).fillna(0.0)
            ax.plot(stats.index, stats["mean"], label=f"{spec.label} ({domain})",
                    lw=2 if spec.kind == "wam" else 1)
            ax.fill_between(stats.index, stats["mean"] - stats["sem"], stats["mean"] + stats["sem"], alpha=0.15)
        ax.set_xlabel("fraction of features " + ("inserted" if kind == "insertion" else "removed"))
        ax.set_ylabel("probability of the target class")
        ax.set_title(f"{kind.title()}: {dataset} / {model_name}", fontsize=9)
    axes[1].legend(fontsize=6)
    fig.tight_layout()
    save(fig, out / f"curves_{dataset}_{model_name}.png")


def scales(config: Config, dataset: str, model_name: str, scores: pd.DataFrame, out: Path) -> None:
    part = scores[(scores["dataset"] == dataset) & (scores["model"] == model_name)
                  & scores["metric"].str.contains("@")]
    fig = Figure(figsize=(9, 3.2))
    axes = fig.subplots(1, 2)
    for ax, prefix, ylabel in zip(axes, ("scale_share", "localisation"),
                                  ("share of WAM's importance", "share on the ground truth"), strict=True):
        sel = part[part["metric"].str.startswith(prefix + "@")]
        if sel.empty:
            ax.text(0.5, 0.5, "no ground truth for this data set", ha="center", va="center")
            ax.set_axis_off()
            continue
        table = sel.assign(level=sel["metric"].str.split("@").str[1]).pivot_table(
            index="level", columns="method", values="value", aggfunc="mean", sort=False)
        table.rename(columns={m: config.methods[m].label for m in table.columns}).plot.bar(ax=ax, rot=0)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("wavelet level (1 = finest)")
    fig.suptitle(f"Per-scale importance: {dataset} / {model_name}", fontsize=9)
    fig.tight_layout()
    save(fig, out / f"scales_{dataset}_{model_name}.png")


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
