"""Metrics beyond faithfulness (target ``metrics_extended``): ROAD, stability, complexity, and which metrics agree.

For every (data set, model) and every method of ``metrics_extended.methods`` (keys of ``methods``), on the first
``metrics_extended.n_inputs`` evaluated inputs, in both feature domains (``pixel``: pixels, log-mel bins, voxels;
``wavelet``: the input's own wavelet coefficients, the configuration's ``wavelet`` of the modality):

- **ROAD** (Rong et al., 2022; :mod:`metrics.road`): the maps the ``explain`` stage stored (Table 1's own; the
  wavelet map ranked as the same-domain tables rank it, ``evaluation.ranking``), MoRF and LeRF curves at
  ``road.percentages`` with noisy linear imputation (``road.stencil``: ``axes``, the 2 / 4 / 6 neighbours along the
  axes in 1D / 2D / 3D, or ``road``, Rong et al.'s 8 neighbours in 2D), on the inputs and model the scoring stage
  uses (:func:`workflow.lib.scoring.data_spaces`: images in [0, 1] normalised after imputation; audio as log-mel
  bins in the pixel domain, the waveform's coefficients in the wavelet domain), the sparse systems solved by
  ``road.solver`` (``auto``: conjugate gradients on 2D and 3D grids, the factorisation on 1D ones; the same
  imputation to 1e-10). ``road_morf`` (lower is better),
  ``road_lerf`` (higher) and ``road`` = LeRF - MoRF (higher), each as the ``paper`` and ``trapezoid`` AUC.
- **Stability** (:mod:`metrics.stability`): Max- and Avg-Sensitivity (uniform noise in an L-inf ball of radius
  ``stability.radius[modality]`` on the model's input values, pixel domain, or on its wavelet coefficients;
  ``stability.samples`` draws; both from the same draws) and Relative Input Stability (noise uniform on
  ``[radius / 10, radius]``, Quantus' default proportions): re-explanations of the noisy inputs by the workflow's
  explain stage, with ``stability.options`` over the methods' own options (fewer noise samples and path steps).
  Lower is more stable. The audio pixel-domain noise is added to the waveform (every method explains the
  waveform's model; the baselines' maps are compared on the log-mel bins).
- **Complexity** (:mod:`metrics.complexity`): Sparseness (Gini of ``|map|``, higher is sparser) and Complexity
  (entropy of ``|map| / sum |map|``, lower is simpler) of the stored maps, pixel and wavelet (raw per-band
  magnitudes).
- **Agreement** (:mod:`metrics.agreement`), in the report: per (data set, model), Kendall's tau-b between the
  method rankings of every pair of metrics (Table 1's insertion, deletion, faithfulness in both domains and
  mu-fidelity, from ``scores/scores.csv``; the metrics above, ROAD by its paper AUC), each oriented so that better
  comes first, on the methods both rank; per metric, the share of method pairs whose order flips across
  ``evaluation.bootstrap`` paired bootstrap resamples of the inputs, and across the training seeds of ``seeds``
  (Table 1's metrics of the trained models, when ``seed_spread`` ran: ``seeds/{seed}/scores``).

Stages (``python -m workflow.scripts.experiments.metrics_extended {run,report} ...``):

- ``run`` -> ``metrics_extended/{dataset}/{model}/rows.csv`` (``dataset, model, method, metric, domain, auc,
  sample_id, value``; ``auc`` ``-`` but for ROAD) and ``curves.csv`` (``dataset, model, method, metric, domain,
  sample_id, fraction, value``: the ROAD curves);
- ``report`` -> ``tables/{road,stability,complexity,metric_agreement}.{csv,md}``.

Example::

    >>> import pandas as pd
    >>> long = pd.DataFrame({"dataset": "d", "model": "m", "method": ["a", "b", "c"] * 2, "sample_id": "0",
    ...     "metric": ["deletion (pixel)"] * 3 + ["sparseness (pixel)"] * 3, "value": [0.1, 0.2, 0.3, 0.9, 0.5, 0.1],
    ...     "modality": "images"})
    >>> table = agreement(long, resamples=10, seed=0)
    >>> table[table["measure"] == "kendall_tau"][["metric", "other", "value"]].to_dict("records")
    [{'metric': 'deletion (pixel)', 'other': 'sparseness (pixel)', 'value': 1.0}]
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

import metrics
from metrics import agreement as agree
from metrics.protocols import rank_maps
from metrics.stability import stability_scores
from wam import transform
from wam.utils import pick_device
from workflow.lib import attribution, files, plugins
from workflow.lib.config import Config
from workflow.lib.data import model_inputs
from workflow.lib.models import zoo
from workflow.lib.reporting import tables
from workflow.lib.scoring import data_spaces, same_domain_ranking

DOMAINS = ("pixel", "wavelet")
ROWS = ["dataset", "model", "method", "metric", "domain", "auc", "sample_id", "value"]
CURVES = ["dataset", "model", "method", "metric", "domain", "sample_id", "fraction", "value"]
AUCS = ("paper", "trapezoid")
# Every metric of the agreement table and its direction (True: higher is better).
HIGHER_IS_BETTER = {"insertion": True, "deletion": False, "faithfulness": True, "mu_fidelity": True,
                    "road_morf": False, "road_lerf": True, "road": True, "max_sensitivity": False,
                    "avg_sensitivity": False, "relative_input_stability": False, "sparseness": True,
                    "complexity": False}
ROAD = ("road_morf", "road_lerf", "road")
STABILITY = ("max_sensitivity", "avg_sensitivity", "relative_input_stability")
COMPLEXITY = ("sparseness", "complexity")
TABLE1 = ("insertion", "deletion", "faithfulness", "mu_fidelity")
CAPTIONS = {
    "road": "ROAD (Rong et al., 2022): the model's softmax probability of the target class with the top (MoRF) or "
            "bottom (LeRF) p % of the features removed and filled by noisy linear imputation; area under the curve "
            "over the removed fraction (paper AUC and trapezoid), mean over the inputs [bootstrap 95 % CI]. Good: "
            "a low MoRF AUC (removing what the map ranks first destroys the prediction), a high LeRF AUC, and a "
            "high road = LeRF - MoRF.",
    "stability": "Stability under small input noise: Max- and Avg-Sensitivity (Yeh et al., 2019: ||a(x) - "
                 "a(x + d)|| / ||a(x)||, maximum and mean over the draws) and Relative Input Stability (Agarwal et "
                 "al., 2022), mean over the inputs [bootstrap 95 % CI]. Lower is better (more stable). The noise "
                 "is added to the input values (pixel) or to its wavelet coefficients (wavelet). RIS divides by "
                 "every map value and every input value (zeros replaced by 1e-6, as Quantus): a map with values at "
                 "or near 0 can reach 1e+11, and the many near-zero wavelet coefficients of an input make its "
                 "wavelet-domain denominator huge and RIS tiny. Read RIS as an order of magnitude, "
                 "within one column.",
    "complexity": "Conciseness of the maps: Sparseness (Gini index of |map|; higher is sparser) and Complexity "
                  "(entropy of |map| / sum |map|; lower is simpler), mean over the inputs [bootstrap 95 % CI]. "
                  "Good: high Sparseness, low Complexity (a concise map); neither says whether the map is right.",
    "metric_agreement": "Do the metrics agree? kendall_tau: Kendall's tau-b between the method rankings of two "
                        "metrics (each oriented so that better comes first; +1: the same order, -1: reversed, 0: "
                        "unrelated), on the methods both rank. flip_bootstrap / flip_seeds: each metric's noise "
                        "floor, the share of method pairs whose order flips across paired bootstrap resamples of the "
                        "inputs / across training seeds (0: the ranking never moves, about 0.5: a coin toss). Good: "
                        "high tau between metrics meant to measure the same thing, low flip shares; a difference "
                        "between two methods that flips often is within the metric's own noise.",
}


def settings(config: Config) -> dict:
    """The ``metrics_extended`` section with its defaults, checked for what the schema cannot say (``ValueError``
    naming the key): ``methods`` and ``stability.options`` name keys of ``methods``, ``stability.radius`` covers
    every modality of ``datasets``."""
    if "metrics_extended" not in config:
        raise ValueError("metrics_extended: section missing from the configuration")
    spec = {"n_inputs": 4, "methods": list(config.methods), **config.section("metrics_extended")}
    spec["road"] = {"percentages": [10, 30, 50, 70, 90], "noise": 0.01, "stencil": "axes", "solver": "auto",
                    **spec.get("road", {})}
    spec["stability"] = {"samples": 4, "options": {}, **spec.get("stability", {})}
    unknown = [m for m in spec["methods"] if m not in config.methods]
    if unknown:
        raise ValueError(f"metrics_extended.methods: {unknown} are not keys of `methods` ({list(config.methods)})")
    stray = sorted(set(spec["stability"]["options"]) - set(config.methods))
    if stray:
        raise ValueError(f"metrics_extended.stability.options: {stray} are not keys of `methods`")
    missing = sorted({s.modality for s in config.datasets.values()} - set(spec["stability"].get("radius", {})))
    if missing:
        raise ValueError(f"metrics_extended.stability.radius: no radius for the modalities {missing}")
    return spec


def stored_maps(paths: list[Path], ids: list[str]) -> dict:
    """The ``pixel`` ``[n, *spatial]`` and ``wavelet`` (bands ``[n, 1, *band]``) maps of one method's explain shards
    (in shard order), checked against the evaluated inputs' ``ids``."""
    parts = [torch.load(p, map_location="cpu", weights_only=False) for p in paths]
    stored = [i for part in parts for i in part["ids"]]
    if stored != list(ids):
        raise ValueError(f"{paths[0]}: the stored sample ids do not match the evaluated inputs")
    return {"pixel": torch.cat([p["pixel"] for p in parts]),
            "wavelet": [torch.cat(b) for b in zip(*[p["wavelet"] for p in parts], strict=True)]}


class Rows:
    """Per-sample rows (:data:`ROWS`) and ROAD curve rows (:data:`CURVES`) of one (data set, model)."""

    def __init__(self, dataset: str, model: str, ids: list[str]) -> None:
        self.dataset, self.model, self.ids = dataset, model, ids
        self.rows: list[tuple] = []
        self.curves: list[tuple] = []

    def add(self, method: str, metric: str, domain: str, values: torch.Tensor, auc: str = "-") -> None:
        self.rows.extend((self.dataset, self.model, method, metric, domain, auc, sid, float(v))
                         for sid, v in zip(self.ids, values.tolist(), strict=True))

    def add_curve(self, method: str, metric: str, domain: str, curve) -> None:
        fractions = curve.fractions.tolist()
        for sid, probs in zip(self.ids, curve.probs.tolist(), strict=True):
            self.curves.extend((self.dataset, self.model, method, metric, domain, sid, f, p)
                               for f, p in zip(fractions, probs, strict=True))

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return pd.DataFrame(self.rows, columns=ROWS), pd.DataFrame(self.curves, columns=CURVES)


def road_rows(out: Rows, method: str, spaces: dict, y: torch.Tensor, ranked: dict, options: dict) -> None:
    """ROAD MoRF and LeRF curves and their AUCs in both domains. ``spaces``: :func:`data_spaces`; ``ranked``: per
    domain the map ranked (pixel ``[n, *spatial]``, wavelet ptwt structure); ``options`` of
    :func:`metrics.road.road_curve` (wavelet ones included)."""
    for domain in DOMAINS:
        net, inputs, preprocess = spaces[domain]
        curves = {order: metrics.get(order)(net, inputs, y, ranked[domain], domain=domain, preprocess=preprocess,
                                            **options) for order in ("road_morf", "road_lerf")}
        for auc in AUCS:
            morf, lerf = curves["road_morf"].auc(auc), curves["road_lerf"].auc(auc)
            out.add(method, "road_morf", domain, morf, auc)
            out.add(method, "road_lerf", domain, lerf, auc)
            out.add(method, "road", domain, lerf - morf, auc)
        for order, curve in curves.items():
            out.add_curve(method, order, domain, curve)


def complexity_rows(out: Rows, method: str, pixel: torch.Tensor, wavelet: list[torch.Tensor]) -> None:
    """Sparseness and Complexity of the stored pixel map and of the raw per-band magnitudes."""
    for domain, m in (("pixel", pixel), ("wavelet", [b.sum(1) for b in wavelet])):
        for metric in COMPLEXITY:
            out.add(method, metric, domain, metrics.get(metric)(m))


def stability_rows(out: Rows, method: str, explain, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                   radius: float, samples: int, seed: int, batch_size: int, wavelet: dict) -> None:
    """Max- and Avg-Sensitivity (one set of draws) and RIS in both domains; ``explain(model, x, y, domain)`` gives
    the map of ``domain`` of the model inputs ``x``."""
    for domain in DOMAINS:
        def domain_map(m, xs, ys, domain=domain):
            return explain(m, xs, ys, domain)

        common = {"explain": domain_map, "domain": domain, "samples": samples, "seed": seed, "batch_size": batch_size,
                  **wavelet}
        sensitivity = stability_scores(model, x, y, kind="sensitivity", lower_bound=radius, **common)
        ris = stability_scores(model, x, y, kind="ris", lower_bound=radius / 10, upper_bound=radius, **common)
        out.add(method, "max_sensitivity", domain, sensitivity.amax(1))
        out.add(method, "avg_sensitivity", domain, sensitivity.mean(1))
        out.add(method, "relative_input_stability", domain, ris.amax(1))


class DomainExplainer:
    """``explain(model, x, y, domain)``: one method's map of the model inputs ``x`` in ``domain`` from the explain
    stage (:func:`workflow.lib.attribution.explain`), random state reset to the run's seed before each call."""

    def __init__(self, config: Config, dataset: str, method: str) -> None:
        self.config, self.dataset, self.method = config, dataset, method

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, domain: str):
        torch.manual_seed(self.config.seed)
        return attribution.explain(self.config, self.dataset, model, self.method, x, y, extras=False)[domain]


def run(config: Config, dataset: str, model_name: str, model_path: Path, attributions: dict[str, list[Path]],
        rows_path: Path, curves_path: Path) -> pd.DataFrame:
    """ROAD, stability and complexity of every method of ``metrics_extended.methods`` on one (data set, model);
    ``attributions``: per method, its explain shards in shard order. Writes ``rows.csv`` and ``curves.csv``."""
    plugins.load(config.raw)
    spec = settings(config)
    device = pick_device(config.device)
    model = zoo.load(model_path).to(device).eval()
    data_spec = config.datasets[dataset]
    modality, ndim = data_spec.modality, data_spec.ndim
    data, x = model_inputs(dataclasses.replace(config, shards=1), dataset, model, 0)
    n = len(data) if spec["n_inputs"] is None else min(spec["n_inputs"], len(data))
    ids, x, y = data.ids[:n], x[:n].to(device), data.y[:n].to(device)
    spaces = data_spaces(config, dataset, model, data.x[:n].to(device))
    wavelet = config.section("wavelet")[modality]
    batch_size = config.section("evaluation")["batch_size"]
    road = {**spec["road"], "wavelet": wavelet["wavelet"], "levels": wavelet["levels"], "mode": wavelet["mode"],
            "batch_size": batch_size, "seed": config.seed}
    stability = spec["stability"]
    mconfig = config.with_methods(spec["methods"], modality, stability["options"])
    out = Rows(dataset, model_name, ids)
    for method in tqdm(spec["methods"], desc=f"metrics_extended {dataset}/{model_name}", unit="method"):
        stored = stored_maps(attributions[method], data.ids)
        pixel = stored["pixel"][:n].to(device)
        bands = [b[:n].to(device) for b in stored["wavelet"]]
        ranked = {"pixel": pixel,
                  "wavelet": transform.unbands(rank_maps(bands, same_domain_ranking(config, "wavelet")), ndim)}
        with torch.no_grad():
            road_rows(out, method, spaces, y, ranked, road)
        complexity_rows(out, method, pixel, bands)
        stability_rows(out, method, DomainExplainer(mconfig, dataset, method), model, x, y,
                       float(stability["radius"][modality]), stability["samples"], config.seed, batch_size, wavelet)
    rows, curves = out.frames()
    files.write_csv(rows, rows_path)
    files.write_csv(curves, curves_path)
    for path in (rows_path, curves_path):
        files.write_json(Path(f"{path}.provenance.json"), files.provenance(
            stage="metrics_extended", dataset=dataset, model=str(model_path), metrics_extended=spec, wavelet=wavelet,
            methods={m: dataclasses.asdict(s) for m, s in mconfig.methods.items()}, seed=config.seed,
            device_used=str(device)))
    return rows


# ----------------------------------------------------------------------------------------------- report


def metric_table(rows: pd.DataFrame, names: tuple[str, ...], config: Config, resamples: int, seed: int
                 ) -> pd.DataFrame:
    """Mean over the inputs with its bootstrap 95 % interval per (dataset, model, method, domain, metric, auc) of
    the metrics ``names``; methods in configuration order, domains pixel then wavelet, metrics in ``names``' order."""
    part = rows[rows["metric"].isin(names)]
    table = tables.summarise(part, ["dataset", "model", "method", "domain", "metric", "auc"], resamples, seed)
    table.insert(1, "modality", table["dataset"].map({d: s.modality for d, s in config.datasets.items()}))
    table.insert(4, "label", table["method"].map({m: s.label for m, s in config.methods.items()}))
    order = {**{m: i for i, m in enumerate(config.methods)}, **{m: i for i, m in enumerate(names)},
             **{d: i for i, d in enumerate(DOMAINS)}}
    keyed = ("method", "metric", "domain")
    return table.sort_values(["dataset", "model", "method", "domain", "metric", "auc"], kind="stable",
                             key=lambda s: s.map(order) if s.name in keyed else s).reset_index(drop=True)


def metric_markdown(table: pd.DataFrame, caption: str) -> str:
    """The caption, then per (data set, model): methods x (metric / domain [/ AUC])."""
    parts = [caption, ""]
    for (dataset, model), group in table.groupby(["dataset", "model"], sort=False):
        columns = ["metric", "domain"] + (["auc"] if (group["auc"] != "-").any() else [])
        parts += [f"**{dataset} / {model}** ({group['modality'].iloc[0]})", "",
                  tables.markdown(group.assign(cell=group.apply(tables.cell, axis=1, wide_range=True)), "label",
                                  columns)]
    return "\n".join(parts)


def table1_rows(scores: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Table 1's per-sample scores of the agreement: insertion, deletion and faithfulness (paper AUC,
    ``evaluation.protocol``) in every domain of ``evaluation.domains`` with its same-domain ranking, and
    mu-fidelity (pixel); columns ``dataset, model, method, metric, domain, sample_id, value``."""
    protocol = config.section("evaluation")["protocol"]
    keep = pd.Series(False, index=scores.index)
    for domain in config.section("evaluation")["domains"]:
        keep |= (scores["metric"].isin(TABLE1[:3]) & (scores["auc"] == "paper") & (scores["domain"] == domain)
                 & (scores["ranking"] == same_domain_ranking(config, domain)))
    keep &= scores["protocol"] == protocol
    keep |= (scores["metric"] == "mu_fidelity") & (scores["protocol"] == protocol)
    return scores.loc[keep, ["dataset", "model", "method", "metric", "domain", "sample_id", "value"]]


def long_scores(rows: pd.DataFrame, scores: pd.DataFrame, config: Config, methods: list[str]) -> pd.DataFrame:
    """Every per-sample score of the agreement: ``dataset, model, modality, method, metric, sample_id, value``,
    ``metric`` named ``"<metric> (<domain>)"``; ROAD by its paper AUC; only ``methods``, and Table 1's scores only
    on the inputs of ``rows`` (every metric ranks the methods on the same inputs)."""
    new = rows[(rows["auc"] == "-") | (rows["auc"] == "paper")].drop(columns="auc")
    inputs = set(zip(new["dataset"], new["model"], new["sample_id"].astype(str), strict=True))
    old = table1_rows(scores, config)
    old = old[[k in inputs for k in zip(old["dataset"], old["model"], old["sample_id"].astype(str), strict=True)]]
    both = pd.concat([old, new], ignore_index=True)
    both = both[both["method"].isin(methods)]
    both = both.assign(metric=both["metric"] + " (" + both["domain"] + ")",
                       modality=both["dataset"].map({d: s.modality for d, s in config.datasets.items()}),
                       value=pd.to_numeric(both["value"]))
    return both.drop(columns="domain")


def direction(metric: str) -> bool:
    """Whether higher is better for ``"<metric> (<domain>)"``."""
    return HIGHER_IS_BETTER[metric.split(" (")[0]]


def agreement(long: pd.DataFrame, resamples: int, seed: int, seed_scores: pd.DataFrame | None = None
              ) -> pd.DataFrame:
    """The agreement table: ``dataset, model, modality, measure, metric, other, value, n_methods, n_replicates``.

    ``long``: :func:`long_scores`. ``kendall_tau`` (one row per pair of metrics, ``other`` the second): on the
    methods whose mean over the inputs is finite under both; ``flip_bootstrap``: :func:`metrics.agreement.
    bootstrap_flip_share` of the methods' per-sample scores on the inputs every method has (``resamples``,
    ``seed``); ``flip_seeds``: :func:`metrics.agreement.flip_share` of the per-seed means (``seed_scores``: the
    columns of ``long`` and ``seed``), where at least two seeds exist. Fewer than two methods: no row.
    """
    out = []
    for (dataset, model, modality), group in long.groupby(["dataset", "model", "modality"], sort=False):
        key = {"dataset": dataset, "model": model, "modality": modality}
        means = group.groupby(["metric", "method"], sort=False)["value"].mean().unstack("method")
        names = list(dict.fromkeys(group["metric"]))
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                pair = means.loc[[a, b]].T.replace([np.inf, -np.inf], np.nan).dropna()
                if len(pair) >= 2:
                    tau = agree.kendall_tau(pair[a].to_numpy(copy=True), pair[b].to_numpy(copy=True),
                                           (direction(a), direction(b)))
                    out.append({**key, "measure": "kendall_tau", "metric": a, "other": b, "value": tau,
                                "n_methods": len(pair), "n_replicates": np.nan})
        for metric in names:
            wide = group[group["metric"] == metric].pivot_table(index="method", columns="sample_id", values="value",
                                                                aggfunc="first")
            wide = wide.replace([np.inf, -np.inf], np.nan).dropna(axis=0, how="all").dropna(axis=1)
            if len(wide) >= 2 and wide.shape[1] >= 1:
                share = agree.bootstrap_flip_share(torch.tensor(wide.to_numpy()), resamples, seed)
                out.append({**key, "measure": "flip_bootstrap", "metric": metric, "other": "-", "value": share,
                            "n_methods": len(wide), "n_replicates": resamples})
            if seed_scores is not None:
                seeds = seed_scores[(seed_scores["dataset"] == dataset) & (seed_scores["model"] == model)
                                    & (seed_scores["metric"] == metric)]
                per_seed = seeds.groupby(["seed", "method"])["value"].mean().unstack("method").dropna(axis=1)
                if len(per_seed) >= 2 and per_seed.shape[1] >= 2:
                    share = agree.flip_share(torch.tensor(per_seed.to_numpy()))
                    out.append({**key, "measure": "flip_seeds", "metric": metric, "other": "-", "value": share,
                                "n_methods": per_seed.shape[1], "n_replicates": len(per_seed)})
    return pd.DataFrame(out, columns=["dataset", "model", "modality", "measure", "metric", "other", "value",
                                      "n_methods", "n_replicates"])


def agreement_markdown(table: pd.DataFrame) -> str:
    """The caption, then per (data set, model): the Kendall tau matrix and each metric's flip shares."""
    parts = [CAPTIONS["metric_agreement"], ""]
    for (dataset, model), group in table.groupby(["dataset", "model"], sort=False):
        taus = group[group["measure"] == "kendall_tau"]
        both = pd.concat([taus, taus.rename(columns={"metric": "other", "other": "metric"})], ignore_index=True)
        both = both.assign(cell=both["value"].map(lambda v: f"{v:+.2f}"))
        methods = int(taus["n_methods"].max()) if not taus.empty else 0
        parts += [f"**{dataset} / {model}** ({group['modality'].iloc[0]}; Kendall tau over up to {methods} methods)",
                  ""]
        if not both.empty:
            parts.append(tables.markdown(both, "metric", ["other"]))
        flips = group[group["measure"] != "kendall_tau"]
        if not flips.empty:
            flips = flips.assign(cell=flips.apply(
                lambda r: f"{r['value']:.3f} ({int(r['n_methods'])} methods, {int(r['n_replicates'])})", axis=1))
            parts += ["Noise floor (share of method pairs that flip; methods, replicates):", "",
                      tables.markdown(flips, "metric", ["measure"])]
    return "\n".join(parts)


def seed_scores(config: Config, rows: pd.DataFrame, main: pd.DataFrame, replicate_paths: list[Path],
                methods: list[str]) -> pd.DataFrame | None:
    """Table 1's per-sample scores per training seed (the main run's for ``training.seed``, the replicates' for the
    others: files with a ``seed`` column, one per (seed, data set, model, method) or fewer) on the inputs of
    ``rows``, in :func:`long_scores`' layout with a ``seed`` column; ``None`` without replicates."""
    if not replicate_paths:
        return None

    def table1_only(scores: pd.DataFrame, seed: int) -> pd.DataFrame:
        both = long_scores(rows, scores, config, methods)
        return both[both["metric"].str.split(" (", regex=False).str[0].isin(TABLE1)].assign(seed=seed)

    replicates = pd.concat([pd.read_csv(p, keep_default_na=False) for p in replicate_paths], ignore_index=True)
    parts = [table1_only(main, config.section("training")["seed"])]
    parts += [table1_only(frame.drop(columns="seed"), int(seed)) for seed, frame in replicates.groupby("seed")]
    return pd.concat(parts, ignore_index=True)


def report(config: Config, rows_paths: list[Path], scores_path: Path, replicate_paths: list[Path], out: Path
           ) -> dict[str, pd.DataFrame]:
    """``tables/{road,stability,complexity,metric_agreement}.{csv,md}`` under ``out``."""
    spec = settings(config)
    rows = pd.concat([pd.read_csv(p, keep_default_na=False) for p in rows_paths], ignore_index=True)
    rows["value"] = pd.to_numeric(rows["value"])
    scores = pd.read_csv(scores_path, keep_default_na=False)
    resamples, seed = config.section("evaluation")["bootstrap"], config.seed
    written = {}
    for name, names in (("road", ROAD), ("stability", STABILITY), ("complexity", COMPLEXITY)):
        table = metric_table(rows, names, config, resamples, seed)
        tables.write(table, metric_markdown(table, CAPTIONS[name]), out / "tables", name)
        written[name] = table
    pairs = set(zip(rows["dataset"], rows["model"], strict=True))
    main = scores[[(d, m) in pairs for d, m in zip(scores["dataset"], scores["model"], strict=True)]]
    long = long_scores(rows, main, config, spec["methods"])
    table = agreement(long, resamples, seed, seed_scores(config, rows, main, replicate_paths, spec["methods"]))
    tables.write(table, agreement_markdown(table), out / "tables", "metric_agreement")
    written["metric_agreement"] = table
    for name in written:
        for ext in ("csv", "md"):
            files.write_json(out / "tables" / f"{name}.{ext}.provenance.json", files.provenance(
                stage="metrics_extended_report", rows=[str(p) for p in rows_paths], scores=str(scores_path),
                replicates=[str(p) for p in replicate_paths], metrics_extended=spec, bootstrap=resamples, seed=seed))
    return written

