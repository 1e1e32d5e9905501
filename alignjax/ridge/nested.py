"""The device side of one outer fold of a nested CV, for a stack of layers of one width.

For every layer and target: the inner-CV scores of every grid alpha, the best one, the
edge extension of alphas chosen at an edge of the grid (Pepino et al.), and the
predictions of the outer test rows from a fit on the outer-training rows with the chosen
alpha, all in one compiled, target-sharded pass (:data:`layers_fold_pass`; a batch of
outer folds of the same shapes in one :data:`folds_layers_pass`). Layers run
in batches of ``layer_batch`` (vmapped; the batches in sequence); each layer's fold
decompositions are computed once and serve, chunk by chunk of targets, the grid, every
extension step and the prediction.

The edge extension walks all edge targets of a chunk in lockstep (``lo/2^k`` for those at
the lower edge, ``hi*2^k`` for those at the upper edge) in a ``lax.while_loop``; each
step scores only the still-active targets, gathered into blocks of ``block`` targets, so
its cost follows the number of active targets. Neither the chunk nor the block size, nor
the number of layers batched together, changes a result beyond floating-point rounding.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from .kernels import (
    centre_global,
    centre_split,
    chunk_loop,
    grid_chunk_scores,
    grid_operator,
    predict_chunk,
    sharded,
)
from .solvers import Factors, FoldSolver, pick_alpha

__all__ = ["layers_fold_pass", "layers_fold_local", "folds_layers_pass",
           "folds_layers_local", "MAX_EXTEND_STEPS"]

#: Most halving (doubling) steps of the edge extension.
MAX_EXTEND_STEPS = 400


def _fold(F, f):
    """The factors of fold ``f`` of a stack of folds."""
    return jax.tree.map(lambda x: x[f], F)


def _map(f, xs, vectorized: bool):
    """``f`` over the leading axis of ``xs``: vmapped, or one at a time.

    On CPU, decompositions run one at a time: jaxlib's batched LAPACK calls (eigh, svd)
    split their batch over XLA:CPU's thread pool and wait for it from inside the pool, so
    two of them running side by side (two fold groups, or several forced host devices)
    can deadlock it (seen on 2 cores).
    """
    return jax.vmap(f)(xs) if vectorized else lax.map(f, xs)


def _inner_factors(X, tr, groups, *, solver: FoldSolver, fit_intercept, standardize,
                   serial):
    """Factors of every inner fold (one stack per fold group) on the outer-training rows."""
    Xg = centre_global(X[tr], fit_intercept)
    K = solver.kernel(Xg, standardize=standardize)

    def decompose(idx):
        return solver.decompose(Xg, K, *idx, fit_intercept=fit_intercept,
                                standardize=standardize)

    return tuple(_map(decompose, (tr_g, te_g), not serial) for tr_g, te_g in groups)


def _outer_factors(X, tr, te, *, solver: FoldSolver, fit_intercept, standardize) -> Factors:
    """Factors of the fit on the outer-training rows ``tr`` that predicts rows ``te``."""
    Xg = centre_global(X, fit_intercept)
    K = solver.kernel(Xg, standardize=standardize)
    return solver.decompose(Xg, K, tr, te, fit_intercept=fit_intercept,
                            standardize=standardize)


def _sum_folds(fn, inner, groups, Ytr, init, fit_intercept):
    """``sum_f fn(factors_f, Ytr_f, Yte_f)`` over the inner folds (in the order of the CV
    pass), with the training and test rows of ``Ytr`` centred per fold."""
    total = None
    for F_g, (tr_g, te_g) in zip(inner, groups):
        def one(f, acc, F_g=F_g, tr_g=tr_g, te_g=te_g):
            Yf_tr, Yf_te, _ = centre_split(Ytr, tr_g[f], te_g[f], fit_intercept)
            return acc + fn(_fold(F_g, f), Yf_tr, Yf_te)

        part = lax.fori_loop(0, tr_g.shape[0], one, init)
        total = part if total is None else total + part
    return total


def _grid_scores(inner, groups, Ytr, alphas, *, solver, score, fit_intercept):
    """Inner-CV base score and gains of every grid alpha (1 + n_alphas, c), summed over
    folds (see :func:`~alignjax.ridge.kernels.grid_chunk_scores`)."""
    def fn(F, Yf_tr, Yf_te):
        grid = grid_operator(F, alphas, solver=solver, n_targets=Ytr.shape[1])
        return grid_chunk_scores(grid, F, Yf_tr, Yf_te, score=score)

    init = jnp.zeros((1 + alphas.shape[0], Ytr.shape[1]), Ytr.dtype)
    return _sum_folds(fn, inner, groups, Ytr, init, fit_intercept)


def _alpha_scores(inner, groups, Ytr, alpha, *, solver, score, fit_intercept):
    """Inner-CV gains (c,) of per-target ``alpha`` (c,) over the base score, summed over
    folds."""
    def fn(F, Yf_tr, Yf_te):
        return score.gain(predict_chunk(F, Yf_tr, alpha, solver=solver), Yf_te)

    init = jnp.zeros((Ytr.shape[1],), Ytr.dtype)
    return _sum_folds(fn, inner, groups, Ytr, init, fit_intercept)


def _active_scores(scores_of, Ytr, alpha, active, block: int):
    """``scores_of(Ytr[:, cols], alpha[cols])`` of the ``active`` targets ``cols`` only,
    gathered in blocks of ``block`` targets (the others get 0)."""
    c = active.shape[0]
    if block >= c:
        return jnp.where(active, scores_of(Ytr, alpha), 0.0)
    idx = jnp.nonzero(active, size=-(-c // block) * block, fill_value=c)[0]
    n_blocks = (jnp.sum(active) + block - 1) // block

    def one(j, out):
        cols = lax.dynamic_slice_in_dim(idx, j * block, block)
        sc = scores_of(jnp.take(Ytr, cols, axis=1, mode="clip"),
                       jnp.take(alpha, cols, mode="clip"))
        return out.at[cols].set(sc, mode="drop")

    return lax.fori_loop(0, n_blocks, one, jnp.zeros((c,), Ytr.dtype))


class _Walk(NamedTuple):
    """State of the edge extension: step ``k`` and its two candidate alphas, the chosen
    alpha, score and signed step count per target, the still-active targets per edge."""

    k: jax.Array
    a_dn: jax.Array
    a_up: jax.Array
    alpha: jax.Array
    best: jax.Array
    steps: jax.Array
    act_dn: jax.Array
    act_up: jax.Array


def _extend(scores_of, alphas, best_idx, best, base, max_steps):
    """Halve/double edge-selected alphas while the CV score improves (Pepino et al.).

    The device form of the host walk ``cv._extend`` (same steps, same tolerance): step
    ``k`` scores ``lo/2^k`` for the still-active targets at the lower edge and ``hi*2^k``
    for those at the upper edge (``scores_of(alpha (c,), active (c,)) -> (c,)``, gains
    over the base score ``base`` (c,), as ``best``); a target stays active while its gain
    improves by more than 256 ulps of the score and ``k`` is within its edge's bound
    (``max_steps`` (2,): down, up). Returns the chosen alpha (c,), its gain (c,) and the
    signed step count (c,): ``-k`` for ``lo/2^k``,
    ``+k`` for ``hi*2^k``, 0 for the grid alpha.
    """
    lo, hi = jnp.min(alphas), jnp.max(alphas)
    grid_alpha = alphas[best_idx]
    down = grid_alpha <= lo
    up = (grid_alpha >= hi) & ~down
    eps = jnp.finfo(best.dtype).eps

    def cond(w: _Walk):
        return (w.k <= MAX_EXTEND_STEPS) & jnp.any(w.act_dn | w.act_up)

    def step(w: _Walk) -> _Walk:
        a = jnp.where(w.act_dn, w.a_dn, w.a_up)
        s = scores_of(a, w.act_dn | w.act_up)
        better = s > w.best + 256 * eps * jnp.maximum(1.0, jnp.abs(base + w.best))
        imp_dn, imp_up = w.act_dn & better, w.act_up & better
        imp = imp_dn | imp_up
        return _Walk(w.k + 1, w.a_dn * 0.5, w.a_up * 2.0, jnp.where(imp, a, w.alpha),
                     jnp.where(imp, s, w.best),
                     jnp.where(imp_dn, -w.k, jnp.where(imp_up, w.k, w.steps)),
                     imp_dn & (w.k + 1 <= max_steps[0]), imp_up & (w.k + 1 <= max_steps[1]))

    init = _Walk(jnp.int32(1), lo * 0.5, hi * 2.0, grid_alpha, best,
                 jnp.zeros(best.shape, jnp.int32), down & (max_steps[0] >= 1),
                 up & (max_steps[1] >= 1))
    w = lax.while_loop(cond, step, init)
    return w.alpha, w.best, w.steps


def _layer_chunk(inner, outer, Yc, tr, te, groups, alphas, max_steps, *, cv_solver,
                 fit_solver, score, fit_intercept, extend, block):
    """One layer on one chunk of targets ``Yc`` (n_stimuli, c): grid index (c,), signed
    extension steps (c,), inner-CV gain (c,) of the chosen alpha over the base score (c,)
    (the inner-CV score of the training mean, see :class:`~alignjax.ridge.solvers.Scorer`)
    and outer-test predictions (n_test, c)."""
    n_folds = sum(tr_g.shape[0] for tr_g, _ in groups)
    Ytr = Yc[tr]
    kw = dict(solver=cv_solver, score=score, fit_intercept=fit_intercept)
    cv = _grid_scores(inner, groups, Ytr, alphas, **kw) / n_folds
    base, gain = cv[0], cv[1:]
    idx = pick_alpha(gain, base, alphas, unit=score.unit, eps=float(jnp.finfo(Yc.dtype).eps))
    best = jnp.take_along_axis(gain, idx[None], axis=0)[0]
    alpha, steps = alphas[idx], jnp.zeros(idx.shape, jnp.int32)
    if extend:
        def scores_of(a, active):
            fold_sum = partial(_alpha_scores, inner, groups, **kw)
            return _active_scores(fold_sum, Ytr, a, active, block) / n_folds

        alpha, best, steps = _extend(scores_of, alphas, idx, best, base, max_steps)
    Yo_tr, _, m = centre_split(Yc, tr, te, fit_intercept)
    pred = predict_chunk(outer, Yo_tr, alpha, solver=fit_solver) + m
    return idx.astype(jnp.int32), steps, best, base, pred


def _layer_targets(inner, outer, Y, te, *, chunk, layer_chunk):
    """One layer on one shard of targets ``Y``, chunk by chunk, from its decompositions."""
    t = Y.shape[1]

    def body(start, out):
        res = layer_chunk(inner, outer, lax.dynamic_slice_in_dim(Y, start, chunk, axis=1))
        return tuple(lax.dynamic_update_slice_in_dim(o, r, start, axis=o.ndim - 1)
                     for o, r in zip(out, res))

    init = (jnp.zeros((t,), jnp.int32), jnp.zeros((t,), jnp.int32), jnp.zeros((t,), Y.dtype),
            jnp.zeros((t,), Y.dtype), jnp.zeros((te.shape[0], t), Y.dtype))
    return chunk_loop(body, t, chunk, init)


def _in_batches(fn, xs, batch: int):
    """``fn`` (a function of a batch of layers) over ``xs`` in batches of ``batch`` layers
    run in sequence, its results concatenated."""
    n = xs.shape[0]
    n_full = n // batch
    parts = []
    if n_full:
        out = lax.map(fn, xs[:n_full * batch].reshape(n_full, batch, *xs.shape[1:]))
        parts.append(jax.tree.map(lambda o: o.reshape(n_full * batch, *o.shape[2:]), out))
    if n % batch:
        parts.append(fn(xs[n_full * batch:]))
    return jax.tree.map(lambda *o: jnp.concatenate(o), *parts) if len(parts) > 1 else parts[0]


def layers_fold_local(Xs, Y, tr, te, groups, alphas, max_steps, *, cv_solver: FoldSolver,
                      fit_solver: FoldSolver, score: Callable, fit_intercept: bool,
                      standardize: bool, extend: bool, chunk: int, block: int,
                      layer_batch: int, serial: bool):
    """One outer fold of a stack of layers on one shard of targets.

    Parameters
    ----------
    Xs : array (n_layers, n_stimuli, n_features)
    Y : array (n_stimuli, n_targets)
    tr, te : int arrays (n_train,), (n_test,)
        Outer-training and outer-test rows.
    groups : tuple
        The inner folds (indices into ``tr``) grouped by training size (``fold_groups``).
    alphas : array (n_alphas,)
    max_steps : int array (2,)
        Bounds of the edge extension's halving and doubling steps.
    layer_batch : int
        Layers vmapped together (the batches run in sequence); never changes a result.
    serial : bool
        Decompose the layers and folds one at a time (on CPU, see :func:`_map`).

    Returns
    -------
    grid index, signed extension steps, inner-CV gain, inner-CV base score : arrays
        (n_layers, n_targets)
    prediction : array (n_layers, n_test, n_targets)
    """
    layer_chunk = partial(_layer_chunk, tr=tr, te=te, groups=groups, alphas=alphas,
                          max_steps=max_steps, cv_solver=cv_solver, fit_solver=fit_solver,
                          score=score, fit_intercept=fit_intercept, extend=extend,
                          block=block)
    opts = dict(fit_intercept=fit_intercept, standardize=standardize)

    def batch_of_layers(Xb):
        # the decompositions one layer at a time on CPU (see _map), the rest vmapped
        inner = _map(partial(_inner_factors, tr=tr, groups=groups, solver=cv_solver,
                             serial=serial, **opts), Xb, not serial)
        outer = _map(partial(_outer_factors, tr=tr, te=te, solver=fit_solver, **opts), Xb,
                     not serial)
        targets = partial(_layer_targets, Y=Y, te=te, chunk=chunk, layer_chunk=layer_chunk)
        return jax.vmap(targets)(inner, outer)

    return _in_batches(batch_of_layers, Xs, layer_batch)


def folds_layers_local(Xs, Y, tr, te, groups, alphas, max_steps, **options):
    """A batch of outer folds of the same shapes in one pass: :func:`layers_fold_local`
    with ``tr`` (n_batch, n_train), ``te`` (n_batch, n_test) and every array of ``groups``
    stacked over the folds, vmapped (one at a time when ``serial``, see :func:`_map`);
    every output gains a leading fold axis."""
    def one(fold):
        tr_f, te_f, groups_f = fold
        return layers_fold_local(Xs, Y, tr_f, te_f, groups_f, alphas, max_steps, **options)

    return _map(one, (tr, te, groups), not options["serial"])


_STATIC = ("cv_solver", "fit_solver", "score", "fit_intercept", "standardize", "extend",
           "chunk", "block", "layer_batch", "serial")
_IN = (P(), P(None, "t"), P(), P(), P(), P(), P())
_LT, _LTT = P(None, "t"), P(None, None, "t")
#: One outer fold of a stack of layers (:func:`layers_fold_local`), sharded over targets:
#: ``layers_fold_pass(Xs, Y, tr, te, groups, alphas, max_steps, *, cv_solver, fit_solver,
#: score, fit_intercept, standardize, extend, chunk, block, layer_batch, serial, devices)``.
layers_fold_pass = sharded(layers_fold_local, _IN, (_LT, _LT, _LT, _LT, _LTT), _STATIC)
#: A batch of outer folds (:func:`folds_layers_local`), sharded over targets; same call.
folds_layers_pass = sharded(folds_layers_local, _IN,
                            (_LTT, _LTT, _LTT, _LTT, P(None, None, None, "t")), _STATIC)
