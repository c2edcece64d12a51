"""Stage ``score``: insertion, deletion, faithfulness, mu-fidelity, localisation ... of one shard of attributions
(:func:`workflow.lib.scoring.score_shard`).

``python -m workflow.scripts.score --config results/NAME/config.json --dataset D --model model.pt --method M
--attributions FILE.pt --scores OUT.csv --curves OUT.csv``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workflow.lib.config import Config
from workflow.lib.scoring import score_shard


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--attributions", type=Path, required=True)
    parser.add_argument("--scores", type=Path, required=True)
    parser.add_argument("--curves", type=Path, required=True)
    args = parser.parse_args(argv)
    score_shard(Config.load(args.config), args.dataset, args.model, args.method, args.attributions, args.scores,
                args.curves)


if __name__ == "__main__":
    main()
