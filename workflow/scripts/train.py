"""Stage ``train``: train one model on one data set, or measure a pretrained one (:func:`workflow.lib.training.fit`).

``python -m workflow.scripts.train --config results/NAME/config.json --key DATASET --model NAME --out DIR
[--epochs N] [--seed N]`` writes ``DIR/model.pt`` and ``DIR/metrics.json`` and prints the accuracies.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workflow.lib import training
from workflow.lib.config import Config


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="results/NAME/config.json or any config file")
    parser.add_argument("--key", required=True, help="the data set's key in `datasets`")
    parser.add_argument("--model", required=True, help="a registry model or timm:<name>")
    parser.add_argument("--resources", type=Path, help="where data sets lie (default: the config's `resources`)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--epochs", type=int, help="override training.epochs")
    parser.add_argument("--seed", type=int, help="override training.seed")
    args = parser.parse_args(argv)
    config = Config.load(args.config)
    spec = config.dataset(args.key)
    model = config.model(args.key, args.model, args.epochs, args.seed)
    metrics = training.fit(spec, model, args.resources or config.resources, args.out)
    print(json.dumps({k: metrics[k] for k in ("test_accuracy", "eval_accuracy", "epochs", "seconds")}, indent=2))
    return metrics


if __name__ == "__main__":
    main()
