"""alignjax: measure how audio models' representations align with brains, behaviour and each other.

The JAX core: RDMs, permutation-tested RSA, voxel-wise ridge encoding and linear probes.
It never imports torch; the feature extractors live in the separate ``extractors`` package.
"""

from .errors import (
    AlignjaxInputError,
    ConstantRDMError,
    InvalidFoldsError,
    InvalidOptionError,
    NonFiniteError,
    ShapeMismatchError,
    StimulusMismatchError,
    StoreError,
    ZeroVarianceError,
)
from .rdm import (METRICS as rdm_metrics, rdm, rdm_from_distributions, rdm_from_labels,
                  squareform)
from .rsa import (CVBestLayerResult, NoiseCeiling, RSABootstrapResult, RSAPermutationResult,
                  compare, cv_best_layer, noise_ceiling, partial_compare, rsa_bootstrap,
                  rsa_permutation_test, stimulus_permutations)
from .folds import group_kfold, kfold, resolve_folds, stratified_kfold
from .probes import (
    encode_labels,
    fit_logistic,
    layer_weighted_probe,
    logistic_probe,
    probe_permutation_test,
    probe_transfer,
    ridge_probe,
)
from .ridge import RidgeCVResult, ridge_cv, ridge_fit
from .encoding import EncodingResult, encode, encoding_permutation_test
from .stats import fdr_bh, permutation_pvalues, rankdata
from .permutation import PermutationTestResult, device_permutation_test, permutation_test
from .spatial import (SensitivityResult, SpatialProbeResult, angular_error, sensitivity,
                      spatial_probe)
from .io import FeatureStore, StoreWriter, load_layers, load_responses, open_store

__version__ = "0.1.0"

__all__ = [
    # spatial
    "spatial_probe",
    "SpatialProbeResult",
    "angular_error",
    "sensitivity",
    "SensitivityResult",
    # errors
    "AlignjaxInputError",
    "ConstantRDMError",
    "InvalidFoldsError",
    "InvalidOptionError",
    "NonFiniteError",
    "ShapeMismatchError",
    "StimulusMismatchError",
    "StoreError",
    "ZeroVarianceError",
    # rdm
    "rdm",
    "rdm_metrics",
    "squareform",
    "rdm_from_distributions",
    "rdm_from_labels",
    # rsa
    "compare",
    "rsa_permutation_test",
    "rsa_bootstrap",
    "noise_ceiling",
    "partial_compare",
    "cv_best_layer",
    "stimulus_permutations",
    "RSAPermutationResult",
    "RSABootstrapResult",
    "NoiseCeiling",
    "CVBestLayerResult",
    # folds
    "kfold",
    "stratified_kfold",
    "group_kfold",
    "resolve_folds",
    # ridge
    "ridge_cv",
    "ridge_fit",
    "RidgeCVResult",
    "RidgeCV",
    "encode",
    "EncodingResult",
    "encoding_permutation_test",
    # probes
    "fit_logistic",
    "logistic_probe",
    "probe_transfer",
    "probe_permutation_test",
    "encode_labels",
    "ridge_probe",
    "layer_weighted_probe",
    # stats
    "rankdata",
    "permutation_pvalues",
    "fdr_bh",
    # permutation engine
    "permutation_test",
    "device_permutation_test",
    "PermutationTestResult",
    # store
    "FeatureStore",
    "StoreWriter",
    "open_store",
    "load_layers",
    "load_responses",
]


def __getattr__(name):
    # RidgeCV needs scikit-learn (optional); import it only when asked for
    if name == "RidgeCV":
        from .estimators import RidgeCV

        return RidgeCV
    raise AttributeError(f"module 'alignjax' has no attribute {name!r}")
