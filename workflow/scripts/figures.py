"""Stage ``figures``: example maps, insertion / deletion curves and per-scale importance of one (data set, model)
(:func:`workflow.lib.reporting.figures.write_figures`).

``python -m workflow.scripts.figures --config results/NAME/config.json --dataset D --model M --scores scores.csv
--out results/NAME/figures``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workflow.lib.config import Config
from workflow.lib.reporting.figures import write_figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--scores", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    write_figures(Config.load(args.config), args.dataset, args.model, args.scores, args.out)


if __name__ == "__main__":
    main()
