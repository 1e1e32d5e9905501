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
from .folds import fold_ids, group_kfold, resolve_folds
from .stats import fold_scores

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


def _check_sample_weight(sample_weight, n: int) -> None:
    sw = np.asarray(sample_weight, dtype=float)
    if sw.shape != (n,):
        raise ShapeMismatchError(f"sample_weight has shape {sw.shape}; expected ({n},)")
    if not np.isfinite(sw).all() or (sw < 0).any():
        bad = np.flatnonzero(~np.isfinite(sw) | (sw < 0))[:5].tolist()
        raise InvalidOptionError(f"sample_weight must be finite and >= 0; stimuli {bad} are not")
    if not sw.sum() > 0:
        raise InvalidOptionError("sample_weight is zero for every stimulus; nothing to fit")


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
        if sample_weight is not None:
            _check_sample_weight(sample_weight, Xn.shape[0])
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


def _missing(y: np.ndarray) -> np.ndarray:
    """Where labels are missing: NaN, None or pandas' NA."""
    if y.dtype.kind == "f":
        return np.isnan(y)
    if y.dtype.kind == "O":
        return np.array([v is None or (isinstance(v, float) and v != v) or
                         type(v).__name__ in ("NAType", "NaTType") for v in y], dtype=bool)
    return np.zeros(y.shape, bool)


def encode_labels(y) -> tuple[np.ndarray, np.ndarray]:
    """Class labels (any hashable values) -> ``(classes, codes)`` with ``classes[codes] == y``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ShapeMismatchError(f"labels must be one-dimensional, got shape {y.shape}")
    missing = _missing(y)
    if missing.any():
        raise AlignjaxInputError(
            f"{int(missing.sum())} labels are missing (None/NaN, at stimuli "
            f"{np.flatnonzero(missing)[:5].tolist()}); drop unlabelled stimuli first (e.g. "
            "df = df.dropna(subset=[column]) before probing)")
    try:
        classes, codes = np.unique(y, return_inverse=True)
    except TypeError as exc:
        raise AlignjaxInputError(f"labels mix types that cannot be ordered ({exc}); convert "
                                 "them to one type, e.g. str") from None
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


def _inner_masks(codes, outer_test, n_inner, seed, groups=None) -> np.ndarray:
    """Inner test masks (n_folds, n_inner, n_stimuli) within each outer training set.

    Stratified by class, or grouped (no group split across inner folds) when ``groups``
    is given.
    """
    rng = np.random.default_rng(seed)
    F, n = outer_test.shape
    out = np.zeros((F, n_inner, n), dtype=bool)
    for f in range(F):
        members = np.flatnonzero(~outer_test[f])
        if len(members) < n_inner:
            raise InvalidFoldsError(f"outer fold {f} has {len(members)} training stimuli, fewer "
                                    f"than inner_folds={n_inner}")
        if groups is None:
            fid = _deal(codes, members, n_inner, rng)
        else:
            fid = fold_ids(group_kfold(np.asarray(groups)[members], n_inner))
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


def _resolve_probe_folds(folds, codes, classes, seed, groups=None):
    n = len(codes)
    if groups is not None and len(groups) != n:
        raise ShapeMismatchError(f"groups has {len(groups)} entries for {n} stimuli")
    if isinstance(folds, (int, np.integer)) and not isinstance(folds, bool):
        k = int(folds)
        if groups is not None:
            return resolve_folds(k, n, groups=groups)
        counts = np.bincount(codes, minlength=len(classes))
        if counts.min() < k:
            small = [str(classes[i]) for i in np.flatnonzero(counts < k)[:5]]
            raise InvalidFoldsError(
                f"classes {small} have fewer members ({int(counts.min())} at least) than the {k} "
                "folds, so some test folds would miss them; use fewer folds or merge small classes")
        return resolve_folds(k, n, seed=seed, stratify=codes)
    return resolve_folds(folds, n, seed=seed)


class _Design(NamedTuple):
    """The splits of one labelling: outer (F, n) and inner (F, G, n) test masks, and the
    training mask of every split, outer folds first: (F + F * G, n)."""

    outer: np.ndarray
    inner: np.ndarray
    train: np.ndarray


def _cv_design(codes, classes, folds, inner_folds: int, seed: int, groups=None) -> _Design:
    """Outer and inner folds of a (possibly permuted) labelling.

    Folds given as an int are drawn from ``codes`` (stratified), so a permutation test that
    calls this for each permuted labelling redraws them as the procedure does.
    """
    outer = _resolve_probe_folds(folds, codes, classes, seed, groups)
    F, n = outer.shape
    inner = (_inner_masks(codes, outer, inner_folds, seed + 1, groups) if inner_folds
             else np.zeros((F, 0, n), bool))
    train = np.concatenate([~outer, ((~outer)[:, None] & ~inner).reshape(-1, n)])
    return _Design(outer, inner, train)


def _cv_scores(preds, codes, design: _Design, scoring: str):
    """Scores of one labelling's predictions (n_layers, n_splits, n_Cs, n_stimuli).

    Returns outer accuracy and balanced accuracy (n_layers, n_Cs, F) and the inner-CV
    choice of C per layer and outer fold (n_layers, F; first max = smallest C), or None
    without inner folds.
    """
    F, G = design.inner.shape[:2]
    acc, bacc = zip(*[_accuracy(preds[:, f], codes, design.outer[f]) for f in range(F)])
    acc, bacc = np.stack(acc, axis=-1), np.stack(bacc, axis=-1)
    if not G:
        return acc, bacc, None
    k = 0 if scoring == "accuracy" else 1
    inner = np.stack([np.mean([_accuracy(preds[:, F + f * G + g], codes, design.inner[f, g])[k]
                               for g in range(G)], axis=0) for f in range(F)], axis=-1)
    return acc, bacc, np.argmax(inner, axis=1)


def _at_choice(score, choice):
    """``score`` (n_layers, n_Cs, F) at the C chosen per layer and fold (n_layers, F)."""
    L, _, F = score.shape
    return score[np.arange(L)[:, None], choice, np.arange(F)[None, :]]


@float32_matmuls
def logistic_probe(X, y, *, Cs: Sequence[float] = tuple(np.logspace(-4, 4, 9)), folds=5,
                   inner_folds: int | None = 3, standardize: bool = True,
                   class_weight: str | Mapping | None = None, scoring: str = "accuracy",
                   fit_intercept: bool = True, max_iter: int = 1000, tol: float = 1e-4,
                   layers: Sequence[str] | None = None, layer_batch: int | None = None,
                   groups=None, seed: int = 0) -> ProbeResult:
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
        Outer folds: an int gives shuffled stratified k-fold (every class needs >= k
        members), or grouped k-fold with ``groups``; or anything
        :func:`alignjax.resolve_folds` accepts. Shuffled folds assume exchangeable rows
        (condition-averaged stimuli), not time series.
    inner_folds : int or None
        Inner folds within each outer training set used to choose C (nested CV),
        stratified, or grouped with ``groups``; ``None`` skips nested CV (``chosen_C`` and
        nested scores are then NaN / -1).
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
    groups : array (n_stimuli,), optional
        Group labels (e.g. recording, speaker, source sound): no group is split across
        outer or inner folds.
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
    K, n = len(classes), len(codes)
    G = 0 if inner_folds is None else check_positive_int(inner_folds, "inner_folds", minimum=2)
    design = _cv_design(codes, classes, folds, G, seed, groups)
    outer, F = design.outer, design.outer.shape[0]
    SW = np.stack([_class_weights(codes, m, K, class_weight) for m in design.train])
    preds, iters, conv = _run(arrays, np.broadcast_to(codes, SW.shape), SW, Cs, n_classes=K,
                              fit_intercept=fit_intercept, max_iter=max_iter, tol=tol,
                              standardize=standardize, layer_batch=layer_batch)
    L, nC = len(arrays), len(Cs)
    acc, bacc, choice = _cv_scores(preds, codes, design, scoring)
    confusion = np.stack([_confusion(preds[:, f], codes, outer[f], K) for f in range(F)], axis=2)
    cv_pred = np.zeros((L, nC, n), dtype=np.int32)
    for f in range(F):
        cv_pred[:, :, outer[f]] = preds[:, f][:, :, outer[f]]
    score = acc if scoring == "accuracy" else bacc
    best_C = Cs[np.argmax(score.mean(axis=2), axis=1)]
    chosen_C = np.full((L, F), np.nan)
    nested_acc = np.full((L, F), np.nan)
    nested_bacc = np.full((L, F), np.nan)
    nested_pred = np.full((L, n), -1, dtype=np.int32)
    if G:
        chosen_C = Cs[choice]
        nested_acc, nested_bacc = _at_choice(acc, choice), _at_choice(bacc, choice)
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
        C chosen by inner CV within the training subset.
    transfer_accuracy, transfer_balanced_accuracy : arrays (n_layers,)
        Scores on the test subset of the model trained on the whole training subset at
        ``chosen_C``.
    transfer_accuracy_per_C : array (n_layers, n_Cs)
    within_accuracy, within_balanced_accuracy : arrays (n_layers,)
        No-transfer baseline: nested-CV accuracy of probes trained and tested within the
        test subset (mean over its folds); NaN when it cannot run (see ``within_skipped``).
    chance : float
        Accuracy of a probe that ignores the features under the class shift: the share,
        in the test subset, of the training subset's majority class (averaged over tied
        majority classes). Not the test subset's own majority share: with an 80/20
        training subset and a 20/80 test subset a noise probe scores 0.2, not 0.8.
    chance_balanced : float
        Chance of the balanced accuracy: 1 / (number of classes in the test subset).
    p, p_fwe : arrays (n_layers,)
        Permutation p-values of the transfer score (``scoring``), uncorrected and max-T
        corrected over layers; NaN when ``n_perm=0``.
    converged : bool array (n_layers, n_Cs)
        Convergence of the transfer fits.
    within_skipped : str
        Why the within-subset baseline was not computed ("" when it was).
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
    chance_balanced: float
    p: np.ndarray
    p_fwe: np.ndarray
    converged: np.ndarray
    within_skipped: str


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


def _shift_chance(codes, tr, te) -> float:
    """Test-subset share of the training subset's majority class(es)."""
    counts = np.bincount(codes[tr], minlength=codes.max() + 1)
    majority = np.flatnonzero(counts == counts.max())
    return float(np.mean([(codes[te] == c).mean() for c in majority]))


def _permute_within(codes, subsets, rng) -> np.ndarray:
    """``codes`` with labels permuted within each subset (class counts of each kept)."""
    out = codes.copy()
    for m in subsets:
        idx = np.flatnonzero(m)
        out[idx] = codes[rng.permutation(idx)]
    return out


@float32_matmuls
def probe_transfer(X, y, *, train_mask, test_mask, Cs: Sequence[float] = tuple(np.logspace(-4, 4, 9)),
                   folds: int = 5, inner_folds: int = 3, standardize: bool = True,
                   class_weight: str | Mapping | None = None, scoring: str = "accuracy",
                   n_perm: int = 0, fit_intercept: bool = True, max_iter: int = 1000,
                   tol: float = 1e-4, layers: Sequence[str] | None = None, groups=None,
                   seed: int = 0, perm_batch: int = 16) -> TransferResult:
    """Transfer probes: train on one subset of stimuli, test on another.

    C is chosen by ``inner_folds``-fold CV within the training subset (stratified, or
    grouped by ``groups``), the probe is refitted on the whole training subset and scored
    on the test subset. Beside it, the no-transfer baseline: a nested-CV
    :func:`logistic_probe` (``folds`` outer, ``inner_folds`` inner) within the test subset,
    computed when the test subset allows it. Standardisation uses training-subset
    statistics. With ``n_perm``, labels are permuted within the training subset and
    within the test subset (each keeps its class counts, so the class shift is kept) and
    the whole procedure, C choice included, is rerun for each permutation.

    Parameters
    ----------
    X, y
        As :func:`logistic_probe`.
    train_mask, test_mask : bool arrays (n_stimuli,) or integer indices
        Disjoint subsets (e.g. sounds judged hollow vs. not; 1D+2D vs. 3D objects).
    scoring : {"accuracy", "balanced_accuracy"}
        Score that chooses C and that the permutation test uses.
    n_perm : int
        Permutations for the p-values (0: none).
    Cs, folds, inner_folds, standardize, class_weight, fit_intercept, max_iter, tol, layers, groups, seed
        As :func:`logistic_probe`.
    perm_batch : int
        Permutations solved together; never changes results.

    Returns
    -------
    TransferResult
    """
    from .stats import permutation_pvalues

    if scoring not in ("accuracy", "balanced_accuracy"):
        raise InvalidOptionError(f"scoring must be 'accuracy' or 'balanced_accuracy', got {scoring!r}")
    max_iter = check_positive_int(max_iter, "max_iter")
    inner_folds = check_positive_int(inner_folds, "inner_folds", minimum=2)
    n_perm = check_positive_int(n_perm, "n_perm", minimum=0)
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
    if small and groups is None:
        raise InvalidFoldsError(f"classes {small[:5]} have fewer training-subset members than "
                                f"inner_folds={inner_folds}; use fewer inner folds")

    def design_of(c):
        inner = _inner_masks(c, (~tr)[None, :], inner_folds, seed + 1, groups)
        return _Design(te[None, :], inner, np.concatenate([tr[None], tr & ~inner[0]]))

    k = 0 if scoring == "accuracy" else 1

    def statistic(pr, c, d):
        sc = _cv_scores(pr, c, d, scoring)
        return _at_choice(sc[k], sc[2])[:, 0]

    solve = dict(fit_intercept=fit_intercept, max_iter=max_iter, tol=tol,
                 standardize=standardize)
    design = design_of(codes)
    SW = np.stack([_class_weights(codes, m, K, class_weight) for m in design.train])
    preds, _, conv = _run(arrays, np.broadcast_to(codes, SW.shape), SW, Cs, n_classes=K,
                          layer_batch=None, **solve)
    _warn_convergence(conv, "transfer problems")
    acc, bacc, choice = _cv_scores(preds, codes, design, scoring)  # (L, nC, 1), (L, 1)
    L = len(arrays)
    p = p_fwe = np.full(L, np.nan)
    if n_perm:
        rng = np.random.default_rng(seed)
        labellings = [_permute_within(codes, (tr, te), rng) for _ in range(n_perm)]
        null, _ = _labelling_stats(
            arrays, labellings, design_of, statistic, Cs, K=K, class_weight=class_weight, perm_batch=min(perm_batch, n_perm),
            progress=False, layer_batch=None, **solve)
        observed = statistic(preds, codes, design)
        p, p_fwe = (np.asarray(v, float) for v in
                    permutation_pvalues(observed, null, alternative="greater"))
    within_acc = within_bacc = np.full(L, np.nan)
    skipped = ""
    try:
        within = logistic_probe([a[te] for a in arrays], np.asarray(y)[te], Cs=Cs, folds=folds,
                                inner_folds=inner_folds, standardize=standardize,
                                class_weight=class_weight, fit_intercept=fit_intercept,
                                max_iter=max_iter, tol=tol, seed=seed,
                                groups=None if groups is None else np.asarray(groups)[te])
        within_acc = within.nested_accuracy.mean(axis=1)
        within_bacc = within.nested_balanced_accuracy.mean(axis=1)
    except (InvalidFoldsError, InvalidOptionError) as exc:
        skipped = f"within-test-subset baseline not computed: {exc}"
    return TransferResult(names, Cs, classes, Cs[choice[:, 0]],
                          _at_choice(acc, choice)[:, 0], _at_choice(bacc, choice)[:, 0],
                          acc[:, :, 0], within_acc, within_bacc, _shift_chance(codes, tr, te),
                          1.0 / len(np.unique(codes[te])), p, p_fwe, conv[:, 0], skipped)


# --------------------------------------------------------------------------- permutation test


class PermutationResult(NamedTuple):
    """Result of :func:`probe_permutation_test`.

    Attributes
    ----------
    layers : list of str (n_layers,)
    C : array (n_layers,)
        The fixed C per layer, or NaN when C is chosen by inner CV (``inner_folds``).
    observed : array (n_layers,)
        Cross-validated score (mean over outer folds) with the true labels: at ``C``, or
        the nested-CV score (``logistic_probe(...).nested_accuracy.mean(1)`` with the same
        arguments).
    null : array (n_perm, n_layers)
        The same statistic, by the same procedure (folds and C choice included), for
        permuted labels (the same permutations for every layer).
    p : array (n_layers,)
        ``(1 + #{null >= observed}) / (1 + n_perm)``.
    p_fwe : array (n_layers,)
        Family-wise corrected over layers by the maximum statistic.
    converged : bool
        Whether every fit (observed and permuted) converged.
    statistic : str
        ``"nested_<scoring>"`` or ``"<scoring>_at_fixed_C"``.
    """

    layers: list
    C: np.ndarray
    observed: np.ndarray
    null: np.ndarray
    p: np.ndarray
    p_fwe: np.ndarray
    converged: bool
    statistic: str


def _padded(batch: list, size: int) -> list:
    """Pad a batch with copies of its first item so every chunk compiles to one shape."""
    return batch + [batch[0]] * (size - len(batch))


def _labelling_stats(arrays, labellings, design_of, statistic, Cs, *, K, class_weight,
                     perm_batch, progress, **solve):
    """The statistic of a procedure for each labelling: (n_labellings, n_layers).

    ``design_of(codes)`` gives the labelling's splits (:class:`_Design`); every split of
    ``perm_batch`` labellings is solved in one :func:`_run`; ``statistic(preds, codes,
    design)`` maps one labelling's predictions (n_layers, n_splits, n_Cs, n) to (n_layers,).
    """
    out = np.zeros((len(labellings), len(arrays)))
    conv_all = True
    steps = range(0, len(labellings), perm_batch)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="permutations", unit="batch")
    for start in steps:
        chunk = list(labellings[start:start + perm_batch])
        m = len(chunk)
        chunk = _padded(chunk, perm_batch)
        designs = [design_of(c) for c in chunk]
        B = designs[0].train.shape[0]
        codes_splits = np.repeat(np.stack(chunk), B, axis=0)
        SW = np.stack([_class_weights(c, t, K, class_weight)
                       for c, d in zip(chunk, designs) for t in d.train])
        preds, _, conv = _run(arrays, codes_splits, SW, Cs, n_classes=K, **solve)
        preds = preds.reshape(len(arrays), perm_batch, B, len(Cs), -1)
        conv_all &= bool(conv.reshape(len(arrays), perm_batch, -1)[:, :m].all())
        for j in range(m):
            out[start + j] = statistic(preds[:, j], chunk[j], designs[j])
    return out, conv_all


@float32_matmuls
def probe_permutation_test(X, y, *, C=None, Cs: Sequence[float] | None = None,
                           inner_folds: int | None = None, folds=5, n_perm: int = 1000,
                           seed: int = 0, groups=None, standardize: bool = True,
                           class_weight: str | Mapping | None = None, scoring: str = "accuracy",
                           fit_intercept: bool = True, max_iter: int = 1000, tol: float = 1e-4,
                           layers: Sequence[str] | None = None, perm_batch: int = 32,
                           layer_batch: int | None = 1,
                           progress: bool = False) -> PermutationResult:
    """Label-permutation test of cross-validated probe accuracy, max-T corrected over layers.

    For each of ``n_perm`` permutations of the labels over stimuli (the same permutations
    for every layer) the whole procedure is rerun on the permuted labels: folds given as
    an int are redrawn, stratified on the permuted labels (as they were drawn from the
    true ones), and, with ``inner_folds``, C is chosen again by nested CV, so the p-value
    is for the statistic :func:`logistic_probe` reports (``nested_accuracy.mean(1)``).
    With a fixed ``C`` instead, the test is conditional on that C: valid when C was fixed
    before seeing these labels, not when it was chosen on them. Labels are exchangeable
    across stimuli under the null, which assumes condition-averaged stimuli, not time
    series.

    Parameters
    ----------
    X, y
        As :func:`logistic_probe`.
    C : float or array (n_layers,), optional
        Fixed C per layer (default 1.0 without ``inner_folds``).
    Cs : sequence of float, optional
        With ``inner_folds``: the C grid of the nested CV (default that of
        :func:`logistic_probe`).
    inner_folds : int, optional
        Choose C by this many inner folds within each outer training set, as
        :func:`logistic_probe` does.
    folds : int or fold specification
        Outer folds; explicit folds (or ``groups``) do not depend on the labels and are kept.
    n_perm : int
    seed : int
        Seed of the permutations and of the folds (as :func:`logistic_probe`).
    groups : array (n_stimuli,), optional
        Grouped outer and inner folds (see :func:`logistic_probe`).
    scoring : {"accuracy", "balanced_accuracy"}
    perm_batch : int
        Permutations solved together; bounds memory, never changes results.
    layer_batch : int or None
        Layers solved together per permutation chunk; never changes results.
    progress : bool
        Show a progress bar over permutation batches.

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
    L = len(arrays)
    if inner_folds is not None:
        if C is not None:
            raise InvalidOptionError("give either a fixed C or inner_folds (C chosen by nested "
                                     "CV), not both")
        G = check_positive_int(inner_folds, "inner_folds", minimum=2)
        Cs = _check_Cs(tuple(np.logspace(-4, 4, 9)) if Cs is None else Cs)
        Cl = np.full(L, np.nan)
        k = 0 if scoring == "accuracy" else 1

        def statistic(preds, lab, design):
            sc = _cv_scores(preds, lab, design, scoring)
            return _at_choice(sc[k], sc[2]).mean(axis=1)
    else:
        if Cs is not None:
            raise InvalidOptionError("Cs is the grid of the nested CV: give it with inner_folds")
        G = 0
        Cl = np.broadcast_to(np.asarray(1.0 if C is None else C, dtype=float), (L,)).copy()
        Cs = _check_Cs(np.unique(Cl))
        cidx = np.searchsorted(Cs, Cl)

        def statistic(preds, lab, design):
            sc = _cv_scores(preds, lab, design, scoring)[0 if scoring == "accuracy" else 1]
            return sc[np.arange(L), cidx].mean(axis=1)

    rng = np.random.default_rng(seed)
    labellings = [codes] + [rng.permutation(codes) for _ in range(n_perm)]
    stats, conv = _labelling_stats(
        arrays, labellings, lambda c: _cv_design(c, classes, folds, G, seed, groups),
        statistic, Cs, K=len(classes), class_weight=class_weight, perm_batch=perm_batch,
        progress=progress, fit_intercept=fit_intercept, max_iter=max_iter, tol=tol,
        standardize=standardize, layer_batch=layer_batch)
    if not conv:
        _warn_convergence(np.array([False]), "permutation-test runs")
    p, p_fwe = permutation_pvalues(stats[0], stats[1:], alternative="greater")
    stat = f"nested_{scoring}" if G else f"{scoring}_at_fixed_C"
    return PermutationResult(names, Cl, stats[0], stats[1:], np.asarray(p, float),
                             np.asarray(p_fwe, float), conv, stat)


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
        Coefficient of determination within each outer test fold, averaged over folds
        (NaN for circular targets).
    pearson_r : array (n_layers,)
        Pearson r between predictions and targets within each outer test fold, averaged
        over folds (NaN for circular targets). Correlating the pooled predictions instead
        is biased downward (about -0.3 on a null target of 60 stimuli): each fold's
        predictions carry its own training mean.
    mae : array (n_layers,)
        Mean absolute error (circular: mean absolute angular error in degrees).
    fold_mae : array (n_layers, n_folds)
    fold_r2, fold_pearson_r : arrays (n_layers, n_folds)
        The per-fold scores (NaN for circular targets).
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
    fold_r2: np.ndarray
    fold_pearson_r: np.ndarray
    chance_mae: float
    chosen_alpha: np.ndarray
    folds: np.ndarray


def _wrap_deg(a):
    return (np.asarray(a) + 180.0) % 360.0 - 180.0


def ridge_probe(X, y, *, alphas: Sequence[float] = tuple(np.logspace(-2, 6, 9)), folds=5,
                circular: bool = False, inner_folds: int = 5, standardize: bool = True,
                layers: Sequence[str] | None = None, groups=None,
                seed: int = 0) -> RidgeProbeResult:
    """Cross-validated ridge probes of a continuous or circular target in every layer.

    For each layer and outer fold, :func:`alignjax.ridge.ridge_cv` (the closed-form
    multi-alpha ridge solver of the encoding module) chooses alpha by ``inner_folds``-fold
    CV on the training stimuli, refits on them, and predicts the test stimuli.
    Circular targets (e.g. azimuth in degrees) are regressed as ``(sin, cos)`` and the
    predicted angle is ``atan2``; errors are absolute angular differences in degrees.
    Scores are computed within each outer test fold and averaged over folds.

    Parameters
    ----------
    X : array, sequence or mapping of arrays, or a feature store
        As :func:`logistic_probe`.
    y : array (n_stimuli,) or mapping stimulus id -> value
        Continuous target (distance, RT60, volume) or angle in degrees when ``circular``.
    alphas : sequence of float
        Ridge penalties searched by inner CV.
    folds : int or fold specification
        Outer folds (shuffled k-fold for an int, seeded by ``seed``, which assumes
        exchangeable rows; grouped k-fold with ``groups``).
    circular : bool
        Treat ``y`` as an angle in degrees.
    inner_folds : int
        Inner folds within each outer training set (grouped with ``groups``).
    standardize : bool
        Z-score features with training-fold statistics.
    layers : sequence of str, optional
    groups : array (n_stimuli,), optional
        Group labels: no group is split across outer or inner folds.
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
    if groups is not None and len(groups) != n:
        raise ShapeMismatchError(f"groups has {len(groups)} entries for {n} stimuli")
    outer = resolve_folds(folds, n, seed=seed, groups=groups)
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
    inner = []
    for f in range(F):
        tr, te = ~outer[f], outer[f]
        if circular:
            base[te] = np.rad2deg(np.arctan2(T[tr, 0].mean(), T[tr, 1].mean()))
        else:
            base[te] = y[tr].mean()
        inner.append(resolve_folds(inner_folds, int(tr.sum()), seed=seed + 1 + f,
                                   groups=None if groups is None else np.asarray(groups)[tr]))
    for li, a in enumerate(arrays):
        for f in range(F):
            tr, te = ~outer[f], outer[f]
            r = ridge_cv(a[tr], T[tr], alphas=alphas, folds=inner[f], score="r2",
                         standardize=standardize, seed=seed + 1 + f)
            p = a[te] @ np.asarray(r.coef, dtype=float) + np.asarray(r.intercept, dtype=float)
            chosen[li, f] = np.asarray(r.best_alpha)
            pred[li, te] = np.rad2deg(np.arctan2(p[:, 0], p[:, 1])) if circular else p[:, 0]
    fold_r2 = np.full((L, F), np.nan)
    fold_r = np.full((L, F), np.nan)
    if circular:
        err = np.abs(_wrap_deg(pred - y[None]))
        base_err = np.abs(_wrap_deg(base - y))
    else:
        err = np.abs(pred - y[None])
        base_err = np.abs(base - y)
        fold_r, fold_r2 = (v.T for v in fold_scores(pred.T, np.repeat(y[:, None], L, 1), outer))
    fold_mae = np.stack([err[:, outer[f]].mean(axis=1) for f in range(F)], axis=1)
    return RidgeProbeResult(names, alphas, bool(circular), pred, fold_r2.mean(axis=1),
                            fold_r.mean(axis=1), err.mean(axis=1), fold_mae, fold_r2, fold_r,
                            float(base_err.mean()), chosen, outer)
