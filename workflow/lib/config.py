"""The workflow's configuration, typed: frozen specs built once from the schema-validated configuration.

``workflow/config/schema.yaml`` checks types and keys when Snakemake starts; what JSON schema cannot say is checked
here, once, with a ``ValueError`` naming the key (a data source that does not fit its modality, an experiment's
data set of the wrong modality). Every default is resolved here, including which data set and model each
experiment uses, so neither the rule files nor the stage scripts pick one.

- :class:`DatasetSpec`: one entry of ``datasets`` (its ``key`` travels with it);
- :class:`ModelSpec`: one model of a data set, pretrained or trained, with its training settings
  (:meth:`Config.model`);
- :class:`MethodSpec`: one entry of ``methods`` (:meth:`MethodSpec.options_for` merges ``per_modality``);
- :class:`Config`: the whole configuration: ``datasets`` and ``methods`` as specs, the other sections as the
  validated mappings they are, and the experiments' resolved data sets (:meth:`Config.experiment_dataset`).

Example::

    >>> config = Config.from_dict({"name": "t", "seed": 0, "device": "cpu", "resources": "resources", "shards": 1,
    ...     "datasets": {"sounds": {"modality": "audio", "source": "offline", "models": ["audio_resnet"]}},
    ...     "methods": {"wam_sg": {"kind": "wam", "label": "WAM-SG", "options": {"n_samples": 4},
    ...                            "per_modality": {"audio": {"noise": 0.001}}}}})
    >>> config.datasets["sounds"].key, config.datasets["sounds"].clips
    ('sounds', 2000)
    >>> config.methods["wam_sg"].options_for("audio")
    {'n_samples': 4, 'noise': 0.001}
    >>> config.experiment_dataset("audio_separation")
    'sounds'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

MODALITY_SOURCES = {"images": ("offline", "imagenet"), "audio": ("offline", "esc50"),
                    "volumes": ("offline", "medmnist")}
NDIM = {"audio": 1, "images": 2, "volumes": 3}  # spatial dimensions of each modality's inputs
ESC50_CLIPS = 2000  # clips listed in ESC-50's meta/esc50.csv
# The data set each experiment runs on when its section names none: the modality it needs.
EXPERIMENT_MODALITY = {"audio_separation": "audio", "perturbation": "images"}
DEFAULT_TRAINING = {"epochs": 30, "patience": 5, "lr": 0.001, "batch_size": 16, "seed": 42, "threads": 1}
# The registered per-sample metrics the score stage runs besides Table 1's when ``evaluation.metrics`` is not set
# (Faithfulness of Spectra and Input Fidelity: the appendix's), and those it always runs, which the key cannot list.
DEFAULT_METRICS = ("faithfulness_of_spectra", "input_fidelity")
ALWAYS_SCORED = ("insertion", "deletion", "faithfulness", "mu_fidelity")


@dataclass(frozen=True)
class DatasetSpec:
    """One data set of ``datasets``: where it comes from, what is evaluated, which models explain it.

    ``seed`` is the evaluated subset's seed (the configuration's ``seed``); ``clips`` the ESC-50 clip count to
    expect (``None``: not checked); ``size`` a MedMNIST volume's side.
    """

    key: str
    modality: str
    source: str = "offline"
    models: tuple[str, ...] = ()
    n_inputs: int | None = None
    seed: int = 42
    path: str | None = None
    labels: str | None = None
    fold: int = 1
    sha256: str | None = None
    clips: int | None = ESC50_CLIPS
    allow_short_clips: bool = False
    flag: str = "adrenalmnist3d"
    size: int = 28

    @classmethod
    def from_config(cls, key: str, section: Mapping[str, Any], seed: int = 42) -> DatasetSpec:
        """The spec of ``datasets.<key>`` (``ValueError`` naming the key for a source that does not fit its
        modality)."""
        modality, source = section.get("modality"), section.get("source", "offline")
        if modality not in MODALITY_SOURCES:
            raise ValueError(f"datasets.{key}.modality: {modality!r} not in {sorted(MODALITY_SOURCES)}")
        if source not in MODALITY_SOURCES[modality]:
            raise ValueError(f"datasets.{key}.source: {source!r} not in {MODALITY_SOURCES[modality]}")
        known = {f for f in cls.__dataclass_fields__ if f not in ("key", "seed")}
        values = {k: v for k, v in section.items() if k in known}
        values["models"] = tuple(section.get("models") or ())
        values["clips"] = section.get("clips", ESC50_CLIPS)
        for name in ("flag", "size", "fold"):  # null means the default
            if values.get(name) is None:
                values.pop(name, None)
        return cls(key=key, seed=int(section.get("seed", seed)), **values)

    @property
    def ndim(self) -> int:
        """Spatial dimensions of the inputs (1 audio, 2 images, 3 volumes)."""
        return NDIM[self.modality]

    @property
    def where(self) -> str:
        """Its config key, ``datasets.<key>``, the prefix of every message about it."""
        return f"datasets.{self.key}"

    def require(self, name: str) -> Any:
        """The value of ``name``; ``ValueError`` naming ``datasets.<key>.<name>`` when it is not set."""
        value = getattr(self, name)
        if value in (None, ""):
            raise ValueError(f"{self.where}.{name}: required but not set")
        return value


@dataclass(frozen=True)
class MethodSpec:
    """One attribution method of ``methods``: its ``kind`` (``wam`` or ``baseline``; a baseline's key is its
    registered name), ``label``, ``options`` and their ``per_modality`` overrides, and its own ``evaluation``
    settings (``steps``, ``mu_fidelity``; empty: the configuration's)."""

    key: str
    kind: str
    label: str
    options: Mapping[str, Any] = field(default_factory=dict)
    per_modality: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    evaluation: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, key: str, section: Mapping[str, Any]) -> MethodSpec:
        return cls(key=key, kind=section["kind"], label=section.get("label", key),
                   options=dict(section.get("options") or {}),
                   per_modality={m: dict(o or {}) for m, o in (section.get("per_modality") or {}).items()},
                   evaluation=dict(section.get("evaluation") or {}))

    def options_for(self, modality: str) -> dict[str, Any]:
        """``options`` with the modality's ``per_modality`` entries over them."""
        return {**self.options, **self.per_modality.get(modality, {})}


@dataclass(frozen=True)
class ModelSpec:
    """A model of ``datasets.<dataset>.models``: its ``name`` (a registry model or ``timm:<name>``), whether it comes
    ``pretrained`` (the workflow measures it; otherwise it trains it), and its resolved ``training`` settings (the
    section's defaults, its ``per_model`` entry, then any override of the run)."""

    name: str
    dataset: str
    pretrained: bool
    training: Mapping[str, Any]

    @property
    def where(self) -> str:
        return f"datasets.{self.dataset}.models ({self.name})"


def complete_training(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """``training`` settings over :data:`DEFAULT_TRAINING`, checked (``ValueError`` naming ``training.<key>``)."""
    cfg = {**DEFAULT_TRAINING, **(settings or {})}
    for k in ("epochs", "patience", "batch_size", "seed", "threads"):
        if k == "patience" and cfg[k] is None:
            continue
        if not isinstance(cfg[k], int) or cfg[k] < 0 or (k in ("batch_size", "threads") and cfg[k] == 0):
            raise ValueError(f"training.{k}: expected a non-negative integer, got {cfg[k]!r}")
    if not float(cfg["lr"]) > 0:
        raise ValueError(f"training.lr: expected > 0, got {cfg['lr']!r}")
    return cfg


def training_settings(section: Mapping[str, Any] | None, model: str, epochs: int | None = None,
                      seed: int | None = None) -> dict[str, Any]:
    """The ``training`` section for ``model``: its ``per_model`` entry over the rest, then ``epochs`` / ``seed``
    when given, completed by :func:`complete_training`.

    >>> training_settings({"epochs": 4, "per_model": {"vit3d": {"epochs": 16}}}, "vit3d", seed=1)["epochs"]
    16
    """
    settings = {k: v for k, v in (section or {}).items() if k != "per_model"}
    settings.update(((section or {}).get("per_model") or {}).get(model, {}))
    if epochs is not None:
        settings["epochs"] = epochs
    if seed is not None:
        settings["seed"] = seed
    return complete_training(settings)


@dataclass(frozen=True)
class Config:
    """The resolved configuration. ``raw`` is the validated mapping itself (read-only), for the sections that are
    used as they are (``wavelet``, ``evaluation``, ``training``, the experiments')."""

    raw: Mapping[str, Any]
    name: str
    seed: int
    device: str
    resources: Path
    shards: int
    datasets: Mapping[str, DatasetSpec]
    methods: Mapping[str, MethodSpec]

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Config:
        seed = int(raw.get("seed", 42))
        datasets = {k: DatasetSpec.from_config(k, s, seed) for k, s in (raw.get("datasets") or {}).items()}
        methods = {k: MethodSpec.from_config(k, s) for k, s in (raw.get("methods") or {}).items()}
        config = cls(raw=MappingProxyType(dict(raw)), name=str(raw.get("name", "default")), seed=seed,
                     device=str(raw.get("device", "auto")), resources=Path(raw.get("resources", "resources")),
                     shards=int(raw.get("shards", 1)), datasets=MappingProxyType(datasets),
                     methods=MappingProxyType(methods))
        for experiment in EXPERIMENT_MODALITY:
            if experiment in raw:
                config.experiment_dataset(experiment)  # fails now, naming the key, when there is none
        _ = config.evaluation_metrics  # fails now, naming evaluation.metrics, for a list that cannot be scored
        return config

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """The configuration a run resolved (``results/NAME/config.json``, or any JSON / YAML config file)."""
        from workflow.lib.files import read_config

        return cls.from_dict(read_config(path))

    def dataset(self, key: str, argument: str = "--key") -> DatasetSpec:
        """Data set ``key`` (``ValueError`` naming ``argument`` and the data sets there are otherwise)."""
        if key not in self.datasets:
            raise ValueError(f"{argument}: {key!r} is not a data set of the configuration ({sorted(self.datasets)})")
        return self.datasets[key]

    def dataset_models(self) -> list[tuple[str, str]]:
        """Every (data set, model) pair, in the configuration's order."""
        return [(d, m) for d, spec in self.datasets.items() for m in spec.models]

    def model(self, dataset: str, name: str, epochs: int | None = None, seed: int | None = None) -> ModelSpec:
        """Model ``name`` of data set ``dataset`` (``ValueError`` unless the configuration pairs them), with its
        training settings (``epochs`` / ``seed``: the run's overrides)."""
        if (dataset, name) not in self.dataset_models():
            raise ValueError(f"--dataset/--model: {dataset}/{name} is not a (data set, model) of the configuration "
                             f"({', '.join(f'{d}/{m}' for d, m in self.dataset_models())})")
        from workflow.lib.models import zoo  # torch, only where a model is resolved

        return ModelSpec(name, dataset, zoo.is_pretrained(name),
                         MappingProxyType(training_settings(self.section("training"), name, epochs, seed)))

    def experiment_dataset(self, experiment: str) -> str:
        """The data set experiment ``experiment`` runs on: its section's ``dataset``, else the first data set of the
        modality it needs (``ValueError`` naming ``<experiment>.dataset`` otherwise)."""
        modality = EXPERIMENT_MODALITY[experiment]
        named = (self.raw.get(experiment) or {}).get("dataset")
        key = named or next((d for d, s in self.datasets.items() if s.modality == modality), None)
        if key is None or self.datasets.get(key) is None or self.datasets[key].modality != modality:
            raise ValueError(f"{experiment}.dataset: expected the key of an {modality} data set of `datasets` (the "
                             f"configuration has none, or got {named!r})")
        return key

    def experiment_model(self, experiment: str) -> str:
        """The model experiment ``experiment`` explains: its data set's first model."""
        return self.datasets[self.experiment_dataset(experiment)].models[0]

    def with_methods(self, names: list[str], modality: str,
                     overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Config:
        """This configuration with ``methods`` reduced to ``names`` (in that order), each with its options for
        ``modality`` and ``overrides[name]`` over them (an experiment's cheaper settings); a name that is not a key of
        ``methods`` is a registered baseline with its default options (e.g. the sanity checks' Guided Backprop).

        >>> config = Config.from_dict({"methods": {"wam_sg": {"kind": "wam", "label": "WAM-SG",
        ...     "options": {"n_samples": 25}, "per_modality": {"audio": {"noise": 0.001}}}}})
        >>> small = config.with_methods(["wam_sg", "guided_backprop"], "audio", {"wam_sg": {"n_samples": 4}})
        >>> small.methods["wam_sg"].options_for("audio"), small.methods["guided_backprop"].label
        ({'n_samples': 4, 'noise': 0.001}, 'Guided Backprop')
        """
        specs = {}
        for name in names:
            own = self.methods.get(name) or MethodSpec(name, "baseline", name.replace("_", " ").title())
            options = {**own.options_for(modality), **(overrides or {}).get(name, {})}
            specs[name] = MethodSpec(name, own.kind, own.label, options, evaluation=own.evaluation)
        return replace(self, methods=MappingProxyType(specs))

    def __contains__(self, name: str) -> bool:
        """Whether the configuration has a section ``name``."""
        return name in self.raw

    def section(self, name: str) -> Mapping[str, Any]:
        """A section of the configuration as it is (``{}`` when absent)."""
        return self.raw.get(name) or {}

    @property
    def evaluation_metrics(self) -> tuple[str, ...]:
        """The registered per-sample metrics (names of ``metrics.available()``, plug-ins included) that the score
        stage runs besides Table 1's, in each method's Table 1 cell setting: ``evaluation.metrics``, by default
        :data:`DEFAULT_METRICS`. ``ValueError`` naming the key for a repeated name or one of :data:`ALWAYS_SCORED`
        (whether a name is registered is the preflight's check: it needs the plug-ins).

        >>> Config.from_dict({}).evaluation_metrics
        ('faithfulness_of_spectra', 'input_fidelity')
        >>> Config.from_dict({"evaluation": {"metrics": ["input_fidelity", "deletion"]}})
        Traceback (most recent call last):
        ValueError: evaluation.metrics: 'deletion' is always scored (insertion, deletion, faithfulness, mu_fidelity); \
remove it from the list
        """
        names = tuple(self.section("evaluation").get("metrics", DEFAULT_METRICS))
        for i, name in enumerate(names):
            if name in ALWAYS_SCORED:
                raise ValueError(f"evaluation.metrics: {name!r} is always scored ({', '.join(ALWAYS_SCORED)}); "
                                 "remove it from the list")
            if name in names[:i]:
                raise ValueError(f"evaluation.metrics: {name!r} is listed twice")
        return names
