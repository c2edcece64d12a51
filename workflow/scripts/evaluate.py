"""Score one shard of attributions: insertion, deletion, faithfulness (both AUCs, each configured domain),
mu-fidelity (pixel domain) and, for the offline sets with a recorded ground truth, localisation.

Outputs (atomic, with ``.provenance.json`` sidecars):

- scores CSV, tidy, one row per value: ``dataset, model, method, metric, domain, auc, sample_id, value``
  (``auc`` is ``-`` for metrics that are not areas). Localisation: the share of the positive attribution
  that falls on the ground truth; for WAM also per scale (``localisation@level1`` ... ``@approx``) and each
  scale's share of the total attribution (``scale_share@level1`` ...);
- curves CSV: ``dataset, model, method, metric, domain, sample_id, fraction, value`` (for the figures).

The model sees what it was trained on: images and volumes as loaded; audio waveforms in the wavelet
domain (WAM-1D's coefficients) and log-mel bins in the pixel domain (``model.classifier`` on
``model.frontend(wave)``), as in the paper.

CLI: ``python -m workflow.scripts.evaluate --config results/NAME/config.json --dataset D --model model.pt
--method METHOD --attributions FILE --scores OUT.csv --curves OUT.csv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

import metrics
from wam import transform
from wam.utils import pick_device
from workflow.scripts import datasets, io, models
from workflow.scripts.explain import NDIM, evaluated_shard, frames_of

SCORE_COLUMNS = ["dataset", "model", "method", "metric", "domain", "auc", "sample_id", "value"]
CURVE_COLUMNS = ["dataset", "model", "method", "metric", "domain", "sample_id", "fraction", "value"]


def removed_value(spec: float | str, x: torch.Tensor) -> torch.Tensor | float:
    """The value of a removed pixel: a number, or ``min`` (each input's own minimum)."""
    if spec == "min":
        return x.flatten(1).amin(1).reshape(-1, *[1] * (x.dim() - 1))
    return float(spec)


def level_names(n_scales: int) -> list[str]:
    return [f"level{i + 1}" for i in range(n_scales - 1)] + ["approx"]


def localisation(maps: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Share of positive attribution ``[n, *s]`` inside the boolean mask ``[n, *s]`` -> ``[n]`` (0 if none)."""
    positive = maps.clamp_min(0).flatten(1)
    inside = (positive * truth.flatten(1)).sum(1)
    total = positive.sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-30), torch.zeros_like(total))


def truth_like(truth: torch.Tensor, modality: str, frames: int | None) -> torch.Tensor:
    """The ground truth on the attribution's grid (audio: a frame is inside if most of its samples are)."""
    if modality == "audio":
        return frames_of(truth.float().unsqueeze(1), frames)[:, 0] > 0.5
    return truth.bool()


def score(config: dict, dataset: str, model_name: str, model: torch.nn.Module, method: str,
          data: datasets.Split, attributions: dict, device: torch.device) -> tuple[pd.DataFrame, pd.DataFrame]:
    modality = config["datasets"][dataset]["modality"]
    evaluation, wavelet_cfg = config["evaluation"], config["wavelet"][modality]
    x, y = data.x.to(device), data.y.to(device)
    audio = modality == "audio"
    pixel_model, pixel_x = (model.classifier, model.frontend(x).detach()) if audio else (model, x)
    rows, curve_rows = [], []

    def add(metric: str, domain: str, auc: str, values: torch.Tensor) -> None:
        for sample_id, v in zip(data.ids, values.tolist(), strict=True):
            rows.append((dataset, model_name, method, metric, domain, auc, sample_id, float(v)))

    common = dict(steps=evaluation["steps"], batch_size=evaluation["batch_size"])
    for domain in evaluation["domains"]:
        if domain == "pixel":
            net, inputs, attribution = pixel_model, pixel_x, attributions["pixel"].to(device)
            kwargs = dict(domain="pixel", baseline=removed_value(evaluation["baseline"][modality], pixel_x))
        else:
            net, inputs = model, x
            attribution = transform.unbands([w.to(device) for w in attributions["wavelet"]], NDIM[modality])
            kwargs = dict(domain="wavelet", **wavelet_cfg)
        curves = {kind: getattr(metrics, kind)(net, inputs, y, attribution, **common, **kwargs)
                  for kind in ("insertion", "deletion")}
        for auc in ("paper", "trapezoid"):
            areas = {kind: c.auc(auc) for kind, c in curves.items()}
            add("insertion", domain, auc, areas["insertion"])
            add("deletion", domain, auc, areas["deletion"])
            add("faithfulness", domain, auc, areas["insertion"] - areas["deletion"])
        for kind, c in curves.items():
            fractions = c.fractions.tolist()
            for sample_id, probs in zip(data.ids, c.probs.tolist(), strict=True):
                curve_rows.extend((dataset, model_name, method, kind, domain, sample_id, f, p)
                                  for f, p in zip(fractions, probs, strict=True))
    mu = evaluation["mu_fidelity"]
    add("mu_fidelity", "pixel", "-", metrics.mu_fidelity(
        pixel_model, pixel_x, y, attributions["pixel"].to(device), grid=mu["grid"], subset=mu["subset"],
        samples=mu["samples"], baseline=removed_value(evaluation["baseline"][modality], pixel_x),
        seed=config["seed"], batch_size=evaluation["batch_size"]))

    truth = datasets.ground_truth({**config["datasets"][dataset], "_key": dataset},
                                  Path(config["resources"]), data.ids)
    pixel, scales = attributions["pixel"], attributions.get("scales")
    time_map = pixel.sum(1) if audio else pixel  # audio: [n, mels, frames] -> [n, frames]
    mask = None if truth is None else truth_like(truth, modality, time_map.shape[-1] if audio else None)
    if mask is not None:
        add("localisation", "pixel", "-", localisation(time_map, mask))
    if scales is not None:
        totals = scales.flatten(2).sum(2)
        share = totals / totals.sum(1, keepdim=True).clamp_min(1e-30)
        for i, level in enumerate(level_names(scales.shape[1])):
            add(f"scale_share@{level}", "pixel", "-", share[:, i])
            if mask is not None:
                add(f"localisation@{level}", "pixel", "-", localisation(scales[:, i], mask))
    return pd.DataFrame(rows, columns=SCORE_COLUMNS), pd.DataFrame(curve_rows, columns=CURVE_COLUMNS)


def run(config: dict, dataset: str, model_path: Path, method: str, attributions_path: Path,
        scores_path: Path, curves_path: Path) -> None:
    device = pick_device(config["device"])
    attributions = torch.load(attributions_path, map_location="cpu", weights_only=False)
    shard = int(Path(attributions_path).stem)
    data = evaluated_shard(config, dataset, shard)
    if data.ids != attributions["ids"]:
        raise ValueError(f"{attributions_path}: its sample ids do not match shard {shard} of {dataset}")
    model = models.load(model_path).to(device).eval()
    model_name = Path(model_path).parent.name
    with torch.no_grad():
        scores, curves = score(config, dataset, model_name, model, method, data, attributions, device)
    io.write_csv(scores, scores_path)
    io.write_csv(curves, curves_path)
    io.write_json(Path(f"{scores_path}.provenance.json"), io.provenance(
        stage="evaluate", dataset=dataset, model=str(model_path), method=method, shard=shard,
        evaluation=config["evaluation"], wavelet=config["wavelet"], seed=config["seed"], device_used=str(device)))


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
    run(io.read_config(args.config), args.dataset, args.model, args.method, args.attributions, args.scores,
        args.curves)


if __name__ == "__main__":
    main()
