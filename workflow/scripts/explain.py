"""Explain one shard of a data set's evaluated inputs with one method (a WAM variant or a baseline).

Output (``torch.save``, atomic, with a ``.provenance.json`` sidecar) — a dict:

- ``ids`` [n] sample ids, ``y`` [n] targets, ``seconds`` the attribution time;
- ``pixel``: the attribution in the model's input space, ``[n, *spatial]`` (channels summed): images and
  volumes pixels / voxels; audio the log-mel bins ``[n, mels, frames]`` of ``model.classifier``'s input;
- ``wavelet``: per-band importance of the input's own wavelet coefficients, ptwt structure of ``[n, 1, *band]``
  tensors (audio: coefficients of the waveform);
- ``scales``: WAM only, per-level maps ``[n, levels + 1, *spatial]`` (finest first, approximation last;
  audio: pooled to the spectrogram's frames ``[n, levels + 1, frames]``).

How each method reaches the other domain (the suite scores every method in both):
WAM's pixel map is its ``heatmap()`` (audio: averaged over each frame's samples and spread over the mels);
a baseline's wavelet map is ``|W(a)|``, the magnitude of the wavelet transform of its pixel map (audio: the
frame importance, summed over mels, interpolated to the waveform's samples, then transformed).

CLI: ``python -m workflow.scripts.explain --config results/NAME/config.json --dataset D --model M
--method METHOD --shard K --out FILE``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import baselines
from wam import WAM, transform
from wam.utils import pick_device
from workflow.scripts import datasets, io, models

NDIM = {"audio": 1, "images": 2, "volumes": 3}


def shard_indices(n: int, shards: int, shard: int) -> list[int]:
    """Contiguous, near-equal slices of ``range(n)``: shard ``shard`` of ``shards``."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard: expected 0 <= shard < {shards}, got {shard}")
    bounds = [round(i * n / shards) for i in range(shards + 1)]
    return list(range(bounds[shard], bounds[shard + 1]))


def evaluated_shard(config: dict, dataset: str, shard: int) -> datasets.Split:
    """The evaluated (test) inputs of ``dataset`` that fall in ``shard``."""
    cfg = {**config["datasets"][dataset], "seed": config["seed"]}
    split = datasets.load(cfg, "test", Path(config["resources"]), key=dataset)
    idx = shard_indices(len(split), config["shards"], shard)
    return datasets.Split(split.x[idx], split.y[idx], [split.ids[i] for i in idx], split.n_classes,
                          split.class_names)


def method_options(config: dict, method: str, modality: str) -> dict:
    spec = config["methods"][method]
    return {**spec.get("options", {}), **spec.get("per_modality", {}).get(modality, {})}


def frames_of(signal: torch.Tensor, frames: int) -> torch.Tensor:
    """Average ``[n, K, T]`` samples into ``frames`` time frames -> ``[n, K, frames]``."""
    return F.adaptive_avg_pool1d(signal, frames)


def wavelet_magnitudes(pixel: torch.Tensor, ndim: int, wavelet_cfg: dict) -> list[torch.Tensor]:
    """``|W(a)|`` per band, ``[n, 1, *band]``, for a pixel-domain map ``a`` ``[n, *spatial]``."""
    coeffs = transform.wavedec(pixel.unsqueeze(1), ndim, wavelet_cfg["wavelet"], wavelet_cfg["levels"],
                               wavelet_cfg["mode"])
    return [b.abs() for b in transform.bands(coeffs)]


def explain(config: dict, dataset: str, model: torch.nn.Module, method: str, x: torch.Tensor,
            y: torch.Tensor) -> dict:
    """Attributions of ``x`` for ``y`` by ``method`` in both domains (see the module docstring)."""
    modality = config["datasets"][dataset]["modality"]
    ndim, wavelet_cfg = NDIM[modality], config["wavelet"][modality]
    spec, options = config["methods"][method], method_options(config, method, modality)
    batch_size = config["evaluation"]["batch_size"]
    audio = modality == "audio"
    frames = model.frontend(x[:1]).shape[-1] if audio else None
    start = time.perf_counter()
    if spec["kind"] == "wam":
        expl = WAM(model, ndim=ndim, batch_size=batch_size, seed=config["seed"], **wavelet_cfg, **options)(x, y)
        pixel, scales = expl.heatmap(), expl.scales(approx=True)
        if audio:
            mels = model.frontend(x[:1]).shape[-2]
            pixel = frames_of(pixel.unsqueeze(1), frames).expand(-1, mels, -1)
            scales = frames_of(scales, frames)
        wavelet = [m.unsqueeze(1) for m in expl.band_maps(normalize=True)]
        out = {"scales": scales}
    else:
        net, inputs = (model.classifier, model.frontend(x).detach()) if audio else (model, x)
        pixel = baselines.get(method, net, batch_size=batch_size, **options)(inputs, y).sum(1)
        if audio:  # frame importance spread back over the waveform's samples
            per_sample = F.interpolate(pixel.sum(1, keepdim=True), size=x.shape[-1], mode="linear",
                                       align_corners=False)[:, 0]
            wavelet = wavelet_magnitudes(per_sample, ndim, wavelet_cfg)
        else:
            wavelet = wavelet_magnitudes(pixel, ndim, wavelet_cfg)
        out = {}
    seconds = time.perf_counter() - start
    return {**out, "pixel": pixel.detach().cpu(), "wavelet": [w.detach().cpu() for w in wavelet],
            "seconds": seconds}


def run(config: dict, dataset: str, model_path: Path, method: str, shard: int, out: Path) -> None:
    device = pick_device(config["device"])
    torch.manual_seed(config["seed"])
    data = evaluated_shard(config, dataset, shard)
    model = models.load(model_path).to(device).eval()
    x, y = data.x.to(device), data.y.to(device)
    result = explain(config, dataset, model, method, x, y)
    result.update(ids=data.ids, y=data.y.cpu())
    with io.atomic_path(out) as tmp:
        torch.save(result, tmp)
    io.write_json(Path(f"{out}.provenance.json"), io.provenance(
        stage="explain", dataset=dataset, model=str(model_path), method=method, shard=shard,
        config={k: config[k] for k in ("name", "seed", "device", "shards", "wavelet")},
        method_config=config["methods"][method], device_used=str(device), seconds=result["seconds"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="results/NAME/config.json")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", type=Path, required=True, help="model.pt written by the train rule")
    parser.add_argument("--method", required=True)
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    run(io.read_config(args.config), args.dataset, args.model, args.method, args.shard, args.out)


if __name__ == "__main__":
    main()
