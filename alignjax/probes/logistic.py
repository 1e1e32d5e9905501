"""The logistic kernel: sklearn's ``LogisticRegression`` objective, fitted by L-BFGS.

:func:`fit_logistic` minimises exactly the objective of
``sklearn.linear_model.LogisticRegression(C=C)`` (lbfgs solver)::

    sum_i s_i * (-log softmax(X_i W^T + b)[y_i]) + ||W||^2 / (2 C)

with an unpenalised intercept ``b`` and sample weights ``s_i`` (class weights, fold masks).
For two classes it uses sklearn's binary parametrisation (one coefficient row, logits
``[0, x.w + b]``), so coefficients can be compared with sklearn's directly. The objective
is divided by ``sum(s)`` before optimisation, like sklearn, which does not change the
minimiser; convergence is declared when ``max|grad| <= tol`` on that scaled objective (the
``gtol`` sklearn passes to scipy's L-BFGS-B).

Package-internal interface (used by :mod:`alignjax.probes.solve`): :data:`MASK_LOGIT`,
:func:`linear_scores`, :func:`full_logits`, :func:`init_params`, :func:`fit_from`,
:func:`diagonal_precond`.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._runtime import float32_matmuls
from .._validation import (
    InvalidOptionError,
    ShapeMismatchError,
    as_float_array,
    check_finite,
    check_positive_int,
)
from .lbfgs import minimize_lbfgs

__all__ = ["LogisticFit", "fit_logistic", "predict_logistic"]

MASK_LOGIT = -1e4  # added to the logits of classes absent from a training set


class LogisticFit(NamedTuple):
    """Result of :func:`fit_logistic`.

    Attributes
    ----------
    coef : array, shape (n_classes, n_features), or (1, n_features) for two classes
        As ``LogisticRegression.coef_``.
    intercept : array, shape (n_classes,), or (1,) for two classes
        As ``LogisticRegression.intercept_``.
    n_iter : int array
        L-BFGS iterations used.
    converged : bool array
        ``max|grad| <= tol`` at the returned point.
    """

    coef: jax.Array
    intercept: jax.Array
    n_iter: jax.Array
    converged: jax.Array


def _n_rows(n_classes: int) -> int:
    return 1 if n_classes == 2 else n_classes


def full_logits(z: jax.Array, n_classes: int) -> jax.Array:
    """Logits of every class from the linear scores (binary: ``[0, z]``). Package-internal."""
    if n_classes == 2:
        return jnp.concatenate([jnp.zeros_like(z), z], axis=-1)
    return z


def linear_scores(params, X, mu, sd, fit_intercept: bool):
    """Linear scores of standardised features ``(X - mu) / sd`` without forming them.

    Package-internal.
    """
    W, b = params
    Ws = W / sd
    z = X @ Ws.T - Ws @ mu
    if fit_intercept:
        z = z + b
    return z


def _objective(params, X, Y, sw, mu, sd, present, inv_C, *, n_classes, fit_intercept):
    """sklearn's penalised log-loss divided by the sum of sample weights."""
    z = linear_scores(params, X, mu, sd, fit_intercept)
    logits = full_logits(z, n_classes) + present
    ll = jnp.sum(Y * logits, axis=-1) - jax.nn.logsumexp(logits, axis=-1)
    W = params[0]
    sw_sum = jnp.sum(sw)
    return (-jnp.sum(sw * ll) + 0.5 * inv_C * jnp.sum(W * W)) / sw_sum


def fit_from(X, Y, sw, mu, sd, present, inv_C, tol, params0, *, n_classes, fit_intercept,
             max_iter, curvature=None):
    """One problem: L-BFGS from ``params0``; un-jitted, composes under vmap. Package-internal.

    ``Y`` is one-hot (n_stimuli, n_classes), ``sw`` sample weights, ``mu``/``sd`` the
    standardisation folded into the parametrisation, ``present`` 0 or :data:`MASK_LOGIT`
    per class. ``curvature``, the weighted sum of squares of a standardised feature column,
    turns on the diagonal preconditioner of :func:`diagonal_precond`. Returns
    ``(params, n_iter, converged)``.
    """
    fun = partial(_objective, X=X, Y=Y, sw=sw, mu=mu, sd=sd, present=present, inv_C=inv_C,
                  n_classes=n_classes, fit_intercept=fit_intercept)
    precond = (None if curvature is None
               else diagonal_precond(curvature, sw, inv_C, n_classes, params0))
    params, it, gmax = minimize_lbfgs(fun, params0, tol, max_iter, precond=precond)
    return params, it, gmax <= tol


def diagonal_precond(curvature, sw, inv_C, n_classes, params0):
    """Inverse diagonal of the objective's Hessian, estimated; package-internal.

    The log-loss Hessian is ``X' D X`` with ``D`` the softmax covariance, about ``1/4`` for
    two classes and ``1/n_classes`` per class near uniform predictions; for a coefficient
    of a feature column with weighted sum of squares ``curvature`` that gives
    ``a * curvature`` plus the penalty ``inv_C``, over ``sum(sw)``; for an intercept ``a``.
    Exact where the penalty dominates (small C: the solver then converges in a few steps
    instead of tens), and it balances the intercept against the coefficients at every C.
    """
    a = 0.25 if n_classes == 2 else 1.0 / n_classes
    sw_sum = jnp.sum(sw)
    W0, b0 = params0
    hw = sw_sum / (a * curvature + inv_C)
    return (jnp.broadcast_to(hw, W0.shape), jnp.full(b0.shape, 1.0 / a, b0.dtype))


def init_params(n_features: int, n_classes: int, dtype):
    """Zero coefficients and intercepts ``(W, b)`` of a problem. Package-internal."""
    k = _n_rows(n_classes)
    return (jnp.zeros((k, n_features), dtype), jnp.zeros((k,), dtype))


@partial(jax.jit, static_argnames=("n_classes", "fit_intercept", "max_iter"))
def _fit_logistic_jit(X, y, C, sw, tol, *, n_classes, fit_intercept, max_iter):
    dtype = X.dtype
    Y = jax.nn.one_hot(y, n_classes, dtype=dtype)
    p = X.shape[1]
    mu = jnp.zeros((p,), dtype)
    sd = jnp.ones((p,), dtype)
    present = jnp.where(jnp.sum(Y * (sw[:, None] > 0), axis=0) > 0, 0.0, MASK_LOGIT).astype(dtype)
    params, it, conv = fit_from(X, Y, sw.astype(dtype), mu, sd, present,
                                (1.0 / C).astype(dtype), tol.astype(dtype),
                                init_params(p, n_classes, dtype), n_classes=n_classes,
                                fit_intercept=fit_intercept, max_iter=max_iter)
    return LogisticFit(params[0], params[1], it, conv)


def _check_sample_weight(sample_weight, n: int) -> None:
    sw = np.asarray(sample_weight, dtype=float)
    if sw.shape != (n,):
        raise ShapeMismatchError(f"sample_weight has shape {sw.shape}; expected ({n},)")
    if not np.isfinite(sw).all() or (sw < 0).any():
        bad = np.flatnonzero(~np.isfinite(sw) | (sw < 0))[:5].tolist()
        raise InvalidOptionError(f"sample_weight must be finite and >= 0; stimuli {bad} are not")
    if not sw.sum() > 0:
        raise InvalidOptionError("sample_weight is zero for every stimulus; nothing to fit")


def _is_tracer(*xs) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in xs)


def _check_concrete(X, y, n_classes, C, sample_weight):
    """Host-side checks of concrete inputs; returns ``(X, n_classes)``."""
    Xn = as_float_array(X, "X", ndim=2)
    check_finite(Xn, "X")
    yn = np.asarray(y)
    if yn.ndim != 1 or yn.shape[0] != Xn.shape[0]:
        raise ShapeMismatchError(f"y has shape {yn.shape}; expected ({Xn.shape[0]},) to match X")
    if not np.issubdtype(yn.dtype, np.integer) or (yn.size and yn.min() < 0):
        raise InvalidOptionError("y must hold non-negative integer class codes; use "
                                 "alignjax.encode_labels to turn labels into codes")
    if n_classes is None:
        n_classes = int(yn.max()) + 1
    if len(np.unique(yn)) < 2:
        raise InvalidOptionError("y holds a single class; a classifier needs at least two")
    if yn.max() >= n_classes:
        raise InvalidOptionError(f"y has class code {int(yn.max())} >= n_classes={n_classes}")
    if not float(C) > 0:
        raise InvalidOptionError(f"C must be > 0, got {C}")
    if sample_weight is not None:
        _check_sample_weight(sample_weight, Xn.shape[0])
    return jnp.asarray(Xn, dtype=jnp.result_type(float)), n_classes


@float32_matmuls
def fit_logistic(X: jax.typing.ArrayLike, y: jax.typing.ArrayLike, *, C: float = 1.0,
                 n_classes: int | None = None, sample_weight: jax.typing.ArrayLike | None = None,
                 fit_intercept: bool = True, max_iter: int = 1000,
                 tol: float = 1e-4) -> LogisticFit:
    """L2-penalised multinomial logistic regression, the objective of sklearn's ``LogisticRegression``.

    Minimises ``sum_i s_i * logloss_i + ||W||^2 / (2 C)`` (intercept unpenalised) with
    L-BFGS; for two classes, sklearn's binary model with one coefficient row. Vmappable over
    problems when ``n_classes`` is given.

    Parameters
    ----------
    X : array, shape (n_stimuli, n_features)
    y : int array, shape (n_stimuli,)
        Class codes in ``0 .. n_classes - 1`` (see :func:`encode_labels`).
    C : float
        Inverse regularisation strength, as in sklearn.
    n_classes : int, optional
        Number of classes; inferred as ``max(y) + 1`` from concrete inputs. Required
        under ``vmap``/``jit``.
    sample_weight : array, shape (n_stimuli,), optional
        Non-negative weights (zero drops a stimulus).
    fit_intercept : bool
    max_iter : int
        Maximum L-BFGS iterations.
    tol : float
        Stop when ``max|grad|`` of the objective divided by ``sum(sample_weight)`` is
        ``<= tol`` (sklearn's lbfgs ``gtol``).

    Returns
    -------
    LogisticFit
        ``coef`` (n_classes, n_features) or (1, n_features) for two classes, ``intercept``,
        ``n_iter``, ``converged``.
    """
    max_iter = check_positive_int(max_iter, "max_iter")
    if not _is_tracer(X, y, sample_weight, C, tol):
        X, n_classes = _check_concrete(X, y, n_classes, C, sample_weight)
    elif n_classes is None:
        raise InvalidOptionError("n_classes must be given when fit_logistic is traced (vmap/jit)")
    n_classes = check_positive_int(n_classes, "n_classes", minimum=2)
    X = jnp.asarray(X)
    if not jnp.issubdtype(X.dtype, jnp.floating):
        X = X.astype(jnp.result_type(float))
    sw = (jnp.ones(X.shape[0], X.dtype) if sample_weight is None
          else jnp.asarray(sample_weight, X.dtype))
    return _fit_logistic_jit(X, jnp.asarray(y), jnp.asarray(C, X.dtype), sw,
                             jnp.asarray(tol, X.dtype), n_classes=n_classes,
                             fit_intercept=fit_intercept, max_iter=max_iter)


@float32_matmuls
def predict_logistic(fit: LogisticFit, X: jax.typing.ArrayLike) -> jax.Array:
    """Class codes predicted by a :class:`LogisticFit` (argmax of the logits, as sklearn)."""
    X = jnp.asarray(X, fit.coef.dtype)
    z = X @ fit.coef.T + fit.intercept
    n_classes = 2 if fit.coef.shape[0] == 1 else fit.coef.shape[0]
    return jnp.argmax(full_logits(z, n_classes), axis=-1)
