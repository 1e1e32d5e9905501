"""Statistics shared by RSA, encoding and probes: ranks, correlations, p-values, corrections.

Conventions
-----------
- Permutation p-values are ``(1 + #{null >= observed}) / (1 + n_perm)`` (Phipson & Smyth
  2010), for ``alternative="greater"``; ``"less"`` counts ``null <= observed`` and
  ``"two-sided"`` counts ``|null| >= |observed|``.
- Family-wise error is controlled by the max statistic over the family (Nichols & Holmes
  2002), with the same permutations for every member.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._runtime import usable_cores
from ._validation import check_choice
from .permutation import ALTERNATIVES, accumulate, empty_counts, pvalues

__all__ = ["rankdata", "rank_rows", "zscore_rows", "pearson_rows", "permutation_pvalues", "fdr_bh",
           "column_scores", "fold_scores", "r2_from_r", "ALTERNATIVES"]


def _rankdata_1d(x: jax.Array) -> jax.Array:
    xs = jnp.sort(x)
    left = jnp.searchsorted(xs, x, side="left")
    right = jnp.searchsorted(xs, x, side="right")
    return ((left + right + 1) / 2).astype(x.dtype)


def rankdata_body(x: jax.Array) -> jax.Array:
    """Un-jitted body of :func:`rankdata`, for use inside other jitted kernels (package-internal).

    Average ranks (1-based) along the last axis; ties get the mean of their ranks.

    The rank of ``x`` is ``(#{< x} + #{<= x} + 1) / 2``, found by binary search in the
    sorted row.
    """
    flat = x.reshape(-1, x.shape[-1])
    return jax.vmap(_rankdata_1d)(flat).reshape(x.shape)


@jax.jit
def rankdata(x: jax.typing.ArrayLike) -> jax.Array:
    """Average ranks along the last axis, like ``scipy.stats.rankdata(x, axis=-1)``.

    Parameters
    ----------
    x : array, shape (..., n)

    Returns
    -------
    ranks : array, shape (..., n), 1-based, ties averaged.
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return rankdata_body(x)


def _rank_row_numpy(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x)
    xs = x[order]
    m = x.shape[0]
    start = np.empty(m, bool)
    start[0] = True
    np.not_equal(xs[1:], xs[:-1], out=start[1:])
    first = np.flatnonzero(start)
    size = np.diff(np.append(first, m))
    out = np.empty(m, x.dtype)
    out[order] = np.repeat(first + (size + 1) / 2.0, size)  # mean of ranks first+1..first+size
    return out


def rank_rows(x) -> jax.Array:
    """Average ranks along the last axis of a concrete array, like :func:`rankdata`.

    On CPU the rows are ranked with NumPy in parallel threads: XLA:CPU's sort is several
    times slower than NumPy's (68 rows of 499,500 pairs: 15 s with :func:`rankdata`, about
    1.5 s here on 2 cores). Elsewhere this is :func:`rankdata`.
    """
    if jax.default_backend() != "cpu":
        return rankdata(x)
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.dtype(jnp.result_type(float)))
    flat = a.reshape(-1, a.shape[-1])
    workers = min(len(flat), usable_cores())
    if workers > 1 and flat.size >= 1 << 16:
        with ThreadPoolExecutor(workers) as pool:  # NumPy's sort releases the GIL
            rows = list(pool.map(_rank_row_numpy, flat))
    else:
        rows = [_rank_row_numpy(r) for r in flat]
    return jnp.asarray(np.stack(rows).reshape(a.shape))


def zscore_rows_body(x: jax.Array) -> jax.Array:
    """Un-jitted body of :func:`zscore_rows` (package-internal): each row centred and
    scaled to unit norm, so dot products are Pearson r."""
    xc = x - jnp.mean(x, axis=-1, keepdims=True)
    return xc / jnp.linalg.norm(xc, axis=-1, keepdims=True)


zscore_rows = jax.jit(zscore_rows_body)
zscore_rows.__doc__ = """Rows centred and scaled to unit L2 norm: ``zscore_rows(a) @ zscore_rows(b).T`` is Pearson r."""


@jax.jit
def pearson_rows(a: jax.typing.ArrayLike, b: jax.typing.ArrayLike) -> jax.Array:
    """Pearson r between every row of ``a`` (n_a, n) and every row of ``b`` (n_b, n) -> (n_a, n_b)."""
    return zscore_rows_body(jnp.asarray(a)) @ zscore_rows_body(jnp.asarray(b)).T


def column_scores(pred: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r and coefficient of determination per column of ``pred`` against ``Y``.

    Rows are one test set. As ``scipy.stats.pearsonr`` and ``sklearn.metrics.r2_score``
    per column, in float64; a constant prediction scores r = 0.
    """
    pred = np.asarray(pred, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    pc = pred - pred.mean(axis=0)
    yc = Y - Y.mean(axis=0)
    den = np.sqrt((pc ** 2).sum(0) * (yc ** 2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, (pc * yc).sum(0) / np.where(den > 0, den, 1), 0.0)
        cod = 1.0 - ((Y - pred) ** 2).sum(0) / (yc ** 2).sum(0)
    return r, cod


def fold_scores(pred: np.ndarray, Y: np.ndarray, folds: np.ndarray):
    """Per-fold Pearson r and coefficient of determination, each (n_folds, n_targets).

    ``pred`` (n_stimuli, n_targets) holds cross-validated predictions; ``folds`` the test
    masks (n_folds, n_stimuli) that made them. Scoring each test fold on its own avoids the
    downward bias of correlating pooled predictions (each fold's predictions carry its own
    training mean, anti-correlated with its held-out mean).
    """
    out = [column_scores(pred[m], Y[m]) for m in folds]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def r2_from_r(r):
    """``max(r, 0)**2`` (negative correlations count as 0 variance explained), NaN kept."""
    r = np.asarray(r, dtype=float)
    return np.where(np.isnan(r), np.nan, np.maximum(r, 0.0) ** 2)


@partial(jax.jit, static_argnames=("alternative",))
def permutation_pvalues(observed: jax.typing.ArrayLike, null: jax.typing.ArrayLike, *,
                        alternative: str = "greater") -> tuple[jax.Array, jax.Array]:
    """Uncorrected and max-statistic FWE-corrected permutation p-values of a whole null.

    The counting of :mod:`alignjax.permutation` applied to one chunk. NaN in, NaN out: a
    NaN observed value gets a NaN p-value; NaN null values (a permuted score that is
    undefined) are left out of that member's count, and NaN members are left out of the
    family maximum, so an all-NaN member changes no other member's ``p_fwe`` (its own
    ``p`` and ``p_fwe`` are NaN).

    Parameters
    ----------
    observed : array, shape (...)
    null : array, shape (n_perm, ...)
    alternative : {"greater", "less", "two-sided"}

    Returns
    -------
    p, p_fwe : arrays, shape (...), each in [1/(n_perm+1), 1] or NaN.
    """
    observed = jnp.asarray(observed)
    null = jnp.asarray(null)
    counts = accumulate(empty_counts(observed.shape), null, jnp.ones(null.shape[0], bool),
                        observed, alternative=alternative)
    return pvalues(counts, observed, dtype=null.dtype)


def fdr_bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values over the finite entries of ``p`` (any shape).

    Matches ``scipy.stats.false_discovery_control(p, method="bh")`` on finite input. NaN
    entries (excluded voxels, undefined tests) stay NaN and are not counted in ``m``: the
    correction is over the finite p-values only.
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    flat = p[ok]
    m = flat.size
    if m == 0:
        return out
    order = np.argsort(flat)
    ranked = flat[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    vals = np.empty(m)
    vals[order] = np.minimum(q, 1.0)
    out[ok] = vals
    return out


def check_alternative(alternative: str) -> str:
    return check_choice(alternative, "alternative", ALTERNATIVES)
