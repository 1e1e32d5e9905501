"""Variance partitioning of two or three feature spaces (de Heer et al. 2017).

Each non-empty subset of the bands is fit by :func:`alignjax.banded_ridge_cv` inside the
training runs of every outer fold (inner folds: the other outer folds) and scored on the
held-out run by the coefficient of determination; the Venn regions follow by
inclusion-exclusion of those held-out R² (e.g. two spaces: unique A = R²(AB) - R²(B),
shared = R²(A) + R²(B) - R²(AB)). Negative region estimates are reported as they are.
"""

from __future__ import annotations

from itertools import combinations
from typing import NamedTuple

import numpy as np

from .._validation import InvalidOptionError
from ..errors import InvalidFoldsError
from .banded import _time_series_folds, banded_ridge_cv, check_bands, dirichlet_weights

__all__ = ["variance_partition", "VariancePartition"]


class VariancePartition(NamedTuple):
    """Result of :func:`variance_partition`.

    Attributes
    ----------
    subsets : tuple of tuples of int
        Band indices of each fitted model (every non-empty subset, by size then order).
    r2 : ndarray (n_subsets, n_targets)
        Held-out R² (coefficient of determination per held-out fold, averaged) per model.
    regions : tuple of tuples of int
        Each Venn region as the set of bands sharing it: ``(b,)`` unique to band ``b``,
        ``(a, b)`` shared by exactly ``a`` and ``b``, ``(0, 1, 2)`` shared by all three.
    partition : ndarray (n_regions, n_targets)
        Variance of each region (may be negative: estimation noise, or suppression).
    """

    subsets: tuple
    r2: np.ndarray
    regions: tuple
    partition: np.ndarray


def variance_partition(Xs, Y, *, alphas, folds, n_iter: int = 20, seed: int = 0,
                       chunk_size: int | None = None, devices=None) -> VariancePartition:
    """Unique and shared explained variance of two or three feature spaces per target.

    Parameters
    ----------
    Xs : sequence of 2 or 3 arrays (n_samples, n_features_b)
    Y : array (n_samples, n_targets)
    alphas : array (n_alphas,)
    folds : folds of whole runs (:func:`alignjax.run_folds`), at least three
        Outer folds; each model's band weights and alpha are chosen by the other folds.
    n_iter, seed : weight samples of the banded ridge of each model with several bands.
    chunk_size, devices : as :func:`alignjax.banded_ridge_cv`.

    Returns
    -------
    VariancePartition
    """
    bands, Y = check_bands(Xs, Y)
    if len(bands) not in (2, 3):
        raise InvalidOptionError(f"variance_partition takes 2 or 3 feature spaces, got "
                                 f"{len(bands)}")
    masks = _time_series_folds(folds, Y.shape[0])
    if masks.shape[0] < 3:
        raise InvalidFoldsError("variance_partition needs at least 3 folds (runs): each "
                                "outer fold's model is tuned on the others")
    k = len(bands)
    subsets = tuple(c for s in range(1, k + 1) for c in combinations(range(k), s))
    r2 = np.stack([_held_out_r2([bands[b] for b in S], Y, masks, alphas, n_iter, seed,
                                chunk_size, devices) for S in subsets])
    R = dict(zip(subsets, r2))
    regions, part = _venn(R, k)
    return VariancePartition(subsets, r2, regions, np.stack(part))


def _held_out_r2(bands, Y, masks, alphas, n_iter, seed, chunk_size, devices) -> np.ndarray:
    """Held-out coefficient of determination (n_targets,), averaged over outer folds."""
    scores = []
    for o, test in enumerate(masks):
        tr = ~test
        inner = np.delete(masks, o, axis=0)[:, tr]
        w = dirichlet_weights(n_iter if len(bands) > 1 else 1, len(bands), seed=seed)
        res = banded_ridge_cv([X[tr] for X in bands], Y[tr], alphas=alphas, weights=w,
                              folds=inner, chunk_size=chunk_size, devices=devices)
        pred = np.concatenate([X[test] for X in bands], 1) @ np.asarray(res.coef, np.float64) \
            + np.asarray(res.intercept, np.float64)
        yt = Y[test]
        sst = ((yt - yt.mean(0)) ** 2).sum(0)
        scores.append(1.0 - ((yt - pred) ** 2).sum(0) / sst)
    return np.mean(scores, axis=0)


def _venn(R: dict, k: int):
    """Venn regions by inclusion-exclusion of the subset models' R²."""
    full = tuple(range(k))
    if k == 2:
        shared = R[(0,)] + R[(1,)] - R[full]
        return ((0,), (1,), (0, 1)), [R[full] - R[(1,)], R[full] - R[(0,)], shared]
    regions, part = [], []
    for b in full:  # unique: the full model minus the model without b
        regions.append((b,))
        part.append(R[full] - R[tuple(c for c in full if c != b)])
    for a, b in combinations(full, 2):  # shared by a and b only
        c = next(x for x in full if x not in (a, b))
        regions.append((a, b))
        part.append(R[tuple(sorted((a, c)))] + R[tuple(sorted((b, c)))] - R[(c,)] - R[full])
    regions.append(full)
    part.append(R[(0,)] + R[(1,)] + R[(2,)] - R[(0, 1)] - R[(0, 2)] - R[(1, 2)] + R[full])
    return tuple(regions), part
