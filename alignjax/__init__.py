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
from .encoding import EncodingResult, concat_targets, encode, encoding_permutation_test
from .stats import fdr_bh, permutation_pvalues, rankdata
from .permutation import PermutationTestResult, device_permutation_test, permutation_test
from .zoo import (CorrelationResult, PairwiseResult, RankingResult, TooFewModelsError,
                  alignment_score_correlation, bootstrap_ranking, pairwise_comparisons,
                  ranking_from_samples)
from .spatial import (SensitivityResult, SpatialProbeResult, angular_error, sensitivity,
                      spatial_probe)
from .io import FeatureStore, StoreWriter, load_layers, load_responses, open_store
from .io import (SurfaceSpace, VolumeSpace, load_gifti_responses, load_nifti_folder,
                 load_nifti_responses, load_subject_table, read_roi_labels, roi_summary,
                 write_maps)
from .io import EpochsData, load_epochs
from .clusters import ClusterTestResult, MaxTResult, cluster_permutation_test, max_t_test
from .temporal import (PeakLatency, TemporalNoiseCeiling, TemporalPartialRSA, TemporalRDMs,
                       TemporalRSAResult, frame_rsa_permutation_test, peak_latency,
                       temporal_noise_ceiling, temporal_partial_rsa, temporal_rdms,
                       temporal_rsa, temporal_rsa_permutation_test, temporal_searchlight)
# the function shadows the submodule attribute; ``from alignjax.similarity import cka`` and
# ``import alignjax.similarity.kernels`` still reach the package through sys.modules
from .similarity import (SimilarityResult, cca_similarity, cka, distance_correlation, hsic,
                         knn_alignment, model_similarity, rank_agreement, rv_coefficient,
                         shape_distance, similarity)
from .naturalistic import (BandedRidgeResult, VariancePartition, banded_ridge_cv, delay_features,
                           r2_score_split, variance_partition,
                           run_folds)
from .naturalistic.trf import TRFResult, trf
from .power import power
from ._runtime import use_compilation_cache

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
    "concat_targets",
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
    # model zoos
    "bootstrap_ranking",
    "ranking_from_samples",
    "pairwise_comparisons",
    "alignment_score_correlation",
    "RankingResult",
    "PairwiseResult",
    "CorrelationResult",
    "TooFewModelsError",
    # store
    "FeatureStore",
    "StoreWriter",
    "open_store",
    "load_layers",
    "load_responses",
    # neuroimaging I/O ([fmri] extra: nibabel imported when used)
    "load_nifti_responses",
    "load_nifti_folder",
    "load_gifti_responses",
    "load_subject_table",
    "VolumeSpace",
    "SurfaceSpace",
    "write_maps",
    "roi_summary",
    "read_roi_labels",
    # EEG/MEG epochs, time-resolved RSA, cluster statistics
    "load_epochs",
    "EpochsData",
    "temporal_rdms",
    "TemporalRDMs",
    "temporal_rsa",
    "temporal_rsa_permutation_test",
    "TemporalRSAResult",
    "temporal_noise_ceiling",
    "TemporalNoiseCeiling",
    "peak_latency",
    "PeakLatency",
    "temporal_partial_rsa",
    "TemporalPartialRSA",
    "frame_rsa_permutation_test",
    "temporal_searchlight",
    "cluster_permutation_test",
    "max_t_test",
    "ClusterTestResult",
    "MaxTResult",
    # similarity
    "similarity",
    "SimilarityResult",
    "cka",
    "hsic",
    "rv_coefficient",
    "distance_correlation",
    "shape_distance",
    "cca_similarity",
    "knn_alignment",
    "rank_agreement",
    "model_similarity",
    # naturalistic (time-series) encoding
    "delay_features",
    "run_folds",
    "banded_ridge_cv",
    "BandedRidgeResult",
    "r2_score_split",
    "variance_partition",
    "VariancePartition",
    "trf",
    "TRFResult",
    # simulation-based power
    "power",
    # runtime
    "use_compilation_cache",
]


def __getattr__(name):
    # RidgeCV needs scikit-learn (optional); import it only when asked for
    if name == "RidgeCV":
        from .estimators import RidgeCV

        return RidgeCV
    raise AttributeError(f"module 'alignjax' has no attribute {name!r}")
