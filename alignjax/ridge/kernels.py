"""The device side of ridge: chunked per-shard bodies, the CV solver registry, and the
jitted, target-sharded passes built from them by one helper (:func:`sharded`).

Every body works on the targets of one device (a shard of the columns of ``Y``), in
chunks of ``chunk`` targets, so memory stays bounded; neither the chunk size nor the
number of devices changes a result beyond floating-point rounding.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

from .solvers import FOLD_SOLVERS, Factors, FoldSolver, Scorer, full_kernel_eig, \
    standardize_stats

__all__ = ["CV_SOLVERS", "cv_pass", "predict_pass", "refit_pass", "full_eig", "use_hat",
           "mesh", "cv_local", "refit_local", "chunk_loop", "centre_global", "centre_split",
           "grid_operator", "grid_chunk_scores", "predict_chunk", "sharded"]


def chunk_loop(body, n_targets: int, chunk: int, init):
    """Run ``body(start, carry)`` over target chunks with a fori_loop."""
    n_chunks = n_targets // chunk
    if n_chunks == 1:
        return body(0, init)
    return lax.fori_loop(0, n_chunks, lambda c, acc: body(c * chunk, acc), init)


def centre_split(Yc, tr, te, fit_intercept):
    """Training and test rows of the targets ``Yc``, centred with the training mean ``m``."""
    Ytr, Yte = Yc[tr], Yc[te]
    if fit_intercept:
        m = jnp.mean(Ytr, axis=0)
        return Ytr - m, Yte - m, m
    return Ytr, Yte, jnp.zeros((Yc.shape[1],), Yc.dtype)


def _y_split(Y, tr, te, start, chunk, fit_intercept):
    return centre_split(lax.dynamic_slice_in_dim(Y, start, chunk, axis=1), tr, te,
                         fit_intercept)


def use_hat(rows: int, r: int, n_train: int, t: int) -> bool:
    """Predict ``rows`` (alphas x test rows) of ``t`` targets through the operator
    (rows, n_train), formed once, rather than through the rank-``r`` factors."""
    return rows * r * n_train + rows * n_train * t < r * n_train * t + rows * r * t


def _computed_once(x, token):
    """``x``, materialised before its consumers.

    XLA:CPU fuses small producers (an operator built from a matmul, a centred gather) into
    the YNNPACK matmul that consumes them, which then recomputes them tile by tile (1.4x
    slower ridge_cv on workload (a)); ``lax.optimization_barrier`` does not survive its
    passes, a conditional does (with two distinct branches: ``x``, or NaN where ``token``,
    a traced scalar of the same computation, is already NaN).
    """
    return lax.cond(jnp.isnan(token), lambda: jnp.full_like(x, jnp.nan), lambda: x)


def centre_global(X, fit_intercept):
    # a global shift changes nothing when the intercept is fitted, and improves rounding
    return X - jnp.mean(X, axis=0) if fit_intercept else X


# --------------------------------------------------------------------------- one fold


def fold_grid_scores(Xg, K, Y, tr, te, alphas, *, solver: FoldSolver, score: Scorer,
                     fit_intercept: bool, standardize: bool, chunk: int):
    """Base and gains (1 + n_alphas, n_targets) of every grid alpha on one fold (see
    :func:`grid_chunk_scores`), for all local targets."""
    F = solver.decompose(Xg, K, tr, te, fit_intercept=fit_intercept, standardize=standardize)
    t = Y.shape[1]
    grid = grid_operator(F, alphas, solver=solver, n_targets=t)

    def body(start, out):
        Ytr, Yte, _ = _y_split(Y, tr, te, start, chunk, fit_intercept)
        sc = grid_chunk_scores(grid, F, Ytr, Yte, score=score)
        return lax.dynamic_update_slice_in_dim(out, sc, start, axis=1)

    return chunk_loop(body, t, chunk, jnp.zeros((1 + alphas.shape[0], t), Y.dtype))


class GridOperator(NamedTuple):
    """Predictions of every grid alpha on one fold's test rows: ``op @ Ytr`` (``hat``) or
    ``op @ (U^T Ytr)``, reshaped to (n_alphas, n_test, n_targets)."""

    op: jax.Array
    hat: bool
    n_alphas: int


def grid_operator(F: Factors, alphas, *, solver: FoldSolver, n_targets: int) -> GridOperator:
    """The operator of :class:`GridOperator` for the factors ``F`` of one fold.

    ``U^T`` is folded into the (alphas x test rows, n_train) operator where that costs
    fewer flops than the (r, n_train) x (n_train, n_targets) product on every chunk.
    """
    n_te, r = F.A.shape
    n_alphas = alphas.shape[0]
    D = solver.shrink(F.spec, F.keep, alphas[:, None])  # (n_alphas, r)
    AD = (F.A[None] * D[:, None, :]).reshape(n_alphas * n_te, r)
    hat = use_hat(n_alphas * n_te, r, F.U.shape[0], n_targets)
    return GridOperator(_computed_once(AD @ F.U.T if hat else AD, F.spec[0]), hat, n_alphas)


def grid_chunk_scores(grid: GridOperator, F: Factors, Ytr, Yte, *, score: Scorer):
    """One fold's scores of every grid alpha, from centred responses, as (1 + n_alphas,
    chunk): row 0 the score of the zero prediction (the training mean), then the gain of
    each alpha's prediction over it (the score is their sum, see :class:`Scorer`)."""
    Ytr = _computed_once(Ytr, F.spec[0])
    pred = grid.op @ (Ytr if grid.hat else F.U.T @ Ytr)
    gain = score.gain(pred.reshape(grid.n_alphas, Yte.shape[0], Yte.shape[1]), Yte)
    return jnp.concatenate([score.base(Yte)[None], gain])


def predict_chunk(F: Factors, Ytr, alpha, *, solver: FoldSolver):
    """Predictions (n_test, chunk) of centred responses ``Ytr`` (n_train, chunk) with
    per-target ``alpha`` (chunk,), without the training mean."""
    D = solver.shrink(F.spec[:, None], F.keep[:, None], alpha[None, :])  # (r, chunk)
    return F.A @ (D * (F.U.T @ Ytr))


def fold_predict(Xg, K, Y, tr, te, alpha, *, solver: FoldSolver, fit_intercept: bool,
                 standardize: bool, chunk: int):
    """Predictions (n_test, n_targets) of rows ``te`` from a fit on rows ``tr`` with
    per-target ``alpha`` (n_targets,)."""
    F = solver.decompose(Xg, K, tr, te, fit_intercept=fit_intercept, standardize=standardize)
    t = Y.shape[1]

    def body(start, out):
        Ytr, _, m = _y_split(Y, tr, te, start, chunk, fit_intercept)
        a = lax.dynamic_slice_in_dim(alpha, start, chunk)
        pred = predict_chunk(F, Ytr, a, solver=solver)
        return lax.dynamic_update_slice_in_dim(out, pred + m, start, axis=1)

    return chunk_loop(body, t, chunk, jnp.zeros((F.A.shape[0], t), Y.dtype))


# --------------------------------------------------------------------------- CV solvers


def solve_ridge_cv_folds(X, Y, groups, alphas, eig=None, *, solver: FoldSolver,
                         score: Scorer, fit_intercept: bool, standardize: bool, chunk: int):
    """Base and gains (1 + n_alphas, n_targets) summed over folds (see
    :func:`grid_chunk_scores`), one decomposition per training fold.

    ``groups``: folds grouped by training size, tuples of (train idx (g, n_tr), test idx
    (g, n_te)); ``eig`` is unused.
    """
    Xg = centre_global(X, fit_intercept)
    K = solver.kernel(Xg, standardize=standardize)
    kw = dict(solver=solver, score=score, fit_intercept=fit_intercept,
              standardize=standardize, chunk=chunk)
    total = None
    for tr_g, te_g in groups:  # at most two groups (training sizes differ by one)
        # a fori_loop over the folds keeps one fold's decomposition in memory at a time.
        # (vmap over folds is faster on CPU but deadlocks XLA:CPU with several forced host
        # devices: batched eigh/svd calls wait on its thread pool from inside it, see
        # nested._map.)
        def fold(f, acc, tr_g=tr_g, te_g=te_g):
            return acc + fold_grid_scores(Xg, K, Y, tr_g[f], te_g[f], alphas, **kw)

        init = jnp.zeros((1 + alphas.shape[0], Y.shape[1]), Y.dtype)
        part = lax.fori_loop(0, tr_g.shape[0], fold, init)
        total = part if total is None else total + part
    return total


def solve_ridge_cv_svd(X, Y, groups, alphas, eig=None, *, score, fit_intercept, standardize,
                       chunk):
    """K-fold CV scores from a thin SVD of each training fold (primal form)."""
    return solve_ridge_cv_folds(X, Y, groups, alphas, eig, solver=FOLD_SOLVERS["svd"],
                                score=score, fit_intercept=fit_intercept,
                                standardize=standardize, chunk=chunk)


def solve_ridge_cv_eigh(X, Y, groups, alphas, eig=None, *, score, fit_intercept, standardize,
                        chunk):
    """K-fold CV scores from an eigendecomposition of each training fold's kernel (dual)."""
    return solve_ridge_cv_folds(X, Y, groups, alphas, eig, solver=FOLD_SOLVERS["eigh"],
                                score=score, fit_intercept=fit_intercept,
                                standardize=standardize, chunk=chunk)


def solve_ridge_cv_eigh_full(X, Y, groups, alphas, eig=None, *, score, fit_intercept,
                             standardize=False, chunk):
    """K-fold CV scores of all alphas from ONE eigendecomposition of the full kernel.

    For penalised least squares (ridge, with an unpenalised intercept when
    ``fit_intercept``), the residuals of held-out rows T of a fit without them are exactly
    ``e_T = (G_TT)^-1 (G Y)_T`` with ``G = I - H`` the residual-maker of the fit on all
    stimuli; in the kernel eigenbasis ``G = U diag(alpha / (lam + alpha)) U^T`` (plus the
    null space). The held-out predictions, as deviations from the training rows' mean
    ``m``, follow without forming ``y_T - e_T`` (which cancels when heavy shrinkage makes
    them nearly constant): with ``G 1 = 0`` and ``y - m`` summing to zero over the training
    rows, ``pred_T - m = (G_TT)^-1 U_T diag(lam / (lam + alpha)) (U^T y - U_T^T (y_T - m))``.
    Returns the base score and the gains (see :func:`grid_chunk_scores`) summed over
    folds, (1 + n_alphas, n_targets). ``eig``: the result of :func:`full_kernel_eig`, or
    None to compute it here. Cannot standardise per fold.
    """
    U, lam = full_kernel_eig(X, fit_intercept) if eig is None else eig
    den = lam[None, :] + alphas[:, None]
    g = alphas[:, None] / den  # (n_alphas, r)
    h = lam[None, :] / den  # 1 - g, without cancelling
    facs = []
    for _, te_g in groups:
        UT = U[te_g]  # (f, m, r)
        M = jnp.einsum("fmr,ar,fkr->famk", UT, g, UT)
        facs.append((te_g, UT, jax.scipy.linalg.lu_factor(M)))
    n_alphas = alphas.shape[0]
    n, t = Y.shape
    solve = jax.vmap(lambda l, p_, b: jax.scipy.linalg.lu_solve((l, p_), b))

    def held_out(Yc):  # test rows per fold group as deviations from the training mean
        total = jnp.sum(Yc, axis=0)
        out = []
        for te_g, _, _ in facs:
            yT = Yc[te_g]  # (f, m, chunk)
            if fit_intercept:
                yT = yT - ((total - jnp.sum(yT, axis=1)) / (n - te_g.shape[1]))[:, None]
            out.append(yT)
        return out

    def body(start, out):
        Yc = lax.dynamic_slice_in_dim(Y, start, chunk, axis=1)
        B = U.T @ Yc  # (r, chunk); U is orthogonal to the constant with an intercept
        yTs = held_out(Yc)
        # U_Tc^T (y_Tc - m) per fold: the training rows' part of B
        Cs = [B[None] - jnp.einsum("fmr,fmc->frc", UT, yT)
              for (_, UT, _), yT in zip(facs, yTs)]

        def per_alpha(a):
            tot = jnp.zeros((chunk,), Y.dtype)
            for (_, UT, (lu, piv)), yT, C in zip(facs, yTs, Cs):
                rhs = jnp.einsum("fmr,frc->fmc", UT, h[a][None, :, None] * C)
                pred = solve(lu[:, a], piv[:, a], rhs)  # (f, m, chunk), deviations from m
                tot = tot + jnp.sum(score.gain(pred, yT), axis=0)
            return tot

        base = sum(jnp.sum(score.base(yT), axis=0) for yT in yTs)
        sc = lax.map(per_alpha, jnp.arange(n_alphas))
        return lax.dynamic_update_slice_in_dim(out, jnp.concatenate([base[None], sc]), start,
                                               axis=1)

    return chunk_loop(body, t, chunk, jnp.zeros((1 + n_alphas, t), Y.dtype))


#: CV solvers by name (the ``solver=`` option of :func:`alignjax.ridge_cv`); each returns
#: the base score and the gain of every grid alpha summed over folds, (1 + n_alphas,
#: n_targets) on one shard (see :func:`grid_chunk_scores`).
CV_SOLVERS: dict[str, Callable] = {"svd": solve_ridge_cv_svd, "eigh": solve_ridge_cv_eigh,
                                   "eigh_full": solve_ridge_cv_eigh_full}


# --------------------------------------------------------------------------- fits


def predict_local(X, Y, tr, te, alpha, *, solver: FoldSolver, fit_intercept, standardize,
                  chunk):
    """Per-target-alpha predictions of held-out rows ``te`` from a fit on rows ``tr``."""
    Xg = centre_global(X, fit_intercept)
    K = solver.kernel(Xg, standardize=standardize)
    return fold_predict(Xg, K, Y, tr, te, alpha, solver=solver, fit_intercept=fit_intercept,
                        standardize=standardize, chunk=chunk)


def _refit_features(X, fit_intercept, standardize):
    """Centred (or z-scored) features with their mean, scale and constant mask."""
    p = X.shape[1]
    if standardize:
        mu, sd, const = standardize_stats(X)
        return jnp.where(const, 0.0, (X - mu) / sd), mu, sd, const
    if fit_intercept:
        mu = jnp.mean(X, axis=0)
        return X - mu, mu, jnp.ones((p,), X.dtype), jnp.zeros((p,), bool)
    return X, jnp.zeros((p,), X.dtype), jnp.ones((p,), X.dtype), jnp.zeros((p,), bool)


def refit_local(X, Y, alpha, eig=None, *, solver: FoldSolver, fit_intercept, standardize,
                chunk):
    """Refit on all rows with per-target alphas -> coef (n_features, t), intercept (t,).

    ``eig``: the full kernel's eigendecomposition (:func:`full_kernel_eig`) when the CV
    pass already computed it (kernel form without standardisation).
    """
    p = X.shape[1]
    t = Y.shape[1]
    Xc, mu, sd, const = _refit_features(X, fit_intercept, standardize)
    U, spec, keep, back = solver.basis(Xc, eig)  # back (p, r): spectral -> coefficients

    def body(start, carry):
        coef, icpt = carry
        Yc = lax.dynamic_slice_in_dim(Y, start, chunk, axis=1)
        m = jnp.mean(Yc, axis=0) if fit_intercept else jnp.zeros((chunk,), Y.dtype)
        a = lax.dynamic_slice_in_dim(alpha, start, chunk)
        D = solver.shrink(spec[:, None], keep[:, None], a[None, :])
        w = back @ (D * (U.T @ (Yc - m)))
        w = jnp.where(const[:, None], 0.0, w / sd[:, None])
        b = m - mu @ w if fit_intercept or standardize else jnp.zeros((chunk,), Y.dtype)
        return (lax.dynamic_update_slice_in_dim(coef, w, start, axis=1),
                lax.dynamic_update_slice_in_dim(icpt, b, start, axis=0))

    init = (jnp.zeros((p, t), Y.dtype), jnp.zeros((t,), Y.dtype))
    return chunk_loop(body, t, chunk, init)


# --------------------------------------------------------------------------- sharding


def mesh(devices) -> Mesh:
    """A one-axis mesh ``"t"`` (targets) over ``devices``."""
    return Mesh(np.asarray(devices, dtype=object), ("t",))


def sharded(local: Callable, in_specs: tuple, out_specs, static: tuple):
    """``jit(shard_map(local))`` over the targets axis ``"t"``.

    The returned function takes ``local``'s array arguments (a trailing ``None``, e.g. an
    absent shared eigendecomposition, is dropped; extra arguments are replicated), the
    keyword options named in ``static`` and ``devices`` (a tuple), all static.
    """

    def run(*args, devices, **options):
        while args and args[-1] is None:
            args = args[:-1]
        specs = tuple(in_specs) + (P(),) * (len(args) - len(in_specs))
        f = jax.shard_map(partial(local, **options), mesh=mesh(devices), in_specs=specs,
                          out_specs=out_specs, check_vma=False)
        return f(*args)

    run.__name__ = run.__qualname__ = local.__name__.replace("_local", "_pass")
    return jax.jit(run, static_argnames=tuple(static) + ("devices",))


def cv_local(X, Y, groups, alphas, eig=None, *, cv_solver: Callable, score, fit_intercept,
             standardize, chunk):
    """Base and grid gains (1 + n_alphas, t) summed over folds on one shard of targets."""
    return cv_solver(X, Y, groups, alphas, eig, score=score, fit_intercept=fit_intercept,
                     standardize=standardize, chunk=chunk)


_T = P(None, "t")
#: Base and grid gains summed over folds (1 + n_alphas, n_targets): ``cv_pass(X, Y, groups, alphas,
#: eig=None, *, cv_solver, score, fit_intercept, standardize, chunk, devices)``.
cv_pass = sharded(cv_local, (P(), _T, P(), P()), _T,
                  ("cv_solver", "score", "fit_intercept", "standardize", "chunk"))
#: Predictions (n_test, n_targets): ``predict_pass(X, Y, tr, te, alpha, *, solver, ...)``.
predict_pass = sharded(predict_local, (P(), _T, P(), P(), P("t")), _T,
                       ("solver", "fit_intercept", "standardize", "chunk"))
#: ``(coef, intercept)``: ``refit_pass(X, Y, alpha, eig=None, *, solver, ...)``.
refit_pass = sharded(refit_local, (P(), _T, P("t")), (_T, P("t")),
                     ("solver", "fit_intercept", "standardize", "chunk"))
#: The eigendecomposition of the full (centred) kernel, shared by the "eigh_full" CV pass
#: and the refit on all stimuli.
full_eig = jax.jit(full_kernel_eig, static_argnames=("fit_intercept",))
