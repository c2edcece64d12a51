"""Stage ``prepare_data``: write (offline stand-ins), download or locate one data set
(:func:`workflow.lib.data.prepare`).

``python -m workflow.scripts.prepare_data --config CONFIG --key KEY [--resources DIR] [--out data.json]`` prints
the prepared folder; ``--out`` also writes it with its provenance. ``--info`` prints each split's size instead.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workflow.lib import data, files
from workflow.lib.config import Config
from workflow.lib.models.preprocessing import ImagePreprocessing


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="results/NAME/config.json or any config file")
    parser.add_argument("--key", required=True, help="the data set's key in `datasets`")
    parser.add_argument("--resources", type=Path, help="where data sets lie (default: the config's `resources`)")
    parser.add_argument("--out", type=Path, help="also write {folder, provenance} to this JSON file (atomic)")
    parser.add_argument("--info", action="store_true", help="print the size of each split as JSON")
    args = parser.parse_args(argv)
    config = Config.load(args.config)
    spec, resources = config.dataset(args.key), args.resources or config.resources
    if args.info:  # images decoded as the data set's first model sees them
        preprocessing = ImagePreprocessing.of(spec.models[0]) if spec.modality == "images" else None
        splits = ["test"] if spec.modality == "images" else ["train", "val", "test"]
        sizes = {}
        for s in splits:
            d = data.load(spec, s, resources, preprocessing=preprocessing)
            sizes[s] = {"n": len(d), "n_classes": d.n_classes, "x": list(d.x.shape)}
        print(json.dumps(sizes, indent=2))
        return
    folder = data.prepare(spec, resources)
    if args.out:
        files.write_json(args.out, {"folder": str(folder), "provenance": files.provenance(
            stage="prepare_data", dataset=args.key, config=config.raw["datasets"][args.key])})
    print(folder)


if __name__ == "__main__":
    main()
