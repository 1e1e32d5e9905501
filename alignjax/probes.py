"""Linear probes: batched L2-penalised multinomial logistic regression over layers x C x folds.

The kernel :func:`fit_logistic` minimises exactly the objective of
``sklearn.linear_model.LogisticRegression(C=C)`` (lbfgs solver)::

    sum_i s_i * (-log softmax(X_i W^T + b)[y_i]) + ||W||^2 / (2 C)

with an unpenalised intercept ``b`` and sample weights ``s_i`` (class weights, fold masks).
For two classes it uses sklearn's binary parametrisation (one coefficient row, logits
``[0, x.w + b]``), so coefficients can be compared with sklearn's directly. The objective
is divided by ``sum(s)`` before optimisation, like sklearn, which does not change the
minimiser; convergence is declared when ``max|grad| <= tol`` on that scaled objective (the
``gtol`` sklearn passes to scipy's L-BFGS-B).

:func:`logistic_probe` solves every (layer, C, fold) problem of a probing study in one
compiled program: problems of layers with the same width are stacked and ``vmap``-ed over
layers and train/test splits (outer folds and the inner folds of nested CV), and a
``lax.scan`` walks the C path from strong to weak regularisation with warm starts. Folds are
sample-weight masks, so every split has the same shape; per-fold standardisation (training
rows only) is folded into the parametrisation, so the features are never copied per fold.

The solver is a compact L-BFGS (two-loop recursion, backtracking Armijo line search) written
with ``lax.while_loop`` so that it batches under ``vmap``; an iteration costs one
function-and-gradient evaluation in the common case (optax's zoom line search was measured
to cost several, which matters when thousands of problems run in lockstep).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._runtime import float32_matmuls
from ._validation import (
    AlignjaxInputError,
    InvalidFoldsError,
    InvalidOptionError,
    ShapeMismatchError,
    StimulusMismatchError,
    as_float_array,
    check_finite,
    check_layers,
    check_positive_int,
    match_ids,
)
from .folds import resolve_folds

__all__ = [
    "LogisticFit",
    "ProbeResult",
    "TransferResult",
    "PermutationResult",
    "fit_logistic",
    "logistic_probe",
    "probe_transfer",
    "probe_permutation_test",
    "encode_labels",
    "RidgeProbeResult",
    "ridge_probe",
]

_MASK_LOGIT = -1e4  # added to the logits of classes absent from a training set


# --------------------------------------------------------------------------- kernel


class LogisticFit(NamedTuple):
    """Result of :func:`fit_logistic`.

    Attributes
    ----------
    coef : array, shape (n_classes, n_features), or (1, n_features) for two classes
        As ``LogisticRegression.coef_``.
    intercept : array, shape (n_classes,), or (1,) for two classes
        As ``LogisticRegression.intercept_``.
    n_iter : int array
        L-BFGS iterations used.
    converged : bool array
        ``max|grad| <= tol`` at the returned point.
    """

    coef: jax.Array
    intercept: jax.Array
    n_iter: jax.Array
    converged: jax.Array


def _n_rows(n_classes: int) -> int:
    return 1 if n_classes == 2 else n_classes


def _full_logits(z: jax.Array, n_classes: int) -> jax.Array:
    """Logits of every class from the linear scores (binary: ``[0, z]``)."""
    if n_classes == 2:
        return jnp.concatenate([jnp.zeros_like(z), z], axis=-1)
    return z


def _scores(params, X, mu, sd, fit_intercept: bool):
    """Linear scores of standardised features ``(X - mu) / sd`` without forming them."""
    W, b = params
    Ws = W / sd
    z = X @ Ws.T - Ws @ mu
    if fit_intercept:
        z = z + b
    return z


def _objective(params, X, Y, sw, mu, sd, present, inv_C, *, n_classes, fit_intercept):
    """sklearn's penalised log-loss divided by the sum of sample weights."""
    z = _scores(params, X, mu, sd, fit_intercept)
    logits = _full_logits(z, n_classes) + present
    ll = jnp.sum(Y * logits, axis=-1) - jax.nn.logsumexp(logits, axis=-1)
    W = params[0]
    sw_sum = jnp.sum(sw)
    return (-jnp.sum(sw * ll) + 0.5 * inv_C * jnp.sum(W * W)) / sw_sum


def _two_loop(g, S, Yh, rho, k, gamma):
    """L-BFGS two-loop recursion: ``H g`` from the circular memory (newest at ``k``).

    Unused slots have ``rho == 0`` and are no-ops.
    """
    m = S.shape[0]

    def first(i, carry):
        q, alphas = carry
        j = (k - i) % m
        a = rho[j] * jnp.dot(S[j], q)
        return q - a * Yh[j], alphas.at[j].set(a)

    q, alphas = jax.lax.fori_loop(0, m, first, (g, jnp.zeros((m,), g.dtype)))

    def second(i, r):
        j = (k + 1 + i) % m
        b = rho[j] * jnp.dot(Yh[j], r)
        return r + S[j] * (alphas[j] - b)

    return jax.lax.fori_loop(0, m, second, gamma * q)


def _lbfgs(fun, x0, tol, max_iter: int, *, memory: int = 10, max_linesearch: int = 30):
    """Minimise ``fun`` from ``x0`` by L-BFGS with a backtracking (Armijo) line search.

    The first trial step of every iteration is the quasi-Newton step (length 1; the first
    iteration scales it to ``1 / ||g||``), which is almost always accepted, so an iteration
    costs one function-and-gradient evaluation. Stops when ``max|grad| <= tol``, after
    ``max_iter`` iterations, or when the line search cannot decrease ``fun`` any more.
    Returns ``(x, n_iter, max|grad|)``; composes under ``vmap``.
    """
    from jax.flatten_util import ravel_pytree

    flat0, unravel = ravel_pytree(x0)
    dtype = flat0.dtype
    vg = jax.value_and_grad(lambda v: fun(unravel(v)))
    m = memory
    f0, g0 = vg(flat0)
    eps = jnp.finfo(dtype).eps

    def cond(c):
        return (c["it"] < max_iter) & (jnp.max(jnp.abs(c["g"])) > tol) & ~c["stalled"]

    def body(c):
        x, f, g = c["x"], c["f"], c["g"]
        d = -_two_loop(g, c["S"], c["Y"], c["rho"], c["k"], c["gamma"])
        gd = jnp.dot(g, d)
        descent = gd < 0
        d = jnp.where(descent, d, -g)
        gd = jnp.where(descent, gd, -jnp.dot(g, g))
        step0 = jnp.where(c["it"] == 0, jnp.minimum(1.0, 1.0 / jnp.linalg.norm(g)), 1.0)
        slack = 4 * eps * jnp.abs(f)

        def ls_cond(l):
            step, fn, gn, n = l
            bad = ~(fn <= f + 1e-4 * step * gd + slack) | ~jnp.isfinite(fn)
            return bad & (n < max_linesearch)

        def ls_body(l):
            step, _, _, n = l
            step = step * 0.5
            fn, gn = vg(x + step * d)
            return step, fn, gn, n + 1

        f1, g1 = vg(x + step0 * d)
        step, fn, gn, n = jax.lax.while_loop(ls_cond, ls_body, (step0.astype(dtype), f1, g1, 0))
        ok = (fn <= f + 1e-4 * step * gd + slack) & jnp.isfinite(fn)
        x_new = jnp.where(ok, x + step * d, x)
        f_new = jnp.where(ok, fn, f)
        g_new = jnp.where(ok, gn, g)
        s_vec = x_new - x
        y_vec = g_new - g
        sy = jnp.dot(s_vec, y_vec)
        yy = jnp.dot(y_vec, y_vec)
        upd = ok & (sy > eps * yy) & (yy > 0)
        k = jnp.where(upd, (c["k"] + 1) % m, c["k"])
        S = jnp.where(upd, c["S"].at[k].set(s_vec), c["S"])
        Yh = jnp.where(upd, c["Y"].at[k].set(y_vec), c["Y"])
        rho = jnp.where(upd, c["rho"].at[k].set(1.0 / jnp.where(upd, sy, 1.0)), c["rho"])
        gamma = jnp.where(upd, sy / jnp.where(upd, yy, 1.0), c["gamma"])
        return dict(x=x_new, f=f_new, g=g_new, S=S, Y=Yh, rho=rho, k=k, gamma=gamma,
                    it=c["it"] + 1, stalled=~ok)

    D = flat0.shape[0]
    init = dict(x=flat0, f=f0, g=g0, S=jnp.zeros((m, D), dtype), Y=jnp.zeros((m, D), dtype),
                rho=jnp.zeros((m,), dtype), k=jnp.asarray(m - 1, jnp.int32),
                gamma=jnp.asarray(1.0, dtype), it=jnp.asarray(0, jnp.int32),
                stalled=jnp.asarray(False))
    out = jax.lax.while_loop(cond, body, init)
    return unravel(out["x"]), out["it"], jnp.max(jnp.abs(out["g"]))


def _fit_body(X, Y, sw, mu, sd, present, inv_C, tol, params0, *, n_classes, fit_intercept,
              max_iter):
    """One problem: L-BFGS from ``params0``; un-jitted, composes under vmap."""
    fun = partial(_objective, X=X, Y=Y, sw=sw, mu=mu, sd=sd, present=present, inv_C=inv_C,
                  n_classes=n_classes, fit_intercept=fit_intercept)
    params, it, gmax = _lbfgs(lambda p: fun(p), params0, tol, max_iter)
    return params, it, gmax <= tol


def _init_params(n_features: int, n_classes: int, dtype):
    k = _n_rows(n_classes)
    return (jnp.zeros((k, n_features), dtype), jnp.zeros((k,), dtype))


@partial(jax.jit, static_argnames=("n_classes", "fit_intercept", "max_iter"))
def _fit_logistic_jit(X, y, C, sw, tol, *, n_classes, fit_intercept, max_iter):
    dtype = X.dtype
    Y = jax.nn.one_hot(y, n_classes, dtype=dtype)
    p = X.shape[1]
    mu = jnp.zeros((p,), dtype)
    sd = jnp.ones((p,), dtype)
    present = jnp.where(jnp.sum(Y * (sw[:, None] > 0), axis=0) > 0, 0.0, _MASK_LOGIT).astype(dtype)
    params, it, conv = _fit_body(X, Y, sw.astype(dtype), mu, sd, present,
                                 (1.0 / C).astype(dtype), tol.astype(dtype),
                                 _init_params(p, n_classes, dtype), n_classes=n_classes,
                                 fit_intercept=fit_intercept, max_iter=max_iter)
    return LogisticFit(params[0], params[1], it, conv)


def _is_tracer(*xs) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in xs)


@float32_matmuls
def fit_logistic(X: jax.typing.ArrayLike, y: jax.typing.ArrayLike, *, C: float = 1.0,
                 n_classes: int | None = None, sample_weight: jax.typing.ArrayLike | None = None,
                 fit_intercept: bool = True, max_iter: int = 1000,
                 tol: float = 1e-4) -> LogisticFit:
    """L2-penalised multinomial logistic regression, the objective of sklearn's ``LogisticRegression``.

    Minimises ``sum_i s_i * logloss_i + ||W||^2 / (2 C)`` (intercept unpenalised) with
    L-BFGS; for two classes, sklearn's binary model with one coefficient row. Vmappable over
    problems when ``n_classes`` is given.

    Parameters
    ----------
    X : array, shape (n_stimuli, n_features)
    y : int array, shape (n_stimuli,)
        Class codes in ``0 .. n_classes - 1`` (see :func:`encode_labels`).
    C : float
        Inverse regularisation strength, as in sklearn.
    n_classes : int, optional
        Number of classes; inferred as ``max(y) + 1`` from concrete inputs. Required
        under ``vmap``/``jit``.
    sample_weight : array, shape (n_stimuli,), optional
        Non-negative weights (zero drops a stimulus).
    fit_intercept : bool
    max_iter : int
        Maximum L-BFGS iterations.
    tol : float
        Stop when ``max|grad|`` of the objective divided by ``sum(sample_weight)`` is
        ``<= tol`` (sklearn's lbfgs ``gtol``).

    Returns
    -------
    LogisticFit
        ``coef`` (n_classes, n_features) or (1, n_features) for two classes, ``intercept``,
        ``n_iter``, ``converged``.
    """
    max_iter = check_positive_int(max_iter, "max_iter")
    if not _is_tracer(X, y, sample_weight, C, tol):
        Xn = as_float_array(X, "X", ndim=2)
        check_finite(Xn, "X")
        yn = np.asarray(y)
        if yn.ndim != 1 or yn.shape[0] != Xn.shape[0]:
            raise ShapeMismatchError(f"y has shape {yn.shape}; expected ({Xn.shape[0]},) to match X")
        if not np.issubdtype(yn.dtype, np.integer) or (yn.size and yn.min() < 0):
            raise InvalidOptionError("y must hold non-negative integer class codes; use "
                                     "alignjax.encode_labels to turn labels into codes")
        if n_classes is None:
            n_classes = int(yn.max()) + 1
        if len(np.unique(yn)) < 2:
            raise InvalidOptionError("y holds a single class; a classifier needs at least two")
        if yn.max() >= n_classes:
            raise InvalidOptionError(f"y has class code {int(yn.max())} >= n_classes={n_classes}")
        if not float(C) > 0:
            raise InvalidOptionError(f"C must be > 0, got {C}")
        X = jnp.asarray(Xn, dtype=jnp.result_type(float))
    elif n_classes is None:
        raise InvalidOptionError("n_classes must be given when fit_logistic is traced (vmap/jit)")
    n_classes = check_positive_int(n_classes, "n_classes", minimum=2)
    X = jnp.asarray(X)
    if not jnp.issubdtype(X.dtype, jnp.floating):
        X = X.astype(jnp.result_type(float))
    sw = (jnp.ones(X.shape[0], X.dtype) if sample_weight is None
          else jnp.asarray(sample_weight, X.dtype))
    return _fit_logistic_jit(X, jnp.asarray(y), jnp.asarray(C, X.dtype), sw,
                             jnp.asarray(tol, X.dtype), n_classes=n_classes,
                             fit_intercept=fit_intercept, max_iter=max_iter)


@float32_matmuls
def predict_logistic(fit: LogisticFit, X: jax.typing.ArrayLike) -> jax.Array:
    """Class codes predicted by a :class:`LogisticFit` (argmax of the logits, as sklearn)."""
    X = jnp.asarray(X, fit.coef.dtype)
    z = X @ fit.coef.T + fit.intercept
    n_classes = 2 if fit.coef.shape[0] == 1 else fit.coef.shape[0]
    return jnp.argmax(_full_logits(z, n_classes), axis=-1)


# --------------------------------------------------------------------------- batched solver


def _train_stats(X, train, standardize: bool):
    """Mean and standard deviation (ddof 0, as StandardScaler) over training rows."""
    p = X.shape[1]
    if not standardize:
        return jnp.zeros((p,), X.dtype), jnp.ones((p,), X.dtype)
    w = train.astype(X.dtype)
    n = jnp.sum(w)
    mu = (w @ X) / n
    var = (w @ (X * X)) / n - mu * mu
    sd = jnp.sqrt(jnp.maximum(var, 0.0))
    sd = jnp.where(sd > 1e3 * jnp.finfo(X.dtype).eps, sd, 1.0)  # StandardScaler keeps constants
    return mu, sd


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
    if X.shape[1] > X.shape[0]:
        X, mu, sd = _training_row_space(X, train, mu, sd)
    counts = jnp.sum(Y * train[:, None].astype(Y.dtype), axis=0)
    present = jnp.where(counts > 0, 0.0, _MASK_LOGIT).astype(X.dtype)

    def step(params, inv_C):
        params, it, conv = _fit_body(X, Y, sw, mu, sd, present, inv_C, tol, params,
                                     n_classes=n_classes, fit_intercept=fit_intercept,
                                     max_iter=max_iter)
        z = _scores(params, X, mu, sd, fit_intercept)
        pred = jnp.argmax(_full_logits(z, n_classes) + present, axis=-1).astype(jnp.int32)
        return params, (pred, it, conv)

    _, (pred, it, conv) = jax.lax.scan(step, _init_params(X.shape[1], n_classes, X.dtype), inv_Cs)
    return pred, it, conv


@partial(jax.jit, static_argnames=("n_classes", "fit_intercept", "max_iter", "standardize",
                                   "layer_batch"))
def _solve_group(Xg, Y, SW, inv_Cs, tol, *, n_classes, fit_intercept, max_iter, standardize,
                 layer_batch):
    """All problems of one width group.

    Xg (n_layers, n_stimuli, n_features); Y (n_splits, n_stimuli, n_classes) one-hot;
    SW (n_splits, n_stimuli) sample weights (zero outside the training set); inv_Cs
    (n_Cs,) ascending C. Returns predictions (n_layers, n_splits, n_Cs, n_stimuli),
    iterations and convergence flags (n_layers, n_splits, n_Cs).
    """
    body = partial(_path_body, n_classes=n_classes, fit_intercept=fit_intercept,
                   max_iter=max_iter, standardize=standardize)
    per_split = jax.vmap(body, in_axes=(None, 0, 0, None, None))
    return jax.lax.map(lambda X: per_split(X, Y, SW, inv_Cs, tol), Xg, batch_size=layer_batch)


# --------------------------------------------------------------------------- host-side helpers


def encode_labels(y) -> tuple[np.ndarray, np.ndarray]:
    """Class labels (any hashable values) -> ``(classes, codes)`` with ``classes[codes] == y``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ShapeMismatchError(f"labels must be one-dimensional, got shape {y.shape}")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise AlignjaxInputError(
            f"labels contain NaN (at stimuli {np.flatnonzero(np.isnan(y))[:5].tolist()}); "
            "drop unlabeled stimuli first")
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise InvalidOptionError(
            f"labels hold a single class ({classes[0]!r} for all {len(y)} stimuli); a probe needs "
            "at least two classes")
    return classes, codes.astype(np.int32)


def _load(X, y, *, layers=None):
    """Layers (names, arrays) and labels aligned to their rows."""
    from .store import load_layers

    ls = load_layers(X, layers=layers)
    arrays = check_layers(ls.names, ls.arrays, ls.stimulus_ids, purpose="probes")
    n = arrays[0].shape[0]
    if isinstance(y, Mapping):
        if ls.stimulus_ids is None:
            raise StimulusMismatchError(
                "labels were given by stimulus id but the features carry no stimulus ids; pass "
                "labels as an array in row order or use a feature store")
        keys = [str(k) for k in y]
        idx = match_ids(ls.stimulus_ids, keys, what="the features", other_what="the labels")
        vals = list(y.values())
        y = np.asarray([vals[i] for i in idx])
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise StimulusMismatchError(
            f"got {y.shape[0] if y.ndim else 0} labels for {n} stimuli; labels must be in the "
            "row order of the features (or a mapping from stimulus id to label)")
    return list(ls.names), arrays, ls.stimulus_ids, y


def _groups(arrays) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for i, a in enumerate(arrays):
        out.setdefault(a.shape[1], []).append(i)
    return out


def _class_weights(codes, train, n_classes, class_weight):
    w = train.astype(float)
    if class_weight is None:
        return w
    if class_weight == "balanced":
        counts = np.bincount(codes[train], minlength=n_classes).astype(float)
        k = np.count_nonzero(counts)
        cw = np.where(counts > 0, train.sum() / (k * np.maximum(counts, 1)), 0.0)
    elif isinstance(class_weight, Mapping):
        cw = np.ones(n_classes)
        for c, v in class_weight.items():
            cw[int(c)] = float(v)
    else:
        raise InvalidOptionError(f"class_weight must be None, 'balanced' or a mapping, got "
                                 f"{class_weight!r}")
    return w * cw[codes]


def _deal(codes, members, n_folds, rng) -> np.ndarray:
    """Stratified fold ids for ``members`` (indices), classes dealt to folds in turn."""
    fold_of = np.empty(len(members), dtype=int)
    start = 0
    sub = codes[members]
    for c in np.unique(sub):
        pos = rng.permutation(np.flatnonzero(sub == c))
        fold_of[pos] = (start + np.arange(len(pos))) % n_folds
        start = (start + len(pos)) % n_folds
    return fold_of


def _inner_masks(codes, outer_test, n_inner, seed) -> np.ndarray:
    """Inner test masks (n_folds, n_inner, n_stimuli) within each outer training set."""
    rng = np.random.default_rng(seed)
    F, n = outer_test.shape
    out = np.zeros((F, n_inner, n), dtype=bool)
    for f in range(F):
        members = np.flatnonzero(~outer_test[f])
        if len(members) < n_inner:
            raise InvalidFoldsError(f"outer fold {f} has {len(members)} training stimuli, fewer "
                                    f"than inner_folds={n_inner}")
        fid = _deal(codes, members, n_inner, rng)
        for g in range(n_inner):
            out[f, g, members[fid == g]] = True
    return out


def _check_Cs(Cs) -> np.ndarray:
    Cs = np.atleast_1d(np.asarray(Cs, dtype=float))
    if Cs.ndim != 1 or Cs.size == 0 or not np.all(np.isfinite(Cs)) or np.any(Cs <= 0):
        raise InvalidOptionError(f"Cs must be a non-empty list of positive numbers, got {Cs}")
    if len(np.unique(Cs)) != len(Cs):
        raise InvalidOptionError(f"Cs has repeated values: {Cs}")
    return np.sort(Cs)


def _run(arrays, codes_splits, SW, Cs, *, n_classes, fit_intercept, max_iter, tol, standardize,
         layer_batch):
    """Solve every (layer, split, C); returns host arrays (n_layers, n_splits, n_Cs[, n])."""
    dtype = jnp.result_type(float)
    B, n = SW.shape
    L = len(arrays)
    preds = np.zeros((L, B, len(Cs), n), dtype=np.int32)
    iters = np.zeros((L, B, len(Cs)), dtype=np.int32)
    conv = np.zeros((L, B, len(Cs)), dtype=bool)
    Y = jax.nn.one_hot(jnp.asarray(codes_splits), n_classes, dtype=dtype)
    inv_Cs = jnp.asarray(1.0 / Cs, dtype)
    for width, idx in _groups(arrays).items():
        Xg = np.stack([_prescale(arrays[i], standardize, fit_intercept) for i in idx])
        lb = None if layer_batch is None else min(int(layer_batch), len(idx))
        p, it, cv = _solve_group(jnp.asarray(Xg, dtype), Y, jnp.asarray(SW, dtype), inv_Cs,
                                 jnp.asarray(tol, dtype), n_classes=n_classes,
                                 fit_intercept=fit_intercept, max_iter=max_iter,
                                 standardize=standardize, layer_batch=lb)
        preds[idx], iters[idx], conv[idx] = np.asarray(p), np.asarray(it), np.asarray(cv)
    return preds, iters, conv


def _prescale(a: np.ndarray, standardize: bool, fit_intercept: bool) -> np.ndarray:
    """Global centring/scaling that leaves the per-fold standardised problem unchanged.

    With per-fold standardisation the model only sees ``(X - mu_f) / sd_f``, which does not
    depend on a global affine map of each column; applying one first keeps float32 sums
    well conditioned for unscaled features.
    """
    a = np.asarray(a, dtype=np.float64)
    if standardize:
        mu = a.mean(axis=0)
        sd = a.std(axis=0)
        return (a - mu) / np.where(sd > 0, sd, 1.0)
    return a


def _accuracy(pred, codes, mask):
    """Accuracy and balanced accuracy of ``pred`` (..., n) on the rows in ``mask`` (n,)."""
    hit = (pred[..., mask] == codes[mask])
    acc = hit.mean(axis=-1)
    recalls = []
    for c in np.unique(codes[mask]):
        sel = codes[mask] == c
        recalls.append(hit[..., sel].mean(axis=-1))
    return acc, np.mean(recalls, axis=0)


def _confusion(pred, codes, mask, n_classes):
    """Confusion counts (..., true, predicted) on the rows in ``mask``."""
    flat = pred[..., mask].reshape(-1, int(mask.sum()))
    idx = codes[mask][None, :] * n_classes + flat
    out = np.zeros((flat.shape[0], n_classes * n_classes), dtype=np.int64)
    for r in range(flat.shape[0]):
        out[r] = np.bincount(idx[r], minlength=n_classes * n_classes)
    return out.reshape(pred.shape[:-1] + (n_classes, n_classes))


def _warn_convergence(conv, what):
    if not conv.all():
        import warnings

        warnings.warn(
            f"{int((~conv).sum())} of {conv.size} {what} did not reach tol within max_iter; "
            "they are flagged in the result's convergence arrays (raise max_iter or check the "
            "largest C)", RuntimeWarning, stacklevel=3)


# --------------------------------------------------------------------------- logistic_probe


class ProbeResult(NamedTuple):
    """Result of :func:`logistic_probe`.

    Attributes
    ----------
    layers : list of str, (n_layers,)
    Cs : array (n_Cs,)
        The C values, ascending (the order of every C axis below).
    classes : array (n_classes,)
        Class labels; confusion matrices and codes index them.
    accuracy, balanced_accuracy : arrays (n_layers, n_Cs, n_folds)
        Test-fold scores of the model trained on the other folds.
    confusion : int array (n_layers, n_Cs, n_folds, n_classes, n_classes)
        Counts of (true class, predicted class) on each test fold.
    predictions : int array (n_layers, n_Cs, n_stimuli)
        Cross-validated class codes (each stimulus predicted by the model of its test fold).
    converged, n_iter : arrays (n_layers, n_Cs, n_folds)
        Per outer problem: ``max|grad| <= tol`` reached, iterations used.
    inner_converged : bool array (n_layers, n_Cs, n_folds, n_inner)
        Convergence of the inner-CV problems.
    best_C : array (n_layers,)
        The C with the best mean test-fold score (selected on the test folds: optimistic).
    chosen_C : array (n_layers, n_folds)
        The C chosen by inner CV within each outer training set (nested CV).
    nested_accuracy, nested_balanced_accuracy : arrays (n_layers, n_folds)
        Outer test-fold scores at the inner-CV choice of C: unbiased estimates.
    nested_predictions : int array (n_layers, n_stimuli)
        Cross-validated class codes at the inner-CV choice of C.
    chance : float
        Accuracy of always predicting the majority class (Bost et al.).
    folds : bool array (n_folds, n_stimuli)
        Outer test masks.
    """

    layers: list
    Cs: np.ndarray
    classes: np.ndarray
    accuracy: np.ndarray
    balanced_accuracy: np.ndarray
    confusion: np.ndarray
    predictions: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    inner_converged: np.ndarray
    best_C: np.ndarray
    chosen_C: np.ndarray
    nested_accuracy: np.ndarray
    nested_balanced_accuracy: np.ndarray
    nested_predictions: np.ndarray
    chance: float
    folds: np.ndarray


def _resolve_probe_folds(folds, codes, classes, seed):
    n = len(codes)
    if isinstance(folds, (int, np.integer)) and not isinstance(folds, bool):
        k = int(folds)
        counts = np.bincount(codes, minlength=len(classes))
        if counts.min() < k:
            small = [str(classes[i]) for i in np.flatnonzero(counts < k)[:5]]
            raise InvalidFoldsError(
                f"classes {small} have fewer members ({int(counts.min())} at least) than the {k} "
                "folds, so some test folds would miss them; use fewer folds or merge small classes")
        return resolve_folds(k, n, seed=seed, stratify=codes)
    return resolve_folds(folds, n, seed=seed)


@float32_matmuls
def logistic_probe(X, y, *, Cs: Sequence[float] = tuple(np.logspace(-4, 4, 9)), folds=5,
                   inner_folds: int | None = 3, standardize: bool = True,
                   class_weight: str | Mapping | None = None, scoring: str = "accuracy",
                   fit_intercept: bool = True, max_iter: int = 1000, tol: float = 1e-4,
                   layers: Sequence[str] | None = None, layer_batch: int | None = None,
                   seed: int = 0) -> ProbeResult:
    """Cross-validated L2 logistic probes of every layer, all problems in one compiled program.

    Each (layer, C, fold) problem is :func:`fit_logistic` (sklearn's ``LogisticRegression``
    objective) on the training folds, standardised with training-fold statistics (as a
    ``StandardScaler`` + ``LogisticRegression`` pipeline). Problems are batched with ``vmap``
    over layers (layers of equal width together) and splits, with warm starts along C.

    Parameters
    ----------
    X : array (n_stimuli, n_features), sequence or mapping of such arrays, or a feature store
        One array per layer; widths may differ.
    y : array (n_stimuli,) or mapping stimulus id -> label
        Class labels of any type; a mapping is matched to the features' stimulus ids.
    Cs : sequence of float
        Inverse regularisation strengths.
    folds : int or fold specification
        Outer folds: an int gives stratified k-fold (every class needs >= k members); or
        anything :func:`alignjax.resolve_folds` accepts.
    inner_folds : int or None
        Stratified inner folds within each outer training set used to choose C (nested CV);
        ``None`` skips nested CV (``chosen_C`` and nested scores are then NaN / -1).
    standardize : bool
        Z-score features with training-fold mean and standard deviation.
    class_weight : None, "balanced" or mapping class code -> weight
        As sklearn (balanced weights from each training set's class counts).
    scoring : {"accuracy", "balanced_accuracy"}
        Score used to choose C.
    fit_intercept, max_iter, tol
        As :func:`fit_logistic`.
    layers : sequence of str, optional
        Subset of layers of a store or mapping.
    layer_batch : int, optional
        Layers solved together in one ``vmap`` (default: all of a width group); lowers
        memory, never changes results.
    seed : int
        Seed of the fold assignment.

    Returns
    -------
    ProbeResult
    """
    if scoring not in ("accuracy", "balanced_accuracy"):
        raise InvalidOptionError(f"scoring must be 'accuracy' or 'balanced_accuracy', got {scoring!r}")
    max_iter = check_positive_int(max_iter, "max_iter")
    Cs = _check_Cs(Cs)
    names, arrays, _, y = _load(X, y, layers=layers)
    classes, codes = encode_labels(y)
    K = len(classes)
    n = len(codes)
    outer = _resolve_probe_folds(folds, codes, classes, seed)
    F = outer.shape[0]
    G = 0 if inner_folds is None else check_positive_int(inner_folds, "inner_folds", minimum=2)
    inner = _inner_masks(codes, outer, G, seed + 1) if G else np.zeros((F, 0, n), bool)
    train_masks = [~outer[f] for f in range(F)]
    train_masks += [(~outer[f]) & ~inner[f, g] for f in range(F) for g in range(G)]
    SW = np.stack([_class_weights(codes, m, K, class_weight) for m in train_masks])
    codes_splits = np.broadcast_to(codes, SW.shape)
    preds, iters, conv = _run(arrays, codes_splits, SW, Cs, n_classes=K,
                              fit_intercept=fit_intercept, max_iter=max_iter, tol=tol,
                              standardize=standardize, layer_batch=layer_batch)
    L, nC = len(arrays), len(Cs)
    acc = np.zeros((L, nC, F))
    bacc = np.zeros((L, nC, F))
    confusion = np.zeros((L, nC, F, K, K), dtype=np.int64)
    cv_pred = np.zeros((L, nC, n), dtype=np.int32)
    for f in range(F):
        a, b = _accuracy(preds[:, f], codes, outer[f])
        acc[:, :, f], bacc[:, :, f] = a, b
        confusion[:, :, f] = _confusion(preds[:, f], codes, outer[f], K)
        cv_pred[:, :, outer[f]] = preds[:, f][:, :, outer[f]]
    score = acc if scoring == "accuracy" else bacc
    best_C = Cs[np.argmax(score.mean(axis=2), axis=1)]
    chosen_C = np.full((L, F), np.nan)
    nested_acc = np.full((L, F), np.nan)
    nested_bacc = np.full((L, F), np.nan)
    nested_pred = np.full((L, n), -1, dtype=np.int32)
    if G:
        inner_score = np.zeros((L, nC, F))
        for f in range(F):
            s = []
            for g in range(G):
                a, b = _accuracy(preds[:, F + f * G + g], codes, inner[f, g])
                s.append(a if scoring == "accuracy" else b)
            inner_score[:, :, f] = np.mean(s, axis=0)
        choice = np.argmax(inner_score, axis=1)  # (L, F): first max = smallest C
        chosen_C = Cs[choice]
        li = np.arange(L)[:, None]
        nested_acc = acc[li, choice, np.arange(F)[None, :]]
        nested_bacc = bacc[li, choice, np.arange(F)[None, :]]
        for f in range(F):
            nested_pred[:, outer[f]] = preds[np.arange(L), f, choice[:, f]][:, outer[f]]
    outer_conv = conv[:, :F].transpose(0, 2, 1)
    inner_conv = conv[:, F:].reshape(L, F, G, nC).transpose(0, 3, 1, 2)
    _warn_convergence(conv, "probe problems")
    chance = float(np.bincount(codes).max() / n)
    return ProbeResult(names, Cs, classes, acc, bacc, confusion, cv_pred, outer_conv,
                       iters[:, :F].transpose(0, 2, 1), inner_conv, best_C, chosen_C, nested_acc,
                       nested_bacc, nested_pred, chance, outer)


# --------------------------------------------------------------------------- transfer


class TransferResult(NamedTuple):
    """Result of :func:`probe_transfer`.

    Attributes
    ----------
    layers : list of str (n_layers,)
    Cs : array (n_Cs,), ascending
    classes : array (n_classes,)
    chosen_C : array (n_layers,)
        C chosen by stratified CV within the training subset.
    transfer_accuracy, transfer_balanced_accuracy : arrays (n_layers,)
        Scores on the test subset of the model trained on the whole training subset at
        ``chosen_C``.
    transfer_accuracy_per_C : array (n_layers, n_Cs)
    within_accuracy, within_balanced_accuracy : arrays (n_layers,)
        No-transfer baseline: nested-CV accuracy of probes trained and tested within the
        test subset (mean over its folds).
    chance : float
        Majority-class share of the test subset.
    converged : bool array (n_layers, n_Cs)
        Convergence of the transfer fits.
    """

    layers: list
    Cs: np.ndarray
    classes: np.ndarray
    chosen_C: np.ndarray
    transfer_accuracy: np.ndarray
    transfer_balanced_accuracy: np.ndarray
    transfer_accuracy_per_C: np.ndarray
    within_accuracy: np.ndarray
    within_balanced_accuracy: np.ndarray
    chance: float
    converged: np.ndarray


def _subset_mask(mask, n, name) -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype != bool:
        if np.issubdtype(m.dtype, np.integer):
            out = np.zeros(n, bool)
            out[m] = True
            m = out
        else:
            raise InvalidOptionError(f"{name} must be a boolean mask or integer indices")
    if m.shape != (n,):
        raise ShapeMismatchError(f"{name} has shape {m.shape}; expected ({n},)")
    if not m.any():
        raise InvalidOptionError(f"{name} selects no stimuli")
    return m


@float32_matmuls
def probe_transfer(X, y, *, train_mask, test_mask, Cs: Sequence[float] = tuple(np.logspace(-4, 4, 9)),
                   folds: int = 5, inner_folds: int = 3, standardize: bool = True,
                   class_weight: str | Mapping | None = None, fit_intercept: bool = True,
                   max_iter: int = 1000, tol: float = 1e-4, layers: Sequence[str] | None = None,
                   seed: int = 0) -> TransferResult:
    """Transfer probes: train on one subset of stimuli, test on another.

    C is chosen by ``inner_folds``-fold stratified CV within the training subset, the probe
    is refitted on the whole training subset and scored on the test subset. Beside it, the
    no-transfer baseline: a nested-CV :func:`logistic_probe` (``folds`` outer,
    ``inner_folds`` inner) within the test subset. Standardisation uses training-subset
    statistics.

    Parameters
    ----------
    X, y
        As :func:`logistic_probe`.
    train_mask, test_mask : bool arrays (n_stimuli,) or integer indices
        Disjoint subsets (e.g. sounds judged hollow vs. not; 1D+2D vs. 3D objects).
    Cs, folds, inner_folds, standardize, class_weight, fit_intercept, max_iter, tol, layers, seed
        As :func:`logistic_probe`.

    Returns
    -------
    TransferResult
    """
    max_iter = check_positive_int(max_iter, "max_iter")
    inner_folds = check_positive_int(inner_folds, "inner_folds", minimum=2)
    Cs = _check_Cs(Cs)
    names, arrays, ids, y = _load(X, y, layers=layers)
    classes, codes = encode_labels(y)
    K, n = len(classes), len(codes)
    tr = _subset_mask(train_mask, n, "train_mask")
    te = _subset_mask(test_mask, n, "test_mask")
    if (tr & te).any():
        raise InvalidOptionError(f"train_mask and test_mask overlap in {int((tr & te).sum())} "
                                 "stimuli; transfer needs disjoint subsets")
    if len(np.unique(codes[tr])) < 2:
        raise InvalidOptionError("the training subset holds a single class")
    counts = np.bincount(codes[tr], minlength=K)
    small = [str(classes[c]) for c in np.flatnonzero((counts > 0) & (counts < inner_folds))]
    if small:
        raise InvalidFoldsError(f"classes {small[:5]} have fewer training-subset members than "
                                f"inner_folds={inner_folds}; use fewer inner folds")
    inner = _inner_masks(codes, (~tr)[None, :], inner_folds, seed + 1)[0]
    masks = [tr] + [tr & ~inner[g] for g in range(inner_folds)]
    SW = np.stack([_class_weights(codes, m, K, class_weight) for m in masks])
    preds, _, conv = _run(arrays, np.broadcast_to(codes, SW.shape), SW, Cs, n_classes=K,
                          fit_intercept=fit_intercept, max_iter=max_iter, tol=tol,
                          standardize=standardize, layer_batch=None)
    _warn_convergence(conv, "transfer problems")
    inner_score = np.mean([_accuracy(preds[:, 1 + g], codes, inner[g])[0]
                           for g in range(inner_folds)], axis=0)  # (L, nC)
    choice = np.argmax(inner_score, axis=1)
    acc_c, bacc_c = _accuracy(preds[:, 0], codes, te)  # (L, nC)
    L = len(arrays)
    within = logistic_probe([a[te] for a in arrays], np.asarray(y)[te], Cs=Cs, folds=folds,
                            inner_folds=inner_folds, standardize=standardize,
                            class_weight=class_weight, fit_intercept=fit_intercept,
                            max_iter=max_iter, tol=tol, seed=seed)
    chance = float(np.bincount(codes[te]).max() / te.sum())
    return TransferResult(names, Cs, classes, Cs[choice], acc_c[np.arange(L), choice],
                          bacc_c[np.arange(L), choice], acc_c,
                          within.nested_accuracy.mean(axis=1),
                          within.nested_balanced_accuracy.mean(axis=1), chance, conv[:, 0])


# --------------------------------------------------------------------------- permutation test


class PermutationResult(NamedTuple):
    """Result of :func:`probe_permutation_test`.

    Attributes
    ----------
    layers : list of str (n_layers,)
    C : array (n_layers,)
        The C used per layer.
    observed : array (n_layers,)
        Cross-validated score (mean over folds) with the true labels.
    null : array (n_perm, n_layers)
        The same score with permuted labels (same permutations for every layer).
    p : array (n_layers,)
        ``(1 + #{null >= observed}) / (1 + n_perm)``.
    p_fwe : array (n_layers,)
        Family-wise corrected over layers by the maximum statistic.
    converged : bool
        Whether every fit (observed and permuted) converged.
    """

    layers: list
    C: np.ndarray
    observed: np.ndarray
    null: np.ndarray
    p: np.ndarray
    p_fwe: np.ndarray
    converged: bool


@float32_matmuls
def probe_permutation_test(X, y, *, C=1.0, folds=5, n_perm: int = 1000, seed: int = 0,
                           standardize: bool = True, class_weight: str | Mapping | None = None,
                           scoring: str = "accuracy", fit_intercept: bool = True,
                           max_iter: int = 1000, tol: float = 1e-4,
                           layers: Sequence[str] | None = None,
                           perm_batch: int = 32, layer_batch: int | None = 1) -> PermutationResult:
    """Label-permutation test of probe accuracy, max-T corrected across layers.

    The labels are permuted over stimuli ``n_perm`` times (the same permutations for every
    layer); for each permutation the whole cross-validation is rerun (folds kept fixed)
    at each layer's C. p-values from :func:`alignjax.stats.permutation_pvalues`.

    Parameters
    ----------
    X, y
        As :func:`logistic_probe`.
    C : float or array (n_layers,)
        C per layer (e.g. ``ProbeResult.best_C`` or the most frequent ``chosen_C``).
    folds : int or fold specification
    n_perm : int
    seed : int
        Seed of the permutations (and of the folds when ``folds`` is an int).
    scoring : {"accuracy", "balanced_accuracy"}
    perm_batch : int
        Permutations solved together; bounds memory, never changes results.
    layer_batch : int or None
        Layers solved together per permutation chunk (default 1: memory is
        ``perm_batch * n_folds`` L-BFGS states); never changes results.

    Returns
    -------
    PermutationResult
    """
    from .stats import permutation_pvalues

    if scoring not in ("accuracy", "balanced_accuracy"):
        raise InvalidOptionError(f"scoring must be 'accuracy' or 'balanced_accuracy', got {scoring!r}")
    n_perm = check_positive_int(n_perm, "n_perm")
    perm_batch = check_positive_int(perm_batch, "perm_batch")
    names, arrays, _, y = _load(X, y, layers=layers)
    classes, codes = encode_labels(y)
    K, n, L = len(classes), len(codes), len(arrays)
    Cl = np.broadcast_to(np.asarray(C, dtype=float), (L,)).copy()
    Cs = _check_Cs(np.unique(Cl))
    cidx = np.searchsorted(Cs, Cl)
    outer = _resolve_probe_folds(folds, codes, classes, seed)
    F = outer.shape[0]
    rng = np.random.default_rng(seed)
    labelings = np.concatenate([codes[None], np.stack([rng.permutation(codes)
                                                       for _ in range(n_perm)])])
    stats = np.zeros((n_perm + 1, L))
    all_conv = True
    for start in range(0, n_perm + 1, perm_batch):
        chunk = labelings[start:start + perm_batch]
        m = chunk.shape[0]
        if m < perm_batch:  # pad to a fixed shape so the program compiles once
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], perm_batch - m, axis=0)])
        codes_splits = np.repeat(chunk, F, axis=0)  # (perm_batch * F, n)
        SW = np.stack([_class_weights(c, ~outer[i % F], K, class_weight)
                       for i, c in enumerate(codes_splits)])
        preds, _, conv = _run(arrays, codes_splits, SW, Cs, n_classes=K,
                              fit_intercept=fit_intercept, max_iter=max_iter, tol=tol,
                              standardize=standardize, layer_batch=layer_batch)
        preds = preds.reshape(L, perm_batch, F, len(Cs), n)[:, :m]
        all_conv &= bool(conv.reshape(L, perm_batch, F, len(Cs))[:, :m].all())
        for j in range(m):
            lab = chunk[j]
            sc = np.zeros((L, F))
            for f in range(F):
                a, b = _accuracy(preds[np.arange(L), j, f, cidx], lab, outer[f])
                sc[:, f] = a if scoring == "accuracy" else b
            stats[start + j] = sc.mean(axis=1)
    if not all_conv:
        _warn_convergence(np.array([False]), "permutation-test runs")
    p, p_fwe = permutation_pvalues(stats[0], stats[1:], alternative="greater")
    return PermutationResult(names, Cl, stats[0], stats[1:], np.asarray(p, float),
                             np.asarray(p_fwe, float), all_conv)


# --------------------------------------------------------------------------- ridge probes


class RidgeProbeResult(NamedTuple):
    """Result of :func:`ridge_probe`.

    Attributes
    ----------
    layers : list of str (n_layers,)
    alphas : array (n_alphas,)
    circular : bool
    predictions : array (n_layers, n_stimuli)
        Cross-validated predictions (degrees for circular targets, in [-180, 180)).
    r2 : array (n_layers,)
        Coefficient of determination of the pooled cross-validated predictions (NaN for
        circular targets).
    pearson_r : array (n_layers,)
        Pearson r between predictions and targets (NaN for circular targets).
    mae : array (n_layers,)
        Mean absolute error (circular: mean absolute angular error in degrees).
    fold_mae : array (n_layers, n_folds)
    chance_mae : float
        Error of predicting each training set's mean (circular: circular mean).
    chosen_alpha : array (n_layers, n_folds, n_targets)
        Alpha chosen by inner CV (n_targets = 2, sine and cosine, for circular targets).
    folds : bool array (n_folds, n_stimuli)
    """

    layers: list
    alphas: np.ndarray
    circular: bool
    predictions: np.ndarray
    r2: np.ndarray
    pearson_r: np.ndarray
    mae: np.ndarray
    fold_mae: np.ndarray
    chance_mae: float
    chosen_alpha: np.ndarray
    folds: np.ndarray


def _wrap_deg(a):
    return (np.asarray(a) + 180.0) % 360.0 - 180.0


def ridge_probe(X, y, *, alphas: Sequence[float] = tuple(np.logspace(-2, 6, 9)), folds=5,
                circular: bool = False, inner_folds: int = 5, standardize: bool = True,
                layers: Sequence[str] | None = None, seed: int = 0) -> RidgeProbeResult:
    """Cross-validated ridge probes of a continuous or circular target in every layer.

    For each layer and outer fold, :func:`alignjax.ridge.ridge_cv` (the closed-form
    multi-alpha ridge solver of the encoding module) chooses alpha by ``inner_folds``-fold
    CV on the training stimuli, refits on them, and predicts the test stimuli.
    Circular targets (e.g. azimuth in degrees) are regressed as ``(sin, cos)`` and the
    predicted angle is ``atan2``; errors are absolute angular differences in degrees.

    Parameters
    ----------
    X : array, sequence or mapping of arrays, or a feature store
        As :func:`logistic_probe`.
    y : array (n_stimuli,) or mapping stimulus id -> value
        Continuous target (distance, RT60, volume) or angle in degrees when ``circular``.
    alphas : sequence of float
        Ridge penalties searched by inner CV.
    folds : int or fold specification
        Outer folds (shuffled k-fold for an int, seeded by ``seed``).
    circular : bool
        Treat ``y`` as an angle in degrees.
    inner_folds : int
    standardize : bool
        Z-score features with training-fold statistics.
    layers : sequence of str, optional
    seed : int

    Returns
    -------
    RidgeProbeResult
    """
    from .ridge import ridge_cv

    inner_folds = check_positive_int(inner_folds, "inner_folds", minimum=2)
    alphas = np.asarray(alphas, dtype=float)
    names, arrays, _, y = _load(X, y, layers=layers)
    y = as_float_array(y, "y", ndim=1)
    check_finite(y, "y", axis_name="stimulus")
    n = len(y)
    if not circular and np.ptp(y) == 0:
        raise InvalidOptionError("the target is constant; nothing to predict")
    outer = resolve_folds(folds, n, seed=seed)
    F = outer.shape[0]
    if circular:
        rad = np.deg2rad(y)
        T = np.stack([np.sin(rad), np.cos(rad)], axis=1)
    else:
        T = y[:, None]
    L = len(arrays)
    pred = np.zeros((L, n))
    chosen = np.zeros((L, F, T.shape[1]))
    base = np.zeros(n)
    for f in range(F):
        tr, te = ~outer[f], outer[f]
        if circular:
            base[te] = np.rad2deg(np.arctan2(T[tr, 0].mean(), T[tr, 1].mean()))
        else:
            base[te] = y[tr].mean()
    for li, a in enumerate(arrays):
        for f in range(F):
            tr, te = ~outer[f], outer[f]
            r = ridge_cv(a[tr], T[tr], alphas=alphas, folds=inner_folds, score="r2",
                         standardize=standardize, seed=seed + 1 + f)
            p = a[te] @ np.asarray(r.coef, dtype=float) + np.asarray(r.intercept, dtype=float)
            chosen[li, f] = np.asarray(r.best_alpha)
            pred[li, te] = np.rad2deg(np.arctan2(p[:, 0], p[:, 1])) if circular else p[:, 0]
    if circular:
        err = np.abs(_wrap_deg(pred - y[None]))
        base_err = np.abs(_wrap_deg(base - y))
        r2 = np.full(L, np.nan)
        pr = np.full(L, np.nan)
    else:
        err = np.abs(pred - y[None])
        base_err = np.abs(base - y)
        ss = np.sum((y - y.mean()) ** 2)
        r2 = 1.0 - np.sum((pred - y[None]) ** 2, axis=1) / ss
        pc = pred - pred.mean(axis=1, keepdims=True)
        yc = y - y.mean()
        denom = np.linalg.norm(pc, axis=1) * np.linalg.norm(yc)
        pr = np.where(denom > 0, pc @ yc / np.where(denom > 0, denom, 1.0), 0.0)
    fold_mae = np.stack([err[:, outer[f]].mean(axis=1) for f in range(F)], axis=1)
    return RidgeProbeResult(names, alphas, bool(circular), pred, r2, pr, err.mean(axis=1),
                            fold_mae, float(base_err.mean()), chosen, outer)
