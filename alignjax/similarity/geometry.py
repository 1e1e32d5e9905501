"""Shape metrics (Williams et al. 2021) and CCA similarities (mean R², SVCCA, PWCCA).

Both families work from a factor of each input computed once: the thin SVD of the
column-centred features, ``Xc = U S V^T``. Every metric here is invariant to an orthogonal
transform of the features, so ``U`` scaled per component is all a metric needs, and a
permutation of the stimuli of one input only permutes the rows of its factor.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from alignjax.errors import InvalidOptionError, check_choice

from ._checks import check_pair
from .kernels import _vectorize

__all__ = ["shape_distance", "cca_similarity", "SHAPE_SCORES", "CCA_METHODS"]

SHAPE_SCORES = ("angular", "euclidean")
CCA_METHODS = ("mean_r2", "svcca", "pwcca")


def _svd(X):
    """Thin SVD of the column-centred ``X`` (n, p), zero-padded to n components:
    U (n, n), s (n,), mask of the non-null components (n,)."""
    n, p = X.shape
    Xc = X - X.mean(0)
    U, s, _ = jnp.linalg.svd(Xc, full_matrices=False)
    if p < n:
        U = jnp.pad(U, ((0, 0), (0, n - p)))
        s = jnp.pad(s, (0, n - p))
    eps = jnp.finfo(X.dtype).eps
    keep = s > s[0] * max(X.shape) * eps * 10
    return U, s, keep


def shape_factor_body(X, alpha: float = 1.0):
    """Factor ``F`` (n, n) with ``F F^T = phi(X) phi(X)^T``: the partially whitened,
    column-centred features up to a rotation.

    ``phi(X) = Xc (alpha I + (1 - alpha) C^(-1/2))``, ``C = Xc^T Xc / n`` (inverted on its
    range). In the SVD basis the singular values become ``alpha s + (1 - alpha) sqrt(n)``.
    """
    n = X.shape[0]
    U, s, keep = _svd(X)
    d = jnp.where(keep, alpha * s + (1.0 - alpha) * jnp.sqrt(float(n)), 0.0)
    return U * d


def nuclear_body(Fx, Fy):
    """``||Fx^T Fy||_*`` (sum of singular values)."""
    return jnp.sum(jnp.linalg.svd(Fx.T @ Fy, compute_uv=False))


def shape_from_factors(Fx, Fy, score: str = "angular"):
    """Shape distance of two factors (rows = stimuli)."""
    nx2, ny2 = jnp.sum(Fx * Fx), jnp.sum(Fy * Fy)
    nuc = nuclear_body(Fx, Fy)
    if score == "angular":
        return jnp.arccos(jnp.clip(nuc / jnp.sqrt(nx2 * ny2), -1.0, 1.0))
    return jnp.sqrt(jnp.maximum(nx2 + ny2 - 2.0 * nuc, 0.0))


def _shape_body(X, Y, alpha, score):
    return shape_from_factors(shape_factor_body(X, alpha), shape_factor_body(Y, alpha), score)


@partial(jax.jit, static_argnames=("score",))
def _shape_jit(X, Y, alpha, score):
    return _vectorize(_shape_body)(X, Y, alpha=alpha, score=score)


def shape_distance(X, Y, *, alpha: float = 1.0, score: str = "angular") -> jax.Array:
    """Generalised shape metric of Williams et al. (2021).

    Columns are centred; each input is partially whitened,
    ``phi(X) = Xc (alpha I + (1 - alpha) C^(-1/2))`` with ``C`` the feature covariance;
    the narrower input is (implicitly) zero-padded; then the best rotation is found:

    - ``score="angular"``: ``arccos(max_Q <phi(X), phi(Y) Q> / (||phi(X)|| ||phi(Y)||))``
      ``= arccos(||phi(X)^T phi(Y)||_* / (||phi(X)||_F ||phi(Y)||_F))``, in [0, pi/2];
      at ``alpha=1`` its cosine is the Bures/Procrustes similarity (rsatoolbox's
      ``compare(method="bures")``).
    - ``score="euclidean"``: ``min_Q ||phi(X) - phi(Y) Q||_F``; at ``alpha=1`` the
      Procrustes size-and-shape distance (``scipy.linalg.orthogonal_procrustes``).

    ``alpha=1`` is orthogonal Procrustes (invariant to rotations and, angular, isotropic
    scaling); ``alpha=0`` is CCA-like (invariant to invertible linear maps). Both scores
    are metrics (symmetric, zero on identical inputs, triangle inequality).

    Parameters
    ----------
    X : array (..., n_stimuli, n_features_x)
    Y : array (..., n_stimuli, n_features_y)
    alpha : float in [0, 1]
    score : {"angular", "euclidean"}

    Returns
    -------
    array (...)
    """
    check_choice(score, "score", SHAPE_SCORES)
    if not 0.0 <= float(alpha) <= 1.0:
        raise InvalidOptionError(f"alpha must be in [0, 1] (1: Procrustes, 0: CCA), got {alpha}")
    X, Y = check_pair(X, Y, what="the shape metric")
    return _shape_jit(X, Y, float(alpha), score)


# --------------------------------------------------------------------------- CCA


def cca_basis_body(X, method: str = "mean_r2", n_components: int | None = None,
                   variance: float = 0.99):
    """Orthonormal basis ``Q`` (n, n) of the centred features' kept principal
    components (dropped columns zero) and their number ``r``.

    Kept: every non-null component (``mean_r2``, ``pwcca``), the leading ones explaining
    ``variance`` of the variance (``svcca``), or the ``n_components`` leading ones.
    """
    U, s, keep = _svd(X)
    k = jnp.arange(s.shape[0])
    if n_components is not None:
        keep = keep & (k < n_components)
    elif method == "svcca":
        frac = jnp.cumsum(s * s) / jnp.sum(s * s)
        n_keep = jnp.sum(frac < variance) + 1
        keep = keep & (k < n_keep)
    return U * keep, jnp.sum(keep).astype(X.dtype)


def canonical_correlations(Qx, Qy):
    """Canonical correlations (singular values of ``Qx^T Qy``), descending."""
    return jnp.linalg.svd(Qx.T @ Qy, compute_uv=False)


def cca_from_bases(Qx, rx, Qy, ry, method: str = "mean_r2", Wx=None):
    """CCA similarity from bases (see :func:`cca_basis_body`); ``Wx = Qx^T Xc`` for pwcca."""
    m = jnp.minimum(rx, ry)
    if method == "mean_r2":
        M = Qx.T @ Qy
        return jnp.sum(M * M) / m
    if method == "svcca":
        return jnp.sum(canonical_correlations(Qx, Qy)) / m
    U, rho, _ = jnp.linalg.svd(Qx.T @ Qy)
    valid = jnp.arange(rho.shape[0]) < m
    weight = jnp.sum(jnp.abs(U.T @ Wx), axis=1) * valid   # |<h_i, x_j>| summed over features
    return jnp.sum(weight * rho) / jnp.sum(weight)


def _cca_body(X, Y, method, n_components):
    Qx, rx = cca_basis_body(X, method, n_components)
    Qy, ry = cca_basis_body(Y, method, n_components)
    Wx = Qx.T @ (X - X.mean(0)) if method == "pwcca" else None
    return cca_from_bases(Qx, rx, Qy, ry, method, Wx)


@partial(jax.jit, static_argnames=("method", "n_components"))
def _cca_jit(X, Y, method, n_components):
    return _vectorize(_cca_body)(X, Y, method=method, n_components=n_components)


def cca_similarity(X, Y, *, method: str = "mean_r2", n_components: int | None = None) -> jax.Array:
    """CCA similarity of the column-centred features.

    - ``"mean_r2"``: mean squared canonical correlation ``||Qx^T Qy||_F^2 / min(r_x, r_y)``
      (Kornblith et al.'s ``R^2_CCA``; ``Q`` orthonormal bases of the centred features),
    - ``"svcca"``: SVCCA (Raghu et al. 2017): each input reduced to its leading principal
      components explaining 99% of the variance, then the mean canonical correlation,
    - ``"pwcca"``: projection-weighted CCA (Morcos et al. 2018): canonical correlations
      weighted by how much of ``X`` each canonical variate accounts for,
      ``sum_j |<h_i, x_j>|``. Not symmetric.

    When an input has at least as many features as stimuli - 1, its centred features span
    every direction and ``mean_r2`` is 1 whatever the data: reduce with ``n_components``
    (or use ``svcca``).

    Parameters
    ----------
    X, Y : arrays (..., n_stimuli, n_features)
    method : {"mean_r2", "svcca", "pwcca"}
    n_components : int, optional
        Keep this many leading principal components of each input before CCA (overrides
        the 99% rule of ``svcca``).

    Returns
    -------
    array (...)
    """
    check_choice(method, "method", CCA_METHODS)
    if n_components is not None:
        from alignjax.errors import check_positive_int

        n_components = check_positive_int(n_components, "n_components")
    X, Y = check_pair(X, Y, what="CCA")
    return _cca_jit(X, Y, method, n_components)
