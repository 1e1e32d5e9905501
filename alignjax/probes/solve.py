"""The batched solver: every (layer, split, C) logistic problem of a study in one program.

Problems of layers with the same width are stacked and ``vmap``-ed over layers and
train/test splits (outer folds and the inner folds of nested CV), and a ``lax.scan`` walks
the C path from strong to weak regularisation with warm starts, each extrapolated
linearly in log C from the two previous solutions, and a diagonal preconditioner fitted to
each C (together: 0.34 -> 0.20 s for the 520 problems of ``bench_spatial.py``'s
``small_probe``). Splits are sample-weight masks, so every split has the same shape;
per-split standardisation (training rows only) is folded into the parametrisation, so the
features are never copied per split.

Package-internal: :func:`solve_splits` (used by cross-validation, transfer and the
permutation test) and :func:`solve_group`, the compiled kernel of one width group.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import width_groups
from .logistic import MASK_LOGIT, fit_from, full_logits, init_params, linear_scores

__all__: list[str] = []  # package-internal: solve_splits, solve_group


def _train_stats(X, train, standardize: bool):
    """Mean and standard deviation (ddof 0, as StandardScaler) over training rows.

    Two-pass variance; a feature counts as constant on the training rows (kept unscaled,
    as StandardScaler does) when its SD is within rounding of its mean, a threshold
    relative to the feature's own scale (sklearn's ``_is_constant_feature``), never an
    absolute one.
    """
    p = X.shape[1]
    if not standardize:
        return jnp.zeros((p,), X.dtype), jnp.ones((p,), X.dtype)
    w = train.astype(X.dtype)
    n = jnp.sum(w)
    mu = (w @ X) / n
    var = jnp.sum(w[:, None] * (X - mu) ** 2, axis=0) / n
    sd = jnp.sqrt(var)
    constant = sd <= n * jnp.finfo(X.dtype).eps * jnp.abs(mu)
    return mu, jnp.where(constant | (sd == 0), 1.0, sd)


def _training_row_space(X, train, mu, sd):
    """Exact reduction for n_features > n_stimuli (representer theorem).

    The L2-penalised optimum ``W`` lies in the span of the standardised training rows, so
    with ``V`` an orthonormal basis of that span (thin SVD), ``x @ W == (x @ V) @ W_z`` and
    ``||W|| == ||W_z||``: solving on the ``n_stimuli`` coordinates ``X_std @ V`` gives the same
    objective, optimum and predictions (test rows included) at a fraction of the cost.
    Returns the reduced features with identity standardisation.
    """
    Xs = (X - mu) / sd
    _, _, Vt = jnp.linalg.svd(jnp.where(train[:, None], Xs, 0.0), full_matrices=False)
    Z = Xs @ Vt.T
    return Z, jnp.zeros((Z.shape[1],), Z.dtype), jnp.ones((Z.shape[1],), Z.dtype)


def _path_body(X, Y, sw, inv_Cs, tol, *, n_classes, fit_intercept, max_iter, standardize):
    """One (layer, split): the whole C path with warm starts; returns predictions per C."""
    train = sw > 0
    mu, sd = _train_stats(X, train, standardize)
    # the preconditioner's scale of the coefficients: the weighted sum of squares of a
    # standardised column (their mean; rotated coordinates of a wide layer share it)
    curvature = jnp.mean(sw @ jnp.square((X - mu) / sd))
    if X.shape[1] > X.shape[0]:
        X, mu, sd = _training_row_space(X, train, mu, sd)
    counts = jnp.sum(Y * train[:, None].astype(Y.dtype), axis=0)
    present = jnp.where(counts > 0, 0.0, MASK_LOGIT).astype(X.dtype)

    def step(carry, inv_C):
        prev, last, last_log, k = carry
        span = jnp.where(k >= 2, last_log - prev[1], 1.0)
        t = jnp.where(k >= 2, (jnp.log(inv_C) - last_log) / span, 0.0)
        start = jax.tree_util.tree_map(lambda a, b: a + t * (a - b), last, prev[0])
        params, it, conv = fit_from(X, Y, sw, mu, sd, present, inv_C, tol, start,
                                    n_classes=n_classes, fit_intercept=fit_intercept,
                                    max_iter=max_iter, curvature=curvature)
        z = linear_scores(params, X, mu, sd, fit_intercept)
        pred = jnp.argmax(full_logits(z, n_classes) + present, axis=-1).astype(jnp.int32)
        return ((last, last_log), params, jnp.log(inv_C), k + 1), (pred, it, conv)

    p0 = init_params(X.shape[1], n_classes, X.dtype)
    zero = jnp.zeros((), X.dtype)
    init = ((p0, zero), p0, zero, 0)
    _, (pred, it, conv) = jax.lax.scan(step, init, inv_Cs)
    return pred, it, conv


@partial(jax.jit, static_argnames=("n_classes", "fit_intercept", "max_iter", "standardize",
                                   "layer_chunk_size"))
def solve_group(Xg, Y, SW, inv_Cs, tol, *, n_classes, fit_intercept, max_iter, standardize,
                layer_chunk_size):
    """All problems of one width group (compiled; package-internal).

    Xg (n_layers, n_stimuli, n_features); Y (n_splits, n_stimuli, n_classes) one-hot;
    SW (n_splits, n_stimuli) sample weights (zero outside the training set); inv_Cs
    (n_Cs,) ascending C. Returns predictions (n_layers, n_splits, n_Cs, n_stimuli),
    iterations and convergence flags (n_layers, n_splits, n_Cs).
    """
    body = partial(_path_body, n_classes=n_classes, fit_intercept=fit_intercept,
                   max_iter=max_iter, standardize=standardize)
    per_split = jax.vmap(body, in_axes=(None, 0, 0, None, None))
    return jax.lax.map(lambda X: per_split(X, Y, SW, inv_Cs, tol), Xg, batch_size=layer_chunk_size)


def solve_splits(arrays, codes_splits, SW, Cs, *, n_classes, fit_intercept, max_iter, tol,
                 standardize, layer_chunk_size):
    """Solve every (layer, split, C); package-internal.

    Parameters
    ----------
    arrays : list of arrays (n_stimuli, n_features)
        One per layer; widths may differ.
    codes_splits : int array (n_splits, n_stimuli)
        Class codes of each split (a permutation test stacks several labellings).
    SW : array (n_splits, n_stimuli)
        Sample weights, zero outside each split's training set.
    Cs : array (n_Cs,), ascending
    n_classes, fit_intercept, max_iter, tol, standardize
        As :func:`alignjax.probes.logistic_probe`.
    layer_chunk_size : int or None
        Layers solved together; never changes results.

    Returns
    -------
    preds : int array (n_layers, n_splits, n_Cs, n_stimuli)
    iters : int array (n_layers, n_splits, n_Cs)
    conv : bool array (n_layers, n_splits, n_Cs)
    """
    dtype = jnp.result_type(float)
    B, n = SW.shape
    L = len(arrays)
    preds = np.zeros((L, B, len(Cs), n), dtype=np.int32)
    iters = np.zeros((L, B, len(Cs)), dtype=np.int32)
    conv = np.zeros((L, B, len(Cs)), dtype=bool)
    Y = jax.nn.one_hot(jnp.asarray(codes_splits), n_classes, dtype=dtype)
    inv_Cs = jnp.asarray(1.0 / Cs, dtype)
    for idx in width_groups(arrays):
        Xg = np.stack([_prescale(arrays[i], standardize, fit_intercept) for i in idx])
        lb = None if layer_chunk_size is None else min(int(layer_chunk_size), len(idx))
        p, it, cv = solve_group(jnp.asarray(Xg, dtype), Y, jnp.asarray(SW, dtype), inv_Cs,
                                jnp.asarray(tol, dtype), n_classes=n_classes,
                                fit_intercept=fit_intercept, max_iter=max_iter,
                                standardize=standardize, layer_chunk_size=lb)
        preds[idx], iters[idx], conv[idx] = np.asarray(p), np.asarray(it), np.asarray(cv)
    return preds, iters, conv


def _prescale(a: np.ndarray, standardize: bool, fit_intercept: bool) -> np.ndarray:
    """A per-column affine map that leaves the per-fold standardised problem unchanged.

    With per-fold standardisation the model only sees ``(X - mu_f) / sd_f`` (training-fold
    statistics), which does not depend on an affine map of each column applied first; the
    map only keeps float32 sums well conditioned for unscaled features. It uses the median
    and the median absolute deviation, so one extreme stimulus cannot shrink a column's
    training values towards rounding noise.
    """
    a = np.asarray(a, dtype=np.float64)
    if not standardize:
        return a
    med = np.median(a, axis=0)
    scale = np.median(np.abs(a - med), axis=0)
    scale = np.where(scale > 0, scale, np.abs(a - med).max(axis=0))
    return (a - med) / np.where(scale > 0, scale, 1.0)
