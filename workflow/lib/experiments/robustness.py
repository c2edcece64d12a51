"""The ``robustness`` target: which wavelet scales each model relies on, and how robust it is (the paper's
robustness section).

For every model of ``robustness.models``:

- **scale shares** (per explained image, per WAM method of ``robustness.methods``): the raw WAM importance of each
  wavelet level, finest first, and of the approximation, normalised to sum to 1. With ``a`` the attribution of
  every coefficient (WAM-SG: the mean gradient over noisy copies; WAM-IG: ``(z - z0)`` times the path integral),
  the importance of a band is ``sum |mean_c a|`` over its coefficients (``Explanation.band_maps(normalize=False)``,
  not the per-band normalised maps, which would erase the relative size of the levels), and the importance of a
  level the sum over its detail bands (``wam.transform.band_levels``). ``share_l = importance_l / sum of all``;
  shares are >= 0 and sum to 1 (an image whose attribution is exactly zero everywhere is an error, not a NaN);
- **accuracy**: clean top-1, and robust top-1 under an untargeted L-inf PGD attack (ART
  ``ProjectedGradientDescentPyTorch``; ``robustness.attack``: ``epsilon``, ``step_size``, ``steps``,
  ``random_init``) on inputs in [0, 1];
- across models: the **Spearman** correlation between robust accuracy and the coarse-scale share (approximation +
  coarsest level), per method, stated in the table captions and stored in the CSV.

Data (``robustness.data``): ``textures`` (the offline texture/region set of :mod:`workflow.scripts.textures`;
accuracy on its whole test split, shares on ``n_inputs`` class-balanced test crops), or the key of an images data
set of ``datasets`` (paper: ``images``, the 1,000 ImageNet validation images of Table 1 with RobustBench's
``Res256Crop224`` preprocessing, in [0, 1]; accuracy and shares on the same images).

Models: trained by the DAG on the offline set (:func:`workflow.lib.training.adversarial.train`, one of ``erm``,
``madry``, ``fast``, ``free``), or a torchvision ResNet-50 checkpoint named by ``robustbench``, ``url`` or ``path``
(:func:`workflow.lib.models.robust.fetch`: cached under ``{resources}/robustness/checkpoints/``, sha256-verified).

Outputs (atomic, each with a ``.provenance.json`` sidecar) under ``results/{name}/``::

    robustness/data.json                   the prepared data (offline set) and its provenance
    robustness/models/{model}.pt           trained weights, or a verified reference to a cached checkpoint
    robustness/scores/{model}.csv          per image: model, method, sample_id, target, level, value (the share)
    robustness/scores/{model}.json         clean and robust accuracy, attack, seconds
    tables/robustness_scales.{csv,md,tex}  per model and method: accuracies and each level's mean share with a
                                           bootstrap 95 % interval; the Spearman value per method
    figures/robustness_scales.png          grouped bars (one colour per model), one panel per method

Stage script: ``python -m workflow.scripts.experiments.robustness {prepare,model,evaluate,table} ...``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wam import WAM, transform
from wam.utils import pick_device
from workflow.lib import data, files, training
from workflow.lib.config import Config
from workflow.lib.data import textures
from workflow.lib.data.base import Split
from workflow.lib.models import robust
from workflow.lib.models.preprocessing import ImagePreprocessing
from workflow.lib.reporting.figures import fit_title, save
from workflow.lib.reporting.tables import summarise
from workflow.lib.training import adversarial

TEXTURES = "textures"
CHECKPOINT_SOURCES = ("robustbench", "url", "path")
DEFAULT_ATTACK = {"random_init": True}
DEFAULT_TRAINING = {"epochs": 10, "batch_size": 32, "lr": 0.003, "seed": 0, "steps": 3, "step_size": None,
                    "replay": 4, "width": 16}
IMAGE_PREPROCESSING = "timm:resnet50.tv_in1k"  # Resize(256, bilinear) + CenterCrop(224): RobustBench's Res256Crop224


# ----------------------------------------------------------------------------- configuration


def settings(config: Config) -> dict:
    """The ``robustness`` section (validated by ``schema.yaml``: types, ranges, training kinds) completed with its
    defaults, and checked for what the schema cannot say: ``ValueError`` naming the key (``robustness.data``,
    ``robustness.methods``, ``robustness.models.X.path`` ...)."""
    if "robustness" not in config:
        raise ValueError("robustness: section missing from the configuration")
    section = dict(config.section("robustness"))
    data = textures.data_source(config, "robustness")
    attack = {**DEFAULT_ATTACK, **section.get("attack", {})}
    methods = section.get("methods", [])
    if not methods:
        raise ValueError("robustness.methods: expected at least one WAM method of `methods`")
    wam_methods = [k for k, v in config.methods.items() if v.kind == "wam"]
    for m in methods:
        if m not in wam_methods:
            raise ValueError(f"robustness.methods: {m!r} is not a WAM entry of `methods` (those: {wam_methods})")
    training = {**DEFAULT_TRAINING, **section.get("training", {})}
    seeds = [int(v) for v in section.get("seeds") or [training["seed"]]]
    if training["step_size"] is None:
        training["step_size"] = 2.5 * float(attack["epsilon"]) / max(1, int(training["steps"]))
    entries = section.get("models", {})
    if not entries:
        raise ValueError("robustness.models: expected at least one model")
    for name, entry in entries.items():
        check_model(name, entry, data)
    wavelet = section.get("wavelet") or config.section("wavelet")["images"]
    return {**section, "data": data, "attack": attack, "methods": list(methods), "training": training,
            "seeds": seeds, "models": entries, "wavelet": wavelet, "n_inputs": section.get("n_inputs"),
            "batch_size": int(section.get("batch_size", 64))}


def check_model(name: str, entry: dict, data: str) -> None:
    """One entry of ``robustness.models``: a known ``training`` kind, at most one checkpoint source, an existing
    ``path``; a model without a checkpoint is trained, which needs the offline set."""
    key = f"robustness.models.{name}"
    sources = [s for s in CHECKPOINT_SOURCES if entry.get(s)]
    if len(sources) > 1:
        raise ValueError(f"{key}: give one of {CHECKPOINT_SOURCES}, got {sources}")
    if "robustbench" in sources and entry["robustbench"] not in robust.ROBUSTBENCH:
        raise ValueError(f"{key}.robustbench: {entry['robustbench']!r} not in {sorted(robust.ROBUSTBENCH)}")
    if "path" in sources and not Path(entry["path"]).is_file():
        raise ValueError(f"{key}.path: checkpoint file {entry['path']} not found")
    if not sources and data != TEXTURES:
        raise ValueError(f"{key}: no checkpoint ({', '.join(CHECKPOINT_SOURCES)}); only models of the offline "
                         f"set ({TEXTURES}) are trained by the workflow")


def is_trained(entry: dict) -> bool:
    """True for a model the DAG trains (no checkpoint source)."""
    return not any(entry.get(s) for s in CHECKPOINT_SOURCES)


def model_seeds(rb: dict, name: str) -> list[int]:
    """The training seeds of model ``name``: ``robustness.seeds`` for a model the DAG trains; a checkpoint is one
    model, filed under the first seed."""
    return rb["seeds"] if is_trained(rb["models"][name]) else rb["seeds"][:1]


def model_order(rb: dict) -> list[str]:
    """Model names in table order: by training kind (``erm, madry, fast, free``), then by name (the resolved
    config file that the stages read has its keys sorted, so the YAML order is not available)."""
    return sorted(rb["models"], key=lambda m: (adversarial.KINDS.index(rb["models"][m]["training"]), m))


# ----------------------------------------------------------------------------- data


def prepare(config: Config, out: Path) -> None:
    """Write the offline set (``robustness.data: textures``) under ``resources`` and record it in ``out``."""
    rb = settings(config)
    if rb["data"] != TEXTURES:
        raise ValueError(f"robustness.data: {rb['data']!r} is prepared by the prepare_data rule, not here")
    path = textures.prepare(config.resources)
    files.write_json(out, {"file": str(path), "sha256": files.file_digest(path),
                           "provenance": files.provenance(stage="robustness_prepare")})


def evaluation_data(config: Config) -> tuple[Split, Split]:
    """``(accuracy set, explained set)``, images in [0, 1] ``[N, C, H, W]``."""
    rb = settings(config)
    resources = config.resources
    if rb["data"] == TEXTURES:
        test = textures.load(resources, "test")
        n = rb["n_inputs"] or len(test)
        idx = data.balanced_subset(test.y, int(n), config.seed)
        return test, data.take(test, idx)
    spec = config.datasets[rb["data"]]
    if rb["n_inputs"]:
        spec = dataclasses.replace(spec, n_inputs=rb["n_inputs"])
    # in [0, 1]: the models normalise themselves
    split = data.load(spec, "test", resources, preprocessing=ImagePreprocessing.of(IMAGE_PREPROCESSING))
    return split, split


# ----------------------------------------------------------------------------- models


def build_model(config: Config, name: str, seed: int, out: Path) -> dict:
    """Train model ``name`` on the offline set with training seed ``seed``, or fetch its checkpoint; write ``out``
    (see module doc)."""
    rb = settings(config)
    entry = rb["models"][name]
    key = f"robustness.models.{name}"
    device = pick_device(config.device)
    start, cpu = time.perf_counter(), time.process_time()
    source = next((s for s in CHECKPOINT_SOURCES if entry.get(s)), None)
    if source is None:
        tr = rb["training"]
        train = textures.load(config.resources, "train")
        kwargs = {"n_classes": train.n_classes, "in_channels": int(train.x.shape[1]), "width": int(tr["width"])}
        torch.manual_seed(seed)
        model = robust.build("texture_cnn", **kwargs)
        adversarial.train(model, train.x, train.y, train.n_classes, entry["training"],
                              epsilon=float(rb["attack"]["epsilon"]), step_size=float(tr["step_size"]),
                              steps=int(tr["steps"]), epochs=int(tr["epochs"]), batch_size=int(tr["batch_size"]),
                              lr=float(tr["lr"]), seed=seed, replay=int(tr["replay"]), device=device,
                              key=f"{key}.training")
        meta = {"source": "trained", "training": entry["training"], "settings": tr, "seed": seed,
                "epsilon": rb["attack"]["epsilon"], "seconds": time.perf_counter() - start,
                "cpu_seconds": time.process_time() - cpu}
        robust.save(out, "texture_cnn", kwargs, meta, model=model.cpu())
    else:
        if source == "path":
            path, digest = Path(entry["path"]), files.file_digest(entry["path"])
            if entry.get("sha256") and digest != entry["sha256"]:
                raise ValueError(f"{key}.sha256: {path} has sha256 {digest}, expected {entry['sha256']}")
        else:
            url = robust.ROBUSTBENCH[entry["robustbench"]] if source == "robustbench" else entry["url"]
            cache = config.resources / "robustness" / "checkpoints" / f"{name}.pt"
            path, digest = robust.fetch(url, cache, entry.get("sha256"), key)
        robust.resnet50_state_dict(path, key)  # fails now, naming the entry, if it is no ResNet-50
        meta = {"source": source, "training": entry["training"], "checkpoint": str(path), "sha256": digest,
                "pinned": bool(entry.get("sha256")), "seconds": time.perf_counter() - start}
        robust.save(out, "resnet50", {}, meta, weights={"path": str(path), "sha256": digest})
    files.write_json(Path(f"{out}.provenance.json"), files.provenance(
        stage="robustness_model", model=name, entry=entry, device_used=str(device), **{"seed": seed, **meta}))
    return meta


# ----------------------------------------------------------------------------- measurements


def explain_shares(config: Config, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, method: str
                   ) -> torch.Tensor:
    """Scale shares ``[N, levels + 1]`` (CPU) of ``model`` on ``x`` for ``y`` with the WAM entry ``method``."""
    rb = settings(config)
    options = {**config.methods[method].options_for("images"), "aggregation": "paper"}
    device = next(model.parameters()).device
    explainer = WAM(model, ndim=2, batch_size=rb["batch_size"], seed=config.seed, **rb["wavelet"], **options)
    return explainer(x.to(device), y.to(device)).scale_shares().cpu()


def accuracies(config: Config, model: torch.nn.Module, split: Split) -> dict:
    """Clean and PGD accuracy of ``model`` on ``split`` (``robustness.attack``)."""
    rb = settings(config)
    attack, bs = rb["attack"], rb["batch_size"]
    clean = training.predict(model, split.x, bs) == split.y
    adv = adversarial.pgd(model, split.x, split.y, split.n_classes, epsilon=float(attack["epsilon"]),
                              step_size=float(attack["step_size"]), steps=int(attack["steps"]), batch_size=bs,
                              seed=config.seed, random_init=bool(attack["random_init"]))
    robust = training.predict(model, adv, bs) == split.y
    return {"clean_accuracy": clean.float().mean().item(), "robust_accuracy": robust.float().mean().item(),
            "n_accuracy": len(split), "attack": attack}


def evaluate(config: Config, name: str, seed: int, model_path: Path, scores: Path, summary: Path) -> None:
    """Accuracies and per-image scale shares of model ``name`` trained with ``seed``: ``scores`` (CSV) and
    ``summary`` (JSON). The attack and the explanations use the configuration's ``seed`` whatever the model's."""
    rb = settings(config)
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    start, cpu = time.perf_counter(), time.process_time()
    model, meta = robust.load(model_path)
    model = model.to(device).eval()
    acc_split, explained = evaluation_data(config)
    result = accuracies(config, model, acc_split)
    names = transform.level_names(rb["wavelet"]["levels"])
    rows = []
    for method in rb["methods"]:
        shares = explain_shares(config, model, explained.x, explained.y, method)
        for i, sample in enumerate(explained.ids):
            rows += [(name, seed, method, sample, int(explained.y[i]), level, float(shares[i, j]))
                     for j, level in enumerate(names)]
    frame = pd.DataFrame(rows, columns=["model", "seed", "method", "sample_id", "target", "level", "value"])
    files.write_csv(frame, scores)
    seconds = time.perf_counter() - start
    files.write_json(summary, {**result, "model": name, "seed": seed, "training": rb["models"][name]["training"],
                            "n_explained": len(explained), "seconds": seconds,
                            "cpu_seconds": time.process_time() - cpu})
    for path in (scores, summary):
        files.write_json(Path(f"{path}.provenance.json"), files.provenance(
            stage="robustness_evaluate", model=name, model_meta=meta, robustness=config.section("robustness"),
            methods={m: config.raw["methods"][m] for m in rb["methods"]}, seed=config.seed,
            device_used=str(device), seconds=seconds))


# ----------------------------------------------------------------------------- table and figure


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation of ``a`` and ``b`` (scipy); NaN when undefined (< 3 models or a constant list)."""
    from scipy.stats import spearmanr

    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def summary_table(config: Config, score_files: list[Path], summary_files: list[Path]) -> pd.DataFrame:
    """One row per (model, method, level) over the training seeds (``robustness.seeds``).

    - ``mean``, ``ci_low``, ``ci_high``: the level's share, mean over images of each image's mean over seeds, with a
      bootstrap 95 % interval over images; ``sd_seeds``: the seed-to-seed standard deviation (ddof = 1) of the
      per-seed mean share (0 with one seed); ``n_seeds``;
    - ``clean_accuracy``, ``robust_accuracy``, ``coarse_share`` (approximation + coarsest level): means over seeds,
      each with its ``*_sd``;
    - ``spearman_robust_coarse``: per seed, Spearman(robust accuracy, coarse share) across the models (a checkpoint,
      one model for every seed, enters each seed with its one value); its mean over seeds, ``spearman_sd``,
      ``spearman_seeds`` (each seed's value) and ``spearman_positive`` (how many seeds give rho > 0).
    """
    rb = settings(config)
    scores = pd.concat([pd.read_csv(f) for f in score_files], ignore_index=True)
    acc = pd.DataFrame([files.read_config(f) for f in summary_files])[
        ["model", "seed", "clean_accuracy", "robust_accuracy", "n_accuracy"]]
    names = transform.level_names(rb["wavelet"]["levels"])
    per_image = scores.groupby(["model", "method", "level", "sample_id"], as_index=False)["value"].mean()
    table = summarise(per_image, ["model", "method", "level"], config.section("evaluation")["bootstrap"], config.seed)
    per_seed = scores.groupby(["model", "method", "level", "seed"])["value"].mean()
    spread = per_seed.groupby(["model", "method", "level"]).agg(sd_seeds=_sd, n_seeds="count").reset_index()
    coarse = scores[scores["level"].isin(names[-2:])].groupby(["model", "seed", "method", "sample_id"])["value"].sum()
    coarse = coarse.groupby(["model", "seed", "method"]).mean().rename("coarse_share").reset_index()
    per_model_seed = coarse.merge(acc, on=["model", "seed"])
    means = per_model_seed.groupby(["model", "method"]).agg(
        clean_accuracy=("clean_accuracy", "mean"), clean_accuracy_sd=("clean_accuracy", _sd),
        robust_accuracy=("robust_accuracy", "mean"), robust_accuracy_sd=("robust_accuracy", _sd),
        n_accuracy=("n_accuracy", "first"), coarse_share=("coarse_share", "mean"),
        coarse_share_sd=("coarse_share", _sd)).reset_index()
    table = table.merge(spread, on=["model", "method", "level"]).merge(means, on=["model", "method"])
    rho = spearman_per_seed(per_model_seed, rb)
    for column in ("spearman_robust_coarse", "spearman_sd", "spearman_seeds", "spearman_positive"):
        table[column] = table["method"].map({m: r[column] for m, r in rho.items()})
    table.insert(1, "label", table["model"].map(lambda m: rb["models"][m].get("label", m)))
    table.insert(2, "training", table["model"].map(lambda m: rb["models"][m]["training"]))
    table["epsilon"] = float(rb["attack"]["epsilon"])
    order = {"model": model_order(rb), "method": rb["methods"], "level": names}
    return table.sort_values(["method", "model", "level"], key=lambda s: s.map(order[s.name].index)
                             ).reset_index(drop=True)


def _sd(values: pd.Series) -> float:
    """Seed-to-seed standard deviation (ddof = 1); 0 for a single seed."""
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def spearman_per_seed(per_model_seed: pd.DataFrame, rb: dict) -> dict[str, dict]:
    """Per method: Spearman(robust accuracy, coarse share) across models for each training seed, and its summary
    (``spearman_robust_coarse`` the mean over seeds, ``spearman_sd``, ``spearman_seeds``, ``spearman_positive``).
    A model with fewer seeds (a checkpoint) enters every seed with its first one."""
    out = {}
    for method in rb["methods"]:
        part = per_model_seed[per_model_seed["method"] == method]
        values = []
        for seed in rb["seeds"]:
            rows = [g[g["seed"] == seed].iloc[0] if (g["seed"] == seed).any() else g.iloc[0]
                    for _, g in part.groupby("model", sort=True)]
            values.append(spearman([float(r["robust_accuracy"]) for r in rows],
                                   [float(r["coarse_share"]) for r in rows]))
        finite = [v for v in values if math.isfinite(v)]
        out[method] = {
            "spearman_robust_coarse": float(np.mean(finite)) if finite else float("nan"),
            "spearman_sd": float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0,
            "spearman_seeds": " ".join("nan" if not math.isfinite(v) else f"{v:+.2f}" for v in values),
            "spearman_positive": sum(v > 0 for v in finite)}
    return out


def caption(config: Config, table: pd.DataFrame, method: str) -> str:
    rb = settings(config)
    label = config.methods[method].label
    levels = rb["wavelet"]["levels"]
    part = table[table["method"] == method]
    first = part.iloc[0]
    rho, n_seeds = first["spearman_robust_coarse"], len(rb["seeds"])
    rho_text = (f"{rho:+.2f} ± {first['spearman_sd']:.2f} over {n_seeds} training seed(s) (per seed: "
                f"{first['spearman_seeds']}; positive in {int(first['spearman_positive'])} of {n_seeds})"
                if math.isfinite(rho) else "undefined (fewer than 3 models, or a constant column)")
    n = int(first["n"])
    return (f"Scale shares under {label} ({rb['wavelet']['wavelet']}, {levels} levels; mean over {n} images and "
            f"{n_seeds} training seed(s) ± the seed-to-seed standard deviation [bootstrap 95 % interval over the "
            f"images]). Share of a level = sum of |WAM attribution| (channel mean) over its detail coefficients (the "
            f"approximation: over its coefficients), divided by the sum over all levels and the approximation, per "
            f"image (wam.Explanation.scale_shares); level 1 is the finest. Accuracies: mean ± sd over the seeds. "
            f"Robust accuracy: L-inf PGD, epsilon = {float(rb['attack']['epsilon']):.4g}, step "
            f"{float(rb['attack']['step_size']):.4g}, {int(rb['attack']['steps'])} steps (ART). Spearman(robust "
            f"accuracy, coarse share = approximation + level {levels}) across {table['model'].nunique()} models: "
            f"rho = {rho_text}. {erm_note(part)}").strip()


def erm_note(part: pd.DataFrame) -> str:
    """Whether the ERM models lean least on the coarse scales, and by more than the seed spread."""
    erm, adversarial = part[part["training"] == "erm"], part[part["training"] != "erm"]
    if erm.empty or adversarial.empty:
        return ""
    e = erm.drop_duplicates("model").iloc[0]
    rest = adversarial.drop_duplicates("model")
    gap = float((rest["coarse_share"] - e["coarse_share"]).min())
    noise = float(np.hypot(rest["coarse_share_sd"], e["coarse_share_sd"]).max())
    verdict = "larger" if gap > noise else "not larger"
    return (f"ERM's coarse share is below every adversarial model's by at least {gap:+.3f} (mean over seeds), "
            f"{verdict} than the seed spread ({noise:.3f}).")


def _markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def _pm(row: pd.Series, column: str) -> str:
    """``mean ± sd`` of ``column`` (its ``{column}_sd``)."""
    return f"{row[column]:.3f} ± {row[column + '_sd']:.3f}"


def _cells(table: pd.DataFrame, config: Config, method: str, fmt) -> tuple[list[str], list[list[str]]]:
    """Headers and rows (one per model) of one method's table; ``fmt(row)`` formats a share."""
    names = transform.level_names(settings(config)["wavelet"]["levels"])
    part = table[table["method"] == method]
    headers = ["Model", "Training", "Clean acc.", "Robust acc."] + [
        n.replace("level", "level ") + (" (finest)" if n == "level1" else "") for n in names] + ["Coarse share"]
    rows = []
    for model in dict.fromkeys(part["model"]):
        m = part[part["model"] == model].set_index("level")
        first = m.iloc[0]
        rows.append([str(first["label"]), str(first["training"]), _pm(first, "clean_accuracy"),
                     _pm(first, "robust_accuracy")] + [fmt(m.loc[n]) for n in names] + [_pm(first, "coarse_share")])
    return headers, rows


def markdown(config: Config, table: pd.DataFrame) -> str:
    blocks = []
    for method in settings(config)["methods"]:
        headers, rows = _cells(table, config, method, lambda r: f"{r['mean']:.3f} ± {r['sd_seeds']:.3f} "
                                                                f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
        blocks.append(_markdown(headers, rows) + "\nTable: " + caption(config, table, method) + "\n")
    return "\n".join(blocks)


def latex(config: Config, table: pd.DataFrame) -> str:
    blocks = []
    for method in settings(config)["methods"]:
        headers, rows = _cells(table, config, method, lambda r: f"{r['mean']:.3f}")
        esc = [[c.replace("_", "\\_").replace("%", "\\%").replace("±", "$\\pm$") for c in row]
               for row in [headers, *rows]]
        lines = ["\\begin{table}[t]", "\\centering", "\\begin{tabular}{ll" + "c" * (len(headers) - 2) + "}",
                 "\\toprule", " & ".join(esc[0]) + " \\\\", "\\midrule"]
        lines += [" & ".join(r) + " \\\\" for r in esc[1:]]
        lines += ["\\bottomrule", "\\end{tabular}",
                  "\\caption{" + caption(config, table, method).replace("%", "\\%").replace("_", "\\_")
                  .replace("±", "$\\pm$") + "}",
                  "\\end{table}"]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def figure(config: Config, table: pd.DataFrame, path: Path) -> None:
    """Grouped bars: one group per level (finest first, approximation last), one colour per model, CI whiskers;
    one panel per method."""
    from matplotlib.figure import Figure

    rb = settings(config)
    names = transform.level_names(rb["wavelet"]["levels"])
    shown = list(dict.fromkeys(table["model"]))
    fig = Figure(figsize=(4.6 * len(rb["methods"]) + 2.2, 3.6), layout="constrained")
    axes = fig.subplots(1, len(rb["methods"]), squeeze=False, sharey=True)
    width = 0.8 / len(shown)
    for ax, method in zip(axes[0], rb["methods"], strict=True):
        for k, model in enumerate(shown):
            part = table[(table["method"] == method) & (table["model"] == model)].set_index("level").loc[names]
            pos = np.arange(len(names)) + (k - (len(shown) - 1) / 2) * width
            err = np.stack([part["mean"] - part["ci_low"], part["ci_high"] - part["mean"]])
            ax.bar(pos, part["mean"], width, yerr=err, capsize=2, color=f"C{k}",
                   label=f"{part['label'].iloc[0]} (robust {part['robust_accuracy'].iloc[0]:.2f})")
        first = table.loc[table["method"] == method].iloc[0]
        rho = first["spearman_robust_coarse"]
        ax.set_xticks(np.arange(len(names)), ["level 1\n(finest)"] + [f"level {i}" for i in range(2, len(names))]
                      + ["approx."])
        ax.set_ylabel("share of WAM importance (levels sum to 1)", fontsize=8)
        fit_title(ax, f"{config.methods[method].label}: Spearman(robust acc., coarse share) = "
                  + (f"{rho:+.2f} ± {first['spearman_sd']:.2f} ({len(rb['seeds'])} seeds)"
                     if math.isfinite(rho) else "n/a"), fontsize=8)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right upper", fontsize=7, title="model (robust accuracy)",
               title_fontsize=7)
    fig.supxlabel("Bars: mean over the explained images of each image's mean share over the seeds; whiskers: "
                  "bootstrap 95 % interval over the images.",
                  fontsize=7)
    save(fig, path)


def write_tables(config: Config, score_files: list[Path], summary_files: list[Path], tables: Path, fig: Path) -> None:
    table = summary_table(config, score_files, summary_files)
    base = tables / "robustness_scales"
    files.write_csv(table, base.with_suffix(".csv"))
    files.write_text(base.with_suffix(".md"), markdown(config, table))
    files.write_text(base.with_suffix(".tex"), latex(config, table))
    figure(config, table, fig)
    for path in [base.with_suffix(".csv"), base.with_suffix(".md"), base.with_suffix(".tex"), fig]:
        files.write_json(Path(f"{path}.provenance.json"), files.provenance(
            stage="robustness_table", robustness=config.section("robustness"), seed=config.seed,
            bootstrap=config.section("evaluation")["bootstrap"], inputs=[str(f) for f in score_files + summary_files]))
