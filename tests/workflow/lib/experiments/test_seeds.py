"""The seed spread's table on known per-seed scores (the end-to-end run is in test_pipeline.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metrics.protocols import reference_ranking
from workflow.lib.config import Config
from workflow.lib.experiments import seeds

RAW = {
    "training": {"seed": 0},
    "seeds": [0, 1, 2],
    "evaluation": {"protocol": "reference"},
    "datasets": {"volumes": {"modality": "volumes", "models": ["resnet3d"]},
                 "images": {"modality": "images", "models": ["efficientnet_lite0"]}},
    "methods": {"saliency": {"kind": "baseline", "label": "Saliency"},
                "wam_ig": {"kind": "wam", "label": "WAM-IG"}},
}
CONFIG = Config.from_dict(RAW)


def scores(dataset: str, model: str, method: str, values: list[float], **changes) -> pd.DataFrame:
    """Table 1 rows (paper AUC, the method's home domain and reference ranking) of insertion with ``values``."""
    modality = RAW["datasets"][dataset]["modality"]
    domain = "wavelet" if method.startswith("wam") else "pixel"
    row = dict(dataset=dataset, model=model, method=method, metric="insertion", domain=domain, auc="paper",
               protocol="reference", ranking=reference_ranking(modality, domain))
    row.update(changes)
    return pd.DataFrame([{**row, "sample_id": i, "value": v} for i, v in enumerate(values)])


def test_mean_and_sample_sd_over_seeds_of_each_cell():
    per_seed = {s: pd.concat([scores("volumes", "resnet3d", "saliency", [s, s + 2.0]),
                              scores("volumes", "resnet3d", "wam_ig", [0.5, 0.5]),
                              scores("images", "efficientnet_lite0", "saliency", [s, s])])
                for s in (0, 1, 2)}
    table = seeds.spread(per_seed, CONFIG)
    assert set(table["model"]) == {"resnet3d"}  # pretrained: no spread
    sal = table[table["method"] == "saliency"].iloc[0]
    assert [sal["seed_0"], sal["seed_1"], sal["seed_2"]] == [1.0, 2.0, 3.0]  # per-seed means over the inputs
    assert sal["mean"] == 2.0 and sal["sd"] == pytest.approx(1.0) and sal["n_seeds"] == 3
    assert table[table["method"] == "wam_ig"].iloc[0]["sd"] == 0.0
    assert list(table["label"]) == ["Saliency", "WAM-IG"]  # config order


def test_only_table1_rows_enter_the_spread():
    base = scores("volumes", "resnet3d", "saliency", [1.0])
    other = pd.concat([scores("volumes", "resnet3d", "saliency", [9.0], auc="trapezoid"),
                       scores("volumes", "resnet3d", "saliency", [9.0], protocol="clean"),
                       scores("volumes", "resnet3d", "saliency", [9.0], domain="wavelet")])
    table = seeds.spread({0: pd.concat([base, other]), 1: base}, CONFIG)
    assert table["seed_0"].tolist() == [1.0] and table["sd"].tolist() == [0.0]


def test_a_single_seed_is_refused():
    with pytest.raises(ValueError, match="seeds"):
        seeds.spread({0: scores("volumes", "resnet3d", "saliency", [1.0])}, CONFIG)


def test_extra_seeds_and_trained_models():
    assert seeds.extra_seeds(CONFIG) == [1, 2]
    assert seeds.trained_models(CONFIG) == [("volumes", "resnet3d")]
    assert np.isclose(seeds.spread({0: scores("volumes", "resnet3d", "saliency", [0.0]),
                                    1: scores("volumes", "resnet3d", "saliency", [1.0])}, CONFIG)["sd"][0],
                      np.std([0.0, 1.0], ddof=1))
