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

__all__ = ["Factors", "FoldSolver", "FOLD_SOLVERS", "SCORERS", "Scorer", "TIE_ULPS",
           "pick_alpha", "full_kernel_eig", "standardize_stats"]


# --------------------------------------------------------------------------- scores
#
# A score is split into the score of the zero prediction (``base``: predicting the training
# mean, as the responses and predictions are deviations from it) and the ``gain`` of a
# prediction over it, so that the alpha choice compares gains, which carry the full
# relative precision of the dtype even when heavy shrinkage makes every prediction nearly
# constant (large alphas in float32): the difference between two alphas is then never
# decided by rounding in a score of order one.


def _ok_ratio(num, den):
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def _ss_tot(y):
    yc = y - jnp.mean(y, axis=-2, keepdims=True)
    return jnp.sum(yc ** 2, axis=-2)


def base_r2(y):
    """R^2 of the zero prediction of y (n_test, c) -> (c,)."""
    return jnp.where(_ss_tot(y) > 0, 1.0 - _ok_ratio(jnp.sum(y ** 2, axis=-2), _ss_tot(y)), 0.0)


def gain_r2(pred, y):
    """R^2 of pred (..., n_test, c) minus that of the zero prediction:
    ``sum(pred (2 y - pred)) / ss_tot`` -> (..., c)."""
    return _ok_ratio(jnp.sum(pred * (2.0 * y - pred), axis=-2), _ss_tot(y))


def base_zero(y):
    """A score of 0 for the zero prediction (Pearson r, by convention) -> (c,)."""
    return jnp.zeros(y.shape[:-2] + y.shape[-1:], y.dtype)


def gain_pearson(pred, y):
    """Pearson r of pred (..., n_test, c) and y (n_test, c) per column -> (..., c)."""
    pc = pred - jnp.mean(pred, axis=-2, keepdims=True)
    yc = y - jnp.mean(y, axis=-2, keepdims=True)
    num = jnp.sum(pc * yc, axis=-2)
    den = jnp.sqrt(jnp.sum(pc ** 2, axis=-2) * jnp.sum(yc ** 2, axis=-2))
    return _ok_ratio(num, den)


def base_neg_mse(y):
    """Negative mean squared error of the zero prediction -> (c,)."""
    return -jnp.mean(y ** 2, axis=-2)


def gain_neg_mse(pred, y):
    """Negative MSE of pred minus that of the zero prediction: ``mean(pred (2 y - pred))``."""
    return jnp.mean(pred * (2.0 * y - pred), axis=-2)


class Scorer(NamedTuple):
    """A CV score as ``base(y) + gain(pred, y)``; calling it gives the score.

    Attributes
    ----------
    base : callable ``y (n_test, c) -> (c,)``
        Score of the zero prediction (the training mean, for centred responses).
    gain : callable ``(pred (..., n_test, c), y) -> (..., c)``
        Score of ``pred`` minus ``base``, computed without forming the score.
    unit : float
        The score's natural scale (1 for the dimensionless r2 and Pearson r, 0 for the
        negative MSE, whose scale is ``|base|``), for the tie tolerance (:func:`tie_scale`).
    """

    base: Callable
    gain: Callable
    unit: float

    def __call__(self, pred, y):
        """The score of pred (..., n_test, c) against y (n_test, c) -> (..., c)."""
        return self.base(y) + self.gain(pred, y)


#: Cross-validation scores by their public name (the ``score=`` option).
SCORERS: dict[str, Scorer] = {"r2": Scorer(base_r2, gain_r2, 1.0),
                              "pearson": Scorer(base_zero, gain_pearson, 1.0),
                              "neg_mse": Scorer(base_neg_mse, gain_neg_mse, 0.0)}

#: Relative tolerance (in ulps of the dtype, times the score's scale) within which two grid
#: alphas' CV scores count as tied; ties go to the largest alpha (:func:`pick_alpha`).
TIE_ULPS = 64


def pick_alpha(gain, base, alphas, *, unit: float, eps: float, xp=jnp):
    """Grid index (c,) of the chosen alpha per target: the largest alpha whose CV gain
    (n_alphas, c) is within ``TIE_ULPS * eps * scale`` of the best, with ``scale =
    max(unit, |base|, max |base + gain|)`` (``base`` (c,), ``alphas`` (n_alphas,)).

    Scores within rounding of each other (a flat score curve: heavy shrinkage, or the
    minimum-norm limit of tiny alphas) would otherwise be ordered by rounding, which can
    depend on the other targets computed alongside; preferring the largest (the most
    regularised) alpha among them makes the choice a function of the target's own data.
    ``eps`` is the resolution of the dtype the gains were computed in; ``xp`` is
    ``jax.numpy`` (on the devices) or ``numpy`` (on the host).
    """
    scale = xp.maximum(xp.maximum(unit, xp.abs(base)), xp.max(xp.abs(base + gain), axis=0))
    tied = gain >= xp.max(gain, axis=0) - TIE_ULPS * eps * scale
    return xp.argmax(xp.where(tied, alphas[:, None], -xp.inf), axis=0)


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
