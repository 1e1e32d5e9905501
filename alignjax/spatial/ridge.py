"""Nested cross-validated ridge for many targets and many labellings at once.

For each layer and split (outer training sets, and the inner training sets within them),
the standardised training features are decomposed once, ``Xc = U diag(s) V^T`` (rows
outside the training set are zero; from the Gram matrix when n_features <= n_stimuli); the ridge prediction of any target matrix ``T`` at
penalty ``alpha`` is then ``Z V diag(s / (s^2 + alpha)) U^T (T - mean) + mean``, with ``Z``
every row standardised by the training statistics. Permuted labellings only change ``T``,
so a permutation test reuses the decompositions. Equals
``make_pipeline(StandardScaler(), Ridge(alpha))`` per split, and the inner choice of alpha
(per target, the smallest mean inner-fold MSE) equals ``GridSearchCV`` with
``neg_mean_squared_error`` on the same inner folds.

Package-internal: :func:`prepare`, :func:`nested_predictions`.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Prepared(NamedTuple):
    """Decompositions of one layer's splits (S = F + F * G splits)."""

    A: jax.Array       # (S, n, r) standardised rows times V, per split
    Ut: jax.Array      # (S, r, n) U^T (zero outside the split's training rows)
    s: jax.Array       # (S, r) singular values
    train: jax.Array   # (S, n) training masks (float)


def _split(X, m):
    """``(A, U^T, s)`` of one split. Wide layers (n_features > n_stimuli): thin SVD of the
    masked standardised rows; otherwise the eigendecomposition of their Gram matrix
    (n p^2 + p^3 instead of an n x p SVD), with ``U = Z_train V / s``."""
    w = m / jnp.sum(m)
    mu = w @ X
    sd = jnp.sqrt(w @ (X - mu) ** 2)
    sd = jnp.where(sd > 0, sd, 1.0)
    Z = (X - mu) / sd
    Zm = Z * m[:, None]
    if X.shape[1] > X.shape[0]:
        U, s, Vt = jnp.linalg.svd(Zm, full_matrices=False)
        return Z @ Vt.T, U.T * m[None, :], s
    ev, V = jnp.linalg.eigh(Zm.T @ Zm)
    s = jnp.sqrt(jnp.clip(ev, 0.0, None))
    A = Z @ V
    safe = jnp.where(s > s[-1] * X.shape[1] * jnp.finfo(X.dtype).eps, s, jnp.inf)
    return A, (A * m[:, None]).T / safe[:, None], jnp.where(jnp.isinf(safe), 0.0, s)


@jax.jit
def _prepare(X, train):
    A, Ut, s = jax.vmap(_split, in_axes=(None, 0))(X, train)
    return Prepared(A, Ut, s, train)


def prepare(X: np.ndarray, train: np.ndarray) -> Prepared:
    """Decompose layer ``X`` (n, p) on every training mask ``train`` (S, n)."""
    return _prepare(jnp.asarray(X), jnp.asarray(train, dtype=jnp.asarray(X).dtype))


def _predict(prep: Prepared, T, alphas):
    """Predictions (S, n_alphas, n, k) of targets T (n, k) for every split and alpha."""
    def one(A, Ut, s, m):
        mean = (m @ T) / jnp.sum(m)
        z = Ut @ (T - mean)                              # (r, k)
        f = s[None, :] / (s[None, :] ** 2 + alphas[:, None])   # (n_alphas, r)
        return jnp.einsum("nr,ar,rk->ank", A, f, z) + mean
    return jax.vmap(one)(prep.A, prep.Ut, prep.s, prep.train)


@partial(jax.jit, static_argnames=("n_outer",))
def _nested(prep: Prepared, T, alphas, inner_test, *, n_outer):
    """Outer predictions (n, k) at the inner-CV alpha per (outer fold, target), and the
    chosen alpha indices (F, k). ``inner_test`` (F, G, n) are the inner test masks."""
    P = _predict(prep, T, alphas)                        # (S, a, n, k)
    F = n_outer
    G = inner_test.shape[1]
    Pin = P[F:].reshape(F, G, *P.shape[1:])              # (F, G, a, n, k)
    sq = (Pin - T[None, None, None]) ** 2
    m = inner_test[:, :, None, :, None]
    mse = jnp.sum(sq * m, axis=3) / jnp.sum(m, axis=3)   # (F, G, a, k)
    choice = jnp.argmin(jnp.mean(mse, axis=1), axis=1)   # (F, k)
    outer = jnp.take_along_axis(P[:F], choice[:, None, None, :], axis=1)[:, 0]  # (F, n, k)
    test = 1.0 - prep.train[:F]                          # (F, n)
    return jnp.einsum("fn,fnk->nk", test, outer), choice


def nested_predictions(prep: Prepared, T, alphas, inner_test, n_outer: int):
    """Cross-validated predictions (n, k) of targets T (n, k) and chosen alpha indices."""
    dt = prep.A.dtype
    pred, choice = _nested(prep, jnp.asarray(T, dt), jnp.asarray(alphas, dt),
                           jnp.asarray(inner_test, dt), n_outer=n_outer)
    return np.asarray(pred, float), np.asarray(choice)


@partial(jax.jit, static_argnames=("n_outer",))
def _nested_batch(prep, Ts, alphas, inner_test, *, n_outer):
    return jax.vmap(lambda T: _nested(prep, T, alphas, inner_test, n_outer=n_outer)[0])(Ts)


def nested_predictions_batch(prep: Prepared, Ts, alphas, inner_test, n_outer: int):
    """:func:`nested_predictions` of a batch of target matrices (b, n, k) -> (b, n, k)."""
    dt = prep.A.dtype
    return np.asarray(_nested_batch(prep, jnp.asarray(Ts, dt), jnp.asarray(alphas, dt),
                                    jnp.asarray(inner_test, dt), n_outer=n_outer), float)
