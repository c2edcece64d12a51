"""Randomisation sanity checks (target ``sanity``): does a map depend on the model and on the data it learned?

For every (data set, model) of the configuration, the first ``sanity.n_inputs`` evaluated inputs are explained by
each method of ``sanity.methods`` (plus ``sanity.extra_methods`` of the data set's modality), with the options of
``methods`` and ``sanity.options`` over them, by the workflow's own explain stage
(:func:`workflow.lib.attribution.explain`), which gives every map in both domains: ``pixel`` (pixels, log-mel bins,
voxels; WAM's heatmap) and ``wavelet`` (WAM's per-band magnitudes; a baseline's ``|W(a)|``). Then, per domain,
the similarity (:mod:`metrics.similarity`: Spearman of ``|map|``, SSIM) to the original map of:

- ``cascading`` (Adebayo et al., 2018): the maps of the model with its blocks re-initialised from the output
  backwards, cumulatively (:func:`metrics.randomisation.randomised_models`); ``step`` k = k blocks randomised,
  ``block`` the one randomised at that step;
- ``independent``: one block re-initialised at a time (``block`` = that one);
- ``random_logit`` (Sixt et al., 2020): the map of a random other class (:func:`metrics.randomisation.other_classes`,
  seeded per input position), on the original model;
- ``data`` (Adebayo et al., 2018, section 4): the map of the same architecture trained on shuffled labels
  (:func:`train_shuffled`; only the models the DAG trains: a pretrained model has no training run to repeat);
- ``emprt`` (Hedstroem et al., 2023): measure ``entropy_ratio``, the entropy of the fully randomised model's map over
  the original's (:func:`metrics.complexity.entropy`; the last cascading step is
  :func:`metrics.randomisation.randomise`'s model).

Blocks (:func:`model_blocks`): the model's top-level layers that hold re-initialisable weights, output first
(:func:`metrics.randomisation.default_blocks`), the largest container split into its children while the count
stays within ``sanity.max_blocks``. Block ``k`` is re-drawn with its layers' own initialisers, seeded with
``derive_seed(seed, k)`` (the run's ``seed``), the same in both orders. The order is written in every row
(``block``) and in the examples file.

Low similarity after randomisation is good: the map follows the model. The caption of every table says so.

Two stages (``python -m workflow.scripts.experiments.sanity {shuffled,run,report} ...``):

- ``shuffled`` -> ``sanity/models/{dataset}/{model}/model.pt``: the model trained on shuffled training (and
  validation) labels, with ``metrics.json`` (its test accuracy on the true labels: chance);
- ``run`` -> ``sanity/{dataset}/{model}/rows.csv``: one row per (method, domain, test, step, measure, input):
  ``dataset, model, method, domain, test, step, block, measure, sample_id, value, degenerate``;
  ``examples.pt``: the first input and each method's pixel map after every cascading step;
- ``report`` -> ``tables/randomisation.{csv,md}`` (mean over the inputs, bootstrap 95 % interval,
  :func:`summary`) and ``figures/randomisation_{modality}.png`` (:func:`figure`).

Example::

    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(2, 2, 3), nn.Conv2d(2, 2, 3)),
    ...                       nn.Flatten(), nn.Linear(8, 3))
    >>> model_blocks(model, max_blocks=3), model_blocks(model, max_blocks=4)
    (['4', '2', '0'], ['4', '2.1', '2.0', '0'])
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib
import pandas as pd
import torch
from matplotlib.figure import Figure
from tqdm.auto import tqdm

import baselines
from metrics import maps as metric_maps
from metrics.randomisation import ORDERS, default_blocks, entropy_ratio, other_classes, randomised_models, resettable
from metrics.similarity import SIMILARITIES, Reference
from wam.utils import pick_device
from workflow.lib import attribution, files, plugins, training
from workflow.lib.config import Config
from workflow.lib.data import load, model_inputs
from workflow.lib.models import zoo
from workflow.lib.reporting import tables
from workflow.lib.reporting.figures import save

DOMAINS = ("pixel", "wavelet")
TESTS = (*ORDERS, "random_logit", "data")
ROWS = ["dataset", "model", "method", "domain", "test", "step", "block", "measure", "sample_id", "value",
        "degenerate"]
TABLE = ["dataset", "modality", "model", "method", "label", "domain", "test", "step", "block", "measure", "n", "value",
         "ci_low", "ci_high", "degenerate"]
CAPTION = ("Randomisation sanity checks: similarity (Spearman of |map|, SSIM) of each method's map to its map on the "
           "original model, mean over the inputs [bootstrap 95 % CI]. Low similarity after randomisation is good: "
           "the map depends on the model's weights (cascading, independent), on the class explained (random_logit) "
           "and on the labels it learned (data). eMPRT (entropy of the fully randomised model's map / the "
           "original's): above 1 is good (the map of a random model is noisier).")


def settings(config: Config) -> dict:
    """The ``sanity`` section with its defaults, checked for what the schema cannot say (``ValueError`` naming
    the key): every method is a key of ``methods`` or a registered baseline, ``options`` name those methods."""
    if "sanity" not in config:
        raise ValueError("sanity: section missing from the configuration")
    spec = {"n_inputs": 4, "max_blocks": 8, "tests": list(TESTS), "extra_methods": {}, "options": {},
            "data_epochs": None, **config.section("sanity")}
    known = set(config.methods) | set(baselines.available())
    for key, names in [("sanity.methods", spec["methods"]),
                       *[(f"sanity.extra_methods.{m}", v) for m, v in spec["extra_methods"].items()]]:
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"{key}: {unknown} are neither keys of `methods` nor registered baselines "
                             f"({sorted(known)})")
    stray = sorted(set(spec["options"]) - known)
    if stray:
        raise ValueError(f"sanity.options: {stray} are neither keys of `methods` nor registered baselines")
    return spec


def methods_for(config: Config, modality: str) -> list[str]:
    """The methods run on a data set of ``modality``: ``sanity.methods``, then its ``extra_methods``."""
    spec = settings(config)
    return list(dict.fromkeys([*spec["methods"], *spec["extra_methods"].get(modality, [])]))


def method_config(config: Config, modality: str) -> Config:
    """``config`` whose ``methods`` are those run on ``modality``, with ``sanity.options`` over their own
    (:meth:`workflow.lib.config.Config.with_methods`)."""
    return config.with_methods(methods_for(config, modality), modality, settings(config)["options"])


def _expandable(module: torch.nn.Module) -> list[str]:
    """The names of ``module``'s re-initialisable children, when it is a pure container of at least two."""
    if list(module.parameters(recurse=False)) or callable(getattr(module, "reset_parameters", None)):
        return []
    names = [name for name, child in module.named_children() if resettable(child)]
    return names if len(names) > 1 else []


def model_blocks(model: torch.nn.Module, max_blocks: int) -> list[str]:
    """The blocks re-initialised one at a time, output side first: :func:`metrics.randomisation.default_blocks`,
    then, one level at a time while the count stays within ``max_blocks``, every block that is a pure container of
    several re-initialisable children replaced by them (in reverse registration order, which is the reverse of the
    forward order for sequential stages)."""
    blocks = default_blocks(model)
    while True:
        expanded = []
        for name in blocks:
            children = _expandable(model.get_submodule(name))
            expanded += [f"{name}.{c}" if name else c for c in reversed(children)] or [name]
        if expanded == blocks or len(expanded) > max_blocks:
            return blocks
        blocks = expanded


def shuffled_labels(y: torch.Tensor, seed: int) -> torch.Tensor:
    """``y`` ``[N]`` permuted by a ``torch.Generator`` seeded with ``seed``: the same labels, at random places."""
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))]


def train_shuffled(config: Config, dataset: str, model_name: str, out: Path) -> dict:
    """Train ``model_name`` on ``dataset`` as the ``train`` stage does (its ``training`` settings; epochs
    ``sanity.data_epochs`` when set) on shuffled training and validation labels (the permutation and the initial
    weights seeded by the training seed, so that a rerun gives the same weights);
    the test split keeps its true labels, so its accuracy is chance. Writes ``out/model.pt`` and
    ``out/metrics.json``; returns the metrics."""
    spec = config.datasets[dataset]
    model = config.model(dataset, model_name, epochs=settings(config)["data_epochs"])
    if model.pretrained:
        raise ValueError(f"--model: {model_name} is pretrained; data randomisation retrains the models the DAG trains")
    seed = model.training["seed"]
    train_split, val_split = (load(spec, s, config.resources) for s in ("train", "val"))
    train_split.y, val_split.y = shuffled_labels(train_split.y, seed), shuffled_labels(val_split.y, seed + 1)
    test = load(spec, "test", config.resources, subset=False)
    torch.manual_seed(seed)  # the initial weights, as the train stage draws them
    network = zoo.build(model_name, test.n_classes)
    meta = {"dataset": dataset, "model": model_name, "labels": "shuffled", "class_names": list(test.class_names)}
    return training.train(network, train_split, val_split, test, dict(model.training), Path(out), meta)


class Explainer:
    """``explain(model, x, y) -> {"pixel": [B, *spatial], "wavelet": [bands [B, *band]]}``: one method's maps in
    both domains from :func:`workflow.lib.attribution.explain` (channels summed), the random state reset to the
    run's seed before each call (SmoothGrad's noise is the same for every model)."""

    def __init__(self, config: Config, dataset: str, method: str) -> None:
        self.config, self.dataset, self.method = config, dataset, method

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
        torch.manual_seed(self.config.seed)
        out = attribution.explain(self.config, self.dataset, model, self.method, x, y, extras=False)
        return {"pixel": out["pixel"], "wavelet": metric_maps.reduce(out["wavelet"], x.cpu())}


def _split(m: metric_maps.Map, batch: int) -> tuple[metric_maps.Map, metric_maps.Map]:
    """A map of ``2 B`` rows as its first and last ``B`` rows."""
    if isinstance(m, torch.Tensor):
        return m[:batch], m[batch:]
    return [b[:batch] for b in m], [b[batch:] for b in m]


def randomisation_rows(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, ids: list[str], explain,
                       blocks: list[str], seed: int, tests: list[str], n_classes: int,
                       shuffled: torch.nn.Module | None = None, positions: list[int] | None = None
                       ) -> tuple[list[dict], dict]:
    """Per-input rows of every test of ``tests`` for one method (``explain`` as :class:`Explainer`), both domains,
    and the examples: ``{"maps": [steps + 1, *spatial]}`` the first input's pixel map after each cascading step.

    ``x`` ``[B, ...]`` (the model's input), ``y`` ``[B]``, ``ids`` ``B`` sample ids, ``positions`` their places in
    the evaluated set (default ``0 .. B-1``): the random other class of the input at position ``p`` is drawn with
    ``derive_seed(seed, p)``, so that an input's rows do not depend on the batch it is in. Rows: dicts with
    ``test, step, block, domain, measure, sample_id, value, degenerate`` (module docstring).
    """
    rows: list[dict] = []

    def add(test: str, step: int, block: str, domain: str, scores: dict) -> None:
        flags = scores.get("degenerate", torch.zeros(len(ids), dtype=torch.bool)).tolist()
        for measure, values in scores.items():
            if measure == "degenerate":
                continue
            rows.extend({"test": test, "step": step, "block": block, "domain": domain, "measure": measure,
                         "sample_id": sid, "value": float(v), "degenerate": bool(f)}
                        for sid, v, f in zip(ids, values.tolist(), flags, strict=True))

    original = explain(model, x, y)
    reference = {d: Reference(original[d], SIMILARITIES) for d in DOMAINS}
    shown = [original["pixel"][0]]
    for order in [t for t in ORDERS if t in tests]:
        for d in DOMAINS:
            add(order, 0, "-", d, reference[d](original[d]))
        for k, random_model in enumerate(randomised_models(model, blocks, seed, order)):
            maps = explain(random_model, x, y)
            for d in DOMAINS:
                add(order, k + 1, blocks[k], d, reference[d](maps[d]))
            if order == "cascading":
                shown.append(maps["pixel"][0])
        if order == "cascading":  # the last step is the fully randomised model: eMPRT
            for d in DOMAINS:
                add("emprt", len(blocks), "all", d, {"entropy_ratio": entropy_ratio(original[d], maps[d])})
    if "random_logit" in tests:
        other = other_classes(y, n_classes, seed, sample_ids=positions or list(range(len(ids))))
        both = explain(model, torch.cat([x, x]), torch.cat([y, other.to(y.device)]))
        for d in DOMAINS:
            mine, theirs = _split(both[d], len(ids))
            add("random_logit", 0, "-", d, Reference(mine, SIMILARITIES)(theirs))
    if "data" in tests and shuffled is not None:
        maps = explain(shuffled, x, y)
        for d in DOMAINS:
            add("data", 0, "-", d, reference[d](maps[d]))
    return rows, {"maps": torch.stack(shown).float()}


def inputs(config: Config, dataset: str, model: torch.nn.Module, n: int | None):
    """The first ``n`` evaluated inputs (``None``: all) as ``model`` sees them: ``(x, y, ids, n_classes, shown)``,
    ``shown`` the first input in the data's own space (images in [0, 1])."""
    data, x = model_inputs(dataclasses.replace(config, shards=1), dataset, model, 0)
    n = len(data) if n is None else min(n, len(data))
    return x[:n], data.y[:n], data.ids[:n], data.n_classes, data.x[0]


def run(config: Config, dataset: str, model_name: str, model_path: Path, shuffled_path: Path | None,
        rows_path: Path, examples_path: Path) -> pd.DataFrame:
    """Every test of ``sanity.tests`` for every method on one (data set, model): ``rows.csv`` and ``examples.pt``
    (module docstring). ``shuffled_path``: the model trained on shuffled labels (``None``: no ``data`` test)."""
    plugins.load(config.raw)
    spec = settings(config)
    device = pick_device(config.device)
    model = zoo.load(model_path).to(device).eval()
    modality = config.datasets[dataset].modality
    x, y, ids, n_classes, first = inputs(config, dataset, model, spec["n_inputs"])
    x, y = x.to(device), y.to(device)
    shuffled = zoo.load(shuffled_path).to(device).eval() if shuffled_path else None
    blocks = model_blocks(model, spec["max_blocks"])
    mconfig = method_config(config, modality)
    records, examples = [], {}
    for method in tqdm(mconfig.methods, desc=f"sanity {dataset}/{model_name}", unit="method"):
        rows, shown = randomisation_rows(model, x, y, ids, Explainer(mconfig, dataset, method), blocks, config.seed,
                                         spec["tests"], n_classes, shuffled)
        records += [{"dataset": dataset, "model": model_name, "method": method, **r} for r in rows]
        examples[method] = shown["maps"].half()
    table = pd.DataFrame(records, columns=ROWS)
    files.write_csv(table, rows_path)
    labels = {m: s.label for m, s in mconfig.methods.items()}
    with files.atomic_path(examples_path) as tmp:
        torch.save({"dataset": dataset, "model": model_name, "modality": modality, "blocks": blocks,
                    "input": first.float(), "sample_id": ids[0], "maps": examples, "labels": labels}, tmp)
    for path in (rows_path, examples_path):
        files.write_json(Path(f"{path}.provenance.json"), files.provenance(
            stage="sanity", dataset=dataset, model=str(model_path), shuffled=str(shuffled_path), sanity=spec,
            blocks=blocks, methods={m: dataclasses.asdict(s) for m, s in mconfig.methods.items()},
            seed=config.seed, device_used=str(device)))
    return table


# ----------------------------------------------------------------------------------------------- report


def summary(rows: pd.DataFrame, config: Config, labels: dict[str, str], resamples: int, seed: int) -> pd.DataFrame:
    """The table: one row per (dataset, model, method, domain, test, step, block, measure): ``n`` inputs, ``value``
    (their mean), its bootstrap 95 % interval and the count of ``degenerate`` (constant) maps; methods in
    ``labels``' order, tests in :data:`TESTS` order then ``emprt``."""
    table = tables.summarise(rows, ["dataset", "model", "method", "domain", "test", "step", "block", "measure"],
                             resamples, seed).rename(columns={"mean": "value"})
    table["modality"] = table["dataset"].map({d: s.modality for d, s in config.datasets.items()})
    table["label"] = table["method"].map(labels)
    order = {**{m: i for i, m in enumerate(labels)}, **{t: i for i, t in enumerate((*TESTS, "emprt"))},
             **{d: i for i, d in enumerate(DOMAINS)}}
    keyed = ("method", "test", "domain")
    table = table.sort_values(["dataset", "model", "method", "domain", "test", "step", "measure"], kind="stable",
                              key=lambda s: s.map(order) if s.name in keyed else s)
    return table[TABLE].reset_index(drop=True)


def _fmt(row: pd.Series) -> str:
    return f"{row['value']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def headline(table: pd.DataFrame, first: str = "guided_backprop", second: str = "saliency") -> str:
    """Adebayo et al.'s result on each images model where both methods ran: the pixel-domain Spearman similarity
    of ``first`` and ``second`` after the full cascade."""
    part = table[(table["modality"] == "images") & (table["test"] == "cascading") & (table["domain"] == "pixel")
                 & (table["measure"] == "spearman")]
    lines = []
    for (dataset, model), group in part.groupby(["dataset", "model"], sort=False):
        last = group[group["step"] == group["step"].max()].set_index("method")
        if first in last.index and second in last.index:
            a, b = last.loc[first], last.loc[second]
            verdict = "stays above" if a["value"] > b["value"] else "does not stay above"
            lines.append(f"Adebayo et al.'s result on {dataset} / {model}: after the full cascade "
                         f"({int(a['step'])} blocks), {a['label']}'s Spearman similarity {_fmt(a)} {verdict} "
                         f"{b['label']}'s {_fmt(b)} (pixel domain).")
    return "\n".join(lines)


def table_markdown(table: pd.DataFrame, blocks: dict[tuple[str, str], list[str]]) -> str:
    """The caption, then per (data set, model): the cascading Spearman similarity at every step (both domains) and
    a summary of every test (full cascade, mean over the independent blocks, random logit, data, eMPRT)."""
    parts = [CAPTION, ""]
    summary_line = headline(table)
    if summary_line:
        parts += [summary_line, ""]
    for (dataset, model), group in table.groupby(["dataset", "model"], sort=False):
        order = blocks.get((dataset, model), [])
        data = "" if (group["test"] == "data").any() else " No data randomisation (pretrained: no training run)."
        parts.append(f"**{dataset} / {model}** ({group['modality'].iloc[0]}). Blocks, randomised in this order "
                     f"(output first): {', '.join(order) or '-'}.{data}")
        parts.append("")
        steps = group[(group["test"] == "cascading") & (group["measure"] == "spearman")]
        names = steps["block"].where(steps["step"] > 0, "original")
        steps = steps.assign(row=steps["label"] + " (" + steps["domain"] + ")",
                             column=steps["step"].map(lambda k: f"{int(k):02d}") + " " + names,
                             cell=steps["value"].map(lambda v: f"{v:.3f}"))
        if not steps.empty:
            parts += ["Cascading randomisation, Spearman similarity to the original map after each step:", "",
                      tables.markdown(steps, "row", ["column"])]
        parts += [_test_summary(group), ""]
    return "\n".join(parts)


def _test_summary(group: pd.DataFrame) -> str:
    """One row per (method, domain): the last cascading step, the independent steps' mean, random logit, data,
    eMPRT; Spearman and SSIM."""
    last = group[(group["test"] == "cascading") & (group["step"] == group["step"].max())].assign(test="full cascade")
    independent = group[(group["test"] == "independent") & (group["step"] > 0)]
    independent = independent.groupby(["label", "domain", "measure"], sort=False).agg(
        value=("value", "mean")).reset_index().assign(test="independent (mean over blocks)")
    rest = group[group["test"].isin(["random_logit", "data", "emprt"])]
    frame = pd.concat([last, rest, independent], ignore_index=True)
    frame = frame.assign(row=frame["label"] + " (" + frame["domain"] + ")",
                         cell=frame.apply(lambda r: f"{r['value']:.3f}" if pd.isna(r.get("ci_low")) else _fmt(r),
                                          axis=1))
    return ("Every test (value [bootstrap 95 % CI over the inputs]):\n\n"
            + tables.markdown(frame, "row", ["test", "measure"]))


def figure(table: pd.DataFrame, examples: list[dict], modality: str, path: Path) -> None:
    """Adebayo et al.'s figure for one modality: per model, the Spearman similarity (pixel domain solid, wavelet
    dashed) against the number of randomised blocks, one line per method; under it, for the first model, the
    first input and each method's map (one row per method) after each cascading step."""
    part = table[(table["modality"] == modality) & (table["test"] == "cascading") & (table["measure"] == "spearman")]
    models = list(dict.fromkeys(zip(part["dataset"], part["model"], strict=True)))
    shown = next((e for e in examples if (e["dataset"], e["model"]) == models[0]), None) if models else None
    methods = list(shown["maps"]) if shown else []
    columns = max(len(models), 1 + (len(shown["blocks"]) + 1 if shown else 0))
    rows = 1 + len(methods)
    fig = Figure(figsize=(max(1.3 * columns, 7), 3.2 + 1.25 * len(methods)))
    grid = fig.add_gridspec(rows, columns, height_ratios=[2.6] + [1] * len(methods))
    colours = dict(zip(dict.fromkeys(part["label"]), matplotlib.colormaps["tab10"].colors, strict=False))
    width = columns // max(len(models), 1)
    for i, (dataset, model) in enumerate(models):
        ax = fig.add_subplot(grid[0, i * width:(i + 1) * width])
        curves = part[(part["dataset"] == dataset) & (part["model"] == model)]
        for (label, domain), line in curves.groupby(["label", "domain"], sort=False):
            ax.plot(line["step"], line["value"], "-" if domain == "pixel" else "--", marker="o", ms=3,
                    color=colours[label], label=f"{label} ({domain})")
        ticks = curves.drop_duplicates("step").sort_values("step")
        ax.set_xticks(ticks["step"], [b if s else "original" for s, b in zip(ticks["step"], ticks["block"],
                                                                             strict=True)],
                      rotation=60, fontsize=6, ha="right")
        ax.axhline(0, color="0.7", lw=0.5)
        ax.set_ylim(min(-0.2, float(curves["value"].min()) - 0.05), 1.05)
        ax.set_ylabel("Spearman to the original map", fontsize=7)
        ax.set_title(f"{dataset} / {model}: cascading randomisation (output first)", fontsize=8)
        ax.legend(fontsize=5, ncol=2)
    if shown:
        image = fig.add_subplot(grid[1, 0])
        _show(image, shown["input"], f"input {shown.get('sample_id', '')}")
        for r, method in enumerate(methods):
            for step in range(shown["maps"][method].shape[0]):
                ax = fig.add_subplot(grid[1 + r, 1 + step])
                title = ("original" if step == 0 else shown["blocks"][step - 1]) if r == 0 else ""
                _show(ax, shown["maps"][method][step].abs(), title)
                if step == 0:
                    ax.set_ylabel(shown["labels"].get(method, method), fontsize=6)
    fig.suptitle(f"Randomisation sanity check, {modality}: low similarity after randomisation is good", fontsize=9)
    fig.tight_layout()
    save(fig, path)


def _show(ax, t: torch.Tensor, title: str) -> None:
    """An RGB image ``[3, H, W]``, a map ``[H, W]``, a volume's middle slice or a 1D signal, without ticks."""
    t = t.detach().float().cpu()
    if t.dim() == 4:  # a volume with its channel
        t = t[0]
    if t.dim() == 3 and t.shape[0] == 3:  # RGB, rescaled to [0, 1]
        t = ((t - t.min()) / (t.max() - t.min() + 1e-12)).permute(1, 2, 0)
    elif t.dim() == 3:  # a volume: its middle slice
        t = t[t.shape[0] // 2]
    if t.dim() == 1:
        ax.plot(t.numpy(), lw=0.3)
    elif t.dim() == 3:
        ax.imshow(t.numpy())
    else:  # a map: its colours clipped at its 99th percentile (Adebayo et al.'s display; a few peaks hide the rest)
        top = float(torch.quantile(t.flatten()[:: max(1, t.numel() // 100_000)], 0.99))
        wide = max(t.shape) > 3 * min(t.shape)  # a log-mel map: stretched
        ax.imshow(t.numpy(), cmap="hot", vmin=0, vmax=top if top > 0 else None, aspect="auto" if wide else "equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=6)


def report(config: Config, rows_paths: list[Path], examples_paths: list[Path], out: Path) -> pd.DataFrame:
    """``tables/randomisation.{csv,md}`` and ``figures/randomisation_{modality}.png`` under ``out``."""
    rows = pd.concat([pd.read_csv(p, keep_default_na=False) for p in rows_paths], ignore_index=True)
    rows["degenerate"] = rows["degenerate"].astype(str) == "True"
    examples = [torch.load(p, weights_only=False) for p in examples_paths]
    labels = {}
    for e in examples:
        labels.update(e["labels"])
    table = summary(rows, config, labels, config.section("evaluation")["bootstrap"], config.seed)
    blocks = {(e["dataset"], e["model"]): e["blocks"] for e in examples}
    tables.write(table, table_markdown(table, blocks), out / "tables", "randomisation")
    written = [out / "tables" / "randomisation.csv", out / "tables" / "randomisation.md"]
    for modality in dict.fromkeys(table["modality"]):
        path = out / "figures" / f"randomisation_{modality}.png"
        figure(table, examples, modality, path)
        written.append(path)
    for path in written:
        files.write_json(Path(f"{path}.provenance.json"), files.provenance(
            stage="sanity_report", rows=[str(p) for p in rows_paths], sanity=config.section("sanity"),
            bootstrap=config.section("evaluation")["bootstrap"], seed=config.seed))
    return table


def modalities(config: Config) -> list[str]:
    """The modalities of the configuration's data sets, in order (one figure each)."""
    return list(dict.fromkeys(spec.modality for spec in config.datasets.values()))


def shuffled_models(config: Config) -> list[tuple[str, str]]:
    """(data set, model) pairs that get a data-randomisation model: those the DAG trains, when ``data`` is tested."""
    if "data" not in settings(config)["tests"]:
        return []
    return [(d, m) for d, m in config.dataset_models() if not config.model(d, m).pretrained]
