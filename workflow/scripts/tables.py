"""Stage ``tables``: every per-sample score gathered into ``scores/scores.csv`` and the benchmark's tables
(:func:`workflow.lib.reporting.tables.write_tables`).

``python -m workflow.scripts.tables --config results/NAME/config.json --scores FILE... --published table1.csv
--out results/NAME``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workflow.lib.config import Config
from workflow.lib.reporting.tables import write_tables


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--scores", type=Path, nargs="+", required=True, help="per-shard score CSVs")
    parser.add_argument("--published", type=Path, default=Path("results/published/table1.csv"))
    parser.add_argument("--out", type=Path, required=True, help="results/NAME")
    args = parser.parse_args(argv)
    write_tables(Config.load(args.config), args.scores, args.published, args.out)


if __name__ == "__main__":
    main()
