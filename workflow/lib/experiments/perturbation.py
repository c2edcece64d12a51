"""Meaningful perturbation in the wavelet domain (target ``perturbation``): sparsity against the class score.

For the first ``perturbation.n_images`` evaluated images of the configuration's first images data set and its
first model, :func:`wam.perturbation.optimize_mask` finds, for every ``alpha`` of ``perturbation.alphas``, the
mask ``m`` over the image's wavelet coefficients (the model input's own transform, the configuration's images
wavelet) that keeps (``game: preserve``) or destroys (``delete``) the model's top-1 class with the fewest
coefficients. The target class is the model's own top-1 prediction on the unmasked image.

The masks start at ``1 - 1e-6 u`` with ``u`` seeded per row (:func:`wam.perturbation.optimize_mask`); float
rounding (the kernels a batch size picks) grows over the steps into different masks, so every mask figure is
given over ``perturbation.seeds`` (default ``[seed]``): means over the images of each image's mean over the seeds,
with the seed-to-seed standard deviation of the mean over the images (``sd_seeds``).

Two stages (``python -m workflow.scripts.experiments.perturbation {optimise,report} ...``):

- ``optimise`` -> ``perturbation/rows.csv``: one row per (seed, image, alpha): ``seed, sample_id, alpha, target,
  predicted, top1`` (the masked image keeps the top-1), ``sparsity`` (fraction of ``m < 0.5``), ``logit``,
  ``probability`` (softmax of the target class), ``logit_unmasked`` (the target's logit on the image itself),
  ``loss_start, loss_end`` and, per level (``level1`` the
  finest ... ``levelL``, ``approx``):

  - ``mask_density@level``: sum of ``m`` over the level's coefficients / their number (which scales survive);
  - ``mask_share@level``: sum of ``m`` over the level / over every level;
  - ``wam_ig_share@level``: sum of ``|a|`` over the level / over every level, ``|a|`` WAM-IG's raw
    per-coefficient magnitudes (``Explanation.band_maps(normalize=False)``) from ``wam.WAM(method=
    "integrated")`` with the options of ``methods.wam_ig``, on the same images and targets;
  - ``wam_ig_density@level``: mean ``|a|`` per coefficient of the level, normalised to sum 1 over the levels;

  ``perturbation/examples.pt``: the original, the minimal images ``W^-1(z * m)`` and the masks' dyadic maps
  of the first ``n_examples`` images (first seed).
- ``report`` -> ``tables/perturbation.{csv,md}`` (means with bootstrap 95 % intervals over the images, see
  :func:`summary`), ``figures/perturbation_pareto.png`` and ``figures/perturbation_examples.png``.

Scale agreement (does the mask keep the scales WAM ranks first?): per (image, alpha), the Spearman
correlation over the ``levels + 1`` scales between the mask's density and WAM-IG's density (per coefficient:
a level with many coefficients is not favoured) and between the mask's share and WAM-IG's share (totals);
undefined, and left out, where either side is constant over the scales (e.g. a mask still all ones).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from wam import WAM, transform
from wam.perturbation import optimize_mask
from wam.utils import pick_device
from workflow.lib import files
from workflow.lib.config import NDIM, Config
from workflow.lib.data import Split, model_inputs
from workflow.lib.models import zoo
from workflow.lib.reporting.figures import colorbar, fit_title, save
from workflow.lib.reporting.tables import markdown, summarise

N_SHOWN_ALPHAS = 4  # alphas drawn in the examples figure (spread over the sweep)




def load_images(config: Config, dataset: str, model: torch.nn.Module) -> Split:
    """The first ``perturbation.n_images`` evaluated inputs of ``dataset`` (``null``: all of them), as ``model``
    sees them (its own preprocessing and normalisation)."""
    data, x = model_inputs(dataclasses.replace(config, shards=1), dataset, model, 0)
    n = config.section("perturbation")["n_images"] or len(data)
    if n > len(data):
        raise ValueError(f"perturbation.n_images: {n} > the {len(data)} evaluated inputs of {dataset} "
                         f"(datasets.{dataset}.n_inputs)")
    return Split(x[:n], data.y[:n], data.ids[:n], data.n_classes, data.class_names)


def _normalised(values: torch.Tensor) -> torch.Tensor:
    """Rows of ``[B, K]`` divided by their sum (a zero row stays zero)."""
    return values / values.sum(1, keepdim=True).clamp_min(torch.finfo(values.dtype).tiny)


def wam_ig_levels(config: Config, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """WAM-IG per level ``[B, levels + 1]``: its share and its share per coefficient
    (:meth:`wam.Explanation.scale_shares`, the raw magnitudes ``|a|``)."""
    options = config.methods["wam_ig"].options_for("images") if "wam_ig" in config.methods else {}
    expl = WAM(model, ndim=2, batch_size=config.section("perturbation")["batch_size"], seed=config.seed,
               **config.section("wavelet")["images"], **{**options, "method": "integrated"})(x, y)
    return expl.scale_shares(), expl.scale_shares(per_coefficient=True)


def seeds(config: Config) -> list[int]:
    """``perturbation.seeds``, else the run's ``seed``."""
    return [int(s) for s in config.section("perturbation").get("seeds") or [config.seed]]


def optimise(config: Config, dataset: str, model_path: Path, rows_path: Path, examples_path: Path) -> None:
    spec = config.section("perturbation")
    device = pick_device(config.device)
    model = zoo.load(model_path).to(device).eval()
    data = load_images(config, dataset, model)
    alphas = [float(a) for a in spec["alphas"]]
    names = transform.level_names(config.section("wavelet")["images"]["levels"])
    # images per call: the fewest whose rows (images x alphas) fill whole chunks of batch_size (bounded memory)
    per_call = spec["batch_size"] // math.gcd(spec["batch_size"], len(alphas))
    records, shown = [], {"original": [], "minimal": [], "mask": [], "probability": [], "sparsity": []}
    classes = []  # the shown images' top-1 class names
    n_examples = min(spec.get("n_examples", 2), len(data))
    wam_ig = {}  # start -> WAM-IG's levels of those images (they do not depend on the mask's seed)
    run_seeds = seeds(config)
    chunks = [(seed, start) for seed in run_seeds for start in range(0, len(data), per_call)]
    for seed, start in tqdm(chunks, desc="perturbation", unit="chunk"):
        x = data.x[start : start + per_call].to(device)
        with torch.no_grad():
            unmasked = model(x)
            y = unmasked.argmax(1)
        result = optimize_mask(model, x, y, NDIM["images"], alphas, steps=spec["steps"], lr=spec["lr"],
                               game=spec["game"], batch_size=spec["batch_size"], seed=seed,
                               **config.section("wavelet")["images"])
        density = result.level_mass()  # [b, A, levels + 1]
        counts = transform.level_sums([torch.ones(1, *shape, device=device) for shape in result.shapes], 2)
        share = _normalised((density * counts).flatten(0, 1)).reshape(density.shape)
        if start not in wam_ig:
            wam_ig[start] = tuple(t.cpu() for t in wam_ig_levels(config, model, x, y))
        ig_share, ig_density = wam_ig[start]
        density, share = density.cpu(), share.cpu()
        for i in range(x.shape[0]):
            for j, alpha in enumerate(alphas):
                records.append({
                    "seed": seed, "sample_id": data.ids[start + i], "alpha": alpha, "target": int(y[i]),
                    "predicted": int(result.predicted[i, j]), "top1": int(result.predicted[i, j] == y[i]),
                    "sparsity": float(result.sparsity[i, j]), "logit": float(result.logits[i, j]),
                    "probability": float(result.probs[i, j]), "logit_unmasked": float(unmasked[i, y[i]]),
                    "loss_start": float(result.loss[0, i, j]),
                    "loss_end": float(result.loss[-1, i, j]),
                    **{f"mask_density@{n}": float(density[i, j, k]) for k, n in enumerate(names)},
                    **{f"mask_share@{n}": float(share[i, j, k]) for k, n in enumerate(names)},
                    **{f"wam_ig_density@{n}": float(ig_density[i, k]) for k, n in enumerate(names)},
                    **{f"wam_ig_share@{n}": float(ig_share[i, k]) for k, n in enumerate(names)}})
        keep = max(0, min(n_examples - start, x.shape[0])) if seed == run_seeds[0] else 0
        if keep:
            shown["original"].append(x[:keep].cpu())
            shown["minimal"].append(result.minimal()[:keep].cpu())
            shown["mask"].append(result.dyadic()[:keep].cpu())
            shown["probability"].append(result.probs[:keep].cpu())
            shown["sparsity"].append(result.sparsity[:keep].cpu())
            classes += [data.class_names[int(c)] if data.class_names else str(int(c)) for c in y[:keep]]
    files.write_csv(pd.DataFrame(records), rows_path)
    examples = {k: torch.cat(v) for k, v in shown.items()}
    examples.update(ids=data.ids[:n_examples], classes=classes, alphas=alphas, game=spec["game"],
                    shapes=[tuple(s[1:]) for s in result.shapes])
    with files.atomic_path(examples_path) as tmp:
        torch.save(examples, tmp)
    for path in (rows_path, examples_path):
        files.write_json(Path(f"{path}.provenance.json"), files.provenance(
            stage="perturbation", dataset=dataset, model=str(model_path), perturbation=spec,
            wavelet=config.section("wavelet")["images"], wam_ig=config.raw["methods"].get("wam_ig"), seeds=run_seeds,
            device_used=str(device)))


# ----------------------------------------------------------------------------------------------- report


def _alpha_label(alpha: float) -> str:
    return f"{alpha:g}"


def scale_spearman(rows: pd.DataFrame, names: list[str], mask: str, wam_ig: str) -> pd.Series:
    """Per row, the Spearman correlation over the scales between ``{mask}@level`` and ``{wam_ig}@level``
    (NaN where either is constant over the scales: the ranking is undefined)."""
    first = rows[[f"{mask}@{n}" for n in names]].to_numpy()
    second = rows[[f"{wam_ig}@{n}" for n in names]].to_numpy()
    values = [spearmanr(u, v).statistic if np.ptp(u) > 0 and np.ptp(v) > 0 else np.nan
              for u, v in zip(first, second, strict=True)]
    return pd.Series(values, index=rows.index, dtype=float)


def max_sparsity_keeping_top1(rows: pd.DataFrame) -> pd.Series:
    """Per (seed, image), the largest sparsity over the alphas at which the masked image keeps the top-1 (the
    target is the unmasked image's top-1, so sparsity 0 always keeps it)."""
    keys = [rows[c] for c in ("seed", "sample_id") if c in rows.columns]
    return rows["sparsity"].where(rows["top1"] == 1, 0.0).groupby(keys, sort=True).max()


def over_seeds(values: pd.DataFrame, by: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``values`` (columns ``seed, sample_id, *by, value``) as each image's mean over the seeds (NaN seeds left
    out), and per group of ``by`` the sample standard deviation over the seeds of the mean over the images
    (``sd_seeds``, ``n_seeds``; NaN with one seed)."""
    per_image = values.groupby([*by, "sample_id"], sort=True, dropna=False)["value"].mean().reset_index()
    per_seed = values.groupby([*by, "seed"], sort=True, dropna=False)["value"].mean().reset_index()
    spread = per_seed.groupby(by, sort=True, dropna=False)["value"].agg(sd_seeds="std", n_seeds="count").reset_index()
    return per_image, spread


PER_ALPHA = ("sparsity", "probability", "logit", "top1_kept", "spearman_density", "spearman_share")
MASK_LEVELS = ("mask_density", "mask_share")
WAM_IG_LEVELS = ("wam_ig_density", "wam_ig_share")


def summary(rows: pd.DataFrame, resamples: int, seed: int) -> pd.DataFrame:
    """The table: ``quantity, alpha, level, n, mean, ci_low, ci_high, sd_seeds, n_seeds``: the mean over the images
    of each image's mean over the optimisation seeds, its bootstrap 95 % CI over the images, and the seed-to-seed
    standard deviation of the mean over the images (:func:`over_seeds`; rows without a ``seed`` column: one seed).

    Per alpha (level ``-``): ``sparsity``, ``probability`` and ``logit`` of the target class, ``top1_kept``
    (fraction of images whose masked image keeps the top-1), ``spearman_density`` (Spearman over the scales
    between the mask's density and WAM-IG's density) and ``spearman_share`` (the mask's share against
    WAM-IG's share), over the rows where they are defined. Per alpha and level: ``mask_density``,
    ``mask_share``. Per level (alpha ``-``): ``wam_ig_density``, ``wam_ig_share``. Alone:
    ``max_sparsity_top1`` (per image, the largest sparsity keeping the top-1).
    """
    names = [c.split("@")[1] for c in rows.columns if c.startswith("mask_density@")]
    if "seed" not in rows.columns:
        rows = rows.assign(seed=seed)
    rows = rows.assign(top1_kept=rows["top1"].astype(float),
                       spearman_density=scale_spearman(rows, names, "mask_density", "wam_ig_density"),
                       spearman_share=scale_spearman(rows, names, "mask_share", "wam_ig_share"))

    def values(frame: pd.DataFrame, column: str, quantity: str, level: str = "-") -> pd.DataFrame:
        keep = [c for c in ("seed", "alpha", "sample_id") if c in frame.columns]
        return frame[[*keep, column]].rename(columns={column: "value"}).assign(quantity=quantity, level=level)

    def summarised(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
        per_image, spread = over_seeds(frame.dropna(subset=["value"]), by)
        return summarise(per_image, by, resamples, seed).merge(spread, on=by, how="left")

    per_alpha = [values(rows, q, q) for q in PER_ALPHA]
    per_alpha += [values(rows, f"{q}@{n}", q, n) for q in MASK_LEVELS for n in names]
    per_alpha = summarised(pd.concat(per_alpha), ["quantity", "alpha", "level"])
    images = rows.drop_duplicates(["seed", "sample_id"]).drop(columns="alpha")
    alone = [values(images, f"{q}@{n}", q, n) for q in WAM_IG_LEVELS for n in names]
    alone.append(values(max_sparsity_keeping_top1(rows).rename("value").reset_index(), "value",
                        "max_sparsity_top1"))
    alone = summarised(pd.concat(alone), ["quantity", "level"]).assign(alpha=np.nan)
    order = {q: i for i, q in enumerate((*PER_ALPHA, *MASK_LEVELS, *WAM_IG_LEVELS, "max_sparsity_top1"))}
    level_order = {n: i for i, n in enumerate(["-", *names])}
    table = pd.concat([per_alpha, alone], ignore_index=True).sort_values(
        ["quantity", "alpha", "level"], na_position="first", kind="stable",
        key=lambda s: s.map(order) if s.name == "quantity" else s.map(level_order) if s.name == "level" else s)
    table["alpha"] = table["alpha"].map(lambda a: "-" if pd.isna(a) else f"{a:g}")
    return table[["quantity", "alpha", "level", "n", "mean", "ci_low", "ci_high", "sd_seeds", "n_seeds"]
                 ].reset_index(drop=True)


def seed_cell(row: pd.Series) -> str:
    """``mean ± sd over the seeds [CI over the images]`` (no ``±`` with one seed)."""
    spread = f" ± {row['sd_seeds']:.3f}" if row["n_seeds"] > 1 and not pd.isna(row["sd_seeds"]) else ""
    return f"{row['mean']:.3f}{spread} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def table_markdown(table: pd.DataFrame, rows: pd.DataFrame, game: str) -> str:
    table = table.assign(cell=table.apply(seed_cell, axis=1))
    n_seeds = rows["seed"].nunique() if "seed" in rows.columns else 1
    main = table[table["quantity"].isin(PER_ALPHA)].rename(columns={"alpha": "alpha (penalty)"})
    best = table[table["quantity"] == "max_sparsity_top1"].iloc[0]
    scales = table[table["quantity"].isin((*MASK_LEVELS, *WAM_IG_LEVELS))]
    label = scales["quantity"].str.replace("_", " ").str.replace("wam ig", "WAM-IG")
    scales = scales.assign(row=np.where(scales["alpha"] == "-", label, label + ", alpha = " + scales["alpha"]))
    return "\n".join([
        f"Meaningful perturbation in the wavelet domain ({game} game): mean over {rows['sample_id'].nunique()} "
        f"images of each image's mean over {n_seeds} optimisation seed(s) ± the seed-to-seed standard deviation "
        "[bootstrap 95 % CI over the images]. The seeds set the masks' starting point (1 - 1e-6 u); float rounding "
        "grows over the steps into different masks, and the ± is that spread. sparsity: fraction of coefficients "
        "with m < 0.5; probability, logit: the "
        "target class (the unmasked image's top-1) on W^-1(z m); top1_kept: fraction of images whose masked "
        "image keeps the top-1.", "",
        markdown(main, "alpha (penalty)", ["quantity"]),
        f"Largest sparsity at which the top-1 prediction still holds: {best['cell']} (mean over the images of "
        f"each image's largest; largest over the images: {max_sparsity_keeping_top1(rows).max():.3f}).", "",
        "Which scales survive (level 1 is the finest). mask density: sum of m over the level's coefficients / "
        "their number; mask share: sum of m over the level / over every level; WAM-IG share: sum of |a| over "
        "the level / over every level (a: WAM-IG's raw per-coefficient magnitudes); WAM-IG density: mean |a| "
        "per coefficient of the level, normalised to sum 1 over the levels. spearman_density (above): "
        "Spearman correlation over the scales between mask density and WAM-IG density, per image; "
        "spearman_share: between mask share and WAM-IG share (images where either is constant left out).", "",
        markdown(scales, "row", ["level"]),
    ])


def pareto_front(points: np.ndarray) -> np.ndarray:
    """The non-dominated points of ``[n, 2]`` (both coordinates larger is better), by increasing x."""
    order = np.lexsort((-points[:, 1], -points[:, 0]))  # x descending, then y descending
    front, best_y = [], -np.inf
    for i in order:
        if points[i, 1] > best_y:
            front.append(i)
            best_y = points[i, 1]
    return points[front[::-1]]


def pareto_figure(rows: pd.DataFrame, game: str, path: Path) -> None:
    """Sparsity against the target's logit: one point per (image, alpha) coloured by alpha (a cross where the
    top-1 is lost), each image's points joined in alpha order from its unmasked logit (grey square at sparsity
    0), and the Pareto front of the (image, alpha) points."""
    fig = Figure(figsize=(6.8, 4), layout="constrained")
    ax = fig.subplots()
    for _, image in rows.sort_values("alpha").groupby("sample_id", sort=True):
        ax.plot([0.0, *image["sparsity"]], [image["logit_unmasked"].iloc[0], *image["logit"]], color="0.75", lw=0.6,
                zorder=1)
    unmasked = rows.drop_duplicates("sample_id")
    ax.scatter(np.zeros(len(unmasked)), unmasked["logit_unmasked"], color="0.5", marker="s", s=14,
               label="unmasked image", zorder=2)
    alphas = sorted(rows["alpha"].unique())
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 1, len(alphas)))
    for alpha, colour in zip(alphas, colours, strict=True):
        part = rows[rows["alpha"] == alpha]
        for kept, marker in ((1, "o"), (0, "x")):
            sel = part[part["top1"] == kept]
            ax.scatter(sel["sparsity"], sel["logit"], color=colour, marker=marker, s=22, zorder=3,
                       label=f"alpha = {alpha:g}" if kept == 1 or sel.shape[0] == part.shape[0] else None)
    front = pareto_front(rows[["sparsity", "logit"]].to_numpy())
    ax.step(front[:, 0], front[:, 1], where="post", color="black", lw=1, label="Pareto front", zorder=4)
    ax.set_xlabel("sparsity (fraction of coefficients with m < 0.5)")
    ax.set_ylabel("logit of the target class")
    fit_title(ax, f"Wavelet-domain meaningful perturbation ({game} game); x: top-1 lost", fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    save(fig, path)


def _rgb(t: torch.Tensor, low: float, high: float) -> np.ndarray:
    """``[3, H, W]`` rescaled by the original's range ``[low, high]`` to ``[0, 1]``, ``[H, W, 3]``."""
    return ((t - low) / max(high - low, 1e-12)).clamp(0, 1).permute(1, 2, 0).numpy()


def _level_outlines(ax, shapes: list[tuple[int, int]], size: tuple[int, int]) -> None:
    """Outline the region each level reaches in a dyadic map drawn at ``size`` (band ``shapes`` in bands order)."""
    per_level = len(transform.level_keys(2))
    scale = [s / e for s, e in zip(size, transform.layout(shapes, 2)[1], strict=True)]
    region = list(shapes[0])
    for start in range(1, len(shapes), per_level):
        region = [r + s for r, s in zip(region, shapes[start + per_level - 1], strict=True)]
        ax.add_patch(Rectangle((-0.5, -0.5), region[1] * scale[1], region[0] * scale[0], fill=False,
                               edgecolor="cyan", lw=0.5))


def examples_figure(examples: dict, path: Path) -> None:
    alphas = examples["alphas"]
    picked = sorted(set(np.linspace(0, len(alphas) - 1, min(N_SHOWN_ALPHAS, len(alphas))).round().astype(int)))
    n = len(examples["ids"])
    columns = 1 + 2 * len(picked)
    fig = Figure(figsize=(1.7 * columns + 1.0, 0.6 + 2.0 * n), layout="constrained")
    axes = fig.subplots(n, columns, squeeze=False)
    classes = examples.get("classes") or [None] * n
    mask_image = None
    for i in range(n):
        original = examples["original"][i]
        low, high = float(original.min()), float(original.max())
        axes[i, 0].imshow(_rgb(original, low, high))
        fit_title(axes[i, 0], Path(str(examples["ids"][i])).name + (f"\nclass: {classes[i]}" if classes[i] else ""),
                  fontsize=6)
        for k, j in enumerate(picked):
            mask_ax, image_ax = axes[i, 1 + 2 * k + 1], axes[i, 1 + 2 * k]
            image_ax.imshow(_rgb(examples["minimal"][i, j], low, high))
            fit_title(image_ax, f"alpha {alphas[j]:g}: W^-1(z m), p(class) {float(examples['probability'][i, j]):.2f}",
                      fontsize=6)
            mask = examples["mask"][i, j]
            mask_image = mask_ax.imshow(mask.numpy(), cmap="viridis", vmin=0, vmax=1)
            _level_outlines(mask_ax, examples["shapes"], tuple(mask.shape))
            fit_title(mask_ax, f"alpha {alphas[j]:g}: mask m, sparsity {float(examples['sparsity'][i, j]):.2f}",
                      fontsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if mask_image is not None:
        colorbar(fig, mask_image, list(axes.flat), "mask m (1: coefficient kept, 0: removed)")
    fig.suptitle(f"Original, minimal images W^-1(z m) and masks m over the wavelet coefficients (dyadic layout: "
                 f"approximation top-left, levels outlined in cyan), {examples['game']} game", fontsize=8)
    save(fig, path)


def report(config: Config, rows_path: Path, examples_path: Path, out: Path) -> None:
    rows = pd.read_csv(rows_path)
    game = config.section("perturbation")["game"]
    table = summary(rows, config.section("evaluation")["bootstrap"], config.seed)
    outputs = [out / "tables" / "perturbation.csv", out / "tables" / "perturbation.md",
               out / "figures" / "perturbation_pareto.png", out / "figures" / "perturbation_examples.png"]
    files.write_csv(table, outputs[0])
    files.write_text(outputs[1], table_markdown(table, rows, game))
    first_seed = rows[rows["seed"] == rows["seed"].min()] if "seed" in rows.columns else rows
    pareto_figure(first_seed, game, outputs[2])
    examples_figure(torch.load(examples_path, weights_only=False), outputs[3])
    for path in outputs:
        files.write_json(Path(f"{path}.provenance.json"), files.provenance(
            stage="perturbation_report", rows=str(rows_path), examples=str(examples_path),
            perturbation=config.section("perturbation"), bootstrap=config.section("evaluation")["bootstrap"],
            seed=config.seed))
