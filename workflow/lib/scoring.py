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
  every metric of ``evaluation.metrics`` (:attr:`workflow.lib.config.Config.evaluation_metrics`; by default
  ``faithfulness_of_spectra`` and ``input_fidelity``, :mod:`metrics.spectra`, top 50 %), each looked up in the
  metric registry (plug-ins included) and run once in the method's Table 1 cell setting (the first entry of
  :func:`scoring_plan`): a ``[B]`` result gives one row per input with ``auc`` ``-``, a :class:`metrics.Curve`
  two (its ``paper`` and ``trapezoid`` areas);
- curves CSV: ``dataset, model, method, metric, domain, protocol, ranking, sample_id, fraction, value``.

The model sees what it was trained on: images are perturbed unnormalised in [0, 1] and normalised after by the
model's own statistics (:func:`workflow.lib.models.preprocessing.preprocessing`); audio as log-mel bins in the pixel
domain (``model.classifier`` on ``model.frontend(wave)``) and as the waveform's wavelet coefficients in the wavelet
domain (the whole model).

Example::

    >>> from workflow.lib.config import Config
    >>> config = Config.from_dict({"methods": {"wam_sg": {"kind": "wam", "label": "WAM-SG"}},
    ...     "evaluation": {"protocol": "reference", "domains": ["pixel", "wavelet"], "ranking": "per_band"}})
    >>> scoring_plan(config, "wam_sg", "images")
    [('reference', 'wavelet', 'per_band'), ('clean', 'wavelet', 'per_band'), ('reference', 'pixel', '-')]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

import metrics
from metrics import protocols
from metrics.perturbation import constant_rows
from wam import transform
from wam.audio import samples_to_frames
from wam.utils import pick_device
from workflow.lib import files, plugins
from workflow.lib.config import Config
from workflow.lib.data import Split, ground_truth, model_inputs
from workflow.lib.models import zoo
from workflow.lib.models.preprocessing import preprocessing

SCORE_COLUMNS = ["dataset", "model", "method", "metric", "domain", "auc", "protocol", "ranking", "degenerate",
                 "sample_id", "value"]
CURVE_COLUMNS = ["dataset", "model", "method", "metric", "domain", "protocol", "ranking", "sample_id",
                 "fraction", "value"]


def home_domain(config: Config, method: str) -> str:
    """The domain a method is scored in for Table 1 (the paper's protocol): WAM wavelet, baselines pixel."""
    return "wavelet" if config.methods[method].kind == "wam" else "pixel"


def other_protocol(protocol: str) -> str:
    return next(p for p in protocols.PROTOCOLS if p != protocol)


def same_domain_ranking(config: Config, domain: str) -> str:
    return config.section("evaluation")["ranking"] if domain == "wavelet" else "-"


def method_evaluation(config: Config, method: str, settings: dict | None = None) -> dict:
    """``evaluation`` with a method's own settings over it: ``settings`` (``steps``, ``mu_fidelity``: ``samples``,
    ``blur``), by default the method's ``methods.<m>.evaluation`` (absent: every method is scored alike)."""
    evaluation = config.section("evaluation")
    own = config.methods[method].evaluation if settings is None else settings
    return {**evaluation, "steps": own.get("steps", evaluation["steps"]),
            "mu_fidelity": {"blur": 0.0, **evaluation["mu_fidelity"], **own.get("mu_fidelity", {})}}


def unequal_settings(config: Config, method: str) -> dict | None:
    """The reference evaluators' settings for the method's kind (``evaluation.protocol_sensitivity``: e.g. 64
    insertion / deletion steps and 128 mu-fidelity samples on maps blurred with sigma 2 for WAM, 128 steps and 512
    samples for the baselines), or ``None`` when the configuration does not ask for them."""
    sensitivity = config.section("evaluation").get("protocol_sensitivity")
    if not sensitivity:
        return None
    return method_evaluation(config, method, sensitivity.get(config.methods[method].kind) or {})


def unequal(protocol: str) -> str:
    """The ``protocol`` value of the scores taken under the reference's unequal settings."""
    return f"{protocol}_unequal"


def scoring_plan(config: Config, method: str, modality: str) -> list[tuple[str, str, str]]:
    """Every ``(protocol, domain, ranking)`` whose insertion and deletion curves are scored (no repeats)."""
    main = config.section("evaluation")["protocol"]
    home = home_domain(config, method)
    cell = protocols.reference_ranking(modality, home)
    plan = [(main, home, cell), (other_protocol(main), home, cell)]
    plan += [(main, d, same_domain_ranking(config, d)) for d in config.section("evaluation")["domains"]]
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


def data_spaces(config: Config, dataset: str, model: torch.nn.Module, x: torch.Tensor) -> dict:
    """Per domain: ``(model, input in the data's own space, preprocess)`` (see the module docstring); ``x`` in the
    data's own space (images in [0, 1], normalised after any perturbation by the model's own statistics)."""
    modality = config.datasets[dataset].modality
    if modality == "images":
        space = (model, x, preprocessing(model).normalize().to(x.device))
        return {"pixel": space, "wavelet": space}
    if modality == "audio":
        return {"pixel": (model.classifier, model.frontend(x).detach(), None), "wavelet": (model, x, None)}
    return {"pixel": (model, x, None), "wavelet": (model, x, None)}


def extra_scores(names: tuple[str, ...], net, inputs: torch.Tensor, y: torch.Tensor, attribution, domain: str,
                 preprocess, options: dict, batch_size: int) -> dict[str, torch.Tensor | metrics.Curve]:
    """The registered metrics ``names`` (``evaluation.metrics``) on the inputs ``[n, ...]``, targets ``[n]``,
    attribution and protocol options of one scoring setting (``score`` uses the Table 1 cell's): ``[n]`` each, or a
    :class:`metrics.Curve`. Each is called as ``metric(net, inputs, y, attribution, domain=..., preprocess=...,
    batch_size=..., **options)`` (``options``: the protocol's ``baseline``, ``postprocess`` ..., and the wavelet's
    ``wavelet``, ``levels``, ``mode`` in the wavelet domain), so a metric takes ``**kwargs``; ``ValueError`` naming
    ``evaluation.metrics`` for an unknown name, a call the metric refuses, or a result of another shape."""
    results = {}
    for name in names:
        try:
            metric = metrics.get(name)
        except ValueError as e:
            raise ValueError(f"evaluation.metrics: {str(e).removeprefix('name: ')} (or a plug-in: `plugins:`)") from e
        try:
            value = metric(net, inputs, y, attribution, domain=domain, preprocess=preprocess, batch_size=batch_size,
                           **options)
        except TypeError as e:
            raise ValueError(f"evaluation.metrics: {name!r} cannot be called as metric(model, x, y, attribution, "
                             f"domain=, preprocess=, batch_size=, {', '.join(f'{k}=' for k in options)}) ({e}); "
                             "a metric of the score stage takes **kwargs") from e
        scores = value.probs if isinstance(value, metrics.Curve) else value
        if not isinstance(scores, torch.Tensor) or scores.shape[0] != len(y) or (
                not isinstance(value, metrics.Curve) and scores.dim() != 1):
            shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(value).__name__
            raise ValueError(f"evaluation.metrics: {name!r} returned {shape}; expected one value per input "
                             f"[{len(y)}] or a metrics.Curve")
        results[name] = value
    return results


@dataclass
class Setting:
    """One scoring setting's model, inputs in the data's own space, ``preprocess``, ranked attribution and the
    protocol's options."""

    net: torch.nn.Module
    inputs: torch.Tensor
    preprocess: object
    attribution: object
    options: dict


class ShardScorer:
    """The scores of one shard of one method's attributions (see the module docstring), collected as rows in a
    fixed order: the scoring plan's curves (Table 1's cell first), mu-fidelity, the reference's unequal settings,
    completeness and conservation, localisation and scale shares."""

    def __init__(self, config: Config, dataset: str, model_name: str, model: torch.nn.Module, method: str,
                 data: Split, attributions: dict, device: torch.device) -> None:
        self.config, self.dataset, self.model_name, self.model, self.method = config, dataset, model_name, model, method
        self.data, self.attributions, self.device = data, attributions, device
        self.modality = config.datasets[dataset].modality
        self.evaluation = method_evaluation(config, method)
        self.wavelet = config.section("wavelet")[self.modality]
        self.y = data.y.to(device)
        self.spaces = data_spaces(config, dataset, model, data.x.to(device))
        self.pixel = attributions["pixel"].to(device)
        self.pixel_degenerate = constant_rows(self.pixel.flatten(1))
        self.rows: list[tuple] = []
        self.curve_rows: list[tuple] = []

    def add(self, metric: str, domain: str, auc: str, protocol: str, ranking: str, degenerate: torch.Tensor | None,
            values: torch.Tensor) -> None:
        """One row per sample; ``degenerate`` ``None``: a metric with no ranked map (never degenerate)."""
        flags = [False] * len(self.data.ids) if degenerate is None else degenerate.tolist()
        for sample_id, flag, v in zip(self.data.ids, flags, values.tolist(), strict=True):
            self.rows.append((self.dataset, self.model_name, self.method, metric, domain, auc, protocol, ranking,
                              bool(flag), sample_id, float(v)))

    def setting(self, protocol: str, domain: str, ranking: str) -> Setting:
        net, inputs, preprocess = self.spaces[domain]
        inputs, options = protocols.setup(protocol, self.modality, domain, inputs, seed=self.config.seed)
        if domain == "pixel":
            return Setting(net, inputs, preprocess, self.pixel, options)
        bands = protocols.rank_maps([w.to(self.device) for w in self.attributions["wavelet"]], ranking)
        return Setting(net, inputs, preprocess, transform.unbands(bands, self.config.datasets[self.dataset].ndim),
                       {**options, **self.wavelet})

    def curves(self, s: Setting, domain: str, steps: int) -> dict:
        """Insertion and deletion curves of one setting."""
        return {kind: getattr(metrics, kind)(s.net, s.inputs, self.y, s.attribution, domain=domain, steps=steps,
                                             batch_size=self.evaluation["batch_size"], preprocess=s.preprocess,
                                             **s.options)
                for kind in ("insertion", "deletion")}

    def add_areas(self, curves: dict, domain: str, protocol: str, ranking: str) -> None:
        degenerate = curves["insertion"].degenerate
        for auc in ("paper", "trapezoid"):
            areas = {kind: c.auc(auc) for kind, c in curves.items()}
            self.add("insertion", domain, auc, protocol, ranking, degenerate, areas["insertion"])
            self.add("deletion", domain, auc, protocol, ranking, degenerate, areas["deletion"])
            self.add("faithfulness", domain, auc, protocol, ranking, degenerate,
                     areas["insertion"] - areas["deletion"])

    def add_curves(self, curves: dict, domain: str, protocol: str, ranking: str) -> None:
        for kind, c in curves.items():
            fractions = c.fractions.tolist()
            for sample_id, probs in zip(self.data.ids, c.probs.tolist(), strict=True):
                self.curve_rows.extend((self.dataset, self.model_name, self.method, kind, domain, protocol, ranking,
                                        sample_id, f, p) for f, p in zip(fractions, probs, strict=True))

    def score_plan(self, plan: list[tuple[str, str, str]]) -> dict:
        """Every setting of the plan: areas and curves; the metrics of ``evaluation.metrics`` in Table 1's cell (the
        first). Returns the cell's curves."""
        for protocol, domain, ranking in plan:
            s = self.setting(protocol, domain, ranking)
            curves = self.curves(s, domain, self.evaluation["steps"])
            if (protocol, domain, ranking) == plan[0]:
                cell = curves
                degenerate = curves["insertion"].degenerate
                for metric, value in extra_scores(self.config.evaluation_metrics, s.net, s.inputs, self.y,
                                                  s.attribution, domain, s.preprocess, s.options,
                                                  self.evaluation["batch_size"]).items():
                    if isinstance(value, metrics.Curve):
                        for auc in ("paper", "trapezoid"):
                            self.add(metric, domain, auc, protocol, ranking, degenerate, value.auc(auc))
                    else:
                        self.add(metric, domain, "-", protocol, ranking, degenerate, value)
            self.add_areas(curves, domain, protocol, ranking)
            self.add_curves(curves, domain, protocol, ranking)
        return cell

    def mu_fidelity(self, mu: dict) -> torch.Tensor:
        s = self.setting(self.evaluation["protocol"], "pixel", "-")
        return metrics.mu_fidelity(s.net, s.inputs, self.y, self.pixel, grid=mu["grid"], subset=mu["subset"],
                                   samples=mu["samples"], blur=mu["blur"], baseline=s.options["baseline"],
                                   seed=self.config.seed, preprocess=s.preprocess,
                                   postprocess=s.options["postprocess"], batch_size=self.evaluation["batch_size"])

    def score_unequal(self, plan: list[tuple[str, str, str]], cell: dict, mu: torch.Tensor) -> None:
        """Table 1's cell and mu-fidelity under the reference evaluators' unequal settings (reusing the equal
        settings' values where they coincide)."""
        reference = unequal_settings(self.config, self.method)
        if reference is None:
            return
        protocol, domain, ranking = plan[0]
        if reference["steps"] != self.evaluation["steps"]:
            cell = self.curves(self.setting(*plan[0]), domain, reference["steps"])
        self.add_areas(cell, domain, unequal(protocol), ranking)
        if reference["mu_fidelity"] != self.evaluation["mu_fidelity"]:
            mu = self.mu_fidelity(reference["mu_fidelity"])
        self.add("mu_fidelity", "pixel", "-", unequal(self.evaluation["protocol"]), "-", self.pixel_degenerate, mu)

    def score_sums(self) -> None:
        """Path methods: ``|sum of attributions - (f(x) - f(x0))| / |f(x) - f(x0)|``; LRP: the sum of relevance
        over the target logit it distributes."""
        if "completeness" in self.attributions:
            c = self.attributions["completeness"]
            gap = (c["attribution_sum"] - c["delta"]).abs() / c["delta"].abs().clamp_min(1e-12)
            self.add("completeness_error", "-", "-", "-", "-", None, gap)
        if "conservation" in self.attributions:
            c = self.attributions["conservation"]
            self.add("conservation_ratio", "-", "-", "-", "-", None, c["relevance_sum"] / c["logit"])

    def score_ground_truth_and_scales(self) -> None:
        """Localisation (offline sets: where the class evidence is) and WAM's scale shares."""
        truth = ground_truth(self.config.datasets[self.dataset], self.config.resources, self.data.ids)
        pixel, scales = self.attributions["pixel"], self.attributions.get("scales")
        audio = self.modality == "audio"
        time_map = pixel.sum(1) if audio else pixel  # audio: [n, mels, frames] -> [n, frames]
        hop = self.model.frontend.mel.hop_length if audio else None
        mask = None if truth is None else truth_like(truth, self.modality, time_map.shape[-1] if audio else None,
                                                     hop)
        if mask is not None:
            self.add("localisation", "pixel", "-", "-", "-", self.pixel_degenerate, localisation(time_map, mask))
        if scales is None:
            return
        for i, level in enumerate(transform.level_names(scales.shape[1] - 1)):
            self.add(f"scale_share@{level}", "-", "-", "-", "-", None, self.attributions["scale_shares"][:, i])
            self.add(f"scale_share_per_coefficient@{level}", "-", "-", "-", "-", None,
                     self.attributions["scale_shares_per_coefficient"][:, i])
            if mask is not None:
                self.add(f"localisation@{level}", "pixel", "-", "-", "-", None, localisation(scales[:, i], mask))

    def run(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        plan = scoring_plan(self.config, self.method, self.modality)
        cell = self.score_plan(plan)
        mu = self.mu_fidelity(self.evaluation["mu_fidelity"])
        self.add("mu_fidelity", "pixel", "-", self.evaluation["protocol"], "-", self.pixel_degenerate, mu)
        self.score_unequal(plan, cell, mu)
        self.score_sums()
        self.score_ground_truth_and_scales()
        return pd.DataFrame(self.rows, columns=SCORE_COLUMNS), pd.DataFrame(self.curve_rows, columns=CURVE_COLUMNS)


def score(config: Config, dataset: str, model_name: str, model: torch.nn.Module, method: str, data: Split,
          attributions: dict, device: torch.device) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(scores, curves)`` of one shard (:class:`ShardScorer`)."""
    return ShardScorer(config, dataset, model_name, model, method, data, attributions, device).run()


def score_shard(config: Config, dataset: str, model_path: Path, method: str, attributions_path: Path,
                scores_path: Path, curves_path: Path) -> None:
    """Score the attribution file of one shard; write the scores and curves CSVs and the provenance sidecar."""
    plugins.load(config.raw)  # the same plug-in metrics as the DAG
    device = pick_device(config.device)
    attributions = torch.load(attributions_path, map_location="cpu", weights_only=False)
    shard = int(Path(attributions_path).stem)
    model = zoo.load(model_path).to(device).eval()
    data, _ = model_inputs(config, dataset, model, shard)  # images: data.x in [0, 1]
    if data.ids != attributions["ids"]:
        raise ValueError(f"{attributions_path}: its sample ids do not match shard {shard} of {dataset}")
    model_name = Path(model_path).parent.name
    with torch.no_grad():
        scores, curves = score(config, dataset, model_name, model, method, data, attributions, device)
    files.write_csv(scores, scores_path)
    files.write_csv(curves, curves_path)
    files.write_json(Path(f"{scores_path}.provenance.json"), files.provenance(
        stage="evaluate", dataset=dataset, model=str(model_path), method=method, shard=shard,
        evaluation=config.section("evaluation"), wavelet=config.section("wavelet"), seed=config.seed,
        device_used=str(device), plan=scoring_plan(config, method, config.datasets[dataset].modality)))
