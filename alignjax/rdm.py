"""Representational dissimilarity matrices (RDMs).

Condensed RDMs hold the upper triangle in the order of ``scipy.spatial.distance.pdist``:
pairs (0,1), (0,2), ..., (0,n-1), (1,2), ... . ``n_pairs = n_stimuli*(n_stimuli-1)/2``.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._runtime import float32_matmuls
from ._validation import (
    AlignjaxInputError,
    ShapeMismatchError,
    ZeroVarianceError,
    as_float_array,
    check_choice,
    check_finite,
)

__all__ = ["rdm", "squareform", "rdm_from_distributions", "rdm_from_labels",
           "n_stimuli_from_pairs", "METRICS", "DISTRIBUTION_METRICS"]

METRICS = ("correlation", "cosine", "euclidean", "sqeuclidean")
DISTRIBUTION_METRICS = ("symmetric_kl", "jensen_shannon", "mode")

# Above this many entries per (n_stimuli x n_stimuli) square, rdm() works in row blocks.
_SQUARE_LIMIT = 4096 * 4096


def n_stimuli_from_pairs(n_pairs: int) -> int:
    """n_stimuli such that n_stimuli*(n_stimuli-1)/2 == n_pairs, or raise."""
    n = int(round((1 + np.sqrt(1 + 8 * n_pairs)) / 2))
    if n * (n - 1) // 2 != n_pairs or n < 2:
        raise ShapeMismatchError(
            f"{n_pairs} is not a number of stimulus pairs n*(n-1)/2; condensed RDMs must hold "
            "the upper triangle of a square RDM (scipy pdist order)"
        )
    return n


def _triu(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, k=1)


# --------------------------------------------------------------------------- kernels


def _gram_distance(X: jax.Array, metric: str) -> jax.Array:
    """Square distance matrix (..., n, n) from features (..., n, p) via matrix products."""
    Z, sq = _prepare(X, metric)
    return _distances(Z, Z, sq, sq, metric)


#: Pairs whose Gram-based distance is below this fraction of its scale (the two rows'
#: squared norms for the euclidean family, 1 for cosine and correlation) are recomputed
#: directly from the difference of the two rows (:func:`_refine`): the Gram formula's
#: absolute error is a few ulps of that scale, so it keeps about 3 fewer digits than the
#: dtype above this threshold and loses everything for near-identical stimuli.
REFINE_BELOW = 2.0 ** -7


def _direct_rows(X: jax.Array, metric: str):
    """Rows (..., n, p) for :func:`_direct` and their norms (..., n): centred over stimuli
    (euclidean family: distances are shift-invariant), centred over features
    (correlation) or as given (cosine: not shift-invariant)."""
    if metric in ("euclidean", "sqeuclidean"):
        R = X - X.mean(axis=-2, keepdims=True)
    elif metric == "correlation":
        R = X - X.mean(axis=-1, keepdims=True)
    else:
        R = X
    return R, jnp.linalg.norm(R, axis=-1)


def _direct(X, R, nrm, i, j, metric: str, xp=jnp):
    """Distances of the pairs (``i``, ``j``) (k,) of the rows of ``X`` (n, p), from the
    difference of the rows ``d = x_i - x_j`` (centred over features for correlation):
    ``|d|^2`` (euclidean family), and for cosine and correlation ``|u_i - u_j|^2 / 2``
    with ``u = r / |r|`` (``R``, ``nrm``: :func:`_direct_rows`), the difference of the unit
    vectors formed as ``d / |r_i| - r_j (|r_i| - |r_j|) / (|r_i| |r_j|)``, where
    ``|r_i| - |r_j| = d.(r_i + r_j) / (|r_i| + |r_j|)``, so no term cancels."""
    d = X[i] - X[j]
    if metric in ("euclidean", "sqeuclidean"):
        D = xp.sum(d * d, axis=-1)
        return xp.sqrt(D) if metric == "euclidean" else D
    if metric == "correlation":
        d = d - xp.mean(d, axis=-1, keepdims=True)
    Ri, Rj = R[i], R[j]
    ni, nj = nrm[i][:, None], nrm[j][:, None]
    dn = xp.sum(d * (Ri + Rj), axis=-1, keepdims=True) / (ni + nj)
    v = d / ni - Rj * (dn / (ni * nj))
    return xp.clip(0.5 * xp.sum(v * v, axis=-1), 0.0, 2.0)


def _refine_flags(D, sq, i, j, metric: str, xp=jnp):
    """Pairs (n_pairs,) whose Gram-based distance ``D`` is below ``REFINE_BELOW`` of its
    scale (``sq``: squared norms of the centred rows, euclidean family)."""
    if metric == "euclidean":
        return D * D < REFINE_BELOW * (sq[i] + sq[j])
    if metric == "sqeuclidean":
        return D < REFINE_BELOW * (sq[i] + sq[j])
    return D < REFINE_BELOW


def _refine_one(D, X, metric: str):
    """One condensed RDM ``D`` (n_pairs,) of ``X`` (n, p) with its near-zero distances
    recomputed directly (:func:`_direct`), in batches of a fixed number of pairs (one
    compiled shape; no batch at all when no pair is flagged)."""
    n, p = X.shape
    i, j = _triu(n)
    n_pairs = i.shape[0]
    R, nrm = _direct_rows(X, metric)
    todo = _refine_flags(D, nrm * nrm, i, j, metric)
    cap = int(min(n_pairs, max(64, min(4 * n, (1 << 22) // max(p, 1)))))
    I, J = jnp.asarray(i, jnp.int32), jnp.asarray(j, jnp.int32)

    def body(state):
        D, todo = state
        k = jnp.nonzero(todo, size=cap, fill_value=n_pairs)[0]
        kk = jnp.minimum(k, n_pairs - 1)
        vals = _direct(X, R, nrm, I[kk], J[kk], metric).astype(D.dtype)
        return D.at[k].set(vals, mode="drop"), todo.at[k].set(False, mode="drop")

    return jax.lax.while_loop(lambda s: jnp.any(s[1]), body, (D, todo))[0]


def _refine(D, X, metric: str):
    """Condensed RDMs ``D`` (..., n_pairs) of ``X`` (..., n, p), near-zero distances
    recomputed directly (:func:`_refine_one` on each leading index)."""
    lead = X.shape[:-2]
    if not lead:
        return _refine_one(D, X, metric)
    flat = jax.vmap(lambda d, x: _refine_one(d, x, metric))(
        D.reshape((-1,) + D.shape[-1:]), X.reshape((-1,) + X.shape[-2:]))
    return flat.reshape(D.shape)


#: From this many stimuli on, rdm() computes only the row blocks of the upper triangle
#: (about half the matrix-product work of the full square) on CPU. Not on a GPU: there the
#: square is one fast product, while each block width is another GEMM shape to compile and
#: autotune (2,000 x 4,096 on an H200: a first call of 25.8 s with the blocks, 10.4 s with the
#: square, CUDA start-up included; 19-23 ms per RDM after).
TRIANGLE_MIN = 512
TRIANGLE_BLOCK = 256


def use_triangle() -> bool:
    """Whether the default backend computes upper-triangle row blocks (CPU only)."""
    return jax.default_backend() == "cpu"


def _prepare(X: jax.Array, metric: str) -> tuple[jax.Array, jax.Array | None]:
    """Rows ready for a Gram product: unit rows (correlation/cosine), or centred rows and
    their squared norms (euclidean family)."""
    if metric == "correlation":
        X = X - X.mean(axis=-1, keepdims=True)
    if metric in ("correlation", "cosine"):
        return X / jnp.linalg.norm(X, axis=-1, keepdims=True), None
    X = X - X.mean(axis=-2, keepdims=True)
    return X, jnp.sum(X * X, axis=-1)


def _distances(Zr, Zc, sq_r, sq_c, metric: str) -> jax.Array:
    """Distances between prepared rows ``Zr`` (..., a, p) and ``Zc`` (..., b, p)."""
    G = Zr @ jnp.swapaxes(Zc, -1, -2)
    if metric in ("correlation", "cosine"):
        return jnp.clip(1.0 - G, 0.0, 2.0)
    D = jnp.maximum(sq_r[..., :, None] + sq_c[..., None, :] - 2.0 * G, 0.0)
    return jnp.sqrt(D) if metric == "euclidean" else D


def _triangle_blocks(n: int, block: int):
    """Row blocks [r0, r1) of the upper triangle, the offset of each block in the flat
    buffer of blocks (each block holds rows r0:r1 against columns r0:n), and the gather
    index (n_pairs,) of every condensed pair into that buffer."""
    starts = list(range(0, n - 1, block))
    offsets, off = [], 0
    for r0 in starts:
        offsets.append(off)
        off += (min(r0 + block, n) - r0) * (n - r0)
    i, j = _triu(n)
    b = i // block
    r0 = b * block
    idx = np.asarray(offsets, np.int64)[b] + (i - r0) * (n - r0) + (j - r0)
    return starts, idx.astype(np.int32 if off < 2**31 else np.int64)


def rdm_body(X: jax.Array, metric: str, triangle: bool = True) -> jax.Array:
    """Condensed RDM(s) (..., n_pairs) of X (..., n_stimuli, n_features); vmappable.

    Distances come from matrix products (Gram form); those below ``REFINE_BELOW`` of
    their scale, where the Gram form cancels, are recomputed from the rows' differences
    (:func:`_refine`). ``triangle``: compute only upper-triangle row blocks (from
    ``TRIANGLE_MIN`` stimuli)."""
    n = X.shape[-2]
    if n < TRIANGLE_MIN or not triangle:
        i, j = _triu(n)
        return _refine(_gram_distance(X, metric)[..., i, j], X, metric)
    Z, sq = _prepare(X, metric)
    starts, idx = _triangle_blocks(n, TRIANGLE_BLOCK)
    parts = []
    for r0 in starts:
        r1 = min(r0 + TRIANGLE_BLOCK, n)
        D = _distances(Z[..., r0:r1, :], Z[..., r0:, :],
                       None if sq is None else sq[..., r0:r1],
                       None if sq is None else sq[..., r0:], metric)
        parts.append(D.reshape(D.shape[:-2] + (-1,)))
    return _refine(jnp.concatenate(parts, axis=-1)[..., idx], X, metric)


@partial(jax.jit, static_argnames=("metric", "triangle"))
def rdm_jit(X, metric, triangle):
    """The jitted RDM kernel behind :func:`rdm` (package-internal; stable for tests)."""
    return rdm_body(X, metric, triangle)


@partial(jax.jit, static_argnames=("metric", "block"))
def _rdm_block(X, start, metric, block):
    """Rows ``start:start+block`` of ``X`` (n, p) against all rows: distances (block, n)."""
    Z, sq = _prepare(X, metric)
    Zb = jax.lax.dynamic_slice_in_dim(Z, start, block, axis=0)
    sqb = None if sq is None else jax.lax.dynamic_slice_in_dim(sq, start, block)
    return _distances(Zb, Z, sqb, sq, metric)


def _rdm_rowblocks(X: np.ndarray, metric: str, block: int) -> np.ndarray:
    """Condensed RDM of one (n, p) array in row blocks: memory O(block * n + n_pairs)."""
    n = X.shape[0]
    block = min(block, n)
    out = np.empty(n * (n - 1) // 2, dtype=X.dtype)
    Xj = jnp.asarray(X)
    pos = 0
    for r0 in range(0, n - 1, block):
        start = min(r0, n - block)  # one compiled shape: the last block overlaps the one before
        D = np.asarray(_rdm_block(Xj, start, metric, block))
        for i in range(r0, min(r0 + block, n - 1)):
            m = n - 1 - i
            out[pos:pos + m] = D[i - start, i + 1:]
            pos += m
    return _refine_host(out, Xj, metric)


def _refine_host(D: np.ndarray, Xj, metric: str, batch: int = 1 << 16) -> np.ndarray:
    """:func:`_refine` of one condensed RDM on the host (the row-block path)."""
    n = Xj.shape[0]
    R, nrm = (np.asarray(a) for a in _direct_rows(Xj, metric))
    Xh = np.asarray(Xj)
    i, j = _triu(n)
    k = np.flatnonzero(_refine_flags(D, nrm * nrm, i, j, metric, xp=np))
    for s in range(0, k.size, batch):
        kb = k[s:s + batch]
        D[kb] = _direct(Xh, R, nrm, i[kb], j[kb], metric, xp=np)
    return D


def _validate_features(X: np.ndarray, metric: str, stimulus_ids: Sequence[str] | None) -> None:
    if X.shape[-2] < 2:
        raise ShapeMismatchError(f"need at least 2 stimuli to build an RDM, got shape {X.shape}")
    if X.shape[-1] < 1:
        raise ShapeMismatchError(f"features have no columns (shape {X.shape})")
    flat = X.reshape((-1,) + X.shape[-2:])
    for b, x in enumerate(flat):
        where = f" (batch entry {np.unravel_index(b, X.shape[:-2])})" if X.ndim > 2 else ""
        check_finite(x, "features" + where, labels=stimulus_ids, axis_name="stimulus")
        if metric == "correlation":
            bad = np.ptp(x, axis=-1) == 0
            what = "zero variance across features"
        elif metric == "cosine":
            bad = ~np.any(x != 0, axis=-1)
            what = "all-zero features"
        else:
            continue
        if bad.any():
            ids = [stimulus_ids[i] if stimulus_ids is not None else int(i)
                   for i in np.flatnonzero(bad)[:5]]
            raise ZeroVarianceError(
                f"stimuli {ids}{where} have {what}, so the {metric} distance is undefined; "
                "drop those stimuli or use metric='euclidean'"
            )


@float32_matmuls
def rdm(X, *, metric: str = "correlation", stimulus_ids: Sequence[str] | None = None,
        block_size: int | None = None) -> jax.Array:
    """Condensed RDMs of stimulus-by-feature activations.

    Matches ``scipy.spatial.distance.pdist(X, metric)`` for each leading index. In
    float32 every distance is within a relative 1e-4 of ``pdist`` in float64 on the same
    (float32) features, near-identical stimuli and features with a large common offset
    included, down to distances of 1e-10 of their scale (the rows' squared norms for the
    euclidean family, 1 for cosine and correlation; below that, within 1e-14 of the scale):
    distances under ``2**-7`` of their scale are recomputed from the rows' differences,
    the rest come from matrix products of centred (euclidean family) or unit-normalised
    (cosine, correlation) rows.

    Parameters
    ----------
    X : array, shape (..., n_stimuli, n_features)
        Leading axes (layers, subjects) are batched.
    metric : {"correlation", "cosine", "euclidean", "sqeuclidean"}
        ``correlation`` is 1 - Pearson r between stimulus patterns.
    stimulus_ids : sequence of str, optional
        Used only to name offending stimuli in error messages.
    block_size : int, optional
        Rows per block when the square RDM would be too large to hold at once (by default
        blocks are used above 4,096 stimuli); the result does not depend on it.

    Returns
    -------
    rdms : array, shape (..., n_pairs)
    """
    check_choice(metric, "metric", METRICS)
    X = as_float_array(X, "features", min_ndim=2)
    _validate_features(X, metric, stimulus_ids)
    dtype = jnp.result_type(float)
    X = X.astype(dtype)
    n = X.shape[-2]
    if block_size is None and n * n <= _SQUARE_LIMIT:
        return rdm_jit(jnp.asarray(X), metric, triangle=use_triangle())
    block = int(block_size or 1024)
    lead = X.shape[:-2]
    flat = X.reshape((-1,) + X.shape[-2:])
    out = np.stack([_rdm_rowblocks(x, metric, block) for x in flat])
    return jnp.asarray(out.reshape(lead + out.shape[-1:]))


# --------------------------------------------------------------------------- squareform


def squareform(x) -> jax.Array:
    """Convert condensed RDMs to square form and back, like ``scipy.spatial.distance.squareform``.

    Parameters
    ----------
    x : array, shape (..., n_pairs) or (..., n_stimuli, n_stimuli)
        A 1-D input (or last axis that is not square with the one before) is treated as
        condensed; square input must be symmetric with a zero diagonal.

    Returns
    -------
    array, shape (..., n_stimuli, n_stimuli) or (..., n_pairs)
    """
    x = as_float_array(x, "rdm", min_ndim=1)
    if x.ndim >= 2 and x.shape[-1] == x.shape[-2]:
        n = x.shape[-1]
        diag = np.diagonal(x, axis1=-2, axis2=-1)
        if np.any(np.abs(diag) > 1e-6 * max(1.0, float(np.nanmax(np.abs(x))))):
            raise ShapeMismatchError("square RDM has a non-zero diagonal")
        if not np.allclose(x, np.swapaxes(x, -1, -2), equal_nan=True):
            raise ShapeMismatchError("square RDM is not symmetric")
        i, j = _triu(n)
        return jnp.asarray(x[..., i, j])
    n = n_stimuli_from_pairs(x.shape[-1])
    i, j = _triu(n)
    sq = np.zeros(x.shape[:-1] + (n, n), dtype=x.dtype)
    sq[..., i, j] = x
    sq[..., j, i] = x
    return jnp.asarray(sq)


# --------------------------------------------------------------------------- distributions


def _sym_kl(P: jax.Array) -> jax.Array:
    L = jnp.log(P)
    a = jnp.sum(P * L, axis=-1)
    cross = P @ L.T
    return a[:, None] + a[None, :] - cross - cross.T


def _js(P: jax.Array) -> jax.Array:
    def row(p):
        m = 0.5 * (p[None, :] + P)
        kl = lambda u, v: jnp.sum(jnp.where(u > 0, u * (jnp.log2(jnp.where(u > 0, u, 1.0))
                                                        - jnp.log2(jnp.where(u > 0, v, 1.0))),
                                            0.0), axis=-1)
        js = 0.5 * kl(jnp.broadcast_to(p, P.shape), m) + 0.5 * kl(P, m)
        return jnp.sqrt(jnp.maximum(js, 0.0))

    return jax.lax.map(row, P)


@partial(jax.jit, static_argnames=("metric",))
def _distribution_square(P, metric, smoothing):
    if metric == "symmetric_kl":
        Ps = (P + smoothing) / (1.0 + P.shape[-1] * smoothing)
        return jnp.maximum(_sym_kl(Ps), 0.0)
    if metric == "jensen_shannon":
        return _js(P)
    m = jnp.argmax(P, axis=-1)
    return (m[:, None] != m[None, :]).astype(P.dtype)


@float32_matmuls
def rdm_from_distributions(P, *, metric: str = "symmetric_kl", smoothing: float = 1e-2
                           ) -> jax.Array:
    """RDM from per-stimulus distributions of categorical judgements.

    Parameters
    ----------
    P : array, shape (n_stimuli, n_categories)
        Non-negative counts or probabilities per stimulus (rows are normalised to sum 1).
    metric : {"symmetric_kl", "jensen_shannon", "mode"}
        ``symmetric_kl``: KL(p||q) + KL(q||p) in nats, after additive smoothing of the
        normalised rows, ``p' = (p + smoothing) / (1 + n_categories * smoothing)``, so that
        categories nobody chose (zero counts) give a finite divergence.
        ``jensen_shannon``: the Jensen-Shannon distance (square root of the divergence,
        base 2, in [0, 1]), as ``scipy.spatial.distance.jensenshannon(p, q, base=2)``; needs
        no smoothing. ``mode``: 0 when the two stimuli's modal categories agree, else 1
        (ties broken by the first category).
    smoothing : float
        Additive smoothing for ``symmetric_kl`` (> 0).

    Returns
    -------
    rdm : array, shape (n_pairs,)
    """
    check_choice(metric, "metric", DISTRIBUTION_METRICS)
    P = as_float_array(P, "distributions", ndim=2)
    check_finite(P, "distributions", axis_name="stimulus")
    if (P < 0).any():
        raise AlignjaxInputError("distributions must be non-negative counts or probabilities")
    sums = P.sum(axis=1)
    if (sums == 0).any():
        raise ZeroVarianceError(
            f"stimuli {np.flatnonzero(sums == 0)[:5].tolist()} have no judgements (all-zero rows)"
        )
    if metric == "symmetric_kl" and not smoothing > 0:
        raise AlignjaxInputError("smoothing must be > 0 for symmetric_kl")
    P = (P / sums[:, None]).astype(jnp.result_type(float))
    i, j = _triu(P.shape[0])
    return _distribution_square(jnp.asarray(P), metric, smoothing)[i, j]


def rdm_from_labels(labels) -> jax.Array:
    """Categorical RDM: 0 for pairs in the same category, 1 otherwise -> (n_pairs,)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] < 2:
        raise ShapeMismatchError(f"labels must be 1-D with at least 2 entries, got {labels.shape}")
    _, codes = np.unique(labels, return_inverse=True)
    i, j = _triu(labels.shape[0])
    return jnp.asarray((codes[i] != codes[j]).astype(jnp.result_type(float)))
