"""Naturalistic (time-series) encoding: delayed features on the response's clock, run-wise
folds, banded ridge over feature spaces, split scores per band and variance partitioning.

Modules: :mod:`.delays` (:func:`delay_features`), :mod:`.runs` (:func:`run_folds`),
:mod:`.banded` (:func:`banded_ridge_cv`, :func:`r2_score_split`).
"""

from .banded import BandedRidgeResult, band_slices, banded_ridge_cv, dirichlet_weights, \
    r2_score_split
from .delays import RunBounds, delay_features, run_bounds
from .partition import VariancePartition, variance_partition
from .runs import run_folds

__all__ = ["delay_features", "run_bounds", "RunBounds", "run_folds", "banded_ridge_cv",
           "BandedRidgeResult", "dirichlet_weights", "r2_score_split", "band_slices", "variance_partition",
           "VariancePartition"]
