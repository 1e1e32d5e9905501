"""Kernel and distance similarity: CKA, HSIC, the RV coefficient and distance correlation.

Every metric here is an inner product of two n_stimuli x n_stimuli matrices, one per
input, each computed once from its features:

- centred Gram matrices ``H K H`` (biased HSIC, CKA; Kornblith et al. 2019),
- U-centred Gram matrices (the unbiased HSIC of Song et al. 2012, debiased CKA),
- double-centred (or U-centred) Euclidean distance matrices (distance covariance,
  Székely et al. 2007; Székely & Rizzo 2014).

Permuting the stimuli of one input permutes the rows and columns of its matrix (centring
commutes with permutations), so a permutation null never recomputes a matrix from
features: it re-indexes one and contracts (see :mod:`alignjax.similarity.inference`).

Kernels take ``X`` (..., n_stimuli, n_features_x) and ``Y`` (..., n_stimuli,
n_features_y); leading batch axes (layers, subjects) must agree and are vmapped.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from ._checks import check_pair, check_gram_pair, dtype_of

__all__ = ["gram", "center_gram", "distance_matrix", "cka", "cka_gram", "hsic", "hsic_gram",
           "rv_coefficient", "distance_correlation", "KERNELS"]

KERNELS = ("linear", "rbf")


# --------------------------------------------------------------------------- matrices


def _sq_distances(X):
    """Squared Euclidean distances between rows (n, n), >= 0, zero diagonal."""
    Xc = X - X.mean(0)
    sq = jnp.sum(Xc * Xc, 1)
    D = sq[:, None] + sq[None, :] - 2.0 * Xc @ Xc.T
    D = jnp.maximum(D, 0.0)
    return D * (1.0 - jnp.eye(X.shape[0], dtype=X.dtype))


def gram_body(X, kernel: str = "linear", rbf_threshold: float = 1.0):
    """Un-jitted Gram matrix (n, n) of the rows of ``X`` (n, p).

    ``linear``: ``Xc Xc^T`` of the column-centred features (centring the features does not
    change the centred Gram matrix, and keeps float32 accurate). ``rbf``:
    ``exp(-d_ij^2 / (2 sigma^2))`` with ``sigma^2 = rbf_threshold^2 * median(d^2)``, the
    median over the whole matrix (diagonal included), Kornblith et al.'s rule.
    """
    if kernel == "linear":
        Xc = X - X.mean(0)
        return Xc @ Xc.T
    D = _sq_distances(X)
    sigma2 = rbf_threshold ** 2 * jnp.median(D)
    return jnp.exp(-D / (2.0 * sigma2))


def center_body(K, unbiased: bool = False):
    """Un-jitted centring of a square matrix (n, n).

    ``unbiased=False``: ``H K H`` with ``H = I - 11^T/n``. ``unbiased=True``: U-centring
    (Székely & Rizzo 2014): for ``i != j``, ``K_ij - r_i/(n-2) - r_j/(n-2) +
    s/((n-1)(n-2))`` with ``r`` the row sums and ``s`` the total of ``K`` with its
    diagonal set to zero; zero diagonal. ``<U(K), U(L)> / (n(n-3))`` is the unbiased HSIC.
    """
    n = K.shape[0]
    if not unbiased:
        K = K - K.mean(0, keepdims=True)
        return K - K.mean(1, keepdims=True)
    off = 1.0 - jnp.eye(n, dtype=K.dtype)
    K = K * off
    r = K.sum(1)
    c = K.sum(0)
    s = r.sum()
    U = K - r[:, None] / (n - 2) - c[None, :] / (n - 2) + s / ((n - 1) * (n - 2))
    return U * off


def distance_body(X):
    """Un-jitted Euclidean distance matrix (n, n) between the rows of ``X``."""
    D = _sq_distances(X)
    # sqrt has an infinite derivative at 0 and float noise near it: mask the diagonal
    return jnp.where(D > 0, jnp.sqrt(jnp.where(D > 0, D, 1.0)), 0.0)


def _vectorize(body, n_in: int = 2):
    """``body`` of 2-D inputs mapped over any common leading axes."""

    def f(*args, **kw):
        lead = args[0].ndim - 2
        g = partial(body, **kw)
        for _ in range(lead):
            g = jax.vmap(g)
        return g(*args[:n_in])

    return f


@partial(jax.jit, static_argnames=("kernel",))
def _gram_jit(X, kernel, rbf_threshold):
    return _vectorize(gram_body, 1)(X, kernel=kernel, rbf_threshold=rbf_threshold)


def gram(X, *, kernel: str = "linear", rbf_threshold: float = 1.0) -> jax.Array:
    """Gram matrix of the stimuli (rows) of ``X``.

    Parameters
    ----------
    X : array (..., n_stimuli, n_features)
    kernel : {"linear", "rbf"}
    rbf_threshold : float
        RBF bandwidth as a fraction of the median distance (``sigma^2 = rbf_threshold^2 x
        median squared distance``), as ``gram_rbf(x, threshold)`` in Kornblith et al.'s code.

    Returns
    -------
    array (..., n_stimuli, n_stimuli)
    """
    from ._checks import check_features, check_kernel

    check_kernel(kernel)
    X = check_features(X, "X")
    return _gram_jit(jnp.asarray(X, dtype_of(X)), kernel, float(rbf_threshold))


def center_gram(K, *, unbiased: bool = False) -> jax.Array:
    """Centred (``H K H``) or U-centred Gram matrix (..., n_stimuli, n_stimuli)."""
    K = jnp.asarray(K, dtype_of(K))
    return jax.jit(_vectorize(center_body, 1), static_argnames=("unbiased",))(K, unbiased=unbiased)


def distance_matrix(X) -> jax.Array:
    """Euclidean distances between the stimuli of ``X`` (..., n_stimuli, n_features)."""
    from ._checks import check_features

    X = check_features(X, "X")
    return jax.jit(_vectorize(distance_body, 1))(jnp.asarray(X, dtype_of(X)))


# --------------------------------------------------------------------------- scores from matrices


def _dot(A, B):
    return jnp.tensordot(A, B, axes=2)


def cka_gram_body(Kx, Ky, debiased: bool = False):
    """CKA of two raw (uncentred) Gram matrices (n, n)."""
    A, B = center_body(Kx, debiased), center_body(Ky, debiased)
    return _dot(A, B) / jnp.sqrt(_dot(A, A) * _dot(B, B))


def hsic_gram_body(Kx, Ky, unbiased: bool = False):
    """HSIC of two raw Gram matrices: ``<HKH, HLH> / (n-1)^2`` (Gretton et al. 2005) or the
    unbiased ``<U(K), U(L)> / (n(n-3))`` (Song et al. 2012)."""
    n = Kx.shape[0]
    A, B = center_body(Kx, unbiased), center_body(Ky, unbiased)
    return _dot(A, B) / ((n * (n - 3)) if unbiased else (n - 1) ** 2)


def dcor_body(X, Y, squared: bool = False, unbiased: bool = False):
    """Distance correlation of two feature matrices (n, p), (n, q)."""
    A = center_body(distance_body(X), unbiased)
    B = center_body(distance_body(Y), unbiased)
    den = jnp.sqrt(_dot(A, A) * _dot(B, B))
    r2 = jnp.where(den > 0, _dot(A, B) / jnp.where(den > 0, den, 1.0), 0.0)
    if squared or unbiased:
        return r2
    return jnp.sqrt(jnp.maximum(r2, 0.0))


@partial(jax.jit, static_argnames=("debiased",))
def _cka_gram_jit(Kx, Ky, debiased):
    return _vectorize(cka_gram_body)(Kx, Ky, debiased=debiased)


@partial(jax.jit, static_argnames=("unbiased",))
def _hsic_gram_jit(Kx, Ky, unbiased):
    return _vectorize(hsic_gram_body)(Kx, Ky, unbiased=unbiased)


def cka_gram(Kx, Ky, *, debiased: bool = False) -> jax.Array:
    """CKA of precomputed (uncentred or centred) Gram matrices (..., n_stimuli, n_stimuli).

    Centring is applied here (it is idempotent), so raw Gram matrices from :func:`gram`
    are the expected input. ``debiased=True`` needs at least 4 stimuli.
    """
    Kx, Ky = check_gram_pair(Kx, Ky, min_stimuli=4 if debiased else 2, what="debiased CKA")
    return _cka_gram_jit(Kx, Ky, bool(debiased))


def hsic_gram(Kx, Ky, *, unbiased: bool = False) -> jax.Array:
    """HSIC of precomputed Gram matrices (..., n_stimuli, n_stimuli); see :func:`hsic`."""
    Kx, Ky = check_gram_pair(Kx, Ky, min_stimuli=4 if unbiased else 2, what="unbiased HSIC")
    return _hsic_gram_jit(Kx, Ky, bool(unbiased))


# --------------------------------------------------------------------------- scores from features


@partial(jax.jit, static_argnames=("kernel", "debiased"))
def _cka_jit(X, Y, kernel, debiased, rbf_threshold):
    def body(x, y):
        return cka_gram_body(gram_body(x, kernel, rbf_threshold), gram_body(y, kernel, rbf_threshold),
                             debiased)

    return _vectorize(body)(X, Y)


def cka(X, Y, *, kernel: str = "linear", debiased: bool = False,
        rbf_threshold: float = 1.0) -> jax.Array:
    """Centred kernel alignment (Kornblith et al. 2019).

    ``CKA = <HKH, HLH>_F / (||HKH||_F ||HLH||_F)`` with ``K``, ``L`` the Gram matrices of
    the stimuli in ``X`` and ``Y``. Linear CKA equals the RV coefficient
    (:func:`rv_coefficient`) and Kornblith et al.'s ``feature_space_linear_cka``.

    Parameters
    ----------
    X : array (..., n_stimuli, n_features_x)
    Y : array (..., n_stimuli, n_features_y)
        Rows matched by stimulus; leading axes (layers, subjects) must agree and are vmapped.
    kernel : {"linear", "rbf"}
        ``"rbf"``: bandwidth ``sigma^2 = rbf_threshold^2 x median squared distance``.
    debiased : bool
        Replace both HSIC estimates by the unbiased estimator (U-centring; Song et al.
        2012), as Kornblith et al.'s ``cka(..., debiased=True)``. Needs >= 4 stimuli.
    rbf_threshold : float

    Returns
    -------
    array (...)
    """
    from ._checks import check_kernel

    check_kernel(kernel)
    X, Y = check_pair(X, Y, min_stimuli=4 if debiased else 2,
                      what="debiased CKA" if debiased else "CKA")
    return _cka_jit(X, Y, kernel, bool(debiased), float(rbf_threshold))


@partial(jax.jit, static_argnames=("kernel", "unbiased"))
def _hsic_jit(X, Y, kernel, unbiased):
    def body(x, y):
        return hsic_gram_body(gram_body(x, kernel), gram_body(y, kernel), unbiased)

    return _vectorize(body)(X, Y)


def hsic(X, Y, *, kernel: str = "linear", unbiased: bool = False) -> jax.Array:
    """Hilbert-Schmidt independence criterion between the stimuli of ``X`` and ``Y``.

    Biased: ``tr(K H L H) / (n-1)^2`` (Gretton et al. 2005). Unbiased (Song et al. 2012):
    ``[tr(K~L~) + 1'K~1 1'L~1/((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3))`` with ``K~``,
    ``L~`` the Gram matrices with zero diagonal (computed as an inner product of
    U-centred matrices); needs >= 4 stimuli. Normalised, it is CKA (and hyppo's ``Hsic``
    statistic, which reports the normalised value). RBF bandwidth: the median rule of
    :func:`cka` with threshold 1.

    Parameters
    ----------
    X, Y : arrays (..., n_stimuli, n_features)
    kernel : {"linear", "rbf"}
    unbiased : bool

    Returns
    -------
    array (...)
    """
    from ._checks import check_kernel

    check_kernel(kernel)
    X, Y = check_pair(X, Y, min_stimuli=4 if unbiased else 2, what="unbiased HSIC")
    return _hsic_jit(X, Y, kernel, bool(unbiased))


def rv_coefficient(X, Y) -> jax.Array:
    """RV coefficient (Robert & Escoufier 1976) of column-centred ``X`` and ``Y``.

    ``RV = tr(Sxy Syx) / sqrt(tr(Sxx^2) tr(Syy^2))``, which is exactly linear CKA
    (:func:`cka` with ``kernel="linear"``): the same statistic under another name, and
    computed here by the same kernel.
    """
    return cka(X, Y, kernel="linear", debiased=False)


@partial(jax.jit, static_argnames=("squared", "unbiased"))
def _dcor_jit(X, Y, squared, unbiased):
    return _vectorize(dcor_body)(X, Y, squared=squared, unbiased=unbiased)


def distance_correlation(X, Y, *, squared: bool = False, unbiased: bool = False) -> jax.Array:
    """Distance correlation (Székely et al. 2007) with the dcor package's definitions.

    - default: ``dcor.distance_correlation`` (the square root of the biased squared one),
    - ``squared=True``: ``dcor.distance_correlation_sqr``,
    - ``unbiased=True``: ``dcor.u_distance_correlation_sqr`` (bias-corrected, squared by
      definition, may be negative; needs >= 4 stimuli).

    Parameters
    ----------
    X, Y : arrays (..., n_stimuli, n_features)

    Returns
    -------
    array (...)
    """
    X, Y = check_pair(X, Y, min_stimuli=4 if unbiased else 2,
                      what="unbiased distance correlation")
    return _dcor_jit(X, Y, bool(squared), bool(unbiased))
