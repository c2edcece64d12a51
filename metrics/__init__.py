"""Faithfulness metrics of WAM Bench: insertion, deletion, faithfulness, mu-fidelity, Faithfulness of Spectra and
Input Fidelity; the named evaluation protocols in :mod:`metrics.protocols`. Randomisation sanity checks (MPRT,
eMPRT, Random Logit, data randomisation: :mod:`metrics.randomisation`), complexity (Sparseness, Complexity:
:mod:`metrics.complexity`) and the meta-evaluation of the metrics (:mod:`metrics.agreement`).

Example::

    >>> import metrics
    >>> c = metrics.insertion(model, x, y, attribution, domain="wavelet", steps=64)  # doctest: +SKIP
    >>> c.probs.shape, c.auc("paper").shape                                           # doctest: +SKIP
    (torch.Size([B, 65]), torch.Size([B]))
    >>> {"deletion", "mprt", "emprt", "random_logit", "sparseness", "complexity"} <= set(metrics.available())
    True
"""

from metrics.complexity import complexity, sparseness
from metrics.curves import AUC_KINDS, Curve, deletion, faithfulness, insertion
from metrics.fidelity import mu_fidelity
from metrics.randomisation import Randomisation, data_randomisation, emprt, mprt, random_logit
from metrics.registry import available, get, register
from metrics.spectra import faithfulness_of_spectra, input_fidelity

__all__ = [
    "AUC_KINDS",
    "Curve",
    "Randomisation",
    "available",
    "complexity",
    "data_randomisation",
    "deletion",
    "emprt",
    "faithfulness",
    "faithfulness_of_spectra",
    "get",
    "input_fidelity",
    "insertion",
    "mprt",
    "mu_fidelity",
    "random_logit",
    "register",
    "sparseness",
]
