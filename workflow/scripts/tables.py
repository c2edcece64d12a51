"""Gather every per-sample score into ``scores/scores.csv`` and write the benchmark's tables.

Each cell is a mean over the evaluated inputs with a bootstrap 95 % interval (``evaluation.bootstrap``
resamples, seeded). Tables (CSV long format + Markdown; Table 1 also LaTeX) under ``results/NAME/tables/``:

- ``table1``: the paper's layout. Rows: methods; columns: modality x (Insertion, Deletion, Faithfulness),
  paper AUC, WAM in the wavelet domain and baselines in the pixel domain (the paper's protocol), on the first
  model of each modality; the published value beside each cell and the difference.
- ``table1_{pixel,wavelet}_{paper,trapezoid}``: every method in the same domain and AUC, every model.
- ``mu_fidelity``, ``localisation`` (offline sets; WAM also per scale), ``scales`` (WAM's share per level).

CSV files are written with fixed float formatting: two runs give byte-identical tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from workflow.scripts import io

METRICS = ("insertion", "deletion", "faithfulness")
HIGHER_IS_BETTER = {"insertion": True, "deletion": False, "faithfulness": True}
MODALITIES = ("audio", "images", "volumes")
ARROWS = {True: "$\\uparrow$", False: "$\\downarrow$"}


def bootstrap(values: np.ndarray, resamples: int, seed: int) -> tuple[float, float, float]:
    """Mean and bootstrap 95 % percentile interval of the mean."""
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return float(values[0]), float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarise(scores: pd.DataFrame, by: list[str], resamples: int, seed: int) -> pd.DataFrame:
    """One row per group of ``by``: ``n, mean, ci_low, ci_high``."""
    rows = []
    for key, group in scores.groupby(by, sort=True):
        mean, low, high = bootstrap(group["value"].to_numpy(), resamples, seed)
        rows.append((*key, len(group), mean, low, high))
    return pd.DataFrame(rows, columns=[*by, "n", "mean", "ci_low", "ci_high"])


def cell(row: pd.Series) -> str:
    return f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


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


def paper_protocol(scores: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Scores of Table 1: paper AUC, WAM in the wavelet domain, baselines in the pixel domain, first model
    of each modality's first data set."""
    first = {}
    for dataset, cfg in config["datasets"].items():
        first.setdefault(cfg["modality"], (dataset, cfg["models"][0]))
    kind = {m: spec["kind"] for m, spec in config["methods"].items()}
    keep = scores["metric"].isin(METRICS) & (scores["auc"] == "paper")
    keep &= scores.apply(lambda r: (r["dataset"], r["model"]) in first.values(), axis=1)
    keep &= scores["domain"] == scores["method"].map(lambda m: "wavelet" if kind[m] == "wam" else "pixel")
    return scores[keep]


def table1(scores: pd.DataFrame, config: dict, published: pd.DataFrame, resamples: int, seed: int
           ) -> pd.DataFrame:
    modality_of = {d: cfg["modality"] for d, cfg in config["datasets"].items()}
    label = {m: spec["label"] for m, spec in config["methods"].items()}
    summary = summarise(paper_protocol(scores, config), ["dataset", "model", "method", "metric"], resamples, seed)
    summary.insert(0, "modality", summary["dataset"].map(modality_of))
    summary.insert(0, "label", summary["method"].map(label))
    reference = published.melt(id_vars=["method", "modality"], value_vars=list(METRICS), var_name="metric",
                               value_name="published").rename(columns={"method": "label"})
    summary = summary.merge(reference, on=["label", "modality", "metric"], how="left")
    summary["difference"] = summary["mean"] - summary["published"]
    order = {m: i for i, m in enumerate(config["methods"])}
    return summary.sort_values(["modality", "metric", "method"], key=lambda s: s.map(order) if s.name == "method"
                               else s).reset_index(drop=True)


def table1_markdown(t1: pd.DataFrame) -> str:
    t1 = t1.assign(cell=t1.apply(
        lambda r: cell(r) + ("" if pd.isna(r["published"]) else f" (paper {r['published']:.3f}, "
                                                               f"{r['difference']:+.3f})"), axis=1))
    return markdown(t1, "label", ["modality", "metric"])


def table1_latex(t1: pd.DataFrame) -> str:
    """booktabs; in each column the best mean bold, the second underlined (deletion: lower is better)."""
    columns = [(mod, met) for mod in MODALITIES for met in METRICS if ((t1["modality"] == mod) &
                                                                        (t1["metric"] == met)).any()]
    labels = list(dict.fromkeys(t1["label"]))
    marks: dict[tuple[str, str, str], str] = {}
    for mod, met in columns:
        col = t1[(t1["modality"] == mod) & (t1["metric"] == met)]
        ranked = col.sort_values("mean", ascending=not HIGHER_IS_BETTER[met])["label"].tolist()
        for rank, lab in enumerate(ranked[:2]):
            marks[(lab, mod, met)] = ("\\textbf{%s}", "\\underline{%s}")[rank]
    modalities = list(dict.fromkeys(m for m, _ in columns))
    lines = ["\\begin{tabular}{l" + "c" * len(columns) + "}", "\\toprule",
             " & " + " & ".join(f"\\multicolumn{{{sum(1 for m, _ in columns if m == mod)}}}{{c}}{{{mod.title()}}}"
                                for mod in modalities) + " \\\\",
             "Method & " + " & ".join(f"{met.title()} ({ARROWS[HIGHER_IS_BETTER[met]]})" for _, met in columns)
             + " \\\\", "\\midrule"]
    for lab in labels:
        cells = []
        for mod, met in columns:
            row = t1[(t1["label"] == lab) & (t1["modality"] == mod) & (t1["metric"] == met)]
            if row.empty:
                cells.append("--")
                continue
            value = f"{row['mean'].iloc[0]:.3f}"
            cells.append(marks.get((lab, mod, met), "%s") % value)
        lines.append(lab.replace("_", "\\_") + " & " + " & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def write(frame: pd.DataFrame, md: str, out: Path, name: str) -> None:
    io.write_csv(frame, out / f"{name}.csv")
    io.write_text(out / f"{name}.md", md)


def run(config: dict, score_files: list[Path], published_path: Path, out: Path) -> None:
    scores = pd.concat([pd.read_csv(f, keep_default_na=False) for f in score_files], ignore_index=True)
    scores = scores.sort_values(["dataset", "model", "method", "metric", "domain", "auc", "sample_id"],
                                kind="stable").reset_index(drop=True)
    io.write_csv(scores, out / "scores" / "scores.csv")
    resamples, seed = config["evaluation"]["bootstrap"], config["seed"]
    label = {m: spec["label"] for m, spec in config["methods"].items()}
    tables = out / "tables"

    published = pd.read_csv(published_path, comment="#")
    t1 = table1(scores, config, published, resamples, seed)
    write(t1, table1_markdown(t1), tables, "table1")
    io.write_text(tables / "table1.tex", table1_latex(t1))

    for domain in ("pixel", "wavelet"):
        for auc in ("paper", "trapezoid"):
            part = scores[scores["metric"].isin(METRICS) & (scores["domain"] == domain) & (scores["auc"] == auc)]
            summary = summarise(part, ["dataset", "model", "method", "metric"], resamples, seed)
            summary = summary.assign(label=summary["method"].map(label), cell=summary.apply(cell, axis=1))
            write(summary.drop(columns="cell"), markdown(summary, "label", ["dataset", "model", "metric"]),
                  tables, f"table1_{domain}_{auc}")

    for name, selector in (("mu_fidelity", scores["metric"] == "mu_fidelity"),
                           ("localisation", scores["metric"].str.startswith("localisation")),
                           ("scales", scores["metric"].str.startswith("scale_share"))):
        summary = summarise(scores[selector], ["dataset", "model", "method", "metric"], resamples, seed)
        summary = summary.assign(label=summary["method"].map(label) + summary["metric"].str.extract(
            r"(@.*)$", expand=False).fillna(""), cell=summary.apply(cell, axis=1) if len(summary) else [])
        md = markdown(summary, "label", ["dataset", "model"]) if len(summary) else "(no values)\n"
        write(summary.drop(columns="cell"), md, tables, name)
    io.write_json(tables / "provenance.json", io.provenance(
        stage="tables", config=config, score_files=[str(f) for f in score_files]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--scores", type=Path, nargs="+", required=True, help="per-shard score CSVs")
    parser.add_argument("--published", type=Path, default=Path("results/published/table1.csv"))
    parser.add_argument("--out", type=Path, required=True, help="results/NAME")
    args = parser.parse_args(argv)
    run(io.read_config(args.config), args.scores, args.published, args.out)


if __name__ == "__main__":
    main()
