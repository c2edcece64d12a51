"""The timings table: wall time, CPU time and peak memory of every job of the run, from Snakemake's
``benchmark:`` files, summed per rule and per ``(dataset, method)``.

``results/NAME/benchmarks/{rule}/{wildcards}.tsv`` (one per job; ``s`` wall seconds, ``cpu_time`` CPU seconds,
``max_rss`` MB) -> ``tables/timings.{csv,md}``. The explain and score jobs' wildcards give the data set and the
method. A job that ran in an earlier invocation keeps its file, so the table describes the whole run's jobs,
whenever each of them ran.

"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workflow.lib import files

PER_METHOD_RULES = ("explain", "score")  # benchmarks/{rule}/{dataset}/{model}/{method}/{shard}.tsv


def read(benchmarks: Path) -> pd.DataFrame:
    """One row per job: rule, job (its wildcards), dataset and method (explain / score), wall_s, cpu_s, peak_mb."""
    rows = []
    for path in sorted(benchmarks.rglob("*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        if frame.empty:
            continue
        parts = path.relative_to(benchmarks).with_suffix("").parts
        rule, job = parts[0], "/".join(parts[1:])
        dataset, method = (parts[1], parts[3]) if rule in PER_METHOD_RULES else ("-", "-")
        last = frame.iloc[-1]
        rows.append((rule, job, dataset, method, float(last["s"]), float(last["cpu_time"]), float(last["max_rss"])))
    return pd.DataFrame(rows, columns=["rule", "job", "dataset", "method", "wall_s", "cpu_s", "peak_mb"])


def summary(jobs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    grouped = jobs.groupby(by, sort=True)
    return pd.DataFrame({"jobs": grouped.size(), "wall_s": grouped["wall_s"].sum(), "cpu_s": grouped["cpu_s"].sum(),
                         "peak_mb": grouped["peak_mb"].max()}).reset_index()


def markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_timings(benchmarks: Path, out: Path) -> None:
    jobs = read(benchmarks)
    per_rule = summary(jobs, ["rule"]).sort_values("wall_s", ascending=False)
    per_method = summary(jobs[jobs["rule"].isin(PER_METHOD_RULES)], ["dataset", "method"])
    total = pd.DataFrame([{"rule": "total", "jobs": len(jobs), "wall_s": jobs["wall_s"].sum(),
                           "cpu_s": jobs["cpu_s"].sum(), "peak_mb": jobs["peak_mb"].max()}])
    table = pd.concat([per_rule.assign(group="rule"), total.assign(group="rule"),
                       per_method.assign(group="dataset x method")], ignore_index=True)
    columns = ["group", "rule", "dataset", "method", "jobs", "wall_s", "cpu_s", "peak_mb"]
    files.write_csv(table.reindex(columns=columns).fillna("-"), out / "timings.csv")
    caption = ("Job time summed per rule (wall and CPU seconds of each job, including Python start-up and imports; "
               "jobs run side by side, so the sum of wall times exceeds the run's elapsed time) and peak resident "
               "memory (MB), then explain + score per (data set, method). From Snakemake's benchmark files.")
    files.write_text(out / "timings.md", markdown(pd.concat([per_rule, total], ignore_index=True)) + "\n"
                  + markdown(per_method) + f"\n{caption}\n")
