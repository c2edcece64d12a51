"""The ``architectures`` target: Table 1's methods and metrics across model families (ResNet, ConvNeXt, ViT, Swin,
EfficientNet).

For every model of ``architectures.models``:

- **the model**: trained by the DAG on the offline texture set (:mod:`workflow.lib.data.textures`, 32x32 grey
  crops of five photographs) with the same budget for every family (``architectures.training``: Adam, ``epochs``
  fixed, ``batch_size``, ``lr``, ``seed``; :func:`workflow.lib.training.train`), or a pretrained ImageNet model
  (paper: timm's ``resnet50``, ``convnext_tiny``, ``vit_base_patch16_224``, ``swin_tiny_patch4_window7_224`` and
  Table 1's ``efficientnet_b0``), fetched once;
- **explained** by every method of ``architectures.methods`` (default: every entry of ``methods``) on
  ``n_inputs`` class-balanced test inputs, with the Table 1 code (:func:`workflow.lib.attribution.explain`): the
  CAMs find their layer and token reshape from the model's structure (:mod:`baselines.cam_target`), ``lrp`` takes
  the family's canonizer, AttnLRP (lxt) on the transformers (:mod:`baselines.lrp`);
- **scored** with Table 1's code (:class:`workflow.lib.scoring.ShardScorer`: insertion and deletion curves in both
  domains under ``evaluation.protocol`` (:func:`table_plan`), both AUCs, faithfulness; degenerate maps flagged;
  LRP's ``conservation_ratio``).

The table (:func:`summary_table`) keeps, for both domains, the same-domain cells: ``evaluation.protocol``, the paper
AUC ``sum(p) / (max(p) len(p))``, the wavelet domain ranked through ``evaluation.ranking`` for every method; each a
mean over the inputs with a bootstrap 95 % interval (:func:`workflow.lib.reporting.tables.summarise`) and the count
of degenerate (constant) maps. WAM's advantage (:func:`advantage`): per architecture and domain, the best WAM method
against the best baseline (each chosen by its mean faithfulness), the mean of their per-input difference with a
paired bootstrap 95 % interval; "ahead" or "behind" when the interval excludes 0, "tied" otherwise.

Data (``architectures.data``): ``textures`` (offline) or the key of an images data set of ``datasets`` (paper:
``images``, decoded with each model's own preprocessing). Texture models see ``(x - 0.5) / 0.2887`` (the crops
are histogram-equalised: uniform on [0, 1], whose sd is ``1 / sqrt(12)``), recorded as their preprocessing
(:data:`TEXTURE_PREPROCESSING`), so the evaluation perturbs the crops in [0, 1] and normalises after, as Table 1.

Outputs (atomic, with ``.provenance.json`` sidecars) under ``results/{name}/``::

    architectures/data.json                   the offline set and its provenance (offline only)
    architectures/models/{arch}/model.pt      the trained or fetched model (zoo checkpoint, preprocessing in meta)
    architectures/models/{arch}/metrics.json  training metrics: test accuracy (320 crops), epochs, seconds,
                                              cpu_seconds (the job's process, imports included)
    architectures/scores/{arch}.csv           per-sample scores (workflow.lib.scoring.SCORE_COLUMNS; model = arch)
    architectures/scores/{arch}.json          accuracy on the explained inputs, family, LRP canonizer, CAM targets,
                                              seconds per method, cpu_seconds (the job's process)
    architectures/scores/{arch}.pt            the first explained input and every method's map of it
    tables/architectures.{csv,md}             method x architecture x domain x metric; WAM's advantage;
                                              degenerate counts; LRP conservation per architecture
    figures/architectures.png                 the first input's maps, one row per architecture

Stage script: ``python -m workflow.scripts.experiments.architectures {prepare,model,evaluate,table} ...``.

Example (the verdict of a paired difference)::

    >>> verdict(0.02, 0.05), verdict(-0.01, 0.03), verdict(-0.2, -0.1)
    ('ahead', 'tied', 'behind')
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from types import MappingProxyType

import pandas as pd
import torch

import baselines
from wam.utils import pick_device
from workflow.lib import attribution, data, files, training
from workflow.lib.config import Config, DatasetSpec
from workflow.lib.data import textures
from workflow.lib.data.base import Split
from workflow.lib.models import zoo
from workflow.lib.models.preprocessing import ImagePreprocessing, preprocessing
from workflow.lib.reporting.figures import save
from workflow.lib.reporting.tables import bootstrap, lrp_conservation, summarise
from workflow.lib.scoring import SCORE_COLUMNS, ShardScorer, home_domain, same_domain_ranking

TEXTURES = "textures"
TEXTURE_PREPROCESSING = ImagePreprocessing(input_size=(1, textures.SIZE, textures.SIZE), interpolation="bilinear",
                                           crop_pct=1.0, crop_mode="center", mean=(0.5,), std=(0.2887,))
DEFAULT_TRAINING = {"epochs": 4, "batch_size": 32, "lr": 0.001, "seed": 0}
DEFAULT_N_INPUTS = 10
METRICS = ("faithfulness", "insertion", "deletion")
DOMAINS = ("pixel", "wavelet")
# WAM's advantage (rows of method ADVANTAGE, metric GAP): setting -> (WAM's domain, the baselines' domain)
SETTINGS = {"pixel": ("pixel", "pixel"), "wavelet": ("wavelet", "wavelet"), "table1": ("wavelet", "pixel")}
SETTING_TEXT = {"pixel": "both in the pixel domain", "wavelet": "both in the wavelet domain",
                "table1": "Table 1's setting (WAM wavelet, baselines pixel)"}
ADVANTAGE, GAP = "wam_advantage", "faithfulness_gap"
IMAGENET_CLASSES = 1000


# ----------------------------------------------------------------------------- configuration


def settings(config: Config) -> dict:
    """The ``architectures`` section (types and ranges: ``schema.yaml``) with its defaults, checked for what the
    schema cannot say (``ValueError`` naming the key): ``data`` is ``textures`` or an images data set; every method
    is an entry of ``methods``; every model name is known, trained on the texture set and pretrained (ImageNet) on
    an images data set."""
    if "architectures" not in config:
        raise ValueError("architectures: section missing from the configuration")
    section = dict(config.section("architectures"))
    source = textures.data_source(config, "architectures")
    methods = list(section.get("methods") or config.methods)
    unknown = [m for m in methods if m not in config.methods]
    if unknown or not methods:
        raise ValueError(f"architectures.methods: {unknown or methods} not entries of `methods` "
                         f"({list(config.methods)})")
    n_inputs = section.get("n_inputs", DEFAULT_N_INPUTS if source == TEXTURES else None)
    available = textures.N_TEST * len(textures.CLASSES)
    if source == TEXTURES and n_inputs is not None and n_inputs > available:
        raise ValueError(f"architectures.n_inputs: {n_inputs} > the {available} test crops of the texture set")
    models = dict(section.get("models") or {})
    if not models:
        raise ValueError("architectures.models: expected at least one model")
    for name, entry in models.items():
        check_model(name, entry, source)
    return {"data": source, "methods": methods, "n_inputs": n_inputs, "models": models,
            "training": {**DEFAULT_TRAINING, **(section.get("training") or {})}}


def check_model(name: str, entry: dict, source: str) -> None:
    """One entry of ``architectures.models``: a model name the zoo knows (or ``timm:<name>``), trained on the
    texture set and pretrained on ImageNet."""
    key = f"architectures.models.{name}.model"
    model = entry["model"]
    if not model.startswith(zoo.TIMM_PREFIX) and model not in zoo.available():
        raise ValueError(f"{key}: unknown model {model!r}; expected one of {zoo.available()} or timm:<name>")
    pretrained = zoo.is_pretrained(model)
    if source == TEXTURES and pretrained:
        raise ValueError(f"{key}: {model!r} is pretrained (ImageNet, 3 channels); the texture set needs a model the "
                         f"DAG trains (e.g. tiny_resnet) or architectures.data: the key of an images data set")
    if source != TEXTURES and not pretrained:
        raise ValueError(f"{key}: {model!r} is trained by the DAG, which it does only on the texture set "
                         f"(architectures.data: {TEXTURES}); give a pretrained model (timm:<name>)")


def preflight(config: Config) -> None:
    """The preflight's check of the pretrained models' weights (:func:`workflow.lib.data.checks.check_model`): a
    ``ValueError`` listing every model whose weights are neither cached nor downloadable (or whose download
    ``HF_HUB_OFFLINE`` forbids), naming its key."""
    from workflow.lib.data.checks import check_model as check_weights

    arch = settings(config)
    problems = [p for name, entry in arch["models"].items() if zoo.is_pretrained(entry["model"])
                for p in check_weights(arch["data"], entry["model"], where=f"architectures.models.{name}.model")]
    if problems:
        raise ValueError("\n- ".join(problems))


def _family(model: torch.nn.Module) -> str:
    """The model's family as LRP sees it (:func:`baselines.lrp.architecture`; zennit is imported here, not when the
    DAG is built)."""
    from baselines.lrp import architecture

    return architecture(model)


def label(arch: dict, name: str) -> str:
    return arch["models"][name].get("label", name)


def experiment_config(config: Config) -> Config:
    """``config`` with the data set the explanations and scores are filed under (:func:`workflow.lib.scoring`
    reads its modality): the texture set as an ``images`` data set, or the images data set with
    ``architectures.n_inputs``; one shard."""
    arch = settings(config)
    if arch["data"] == TEXTURES:
        spec = DatasetSpec(TEXTURES, "images", n_inputs=arch["n_inputs"], seed=config.seed)
    else:
        spec = dataclasses.replace(config.datasets[arch["data"]], **(
            {"n_inputs": arch["n_inputs"]} if arch["n_inputs"] else {}))
    return dataclasses.replace(config, shards=1, datasets=MappingProxyType({**config.datasets, spec.key: spec}))


# ----------------------------------------------------------------------------- data and models


def prepare(config: Config, out: Path) -> None:
    """Write the offline texture set under ``resources`` (idempotent) and record it in ``out``."""
    path = textures.prepare(config.resources)
    files.write_json(out, {"file": str(path), "sha256": files.file_digest(path),
                           "provenance": files.provenance(stage="architectures_prepare")})


def normalised(split: Split, pp: ImagePreprocessing) -> Split:
    return Split(pp.normalize()(split.x), split.y, split.ids, split.n_classes, split.class_names)


def build_model(config: Config, name: str, out_dir: Path) -> dict:
    """Train model ``name`` on the texture set (``architectures.training``, the same for every model; a fixed
    budget: no early stopping, the last epoch's weights) or fetch its pretrained weights; write
    ``out_dir/model.pt`` and ``out_dir/metrics.json``. Returns the metrics."""
    arch = settings(config)
    entry, out_dir = arch["models"][name], Path(out_dir)
    model_name = entry["model"]
    meta = {"architecture": name, "label": label(arch, name), "model": model_name}
    if arch["data"] == TEXTURES:
        train, test = textures.load(config.resources, "train"), textures.load(config.resources, "test")
        tr = arch["training"]
        torch.manual_seed(int(tr["seed"]))
        network = zoo.build(model_name, train.n_classes, in_channels=int(train.x.shape[1]))
        meta.update(preprocessing=TEXTURE_PREPROCESSING.as_dict(), class_names=list(train.class_names),
                    family=_family(network),
                    n_parameters=sum(p.numel() for p in network.parameters()))
        # the test split is also the "validation" of the history: with no early stopping, nothing is chosen on it
        test = normalised(test, TEXTURE_PREPROCESSING)
        metrics = training.train(network, normalised(train, TEXTURE_PREPROCESSING), test, test,
                                 {**tr, "patience": None, "threads": 1}, out_dir, meta)
        metrics["cpu_seconds"] = time.process_time()  # the job's process, imports included
        files.write_json(out_dir / "metrics.json", {**metrics, "provenance": files.provenance()})
        return metrics
    start = time.perf_counter()
    network = zoo.build(model_name, IMAGENET_CLASSES)  # downloads the weights once (timm's Hugging Face cache)
    meta.update(preprocessing=ImagePreprocessing.of(model_name).as_dict(),
                family=_family(network),
                n_parameters=sum(p.numel() for p in network.parameters()))
    metrics = {**meta, "test_accuracy": None, "epochs": 0, "seconds": time.perf_counter() - start}
    out_dir.mkdir(parents=True, exist_ok=True)
    zoo.save(network, out_dir / "model.pt", meta=metrics)
    files.write_json(out_dir / "metrics.json", {**metrics, "provenance": files.provenance()})
    return metrics


def explained_inputs(config: Config, model: torch.nn.Module) -> Split:
    """The explained inputs ``x [N, C, H, W]`` in [0, 1] (the data's own space): ``n_inputs`` class-balanced test
    crops of the texture set, or the images data set's evaluated inputs decoded with the model's preprocessing."""
    arch = settings(config)
    if arch["data"] == TEXTURES:
        test = textures.load(config.resources, "test")
        return data.take(test, data.balanced_subset(test.y, int(arch["n_inputs"] or len(test)), config.seed))
    split, _ = data.model_inputs(experiment_config(config), arch["data"], model, 0)
    return split


# ----------------------------------------------------------------------------- explain and score


def evaluate(config: Config, name: str, model_path: Path, scores_path: Path, summary_path: Path,
             maps_path: Path) -> None:
    """Explain the inputs with every method and score them (Table 1's code) for model ``name``; write the
    per-sample scores, the summary and the first input's maps (see the module docstring)."""
    arch = settings(config)
    cfg = experiment_config(config)
    dataset = TEXTURES if arch["data"] == TEXTURES else arch["data"]
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    model = zoo.load(model_path).to(device).eval()
    split = explained_inputs(config, model)
    x, y = preprocessing(model).normalize().to(device)(split.x.to(device)), split.y.to(device)
    frames, maps, cams, seconds = [], {}, {}, {}
    for method in arch["methods"]:
        start = time.perf_counter()
        out = attribution.explain(cfg, dataset, model, method, x, y)
        scorer = ShardScorer(cfg, dataset, name, model, method, split, out, device)
        with torch.no_grad():
            scorer.score_plan(table_plan(cfg, method))
            scorer.score_sums()
        frames.append(pd.DataFrame(scorer.rows, columns=SCORE_COLUMNS))
        maps[method] = out["pixel"][0]
        if "cam_target" in out:
            cams[method] = out["cam_target"]
        seconds[method] = time.perf_counter() - start
    with torch.no_grad():
        predicted = training.predict(model, x, config.section("evaluation")["batch_size"]).cpu()
    files.write_csv(pd.concat(frames, ignore_index=True), scores_path)
    summary = {"architecture": name, "label": label(arch, name), "model": arch["models"][name]["model"],
               "family": _family(model), "lrp": lrp_choice(config, model, arch["methods"]),
               "cam_targets": cams, "test_accuracy": model.meta.get("test_accuracy"),
               "eval_accuracy": float((predicted == split.y).float().mean()), "n_inputs": len(split),
               "n_parameters": sum(p.numel() for p in model.parameters()), "seconds": seconds,
               "cpu_seconds": time.process_time()}  # the job's process so far, imports included
    files.write_json(summary_path, summary)
    with files.atomic_path(maps_path) as tmp:
        torch.save({"id": split.ids[0], "x": split.x[0], "y": int(split.y[0]), "predicted": int(predicted[0]),
                    "class_names": list(split.class_names), "maps": maps}, tmp)
    for path in (scores_path, summary_path, maps_path):
        files.write_json(Path(f"{path}.provenance.json"), files.provenance(
            stage="architectures_evaluate", architecture=name, entry=arch["models"][name],
            methods={m: config.raw["methods"][m] for m in arch["methods"]},
            evaluation=config.section("evaluation"), wavelet=config.section("wavelet")["images"], seed=config.seed,
            device_used=str(device)))


def table_plan(config: Config, method: str) -> list[tuple[str, str, str]]:
    """The ``(protocol, domain, ranking)`` settings the table needs: ``evaluation.protocol`` in both domains, the
    wavelet domain ranked through ``evaluation.ranking``, the method's own domain first (where
    :meth:`~workflow.lib.scoring.ShardScorer.score_plan` also scores Faithfulness of Spectra and Input Fidelity).
    Table 1's other protocol is left out (a third of the scoring time).

    >>> config = Config.from_dict({"methods": {"wam_sg": {"kind": "wam"}, "saliency": {"kind": "baseline"}},
    ...     "evaluation": {"protocol": "reference", "ranking": "per_band"}})
    >>> table_plan(config, "wam_sg"), table_plan(config, "saliency")[0]
    ([('reference', 'wavelet', 'per_band'), ('reference', 'pixel', '-')], ('reference', 'pixel', '-'))
    """
    protocol, home = config.section("evaluation")["protocol"], home_domain(config, method)
    return [(protocol, d, same_domain_ranking(config, d)) for d in sorted(DOMAINS, key=lambda d: d != home)]


def lrp_choice(config: Config, model: torch.nn.Module, methods: list[str]) -> dict | None:
    """The family and canonizer ``lrp`` takes on ``model`` with its configured options (``None`` without lrp)."""
    if "lrp" not in methods:
        return None
    explainer = baselines.get("lrp", model, **config.methods["lrp"].options_for("images"))
    return {"family": explainer.family, "canonizer": explainer.canonizer_name, "composite": explainer.composite}


# ----------------------------------------------------------------------------- tables


def table_scores(config: Config, scores: pd.DataFrame) -> pd.DataFrame:
    """The same-domain Table 1 cells of every method: insertion, deletion, faithfulness, paper AUC, under
    ``evaluation.protocol``, in both domains (the wavelet domain ranked through ``evaluation.ranking``)."""
    protocol = config.section("evaluation")["protocol"]
    ranking = scores["domain"].map(lambda d: same_domain_ranking(config, d) if d in DOMAINS else None)
    keep = (scores["metric"].isin(METRICS) & (scores["auc"] == "paper") & (scores["protocol"] == protocol)
            & scores["domain"].isin(DOMAINS) & (scores["ranking"] == ranking))
    return scores[keep]


def summary_table(config: Config, scores: pd.DataFrame, summaries: list[dict]) -> pd.DataFrame:
    """One row per (architecture, method, domain, metric): ``n, mean, ci_low, ci_high, degenerate``
    (:func:`workflow.lib.reporting.tables.summarise` over the inputs), then WAM's advantage as rows of method
    :data:`ADVANTAGE` (:func:`advantage`; ``domain`` the setting, metric ``faithfulness_gap``, ``mean`` the gap,
    ``best_wam``, ``best_baseline``, ``verdict``); every row with its architecture's ``label``, ``model``,
    ``family``, ``n_parameters``, accuracies and LRP conservation (``lrp_canonizer``,
    ``conservation_median/min/max`` of ``sum(R) / f_y(x)``: :func:`workflow.lib.reporting.tables.lrp_conservation`;
    ``conservation_error``: the median of ``|sum(R) / f_y(x) - 1|``)."""
    arch = settings(config)
    resamples = config.section("evaluation")["bootstrap"]
    table = summarise(table_scores(config, scores), ["model", "method", "domain", "metric"], resamples, config.seed)
    table = pd.concat([table.rename(columns={"model": "architecture"}), advantage(config, scores)],
                      ignore_index=True)
    table.insert(2, "method_label", table["method"].map(
        {ADVANTAGE: "WAM's advantage", **{m: s.label for m, s in config.methods.items()}}))
    per_arch = pd.DataFrame([{
        "architecture": s["architecture"], "label": s["label"], "model": s["model"], "family": s["family"],
        "n_parameters": s["n_parameters"], "test_accuracy": s["test_accuracy"], "eval_accuracy": s["eval_accuracy"],
        "lrp_canonizer": (s["lrp"] or {}).get("canonizer")} for s in summaries])
    kept = lrp_conservation(scores, {}).rename(columns={"model": "architecture", "median": "conservation_median",
                                                        "min": "conservation_min", "max": "conservation_max"})
    ratios = scores[scores["metric"] == "conservation_ratio"]
    kept["conservation_error"] = kept["architecture"].map(
        (ratios["value"] - 1).abs().groupby(ratios["model"]).median())
    per_arch = per_arch.merge(kept[["architecture", "conservation_median", "conservation_min", "conservation_max",
                                    "conservation_error"]], on="architecture", how="left")
    table = table.merge(per_arch, on="architecture", how="left")
    order = {"architecture": list(arch["models"]), "method": [*arch["methods"], ADVANTAGE],
             "domain": list(SETTINGS), "metric": [*METRICS, GAP]}
    return table.sort_values(list(order), key=lambda s: s.map(order[s.name].index)).reset_index(drop=True)


def verdict(low: float, high: float) -> str:
    """``"ahead"`` when a 95 % interval of WAM's gap lies above 0, ``"behind"`` below, ``"tied"`` otherwise."""
    return "ahead" if low > 0 else "behind" if high < 0 else "tied"


def advantage(config: Config, scores: pd.DataFrame) -> pd.DataFrame:
    """WAM's advantage per architecture and setting of :data:`SETTINGS` (both methods in the pixel domain, both in
    the wavelet domain, and Table 1's: WAM in the wavelet domain, the baselines in the pixel domain): the best WAM
    method and the best baseline, each by its mean faithfulness in its domain, and the ``mean`` over the inputs of
    their per-input faithfulness difference with a paired bootstrap 95 % interval (``ci_low``, ``ci_high``) and
    its :func:`verdict`. Rows as :func:`summary_table`'s (``method`` :data:`ADVANTAGE`, ``metric`` :data:`GAP`);
    none without a WAM method or a baseline."""
    part = table_scores(config, scores)
    part = part[part["metric"] == "faithfulness"]
    kind = {m: s.kind for m, s in config.methods.items()}
    rows = []
    for name, group in part.groupby("model", sort=False):
        wide = {d: group[group["domain"] == d].pivot_table(index="sample_id", columns="method", values="value",
                                                            aggfunc="first") for d in DOMAINS}
        for setting, (wam_domain, baseline_domain) in SETTINGS.items():
            wams = [m for m in wide[wam_domain].columns if kind[m] == "wam"]
            others = [m for m in wide[baseline_domain].columns if kind[m] != "wam"]
            if not wams or not others:
                continue
            best_wam = wide[wam_domain][wams].mean().idxmax()
            best_baseline = wide[baseline_domain][others].mean().idxmax()
            gap = (wide[wam_domain][best_wam] - wide[baseline_domain][best_baseline]).dropna().to_numpy()
            mean, low, high = bootstrap(gap, config.section("evaluation")["bootstrap"], config.seed)
            rows.append({"architecture": name, "method": ADVANTAGE, "domain": setting, "metric": GAP, "n": len(gap),
                         "mean": mean, "ci_low": low, "ci_high": high, "best_wam": best_wam,
                         "best_baseline": best_baseline, "verdict": verdict(low, high)})
    return pd.DataFrame(rows, columns=["architecture", "method", "domain", "metric", "n", "mean", "ci_low", "ci_high",
                                       "best_wam", "best_baseline", "verdict"])


def _markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def _accuracy(value) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:.3f}"


def conclusion(table: pd.DataFrame) -> str:
    """The caption's answer, from the :data:`ADVANTAGE` rows: in each setting, on which architectures WAM is ahead,
    tied or behind, and whether its advantage holds across the families.

    >>> rows = pd.DataFrame({"method": ADVANTAGE, "label": ["A", "B"], "domain": "wavelet",
    ...                      "verdict": ["ahead", "tied"]})
    >>> conclusion(rows)
    "WAM's advantage does not hold across families: both in the wavelet domain: ahead on 1 (A), tied on 1 (B) of 2."
    """
    gaps = table[table["method"] == ADVANTAGE]
    if gaps.empty:
        return "WAM's advantage is undefined here: the methods include no WAM entry or no baseline."
    sentences = []
    for setting in SETTINGS:
        part = gaps[gaps["domain"] == setting]
        groups = {v: list(part.loc[part["verdict"] == v, "label"].astype(str)) for v in ("ahead", "tied", "behind")}
        said = ", ".join(f"{v} on {len(groups[v])} ({', '.join(groups[v])})" for v in groups if groups[v])
        if said:
            sentences.append(f"{SETTING_TEXT[setting]}: {said} of {len(part)}")
    everywhere = [SETTING_TEXT[d] for d, v in gaps.groupby("domain", sort=False)["verdict"] if (v == "ahead").all()]
    overall = (f"WAM's advantage holds across every family in {' and in '.join(everywhere)}" if everywhere else
               "WAM's advantage does not hold across families" if (gaps["verdict"] == "ahead").any() else
               "WAM is ahead on no family in any setting")
    return f"{overall}: " + "; ".join(sentences) + "."


def _cells(table: pd.DataFrame, methods: list[str], names: list[str], lower_is_better: bool) -> list[list[str]]:
    """Rows ``[label, mean [CI] per architecture]`` of one (domain, metric) part; each column's best mean bold."""
    best = table.groupby("architecture")["mean"].agg("min" if lower_is_better else "max")
    rows = []
    for method in methods:
        part = table[table["method"] == method].set_index("architecture")
        cells = []
        for a in names:
            if a not in part.index:
                cells.append("")
                continue
            r = part.loc[a]
            text = f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            cells.append(f"**{text}**" if r["mean"] == best[a] else text)
        rows.append([str(part["method_label"].iloc[0]) if len(part) else method] + cells)
    return rows


def markdown(config: Config, table: pd.DataFrame) -> str:
    """The models, then per domain and metric a method x architecture table (mean [95 % CI]; each column's best mean
    bold), WAM's advantage, the degenerate counts and LRP's conservation, then the caption."""
    arch = settings(config)
    names = [a for a in arch["models"] if a in set(table["architecture"])]
    per_arch = table.drop_duplicates("architecture").set_index("architecture").loc[names]
    labels = list(per_arch["label"].astype(str))
    method_label = {m: s.label for m, s in config.methods.items()}
    blocks = [_markdown(["Architecture", "Model", "Family", "Parameters", "Test acc.", "Acc. on explained"],
                        [[r.label, f"`{r.model}`", r.family, f"{int(r.n_parameters):,}", _accuracy(r.test_accuracy),
                          _accuracy(r.eval_accuracy)] for r in per_arch.itertuples()])]
    for domain in DOMAINS:
        for metric in METRICS:
            part = table[(table["domain"] == domain) & (table["metric"] == metric)]
            if not part.empty:
                lower = metric == "deletion"
                blocks.append(f"**{metric.title()}, {domain} domain** ({'lower' if lower else 'higher'} is better)\n\n"
                              + _markdown(["Method"] + labels, _cells(part, arch["methods"], names, lower)))
    gaps = table[table["method"] == ADVANTAGE]
    if not gaps.empty:
        blocks.append("**WAM's advantage**: faithfulness of the best WAM method minus that of the best baseline, mean "
                      "over the inputs [paired bootstrap 95 % CI]\n\n" + _markdown(
                          ["Architecture", "Setting", "Best WAM", "Best baseline", "Gap [95 % CI]", "Verdict"],
                          [[r.label, SETTING_TEXT[r.domain], method_label[r.best_wam], method_label[r.best_baseline],
                            f"{r.mean:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]", r.verdict]
                           for r in gaps.itertuples()]))
    counts = table[table["metric"] == "faithfulness"].set_index(["method", "architecture", "domain"])
    blocks.append("**Degenerate (constant) maps**, pixel / wavelet domain, of n inputs\n\n" + _markdown(
        ["Method"] + [f"{r.label} (n = {int(r.n)})" for r in per_arch.itertuples()],
        [[method_label[m]] + [" / ".join(str(int(counts.loc[(m, a, d), "degenerate"])) if (m, a, d) in counts.index
                                          else "-" for d in DOMAINS) for a in names] for m in arch["methods"]]))
    if per_arch["conservation_median"].notna().any():
        blocks.append("**LRP conservation**: sum of the input relevance / target logit over the inputs (1 = nothing "
                      "lost)\n\n" + _markdown(
                          ["Architecture", "Family", "Canonizer", "Median", "Min", "Max", "Median abs(ratio - 1)"],
                          [[r.label, r.family, str(r.lrp_canonizer), f"{r.conservation_median:.3f}",
                            f"{r.conservation_min:.3f}", f"{r.conservation_max:.3f}", f"{r.conservation_error:.3f}"]
                           for r in per_arch.itertuples()]))
    return "\n".join(blocks) + "\nTable: " + caption(config, table) + "\n"


def caption(config: Config, table: pd.DataFrame) -> str:
    """What the table shows, its answer (:func:`conclusion`) and the degenerate maps."""
    arch = settings(config)
    evaluation = config.section("evaluation")
    n = int(table["n"].max())
    tr = arch["training"]
    data_text = (f"{n} class-balanced test crops of the offline texture set (32x32, grey), models trained by the DAG "
                 f"with the same budget ({tr['epochs']} epochs, Adam, lr {tr['lr']}, batch {tr['batch_size']})"
                 if arch["data"] == TEXTURES else f"{n} images of datasets.{arch['data']}, pretrained ImageNet models")
    degenerate = table[table["metric"] == "faithfulness"]
    named = [f"{r.method_label} on {r.label} ({int(r.degenerate)} of {int(r.n)}, {r.domain} domain)"
             for r in degenerate.itertuples() if r.degenerate > 0]
    return (f"Table 1's metrics across architectures: {data_text}. Mean over the inputs [bootstrap 95 % CI, "
            f"{evaluation['bootstrap']} resamples]; paper AUC sum(p) / (max(p) len(p)), `{evaluation['protocol']}` "
            f"protocol, {evaluation['steps']} steps; every method in both domains (wavelet maps ranked "
            f"{evaluation['ranking']}). {conclusion(table)} The best WAM method and the best baseline are each picked "
            f"by their mean, so the gap's interval does not account for that choice. "
            + (f"Degenerate (constant) maps, kept in the means: {'; '.join(named)}." if named else
               "No map is degenerate (constant).")
            + " LRP's canonizer per architecture is in the conservation table (attnlrp: AttnLRP as lxt configures it "
              "for vision transformers, conservative propagation in the attention).")


# ----------------------------------------------------------------------------- figure


def figure(config: Config, examples: dict[str, dict], table: pd.DataFrame, path: Path) -> None:
    """One row per architecture: the first explained input and each method's map of it (pixel domain, channels
    summed), each panel titled and with its colour bar (signed maps on a symmetric diverging scale)."""
    from matplotlib.figure import Figure

    arch = settings(config)
    names = [a for a in arch["models"] if a in examples]
    method_label = {m: s.label for m, s in config.methods.items()}
    per_arch = table.drop_duplicates("architecture").set_index("architecture")
    cols = 1 + len(arch["methods"])
    fig = Figure(figsize=(1.75 * cols, 1.6 * len(names) + 0.4))
    axes = fig.subplots(len(names), cols, squeeze=False)
    for row, name in zip(axes, names, strict=True):
        ex = examples[name]
        image = ex["x"].float()
        image = image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)
        im = row[0].imshow(image.numpy(), cmap="gray" if image.dim() == 2 else None)
        fig.colorbar(im, ax=row[0], fraction=0.046, pad=0.02).ax.tick_params(labelsize=4)
        row[0].set_title(f"{per_arch.loc[name, 'label']}: input\n{ex['class_names'][ex['y']]}, predicted "
                         f"{ex['class_names'][ex['predicted']]}", fontsize=5)
        for ax, method in zip(row[1:], arch["methods"], strict=True):
            a = ex["maps"][method].float()
            a = a if a.dim() == 2 else a.mean(0)
            low, high = float(a.min()), float(a.max())
            if low < 0:
                bound = max(-low, high, 1e-12)
                im = ax.imshow(a.numpy(), cmap="RdBu_r", vmin=-bound, vmax=bound)
            else:
                im = ax.imshow(a.numpy(), cmap="inferno", vmin=0.0, vmax=max(high, 1e-12))
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=4)
            ax.set_title(f"{per_arch.loc[name, 'label']}: {method_label[method]}" + (" (constant)" if low == high
                                                                                    else ""), fontsize=5)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"One input's maps across architectures ({examples[names[0]]['id']}); red positive, blue negative",
                 fontsize=7)
    fig.tight_layout()
    save(fig, path)


def write_tables(config: Config, score_files: list[Path], summary_files: list[Path], map_files: list[Path],
                 tables: Path, fig: Path) -> pd.DataFrame:
    """``tables/architectures.{csv,md}`` and ``figures/architectures.png`` from every architecture's outputs."""
    scores = pd.concat([pd.read_csv(f) for f in score_files], ignore_index=True)
    summaries = [files.read_config(f) for f in summary_files]
    table = summary_table(config, scores, summaries)
    base = Path(tables) / "architectures"
    files.write_csv(table, base.with_suffix(".csv"))
    files.write_text(base.with_suffix(".md"), markdown(config, table))
    examples = {s["architecture"]: torch.load(f, map_location="cpu", weights_only=False)
                for s, f in zip(summaries, map_files, strict=True)}
    figure(config, examples, table, fig)
    for path in (base.with_suffix(".csv"), base.with_suffix(".md"), fig):
        files.write_json(Path(f"{path}.provenance.json"), files.provenance(
            stage="architectures_table", architectures=config.section("architectures"), seed=config.seed,
            evaluation=config.section("evaluation"), inputs=[str(f) for f in score_files + summary_files]))
    return table
