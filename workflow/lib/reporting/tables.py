"""Gather every per-sample score into ``scores/scores.csv`` and write the benchmark's tables.

Each cell is a mean over the evaluated inputs with a bootstrap 95 % interval (``evaluation.bootstrap``
resamples, seeded) and the count of degenerate (constant) maps among them. Tables (CSV long format +
Markdown with its caption below the table; Table 1 also LaTeX) under ``results/NAME/tables/``:

- ``table1``: the paper's layout. Rows: methods; columns: modality x (Insertion, Deletion, Faithfulness),
  paper AUC, under ``evaluation.protocol``, WAM in the wavelet domain and baselines in the pixel domain
  (the paper's protocol), ranked as the reference evaluators rank, on the first model of each modality; the
  published value beside each cell and the difference.
- ``table1_<other protocol>``: the same cells under the other protocol (``table1_clean`` by default).
- ``table1_<dataset>_<model>``: the same cells for every model of every data set.
- ``table1_{pixel,wavelet}_{paper,trapezoid}``: every method in the same domain and AUC, every model, the
  wavelet domain ranked through ``evaluation.ranking`` for every method.
- ``appendix_metrics`` (also LaTeX): the metrics of ``evaluation.metrics`` (by default Faithfulness of Spectra
  and Input Fidelity; plug-in metrics too) and mu-fidelity per method and (data set, model);
  ``appendix_baselines`` (also LaTeX): Insertion, Deletion and Faithfulness of every method, both domains and both
  AUC conventions.
- ``mu_fidelity``, ``completeness`` (path methods: relative gap between the attributions' sum and
  ``f(x) - f(x0)``), ``localisation`` (offline sets; WAM also per scale), ``scales`` (WAM's share per level).

CSV files are written with fixed float formatting: two runs give byte-identical tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from metrics.protocols import reference_ranking
from workflow.lib import files
from workflow.lib.config import Config
from workflow.lib.scoring import home_domain, other_protocol, same_domain_ranking, unequal

METRICS = ("insertion", "deletion", "faithfulness")
HIGHER_IS_BETTER = {"insertion": True, "deletion": False, "faithfulness": True}
MODALITIES = ("audio", "images", "volumes")
ARROWS = {True: "$\\uparrow$", False: "$\\downarrow$"}
SHORT = {"insertion": "ins.", "deletion": "del.", "faithfulness": "faith."}


def bootstrap(values: np.ndarray, resamples: int, seed: int) -> tuple[float, float, float]:
    """Mean and bootstrap 95 % percentile interval of the mean."""
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return float(values[0]), float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarise(scores: pd.DataFrame, by: list[str], resamples: int, seed: int) -> pd.DataFrame:
    """One row per group of ``by``: ``n, mean, ci_low, ci_high`` and, when ``scores`` flags them, the count
    of ``degenerate`` maps (they stay in the mean, as in the reference)."""
    rows = []
    flagged = "degenerate" in scores.columns
    for key, group in scores.groupby(by, sort=True):
        mean, low, high = bootstrap(group["value"].to_numpy(), resamples, seed)
        rows.append((*key, len(group), mean, low, high) + ((int(group["degenerate"].sum()),) if flagged else ()))
    return pd.DataFrame(rows, columns=[*by, "n", "mean", "ci_low", "ci_high"] + (["degenerate"] if flagged else []))


def number(value: float) -> str:
    """Three decimals where they show the value (0, or ``1e-3 <= |value| < 1e4``), else three significant digits in
    scientific notation, so that a tiny or huge value never reads as ``0.000`` or a long string of digits.

    >>> number(0.12345), number(0.0), number(3.2e-7), number(5.7e11)
    ('0.123', '0.000', '3.20e-07', '5.70e+11')
    """
    return f"{value:.3f}" if value == 0 or 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"


def cell(row: pd.Series, wide_range: bool = False) -> str:
    """``mean [ci_low, ci_high]`` with three decimals, or each by :func:`number` when ``wide_range``."""
    show = number if wide_range else "{:.3f}".format
    return f"{show(row['mean'])} [{show(row['ci_low'])}, {show(row['ci_high'])}]"


def _column_order(column) -> tuple:
    """Columns by name, the metrics in the paper's order (Insertion, Deletion, Faithfulness)."""
    parts = column if isinstance(column, tuple) else (column,)
    return tuple((0, METRICS.index(p), "") if p in METRICS else (1, 0, str(p)) for p in parts)


def markdown(frame: pd.DataFrame, index: str, columns: list[str], values: str = "cell") -> str:
    """A Markdown table of ``frame`` pivoted to ``index`` x ``columns``."""
    wide = frame.pivot_table(index=index, columns=columns, values=values, aggfunc="first", sort=False)
    wide = wide[sorted(wide.columns, key=_column_order)]
    headers = [index] + [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in wide.columns]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for name, row in wide.iterrows():
        lines.append("| " + " | ".join([str(name)] + ["" if pd.isna(v) else str(v) for v in row]) + " |")
    return "\n".join(lines) + "\n"


def table1_scores(scores: pd.DataFrame, config: Config, protocol: str, first_models: bool = True) -> pd.DataFrame:
    """Scores of Table 1's cells under ``protocol``: paper AUC, WAM in the wavelet domain and baselines in the
    pixel domain, ranked as the reference ranks (``metrics.protocols.reference_ranking``); only the first model
    of each modality's first data set when ``first_models``."""
    modality = {d: spec.modality for d, spec in config.datasets.items()}
    first = {}
    for dataset, spec in config.datasets.items():
        first.setdefault(spec.modality, (dataset, spec.models[0]))
    home = {m: home_domain(config, m) for m in config.methods}
    part = scores[scores["metric"].isin(METRICS) & (scores["auc"] == "paper") & (scores["protocol"] == protocol)]
    ranking = [reference_ranking(modality[d], home[m]) for d, m in zip(part["dataset"], part["method"], strict=True)]
    keep = (part["domain"] == part["method"].map(home)) & (part["ranking"] == pd.Series(ranking, index=part.index))
    if first_models:
        keep &= pd.Series([(d, m) in first.values() for d, m in zip(part["dataset"], part["model"], strict=True)],
                          index=part.index, dtype=bool)
    return part[keep]


def table1(cells: pd.DataFrame, config: Config, published: pd.DataFrame, resamples: int, seed: int) -> pd.DataFrame:
    """Table 1 of ``cells`` (:func:`table1_scores`): mean, CI, degenerate count, published value, difference."""
    modality_of = {d: spec.modality for d, spec in config.datasets.items()}
    label = {m: spec.label for m, spec in config.methods.items()}
    summary = summarise(cells, ["dataset", "model", "method", "metric"], resamples, seed)
    summary.insert(0, "modality", summary["dataset"].map(modality_of))
    summary.insert(0, "label", summary["method"].map(label))
    reference = published.melt(id_vars=["method", "modality"], value_vars=list(METRICS), var_name="metric",
                               value_name="published").rename(columns={"method": "label"})
    summary = summary.merge(reference, on=["label", "modality", "metric"], how="left")
    summary["difference"] = summary["mean"] - summary["published"]
    order = {m: i for i, m in enumerate(config.methods)}
    return summary.sort_values(["modality", "metric", "method"], key=lambda s: s.map(order) if s.name == "method"
                               else s).reset_index(drop=True)


def degenerate_note(summary: pd.DataFrame) -> str:
    """A caption sentence naming every (method, data set, model) with degenerate maps, or saying there are none."""
    if "degenerate" not in summary.columns:
        return ""
    counts = summary.groupby(["label", "dataset", "model"], sort=False).agg(degenerate=("degenerate", "max"),
                                                                            n=("n", "max"))
    named = [f"{label} on {dataset} / {model} ({int(r.degenerate)} of {int(r.n)})"
             for (label, dataset, model), r in counts.iterrows() if r.degenerate > 0]
    if not named:
        return "No map is degenerate (constant)."
    return ("Degenerate (constant) maps, ranked in index order and kept in the means as the reference does: "
            + "; ".join(named) + ".")


def table1_markdown(t1: pd.DataFrame, caption: str, note: str = "") -> str:
    """Table 1's cells with the published value and the difference; under it ``caption``, the degenerate maps and
    ``note`` (:func:`offline_note`: the warning that offline stand-ins are not comparable with the published
    values)."""
    t1 = t1.assign(cell=t1.apply(
        lambda r: cell(r) + ("" if pd.isna(r["published"]) else f" (paper {r['published']:.3f}, "
                                                               f"{r['difference']:+.3f})"), axis=1))
    return markdown(t1, "label", ["modality", "metric"]) + f"\n{caption} {degenerate_note(t1)} {note}".rstrip() + "\n"


def table1_wide(t1: pd.DataFrame) -> pd.DataFrame:
    """Table 1 laid out as in the paper, compact for the report's landing page: methods x modality / metric
    cells ``mean (published)`` (the intervals are in ``table1.md``)."""
    t1 = t1.assign(cell=t1.apply(lambda r: f"{r['mean']:.3f}" + ("" if pd.isna(r["published"]) else
                                                                  f" ({r['published']:.3f})"), axis=1),
                   column=t1["modality"].str.title() + " " + t1["metric"].map(SHORT))
    wide = t1.pivot_table(index="label", columns="column", values="cell", aggfunc="first", sort=False)
    order = [f"{m.title()} {SHORT[k]}" for m in MODALITIES for k in METRICS]
    return wide[[c for c in order if c in wide.columns]].rename_axis("Method").reset_index()


def table1_caption(config: Config, protocol: str, first_models: bool = True) -> str:
    """What a Table 1 shows: protocol, domains, ranking, AUC, and which model of each modality."""
    models = "; ".join(f"{spec.modality}: {d} / {spec.models[0]}" for d, spec in config.datasets.items())
    shown = (f"First model of each modality ({models}); every model has its own table1_<dataset>_<model>."
             if first_models else "")
    return (f"Table 1 under the `{protocol}` protocol: mean over the evaluated inputs [bootstrap 95 % CI], paper "
            f"AUC sum(p) / (max(p) len(p)); WAM scored on its wavelet coefficients (ranked raw in 1D, per band "
            f"in 2D and 3D, as the reference), baselines on pixels / log-mel bins / voxels. {shown}").strip()


OFFLINE_NOTE = ("**Offline stand-ins: not comparable with the published values.** The {} data are offline "
                "stand-ins (the configuration's `source: offline`), not the paper's ImageNet, ESC-50 and "
                "AdrenalMNIST3D, and their models are not the paper's; the published values stand beside them for "
                "reference only.")


def offline_note(config: Config, datasets: list[str] | None = None) -> str:
    """The warning a table gives when it shows published values beside scores of offline stand-in data (among
    ``datasets``, default all); empty when none of them is offline.

    >>> from workflow.lib.config import DatasetSpec
    >>> class C:
    ...     datasets = {"images": DatasetSpec("images", "images", "offline"), "a": DatasetSpec("a", "audio", "esc50")}
    >>> offline_note(C()).split(".")[0], offline_note(C(), ["a"])
    ('**Offline stand-ins: not comparable with the published values', '')
    """
    specs = [spec for key, spec in config.datasets.items() if datasets is None or key in datasets]
    modalities = list(dict.fromkeys(spec.modality for spec in specs if spec.source == "offline"))
    return OFFLINE_NOTE.format(", ".join(modalities)) if modalities else ""


def latex_escape(text: str) -> str:
    return text.replace("_", "\\_")


def latex_rows(frame: pd.DataFrame, keys: list[str], columns: list[tuple], higher: Callable[[str], bool | None]
               ) -> list[str]:
    """One booktabs row per label of ``frame`` (in its order): the mean of each column, a column being a tuple of
    values of ``keys`` (the last key the metric); in each column the best mean bold and the second underlined
    (``higher(metric)``: whether higher is better; ``None``: unknown, nothing marked)."""
    selected = {col: frame[(frame[keys] == list(col)).all(axis=1)] for col in columns}
    marks: dict[tuple[str, tuple], str] = {}
    for col, part in selected.items():
        if higher(col[-1]) is None:
            continue
        ranked = part.sort_values("mean", ascending=not higher(col[-1]), kind="stable")["label"].tolist()
        for rank, lab in enumerate(ranked[:2]):
            marks[(lab, col)] = ("\\textbf{%s}", "\\underline{%s}")[rank]
    rows = []
    for lab in dict.fromkeys(frame["label"]):
        cells = []
        for col, part in selected.items():
            row = part[part["label"] == lab]
            cells.append("--" if row.empty else marks.get((lab, col), "%s") % f"{row['mean'].iloc[0]:.3f}")
        rows.append(latex_escape(lab) + " & " + " & ".join(cells) + " \\\\")
    return rows


def table1_latex(t1: pd.DataFrame) -> str:
    """booktabs; in each column the best mean bold, the second underlined (deletion: lower is better)."""
    columns = [(mod, met) for mod in MODALITIES for met in METRICS if ((t1["modality"] == mod) &
                                                                        (t1["metric"] == met)).any()]
    modalities = list(dict.fromkeys(m for m, _ in columns))
    lines = ["\\begin{tabular}{l" + "c" * len(columns) + "}", "\\toprule",
             " & " + " & ".join(f"\\multicolumn{{{sum(1 for m, _ in columns if m == mod)}}}{{c}}{{{mod.title()}}}"
                                for mod in modalities) + " \\\\",
             "Method & " + " & ".join(f"{met.title()} ({ARROWS[HIGHER_IS_BETTER[met]]})" for _, met in columns)
             + " \\\\", "\\midrule"]
    lines += latex_rows(t1, ["modality", "metric"], columns, HIGHER_IS_BETTER.get)
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


APPENDIX_METRICS = {"faithfulness_of_spectra": "FF", "input_fidelity": "Fid-in", "mu_fidelity": "$\\mu$-Fidelity"}


def appendix_metric_names(config: Config) -> list[str]:
    """The metrics of the appendix table: those of ``evaluation.metrics`` (plug-ins included), then mu-fidelity."""
    return [*config.evaluation_metrics, "mu_fidelity"]


def appendix_metrics(scores: pd.DataFrame, config: Config, resamples: int, seed: int) -> pd.DataFrame:
    """The appendix metrics (:func:`appendix_metric_names`) of every method and (data set, model): those of
    ``evaluation.metrics`` (scored in the method's Table 1 setting; a curve metric by its paper AUC) and
    mu-fidelity, mean with bootstrap CI; methods in config order. Only the rows of ``evaluation.protocol`` (the
    protocol-sensitivity rows, ``<protocol>_unequal``, are not pooled with them)."""
    protocol = config.section("evaluation")["protocol"]
    part = scores[scores["metric"].isin(appendix_metric_names(config)) & scores["auc"].isin(["-", "paper"])
                  & (scores["protocol"] == protocol)]
    summary = summarise(part, ["dataset", "model", "method", "metric"], resamples, seed)
    order = {m: i for i, m in enumerate(config.methods)}
    summary = summary.sort_values(["method", "dataset", "model", "metric"], kind="stable",
                                  key=lambda s: s.map(order) if s.name == "method" else s)
    return summary.assign(label=summary["method"].map({m: s.label for m, s in config.methods.items()}))


def _other_metrics(summary: pd.DataFrame) -> list[str]:
    """The metrics of an appendix summary beyond the three built-in ones (plug-ins), in order of appearance."""
    return [m for m in dict.fromkeys(summary["metric"]) if m not in APPENDIX_METRICS]


def appendix_markdown(summary: pd.DataFrame, protocol: str) -> str:
    """Markdown of :func:`appendix_metrics` (method x data set / model / metric) with its caption."""
    if summary.empty:
        return "(no values)\n"
    others = _other_metrics(summary)
    caption = ("Appendix metrics, mean over the evaluated inputs [bootstrap 95 % CI]: Faithfulness of Spectra "
               "(faithfulness_of_spectra, Parekh et al. 2022: p(x) - p(x without its top 50 % features)) and Input "
               "Fidelity (input_fidelity, Paissan et al. 2023: 1 when the top-1 class of x restricted to its top 50 % "
               "features is the top-1 class of x), each in the method's Table 1 setting (WAM on its wavelet "
               f"coefficients, baselines on pixels / log-mel bins / voxels, `{protocol}` protocol); mu_fidelity in the "
               f"pixel domain. Higher is better for all three. {degenerate_note(summary)}")
    if others:
        caption += (f" Also from `evaluation.metrics`, in the same Table 1 setting (a curve by its paper AUC): "
                    f"{', '.join(others)}, as each metric defines it.")
    return markdown(summary.assign(cell=summary.apply(cell, axis=1)), "label", ["dataset", "model", "metric"]) + (
        f"\n{caption}\n")


def appendix_latex(summary: pd.DataFrame) -> str:
    """booktabs, as :func:`table1_latex`: one column group per (data set, model), FF, Fid-in, mu-fidelity and any
    other metric (plug-ins, after them); in each column the best mean bold, the second underlined (higher is better
    for the three; another metric's columns are not marked, its direction being its own)."""
    if summary.empty:
        return "% no values\n"
    groups = list(dict.fromkeys(zip(summary["dataset"], summary["model"], strict=True)))
    names = [*APPENDIX_METRICS, *_other_metrics(summary)]
    columns = [(d, m, met) for d, m in groups for met in names
               if ((summary["dataset"] == d) & (summary["model"] == m) & (summary["metric"] == met)).any()]

    def header(met: str) -> str:
        return f"{APPENDIX_METRICS[met]} ({ARROWS[True]})" if met in APPENDIX_METRICS else latex_escape(met)

    lines = ["\\begin{tabular}{l" + "c" * len(columns) + "}", "\\toprule",
             " & " + " & ".join(f"\\multicolumn{{{sum(1 for c in columns if c[:2] == (d, m))}}}{{c}}"
                                f"{{{latex_escape(d.title())} ({latex_escape(m)})}}" for d, m in groups) + " \\\\",
             "Method & " + " & ".join(header(met) for *_, met in columns) + " \\\\",
             "\\midrule"]
    lines += latex_rows(summary, ["dataset", "model", "metric"], columns,
                        lambda metric: True if metric in APPENDIX_METRICS else None)
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def appendix_baselines(scores: pd.DataFrame, config: Config, resamples: int, seed: int) -> pd.DataFrame:
    """Insertion, Deletion and Faithfulness of every method of the configuration (built-in, plug-in and WAM) on
    every (data set, model), in both domains and both AUC conventions, under ``evaluation.protocol`` with the
    same-domain ranking (as ``table1_{domain}_{auc}``): mean with bootstrap CI; blocks (domain, AUC), methods in
    config order, metrics in the paper's order."""
    protocol = config.section("evaluation")["protocol"]
    ranking = scores["domain"].map(lambda d: same_domain_ranking(config, d))
    part = scores[scores["metric"].isin(METRICS) & scores["domain"].isin(["pixel", "wavelet"])
                  & scores["auc"].isin(["paper", "trapezoid"]) & (scores["protocol"] == protocol)
                  & (scores["ranking"] == ranking) & scores["method"].isin(list(config.methods))]
    summary = summarise(part, ["domain", "auc", "dataset", "model", "method", "metric"], resamples, seed)
    order = {**{m: i for i, m in enumerate(config.methods)}, **{m: i for i, m in enumerate(METRICS)}}
    summary = summary.sort_values(["domain", "auc", "method", "dataset", "model", "metric"], kind="stable",
                                  key=lambda s: s.map(order) if s.name in ("method", "metric") else s)
    label = {m: spec.label for m, spec in config.methods.items()}
    return summary.assign(label=summary["method"].map(label)).reset_index(drop=True)


def appendix_baselines_markdown(summary: pd.DataFrame, config: Config) -> str:
    """Markdown of :func:`appendix_baselines`: one table per (domain, AUC), methods x data set / model / metric."""
    if summary.empty:
        return "(no values)\n"
    blocks = [f"**{domain} domain, {auc} AUC**\n\n" + markdown(part.assign(cell=part.apply(cell, axis=1)), "label",
                                                                ["dataset", "model", "metric"])
              for (domain, auc), part in summary.groupby(["domain", "auc"], sort=False)]
    evaluation = config.section("evaluation")
    caption = (f"Appendix baselines: Insertion (higher is better), Deletion (lower is better) and Faithfulness = "
               f"Insertion - Deletion (higher is better) of every method, mean over the evaluated inputs [bootstrap "
               f"95 % CI], `{evaluation['protocol']}` protocol, in the pixel domain (pixels / log-mel bins / voxels) "
               f"and the wavelet domain (every method's wavelet map ranked `{evaluation['ranking']}`), paper AUC "
               f"sum(p) / (max(p) len(p)) and trapezoid AUC. {degenerate_note(summary)}")
    return "\n".join(blocks) + f"\n{caption}\n"


def appendix_baselines_latex(summary: pd.DataFrame) -> str:
    """booktabs: one column group per (data set, model) with Insertion, Deletion, Faithfulness; one block of rows
    per (domain, AUC); in each column of a block the best mean bold, the second underlined."""
    if summary.empty:
        return "% no values\n"
    groups = list(dict.fromkeys(zip(summary["dataset"], summary["model"], strict=True)))
    columns = [(d, m, met) for d, m in groups for met in METRICS]
    lines = ["\\begin{tabular}{l" + "c" * len(columns) + "}", "\\toprule",
             " & " + " & ".join(f"\\multicolumn{{{len(METRICS)}}}{{c}}{{{latex_escape(d.title())} "
                                f"({latex_escape(m)})}}" for d, m in groups) + " \\\\",
             "Method & " + " & ".join(f"{SHORT[met].title()} ({ARROWS[HIGHER_IS_BETTER[met]]})" for *_, met in columns)
             + " \\\\"]
    for (domain, auc), part in summary.groupby(["domain", "auc"], sort=False):
        lines += ["\\midrule", f"\\multicolumn{{{len(columns) + 1}}}{{l}}{{\\textit{{{domain.title()} domain, "
                                f"{auc} AUC}}}} \\\\"]
        lines += latex_rows(part, ["dataset", "model", "metric"], columns, HIGHER_IS_BETTER.get)
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def lrp_conservation(scores: pd.DataFrame, label: dict[str, str]) -> pd.DataFrame:
    """Per (data set, model, method) with a ``conservation_ratio`` (LRP): ``n``, the ``median``, ``min`` and
    ``max`` over the evaluated inputs of ``sum of relevance / f_y(x)``."""
    part = scores[scores["metric"] == "conservation_ratio"]
    summary = part.groupby(["dataset", "model", "method"], sort=True)["value"].agg(
        n="count", median="median", min="min", max="max").reset_index()
    return summary.assign(label=summary["method"].map(label))


def lrp_conservation_markdown(summary: pd.DataFrame) -> str:
    if summary.empty:
        return "(no values: no LRP method in this configuration)\n"
    lines = ["| data set | model | method | n | median | min | max |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.dataset} | {r.model} | {r.label} | {r.n} | {r.median:.3f} | {r.min:.3f} | {r.max:.3f} |"
              for r in summary.itertuples()]
    caption = ("LRP conservation: the input relevance summed, divided by the target logit f_y(x) that LRP "
               "distributes from the output, over the evaluated inputs (1 = nothing lost). What is not conserved "
               "goes to the biases (including those of merged batch norms), which absorb the share of relevance "
               "a layer's bias contributes to its output, and to the stabilisers (epsilon) of the rules.")
    return "\n".join(lines) + f"\n\n{caption}\n"


SENSITIVITY_METRICS = (*METRICS, "mu_fidelity")


def protocol_sensitivity(scores: pd.DataFrame, config: Config, protocol: str) -> pd.DataFrame:
    """Table 1's cells (first model of each modality, paper AUC) and mu-fidelity under the equal settings and under
    the reference evaluators' unequal ones (scores of protocol ``{protocol}_unequal``): per (data set, model,
    method, metric) the two means, their difference, and the method's rank among the methods under each (1 =
    best; deletion: lowest); per (data set, model, metric) ``kendall_tau`` between the two rankings."""
    from scipy.stats import kendalltau

    def means(which: str) -> pd.DataFrame:
        cells = table1_scores(scores, config, which)
        firsts = set(zip(cells["dataset"], cells["model"], strict=True))
        mu = scores[(scores["metric"] == "mu_fidelity") & (scores["protocol"] == which)]
        mu = mu[[(d, m) in firsts for d, m in zip(mu["dataset"], mu["model"], strict=True)]]
        both = pd.concat([cells, mu])
        return both.groupby(["dataset", "model", "method", "metric"])["value"].mean().rename(which)

    table = pd.concat([means(protocol), means(unequal(protocol))], axis=1).dropna().reset_index()
    if table.empty:
        return table
    table = table.rename(columns={protocol: "equal", unequal(protocol): "unequal"})
    table["difference"] = table["unequal"] - table["equal"]
    table["label"] = table["method"].map({m: s.label for m, s in config.methods.items()})
    group = table.groupby(["dataset", "model", "metric"])
    for setting in ("equal", "unequal"):
        table[f"rank_{setting}"] = group[setting].rank(ascending=False, method="min").astype(int)
        deletion = table["metric"] == "deletion"
        table.loc[deletion, f"rank_{setting}"] = group[setting].rank(ascending=True, method="min")[deletion].astype(
            int)
    tau = {key: (kendalltau(part["equal"], part["unequal"]).statistic if len(part) > 1 else float("nan"))
           for key, part in group}
    table["kendall_tau"] = [tau[k] for k in zip(table["dataset"], table["model"], table["metric"], strict=True)]
    order = {**{m: i for i, m in enumerate(config.methods)}, **{m: i for i, m in enumerate(SENSITIVITY_METRICS)}}
    return table.sort_values(["dataset", "model", "metric", "method"], kind="stable",
                             key=lambda s: s.map(order) if s.name in ("method", "metric") else s
                             ).reset_index(drop=True)


def protocol_sensitivity_markdown(table: pd.DataFrame, config: Config) -> str:
    if table.empty:
        return "(no values: evaluation.protocol_sensitivity is not set)\n"
    cells = table.assign(cell=table.apply(lambda r: f"{r['equal']:.3f} -> {r['unequal']:.3f} "
                                                    f"(#{r['rank_equal']} -> #{r['rank_unequal']})", axis=1))
    taus = table.drop_duplicates(["dataset", "model", "metric"])
    flips = "; ".join(f"{r.dataset} / {r.model} {r.metric}: tau = {r.kendall_tau:+.2f}" for r in taus.itertuples())
    evaluation = config.section("evaluation")
    sensitivity = evaluation["protocol_sensitivity"]
    caption = (f"Table 1's cells and mu-fidelity under the equal settings of this configuration (every method "
               f"{evaluation['steps']} insertion / deletion steps, {evaluation['mu_fidelity']['samples']} mu-fidelity "
               f"samples) -> under the reference evaluators' unequal ones (WAM: "
               f"{json.dumps(sensitivity.get('wam', {}))}; baselines: {json.dumps(sensitivity.get('baseline', {}))}), "
               f"each with the method's rank among the methods (#1 best; deletion: lowest best). Kendall tau between "
               f"the two rankings (1: the same order): {flips}.")
    return markdown(cells, "label", ["dataset", "model", "metric"]) + f"\n{caption}\n"


SCALE_QUANTITIES = {"scale_share": "share", "scale_share_per_coefficient": "share per coefficient"}


def scale_shares(scores: pd.DataFrame, label: dict[str, str], resamples: int, seed: int) -> pd.DataFrame:
    """WAM's scale shares (``scale_share@level``, ``scale_share_per_coefficient@level``) per (data set, model,
    method, level): mean with bootstrap CI; ``quantity`` (share, share per coefficient), ``level`` and ``label``
    (the method's label and the level) added, levels finest first."""
    metric = scores["metric"].str.split("@").str[0]
    summary = summarise(scores[metric.isin(list(SCALE_QUANTITIES))], ["dataset", "model", "method", "metric"],
                        resamples, seed)
    kind, level = summary["metric"].str.split("@").str[0], summary["metric"].str.split("@").str[1]
    summary = summary.assign(quantity=kind.map(SCALE_QUANTITIES), level=level,
                             label=summary["method"].map(label) + " " + level.str.replace("level", "level "))
    order = {n: i for i, n in enumerate(summary["level"].drop_duplicates().sort_values(key=_level_order))}
    summary = summary.sort_values(["dataset", "model", "method", "quantity", "level"], kind="stable",
                                  key=lambda s: s.map(order) if s.name == "level" else s).reset_index(drop=True)
    return summary.assign(cell=summary.apply(cell, axis=1) if len(summary) else [])


def _level_order(levels: pd.Series) -> pd.Series:
    """``level1`` .. ``levelL`` by number, ``approx`` last."""
    return levels.map(lambda n: 10**6 if n == "approx" else int(n.removeprefix("level")))


def scales_markdown(summary: pd.DataFrame) -> str:
    """The scales table (method and level x data set / model / quantity) and its caption: the definitions."""
    if summary.empty:
        return "(no values)\n"
    caption = ("WAM's scale shares, mean over the evaluated inputs [bootstrap 95 % CI]; level 1 is the finest, "
               "approx the approximation. The importance of a level is the sum of |attribution| (channel mean) over "
               "its wavelet coefficients, from the raw attributions (not the per-band normalised maps, which are for "
               "display only). `share`: a level's importance over the sum of all levels' (normalised per image, as "
               "the paper normalises its per-scale importance), so each image's shares sum to 1. `share per "
               "coefficient`: each level's importance first divided by its number of coefficients (a finer level "
               "has 2^d times more of them in d dimensions), then normalised to sum 1 per image. Audio: the "
               "waveform's coefficients. The same definition gives the robustness tables' shares "
               "(wam.Explanation.scale_shares).")
    return markdown(summary, "label", ["dataset", "model", "quantity"]) + f"\n{caption}\n"


def write(frame: pd.DataFrame, md: str, out: Path, name: str) -> None:
    files.write_csv(frame, out / f"{name}.csv")
    files.write_text(out / f"{name}.md", md)


def write_tables(config: Config, score_files: list[Path], published_path: Path, out: Path) -> None:
    """Gather ``score_files`` into ``out/scores/scores.csv`` and write every table under ``out/tables``."""
    scores = pd.concat([pd.read_csv(f, keep_default_na=False) for f in score_files], ignore_index=True)
    scores["degenerate"] = scores["degenerate"].astype(str) == "True"
    scores = scores.sort_values(["dataset", "model", "method", "metric", "domain", "auc", "protocol", "ranking",
                                 "sample_id"], kind="stable").reset_index(drop=True)
    files.write_csv(scores, out / "scores" / "scores.csv")
    resamples, seed = config.section("evaluation")["bootstrap"], config.seed
    label = {m: spec.label for m, spec in config.methods.items()}
    tables = out / "tables"
    protocol = config.section("evaluation")["protocol"]

    published = pd.read_csv(published_path, comment="#")
    t1 = table1(table1_scores(scores, config, protocol), config, published, resamples, seed)
    note = offline_note(config)
    write(t1, table1_markdown(t1, table1_caption(config, protocol), note), tables, "table1")
    files.write_csv(table1_wide(t1), tables / "table1_wide.csv")
    files.write_text(tables / "table1.tex", table1_latex(t1))
    other = other_protocol(protocol)
    t1 = table1(table1_scores(scores, config, other), config, published, resamples, seed)
    write(t1, table1_markdown(t1, table1_caption(config, other), note), tables, f"table1_{other}")
    every_model = table1_scores(scores, config, protocol, first_models=False)
    for (dataset, model), cells in every_model.groupby(["dataset", "model"], sort=True):
        t1 = table1(cells, config, published, resamples, seed)
        write(t1, table1_markdown(t1, table1_caption(config, protocol, first_models=False)
                                  + f" Data set {dataset}, model {model}.", offline_note(config, [dataset])),
              tables, f"table1_{dataset}_{model}")

    for domain in ("pixel", "wavelet"):
        ranking = same_domain_ranking(config, domain)
        for auc in ("paper", "trapezoid"):
            part = scores[scores["metric"].isin(METRICS) & (scores["domain"] == domain) & (scores["auc"] == auc)
                          & (scores["protocol"] == protocol) & (scores["ranking"] == ranking)]
            summary = summarise(part, ["dataset", "model", "method", "metric"], resamples, seed)
            summary = summary.assign(label=summary["method"].map(label), cell=summary.apply(cell, axis=1))
            caption = (f"Every method in the {domain} domain, {auc} AUC, `{protocol}` protocol"
                       + (f", every method's wavelet map ranked `{ranking}`" if domain == "wavelet" else "")
                       + f". {degenerate_note(summary)}")
            write(summary.drop(columns="cell"),
                  markdown(summary, "label", ["dataset", "model", "metric"]) + f"\n{caption}\n",
                  tables, f"table1_{domain}_{auc}")

    for name, selector in (("mu_fidelity", (scores["metric"] == "mu_fidelity") & (scores["protocol"] == protocol)),
                           ("completeness", scores["metric"] == "completeness_error"),
                           ("localisation", scores["metric"].str.startswith("localisation"))):
        summary = summarise(scores[selector], ["dataset", "model", "method", "metric"], resamples, seed)
        summary = summary.assign(label=summary["method"].map(label) + summary["metric"].str.extract(
            r"(@.*)$", expand=False).fillna(""), cell=summary.apply(cell, axis=1) if len(summary) else [])
        md = markdown(summary, "label", ["dataset", "model"]) if len(summary) else "(no values)\n"
        write(summary.drop(columns="cell"), md, tables, name)
    sensitivity = protocol_sensitivity(scores, config, protocol)
    write(sensitivity, protocol_sensitivity_markdown(sensitivity, config), tables, "protocol_sensitivity")
    conservation = lrp_conservation(scores, label)
    write(conservation, lrp_conservation_markdown(conservation), tables, "lrp_conservation")
    shares = scale_shares(scores, label, resamples, seed)
    write(shares.drop(columns="cell"), scales_markdown(shares), tables, "scales")
    appendix = appendix_metrics(scores, config, resamples, seed)  # evaluation.metrics, mu-fidelity
    write(appendix, appendix_markdown(appendix, protocol), tables, "appendix_metrics")
    files.write_text(tables / "appendix_metrics.tex", appendix_latex(appendix))
    baselines_table = appendix_baselines(scores, config, resamples, seed)  # Ins., Del., Faith., both domains, AUCs
    write(baselines_table, appendix_baselines_markdown(baselines_table, config), tables, "appendix_baselines")
    files.write_text(tables / "appendix_baselines.tex", appendix_baselines_latex(baselines_table))
    files.write_json(tables / "provenance.json", files.provenance(
        stage="tables", config=dict(config.raw), score_files=[str(f) for f in score_files]))
