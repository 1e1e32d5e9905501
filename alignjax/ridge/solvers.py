"""Decompositions of a ridge training set, and the registry of solvers built on them.

A *fold solver* decomposes the (centred or standardised) features of one training set so
that the ridge solution of every alpha is a diagonal rescaling ``d(alpha)`` of fixed
factors: predictions on held-out rows are ``A diag(d(alpha)) U^T Y_train``. Two exist:

- ``"svd"`` (primal, ``n_train >= n_features``): ``X_train = U diag(s) V^T``,
  ``A = X_test V`` and ``d = s / (s^2 + alpha)``;
- ``"eigh"`` (dual, ``n_train < n_features``): ``K_train = X_train X_train^T =
  U diag(lam) U^T``, ``A = K_test,train U`` and ``d = 1 / (lam + alpha)``.

Both minimise ``||Y - X W||^2 + alpha ||W||^2`` per target (with an unpenalised intercept
when ``fit_intercept``). Directions whose singular value (eigenvalue) is below the
numerical rank threshold are dropped, as in a pseudo-inverse. Scores are a second small
registry (:data:`SCORERS`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp

__all__ = ["Factors", "FoldSolver", "FOLD_SOLVERS", "SCORERS", "full_kernel_eig",
           "standardize_stats"]


# --------------------------------------------------------------------------- scores


def score_r2(pred, y):
    """Coefficient of determination of pred (..., n_test, c) against y (n_test, c) -> (..., c).

    A target constant within the test rows scores 0 (as in himalaya).
    """
    ss_res = jnp.sum((y - pred) ** 2, axis=-2)
    yc = y - jnp.mean(y, axis=-2, keepdims=True)
    ss_tot = jnp.sum(yc ** 2, axis=-2)
    ok = ss_tot > 0
    return jnp.where(ok, 1.0 - ss_res / jnp.where(ok, ss_tot, 1.0), 0.0)


def score_pearson(pred, y):
    """Pearson r of pred (..., n_test, c) and y (n_test, c) per column -> (..., c)."""
    pc = pred - jnp.mean(pred, axis=-2, keepdims=True)
    yc = y - jnp.mean(y, axis=-2, keepdims=True)
    num = jnp.sum(pc * yc, axis=-2)
    den = jnp.sqrt(jnp.sum(pc ** 2, axis=-2) * jnp.sum(yc ** 2, axis=-2))
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def score_neg_mse(pred, y):
    """Negative mean squared error per column -> (..., c)."""
    return -jnp.mean((y - pred) ** 2, axis=-2)


#: Cross-validation scores by their public name (the ``score=`` option).
SCORERS: dict[str, Callable] = {"r2": score_r2, "pearson": score_pearson,
                                "neg_mse": score_neg_mse}


# --------------------------------------------------------------------------- fold solvers


class Factors(NamedTuple):
    """One training set's decomposition.

    Attributes
    ----------
    U : array (n_train, r)
    spec : array (r,)
        Singular values (svd) or eigenvalues (eigh).
    keep : array (r,) of bool
        Numerical-rank mask.
    A : array (n_test, r)
        Test-side factor.
    """

    U: jnp.ndarray
    spec: jnp.ndarray
    keep: jnp.ndarray
    A: jnp.ndarray


def standardize_stats(Xtr):
    """Mean, standard deviation (1 for constant columns) and constant mask of Xtr's columns."""
    mu = jnp.mean(Xtr, axis=0)
    sd = jnp.std(Xtr, axis=0)
    eps = jnp.finfo(Xtr.dtype).eps
    const = sd <= 100 * eps * jnp.maximum(jnp.abs(mu), jnp.finfo(Xtr.dtype).tiny)
    return mu, jnp.where(const, 1.0, sd), const


def _fold_features(Xg, tr, te, *, fit_intercept: bool, standardize: bool):
    """Training and test rows, z-scored (or centred) with the training rows' statistics."""
    Xtr, Xte = Xg[tr], Xg[te]
    if standardize:
        mu, sd, const = standardize_stats(Xtr)
        return jnp.where(const, 0.0, (Xtr - mu) / sd), jnp.where(const, 0.0, (Xte - mu) / sd)
    if fit_intercept:
        mu = jnp.mean(Xtr, axis=0)
        return Xtr - mu, Xte - mu
    return Xtr, Xte


def decompose_svd(Xg, K, tr, te, *, fit_intercept: bool, standardize: bool) -> Factors:
    """Thin SVD of the training rows ``tr`` of Xg; ``K`` is unused (None)."""
    Xtr, Xte = _fold_features(Xg, tr, te, fit_intercept=fit_intercept, standardize=standardize)
    n_tr, p = Xtr.shape
    U, s, Vt = jnp.linalg.svd(Xtr, full_matrices=False)
    keep = s > s[0] * max(n_tr, p) * jnp.finfo(Xtr.dtype).eps
    return Factors(U, s, keep, Xte @ Vt.T)


def _centred_blocks(K, tr, te, fit_intercept: bool):
    """Training and test blocks of the kernel K, centred with the training rows' mean."""
    Ktr = K[tr][:, tr]
    Kte = K[te][:, tr]
    if fit_intercept:  # centre with the training rows' mean (kernel centring)
        row_tr = jnp.mean(Ktr, axis=1)
        row_te = jnp.mean(Kte, axis=1)
        kbar = jnp.mean(row_tr)
        Ktr = Ktr - row_tr[:, None] - row_tr[None, :] + kbar
        Kte = Kte - row_te[:, None] - row_tr[None, :] + kbar
    return Ktr, Kte


def decompose_eigh(Xg, K, tr, te, *, fit_intercept: bool, standardize: bool) -> Factors:
    """Eigendecomposition of the training kernel: from ``K`` (the kernel of all rows, from
    :func:`kernel_eigh`) or, when standardising, from the fold's z-scored features."""
    n_tr = tr.shape[0]
    if K is not None:
        Ktr, Kte = _centred_blocks(K, tr, te, fit_intercept)
    else:
        Xtr, Xte = _fold_features(Xg, tr, te, fit_intercept=fit_intercept,
                                  standardize=standardize)
        Ktr, Kte = Xtr @ Xtr.T, Xte @ Xtr.T
    Ktr = 0.5 * (Ktr + Ktr.T)
    lam, U = jnp.linalg.eigh(Ktr)
    keep = lam > jnp.max(lam) * n_tr * jnp.finfo(Xg.dtype).eps
    return Factors(U, lam, keep, Kte @ U)


def no_kernel(Xg, *, standardize: bool):
    """The svd solver needs no kernel."""
    return None


def kernel_eigh(Xg, *, standardize: bool):
    """Kernel of all rows, shared by the folds (None when folds are standardised)."""
    return None if standardize else Xg @ Xg.T


def shrink_svd(spec, keep, alpha):
    """Spectral ridge factors ``s / (s^2 + alpha)`` (..., r) for alpha (..., 1)."""
    return jnp.where(keep, spec / (spec ** 2 + alpha), 0.0)


def shrink_eigh(spec, keep, alpha):
    """Spectral ridge factors ``1 / (lam + alpha)`` (..., r) for alpha (..., 1)."""
    return jnp.where(keep, 1.0 / (jnp.where(keep, spec, 0.0) + alpha), 0.0)


def basis_svd(Xc, eig=None):
    """Refit basis of all rows: ``U``, ``s``, ``keep`` and ``back = V`` (p, r)."""
    n, p = Xc.shape
    U, spec, Vt = jnp.linalg.svd(Xc, full_matrices=False)
    keep = spec > spec[0] * max(n, p) * jnp.finfo(Xc.dtype).eps
    return U, spec, keep, Vt.T


def basis_eigh(Xc, eig=None):
    """Refit basis of all rows from the kernel (or its given eigendecomposition ``eig``):
    ``U``, ``lam``, ``keep`` and ``back = Xc^T U`` (p, r)."""
    if eig is not None:
        U, spec = eig
        keep = spec > 0
    else:
        Kc = Xc @ Xc.T
        spec, U = jnp.linalg.eigh(0.5 * (Kc + Kc.T))
        keep = spec > jnp.max(spec) * Xc.shape[0] * jnp.finfo(Xc.dtype).eps
    return U, spec, keep, Xc.T @ U


class FoldSolver(NamedTuple):
    """The functions of one decomposition (an entry of :data:`FOLD_SOLVERS`).

    Attributes
    ----------
    kernel : callable ``(Xg, *, standardize) -> K or None``
        Work shared by all folds.
    decompose : callable ``(Xg, K, tr, te, *, fit_intercept, standardize) -> Factors``
    shrink : callable ``(spec, keep, alpha) -> d``
    basis : callable ``(Xc, eig=None) -> (U, spec, keep, back)``
        Decomposition of all rows for the refit.
    """

    kernel: Callable
    decompose: Callable
    shrink: Callable
    basis: Callable


#: Fold solvers by name (the per-fold forms of the ``solver=`` option).
FOLD_SOLVERS: dict[str, FoldSolver] = {
    "svd": FoldSolver(no_kernel, decompose_svd, shrink_svd, basis_svd),
    "eigh": FoldSolver(kernel_eigh, decompose_eigh, shrink_eigh, basis_eigh),
}


def full_kernel_eig(X, fit_intercept: bool):
    """Eigendecomposition of the (centred) linear kernel of all stimuli.

    With an intercept the kernel is written in an orthonormal basis of the complement of
    the constant vector (a Householder reflection), so every returned eigenvector is
    orthogonal to it and no cancellation against the constant direction is needed later.
    Returns ``U`` (n, r), eigenvalues ``lam`` (r,) with those below the numerical rank
    threshold set to 0.
    """
    n = X.shape[0]
    eps = jnp.finfo(X.dtype).eps
    if fit_intercept:
        Xg = X - jnp.mean(X, axis=0)
        K = Xg @ Xg.T
        v = jnp.ones((n,), X.dtype).at[0].add(jnp.sqrt(jnp.asarray(n, X.dtype)))
        c = v @ v
        w = K @ v
        HKH = K - (2 / c) * (v[:, None] * w[None, :] + w[:, None] * v[None, :]) \
            + (4 * (v @ w) / c ** 2) * (v[:, None] * v[None, :])
        Kq = HKH[1:, 1:]
        lam, Uq = jnp.linalg.eigh(0.5 * (Kq + Kq.T))
        Ue = jnp.concatenate([jnp.zeros((1, n - 1), X.dtype), Uq], axis=0)
        U = Ue - (2 / c) * v[:, None] * (v @ Ue)[None, :]
    else:
        K = X @ X.T
        lam, U = jnp.linalg.eigh(0.5 * (K + K.T))
    keep = lam > jnp.max(lam) * n * eps
    return U, jnp.where(keep, lam, 0.0)
