"""Similarity beyond RSA: CKA, HSIC, distance correlation, shape metrics, CCA and
nearest-neighbour alignment, with one permutation-calibrated inference scheme.

Kernels (plain functions of ``X`` (..., n_stimuli, n_features_x) and ``Y`` (...,
n_stimuli, n_features_y), leading axes vmapped; and of precomputed Gram matrices):
:func:`cka`, :func:`hsic`, :func:`rv_coefficient`, :func:`distance_correlation`,
:func:`shape_distance`, :func:`cca_similarity`, :func:`knn_alignment`, :func:`cka_gram`,
:func:`hsic_gram`, :func:`gram`, :func:`center_gram`, :func:`distance_matrix`.

The entry point :func:`similarity` compares every layer with every subject under every
metric, with stimulus-permutation p-values (FWE over layers), null-calibrated scores and
bootstrap CIs; :func:`rank_agreement` says where the metrics disagree, and
:func:`model_similarity` gives layer x layer matrices between two models.

``alignjax.similarity`` (the attribute of the package) is the function; this module is
still importable by its full name (``from alignjax.similarity import cka``).
"""

from .kernels import (KERNELS, center_gram, cka, cka_gram, distance_correlation, distance_matrix,
                      gram, hsic, hsic_gram, rv_coefficient)
from .geometry import CCA_METHODS, SHAPE_SCORES, cca_similarity, shape_distance
from .knn import KNN_METHODS, knn_alignment
from .registry import METRICS, METRICS_DOC, Metric, get_metric
from .inference import CI_METRICS, DEFAULT_METRICS, SimilarityResult, similarity
from .agreement import RankAgreement, model_similarity, rank_agreement

__all__ = [
    "similarity", "SimilarityResult", "DEFAULT_METRICS", "CI_METRICS", "METRICS", "METRICS_DOC",
    "Metric", "get_metric",
    "cka", "cka_gram", "hsic", "hsic_gram", "rv_coefficient", "distance_correlation",
    "gram", "center_gram", "distance_matrix", "KERNELS",
    "shape_distance", "SHAPE_SCORES", "cca_similarity", "CCA_METHODS",
    "knn_alignment", "KNN_METHODS",
    "rank_agreement", "RankAgreement", "model_similarity",
]
