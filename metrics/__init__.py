"""Faithfulness metrics of WAM Bench: insertion, deletion, faithfulness, mu-fidelity, Faithfulness of Spectra and
Input Fidelity, ROAD (:mod:`metrics.road`); stability: Max-/Avg-Sensitivity and Relative Input Stability
(:mod:`metrics.stability`); the named evaluation protocols in :mod:`metrics.protocols`.

Example::

    >>> import metrics
    >>> c = metrics.insertion(model, x, y, attribution, domain="wavelet", steps=64)  # doctest: +SKIP
    >>> c.probs.shape, c.auc("paper").shape                                           # doctest: +SKIP
    (torch.Size([B, 65]), torch.Size([B]))
    >>> metrics.available()
    ['aopc', 'avg_sensitivity', 'deletion', 'faithfulness', 'faithfulness_of_spectra', 'input_fidelity', 'insertion',
     'max_sensitivity', 'mu_fidelity', 'relative_input_stability', 'road', 'road_lerf', 'road_morf']
"""

from metrics.curves import AUC_KINDS, Curve, deletion, faithfulness, insertion
from metrics.fidelity import mu_fidelity
from metrics.registry import available, get, register
from metrics.road import road_lerf, road_morf  # metrics.road stays the module: metrics.get("road")
from metrics.spectra import faithfulness_of_spectra, input_fidelity
from metrics.stability import avg_sensitivity, max_sensitivity, relative_input_stability

__all__ = [
    "AUC_KINDS",
    "Curve",
    "available",
    "avg_sensitivity",
    "deletion",
    "faithfulness",
    "faithfulness_of_spectra",
    "get",
    "input_fidelity",
    "insertion",
    "max_sensitivity",
    "mu_fidelity",
    "register",
    "relative_input_stability",
    "road_lerf",
    "road_morf",
]
