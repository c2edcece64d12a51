"""Train (or, for pretrained models, only score) a registry model on a prepared data set.

Outputs in ``out_dir`` (both written atomically): ``model.pt`` (``models.save`` checkpoint) and
``metrics.json`` with ``test_accuracy`` (whole test split), ``eval_accuracy`` (the evaluated
``n_inputs`` subset, CLI only), ``val_accuracy``, ``train_accuracy``, ``epochs`` (run; 0 = not
trained), ``best_epoch``, ``seconds``, ``seed``, split sizes, the training config and provenance.

A pretrained image model is not trained: its top-1 accuracy over the whole image folder is measured by streaming
the files through a ``DataLoader`` (:func:`image_accuracy`: one batch decoded at a time, so memory does not grow
with the folder), and its preprocessing (:class:`workflow.scripts.models.ImagePreprocessing`) is recorded in the
checkpoint's ``meta["preprocessing"]``, which every later stage reads.

CLI (run from the repository root)::

    python -m workflow.scripts.train --config CONFIG.yaml --key audio --model audio_resnet \\
        --resources resources --out results/default/models/audio/audio_resnet
    python -m workflow.scripts.train --dataset-config SECTION.json --model resnet3d \\
        --resources resources --out DIR [--training-config TRAINING.yaml] [--epochs N] [--seed N]

``--config`` is the full config (``datasets:`` and ``training:``); ``--dataset-config`` a single
dataset section (the training section then comes from ``--training-config`` or the defaults).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from workflow.scripts import datasets, io, models

DEFAULT_TRAINING = {"epochs": 30, "patience": 5, "lr": 0.001, "batch_size": 16, "seed": 42, "threads": 1}


def _training_cfg(cfg: dict | None) -> dict:
    cfg = {**DEFAULT_TRAINING, **(cfg or {})}
    for k in ("epochs", "patience", "batch_size", "seed", "threads"):
        if k == "patience" and cfg[k] is None:
            continue
        if not isinstance(cfg[k], int) or cfg[k] < 0 or (k in ("batch_size", "threads") and cfg[k] == 0):
            raise ValueError(f"training.{k}: expected a non-negative integer, got {cfg[k]!r}")
    if not float(cfg["lr"]) > 0:
        raise ValueError(f"training.lr: expected > 0, got {cfg['lr']!r}")
    return cfg


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Top-1 classes ``[N]`` of ``model`` (eval mode) on ``x`` ``[N, ...]``."""
    model.eval()
    out = [model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def accuracy(model: nn.Module, split: datasets.Split, batch_size: int = 16) -> float:
    """Top-1 accuracy in [0, 1] (NaN for an empty split)."""
    if len(split) == 0:
        return float("nan")
    return (predict(model, split.x, batch_size) == split.y).float().mean().item()


@torch.no_grad()
def image_accuracy(model: nn.Module, index: datasets.ImageIndex, preprocessing: models.ImagePreprocessing,
                   batch_size: int = 32, workers: int = 0, progress: bool = True) -> float:
    """Top-1 accuracy of ``model`` over every file of ``index``, decoded ``batch_size`` at a time by a
    ``DataLoader`` with ``workers`` processes (the job's threads) with the model's own ``preprocessing`` and
    normalisation; a file that cannot be decoded stops it with a ``ValueError`` naming the file."""
    loader = torch.utils.data.DataLoader(datasets.ImageFiles(index.files, index.labels, preprocessing),
                                         batch_size=batch_size, num_workers=workers)
    normalize = preprocessing.normalize()
    device = next(model.parameters()).device
    model.eval()
    correct = 0
    for x, y in tqdm(loader, desc="top-1 over the image folder", unit="batch", disable=not progress):
        correct += int((model(normalize(x).to(device)).argmax(1).cpu() == y).sum())
    return correct / max(1, len(index))


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def train(
    model: nn.Module,
    train_split: datasets.Split,
    val_split: datasets.Split,
    test_split: datasets.Split,
    cfg_training: dict,
    out_dir: Path,
    meta: dict | None = None,
) -> dict:
    """Adam (lr: ``training.lr`` times ``models.lr_scale(model)``) + cross-entropy, seeded shuffling and
    augmentation (``models.augment``), on ``training.threads`` CPU threads (the result then does not depend on
    the machine's thread count: ``torch.set_num_threads`` changes the order of floating-point sums).

    ``training.patience`` an integer: early stopping on validation accuracy (ties broken by validation loss)
    after ``patience`` epochs without progress, or as soon as the validation accuracy is 1, and the best
    weights restored. ``patience: null``: a fixed budget of exactly ``training.epochs`` epochs, the last
    weights kept (no decision on a noisy validation set). The model is saved to ``out_dir/model.pt`` and
    scored on ``test_split``. Returns the metrics written to ``out_dir/metrics.json`` (``lr``: the rate used).
    The model is left in eval mode.
    """
    cfg = _training_cfg(cfg_training)
    out_dir = Path(out_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg["threads"])
    try:
        return _train(model, train_split, val_split, test_split, cfg, out_dir, meta)
    finally:
        torch.set_num_threads(threads)


def _train(model: nn.Module, train_split: datasets.Split, val_split: datasets.Split, test_split: datasets.Split,
           cfg: dict, out_dir: Path, meta: dict | None) -> dict:
    _seed_everything(cfg["seed"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    lr = float(cfg["lr"]) * models.lr_scale(model)  # per-model multiplier (models.LR_SCALE)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    bs = cfg["batch_size"]
    start = time.perf_counter()
    best = (-1.0, float("inf"))
    best_state, best_epoch, epochs_run, stale = copy.deepcopy(model.state_dict()), 0, 0, 0
    history = []
    bar = tqdm(range(1, cfg["epochs"] + 1), desc="train", unit="epoch", leave=False)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(train_split), generator=gen)
        total = 0.0
        for i in range(0, len(order), bs):
            idx = order[i:i + bs]
            if len(idx) < 2 and len(order) > 1:  # BatchNorm needs > 1 sample per batch
                continue
            x = models.augment(model, train_split.x[idx], gen)  # seeded; identity for most
            loss = F.cross_entropy(model(x), train_split.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(val_split.x[i:i + bs]) for i in range(0, len(val_split), bs)])
            val_loss = F.cross_entropy(logits, val_split.y).item()
            val_acc = (logits.argmax(1) == val_split.y).float().mean().item()
        epochs_run = epoch
        history.append({"epoch": epoch, "train_loss": total / max(1, len(order)),
                        "val_loss": val_loss, "val_accuracy": val_acc})
        bar.set_postfix(loss=f"{total / max(1, len(order)):.3f}", val_acc=f"{val_acc:.3f}")
        if cfg["patience"] is None:  # fixed budget: the last epoch's weights
            best_state, best_epoch = model.state_dict(), epoch
        elif (val_acc, -val_loss) > (best[0], -best[1]):
            best, best_state, best_epoch, stale = (val_acc, val_loss), copy.deepcopy(
                model.state_dict()), epoch, 0
            if val_acc >= 1.0:  # every validation item right: stop (CPU budget)
                break
        else:
            stale += 1
            if stale >= cfg["patience"]:
                break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    seconds = time.perf_counter() - start
    metrics = {
        "test_accuracy": accuracy(model, test_split, bs),
        "val_accuracy": accuracy(model, val_split, bs),
        "train_accuracy": accuracy(model, train_split, bs),
        "epochs": epochs_run,
        "best_epoch": best_epoch,
        "seconds": seconds,
        "seed": cfg["seed"],
        "n_train": len(train_split), "n_val": len(val_split), "n_test": len(test_split),
        "training": cfg,
        "lr": lr,
        "history": history,
        **(meta or {}),
    }
    _write_outputs(model, metrics, out_dir)
    return metrics


def score_pretrained(model: nn.Module, test_accuracy: float, n_test: int, out_dir: Path, seconds: float,
                     seed: int = 42, meta: dict | None = None) -> dict:
    """The "no training" path: same outputs as ``train`` with ``epochs`` 0 and the measured ``test_accuracy``."""
    model.eval()
    metrics = {"test_accuracy": test_accuracy, "epochs": 0, "best_epoch": 0, "seed": seed, "n_train": 0,
               "n_val": 0, "n_test": n_test, "seconds": seconds, **(meta or {})}
    _write_outputs(model, metrics, Path(out_dir))
    return metrics


def _write_outputs(model: nn.Module, metrics: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    models.save(model, out_dir / "model.pt", meta={k: v for k, v in metrics.items()
                                                   if k != "history"})
    io.write_json(out_dir / "metrics.json", {**metrics, "provenance": io.provenance()})


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m workflow.scripts.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", type=Path, help="full config file (datasets: + training:)")
    src.add_argument("--dataset-config", type=Path, help="one dataset section (JSON or YAML)")
    ap.add_argument("--key", help="dataset key (required with --config)")
    ap.add_argument("--training-config", type=Path, help="training section (JSON or YAML)")
    ap.add_argument("--model", required=True, help=f"{models.available()} or timm:<name>")
    ap.add_argument("--resources", type=Path, default=Path("resources"))
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--epochs", type=int, help="override training.epochs")
    ap.add_argument("--seed", type=int, help="override training.seed")
    args = ap.parse_args(argv)

    whole = io.read_config(args.config or args.dataset_config)
    section = datasets.dataset_section(whole, args.key)
    key = section["_key"]
    training = dict(whole.get("training", {})) if args.config else {}
    if args.training_config:
        training.update(io.read_config(args.training_config))
    training.update(training.pop("per_model", {}).get(args.model, {}))  # this model's overrides
    if args.epochs is not None:
        training["epochs"] = args.epochs
    if args.seed is not None:
        training["seed"] = args.seed
    training = _training_cfg(training)

    datasets.prepare(key, section, args.resources)
    torch.manual_seed(training["seed"])
    if section["modality"] == "images":
        if not models.is_pretrained(args.model):
            raise ValueError(f"datasets.{key}.models ({args.model}): image models are pretrained (the images have "
                             "only a test split); give a timm name (timm:<name>) or efficientnet_lite0")
        preprocessing = models.ImagePreprocessing.of(args.model)
        index = datasets.image_folder(section, args.resources)
        meta = {"dataset": key, "model": args.model, "class_names": datasets.imagenet_names(),
                "preprocessing": preprocessing.as_dict()}
        model = models.build(args.model, 1000)
        start = time.perf_counter()
        workers = training["threads"] if training["threads"] > 1 else 0  # decoding processes: the job's threads
        top1 = image_accuracy(model, index, preprocessing, workers=workers)
        metrics = score_pretrained(model, top1, len(index), args.out, time.perf_counter() - start,
                                   training["seed"], meta)
        evaluated = datasets.load(section, "test", args.resources, preprocessing=preprocessing)
        evaluated.x = preprocessing.normalize()(evaluated.x)
    else:
        test_all = datasets.load(section, "test", args.resources, subset=False)
        evaluated = datasets.load(section, "test", args.resources)
        meta = {"dataset": key, "model": args.model, "class_names": list(test_all.class_names)}
        model = models.build(args.model, test_all.n_classes)
        train_split = datasets.load(section, "train", args.resources)
        val_split = datasets.load(section, "val", args.resources)
        metrics = train(model, train_split, val_split, test_all, training, args.out, meta)
    metrics["eval_accuracy"] = accuracy(model, evaluated)
    metrics["n_eval"] = len(evaluated)
    io.write_json(args.out / "metrics.json", {**metrics, "provenance": io.provenance()})
    print(json.dumps({k: metrics[k] for k in ("test_accuracy", "eval_accuracy", "epochs",
                                              "seconds")}, indent=2))
    return metrics


if __name__ == "__main__":
    main()
