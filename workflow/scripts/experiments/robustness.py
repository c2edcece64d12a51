"""Stage of the ``robustness`` target (:mod:`workflow.lib.experiments.robustness`): which wavelet scales each model
relies on, and how robust it is.

``python -m workflow.scripts.experiments.robustness {prepare,model,evaluate,table} --config CONFIG ...``: the
offline texture set; one model trained (or its checkpoint fetched) with one training seed; its accuracies and
scale shares; the tables and figure over every model and seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workflow.lib.config import Config
from workflow.lib.experiments import robustness


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workflow.scripts.experiments.robustness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="write the offline texture set")
    p.add_argument("--out", type=Path, required=True)
    m = sub.add_parser("model", help="train a model or fetch its checkpoint")
    m.add_argument("--name", required=True)
    m.add_argument("--seed", type=int, required=True, help="training seed (one of robustness.seeds)")
    m.add_argument("--out", type=Path, required=True)
    e = sub.add_parser("evaluate", help="accuracies and scale shares of one model")
    e.add_argument("--name", required=True)
    e.add_argument("--seed", type=int, required=True, help="the model's training seed")
    e.add_argument("--model", type=Path, required=True)
    e.add_argument("--scores", type=Path, required=True)
    e.add_argument("--summary", type=Path, required=True)
    t = sub.add_parser("table", help="tables and figure over every model")
    t.add_argument("--scores", type=Path, nargs="+", required=True)
    t.add_argument("--summaries", type=Path, nargs="+", required=True)
    t.add_argument("--tables", type=Path, required=True, help="folder of robustness_scales.{csv,md,tex}")
    t.add_argument("--figure", type=Path, required=True)
    for s in (p, m, e, t):
        s.add_argument("--config", type=Path, required=True, help="results/NAME/config.json")
    args = parser.parse_args(argv)
    config = Config.load(args.config)
    if args.command == "prepare":
        robustness.prepare(config, args.out)
    elif args.command == "model":
        robustness.build_model(config, args.name, args.seed, args.out)
    elif args.command == "evaluate":
        robustness.evaluate(config, args.name, args.seed, args.model, args.scores, args.summary)
    else:
        robustness.write_tables(config, args.scores, args.summaries, args.tables, args.figure)


if __name__ == "__main__":
    main()
