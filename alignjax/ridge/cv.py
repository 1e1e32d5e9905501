"""Ridge's internal interface: cross-validated alphas per target (with edge extension), the
refit on all rows, and fit-then-predict of held-out rows.

Used by :func:`alignjax.ridge_cv` and friends and by :func:`alignjax.encode` (the nested
CV is these steps repeated per outer fold and layer). Inputs are validated already: ``X``
is a device array of the default float dtype, ``targets`` come from
:func:`~alignjax.ridge.placement.place_targets`, solvers are registry names.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .kernels import CV_SOLVERS, cv_pass, predict_pass, refit_pass
from .placement import Targets, fold_groups, pad_targets, place_targets, plan_targets
from .solvers import FOLD_SOLVERS, SCORERS

__all__ = ["AlphaChoice", "cv_alphas", "refit", "fit_predict", "ALPHA_MIN", "ALPHA_MAX"]

#: Bounds of the alpha-grid edge extension (Pepino et al.).
ALPHA_MIN, ALPHA_MAX = 1e-49, 1e50
_MAX_EXTEND_STEPS = 400


class AlphaChoice(NamedTuple):
    """Result of :func:`cv_alphas`.

    Attributes
    ----------
    alpha : ndarray (n_targets,)
        Alpha chosen per target (off the grid where the edge extension moved it).
    score : ndarray (n_targets,)
        Cross-validated score at ``alpha``.
    cv_scores : array (n_alphas, n_targets)
        Cross-validated score of each grid alpha, averaged over folds.
    """

    alpha: np.ndarray
    score: np.ndarray
    cv_scores: jax.Array


def cv_alphas(X, targets: Targets, masks: np.ndarray, alphas: np.ndarray, *, solver: str,
              score: str, fit_intercept: bool, standardize: bool, extend_alphas: bool,
              chunk_size: int | None = None, eig=None) -> AlphaChoice:
    """Per-target alpha chosen by K-fold cross-validation on the rows of ``X``.

    Parameters
    ----------
    X : array (n_stimuli, n_features)
    targets : Targets
        Responses of the same rows (:func:`place_targets`).
    masks : ndarray (n_folds, n_stimuli) of bool
        Test masks of the folds.
    alphas : ndarray (n_alphas,)
    solver : str
        Key of ``CV_SOLVERS``.
    score : str
        Key of ``SCORERS``.
    extend_alphas : bool
        Halve (double) alphas chosen at the lower (upper) edge of the grid while the score
        strictly improves (Pepino et al.).
    chunk_size : int, optional
        Targets per chunk of the edge-extension passes (as given by the user).
    eig : tuple, optional
        The full kernel's eigendecomposition, for the ``"eigh_full"`` solver.
    """
    plan = targets.plan
    groups = fold_groups(masks)
    kw = dict(cv_solver=CV_SOLVERS[solver], score=SCORERS[score], fit_intercept=fit_intercept,
              standardize=standardize)
    cv = cv_pass(X, targets.device, groups, jnp.asarray(alphas, X.dtype), eig,
                 chunk=plan.chunk, devices=plan.devices, **kw) / masks.shape[0]
    cv = cv[:, :plan.n_targets]
    cv_np = np.asarray(cv)
    best = np.argmax(cv_np, axis=0)
    alpha, best_score = alphas[best], cv_np[best, np.arange(cv_np.shape[1])]
    if extend_alphas and len(alphas) >= 2:
        def grid_scores(a, cols):
            return _subset_grid_scores(X, targets.host, groups, a, cols, eig,
                                       chunk_size=chunk_size, devices=plan.devices,
                                       n_folds=masks.shape[0], **kw)

        alpha, best_score = _extend(grid_scores, alpha, best_score, alphas, X.dtype)
    return AlphaChoice(alpha, best_score, cv)


def _subset_grid_scores(Xd, Y: np.ndarray, groups, alphas, cols, eig=None, *, chunk_size,
                        devices, n_folds, **kw) -> np.ndarray:
    """CV scores (n_alphas, len(cols)) of the targets ``cols`` of host array ``Y``.

    The subset is padded to a power of two (>= 64) so repeated calls with shrinking
    subsets compile only a few shapes.
    """
    n, p = Xd.shape
    bucket = max(64, 1 << int(np.ceil(np.log2(max(1, len(cols))))))
    bucket = min(bucket, max(Y.shape[1], 1))
    bucket = max(bucket, len(cols))
    plan = plan_targets(n, p, len(alphas), bucket, chunk_size, devices)
    Ysub = np.zeros((n, bucket), Y.dtype)
    Ysub[:, :len(cols)] = Y[:, cols]
    out = cv_pass(Xd, place_targets(Ysub, plan).device, groups, jnp.asarray(alphas, Xd.dtype),
                  eig, chunk=plan.chunk, devices=plan.devices, **kw)
    return np.asarray(out)[:, :len(cols)] / n_folds


def _extend(grid_score_fn, best_alpha, best_score, grid, dtype):
    """Halve/double edge-selected alphas while the CV score improves (Pepino et al.).

    Targets at the lower edge all walk ``lo/2, lo/4, ...`` and those at the upper edge
    ``hi*2, hi*4, ...`` in lockstep, so each step is one two-alpha grid pass
    (``grid_score_fn(alphas (2,), cols) -> (2, len(cols))``) over the still-active
    targets ``cols`` only.

    An improvement must exceed a few hundred ulps of the score, so rounding noise on a
    flat score curve (tiny alphas: the minimum-norm limit; huge alphas with Pearson r) does
    not keep the search walking, and the chunk size cannot change the outcome.
    """
    finfo = np.finfo(dtype)
    lo_bound = max(ALPHA_MIN, float(finfo.tiny) * 1e3)
    hi_bound = min(ALPHA_MAX, float(finfo.max) * 1e-3)
    best_alpha = best_alpha.astype(np.float64)
    best_score = best_score.astype(np.float64)
    lo, hi = float(grid.min()), float(grid.max())
    down = best_alpha <= lo
    up = (best_alpha >= hi) & ~down
    active_dn, active_up = down.copy(), up.copy()
    for k in range(1, _MAX_EXTEND_STEPS + 1):
        a_dn, a_up = lo / 2.0 ** k, hi * 2.0 ** k
        active_dn &= a_dn >= lo_bound
        active_up &= a_up <= hi_bound
        if not (active_dn.any() or active_up.any()):
            break
        cols = np.flatnonzero(active_dn | active_up)
        s = np.full((2, best_score.shape[0]), -np.inf)
        s[:, cols] = np.asarray(grid_score_fn(
            np.array([max(a_dn, lo_bound), min(a_up, hi_bound)]), cols), dtype=np.float64)
        tol = 256 * float(finfo.eps) * np.maximum(1.0, np.abs(best_score))
        imp_dn = active_dn & (s[0] > best_score + tol)
        imp_up = active_up & (s[1] > best_score + tol)
        best_alpha = np.where(imp_dn, a_dn, np.where(imp_up, a_up, best_alpha))
        best_score = np.where(imp_dn, s[0], np.where(imp_up, s[1], best_score))
        active_dn, active_up = imp_dn, imp_up
    return best_alpha, best_score


def refit(X, targets: Targets, alpha, *, solver: str, fit_intercept: bool, standardize: bool,
          eig=None):
    """Fit on all rows of ``X`` with per-target ``alpha`` (n_targets,).

    Returns ``coef`` (n_features, n_targets) and ``intercept`` (n_targets,); ``solver`` is
    a key of ``FOLD_SOLVERS`` (``eig``: the full kernel's eigendecomposition, for "eigh").
    """
    plan = targets.plan
    coef, icpt = refit_pass(X, targets.device, pad_targets(alpha, plan), eig,
                            solver=FOLD_SOLVERS[solver], fit_intercept=fit_intercept,
                            standardize=standardize, chunk=plan.chunk, devices=plan.devices)
    return coef[:, :plan.n_targets], icpt[:plan.n_targets]


def fit_predict(X, targets: Targets, train, test, alpha, *, solver: str, fit_intercept: bool,
                standardize: bool) -> jax.Array:
    """Fit on rows ``train`` with per-target ``alpha`` (n_targets,), predict rows ``test``.

    Returns predictions (n_test, n_targets); ``solver`` is a key of ``FOLD_SOLVERS``.
    """
    plan = targets.plan
    out = predict_pass(X, targets.device, jnp.asarray(train, jnp.int32),
                       jnp.asarray(test, jnp.int32), pad_targets(alpha, plan),
                       solver=FOLD_SOLVERS[solver], fit_intercept=fit_intercept,
                       standardize=standardize, chunk=plan.chunk, devices=plan.devices)
    return out[:, :plan.n_targets]
