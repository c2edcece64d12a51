"""Stage ``timings``: wall time, CPU time and peak memory per rule and per (data set, method), from every job's
Snakemake benchmark file (:func:`workflow.lib.reporting.timings.write_timings`).

``python -m workflow.scripts.timings --benchmarks results/NAME/benchmarks --out results/NAME/tables``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workflow.lib.reporting.timings import write_timings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmarks", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    write_timings(args.benchmarks, args.out)


if __name__ == "__main__":
    main()
