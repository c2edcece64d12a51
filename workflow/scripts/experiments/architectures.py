"""Stage of the ``architectures`` target (:mod:`workflow.lib.experiments.architectures`): Table 1's methods and
metrics across model families.

``python -m workflow.scripts.experiments.architectures {prepare,model,evaluate,table} --config CONFIG ...``: the
offline texture set; one model trained (or its pretrained weights fetched); its explanations and scores; the
table and figure over every architecture.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workflow.lib.config import Config
from workflow.lib.experiments import architectures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workflow.scripts.experiments.architectures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="write the offline texture set")
    p.add_argument("--out", type=Path, required=True)
    m = sub.add_parser("model", help="train one model or fetch its pretrained weights")
    m.add_argument("--name", required=True, help="a key of architectures.models")
    m.add_argument("--out", type=Path, required=True, help="folder of model.pt and metrics.json")
    e = sub.add_parser("evaluate", help="explain and score one model with every method")
    e.add_argument("--name", required=True)
    e.add_argument("--model", type=Path, required=True)
    e.add_argument("--scores", type=Path, required=True)
    e.add_argument("--summary", type=Path, required=True)
    e.add_argument("--maps", type=Path, required=True)
    t = sub.add_parser("table", help="table and figure over every architecture")
    t.add_argument("--scores", type=Path, nargs="+", required=True)
    t.add_argument("--summaries", type=Path, nargs="+", required=True)
    t.add_argument("--maps", type=Path, nargs="+", required=True)
    t.add_argument("--tables", type=Path, required=True, help="folder of architectures.{csv,md}")
    t.add_argument("--figure", type=Path, required=True)
    for s in (p, m, e, t):
        s.add_argument("--config", type=Path, required=True, help="results/NAME/config.json")
    args = parser.parse_args(argv)
    config = Config.load(args.config)
    if args.command == "prepare":
        architectures.prepare(config, args.out)
    elif args.command == "model":
        architectures.build_model(config, args.name, args.out)
    elif args.command == "evaluate":
        architectures.evaluate(config, args.name, args.model, args.scores, args.summary, args.maps)
    else:
        architectures.write_tables(config, args.scores, args.summaries, args.maps, args.tables, args.figure)


if __name__ == "__main__":
    main()
