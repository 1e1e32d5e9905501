"""Naturalistic (time-series) encoding: delayed features on the response's clock, run-wise
folds, banded ridge over feature spaces, split scores per band and variance partitioning.

Modules: :mod:`.delays` (:func:`delay_features`).
"""

from .delays import RunBounds, delay_features, run_bounds

__all__ = ["delay_features", "run_bounds", "RunBounds"]
