"""Training of the models the DAG trains, and the accuracy of the pretrained ones.

:func:`train`: Adam and cross-entropy on a fixed number of epochs (``patience: null``) or with early stopping, on a
fixed number of CPU threads (the trained weights depend on it), seeded; :func:`score_pretrained` records a
pretrained model with the accuracy measured by :func:`image_hits`, which streams an image folder through a
``DataLoader`` (one batch decoded at a time, so memory does not grow with the folder).

Outputs in ``out_dir`` (both written atomically): ``model.pt`` (:func:`workflow.lib.models.zoo.save` checkpoint;
image models record their preprocessing in ``meta["preprocessing"]``) and ``metrics.json`` with
``test_accuracy`` (whole test split), ``eval_accuracy`` (the evaluated subset), ``val_accuracy``,
``train_accuracy``, ``epochs`` (run; 0 = not trained), ``best_epoch``, ``seconds``, ``seed``, split sizes, the
training config and provenance.

Example::

    >>> from torch import nn
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    >>> predict(model, torch.rand(5, 1, 2, 2), batch_size=2).shape
    torch.Size([5])
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from workflow.lib import data, files
from workflow.lib.config import DatasetSpec, ModelSpec, complete_training
from workflow.lib.data.base import Split
from workflow.lib.data.imagenet import ImageFiles, ImageIndex, class_names
from workflow.lib.models import zoo
from workflow.lib.models.preprocessing import ImagePreprocessing


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Top-1 classes ``[N]`` (CPU) of ``model`` (put in eval mode) on ``x`` ``[N, ...]``, ``batch_size`` at a time
    on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    out = [model(x[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def accuracy(model: nn.Module, split: Split, batch_size: int = 16) -> float:
    """Top-1 accuracy in [0, 1] (NaN for an empty split)."""
    if len(split) == 0:
        return float("nan")
    return (predict(model, split.x, batch_size) == split.y).float().mean().item()


@torch.no_grad()
def image_hits(model: nn.Module, index: ImageIndex, preprocessing: ImagePreprocessing,
               batch_size: int = 32, workers: int = 0, progress: bool = True) -> torch.Tensor:
    """``[N]`` bool: whether ``model``'s top-1 is right on each file of ``index``, the files decoded ``batch_size``
    at a time by a ``DataLoader`` with ``workers`` processes (the job's threads) with the model's own
    ``preprocessing`` and normalisation (one batch alive at a time: memory does not grow with the folder); a file
    that cannot be decoded stops it with a ``ValueError`` naming the file. The accuracy of any subset (the whole
    folder, the evaluated inputs) is the mean of its entries."""
    loader = torch.utils.data.DataLoader(ImageFiles(index.files, index.labels, preprocessing),
                                         batch_size=batch_size, num_workers=workers)
    normalize = preprocessing.normalize()
    device = next(model.parameters()).device
    model.eval()
    hits = []
    for x, y in tqdm(loader, desc="top-1 over the image folder", unit="batch", disable=not progress):
        hits.append(model(normalize(x).to(device)).argmax(1).cpu() == y)
    return torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def train(
    model: nn.Module,
    train_split: Split,
    val_split: Split,
    test_split: Split,
    cfg_training: dict,
    out_dir: Path,
    meta: dict | None = None,
) -> dict:
    """Adam (lr: ``training.lr`` times ``zoo.lr_scale(model)``) + cross-entropy, seeded shuffling and
    augmentation (``models.augment``), on ``training.threads`` CPU threads (the result then does not depend on
    the machine's thread count: ``torch.set_num_threads`` changes the order of floating-point sums).

    ``training.patience`` an integer: early stopping on validation accuracy (ties broken by validation loss)
    after ``patience`` epochs without progress, or as soon as the validation accuracy is 1, and the best
    weights restored. ``patience: null``: a fixed budget of exactly ``training.epochs`` epochs, the last
    weights kept (no decision on a noisy validation set). The model is saved to ``out_dir/model.pt`` and
    scored on ``test_split``. Returns the metrics written to ``out_dir/metrics.json`` (``lr``: the rate used).
    The model is left in eval mode.
    """
    cfg = complete_training(cfg_training)
    out_dir = Path(out_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg["threads"])
    try:
        return _train(model, train_split, val_split, test_split, cfg, out_dir, meta)
    finally:
        torch.set_num_threads(threads)


def _train(model: nn.Module, train_split: Split, val_split: Split, test_split: Split,
           cfg: dict, out_dir: Path, meta: dict | None) -> dict:
    _seed_everything(cfg["seed"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    lr = float(cfg["lr"]) * zoo.lr_scale(model)  # per-model multiplier (models.LR_SCALE)
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
            x = zoo.augment(model, train_split.x[idx], gen)  # seeded; identity for most
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
    zoo.save(model, out_dir / "model.pt", meta={k: v for k, v in metrics.items()
                                                   if k != "history"})
    files.write_json(out_dir / "metrics.json", {**metrics, "provenance": files.provenance()})


def fit(spec: DatasetSpec, model: ModelSpec, resources: Path, out: Path) -> dict:
    """Prepare data set ``spec``, then train ``model`` on it with its ``training`` settings (or, pretrained,
    measure its top-1 over the whole image folder); write ``out/model.pt`` and ``out/metrics.json`` (with the
    evaluated subset's ``eval_accuracy``); return the metrics."""
    data.prepare(spec, resources)
    model_name, training = model.name, dict(model.training)
    torch.manual_seed(training["seed"])
    if spec.modality == "images":
        if not model.pretrained:
            raise ValueError(f"{spec.where}.models ({model_name}): image models are pretrained (the images have only a "
                             "test split); give a timm name (timm:<name>) or efficientnet_lite0")
        preprocessing = ImagePreprocessing.of(model_name)
        index = data.image_folder(spec, resources)
        meta = {"dataset": spec.key, "model": model_name, "class_names": class_names(),
                "preprocessing": preprocessing.as_dict()}
        network = zoo.build(model_name, 1000)
        start = time.perf_counter()
        workers = training["threads"] if training["threads"] > 1 else 0  # decoding processes: the job's threads
        hits = image_hits(network, index, preprocessing, workers=workers)
        metrics = score_pretrained(network, hits.float().mean().item() if len(hits) else float("nan"), len(index),
                                   out, time.perf_counter() - start, training["seed"], meta)
        evaluated = data.evaluated_indices(spec, index.labels)  # the evaluated inputs, among the folder's files
        metrics["eval_accuracy"] = hits[evaluated].float().mean().item()
        metrics["n_eval"] = len(evaluated)
    else:
        test_all = data.load(spec, "test", resources, subset=False)
        evaluated = data.load(spec, "test", resources)
        meta = {"dataset": spec.key, "model": model_name, "class_names": list(test_all.class_names)}
        network = zoo.build(model_name, test_all.n_classes)
        train_split = data.load(spec, "train", resources)
        val_split = data.load(spec, "val", resources)
        metrics = train(network, train_split, val_split, test_all, training, out, meta)
        metrics["eval_accuracy"] = accuracy(network, evaluated)
        metrics["n_eval"] = len(evaluated)
    files.write_json(Path(out) / "metrics.json", {**metrics, "provenance": files.provenance()})
    return metrics
