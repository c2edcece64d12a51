"""Explain one shard of a data set's evaluated inputs with one method (a WAM variant or a baseline).

Output (``torch.save``, atomic, with a ``.provenance.json`` sidecar) — a dict:

- ``ids`` [n] sample ids, ``y`` [n] targets, ``logit`` [n] the model's logit of the target on the explained
  input, ``seconds`` the attribution time;
- ``pixel``: the attribution in the model's input space, ``[n, *spatial]`` (channels summed): images and
  volumes pixels / voxels; audio the log-mel bins ``[n, mels, frames]`` of ``model.classifier``'s input;
- ``wavelet``: per-band importance of the input's own wavelet coefficients, raw magnitudes (not normalised),
  ptwt structure of ``[n, 1, *band]`` tensors (audio: coefficients of the waveform); the scoring stage
  aggregates them for ranking (``metrics.protocols.rank_maps``);
- ``scales``: WAM only, per-level maps ``[n, levels + 1, *spatial]`` of the raw (not normalised) band magnitudes
  (finest first, approximation last; audio: pooled to the spectrogram's frames ``[n, levels + 1, frames]``);
- ``scale_shares``, ``scale_shares_per_coefficient``: WAM only, ``[n, levels + 1]``, each scale's share of the raw
  attribution magnitude, in total and per coefficient (:meth:`wam.Explanation.scale_shares`);
- ``cam_layer``, ``cam_target``: a class activation map's layer (its dotted name) and how its output became a map
  (:meth:`baselines.cam_target.CamTarget.provenance`: kind, token grid, dropped prefix tokens), else absent;
- ``completeness``: path methods (WAM-IG, Integrated Gradients) only, ``attribution_sum`` and
  ``delta = f(x) - f(x0)`` ``[n]`` (logits of the explained network and input space);
- ``conservation``: LRP only, ``relevance_sum`` (the attribution summed) and the target ``logit`` ``[n]`` that LRP
  distributes (their ratio is 1 for a conservative propagation).

How each method reaches the other domain (the suite scores every method in both):
WAM's pixel map is its ``heatmap()`` (audio: averaged over each STFT frame's samples and spread over the
mels); a baseline's wavelet map is ``|W(a)|``, the magnitude of the wavelet transform of its pixel map (audio:
the log-mel map projected onto the wavelet tiling by frequency band and frame,
:func:`project_to_wavelet_tiling`).

Example::

    >>> from torch import nn
    >>> from workflow.lib.config import Config
    >>> config = Config.from_dict({"seed": 0, "datasets": {"v": {"modality": "volumes", "models": ["m"]}},
    ...     "methods": {"saliency": {"kind": "baseline", "label": "Saliency"}},
    ...     "wavelet": {"volumes": {"wavelet": "haar", "levels": 1, "mode": "symmetric"}},
    ...     "evaluation": {"batch_size": 4}})
    >>> model = nn.Sequential(nn.Conv3d(1, 2, 3), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(2, 3)).eval()
    >>> out = explain(config, "v", model, "saliency", torch.rand(2, 1, 8, 8, 8), torch.tensor([0, 2]))
    >>> out["pixel"].shape, [tuple(b.shape) for b in out["wavelet"]][:2], out["logit"].shape
    (torch.Size([2, 8, 8, 8]), [(2, 1, 4, 4, 4), (2, 1, 4, 4, 4)], torch.Size([2]))
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

import baselines
from wam import WAM, transform
from wam.audio import samples_to_frames
from wam.utils import chunks, pick_device
from workflow.lib import files, plugins
from workflow.lib.config import Config
from workflow.lib.data import model_inputs
from workflow.lib.models import zoo


def wavelet_magnitudes(pixel: torch.Tensor, ndim: int, wavelet_cfg: dict) -> list[torch.Tensor]:
    """``|W(a)|`` per band, ``[n, 1, *band]``, for a pixel-domain map ``a`` ``[n, *spatial]``."""
    coeffs = transform.wavedec(pixel.unsqueeze(1), ndim, wavelet_cfg["wavelet"], wavelet_cfg["levels"],
                               wavelet_cfg["mode"])
    return [b.abs() for b in transform.bands(coeffs)]


def project_to_wavelet_tiling(pixel: torch.Tensor, frontend: torch.nn.Module, x: torch.Tensor,
                              wavelet_cfg: dict) -> list[torch.Tensor]:
    """A log-mel attribution ``[n, mels, frames]`` on the waveform's wavelet coefficients, per band
    ``[n, 1, band]``: coefficient ``k`` of a band takes ``|sum|`` of the attribution of the mel bins whose centre
    frequency lies in the band's octave (detail level ``j``: ``[sr / 2^(j+1), sr / 2^j)``; approximation: below
    ``sr / 2^(levels+1)``), at the STFT frame nearest the coefficient's centre ``(k + 1/2) 2^j`` samples.

    Every coefficient of one frame and band gets the same value (exact ties, ordered by the protocol), so
    float round-off in the attribution cannot reorder them.
    """
    coeffs = transform.bands(transform.wavedec(x[:1].unsqueeze(1), 1, wavelet_cfg["wavelet"],
                                               wavelet_cfg["levels"], wavelet_cfg["mode"]))
    fb, rate, hop = frontend.mel.mel_scale.fb, frontend.sample_rate, frontend.mel.hop_length
    freqs = torch.linspace(0, rate / 2, fb.shape[0], device=fb.device)
    centres = (fb * freqs[:, None]).sum(0) / fb.sum(0).clamp_min(1e-12)  # [mels], Hz
    levels = transform.band_levels(len(coeffs), 1)
    out = []
    for i, (band, level) in enumerate(zip(coeffs, levels, strict=True)):
        low, high = (0.0, rate / 2 ** (level + 1)) if i == 0 else (rate / 2 ** (level + 1), rate / 2 ** level)
        in_band = ((centres >= low) & (centres < high)).to(pixel.dtype)
        per_frame = (pixel * in_band.to(pixel.device)[:, None]).sum(1).abs()  # [n, frames]
        position = (torch.arange(band.shape[-1], device=pixel.device) + 0.5) * 2 ** level
        frame = torch.round(position / hop).long().clamp(0, per_frame.shape[-1] - 1)
        out.append(per_frame[:, frame].unsqueeze(1))
    return out


def explain(config: Config, dataset: str, model: torch.nn.Module, method: str, x: torch.Tensor,
            y: torch.Tensor, *, extras: bool = True) -> dict:
    """Attributions of ``x`` for ``y`` by ``method`` in both domains (see the module docstring). ``extras=False``:
    ``pixel``, ``wavelet`` and ``seconds`` only, without WAM's scales (undefined for an all-zero map, e.g. of a
    randomised network) and the model calls of ``logit``, ``completeness`` and ``conservation`` (the sanity checks
    explain many models)."""
    data_spec = config.datasets[dataset]
    modality, ndim = data_spec.modality, data_spec.ndim
    wavelet_cfg = config.section("wavelet")[modality]
    spec = config.methods[method]
    options = spec.options_for(modality)
    batch_size = config.section("evaluation")["batch_size"]
    audio = modality == "audio"
    if audio:
        spectrogram = model.frontend(x[:1])
        mels, frames, hop = spectrogram.shape[-2], spectrogram.shape[-1], model.frontend.mel.hop_length
    out = {}
    start = time.perf_counter()
    if spec.kind == "wam":
        explainer = WAM(model, ndim=ndim,
                        **{"batch_size": batch_size, "seed": config.seed, **wavelet_cfg, **options})
        expl = explainer(x, y)
        net, inputs = model, x
        total = sum(g.flatten(1).sum(1) for g in transform.bands(expl.grads))
        pixel = expl.heatmap()
        if audio:
            pixel = samples_to_frames(pixel.unsqueeze(1), hop, frames).expand(-1, mels, -1)
        wavelet = [m.unsqueeze(1) for m in expl.band_maps(normalize=False)]
        if extras:
            scales = expl.scales(approx=True, normalize=False)
            out.update(scales=samples_to_frames(scales, hop, frames) if audio else scales,
                       scale_shares=expl.scale_shares(),
                       scale_shares_per_coefficient=expl.scale_shares(per_coefficient=True))
    else:
        net, inputs = (model.classifier, model.frontend(x).detach()) if audio else (model, x)
        explainer = baselines.get(method, net, **{"batch_size": batch_size, **options})
        signed = explainer(inputs, y)
        pixel, total = signed.sum(1), signed.flatten(1).sum(1)
        if baselines.is_cam(method):
            out.update(cam_layer=explainer.layer_name, cam_target=explainer.cam_target.provenance())
        if audio:
            wavelet = project_to_wavelet_tiling(pixel, model.frontend, x, wavelet_cfg)
        else:
            wavelet = wavelet_magnitudes(pixel, ndim, wavelet_cfg)
    seconds = time.perf_counter() - start
    maps = {"pixel": pixel.detach().cpu(), "wavelet": [w.detach().cpu() for w in wavelet], "seconds": seconds}
    if not extras:
        return {**out, **maps}
    with torch.no_grad():
        logit = torch.cat([net(inputs[s]) for s in chunks(len(inputs), batch_size)]).gather(1, y[:, None])[:, 0]
    x0 = explainer.path_baseline(inputs)
    if x0 is not None:
        out["completeness"] = completeness(net, inputs, x0, y, total)
    if getattr(explainer, "name", None) == "lrp":
        out["conservation"] = {"relevance_sum": total.detach().cpu(), "logit": logit.cpu()}
    return {**out, **maps, "logit": logit.cpu()}


@torch.no_grad()
def completeness(net: torch.nn.Module, x: torch.Tensor, x0: torch.Tensor, y: torch.Tensor, total: torch.Tensor
                 ) -> dict[str, torch.Tensor]:
    """A path method's ``attribution_sum`` ``[n]`` beside ``delta = f_y(x) - f_y(x0)`` ``[n]`` (logits):
    they agree when the path integral is well resolved (completeness)."""
    logits = net(torch.cat([x, x0])).gather(1, torch.cat([y, y])[:, None])[:, 0]
    fx, fx0 = logits.split(len(y))
    return {"attribution_sum": total.detach().cpu(), "delta": (fx - fx0).cpu()}


def explain_shard(config: Config, dataset: str, model_path: Path, method: str, shard: int, out: Path) -> None:
    """Explain shard ``shard`` of data set ``dataset`` with ``method``; write ``out`` (``torch.save`` of
    :func:`explain`'s dict with ``ids`` and ``y``) and its provenance sidecar."""
    plugins.load(config.raw)  # the same plug-in methods as the DAG
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    model = zoo.load(model_path).to(device).eval()
    data, x = model_inputs(config, dataset, model, shard)
    x, y = x.to(device), data.y.to(device)
    result = explain(config, dataset, model, method, x, y)
    result.update(ids=data.ids, y=data.y.cpu())
    with files.atomic_path(out) as tmp:
        torch.save(result, tmp)
    files.write_json(Path(f"{out}.provenance.json"), files.provenance(
        stage="explain", dataset=dataset, model=str(model_path), method=method, shard=shard,
        config={k: config.raw.get(k) for k in ("name", "seed", "device", "shards", "wavelet")},
        method_config=config.raw["methods"][method], device_used=str(device), seconds=result["seconds"],
        cam_layer=result.get("cam_layer"), cam_target=result.get("cam_target")))
