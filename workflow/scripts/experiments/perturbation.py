"""Stage of the ``perturbation`` target (:mod:`workflow.lib.experiments.perturbation`): meaningful perturbation in
the wavelet domain, sparsity against the class score.

``python -m workflow.scripts.experiments.perturbation optimise --config CONFIG --model model.pt --rows rows.csv
--examples examples.pt`` and ``report --config CONFIG --rows rows.csv --examples examples.pt --out results/NAME``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workflow.lib.config import Config
from workflow.lib.experiments import perturbation


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True)
    opt = sub.add_parser("optimise", help="optimise the masks: rows.csv and examples.pt")
    opt.add_argument("--config", type=Path, required=True, help="results/NAME/config.json")
    opt.add_argument("--dataset", default=None, help="images data set (default: the first of the config)")
    opt.add_argument("--model", type=Path, required=True, help="model.pt written by the train rule")
    opt.add_argument("--rows", type=Path, required=True)
    opt.add_argument("--examples", type=Path, required=True)
    rep = sub.add_parser("report", help="tables and figures from rows.csv and examples.pt")
    rep.add_argument("--config", type=Path, required=True)
    rep.add_argument("--rows", type=Path, required=True)
    rep.add_argument("--examples", type=Path, required=True)
    rep.add_argument("--out", type=Path, required=True, help="results/NAME")
    args = parser.parse_args(argv)
    config = Config.load(args.config)
    if "perturbation" not in config.raw:
        raise ValueError(f"{args.config}: no perturbation section")
    if args.stage == "optimise":
        perturbation.optimise(config, args.dataset or config.experiment_dataset("perturbation"), args.model,
                              args.rows, args.examples)
    else:
        perturbation.report(config, args.rows, args.examples, args.out)


if __name__ == "__main__":
    main()
