"""Faithfulness metrics of WAM Bench: insertion, deletion, faithfulness, mu-fidelity, Faithfulness of Spectra and
Input Fidelity; the named evaluation protocols in :mod:`metrics.protocols`.

Example::

    >>> import metrics
    >>> c = metrics.insertion(model, x, y, attribution, domain="wavelet", steps=64)  # doctest: +SKIP
    >>> c.probs.shape, c.auc("paper").shape                                           # doctest: +SKIP
    (torch.Size([B, 65]), torch.Size([B]))
    >>> metrics.available()
    ['aopc', 'deletion', 'faithfulness', 'faithfulness_of_spectra', 'input_fidelity', 'insertion', 'mu_fidelity']
"""

from metrics.curves import AUC_KINDS, Curve, deletion, faithfulness, insertion
from metrics.fidelity import mu_fidelity
from metrics.registry import available, get, register
from metrics.spectra import faithfulness_of_spectra, input_fidelity

__all__ = [
    "AUC_KINDS",
    "Curve",
    "available",
    "deletion",
    "faithfulness",
    "faithfulness_of_spectra",
    "get",
    "input_fidelity",
    "insertion",
    "mu_fidelity",
    "register",
]
