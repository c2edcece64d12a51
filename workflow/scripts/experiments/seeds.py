"""Stage of the ``seed_spread`` target (:mod:`workflow.lib.experiments.seeds`): Table 1's spread over training seeds.

``python -m workflow.scripts.experiments.seeds train --config CONFIG --dataset D --model M --seed S --out
results/NAME/seeds/S`` (train with one seed); ``replicate`` with the same arguments and ``--method METHOD``
(explain and score one method on that model); ``table --config CONFIG --main scores.csv --replicates FILE...
--out results/NAME/tables``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workflow.lib.config import Config
from workflow.lib.experiments import seeds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for command, text in (("train", "train a model with one seed"),
                          ("replicate", "explain and score one method on a model trained with one seed")):
        one = sub.add_parser(command, help=text)
        one.add_argument("--config", type=Path, required=True)
        one.add_argument("--dataset", required=True)
        one.add_argument("--model", required=True)
        if command == "replicate":
            one.add_argument("--method", required=True)
        one.add_argument("--seed", type=int, required=True)
        one.add_argument("--out", type=Path, required=True, help="results/NAME/seeds/SEED")
    tab = sub.add_parser("table", help="tables/seed_spread.{csv,md}")
    tab.add_argument("--config", type=Path, required=True)
    tab.add_argument("--main", type=Path, required=True, help="results/NAME/scores/scores.csv")
    tab.add_argument("--replicates", type=Path, nargs="*", default=[])
    tab.add_argument("--out", type=Path, required=True, help="results/NAME/tables")
    args = parser.parse_args(argv)
    config = Config.load(args.config)
    if args.command == "train":
        seeds.train(config, args.dataset, args.model, args.seed, args.out)
    elif args.command == "replicate":
        seeds.replicate(config, args.dataset, args.model, args.method, args.seed, args.out)
    else:
        seeds.write_spread(config, args.main, args.replicates, args.out)


if __name__ == "__main__":
    main()
