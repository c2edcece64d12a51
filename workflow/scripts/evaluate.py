"""Score one shard of attributions: insertion, deletion, faithfulness (both AUCs) under the evaluation
protocols (:mod:`metrics.protocols`), mu-fidelity (pixel domain) and, for the offline sets with a recorded
ground truth, localisation.

Which curves are scored for a method (:func:`scoring_plan`), each a ``(protocol, domain, ranking)``:

- its Table 1 cell: the method's own domain (WAM: wavelet, baselines: pixel), ranked as the reference does
  (wavelet domain: ``raw`` in 1D, ``per_band`` in 2D / 3D), under ``evaluation.protocol`` and under the
  other protocol (``table1_clean`` or ``table1_reference``);
- the same-domain tables: every domain of ``evaluation.domains`` under ``evaluation.protocol``, the wavelet
  domain ranked through ``evaluation.ranking`` for every method.

Outputs (atomic, with ``.provenance.json`` sidecars):

- scores CSV, tidy, one row per value: ``dataset, model, method, metric, domain, auc, protocol, ranking,
  degenerate, sample_id, value`` (``auc``, ``protocol``, ``ranking`` are ``-`` where they do not apply;
  ``degenerate`` is true where the ranked map is constant: its scores are kept, and counted in the tables).
  Localisation: the share of the positive attribution that falls on the ground truth; for WAM also per scale
  (``localisation@level1`` ... ``@approx``, on each level's raw map); WAM's scale shares
  (:meth:`wam.Explanation.scale_shares`: each level's share of the raw attribution magnitude, ``scale_share@level1``
  ...; per coefficient, ``scale_share_per_coefficient@level1`` ...);
  path methods: ``completeness_error``, ``|sum of attributions - (f(x) - f(x0))| / |f(x) - f(x0)|``; LRP:
  ``conservation_ratio``, ``sum of relevance / f_y(x)`` (1 when nothing is lost);
  ``faithfulness_of_spectra`` and ``input_fidelity`` (:mod:`metrics.spectra`, top 50 %), one per input in the
  method's Table 1 cell setting (the first entry of :func:`scoring_plan`), ``auc`` ``-``;
- curves CSV: ``dataset, model, method, metric, domain, protocol, ranking, sample_id, fraction, value``.

The model sees what it was trained on: images are perturbed unnormalised in [0, 1] and normalised after
(``models.normalization``); audio as log-mel bins in the pixel domain (``model.classifier`` on
``model.frontend(wave)``) and as the waveform's wavelet coefficients in the wavelet domain (the whole model).

CLI: ``python -m workflow.scripts.evaluate --config results/NAME/config.json --dataset D --model model.pt
--method METHOD --attributions FILE --scores OUT.csv --curves OUT.csv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

import metrics
from metrics import protocols
from metrics.perturbation import constant_rows
from wam import transform
from wam.audio import samples_to_frames
from wam.utils import pick_device
from workflow.scripts import datasets, io, models, plugins
from workflow.scripts.datasets import NDIM, model_inputs

SCORE_COLUMNS = ["dataset", "model", "method", "metric", "domain", "auc", "protocol", "ranking", "degenerate",
                 "sample_id", "value"]
CURVE_COLUMNS = ["dataset", "model", "method", "metric", "domain", "protocol", "ranking", "sample_id",
                 "fraction", "value"]


def home_domain(config: dict, method: str) -> str:
    """The domain a method is scored in for Table 1 (the paper's protocol): WAM wavelet, baselines pixel."""
    return "wavelet" if config["methods"][method]["kind"] == "wam" else "pixel"


def other_protocol(protocol: str) -> str:
    return next(p for p in protocols.PROTOCOLS if p != protocol)


def same_domain_ranking(config: dict, domain: str) -> str:
    return config["evaluation"]["ranking"] if domain == "wavelet" else "-"


def method_evaluation(config: dict, method: str, settings: dict | None = None) -> dict:
    """``evaluation`` with a method's own settings over it: ``settings`` (``steps``, ``mu_fidelity``: ``samples``,
    ``blur``), by default the method's ``methods.<m>.evaluation`` (absent: every method is scored alike)."""
    evaluation = config["evaluation"]
    own = config["methods"][method].get("evaluation") or {} if settings is None else settings
    return {**evaluation, "steps": own.get("steps", evaluation["steps"]),
            "mu_fidelity": {"blur": 0.0, **evaluation["mu_fidelity"], **own.get("mu_fidelity", {})}}


def unequal_settings(config: dict, method: str) -> dict | None:
    """The reference evaluators' settings for the method's kind (``evaluation.protocol_sensitivity``: e.g. 64
    insertion / deletion steps and 128 mu-fidelity samples on maps blurred with sigma 2 for WAM, 128 steps and 512
    samples for the baselines), or ``None`` when the configuration does not ask for them."""
    sensitivity = config["evaluation"].get("protocol_sensitivity")
    if not sensitivity:
        return None
    return method_evaluation(config, method, sensitivity.get(config["methods"][method]["kind"]) or {})


def unequal(protocol: str) -> str:
    """The ``protocol`` value of the scores taken under the reference's unequal settings."""
    return f"{protocol}_unequal"


def scoring_plan(config: dict, method: str, modality: str) -> list[tuple[str, str, str]]:
    """Every ``(protocol, domain, ranking)`` whose insertion and deletion curves are scored (no repeats)."""
    main = config["evaluation"]["protocol"]
    home = home_domain(config, method)
    cell = protocols.reference_ranking(modality, home)
    plan = [(main, home, cell), (other_protocol(main), home, cell)]
    plan += [(main, d, same_domain_ranking(config, d)) for d in config["evaluation"]["domains"]]
    return list(dict.fromkeys(plan))


def localisation(maps: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Share of positive attribution ``[n, *s]`` inside the boolean mask ``[n, *s]`` -> ``[n]`` (0 if none)."""
    positive = maps.clamp_min(0).flatten(1)
    inside = (positive * truth.flatten(1)).sum(1)
    total = positive.sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-30), torch.zeros_like(total))


def truth_like(truth: torch.Tensor, modality: str, frames: int | None, hop: int | None) -> torch.Tensor:
    """The ground truth on the attribution's grid (audio: a frame is inside if most of its samples are)."""
    if modality == "audio":
        return samples_to_frames(truth.float().unsqueeze(1), hop, frames)[:, 0] > 0.5
    return truth.bool()


def data_spaces(config: dict, dataset: str, model: torch.nn.Module, x: torch.Tensor) -> dict:
    """Per domain: ``(model, input in the data's own space, preprocess)`` (see the module docstring); ``x`` in the
    data's own space (images in [0, 1], normalised after any perturbation by the model's own statistics)."""
    modality = config["datasets"][dataset]["modality"]
    if modality == "images":
        space = (model, x, models.preprocessing(model).normalize().to(x.device))
        return {"pixel": space, "wavelet": space}
    if modality == "audio":
        return {"pixel": (model.classifier, model.frontend(x).detach(), None), "wavelet": (model, x, None)}
    return {"pixel": (model, x, None), "wavelet": (model, x, None)}


SPECTRA_METRICS = ("faithfulness_of_spectra", "input_fidelity")


def spectra_scores(net, inputs: torch.Tensor, y: torch.Tensor, attribution, domain: str, preprocess,
                   options: dict, batch_size: int) -> dict[str, torch.Tensor]:
    """Faithfulness of Spectra and Input Fidelity ``[n]`` each (:mod:`metrics.spectra`, top 50 %) on the inputs,
    attribution and protocol options of one scoring setting (``score`` uses the Table 1 cell's)."""
    return {name: metrics.get(name)(net, inputs, y, attribution, domain=domain, preprocess=preprocess,
                                    batch_size=batch_size, **options) for name in SPECTRA_METRICS}


def score(config: dict, dataset: str, model_name: str, model: torch.nn.Module, method: str,
          data: datasets.Split, attributions: dict, device: torch.device) -> tuple[pd.DataFrame, pd.DataFrame]:
    modality = config["datasets"][dataset]["modality"]
    evaluation, wavelet_cfg = method_evaluation(config, method), config["wavelet"][modality]
    x, y = data.x.to(device), data.y.to(device)
    spaces = data_spaces(config, dataset, model, x)
    rows, curve_rows = [], []

    def add(metric: str, domain: str, auc: str, protocol: str, ranking: str, degenerate: torch.Tensor,
            values: torch.Tensor) -> None:
        for sample_id, flag, v in zip(data.ids, degenerate.tolist(), values.tolist(), strict=True):
            rows.append((dataset, model_name, method, metric, domain, auc, protocol, ranking, bool(flag),
                         sample_id, float(v)))

    pixel = attributions["pixel"].to(device)
    no = torch.zeros(len(data.ids), dtype=torch.bool)  # metrics with no ranked map: never degenerate

    def setting(protocol: str, domain: str, ranking: str) -> tuple:
        """``(net, inputs, preprocess, attribution, options)`` of one scoring setting."""
        net, inputs, preprocess = spaces[domain]
        inputs, options = protocols.setup(protocol, modality, domain, inputs, seed=config["seed"])
        if domain == "pixel":
            return net, inputs, preprocess, pixel, options
        bands = protocols.rank_maps([w.to(device) for w in attributions["wavelet"]], ranking)
        return net, inputs, preprocess, transform.unbands(bands, NDIM[modality]), {**options, **wavelet_cfg}

    def curves_of(net, inputs, preprocess, attribution, domain, options, steps) -> dict:
        return {kind: getattr(metrics, kind)(net, inputs, y, attribution, domain=domain, steps=steps,
                                             batch_size=evaluation["batch_size"], preprocess=preprocess, **options)
                for kind in ("insertion", "deletion")}

    def add_areas(curves: dict, domain: str, protocol: str, ranking: str) -> None:
        degenerate = curves["insertion"].degenerate
        for auc in ("paper", "trapezoid"):
            areas = {kind: c.auc(auc) for kind, c in curves.items()}
            add("insertion", domain, auc, protocol, ranking, degenerate, areas["insertion"])
            add("deletion", domain, auc, protocol, ranking, degenerate, areas["deletion"])
            add("faithfulness", domain, auc, protocol, ranking, degenerate, areas["insertion"] - areas["deletion"])

    plan = scoring_plan(config, method, modality)
    for protocol, domain, ranking in plan:
        net, inputs, preprocess, attribution, options = setting(protocol, domain, ranking)
        curves = curves_of(net, inputs, preprocess, attribution, domain, options, evaluation["steps"])
        if (protocol, domain, ranking) == plan[0]:  # the Table 1 cell
            cell_curves = curves
            for metric, values in spectra_scores(net, inputs, y, attribution, domain, preprocess, options,
                                                 evaluation["batch_size"]).items():
                add(metric, domain, "-", protocol, ranking, curves["insertion"].degenerate, values)
        add_areas(curves, domain, protocol, ranking)
        for kind, c in curves.items():
            fractions = c.fractions.tolist()
            for sample_id, probs in zip(data.ids, c.probs.tolist(), strict=True):
                curve_rows.extend((dataset, model_name, method, kind, domain, protocol, ranking, sample_id, f, p)
                                  for f, p in zip(fractions, probs, strict=True))

    pixel_degenerate = constant_rows(pixel.flatten(1))
    protocol = evaluation["protocol"]
    net, inputs, preprocess, _, options = setting(protocol, "pixel", "-")

    def mu_fidelity(mu: dict) -> torch.Tensor:
        return metrics.mu_fidelity(net, inputs, y, pixel, grid=mu["grid"], subset=mu["subset"], samples=mu["samples"],
                                   blur=mu["blur"], baseline=options["baseline"], seed=config["seed"],
                                   preprocess=preprocess, postprocess=options["postprocess"],
                                   batch_size=evaluation["batch_size"])

    mu = mu_fidelity(evaluation["mu_fidelity"])
    add("mu_fidelity", "pixel", "-", protocol, "-", pixel_degenerate, mu)

    reference = unequal_settings(config, method)
    if reference is not None:  # Table 1's cell and mu-fidelity under the reference evaluators' unequal settings
        cell_protocol, cell_domain, cell_ranking = plan[0]
        if reference["steps"] != evaluation["steps"]:
            net_c, inputs_c, preprocess_c, attribution_c, options_c = setting(*plan[0])
            cell_curves = curves_of(net_c, inputs_c, preprocess_c, attribution_c, cell_domain, options_c,
                                    reference["steps"])
        add_areas(cell_curves, cell_domain, unequal(cell_protocol), cell_ranking)
        if reference["mu_fidelity"] != evaluation["mu_fidelity"]:
            mu = mu_fidelity(reference["mu_fidelity"])
        add("mu_fidelity", "pixel", "-", unequal(protocol), "-", pixel_degenerate, mu)

    if "completeness" in attributions:  # |sum of attributions - (f(x) - f(x0))| / |f(x) - f(x0)|
        c = attributions["completeness"]
        gap = (c["attribution_sum"] - c["delta"]).abs() / c["delta"].abs().clamp_min(1e-12)
        add("completeness_error", "-", "-", "-", "-", no, gap)
    if "conservation" in attributions:  # LRP: sum of relevance / the target logit it distributes
        c = attributions["conservation"]
        add("conservation_ratio", "-", "-", "-", "-", no, c["relevance_sum"] / c["logit"])

    truth = datasets.ground_truth({**config["datasets"][dataset], "_key": dataset},
                                  Path(config["resources"]), data.ids)
    pixel, scales = attributions["pixel"], attributions.get("scales")
    audio = modality == "audio"
    time_map = pixel.sum(1) if audio else pixel  # audio: [n, mels, frames] -> [n, frames]
    hop = model.frontend.mel.hop_length if audio else None
    mask = None if truth is None else truth_like(truth, modality, time_map.shape[-1] if audio else None, hop)
    if mask is not None:
        add("localisation", "pixel", "-", "-", "-", pixel_degenerate, localisation(time_map, mask))
    if scales is not None:
        for i, level in enumerate(transform.level_names(scales.shape[1] - 1)):
            add(f"scale_share@{level}", "-", "-", "-", "-", no, attributions["scale_shares"][:, i])
            add(f"scale_share_per_coefficient@{level}", "-", "-", "-", "-", no,
                attributions["scale_shares_per_coefficient"][:, i])
            if mask is not None:
                add(f"localisation@{level}", "pixel", "-", "-", "-", no, localisation(scales[:, i], mask))
    return pd.DataFrame(rows, columns=SCORE_COLUMNS), pd.DataFrame(curve_rows, columns=CURVE_COLUMNS)


def run(config: dict, dataset: str, model_path: Path, method: str, attributions_path: Path,
        scores_path: Path, curves_path: Path) -> None:
    plugins.load(config)  # the same plug-in metrics as the DAG
    device = pick_device(config["device"])
    attributions = torch.load(attributions_path, map_location="cpu", weights_only=False)
    shard = int(Path(attributions_path).stem)
    model = models.load(model_path).to(device).eval()
    data, _ = model_inputs(config, dataset, model, shard)  # images: data.x in [0, 1]
    if data.ids != attributions["ids"]:
        raise ValueError(f"{attributions_path}: its sample ids do not match shard {shard} of {dataset}")
    model_name = Path(model_path).parent.name
    with torch.no_grad():
        scores, curves = score(config, dataset, model_name, model, method, data, attributions, device)
    io.write_csv(scores, scores_path)
    io.write_csv(curves, curves_path)
    io.write_json(Path(f"{scores_path}.provenance.json"), io.provenance(
        stage="evaluate", dataset=dataset, model=str(model_path), method=method, shard=shard,
        evaluation=config["evaluation"], wavelet=config["wavelet"], seed=config["seed"], device_used=str(device),
        plan=scoring_plan(config, method, config["datasets"][dataset]["modality"])))


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
