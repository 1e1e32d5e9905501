"""Linear and downstream probes of every layer: what a layer's features say about a label.

Modules, each readable on its own:

``lbfgs``
    A compact L-BFGS that batches under ``vmap`` (package-internal).
``logistic``
    The kernel: :func:`fit_logistic` / :func:`predict_logistic`, sklearn's
    ``LogisticRegression`` objective.
``labels``
    :func:`encode_labels`; layers and labels aligned by stimulus id.
``solve``
    Every (layer, split, C) problem of a study in one compiled program (package-internal).
``cv``
    :func:`logistic_probe`: nested cross-validated probing.
``transfer``
    :func:`probe_transfer`: train on one subset of stimuli, test on another.
``permutation``
    :func:`probe_permutation_test`: label permutations, max-T over layers.
``ridge``
    :func:`ridge_probe`: continuous and circular targets.
``layer_weighted``
    :func:`layer_weighted_probe`: softmax layer weights -> MLP (needs ``alignjax[probe]``).

Folds come from :mod:`alignjax.folds`. Names without a leading underscore that are not in
``__all__`` are package-internal: shared between these modules, not public API.
"""

from .cv import ProbeResult, logistic_probe
from .labels import encode_labels
from .layer_weighted import LayerWeightedResult, layer_weighted_probe
from .logistic import LogisticFit, fit_logistic, predict_logistic
from .permutation import PermutationResult, probe_permutation_test
from .ridge import RidgeProbeResult, ridge_probe
from .transfer import TransferResult, probe_transfer

__all__ = [
    "LogisticFit",
    "ProbeResult",
    "TransferResult",
    "PermutationResult",
    "RidgeProbeResult",
    "LayerWeightedResult",
    "fit_logistic",
    "predict_logistic",
    "logistic_probe",
    "probe_transfer",
    "probe_permutation_test",
    "encode_labels",
    "ridge_probe",
    "layer_weighted_probe",
]
