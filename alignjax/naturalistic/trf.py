"""Temporal response functions (TRFs) for continuous EEG/MEG: time-lagged ridge regression
with per-channel alphas chosen by nested run-wise cross-validation.

The model (forward, "encoding") of channel ``c`` at sample ``t`` of a run is

    y_c(t) = b_c + sum_k sum_f  w[k, f, c] * x_f(t - lag_k)

with lags ``lag_k = round(tmin * sfreq) .. round(tmax * sfreq)`` samples (MNE's
convention: a positive lag is a response *after* the stimulus), ``x`` zero-filled beyond
the edges of its own run (no lag reaches across runs), and the ridge objective
``||Y - D(X) W||^2 + alpha ||W||^2`` per channel. With ``fit_intercept`` the features and the
responses are centred with the training runs' means *before* the delays are formed (as
:class:`mne.decoding.TimeDelayingRidge` does, so the zero fill is a fill with the mean), and
the intercept is not penalised.

Everything is computed from per-run sufficient statistics: the Gram matrix of each run's
delayed features augmented with its delayed "ones" column (which carries the centring),
their products with the responses and the responses' sums and sums of squares. A training
set's normal equations, a held-out run's predictions' correlation with the data, and the
PCA of the features over any set of training runs are linear maps of the sums of these
statistics over runs, so one pass over the data serves every outer and inner fold; each
fold then costs one eigendecomposition of its (n_lags * n_features)-square Gram matrix and
every alpha of the grid is a diagonal rescaling in that eigenbasis (the ridge core's
"shared decompositions" idea, in the primal form that the TRF shape n_times >> n_lags *
n_features calls for).
"""

from __future__ import annotations

from functools import partial
from typing import Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._runtime import float32_matmuls
from .._validation import (
    InvalidFoldsError,
    InvalidOptionError,
    ShapeMismatchError,
    StimulusMismatchError,
    ZeroVarianceError,
    as_float_array,
    check_choice,
    check_finite,
    check_positive_int,
)
from ..ridge import SCORES, check_alphas, float_dtype, pick_alpha
from .delays import run_bounds

__all__ = ["trf", "TRFResult", "DIRECTIONS", "lags_in_samples"]

#: Values of the ``direction=`` option.
DIRECTIONS = ("forward", "backward")


class TRFResult(NamedTuple):
    """Result of :func:`trf`.

    Attributes
    ----------
    coef : array (n_lags, n_features, n_channels) (forward) or (n_lags, n_channels, n_features) (backward)
        TRF weights refit on all runs with each output's alpha, on the scale of the inputs
        (back-projected from the principal components when ``n_components`` is set).
        ``coef[k]`` belongs to lag ``times[k]``.
    times : ndarray (n_lags,)
        The lags in seconds, ascending (``round(tmin * sfreq) / sfreq`` ..
        ``round(tmax * sfreq) / sfreq``); positive: response after stimulus.
    alpha : array (n_channels,) (forward) or (n_features,) (backward)
        Alpha chosen per output by leave-one-run-out cross-validation over all runs (the
        alpha of ``coef``).
    r : array (n_channels,) (forward) or (n_features,) (backward)
        Pearson r between the held-out run's predictions and its data, averaged over the
        held-out runs of the outer leave-one-run-out loop (each outer fold chooses its own
        alphas by leave-one-run-out over its training runs only).
    """

    coef: jax.Array
    times: np.ndarray
    alpha: jax.Array
    r: jax.Array


def lags_in_samples(tmin: float, tmax: float, sfreq: float) -> np.ndarray:
    """The lags (n_lags,) in samples of ``tmin..tmax`` seconds at ``sfreq`` Hz, as
    ``mne.decoding.receptive_field._times_to_delays``: ``round(tmin * sfreq) ..
    round(tmax * sfreq)``."""
    return np.arange(int(np.round(tmin * sfreq)), int(np.round(tmax * sfreq)) + 1)


# --------------------------------------------------------------------------- validation


class _Runs(NamedTuple):
    """Validated inputs: the model's inputs and outputs per run (host, float64)."""

    ids: list
    inputs: list  # (n_r, n_in) per run
    outputs: list  # (n_r, n_out) per run


def _as_2d(a, name):
    a = as_float_array(a, name, ndim=(1, 2))
    return a[:, None] if a.ndim == 1 else a


def _split_runs(X, Y, runs) -> tuple[list, list, list]:
    """Per-run feature and response arrays, matched by run id."""
    if isinstance(X, Mapping) or isinstance(Y, Mapping):
        if not (isinstance(X, Mapping) and isinstance(Y, Mapping)):
            raise ShapeMismatchError(
                "X and Y must both be arrays (with runs= labelling their rows) or both be "
                f"mappings run id -> array; got {type(X).__name__} and {type(Y).__name__}")
        ids = list(X) if runs is None else list(runs)
        if len(set(ids)) != len(ids):
            raise StimulusMismatchError(f"runs lists a run id twice: {ids}")
        for what, m in (("X (features)", X), ("Y (responses)", Y)):
            missing = [r for r in ids if r not in m]
            if missing:
                raise StimulusMismatchError(
                    f"run ids {missing[:5]} are missing from {what} (it has {list(m)[:10]}); "
                    "features and responses are matched by run id")
        xs = [_as_2d(X[r], f"X of run {r!r}") for r in ids]
        ys = [_as_2d(Y[r], f"Y of run {r!r}") for r in ids]
        return ids, xs, ys
    X, Y = _as_2d(X, "X"), _as_2d(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ShapeMismatchError(f"X (features) has {X.shape[0]} samples but Y (responses) "
                                 f"has {Y.shape[0]}; both must hold the same samples of the "
                                 "same runs")
    if runs is None:
        raise InvalidFoldsError("runs= is required: the run id of every sample (n_times,), "
                                "for run-wise cross-validation")
    b = run_bounds(runs, X.shape[0])
    rows = [slice(int(a), int(z)) for a, z in zip(b.start, b.stop)]
    return b.ids.tolist(), [X[i] for i in rows], [Y[i] for i in rows]


def _check_runs(ids, xs, ys, lags, *, direction, sfreq, n_alphas) -> _Runs:
    if len(ids) < 2:
        raise InvalidFoldsError(f"run-wise cross-validation needs at least 2 runs, got "
                                f"{len(ids)} ({ids}); record or cut the data into several runs")
    if n_alphas > 1 and len(ids) < 3:
        raise InvalidFoldsError(
            f"choosing alpha by nested run-wise cross-validation needs at least 3 runs, got "
            f"{len(ids)}; give one alpha (alphas=[a]) or more runs")
    longest = int(np.max(np.abs(lags)))
    widths = {"X": set(), "Y": set()}
    for r, x, y in zip(ids, xs, ys):
        if x.shape[0] != y.shape[0]:
            raise ShapeMismatchError(f"run {r!r}: X (features) has {x.shape[0]} samples but Y "
                                     f"(responses) has {y.shape[0]}; trim both to the same "
                                     "samples")
        if x.shape[0] <= longest:
            raise InvalidOptionError(
                f"run {r!r} has {x.shape[0]} samples but the lags reach {longest} samples "
                f"({longest / sfreq:g} s at {sfreq:g} Hz); shorten tmin/tmax or drop the run")
        check_finite(x, f"X (features) of run {r!r}", axis_name="sample")
        check_finite(y, f"Y (responses) of run {r!r}", axis_name="sample")
        widths["X"].add(x.shape[1])
        widths["Y"].add(y.shape[1])
    for what, w in widths.items():
        if len(w) != 1:
            raise ShapeMismatchError(f"{what} has a different number of columns in different "
                                     f"runs: {sorted(w)}")
    inputs, outputs = (xs, ys) if direction == "forward" else (ys, xs)
    out_name = "channel of Y" if direction == "forward" else "feature of X"
    for r, o in zip(ids, outputs):
        sd = o.std(axis=0)
        flat = sd <= 1e-12 * np.maximum(np.abs(o).max(axis=0), np.finfo(float).tiny)
        if flat.any():
            raise ZeroVarianceError(
                f"{out_name} {np.flatnonzero(flat)[:5].tolist()} is constant within run {r!r}; "
                "its held-out correlation is undefined: drop it (e.g. a flat channel)")
    return _Runs(ids, inputs, outputs)


def _check_rates(sfreq, feature_sfreq, response_sfreq) -> float:
    s = float(sfreq)
    if not np.isfinite(s) or s <= 0:
        raise InvalidOptionError(f"sfreq must be a positive number of Hz, got {sfreq!r}")
    for name, v in (("feature_sfreq", feature_sfreq), ("response_sfreq", response_sfreq)):
        if v is not None and not np.isclose(float(v), s, rtol=1e-9, atol=0):
            raise InvalidOptionError(
                f"{name} is {float(v):g} Hz but sfreq is {s:g} Hz; resample the "
                f"{'features' if name[0] == 'f' else 'responses'} onto the analysis rate first")
    return s


# --------------------------------------------------------------------------- kernels


class _Stats(NamedTuple):
    """Sufficient statistics of runs (leading axis: run) or of a set of runs (summed).

    With ``Z`` the delayed inputs augmented per lag with the delayed ones column,
    (n_r, n_lags * (n_in + 1)): ``Gz = Z^T Z``, ``Cz = Z^T V``, ``zs = Z^T 1``, and of the
    outputs ``V``: ``vs`` its sums, ``vv`` its sums of squares; of the undelayed inputs
    ``U``: ``uu = U^T U`` and ``us`` its sums; ``n`` the number of samples.
    """

    Gz: jax.Array
    Cz: jax.Array
    zs: jax.Array
    vs: jax.Array
    vv: jax.Array
    uu: jax.Array
    us: jax.Array
    n: jax.Array


def _delay(A, delays):
    """Lagged copies (n, n_lags, m) of ``A`` (n, m): ``out[t, j] = A[t - delays[j]]``, 0
    outside ``0..n-1``."""
    d = max(abs(int(x)) for x in delays)
    Ap = jnp.pad(A, ((d, d), (0, 0)))
    n = A.shape[0]
    return jnp.stack([lax.slice_in_dim(Ap, d - k, d - k + n) for k in delays], axis=1)


@partial(jax.jit, static_argnames=("delays",))
def _run_stats(U, V, n_valid, *, delays) -> _Stats:
    """Statistics of each run from padded stacks ``U`` (n_runs, n_max, n_in), ``V``
    (n_runs, n_max, n_out) whose rows ``>= n_valid`` (n_runs,) are padding."""
    def one(args):
        u, v, n = args
        mask = (jnp.arange(u.shape[0]) < n).astype(u.dtype)[:, None]
        u, v = u * mask, v * mask
        Z = _delay(jnp.concatenate([u, mask], axis=1), delays) * mask[:, :, None]
        Z = Z.reshape(u.shape[0], -1)
        return _Stats(Z.T @ Z, Z.T @ v, jnp.sum(Z, 0), jnp.sum(v, 0), jnp.sum(v * v, 0),
                      u.T @ u, jnp.sum(u, 0), n.astype(u.dtype))

    return lax.map(one, (U, V, n_valid))


def _sum_runs(S: _Stats, w) -> _Stats:
    """The statistics of the runs weighted by ``w`` (n_runs,) of 0/1."""
    return jax.tree.map(lambda a: jnp.tensordot(w.astype(a.dtype), a, axes=1), S)


def _input_map(T: _Stats, *, n_components, fit_intercept):
    """Per-lag map ``M`` (n_in + 1, k) from an augmented lag block to the centred (and
    PCA-projected) inputs, the projection ``P`` (n_in, k) and the outputs' mean (n_out,),
    all from the training statistics ``T``."""
    q = T.uu.shape[0]
    if fit_intercept:
        m, mu = T.us / T.n, T.vs / T.n
    else:
        m, mu = jnp.zeros_like(T.us), jnp.zeros_like(T.vs)
    if n_components is None:
        P = jnp.eye(q, dtype=T.uu.dtype)
    else:  # principal axes of the training runs' (centred) inputs
        scatter = T.uu - T.n * jnp.outer(m, m)
        _, vecs = jnp.linalg.eigh(0.5 * (scatter + scatter.T))
        P = vecs[:, ::-1][:, :n_components]
    return jnp.concatenate([P, -(m @ P)[None]], axis=0), P, mu


def _project(M, S: _Stats, mu, n_lags):
    """Gram (n_lags*k, n_lags*k), cross products (n_lags*k, n_out) and column sums
    (n_lags*k,) of the centred, projected delayed inputs of the statistics ``S``, the
    outputs centred with ``mu``."""
    q1, k = M.shape
    Gz = S.Gz.reshape(n_lags, q1, n_lags, q1)
    zs = S.zs.reshape(n_lags, q1)
    Cz = S.Cz.reshape(n_lags, q1, -1) - zs[:, :, None] * mu
    G = jnp.einsum("xa,jxly,yb->jalb", M, Gz, M).reshape(n_lags * k, n_lags * k)
    C = jnp.einsum("xa,jxc->jac", M, Cz).reshape(n_lags * k, -1)
    s = jnp.einsum("xa,jx->ja", M, zs).reshape(-1)
    return G, C, s


class _Fit(NamedTuple):
    """One training set's solution in the eigenbasis of its Gram matrix."""

    lam: jax.Array  # (r,) eigenvalues (clipped at 0)
    V: jax.Array  # (r, r) eigenvectors
    B: jax.Array  # (r, n_out) V^T C
    M: jax.Array
    P: jax.Array
    mu: jax.Array


def _fit(S: _Stats, w, *, n_lags, n_components, fit_intercept) -> _Fit:
    T = _sum_runs(S, w)
    M, P, mu = _input_map(T, n_components=n_components, fit_intercept=fit_intercept)
    G, C, _ = _project(M, T, mu, n_lags)
    lam, V = jnp.linalg.eigh(0.5 * (G + G.T))
    return _Fit(jnp.maximum(lam, 0.0), V, V.T @ C, M, P, mu)


def _held_out(F: _Fit, S: _Stats, e, n_lags):
    """Statistics of held-out run ``e`` in the fit's eigenbasis: Gram, cross products and
    column sums of its design, and its outputs' sum, sum of squares (about the training
    mean) and length."""
    Se = jax.tree.map(lambda a: a[e], S)
    Gt, Ct, st = _project(F.M, Se, F.mu, n_lags)
    sy = Se.vs - Se.n * F.mu
    syy = Se.vv - 2 * F.mu * Se.vs + Se.n * F.mu ** 2
    return F.V.T @ Gt @ F.V, F.V.T @ Ct, F.V.T @ st, sy, syy, Se.n


def _scores(E, held, score: str):
    """Score (n_out,) on a held-out run of the fit whose eigenbasis weights are ``E``
    (r, n_out): Pearson r, coefficient of determination or negative MSE."""
    Gt, Ct, st, sy, syy, n = held
    spp = jnp.sum(E * (Gt @ E), 0)  # sum of squared predictions (about the training mean)
    spy = jnp.sum(E * Ct, 0)
    sp = st @ E
    var_y = syy - sy ** 2 / n
    if score == "pearson":
        var_p = spp - sp ** 2 / n
        tiny = jnp.finfo(E.dtype).tiny
        ok = var_p > 1e3 * tiny
        return jnp.where(ok, (spy - sp * sy / n) / jnp.sqrt(jnp.where(ok, var_p, 1.0) * var_y),
                         0.0)
    sse = syy - 2 * spy + spp
    return 1.0 - sse / var_y if score == "r2" else -sse / n


def _shrink(F: _Fit, alpha):
    """Eigenbasis weights (r, n_out) of the ridge solution for alpha (n_out,) or ()."""
    return F.B / (F.lam[:, None] + alpha)


@partial(jax.jit, static_argnames=("n_lags", "n_components", "fit_intercept", "score"))
def _grid_scores(S: _Stats, train_w, test, alphas, *, n_lags, n_components, fit_intercept,
                 score):
    """Held-out scores (n_pairs, n_alphas, n_out) of every grid alpha for the (training
    runs ``train_w`` (n_pairs, n_runs), held-out run ``test`` (n_pairs,)) pairs."""
    def one(pair):
        w, e = pair
        F = _fit(S, w, n_lags=n_lags, n_components=n_components, fit_intercept=fit_intercept)
        held = _held_out(F, S, e, n_lags)
        return jax.vmap(lambda a: _scores(_shrink(F, a), held, score))(alphas)

    return lax.map(one, (train_w, test))


@partial(jax.jit, static_argnames=("n_lags", "n_components", "fit_intercept"))
def _outer_r(S: _Stats, train_w, test, alpha, *, n_lags, n_components, fit_intercept):
    """Pearson r (n_folds, n_out) on each held-out run of the fit on its training runs
    with per-output alphas ``alpha`` (n_folds, n_out)."""
    def one(fold):
        w, e, a = fold
        F = _fit(S, w, n_lags=n_lags, n_components=n_components, fit_intercept=fit_intercept)
        return _scores(_shrink(F, a), _held_out(F, S, e, n_lags), "pearson")

    return lax.map(one, (train_w, test, alpha))


@partial(jax.jit, static_argnames=("n_lags", "n_components", "fit_intercept"))
def _refit(S: _Stats, alpha, *, n_lags, n_components, fit_intercept):
    """TRF weights (n_lags, n_in, n_out) on all runs with per-output alphas (n_out,), on
    the inputs' scale."""
    w = jnp.ones(S.n.shape, S.n.dtype)
    F = _fit(S, w, n_lags=n_lags, n_components=n_components, fit_intercept=fit_intercept)
    W = (F.V @ _shrink(F, alpha)).reshape(n_lags, F.P.shape[1], -1)
    return jnp.einsum("fa,jac->jfc", F.P, W)


# --------------------------------------------------------------------------- public


def _pad(arrays, dtype):
    n_max = max(a.shape[0] for a in arrays)
    out = np.zeros((len(arrays), n_max, arrays[0].shape[1]), dtype)
    for i, a in enumerate(arrays):
        out[i, :a.shape[0]] = a
    return out


def _loro(n_runs: int, exclude=None):
    """Leave-one-run-out pairs (training weights (n_runs_left, n_runs), held-out run
    (n_runs_left,)) over the runs other than ``exclude``."""
    keep = [i for i in range(n_runs) if i != exclude]
    w = np.zeros((len(keep), n_runs))
    for f, i in enumerate(keep):
        w[f, [j for j in keep if j != i]] = 1.0
    return w, np.asarray(keep, np.int32)


def _choose(scores, alphas, score: str, eps: float) -> np.ndarray:
    """Alpha (n_out,) with the best score averaged over folds (scores (n_folds, n_alphas,
    n_out)); ties (within rounding) go to the largest alpha, as in :func:`ridge_cv`."""
    mean = np.asarray(scores, np.float64).mean(axis=0)
    unit = 0.0 if score == "neg_mse" else 1.0
    idx = pick_alpha(mean, np.zeros(mean.shape[1]), alphas, unit=unit, eps=eps, xp=np)
    return alphas[idx]


@float32_matmuls
def trf(X, Y, *, tmin: float, tmax: float, sfreq: float, alphas, runs,
        direction: str = "forward", fit_intercept: bool = True,
        n_components: int | None = None, score: str = "pearson",
        feature_sfreq: float | None = None,
        response_sfreq: float | None = None) -> TRFResult:
    """Temporal response function (TRF) of continuous EEG/MEG by time-lagged ridge, with
    per-channel alphas chosen by nested leave-one-run-out cross-validation.

    Parameters
    ----------
    X : array (n_times, n_features) or (n_times,), or mapping run id -> such an array
        Stimulus features on the brain's clock (an envelope, a spectrogram, a model layer).
    Y : array (n_times, n_channels) or (n_times,), or mapping run id -> such an array
        Continuous responses (EEG/MEG channels) at ``sfreq``.
    tmin, tmax : float
        First and last lag, in seconds (``tmin <= tmax``); a positive lag is a response
        after the stimulus (MNE's convention). The lags are ``round(tmin * sfreq) ..
        round(tmax * sfreq)`` samples (:func:`lags_in_samples`).
    sfreq : float
        Sample rate of ``X`` and ``Y`` in Hz.
    alphas : array (n_alphas,)
        Ridge penalties (as sklearn's ``Ridge(alpha)``: no scaling by the number of
        samples). One alpha skips the alpha search (2 runs then suffice).
    runs : array (n_times,) or sequence of run ids
        With arrays: the run id of each sample (each run one contiguous block of samples
        in time order, as for :func:`alignjax.delay_features`). With mappings: the run ids to use, in order (matched
        by id in ``X`` and ``Y``). At least 2 runs (3 to choose among several alphas).
    direction : {"forward", "backward"}
        ``"forward"`` (encoding): predict each channel from the lagged features.
        ``"backward"`` (stimulus reconstruction, decoding): predict each feature at time
        ``t`` from all channels at ``t + lag`` for the same ``tmin..tmax`` (the lags are
        reversed internally, as in the mTRF toolbox, so ``times`` keeps its meaning).
    fit_intercept : bool
        Centre the inputs and outputs with the training runs' means before delaying (as
        :class:`mne.decoding.TimeDelayingRidge`); the intercept is not penalised.
    n_components : int, optional
        Reduce the model's inputs (features forward, channels backward) to their first
        ``n_components`` principal components, fitted on each fit's training runs only
        (inner, outer and final fits alike); ``coef`` is back-projected to the inputs.
    score : {"pearson", "r2", "neg_mse"}
        Held-out-run score that chooses the alphas (averaged over the inner folds).
    feature_sfreq, response_sfreq : float, optional
        The sample rates the features and the responses were produced at (e.g.
        ``raw.info["sfreq"]``); when given, each must equal ``sfreq``.

    Returns
    -------
    TRFResult
        Forward: ``coef`` (n_lags, n_features, n_channels), ``times`` (n_lags,) in seconds,
        ``alpha`` (n_channels,), ``r`` (n_channels,). Backward: ``coef`` (n_lags,
        n_channels, n_features) (decoder weights of the channels at ``t + times[k]``),
        ``alpha`` (n_features,), ``r`` (n_features,) (reconstruction accuracy).

    Notes
    -----
    Cross-validation is over whole runs. ``alpha`` is chosen per output by
    leave-one-run-out over all runs and ``coef`` refit on all runs with it. ``r`` comes
    from the nested loop: for every held-out run, the alphas are chosen by
    leave-one-run-out over the other runs, the model is fit on those runs and Pearson r
    is computed on every sample of the held-out run (its lags zero-filled at the edges).

    With one alpha, ``coef`` equals ``mne.decoding.ReceptiveField(tmin, tmax, sfreq,
    estimator=alpha, fit_intercept=fit_intercept).fit(X3, Y3).coef_.transpose(2, 1, 0)``
    (``TimeDelayingRidge`` with ``edge_correction=True``), with the runs as MNE's epochs
    ``X3`` (n_times, n_runs, n_features); backward, ``ReceptiveField(-tmax, -tmin, ...)``
    fit from the channels to the features, with its lag axis reversed.
    """
    check_choice(direction, "direction", DIRECTIONS)
    check_choice(score, "score", SCORES)
    s = _check_rates(sfreq, feature_sfreq, response_sfreq)
    if not (np.isfinite(tmin) and np.isfinite(tmax)) or tmin > tmax:
        raise InvalidOptionError(f"need finite tmin <= tmax (seconds), got tmin={tmin!r}, "
                                 f"tmax={tmax!r}")
    alphas_np = check_alphas(alphas)
    lags = lags_in_samples(tmin, tmax, s)
    data = _check_runs(*_split_runs(X, Y, runs), lags, direction=direction, sfreq=s,
                       n_alphas=len(alphas_np))
    n_in = data.inputs[0].shape[1]
    if n_components is not None:
        n_components = check_positive_int(n_components, "n_components")
        if n_components > n_in:
            raise InvalidOptionError(f"n_components={n_components} exceeds the {n_in} "
                                     f"{'features' if direction == 'forward' else 'channels'}")
    delays = tuple(int(k) for k in (lags if direction == "forward" else -lags))
    return _trf_solve(data, alphas_np, delays, fit_intercept=bool(fit_intercept),
                      n_components=n_components, score=score, times=lags / s)


def _trf_solve(data: _Runs, alphas_np, delays, *, fit_intercept, n_components, score,
               times) -> TRFResult:
    """The device work of :func:`trf` on validated inputs."""
    dtype = float_dtype()
    U, V = data.inputs, data.outputs
    if fit_intercept:  # centre on the host (float64): the training means then move little
        mu_u = np.concatenate(U).mean(0)
        mu_v = np.concatenate(V).mean(0)
        U, V = [u - mu_u for u in U], [v - mu_v for v in V]
    n = np.asarray([u.shape[0] for u in U], np.int32)
    S = _run_stats(jnp.asarray(_pad(U, dtype)), jnp.asarray(_pad(V, dtype)), jnp.asarray(n),
                   delays=delays)
    opts = dict(n_lags=len(delays), n_components=n_components, fit_intercept=fit_intercept)
    n_runs, n_out = len(U), V[0].shape[1]
    eps = float(np.finfo(dtype).eps)
    grid = jnp.asarray(alphas_np, dtype)
    if len(alphas_np) == 1:
        alpha = np.full(n_out, alphas_np[0])
        outer_alpha = np.full((n_runs, n_out), alphas_np[0])
    else:
        # one batch of (training runs, held-out run) pairs: the LORO of all runs (final
        # alpha) and, per outer run o, the LORO of the other runs (o's alpha)
        pairs = [_loro(n_runs)] + [_loro(n_runs, exclude=o) for o in range(n_runs)]
        w = np.concatenate([p[0] for p in pairs])
        e = np.concatenate([p[1] for p in pairs])
        sc = np.asarray(_grid_scores(S, jnp.asarray(w, dtype), jnp.asarray(e), grid,
                                     score=score, **opts))
        alpha = _choose(sc[:n_runs], alphas_np, score, eps)
        inner = sc[n_runs:].reshape(n_runs, n_runs - 1, *sc.shape[1:])
        outer_alpha = np.stack([_choose(inner[o], alphas_np, score, eps)
                                for o in range(n_runs)])
    w_out = 1.0 - np.eye(n_runs)
    r = _outer_r(S, jnp.asarray(w_out, dtype), jnp.arange(n_runs, dtype=jnp.int32),
                 jnp.asarray(outer_alpha, dtype), **opts)
    coef = _refit(S, jnp.asarray(alpha, dtype), **opts)
    return TRFResult(coef=coef, times=np.asarray(times, np.float64),
                     alpha=jnp.asarray(alpha, dtype), r=jnp.mean(r, axis=0))
