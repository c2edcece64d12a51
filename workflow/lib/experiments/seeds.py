"""Training-seed spread of Table 1 (config ``seeds``, target ``seed_spread``).

Why: training is pinned to a fixed number of epochs and threads, so one machine reproduces itself bit for bit,
but not another CPU. PyTorch picks its vectorised kernels by the CPU's instruction set: the offline audio model
trained here with ``ATEN_CPU_CAPABILITY=default`` and with ``avx2`` (this machine has AVX-512) already differs
in its 5th epoch's training loss (1.134 against 1.129). So every Table 1 cell of a trained model also gets its
standard deviation over training seeds: a difference between two methods smaller than it is training noise.
Pretrained models (not trained by the workflow) have no such spread and are left out.

- ``train``: train one model with one seed (the workflow's own training): ``seeds/{seed}/models/{dataset}/{model}``.
- ``replicate``: explain and score the evaluated inputs with one method on that model (the workflow's own
  ``explain_shard`` and ``score_shard``, every shard in one process): ``seeds/{seed}/scores/{dataset}/{model}/
  {method}.csv`` (the scores' columns plus ``seed``), with the attributions and curves beside it. One job per
  method, so a method added to the configuration (a plug-in) adds its own jobs and reruns no other. With the
  configuration's own ``training.seed``, training and every method reproduce the main run's scores exactly
  (tested).
- ``table``: Table 1's cells of every trained (data set, model) for each seed (the main run's scores for
  ``training.seed``, replicates for the others): ``tables/seed_spread.{csv,md}`` with the mean over seeds, the
  seed-to-seed standard deviation (``ddof=1``) and each seed's value.

Example::

    >>> from workflow.lib.config import Config
    >>> config = Config.from_dict({"seeds": [42, 1, 2], "training": {"seed": 42},
    ...     "datasets": {"images": {"modality": "images", "models": ["efficientnet_lite0"]},
    ...                  "volumes": {"modality": "volumes", "models": ["resnet3d"]}}})
    >>> extra_seeds(config), trained_models(config)
    ([1, 2], [('volumes', 'resnet3d')])
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from workflow.lib import attribution, files, scoring, training
from workflow.lib.config import Config
from workflow.lib.reporting import tables


def extra_seeds(config: Config) -> list[int]:
    """The seeds of ``config['seeds']`` that need their own training (all but ``training.seed``)."""
    return [s for s in config.raw.get("seeds", []) if s != config.section("training")["seed"]]


def trained_models(config: Config) -> list[tuple[str, str]]:
    """(data set, model) pairs the workflow trains (pretrained models have no training seed)."""
    return [(d, m) for d, m in config.dataset_models() if not config.model(d, m).pretrained]


def model_file(out: Path, dataset: str, model: str) -> Path:
    """Where :func:`train` writes the model of one seed: ``out/models/{dataset}/{model}/model.pt``."""
    return Path(out) / "models" / dataset / model / "model.pt"


def train(config: Config, dataset: str, model: str, seed: int, out: Path) -> Path:
    """Train ``model`` on ``dataset`` with training seed ``seed``; returns :func:`model_file` (``metrics.json``
    beside it). ``out``: ``results/NAME/seeds/{seed}``."""
    spec = config.model(dataset, model, seed=seed)
    if spec.pretrained:
        raise ValueError(f"--model: {model} is pretrained; a training seed does not change it")
    path = model_file(out, dataset, model)
    training.fit(config.datasets[dataset], spec, config.resources, path.parent)
    return path


def replicate(config: Config, dataset: str, model: str, method: str, seed: int, out: Path) -> Path:
    """Explain and score every shard of ``dataset`` with ``method`` on the model :func:`train` wrote under
    ``out``; returns ``out/scores/{dataset}/{model}/{method}.csv`` (the scores with a ``seed`` column)."""
    model_path = model_file(out, dataset, model)
    if not model_path.is_file():
        raise ValueError(f"--out: no model {model_path}; train it first (`seeds train`)")
    if method not in config.methods:
        raise ValueError(f"--method: {method!r} is not a method of the configuration ({', '.join(config.methods)})")
    parts = []
    for shard in tqdm(range(config.shards), desc=f"seed {seed}: {dataset}/{model}/{method}", unit="shard"):
        where = Path(dataset) / model / method
        attributions = out / "attributions" / where / f"{shard}.pt"
        scores = out / "scores" / where / f"{shard}.csv"
        attribution.explain_shard(config, dataset, model_path, method, shard, attributions)
        scoring.score_shard(config, dataset, model_path, method, attributions, scores,
                            out / "curves" / where / f"{shard}.csv")
        parts.append(pd.read_csv(scores, keep_default_na=False))
    result = out / "scores" / dataset / model / f"{method}.csv"
    files.write_csv(pd.concat(parts, ignore_index=True).assign(seed=seed), result)
    return result


def cell_means(scores: pd.DataFrame, config: Config) -> pd.Series:
    """Table 1's cells (every model, ``evaluation.protocol``) of one seed's scores: the mean over the evaluated
    inputs, indexed by (dataset, model, method, metric)."""
    cells = tables.table1_scores(scores, config, config.section("evaluation")["protocol"], first_models=False)
    cells = cells.assign(value=pd.to_numeric(cells["value"]))
    return cells.groupby(["dataset", "model", "method", "metric"], sort=True)["value"].mean()


def spread(per_seed: dict[int, pd.DataFrame], config: Config) -> pd.DataFrame:
    """One row per Table 1 cell of the trained models: ``mean`` over seeds, ``sd`` (ddof=1), ``n_seeds`` and
    one ``seed_<s>`` column per seed; methods in config order, metrics in the paper's order."""
    if len(per_seed) < 2:
        raise ValueError(f"seeds: a spread needs at least 2 training seeds, got {sorted(per_seed)}")
    trained = set(trained_models(config))
    wide = pd.concat({s: cell_means(f, config) for s, f in per_seed.items()}, axis=1).rename(
        columns=lambda s: f"seed_{s}")
    wide = wide[[(d, m) in trained for d, m, *_ in wide.index]]
    values = wide.to_numpy()
    out = wide.reset_index().assign(mean=values.mean(1), sd=values.std(1, ddof=1), n_seeds=values.shape[1])
    label = {m: spec.label for m, spec in config.methods.items()}
    order = {**{m: i for i, m in enumerate(config.methods)}, **{m: i for i, m in enumerate(tables.METRICS)}}
    out = out.sort_values(["dataset", "model", "method", "metric"], kind="stable",
                          key=lambda s: s.map(order) if s.name in ("method", "metric") else s)
    out.insert(3, "label", out["method"].map(label))
    return out[["dataset", "model", "method", "label", "metric", "mean", "sd", "n_seeds",
                *[c for c in out.columns if c.startswith("seed_")]]].reset_index(drop=True)


def spread_markdown(table: pd.DataFrame, config: Config) -> str:
    seeds = [c.removeprefix("seed_") for c in table.columns if c.startswith("seed_")]
    left_out = sorted({f"{d} / {m}" for d, m in config.dataset_models() if config.model(d, m).pretrained})
    protocol = config.section("evaluation")["protocol"]
    caption = (f"Table 1's cells (`{protocol}` protocol, paper AUC, every trained model) "
               f"over {len(seeds)} training seeds ({', '.join(seeds)}): mean over seeds ± the seed-to-seed standard "
               "deviation (ddof = 1) of the per-seed means over the evaluated inputs; each seed's value is in the CSV. "
               "The data, evaluated inputs and explanation seeds are the same for every training seed. "
               + (f"Pretrained, not trained here (no seed spread): {', '.join(left_out)}." if left_out else ""))
    cells = table.assign(cell=table.apply(lambda r: f"{r['mean']:.3f} ± {r['sd']:.3f}", axis=1))
    return tables.markdown(cells, "label", ["dataset", "model", "metric"]) + f"\n{caption.strip()}\n"


def write_spread(config: Config, main_scores: Path, replicate_files: list[Path], out: Path) -> pd.DataFrame:
    """``tables/seed_spread.{csv,md}`` from the main run's scores and the replicates' (:func:`replicate`)."""
    per_seed = {}
    main_seed = config.section("training")["seed"]
    if main_seed in config.raw.get("seeds", []):
        per_seed[main_seed] = pd.read_csv(main_scores, keep_default_na=False)
    for path in replicate_files:
        frame = pd.read_csv(path, keep_default_na=False)
        seed = int(frame["seed"].iloc[0])
        per_seed[seed] = pd.concat([per_seed.get(seed), frame.drop(columns="seed")], ignore_index=True)
    result = spread(per_seed, config)
    tables.write(result, spread_markdown(result, config), out, "seed_spread")
    return result
