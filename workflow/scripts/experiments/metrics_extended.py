"""Stage of the ``metrics_extended`` target (:mod:`workflow.lib.experiments.metrics_extended`): ROAD, stability,
complexity and the agreement of the metrics.

``python -m workflow.scripts.experiments.metrics_extended run --config CONFIG --dataset D --model model.pt
--attributions DIR --rows rows.csv --curves curves.csv`` (``DIR/{method}/{shard}.pt``: the explain stage's files)
and ``report --config CONFIG --rows rows.csv ... --scores scores.csv [--replicates seed scores ...] --out
results/NAME``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workflow.lib.config import Config
from workflow.lib.experiments import metrics_extended


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True)
    run = sub.add_parser("run", help="ROAD, stability and complexity of one (data set, model)")
    run.add_argument("--dataset", required=True)
    run.add_argument("--model", type=Path, required=True, help="model.pt written by the train rule")
    run.add_argument("--attributions", type=Path, required=True, help="results/NAME/attributions/DATASET/MODEL")
    run.add_argument("--rows", type=Path, required=True)
    run.add_argument("--curves", type=Path, required=True)
    rep = sub.add_parser("report", help="tables road, stability, complexity, metric_agreement")
    rep.add_argument("--rows", type=Path, nargs="+", required=True)
    rep.add_argument("--scores", type=Path, required=True, help="results/NAME/scores/scores.csv")
    rep.add_argument("--replicates", type=Path, nargs="*", default=[], help="seeds/SEED/scores/D/M/METHOD.csv")
    rep.add_argument("--out", type=Path, required=True, help="results/NAME")
    for stage in (run, rep):
        stage.add_argument("--config", type=Path, required=True, help="results/NAME/config.json")
    args = parser.parse_args(argv)
    config = Config.load(args.config)
    if args.stage == "run":
        methods = metrics_extended.settings(config)["methods"]
        shards = [f"{s}.pt" for s in range(config.shards)]
        paths = {m: [args.attributions / m / s for s in shards] for m in methods}
        metrics_extended.run(config, args.dataset, args.model.parent.name, args.model, paths, args.rows, args.curves)
    else:
        metrics_extended.report(config, args.rows, args.scores, args.replicates, args.out)


if __name__ == "__main__":
    main()
