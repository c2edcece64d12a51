"""Metrics of WAM Bench, every one batched in torch and defined for ``[B, C, ...]`` inputs of 1, 2 or 3 spatial
dimensions, in the pixel and the wavelet domain:

- faithfulness: insertion, deletion, faithfulness, mu-fidelity, Faithfulness of Spectra and Input Fidelity, ROAD
  (:mod:`metrics.road`); the named evaluation protocols in :mod:`metrics.protocols`;
- stability: Max-/Avg-Sensitivity and Relative Input Stability (:mod:`metrics.stability`);
- randomisation sanity checks: MPRT, eMPRT, Random Logit, data randomisation (:mod:`metrics.randomisation`);
- complexity: Sparseness, Complexity (:mod:`metrics.complexity`);
- the meta-evaluation of the metrics (:mod:`metrics.agreement`).

Example::

    >>> import metrics, torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
    >>> x, y, attribution = torch.rand(2, 3, 16, 16), torch.tensor([0, 3]), torch.rand(2, 16, 16)  # a dyadic map
    >>> c = metrics.insertion(model, x, y, attribution, domain="wavelet", steps=8)
    >>> c.probs.shape, c.auc("paper").shape
    (torch.Size([2, 9]), torch.Size([2]))
    >>> {"deletion", "road", "max_sensitivity", "mprt", "sparseness"} <= set(metrics.available())
    True
"""

from metrics.complexity import complexity, sparseness
from metrics.curves import AUC_KINDS, Curve, deletion, faithfulness, insertion
from metrics.fidelity import mu_fidelity
from metrics.randomisation import Randomisation, data_randomisation, emprt, mprt, random_logit
from metrics.registry import available, get, register
from metrics.road import road_lerf, road_morf  # metrics.road stays the module: metrics.get("road")
from metrics.spectra import faithfulness_of_spectra, input_fidelity
from metrics.stability import avg_sensitivity, max_sensitivity, relative_input_stability

__all__ = [
    "AUC_KINDS",
    "Curve",
    "Randomisation",
    "available",
    "avg_sensitivity",
    "complexity",
    "data_randomisation",
    "deletion",
    "emprt",
    "faithfulness",
    "faithfulness_of_spectra",
    "get",
    "input_fidelity",
    "insertion",
    "max_sensitivity",
    "mprt",
    "mu_fidelity",
    "random_logit",
    "register",
    "relative_input_stability",
    "road_lerf",
    "road_morf",
    "sparseness",
]
