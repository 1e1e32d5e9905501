"""Closed-form multi-alpha ridge regression with per-target cross-validated alphas.

Every alpha of a grid and every target come from **one decomposition per training fold**:

- primal (``n_train >= n_features``): thin SVD ``X_train = U diag(s) V^T``; the ridge
  solution for ``alpha`` is ``V diag(s / (s^2 + alpha)) U^T Y``;
- dual / kernel (``n_train < n_features``): eigendecomposition of the linear kernel
  ``K_train = X_train X_train^T = U diag(lam) U^T``; predictions on held-out rows are
  ``K_test,train U diag(1 / (lam + alpha)) U^T Y`` (the kernel is computed once for all
  stimuli and re-centred per fold).

- full kernel (``n_train < n_features`` and at least 1024 stimuli): ONE eigendecomposition
  of the kernel of all stimuli serves every fold, through the exact held-out residuals of
  penalised least squares ``e_T = (G_TT)^-1 (G Y)_T`` with ``G = I - H`` the residual
  maker of the fit on all stimuli (``G = U diag(alpha / (lam + alpha)) U^T``).

The per-fold forms give the predictions on a test fold as ``A diag(d_alpha) B`` with ``A`` (n_test, r)
fixed per fold, ``B = U^T Y_train`` (r, n_targets) one big matmul per chunk of targets and
``d_alpha`` a vector per alpha, so a whole alpha grid costs one batched matmul and no
per-alpha solve. Directions whose singular value (eigenvalue) is below the numerical rank
threshold are dropped, as in a pseudo-inverse.

Targets are processed in chunks (memory-bounded, chunk chosen from the available memory by
default) and sharded across the local devices with :func:`jax.shard_map`; neither the
chunk size nor the number of devices changes a result beyond floating-point rounding.

References
----------
himalaya (Dupre la Tour et al. 2022), ``solve_ridge_cv_svd`` and ``KernelRidgeCV``;
scikit-learn ``Ridge``/``RidgeCV``; alpha-grid edge extension as in Pepino et al.
"""

from __future__ import annotations

import math
import os
from functools import partial
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ._runtime import float32_matmuls, serial_lapack
from ._validation import (
    InvalidOptionError,
    ShapeMismatchError,
    as_float_array,
    check_choice,
    check_finite,
)
from .folds import resolve_folds

__all__ = ["ridge_cv", "RidgeCVResult", "ridge_fit", "ridge_predict_folds", "check_alphas",
           "SCORES", "ALPHA_MIN", "ALPHA_MAX"]

SCORES = ("r2", "pearson", "neg_mse")
SOLVERS = ("auto", "svd", "eigh", "eigh_full")
#: From this many stimuli on, the kernel form uses one eigendecomposition of the full
#: kernel for all folds ("eigh_full") instead of one per training fold.
_FULL_EIGH_MIN_STIMULI = 1024
#: Bounds of the alpha-grid edge extension (Pepino et al.).
ALPHA_MIN, ALPHA_MAX = 1e-49, 1e50
_MAX_EXTEND_STEPS = 400


class RidgeCVResult(NamedTuple):
    """Result of :func:`ridge_cv`.

    Attributes
    ----------
    best_alpha : array (n_targets,)
        Alpha chosen per target (off the grid when ``extend_alphas`` moved it).
    cv_scores : array (n_alphas, n_targets)
        Cross-validated score of each grid alpha, averaged over folds.
    coef : array (n_features, n_targets)
        Coefficients refit on all stimuli with each target's alpha.
    intercept : array (n_targets,)
        Intercepts (zeros with ``fit_intercept=False``).
    alphas : array (n_alphas,)
        The alpha grid (rows of ``cv_scores``).
    best_score : array (n_targets,)
        Cross-validated score at ``best_alpha``.
    """

    best_alpha: jax.Array
    cv_scores: jax.Array
    coef: jax.Array
    intercept: jax.Array
    alphas: jax.Array
    best_score: jax.Array


# --------------------------------------------------------------------------- helpers


def _float_dtype():
    return jnp.asarray(0.0).dtype


def check_alphas(alphas, *, name: str = "alphas") -> np.ndarray:
    """Validate an alpha grid: 1-D, finite, strictly positive."""
    a = np.atleast_1d(as_float_array(alphas, name))
    if a.ndim != 1 or a.size == 0:
        raise InvalidOptionError(f"{name} must be a non-empty 1-D sequence of positive numbers, "
                                 f"got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InvalidOptionError(f"{name} must be finite, got {a.tolist()[:10]}")
    if np.any(a <= 0):
        raise InvalidOptionError(
            f"{name} must be strictly positive (got {a[a <= 0].tolist()[:5]}); ridge needs "
            "alpha > 0, e.g. np.logspace(-2, 6, 9)")
    return a


def _available_memory() -> int:
    """Available host memory in bytes (MemAvailable), or a conservative 4 GiB."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    try:  # pragma: no cover
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 4 << 30


def _device_memory(device) -> int:
    try:
        stats = device.memory_stats()
        if stats and "bytes_limit" in stats:
            return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    except Exception:  # pragma: no cover - CPU devices have no stats
        pass
    return _available_memory()


def default_target_chunk(n_stimuli: int, n_features: int, n_alphas: int, n_targets: int,
                         *, itemsize: int = 4, n_devices: int = 1, device=None) -> int:
    """Targets per chunk so a chunk's temporaries use at most ~1/8 of the free memory.

    Counts, per target, the training/test responses and spectral products of up to 12
    folds batched together, the predictions of every alpha on all test rows (three
    temporaries) and the refit coefficients.
    """
    mem = _device_memory(device) if device is not None else _available_memory()
    r = min(n_stimuli, n_features)
    per_target = itemsize * (12 * (n_stimuli + r) + n_features + 3 * n_alphas * n_stimuli
                             + 4 * n_alphas)
    fixed = itemsize * (4 * n_stimuli * r + 2 * n_stimuli * n_features + 2 * n_stimuli * n_stimuli)
    budget = max(mem // 8 - fixed, 64 << 20)
    chunk = int(budget // per_target)
    per_device = -(-n_targets // n_devices)
    return int(max(1, min(chunk, per_device, 65536)))


def _score(pred, y, score: str):
    """Score predictions (..., n_test, c) against y (n_test, c) -> (..., c)."""
    if score == "neg_mse":
        return -jnp.mean((y - pred) ** 2, axis=-2)
    if score == "r2":
        ss_res = jnp.sum((y - pred) ** 2, axis=-2)
        yc = y - jnp.mean(y, axis=-2, keepdims=True)
        ss_tot = jnp.sum(yc ** 2, axis=-2)
        ok = ss_tot > 0
        return jnp.where(ok, 1.0 - ss_res / jnp.where(ok, ss_tot, 1.0), 0.0)
    # pearson
    pc = pred - jnp.mean(pred, axis=-2, keepdims=True)
    yc = y - jnp.mean(y, axis=-2, keepdims=True)
    num = jnp.sum(pc * yc, axis=-2)
    den = jnp.sqrt(jnp.sum(pc ** 2, axis=-2) * jnp.sum(yc ** 2, axis=-2))
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def _standardize_stats(Xtr):
    mu = jnp.mean(Xtr, axis=0)
    sd = jnp.std(Xtr, axis=0)
    eps = jnp.finfo(Xtr.dtype).eps
    const = sd <= 100 * eps * jnp.maximum(jnp.abs(mu), jnp.finfo(Xtr.dtype).tiny)
    return mu, jnp.where(const, 1.0, sd), const


def _decompose(Xg, K, tr, te, *, mode: str, fit_intercept: bool, standardize: bool):
    """One training fold's decomposition.

    Returns ``U`` (n_train, r), ``spec`` (r,) singular values (primal) or eigenvalues
    (dual), ``keep`` (r,) numerical-rank mask, ``A`` (n_test, r) the test-side factor.
    """
    Xtr = Xg[tr]
    Xte = Xg[te]
    n_tr, p = Xtr.shape
    eps = jnp.finfo(Xtr.dtype).eps
    use_kernel = mode == "eigh" and K is not None and not standardize
    if standardize:
        mu, sd, const = _standardize_stats(Xtr)
        Xtr = jnp.where(const, 0.0, (Xtr - mu) / sd)
        Xte = jnp.where(const, 0.0, (Xte - mu) / sd)
    elif fit_intercept and not use_kernel:
        mu = jnp.mean(Xtr, axis=0)
        Xtr = Xtr - mu
        Xte = Xte - mu
    if mode == "svd":
        U, s, Vt = jnp.linalg.svd(Xtr, full_matrices=False)
        keep = s > s[0] * max(n_tr, p) * eps
        A = Xte @ Vt.T
        return U, s, keep, A
    if use_kernel:
        Ktr = K[tr][:, tr]
        Kte = K[te][:, tr]
        if fit_intercept:  # centre with the training rows' mean (kernel centring)
            row_tr = jnp.mean(Ktr, axis=1)
            row_te = jnp.mean(Kte, axis=1)
            kbar = jnp.mean(row_tr)
            Ktr = Ktr - row_tr[:, None] - row_tr[None, :] + kbar
            Kte = Kte - row_te[:, None] - row_tr[None, :] + kbar
    else:
        Ktr = Xtr @ Xtr.T
        Kte = Xte @ Xtr.T
    Ktr = 0.5 * (Ktr + Ktr.T)
    lam, U = jnp.linalg.eigh(Ktr)
    keep = lam > jnp.max(lam) * n_tr * eps
    A = Kte @ U
    return U, lam, keep, A


def _dvals(spec, keep, alpha, mode: str):
    """Spectral ridge factors d(alpha): (..., r) for alpha (..., 1)."""
    if mode == "svd":
        d = spec / (spec ** 2 + alpha)
    else:
        d = 1.0 / (jnp.where(keep, spec, 0.0) + alpha)
    return jnp.where(keep, d, 0.0)


def _chunk_loop(body, n_targets: int, chunk: int, init):
    """Run ``body(start, carry)`` over target chunks with a fori_loop."""
    n_chunks = n_targets // chunk
    if n_chunks == 1:
        return body(0, init)
    return lax.fori_loop(0, n_chunks, lambda c, acc: body(c * chunk, acc), init)


def _y_split(Y, tr, te, start, chunk, fit_intercept):
    Yc = lax.dynamic_slice_in_dim(Y, start, chunk, axis=1)
    Ytr, Yte = Yc[tr], Yc[te]
    if fit_intercept:
        m = jnp.mean(Ytr, axis=0)
        return Ytr - m, Yte - m, m
    return Ytr, Yte, jnp.zeros((chunk,), Y.dtype)


def _use_hat(rows: int, r: int, n_train: int, t: int) -> bool:
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


def _fold_body(Xg, K, Y, tr, te, alpha, *, what: str, mode: str, score: str,
               fit_intercept: bool, standardize: bool, chunk: int):
    """Scores (or predictions) of one fold for all local targets.

    what = "grid": alpha (n_alphas,) -> scores (n_alphas, n_targets)
    what = "target": alpha (n_targets,) per-target -> scores (n_targets,)
    what = "predict": alpha (n_targets,) per-target -> predictions (n_test, n_targets)
    """
    U, spec, keep, A = _decompose(Xg, K, tr, te, mode=mode, fit_intercept=fit_intercept,
                                  standardize=standardize)
    n_te, r = A.shape
    t = Y.shape[1]
    if what == "grid":
        n_alphas = alpha.shape[0]
        D = _dvals(spec, keep, alpha[:, None], mode)  # (n_alphas, r)
        AD = (A[None] * D[:, None, :]).reshape(n_alphas * n_te, r)
        # fold U^T into the (alphas x test rows, n_train) operator once where that costs
        # fewer flops than the (r, n_train) x (n_train, chunk) product on every chunk
        hat = _use_hat(n_alphas * n_te, r, U.shape[0], t)
        op = _computed_once(AD @ U.T if hat else AD, spec[0])

        def body(start, out):
            Ytr, Yte, _ = _y_split(Y, tr, te, start, chunk, fit_intercept)
            Ytr = _computed_once(Ytr, spec[0])
            pred = (op @ (Ytr if hat else U.T @ Ytr)).reshape(n_alphas, n_te, chunk)
            return lax.dynamic_update_slice_in_dim(out, _score(pred, Yte, score), start, axis=1)

        return _chunk_loop(body, t, chunk, jnp.zeros((n_alphas, t), Y.dtype))

    def body(start, out):
        Ytr, Yte, m = _y_split(Y, tr, te, start, chunk, fit_intercept)
        a = lax.dynamic_slice_in_dim(alpha, start, chunk)
        D = _dvals(spec[:, None], keep[:, None], a[None, :], mode)  # (r, chunk)
        pred = A @ (D * (U.T @ Ytr))
        if what == "predict":
            return lax.dynamic_update_slice_in_dim(out, pred + m, start, axis=1)
        return lax.dynamic_update_slice_in_dim(out, _score(pred, Yte, score), start, axis=0)

    init = jnp.zeros((n_te, t) if what == "predict" else (t,), Y.dtype)
    return _chunk_loop(body, t, chunk, init)


def _kernel(Xg, *, mode, standardize):
    if mode == "eigh" and not standardize:
        return Xg @ Xg.T
    return None


def _centre_global(X, fit_intercept):
    # a global shift changes nothing when the intercept is fitted, and improves rounding
    return X - jnp.mean(X, axis=0) if fit_intercept else X


def _cv_local(X, Y, groups, alpha, eig=None, *, what, mode, score, fit_intercept,
              standardize, chunk):
    """Sum over folds of the per-fold output (grid/target scores), or predictions."""
    if mode == "eigh_full":
        return _shortcut_local(X, Y, groups, alpha, eig, score=score,
                               fit_intercept=fit_intercept, chunk=chunk)
    Xg = _centre_global(X, fit_intercept)
    K = _kernel(Xg, mode=mode, standardize=standardize)
    kw = dict(what=what, mode=mode, score=score, fit_intercept=fit_intercept,
              standardize=standardize, chunk=chunk)
    total = None
    for tr_g, te_g in groups:  # at most two groups (training sizes differ by one)
        # a fori_loop over the folds keeps one fold's decomposition in memory at a time.
        # (vmap over folds is faster on CPU but deadlocks XLA:CPU with several forced host
        # devices once the target-chunk loop runs inside it.)
        def fold(f, acc, tr_g=tr_g, te_g=te_g):
            return acc + _fold_body(Xg, K, Y, tr_g[f], te_g[f], alpha, **kw)

        shape = (alpha.shape[0], Y.shape[1]) if what == "grid" else (Y.shape[1],)
        part = lax.fori_loop(0, tr_g.shape[0], fold, jnp.zeros(shape, Y.dtype))
        total = part if total is None else total + part
    return total


def _full_kernel_eig(X, fit_intercept: bool):
    """Eigendecomposition of the (centred) linear kernel of all stimuli.

    With an intercept the kernel is written in an orthonormal basis of the complement of
    the constant vector (a Householder reflection), so every returned eigenvector is
    orthogonal to it and no cancellation against the constant direction is needed later.
    Returns ``U`` (n, r), eigenvalues ``lam`` (r,) with those below the numerical rank
    threshold set to 0.
    """
    n = X.shape[0]
    eps = jnp.finfo(X.dtype).eps
    if fit_intercept:
        Xg = X - jnp.mean(X, axis=0)
        K = Xg @ Xg.T
        v = jnp.ones((n,), X.dtype).at[0].add(jnp.sqrt(jnp.asarray(n, X.dtype)))
        c = v @ v
        w = K @ v
        HKH = K - (2 / c) * (v[:, None] * w[None, :] + w[:, None] * v[None, :]) \
            + (4 * (v @ w) / c ** 2) * (v[:, None] * v[None, :])
        Kq = HKH[1:, 1:]
        lam, Uq = jnp.linalg.eigh(0.5 * (Kq + Kq.T))
        Ue = jnp.concatenate([jnp.zeros((1, n - 1), X.dtype), Uq], axis=0)
        U = Ue - (2 / c) * v[:, None] * (v @ Ue)[None, :]
    else:
        K = X @ X.T
        lam, U = jnp.linalg.eigh(0.5 * (K + K.T))
    keep = lam > jnp.max(lam) * n * eps
    return U, jnp.where(keep, lam, 0.0)


def _shortcut_local(X, Y, groups, alpha, eig, *, score, fit_intercept, chunk):
    """K-fold CV scores of all alphas from ONE eigendecomposition of the full kernel.

    For penalised least squares (ridge, with an unpenalised intercept when
    ``fit_intercept``), the residuals of held-out rows T of a fit without them are exactly
    ``e_T = (G_TT)^-1 (G Y)_T`` with ``G = I - H`` the residual-maker of the fit on all
    stimuli; in the kernel eigenbasis ``G = U diag(alpha / (lam + alpha)) U^T`` (plus the
    null space). Summed scores over folds, (n_alphas, n_targets). ``eig``: the result of
    :func:`_full_kernel_eig`, or None to compute it here.
    """
    U, lam = _full_kernel_eig(X, fit_intercept) if eig is None else eig
    g = alpha[:, None] / (lam[None, :] + alpha[:, None])  # (n_alphas, r)
    facs = []
    for _, te_g in groups:
        UT = U[te_g]  # (f, m, r)
        M = jnp.einsum("fmr,ar,fkr->famk", UT, g, UT)
        facs.append((te_g, jax.scipy.linalg.lu_factor(M)))
    n_alphas = alpha.shape[0]
    t = Y.shape[1]

    def body(start, out):
        Yc = lax.dynamic_slice_in_dim(Y, start, chunk, axis=1)
        B = U.T @ Yc

        def per_alpha(a):
            GY = U @ (g[a][:, None] * B)  # (n, chunk)
            tot = jnp.zeros((chunk,), Y.dtype)
            for te_g, (lu, piv) in facs:
                rhs = GY[te_g]  # (f, m, chunk)
                e = jax.vmap(lambda l, p_, b: jax.scipy.linalg.lu_solve((l, p_), b))(
                    lu[:, a], piv[:, a], rhs)
                yT = Yc[te_g]
                tot = tot + jnp.sum(_score(yT - e, yT, score), axis=0)
            return tot

        sc = lax.map(per_alpha, jnp.arange(n_alphas))
        return lax.dynamic_update_slice_in_dim(out, sc, start, axis=1)

    return _chunk_loop(body, t, chunk, jnp.zeros((n_alphas, t), Y.dtype))


def _mesh(devices) -> Mesh:
    return Mesh(np.asarray(devices, dtype=object), ("t",))


@partial(jax.jit, static_argnames=("what", "mode", "score", "fit_intercept", "standardize",
                                   "chunk", "devices"))
def _cv_pass(X, Y, groups, alpha, eig=None, *, what, mode, score, fit_intercept, standardize,
             chunk, devices):
    body = partial(_cv_local, what=what, mode=mode, score=score, fit_intercept=fit_intercept,
                   standardize=standardize, chunk=chunk)
    a_spec = P() if what == "grid" else P("t")
    out_spec = P(None, "t") if what == "grid" else P("t")
    args, specs = _with_eig((X, Y, groups, alpha), (P(), P(None, "t"), P(), a_spec), eig)
    f = jax.shard_map(body, mesh=_mesh(devices), in_specs=specs, out_specs=out_spec,
                      check_vma=False)
    return f(*args)


def _with_eig(args, specs, eig):
    """Append a shared (replicated) eigendecomposition to shard_map arguments, if given."""
    return (args, specs) if eig is None else (args + (eig,), specs + (P(),))


#: The eigendecomposition of the full (centred) kernel, shared by the "eigh_full" CV pass
#: and the refit on all stimuli.
_full_eig = jax.jit(_full_kernel_eig, static_argnames=("fit_intercept",))


@partial(jax.jit, static_argnames=("what", "mode", "fit_intercept", "standardize", "chunk",
                                   "devices"))
def _predict_pass(X, Y, tr, te, alpha, *, what, mode, fit_intercept, standardize, chunk,
                  devices):
    """Per-target-alpha predictions of held-out rows ``te`` from a fit on rows ``tr``."""
    body = partial(_predict_local, mode=mode, fit_intercept=fit_intercept,
                   standardize=standardize, chunk=chunk)
    f = jax.shard_map(body, mesh=_mesh(devices), in_specs=(P(), P(None, "t"), P(), P(), P("t")),
                      out_specs=P(None, "t"), check_vma=False)
    return f(X, Y, tr, te, alpha)


def _predict_local(X, Y, tr, te, alpha, *, mode, fit_intercept, standardize, chunk):
    Xg = _centre_global(X, fit_intercept)
    K = _kernel(Xg, mode=mode, standardize=standardize)
    return _fold_body(Xg, K, Y, tr, te, alpha, what="predict", mode=mode, score="r2",
                      fit_intercept=fit_intercept, standardize=standardize, chunk=chunk)


def _refit_local(X, Y, alpha, eig=None, *, mode, fit_intercept, standardize, chunk):
    """Refit on all rows with per-target alphas -> coef (n_features, t), intercept (t,).

    ``eig``: the full kernel's eigendecomposition (:func:`_full_kernel_eig`) when the CV
    pass already computed it (kernel mode without standardisation).
    """
    n, p = X.shape
    t = Y.shape[1]
    eps = jnp.finfo(X.dtype).eps
    if standardize:
        mu, sd, const = _standardize_stats(X)
        Xc = jnp.where(const, 0.0, (X - mu) / sd)
    elif fit_intercept:
        mu = jnp.mean(X, axis=0)
        Xc = X - mu
        sd = jnp.ones((p,), X.dtype)
        const = jnp.zeros((p,), bool)
    else:
        Xc, mu, sd, const = X, jnp.zeros((p,), X.dtype), jnp.ones((p,), X.dtype), jnp.zeros((p,), bool)
    if mode == "svd":
        U, spec, Vt = jnp.linalg.svd(Xc, full_matrices=False)
        keep = spec > spec[0] * max(n, p) * eps
    elif eig is not None:
        U, spec = eig
        keep = spec > 0
    else:
        Kc = Xc @ Xc.T
        spec, U = jnp.linalg.eigh(0.5 * (Kc + Kc.T))
        keep = spec > jnp.max(spec) * n * eps

    back = Vt.T if mode == "svd" else Xc.T @ U  # (p, r): spectral -> coefficient space

    def body(start, carry):
        coef, icpt = carry
        Yc = lax.dynamic_slice_in_dim(Y, start, chunk, axis=1)
        m = jnp.mean(Yc, axis=0) if fit_intercept else jnp.zeros((chunk,), Y.dtype)
        a = lax.dynamic_slice_in_dim(alpha, start, chunk)
        D = _dvals(spec[:, None], keep[:, None], a[None, :], mode)
        w = back @ (D * (U.T @ (Yc - m)))
        w = jnp.where(const[:, None], 0.0, w / sd[:, None])
        b = m - mu @ w if fit_intercept or standardize else jnp.zeros((chunk,), Y.dtype)
        return (lax.dynamic_update_slice_in_dim(coef, w, start, axis=1),
                lax.dynamic_update_slice_in_dim(icpt, b, start, axis=0))

    init = (jnp.zeros((p, t), Y.dtype), jnp.zeros((t,), Y.dtype))
    return _chunk_loop(body, t, chunk, init)


@partial(jax.jit, static_argnames=("mode", "fit_intercept", "standardize", "chunk", "devices"))
def _refit_pass(X, Y, alpha, eig=None, *, mode, fit_intercept, standardize, chunk, devices):
    body = partial(_refit_local, mode=mode, fit_intercept=fit_intercept,
                   standardize=standardize, chunk=chunk)
    args, specs = _with_eig((X, Y, alpha), (P(), P(None, "t"), P("t")), eig)
    f = jax.shard_map(body, mesh=_mesh(devices), in_specs=specs,
                      out_specs=(P(None, "t"), P("t")), check_vma=False)
    return f(*args)


# --------------------------------------------------------------------------- host side


def _fold_groups(masks: np.ndarray):
    """Group folds by training size -> tuple of (train idx (g, n_tr), test idx (g, n_te))."""
    n_test = masks.sum(axis=1)
    groups = []
    for size in np.unique(n_test):
        sel = np.flatnonzero(n_test == size)
        tr = np.stack([np.flatnonzero(~masks[f]) for f in sel]).astype(np.int32)
        te = np.stack([np.flatnonzero(masks[f]) for f in sel]).astype(np.int32)
        groups.append((jnp.asarray(tr), jnp.asarray(te)))
    return tuple(groups)


def _pick_mode(solver: str, n_rows: int, n_features: int) -> str:
    if solver == "auto":
        return "svd" if n_rows >= n_features else "eigh"
    return "eigh" if solver == "eigh_full" else solver


def _pick_cv_mode(solver: str, n_train: int, n_stimuli: int, n_features: int, n_alphas: int,
                  n_folds: int, standardize: bool) -> str:
    if solver == "eigh_full":
        if standardize:
            raise InvalidOptionError("solver='eigh_full' cannot standardise per training fold; "
                                     "use solver='eigh' or standardize=False")
        return "eigh_full"
    mode = _pick_mode(solver, n_train, n_features)
    if solver == "auto" and mode == "eigh" and not standardize \
            and n_stimuli >= _FULL_EIGH_MIN_STIMULI:
        m = -(-n_stimuli // n_folds)
        if n_folds * n_alphas * m * (m + n_stimuli) * 4 <= _available_memory() // 8:
            return "eigh_full"
    return mode


class _Plan(NamedTuple):
    devices: tuple
    chunk: int
    n_targets: int
    n_padded: int


#: On CPU, with a low-rank fold decomposition, the predictions of all alphas for one chunk
#: of targets are kept within about this many bytes (cache-resident): the products are
#: memory-bound there (132 x 2,048, 100 alphas, 7,694 targets: 1.3x faster than one chunk).
_CPU_HOT_BYTES = 16 << 20
_LOW_RANK = 512


def _hot_rows(mode: str, n_alphas: int, masks: np.ndarray, n_features: int) -> int | None:
    """Rows (alphas x test rows) of one chunk's predictions when they should stay in cache."""
    n_train = int((~masks).sum(axis=1).max())
    if mode in ("svd", "eigh") and min(n_train, n_features) <= _LOW_RANK:
        return n_alphas * int(masks.sum(axis=1).max())
    return None


def _plan(n_stimuli, n_features, n_alphas, n_targets, target_chunk, devices,
          hot_rows: int | None = None) -> _Plan:
    devices = tuple(jax.local_devices() if devices is None else devices)
    n_dev = len(devices)
    itemsize = jnp.dtype(_float_dtype()).itemsize
    if target_chunk is None:
        chunk = default_target_chunk(n_stimuli, n_features, n_alphas, n_targets,
                                     itemsize=itemsize, n_devices=n_dev, device=devices[0])
        if hot_rows and devices[0].platform == "cpu":
            chunk = min(chunk, max(64, _CPU_HOT_BYTES // (itemsize * hot_rows)))
            per_device = -(-n_targets // n_dev)
            chunk = -(-per_device // -(-per_device // chunk))  # equal chunks, little padding
    else:
        if isinstance(target_chunk, bool) or not isinstance(target_chunk, (int, np.integer)) \
                or target_chunk < 1:
            raise InvalidOptionError(f"target_chunk must be a positive integer or None, got "
                                     f"{target_chunk!r}")
        chunk = int(min(target_chunk, -(-n_targets // n_dev)))
    per = n_dev * chunk
    n_padded = -(-n_targets // per) * per
    return _Plan(devices, chunk, n_targets, n_padded)


def _put_targets(Y: np.ndarray, plan: _Plan, dtype):
    if Y.shape[1] != plan.n_padded:
        Y = np.concatenate([Y, np.zeros((Y.shape[0], plan.n_padded - Y.shape[1]), Y.dtype)], 1)
    return jax.device_put(np.asarray(Y, dtype=dtype), NamedSharding(_mesh(plan.devices), P(None, "t")))


def _pad_vec(v: np.ndarray, plan: _Plan, fill) -> np.ndarray:
    v = np.asarray(v)
    if v.shape[0] == plan.n_padded:
        return v
    return np.concatenate([v, np.full(plan.n_padded - v.shape[0], fill, v.dtype)])


def _validate_xy(X, Y):
    X = as_float_array(X, "X", ndim=2)
    Y = as_float_array(Y, "Y", ndim=(1, 2))
    if Y.ndim == 1:
        Y = Y[:, None]
    if X.shape[0] != Y.shape[0]:
        raise ShapeMismatchError(f"X has {X.shape[0]} rows (stimuli) but Y has {Y.shape[0]}; "
                                 "both must hold the same stimuli in the same order")
    if X.shape[1] == 0 or Y.shape[1] == 0:
        raise ShapeMismatchError(f"empty input: X {X.shape}, Y {Y.shape}")
    check_finite(X, "X", axis_name="stimulus")
    check_finite(Y, "Y", axis_name="stimulus")
    return X, Y


@float32_matmuls
def ridge_cv(X, Y, *, alphas, folds=5, fit_intercept: bool = True, score: str = "r2",
             target_chunk: int | None = None, extend_alphas: bool = False, seed: int = 0,
             standardize: bool = False, solver: str = "auto",
             devices: Sequence | None = None) -> RidgeCVResult:
    """Ridge regression with a per-target alpha chosen by K-fold cross-validation.

    Parameters
    ----------
    X : array (n_stimuli, n_features)
    Y : array (n_stimuli, n_targets) or (n_stimuli,)
    alphas : array (n_alphas,)
        Strictly positive regularisation values.
    folds : int or folds
        Number of shuffled K folds (seeded by ``seed``), or explicit folds in any form
        accepted by :func:`alignjax.resolve_folds` (boolean test masks, fold ids, test-index
        lists, sklearn ``(train, test)`` pairs).
    fit_intercept : bool
        Centre X and Y with each training fold's means (and fit an intercept at refit).
    score : {"r2", "pearson", "neg_mse"}
        Per-fold score (coefficient of determination, Pearson r, negative MSE), averaged
        over folds. A target constant within a test fold scores 0 there (as in himalaya).
    target_chunk : int, optional
        Targets per chunk on each device; by default chosen from available memory. Never
        changes the result.
    extend_alphas : bool
        If a target's best alpha is at an edge of the grid, keep halving (lower edge) or
        doubling (upper edge) it while its CV score strictly improves, within
        [1e-49, 1e50] (Pepino et al.).
    seed : int
        Seed of the K-fold shuffle when ``folds`` is an int.
    standardize : bool
        z-score features with each training fold's statistics (and at refit with all
        stimuli); coefficients are returned in the original feature units.
    solver : {"auto", "svd", "eigh", "eigh_full"}
        ``"svd"``: thin SVD of each training fold (primal); ``"eigh"``: eigendecomposition
        of each training fold's kernel (dual); ``"eigh_full"``: one eigendecomposition of
        the full kernel serves every fold (exact K-fold residuals ``(G_TT)^-1 (G Y)_T``).
        ``"auto"`` uses "svd" when n_train >= n_features, else "eigh", or "eigh_full" from
        1024 stimuli on (when not standardising).
    devices : sequence of jax devices, optional
        Devices the targets are sharded over (default: all local devices).

    Returns
    -------
    RidgeCVResult
        ``best_alpha`` (n_targets,), ``cv_scores`` (n_alphas, n_targets), ``coef``
        (n_features, n_targets), ``intercept`` (n_targets,), ``alphas`` (n_alphas,),
        ``best_score`` (n_targets,).

    Notes
    -----
    With ``fit_intercept=False`` and the same folds, the chosen alphas are those of
    ``himalaya.ridge.solve_ridge_cv_svd`` (ties: the first grid alpha), and ``coef[:, j]``
    equals ``sklearn.linear_model.Ridge(alpha=best_alpha[j]).fit(X, Y[:, j]).coef_``.
    """
    X, Y = _validate_xy(X, Y)
    alphas_np = check_alphas(alphas)
    check_choice(score, "score", SCORES)
    check_choice(solver, "solver", SOLVERS)
    n, p = X.shape
    fit_intercept = bool(fit_intercept or standardize)
    masks = resolve_folds(folds, n, seed=seed)
    n_train_max = int((~masks).sum(axis=1).max())
    mode_cv = _pick_cv_mode(solver, n_train_max, n, p, len(alphas_np), masks.shape[0],
                            standardize)
    mode_fit = _pick_mode(solver, n, p)
    plan = _plan(n, p, len(alphas_np), Y.shape[1], target_chunk, devices,
                 hot_rows=_hot_rows(mode_cv, len(alphas_np), masks, p))
    # small decompositions: OpenBLAS on one thread, so it does not spin against XLA
    with serial_lapack(min(n, p), plan.devices):
        return jax.block_until_ready(_ridge_cv_solve(
            X, Y, alphas_np, masks, plan, mode_cv, mode_fit, score=score,
            fit_intercept=fit_intercept, standardize=standardize,
            extend_alphas=extend_alphas, target_chunk=target_chunk))


def _ridge_cv_solve(X, Y, alphas_np, masks, plan, mode_cv, mode_fit, *, score, fit_intercept,
                    standardize, extend_alphas, target_chunk) -> RidgeCVResult:
    """The device work of :func:`ridge_cv` on validated inputs."""
    dtype = _float_dtype()
    Yd = _put_targets(Y, plan, dtype)
    Xd = jnp.asarray(X, dtype=dtype)
    groups = _fold_groups(masks)
    n_folds = masks.shape[0]
    kw = dict(mode=mode_cv, score=score, fit_intercept=fit_intercept, standardize=standardize,
              chunk=plan.chunk, devices=plan.devices)
    alphas_d = jnp.asarray(alphas_np, dtype=dtype)
    # one eigendecomposition of the full kernel serves the CV pass and the refit
    eig = _full_eig(Xd, fit_intercept=fit_intercept) \
        if mode_cv == "eigh_full" and mode_fit == "eigh" else None
    cv_scores = _cv_pass(Xd, Yd, groups, alphas_d, eig, what="grid", **kw) / n_folds
    cv_np = np.asarray(cv_scores)[:, :plan.n_targets]
    best_idx = np.argmax(cv_np, axis=0)
    best_alpha = alphas_np[best_idx]
    best_score = cv_np[best_idx, np.arange(cv_np.shape[1])]
    if extend_alphas and len(alphas_np) >= 2:
        best_alpha, best_score = _extend(
            lambda a, cols: _subset_grid_scores(
                Xd, Y, groups, a, cols, eig, target_chunk=target_chunk, devices=plan.devices,
                n_folds=n_folds, mode=mode_cv, score=score, fit_intercept=fit_intercept,
                standardize=standardize),
            best_alpha, best_score, alphas_np, dtype)
    coef, intercept = _refit_pass(Xd, Yd, jnp.asarray(_pad_vec(best_alpha, plan, 1.0), dtype),
                                  eig, mode=mode_fit,
                                  fit_intercept=fit_intercept, standardize=standardize,
                                  chunk=plan.chunk, devices=plan.devices)
    t = plan.n_targets
    return RidgeCVResult(best_alpha=jnp.asarray(best_alpha[:t], dtype),
                         cv_scores=cv_scores[:, :t], coef=coef[:, :t], intercept=intercept[:t],
                         alphas=jnp.asarray(alphas_np, dtype),
                         best_score=jnp.asarray(best_score[:t], dtype))


def _subset_grid_scores(Xd, Y: np.ndarray, groups, alphas, cols, eig=None, *, target_chunk,
                        devices, n_folds, **kw) -> np.ndarray:
    """CV scores (n_alphas, len(cols)) of the targets ``cols`` of host array ``Y``.

    The subset is padded to a power of two (>= 64) so repeated calls with shrinking
    subsets compile only a few shapes.
    """
    n, p = Xd.shape
    bucket = max(64, 1 << int(np.ceil(np.log2(max(1, len(cols))))))
    bucket = min(bucket, max(Y.shape[1], 1))
    bucket = max(bucket, len(cols))
    plan = _plan(n, p, len(alphas), bucket, target_chunk, devices)
    Ysub = np.zeros((n, bucket), Y.dtype)
    Ysub[:, :len(cols)] = Y[:, cols]
    out = _cv_pass(Xd, _put_targets(Ysub, plan, Xd.dtype), groups,
                   jnp.asarray(alphas, Xd.dtype), eig, what="grid", chunk=plan.chunk,
                   devices=plan.devices, **kw)
    return np.asarray(out)[:, :len(cols)] / n_folds


def _extend(grid_score_fn, best_alpha, best_score, grid, dtype):
    """Halve/double edge-selected alphas while the CV score improves (Pepino et al.).

    Targets at the lower edge all walk ``lo/2, lo/4, ...`` and those at the upper edge
    ``hi*2, hi*4, ...`` in lockstep, so each step is one two-alpha grid pass
    (``grid_score_fn(alphas (2,), cols) -> (2, len(cols))``) over the still-active
    targets ``cols`` only.

    An improvement must exceed a few hundred ulps of the score, so rounding noise on a
    flat score curve (tiny alphas: the minimum-norm limit; huge alphas with Pearson r) does
    not keep the search walking, and the chunk size cannot change the outcome.
    """
    finfo = np.finfo(dtype)
    lo_bound = max(ALPHA_MIN, float(finfo.tiny) * 1e3)
    hi_bound = min(ALPHA_MAX, float(finfo.max) * 1e-3)
    best_alpha = best_alpha.astype(np.float64)
    best_score = best_score.astype(np.float64)
    lo, hi = float(grid.min()), float(grid.max())
    down = best_alpha <= lo
    up = (best_alpha >= hi) & ~down
    active_dn, active_up = down.copy(), up.copy()
    for k in range(1, _MAX_EXTEND_STEPS + 1):
        a_dn, a_up = lo / 2.0 ** k, hi * 2.0 ** k
        active_dn &= a_dn >= lo_bound
        active_up &= a_up <= hi_bound
        if not (active_dn.any() or active_up.any()):
            break
        cols = np.flatnonzero(active_dn | active_up)
        s = np.full((2, best_score.shape[0]), -np.inf)
        s[:, cols] = np.asarray(grid_score_fn(
            np.array([max(a_dn, lo_bound), min(a_up, hi_bound)]), cols), dtype=np.float64)
        tol = 256 * float(finfo.eps) * np.maximum(1.0, np.abs(best_score))
        imp_dn = active_dn & (s[0] > best_score + tol)
        imp_up = active_up & (s[1] > best_score + tol)
        best_alpha = np.where(imp_dn, a_dn, np.where(imp_up, a_up, best_alpha))
        best_score = np.where(imp_dn, s[0], np.where(imp_up, s[1], best_score))
        active_dn, active_up = imp_dn, imp_up
    return best_alpha, best_score


@float32_matmuls
def ridge_fit(X, Y, *, alpha, fit_intercept: bool = True, standardize: bool = False,
              target_chunk: int | None = None, solver: str = "auto",
              devices: Sequence | None = None):
    """Ridge fit with one alpha per target (or one for all): ``(coef, intercept)``.

    Parameters
    ----------
    X : array (n_stimuli, n_features)
    Y : array (n_stimuli, n_targets)
    alpha : float or array (n_targets,)

    Returns
    -------
    coef : array (n_features, n_targets)
    intercept : array (n_targets,)

    Matches ``sklearn.linear_model.Ridge(alpha).fit(X, Y[:, j])`` per target.
    """
    X, Y = _validate_xy(X, Y)
    a = np.broadcast_to(check_alphas(alpha, name="alpha"), (Y.shape[1],)) if np.ndim(alpha) == 0 \
        else check_alphas(alpha, name="alpha")
    if a.shape[0] != Y.shape[1]:
        raise ShapeMismatchError(f"alpha has {a.shape[0]} values for {Y.shape[1]} targets")
    check_choice(solver, "solver", SOLVERS)
    n, p = X.shape
    dtype = _float_dtype()
    plan = _plan(n, p, 1, Y.shape[1], target_chunk, devices)
    with serial_lapack(min(n, p), plan.devices):
        coef, icpt = jax.block_until_ready(_refit_pass(
            jnp.asarray(X, dtype), _put_targets(Y, plan, dtype),
            jnp.asarray(_pad_vec(a, plan, 1.0), dtype), mode=_pick_mode(solver, n, p),
            fit_intercept=fit_intercept, standardize=standardize, chunk=plan.chunk,
            devices=plan.devices))
    return coef[:, :plan.n_targets], icpt[:plan.n_targets]


@float32_matmuls
def ridge_predict_folds(X, Y, train, test, *, alpha, fit_intercept: bool = True,
                        standardize: bool = False, target_chunk: int | None = None,
                        solver: str = "auto", devices: Sequence | None = None) -> jax.Array:
    """Fit on rows ``train`` with per-target ``alpha`` (n_targets,), predict rows ``test``.

    Returns
    -------
    prediction : array (n_test, n_targets)
    """
    X, Y = _validate_xy(X, Y)
    a = check_alphas(alpha, name="alpha")
    n, p = X.shape
    dtype = _float_dtype()
    train = np.asarray(train, dtype=np.int32)
    test = np.asarray(test, dtype=np.int32)
    plan = _plan(n, p, 1, Y.shape[1], target_chunk, devices)
    with serial_lapack(min(len(train), p), plan.devices):
        out = jax.block_until_ready(_predict_pass(
            jnp.asarray(X, dtype), _put_targets(Y, plan, dtype), jnp.asarray(train),
            jnp.asarray(test), jnp.asarray(_pad_vec(a, plan, 1.0), dtype), what="predict",
            mode=_pick_mode(solver, len(train), p), fit_intercept=fit_intercept,
            standardize=standardize, chunk=plan.chunk, devices=plan.devices))
    return out[:, :plan.n_targets]
