"""Stage ``speed``: the speed suite's ratios, measured in one process (:func:`workflow.lib.speed.write_speed`).

``python -m workflow.scripts.speed --config results/NAME/config.json --out results/NAME/speed/speed.csv``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workflow.lib.config import Config
from workflow.lib.speed import write_speed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    write_speed(Config.load(args.config), args.out)


if __name__ == "__main__":
    main()
