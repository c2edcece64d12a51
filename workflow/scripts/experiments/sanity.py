"""Stage of the ``sanity`` target (:mod:`workflow.lib.experiments.sanity`): randomisation sanity checks.

``python -m workflow.scripts.experiments.sanity shuffled --config CONFIG --dataset D --model M --out DIR``,
``run --config CONFIG --dataset D --model model.pt [--shuffled model.pt] --rows rows.csv --examples examples.pt``
and ``report --config CONFIG --rows rows.csv ... --examples examples.pt ... --out results/NAME``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workflow.lib.config import Config
from workflow.lib.experiments import sanity


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True)
    shuffled = sub.add_parser("shuffled", help="train a model on shuffled labels (data randomisation)")
    shuffled.add_argument("--dataset", required=True)
    shuffled.add_argument("--model", required=True, help="the model's name in datasets.<dataset>.models")
    shuffled.add_argument("--out", type=Path, required=True, help="folder of model.pt and metrics.json")
    run = sub.add_parser("run", help="every randomisation test of one (data set, model): rows.csv, examples.pt")
    run.add_argument("--dataset", required=True)
    run.add_argument("--model", type=Path, required=True, help="model.pt written by the train rule")
    run.add_argument("--shuffled", type=Path, default=None, help="the model trained on shuffled labels")
    run.add_argument("--rows", type=Path, required=True)
    run.add_argument("--examples", type=Path, required=True)
    rep = sub.add_parser("report", help="tables/randomisation and figures/randomisation_<modality>")
    rep.add_argument("--rows", type=Path, nargs="+", required=True)
    rep.add_argument("--examples", type=Path, nargs="+", required=True)
    rep.add_argument("--out", type=Path, required=True, help="results/NAME")
    for stage in (shuffled, run, rep):
        stage.add_argument("--config", type=Path, required=True, help="results/NAME/config.json")
    args = parser.parse_args(argv)
    config = Config.load(args.config)
    if args.stage == "shuffled":
        sanity.train_shuffled(config, args.dataset, args.model, args.out)
    elif args.stage == "run":
        sanity.run(config, args.dataset, args.model.parent.name, args.model, args.shuffled, args.rows, args.examples)
    else:
        sanity.report(config, args.rows, args.examples, args.out)


if __name__ == "__main__":
    main()
