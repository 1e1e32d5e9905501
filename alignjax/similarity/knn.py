"""Nearest-neighbour alignment (Huh et al. 2024, "The Platonic Representation Hypothesis").

Each input gives, once, its cosine-similarity matrix and its k-nearest-neighbour adjacency
``A`` (row ``i`` marks the ``k`` stimuli closest to ``i``, ``i`` itself excluded). Every
score is then a function of the adjacencies (and, for CKNNA, the similarity matrices);
permuting the stimuli of one input permutes the rows and columns of its matrices.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from alignjax.errors import ZeroVarianceError, check_choice

from ._checks import check_k, check_pair
from .kernels import _vectorize

__all__ = ["knn_alignment", "KNN_METHODS"]

KNN_METHODS = ("mutual", "jaccard", "cycle", "cknna")


def cosine_body(X):
    """Cosine similarities between the rows of ``X`` (n, n)."""
    Xn = X / jnp.linalg.norm(X, axis=1, keepdims=True)
    return Xn @ Xn.T


def adjacency_body(C, k: int):
    """k-nearest-neighbour adjacency (n, n) from similarities ``C``, self excluded."""
    n = C.shape[0]
    C = jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, C)
    _, idx = jax.lax.top_k(C, k)
    return jnp.zeros((n, n), C.dtype).at[jnp.arange(n)[:, None], idx].set(1.0)


def _hsic_u(K, L):
    """Unbiased HSIC (Song et al. 2012) of two (not necessarily symmetric) matrices."""
    n = K.shape[0]
    off = 1.0 - jnp.eye(n, dtype=K.dtype)
    K, L = K * off, L * off
    t1 = jnp.sum(K * L.T)
    t2 = jnp.sum(K) * jnp.sum(L) / ((n - 1) * (n - 2))
    t3 = 2.0 / (n - 2) * jnp.dot(K.sum(0), L.sum(1))
    return (t1 + t2 - t3) / (n * (n - 3))


def cknna_self_body(C, A):
    """The CKNNA normaliser of one input: unbiased HSIC of its kNN-masked similarities."""
    KA = C * A
    return _hsic_u(KA, KA)


def knn_from_matrices(Ax, Ay, k: int, method: str, Cx=None, Cy=None, sx=None, sy=None):
    """kNN score from adjacencies (and, for ``cknna``, similarities and normalisers)."""
    n = Ax.shape[0]
    if method == "mutual":
        return jnp.tensordot(Ax, Ay, axes=2) / (n * k)
    if method == "jaccard":
        inter = jnp.sum(Ax * Ay, axis=1)
        return jnp.mean(inter / (2 * k - inter))
    if method == "cycle":
        # i -> its neighbours j in Y -> does i come back among j's neighbours in X?
        back = jnp.sum(Ay * Ax.T, axis=1)
        return jnp.mean((back > 0).astype(Ax.dtype))
    M = Ax * Ay
    return _hsic_u(M * Cx, M * Cy) / jnp.sqrt(sx * sy)


def _knn_body(X, Y, k, method):
    Cx, Cy = cosine_body(X), cosine_body(Y)
    Ax, Ay = adjacency_body(Cx, k), adjacency_body(Cy, k)
    sx = cknna_self_body(Cx, Ax) if method == "cknna" else None
    sy = cknna_self_body(Cy, Ay) if method == "cknna" else None
    return knn_from_matrices(Ax, Ay, k, method, Cx, Cy, sx, sy)


@partial(jax.jit, static_argnames=("k", "method"))
def _knn_jit(X, Y, k, method):
    return _vectorize(_knn_body)(X, Y, k=k, method=method)


def check_nonzero_rows(X: np.ndarray, name: str) -> None:
    """Cosine neighbours need every stimulus to have a non-zero feature vector."""
    zero = ~np.any(X != 0, axis=-1)
    if zero.any():
        rows = np.argwhere(zero)[:5].tolist()
        raise ZeroVarianceError(
            f"{name} has all-zero feature vectors (stimulus rows {rows}), so their cosine "
            "neighbours are undefined; drop those stimuli")


def knn_alignment(X, Y, *, k: int = 10, method: str = "mutual") -> jax.Array:
    """Nearest-neighbour alignment of two representations of the same stimuli.

    Neighbours are the ``k`` stimuli of highest cosine similarity, the stimulus itself
    excluded (ties broken by lower index).

    - ``"mutual"``: mean over stimuli of ``|N_X(i) & N_Y(i)| / k`` (mutual k-NN),
    - ``"jaccard"``: mean of ``|N_X(i) & N_Y(i)| / |N_X(i) | N_Y(i)|``,
    - ``"cycle"``: fraction of stimuli ``i`` found again among the X-neighbours of one of
      their Y-neighbours (cycle consistency, ``i -> N_Y(i) -> N_X``),
    - ``"cknna"``: CKA restricted to mutual neighbours: the unbiased HSIC of the cosine
      Gram matrices masked to pairs that are neighbours in both, normalised by each
      input's HSIC masked to its own neighbours.

    Parameters
    ----------
    X, Y : arrays (..., n_stimuli, n_features)
    k : int
        Neighbours per stimulus, ``1 <= k <= n_stimuli - 2``.
    method : {"mutual", "jaccard", "cycle", "cknna"}

    Returns
    -------
    array (...)
    """
    check_choice(method, "method", KNN_METHODS)
    X, Y = check_pair(X, Y, min_stimuli=4 if method == "cknna" else 3,
                      what=f"kNN alignment ({method})")
    check_nonzero_rows(np.asarray(X), "X")
    check_nonzero_rows(np.asarray(Y), "Y")
    k = check_k(k, X.shape[-2])
    return _knn_jit(X, Y, k, method)
