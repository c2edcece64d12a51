"""Stage of the ``audio_separation`` target (:mod:`workflow.lib.experiments.audio_separation`): the paper's audio
noise and overlap experiments, measured.

``python -m workflow.scripts.experiments.audio_separation run --config CONFIG --model model.pt --shard K --rows
OUT.csv --examples OUT.pt`` (one shard of the evaluated clips); ``report --config CONFIG --rows ... --examples ...
--out results/NAME`` (table, figure, example .wav files and spectrograms).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workflow.lib.config import Config
from workflow.lib.experiments import audio_separation


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True)
    one = sub.add_parser("run", help="one shard of the evaluated clips: rows CSV and examples")
    one.add_argument("--config", type=Path, required=True, help="results/NAME/config.json")
    one.add_argument("--model", type=Path, required=True, help="model.pt written by the train rule")
    one.add_argument("--shard", type=int, default=0)
    one.add_argument("--rows", type=Path, required=True)
    one.add_argument("--examples", type=Path, required=True)
    rep = sub.add_parser("report", help="table, figure, example .wav files and spectrograms")
    rep.add_argument("--config", type=Path, required=True)
    rep.add_argument("--rows", type=Path, nargs="+", required=True)
    rep.add_argument("--examples", type=Path, nargs="+", required=True)
    rep.add_argument("--out", type=Path, required=True, help="results/NAME")
    args = parser.parse_args(argv)
    config = Config.load(args.config)
    if args.stage == "run":
        audio_separation.run(config, args.model, args.shard, args.rows, args.examples)
    else:
        audio_separation.report(config, args.rows, args.examples, args.out)


if __name__ == "__main__":
    main()
