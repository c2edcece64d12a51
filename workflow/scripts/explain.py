"""Stage ``explain``: attributions of one shard of a data set's evaluated inputs by one method
(:func:`workflow.lib.attribution.explain_shard`).

``python -m workflow.scripts.explain --config results/NAME/config.json --dataset D --model model.pt --method M
--shard K --out FILE.pt``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workflow.lib.attribution import explain_shard
from workflow.lib.config import Config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="results/NAME/config.json")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", type=Path, required=True, help="model.pt written by the train rule")
    parser.add_argument("--method", required=True)
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    explain_shard(Config.load(args.config), args.dataset, args.model, args.method, args.shard, args.out)


if __name__ == "__main__":
    main()
