"""Closed-form multi-alpha ridge regression with per-target cross-validated alphas.

Every alpha of a grid and every target come from **one decomposition per training fold**:

- primal (``n_train >= n_features``): thin SVD ``X_train = U diag(s) V^T``; the ridge
  solution for ``alpha`` is ``V diag(s / (s^2 + alpha)) U^T Y``;
- dual / kernel (``n_train < n_features``): eigendecomposition of the linear kernel
  ``K_train = X_train X_train^T = U diag(lam) U^T``; predictions on held-out rows are
  ``K_test,train U diag(1 / (lam + alpha)) U^T Y`` (the kernel is computed once for all
  stimuli and re-centred per fold).

- full kernel (``n_train < n_features`` and at least 1024 stimuli): ONE eigendecomposition
  of the kernel of all stimuli serves every fold, through the exact held-out residuals of
  penalised least squares ``e_T = (G_TT)^-1 (G Y)_T`` with ``G = I - H`` the residual
  maker of the fit on all stimuli (``G = U diag(alpha / (lam + alpha)) U^T``).

The per-fold forms give the predictions on a test fold as ``A diag(d_alpha) B`` with ``A`` (n_test, r)
fixed per fold, ``B = U^T Y_train`` (r, n_targets) one big matmul per chunk of targets and
``d_alpha`` a vector per alpha, so a whole alpha grid costs one batched matmul and no
per-alpha solve. Directions whose singular value (eigenvalue) is below the numerical rank
threshold are dropped, as in a pseudo-inverse.

Targets are processed in chunks (memory-bounded, chunk chosen from the available memory by
default) and sharded across the local devices with :func:`jax.shard_map`; neither the
chunk size nor the number of devices changes a result beyond floating-point rounding.

References
----------
himalaya (Dupre la Tour et al. 2022), ``solve_ridge_cv_svd`` and ``KernelRidgeCV``;
scikit-learn ``Ridge``/``RidgeCV``; alpha-grid edge extension as in Pepino et al.

Layout: :mod:`.solvers` (the decompositions and the registry of fold solvers),
:mod:`.kernels` (chunked device bodies, the CV solver registry and the sharded passes),
:mod:`.placement` (solver choice, chunk size, target placement), :mod:`.nested` (one outer
fold of a nested CV for a stack of layers, in one device pass) and :mod:`.cv` (the
internal interface :func:`cv_alphas`, :func:`refit`, :func:`fit_predict`, used here, and
:func:`nested_fold_layers`, used by :func:`alignjax.encode`).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import distributed
from .._runtime import float32_matmuls, serial_lapack
from .._validation import (
    InvalidOptionError,
    ShapeMismatchError,
    as_float_array,
    check_choice,
    check_finite,
)
from ..folds import resolve_folds
from ..options import renamed
# the package-internal interface (alignjax.encode, the estimators and the tests use it)
from .cv import ALPHA_MAX, ALPHA_MIN, AlphaChoice, LayerFits, PendingLayerFits, cv_alphas, \
    fit_predict, nested_fold_layers, refit  # noqa: F401
from .kernels import CV_SOLVERS, cv_local, cv_pass, full_eig, predict_pass, refit_local, \
    refit_pass, use_hat  # noqa: F401
from .placement import (  # noqa: F401
    SOLVERS,
    Plan,
    Targets,
    default_target_chunk,
    float_dtype,
    fold_groups,
    fold_shape,
    hot_rows,
    layer_batch,
    outer_fold_batch,
    pick_cv_solver,
    pick_solver,
    centre_columns,
    place_targets,
    plan_targets,
)
from .solvers import FOLD_SOLVERS, SCORERS, TIE_ULPS, Scorer, pick_alpha  # noqa: F401

__all__ = ["ridge_cv", "RidgeCVResult", "ridge_fit", "ridge_predict_folds", "check_alphas",
           "SCORES", "ALPHA_MIN", "ALPHA_MAX"]

#: Values of the ``score=`` option.
SCORES = tuple(SCORERS)


class RidgeCVResult(NamedTuple):
    """Result of :func:`ridge_cv`.

    Attributes
    ----------
    best_alpha : array (n_targets,)
        Alpha chosen per target (off the grid when ``extend_alphas`` moved it).
    cv_scores : array (n_alphas, n_targets)
        Cross-validated score of each grid alpha, averaged over folds.
    coef : array (n_features, n_targets)
        Coefficients refit on all stimuli with each target's alpha.
    intercept : array (n_targets,)
        Intercepts (zeros with ``fit_intercept=False``).
    alphas : array (n_alphas,)
        The alpha grid (rows of ``cv_scores``).
    best_score : array (n_targets,)
        Cross-validated score at ``best_alpha``.
    """

    best_alpha: jax.Array
    cv_scores: jax.Array
    coef: jax.Array
    intercept: jax.Array
    alphas: jax.Array
    best_score: jax.Array


def check_alphas(alphas, *, name: str = "alphas") -> np.ndarray:
    """Validate an alpha grid: 1-D, finite, strictly positive."""
    a = np.atleast_1d(as_float_array(alphas, name))
    if a.ndim != 1 or a.size == 0:
        raise InvalidOptionError(f"{name} must be a non-empty 1-D sequence of positive numbers, "
                                 f"got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InvalidOptionError(f"{name} must be finite, got {a.tolist()[:10]}")
    if np.any(a <= 0):
        raise InvalidOptionError(
            f"{name} must be strictly positive (got {a[a <= 0].tolist()[:5]}); ridge needs "
            "alpha > 0, e.g. np.logspace(-2, 6, 9)")
    return a


def _validate_xy(X, Y):
    X = as_float_array(X, "X", ndim=2)
    Y = as_float_array(Y, "Y", ndim=(1, 2))
    if Y.ndim == 1:
        Y = Y[:, None]
    if X.shape[0] != Y.shape[0]:
        raise ShapeMismatchError(f"X has {X.shape[0]} rows (stimuli) but Y has {Y.shape[0]}; "
                                 "both must hold the same stimuli in the same order")
    if X.shape[1] == 0 or Y.shape[1] == 0:
        raise ShapeMismatchError(f"empty input: X {X.shape}, Y {Y.shape}")
    check_finite(X, "X", axis_name="stimulus")
    check_finite(Y, "Y", axis_name="stimulus")
    return X, Y


@renamed(target_chunk="chunk_size")
@float32_matmuls
def ridge_cv(X, Y, *, alphas, folds=5, fit_intercept: bool = True, score: str = "r2",
             chunk_size: int | None = None, extend_alphas: bool = False, seed: int = 0,
             standardize: bool = False, solver: str = "auto",
             devices: Sequence | None = None, gather: bool = True) -> RidgeCVResult:
    """Ridge regression with a per-target alpha chosen by K-fold cross-validation.

    Parameters
    ----------
    X : array (n_stimuli, n_features)
    Y : array (n_stimuli, n_targets) or (n_stimuli,)
    alphas : array (n_alphas,)
        Strictly positive regularisation values.
    folds : int or folds
        Number of shuffled K folds (seeded by ``seed``), or explicit folds in any form
        accepted by :func:`alignjax.resolve_folds` (boolean test masks, fold ids, test-index
        lists, sklearn ``(train, test)`` pairs).
    fit_intercept : bool
        Centre X and Y with each training fold's means (and fit an intercept at refit).
    score : {"r2", "pearson", "neg_mse"}
        Per-fold score (coefficient of determination, Pearson r, negative MSE), averaged
        over folds. A target constant within a test fold scores 0 there (as in himalaya).
    chunk_size : int, optional
        Targets per chunk on each device; by default chosen from available memory. Never
        changes the result. (Formerly ``target_chunk``.)
    extend_alphas : bool
        If a target's best alpha is at an edge of the grid, keep halving (lower edge) or
        doubling (upper edge) it while its CV score strictly improves, within
        [1e-49, 1e50] (Pepino et al.).
    seed : int
        Seed of the K-fold shuffle when ``folds`` is an int.
    standardize : bool
        z-score features with each training fold's statistics (and at refit with all
        stimuli); coefficients are returned in the original feature units.
    solver : {"auto", "svd", "eigh", "eigh_full"}
        ``"svd"``: thin SVD of each training fold (primal); ``"eigh"``: eigendecomposition
        of each training fold's kernel (dual); ``"eigh_full"``: one eigendecomposition of
        the full kernel serves every fold (exact K-fold residuals ``(G_TT)^-1 (G Y)_T``).
        ``"auto"`` uses "svd" when n_train >= n_features, else "eigh", or "eigh_full" from
        1024 stimuli on (when not standardising).
    devices : sequence of jax devices, optional
        Devices the targets are sharded over (default: all local devices).
    gather : bool
        Under several processes (:mod:`alignjax.distributed`) each process solves a
        contiguous block of the targets (``distributed.block(n_targets)``). True gathers
        the whole result to every process; False returns only this process's block (its
        targets' columns of every per-target field), so no process holds every target's
        coefficients. One process: the whole result either way.

    Returns
    -------
    RidgeCVResult
        ``best_alpha`` (n_targets,), ``cv_scores`` (n_alphas, n_targets), ``coef``
        (n_features, n_targets), ``intercept`` (n_targets,), ``alphas`` (n_alphas,),
        ``best_score`` (n_targets,).

    Notes
    -----
    With ``fit_intercept=False`` and the same folds, the chosen alphas are those of
    ``himalaya.ridge.solve_ridge_cv_svd`` wherever its best score is unique, and
    ``coef[:, j]`` equals ``sklearn.linear_model.Ridge(alpha=best_alpha[j]).fit(X, Y[:,
    j]).coef_``.

    Ties: grid alphas whose CV scores are within ``64 * eps(dtype) * max(1, |score|)`` of
    the best (``|score|`` for ``"neg_mse"``; about 7.6e-6 for r2 in float32) are tied, and
    the largest of them is chosen. The alphas are compared by their gain over the score of
    the training mean (the responses are centred per training fold and the predictions
    are deviations from that mean), which keeps the precision of the dtype even when
    heavy shrinkage makes every prediction nearly constant; so a target's alpha and score
    depend on its own data and the settings only, never on the chunk size or on which
    other targets are solved alongside.
    """
    X, Y = _validate_xy(X, Y)
    alphas_np = check_alphas(alphas)
    check_choice(score, "score", SCORES)
    check_choice(solver, "solver", SOLVERS)
    n, p = X.shape
    masks = resolve_folds(folds, n, seed=seed)
    cv_solver = pick_cv_solver(solver, masks, p, len(alphas_np), standardize)

    def solve(cols: slice) -> RidgeCVResult:  # one process's targets (all of them on one)
        Yb = Y[:, cols]
        plan = plan_targets(n, p, len(alphas_np), Yb.shape[1], chunk_size, devices,
                            hot_rows=hot_rows(cv_solver, len(alphas_np), masks, p))
        centre = bool(fit_intercept or standardize)
        # small decompositions: OpenBLAS on one thread, so it does not spin against XLA
        with serial_lapack(min(n, p), plan.devices):
            res = jax.block_until_ready(_ridge_cv_solve(
                X, place_targets(Yb, plan, centre=centre), alphas_np, masks, cv_solver,
                pick_solver(solver, n, p), score=score, fit_intercept=centre,
                standardize=standardize,
                extend_alphas=extend_alphas, chunk_size=chunk_size))
        return res._replace(alphas=None) if distributed.active() else res

    if not gather and distributed.active():  # this process's block only, not gathered
        mine = distributed.block(Y.shape[1])
        with distributed.local():
            return solve(mine)
    res = distributed.map_blocks(solve, Y.shape[1])
    if res.alphas is None:  # gathered over processes: back to device arrays
        res = jax.tree.map(jnp.asarray, res)._replace(
            alphas=jnp.asarray(alphas_np, float_dtype()))
    return res


def _ridge_cv_solve(X, targets: Targets, alphas_np, masks, cv_solver: str, fit_solver: str, *,
                    score, fit_intercept, standardize, extend_alphas,
                    chunk_size) -> RidgeCVResult:
    """The device work of :func:`ridge_cv` on validated inputs."""
    dtype = float_dtype()
    Xd = jnp.asarray(X, dtype=dtype)
    # one eigendecomposition of the full kernel serves the CV pass and the refit
    eig = full_eig(Xd, fit_intercept=fit_intercept) \
        if cv_solver == "eigh_full" and fit_solver == "eigh" else None
    choice = cv_alphas(Xd, targets, masks, alphas_np, solver=cv_solver, score=score,
                       fit_intercept=fit_intercept, standardize=standardize,
                       extend_alphas=extend_alphas, chunk_size=chunk_size, eig=eig)
    coef, intercept = refit(Xd, targets, choice.alpha, solver=fit_solver,
                            fit_intercept=fit_intercept, standardize=standardize, eig=eig)
    if targets.offset is not None:  # the responses were centred on the host
        intercept = intercept + jnp.asarray(targets.offset, dtype)
    return RidgeCVResult(best_alpha=jnp.asarray(choice.alpha, dtype),
                         cv_scores=choice.cv_scores, coef=coef, intercept=intercept,
                         alphas=jnp.asarray(alphas_np, dtype),
                         best_score=jnp.asarray(choice.score, dtype))


def _per_target_alpha(alpha, n_targets: int) -> np.ndarray:
    a = check_alphas(alpha, name="alpha")
    if np.ndim(alpha) == 0:
        a = np.broadcast_to(a, (n_targets,))
    if a.shape[0] != n_targets:
        raise ShapeMismatchError(f"alpha has {a.shape[0]} values for {n_targets} targets")
    return a


@renamed(target_chunk="chunk_size")
@float32_matmuls
def ridge_fit(X, Y, *, alpha, fit_intercept: bool = True, standardize: bool = False,
              chunk_size: int | None = None, solver: str = "auto",
              devices: Sequence | None = None):
    """Ridge fit with one alpha per target (or one for all): ``(coef, intercept)``.

    Parameters
    ----------
    X : array (n_stimuli, n_features)
    Y : array (n_stimuli, n_targets)
    alpha : float or array (n_targets,)
    chunk_size : int, optional
        Targets per chunk (formerly ``target_chunk``); never changes the result.

    Returns
    -------
    coef : array (n_features, n_targets)
    intercept : array (n_targets,)

    Matches ``sklearn.linear_model.Ridge(alpha).fit(X, Y[:, j])`` per target.
    """
    X, Y = _validate_xy(X, Y)
    a = _per_target_alpha(alpha, Y.shape[1])
    check_choice(solver, "solver", SOLVERS)
    n, p = X.shape
    plan = plan_targets(n, p, 1, Y.shape[1], chunk_size, devices)
    with serial_lapack(min(n, p), plan.devices):
        return jax.block_until_ready(refit(
            jnp.asarray(X, float_dtype()), place_targets(Y, plan), a,
            solver=pick_solver(solver, n, p), fit_intercept=fit_intercept,
            standardize=standardize))


@renamed(target_chunk="chunk_size")
@float32_matmuls
def ridge_predict_folds(X, Y, train, test, *, alpha, fit_intercept: bool = True,
                        standardize: bool = False, chunk_size: int | None = None,
                        solver: str = "auto", devices: Sequence | None = None) -> jax.Array:
    """Fit on rows ``train`` with per-target ``alpha`` (n_targets,), predict rows ``test``.

    Returns
    -------
    prediction : array (n_test, n_targets)
    """
    X, Y = _validate_xy(X, Y)
    a = check_alphas(alpha, name="alpha")
    check_choice(solver, "solver", SOLVERS)
    n, p = X.shape
    plan = plan_targets(n, p, 1, Y.shape[1], chunk_size, devices)
    with serial_lapack(min(len(train), p), plan.devices):
        return jax.block_until_ready(fit_predict(
            jnp.asarray(X, float_dtype()), place_targets(Y, plan), np.asarray(train, np.int32),
            np.asarray(test, np.int32), a, solver=pick_solver(solver, len(train), p),
            fit_intercept=fit_intercept, standardize=standardize))
