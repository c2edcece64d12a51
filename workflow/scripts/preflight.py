"""Stage ``preflight``: check everything the run will read, before any other job (:mod:`workflow.lib.data.checks`).

``python -m workflow.scripts.preflight --config results/NAME/config.json [--out preflight.json]``: the report on
standard error; exit status 1 with every problem, one line each, when there is any; ``--out`` (JSON) otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from workflow.lib import files
from workflow.lib.config import Config
from workflow.lib.data import checks
from workflow.lib.experiments import architectures, robustness


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="results/NAME/config.json")
    parser.add_argument("--out", type=Path, help="write the report (JSON) here when there is no problem")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    config = Config.load(args.config)
    experiments = [lambda: robustness.settings(config)] if "robustness" in config.raw else []
    if "architectures" in config.raw:  # its settings, and its pretrained models' weights
        experiments.append(lambda: architectures.preflight(config))
    problems, report = checks.run(config, experiments)
    print("\n".join(["preflight:", *report]), file=sys.stderr)
    if problems:
        print("\n".join([f"preflight found {len(problems)} problem(s):", *[f"- {p}" for p in problems]]),
              file=sys.stderr)
        sys.exit(1)
    if args.out:
        files.write_json(args.out, files.provenance(stage="preflight", report=report,
                                                    seconds=round(time.perf_counter() - start, 2)))


if __name__ == "__main__":
    main()
