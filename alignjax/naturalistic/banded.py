"""Banded ridge: one regularisation per feature space ("band"), chosen per target by CV.

The objective, per target ``y``, for bands ``X_1 ... X_B`` with weights ``w`` on the
simplex and a scale ``alpha``::

    min_b  ||y - sum_b X_b beta_b - c||^2 + sum_b (alpha / w_b) ||beta_b||^2

Substituting ``beta_b = sqrt(w_b) gamma_b`` makes it plain ridge with penalty ``alpha`` on
the scaled features ``Z = [sqrt(w_1) X_1, ..., sqrt(w_B) X_B]``, so every alpha of a grid
comes from one decomposition of each training fold of ``Z`` per weight sample (the
shared decompositions of :mod:`alignjax.ridge`); the weights are searched over random
Dirichlet samples (himalaya's ``solve_group_ridge_random_search``) or given explicitly.
A band with ``w_b = 0`` is left out of the model.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec as P

from .._runtime import float32_matmuls, serial_lapack
from .._validation import InvalidOptionError, ShapeMismatchError, as_float_array, \
    check_choice, check_finite
from ..errors import InvalidFoldsError, ZeroVarianceError
from ..folds import resolve_folds
from ..ridge import SCORES, check_alphas
from ..ridge.kernels import CV_SOLVERS, chunk_loop, sharded
from ..ridge.placement import fold_groups, float_dtype, hot_rows, pick_cv_solver, \
    pick_solver, place_targets, plan_targets
from ..ridge.solvers import FOLD_SOLVERS, SCORERS, TIE_ULPS, pick_alpha

__all__ = ["banded_ridge_cv", "BandedRidgeResult", "dirichlet_weights", "r2_score_split",
           "check_bands", "band_slices"]


class BandedRidgeResult(NamedTuple):
    """Result of :func:`banded_ridge_cv`.

    Attributes
    ----------
    coef : array (n_features, n_targets)
        Coefficients on the input scale, refit on all samples with each target's chosen
        band weights and alpha; ``n_features`` is the total over the bands, rows in the
        order of ``Xs`` (band ``b``'s rows are ``band_slices(Xs)[b]``). Predictions are
        ``concat(Xs, 1) @ coef + intercept``.
    intercept : array (n_targets,)
    band_weights : array (n_targets, n_bands)
        Chosen weights ``w`` (rows on the simplex): band ``b``'s penalty is
        ``alpha / w_b``.
    alpha : array (n_targets,)
        Chosen alpha.
    cv_scores : array (n_iter, n_alphas, n_targets)
        Cross-validated score of every (weight sample, grid alpha), averaged over folds;
        the chosen pair maximises it (ties: the largest alpha, then the first sample).
        ``cv_scores.max(axis=(0, 1))`` is the chosen model's CV score; himalaya's
        ``cv_scores`` (n_iter, n_targets) is ``cv_scores.max(axis=1)``.
    """

    coef: jax.Array
    intercept: jax.Array
    band_weights: jax.Array
    alpha: jax.Array
    cv_scores: jax.Array


# --------------------------------------------------------------------------- inputs


def check_bands(Xs, Y) -> tuple[list[np.ndarray], np.ndarray]:
    """Validate the bands ``Xs`` (a sequence of (n_samples, n_features_b) arrays) and the
    responses ``Y`` (n_samples, n_targets) or (n_samples,); returns them as float arrays."""
    if isinstance(Xs, np.ndarray) or not isinstance(Xs, Sequence) or len(Xs) == 0:
        raise ShapeMismatchError("Xs must be a non-empty list of feature arrays, one per band "
                                 "(n_samples, n_features_b)")
    bands = [as_float_array(X, f"Xs[{b}]", ndim=2) for b, X in enumerate(Xs)]
    Y = as_float_array(Y, "Y", ndim=(1, 2))
    Y = Y[:, None] if Y.ndim == 1 else Y
    for b, X in enumerate(bands):
        if X.shape[1] == 0:
            raise ShapeMismatchError(f"band {b} (Xs[{b}]) has zero features; drop it or give it "
                                     "features")
        if X.shape[0] != Y.shape[0]:
            raise ShapeMismatchError(
                f"Xs[{b}] has {X.shape[0]} samples but Y has {Y.shape[0]}; every band and the "
                "responses must hold the same samples in the same order")
        check_finite(X, f"Xs[{b}]", axis_name="sample")
    if Y.shape[1] == 0:
        raise ShapeMismatchError("Y has no targets")
    check_finite(Y, "Y", axis_name="sample")
    return bands, Y


def band_slices(Xs) -> list[slice]:
    """Rows of each band in ``coef`` (the bands' columns in ``concat(Xs, 1)``)."""
    ends = np.cumsum([np.shape(X)[1] for X in Xs])
    return [slice(int(e - np.shape(X)[1]), int(e)) for X, e in zip(Xs, ends)]


def _time_series_folds(folds, n: int) -> np.ndarray:
    if isinstance(folds, (int, np.integer)) and not isinstance(folds, bool):
        raise InvalidFoldsError(
            "folds: an int would draw shuffled K folds, whose test samples have autocorrelated "
            "neighbours in training; pass alignjax.run_folds(runs) (leave-one-run-out) or "
            "explicit folds of whole runs")
    return resolve_folds(folds, n)


def _check_constant(Y: np.ndarray, masks: np.ndarray) -> None:
    """Refuse targets constant over a test fold (their score there is undefined)."""
    for k, m in enumerate(masks):
        const = np.ptp(Y[m], axis=0) == 0
        if const.any():
            cols = np.flatnonzero(const)
            raise ZeroVarianceError(
                f"Y: target(s) {cols[:5].tolist()}{' ...' if len(cols) > 5 else ''} are "
                f"constant over the test samples of fold {k} (a held-out run); drop those "
                "targets (e.g. voxels outside the brain) before fitting")


def dirichlet_weights(n_iter: int, n_bands: int, *, seed: int,
                      concentration=(0.1, 1.0)) -> np.ndarray:
    """Band weights to search (n_iter, n_bands): the first row uniform, then Dirichlet
    samples cycling through ``concentration``.

    The same samples as ``himalaya.kernel_ridge.generate_dirichlet_samples(n_iter, n_bands,
    concentration, random_state=seed)`` with its first row set to ``1 / n_bands``, as
    ``solve_group_ridge_random_search`` does.
    """
    conc = np.atleast_1d(np.asarray(concentration, np.float64))
    per = int(np.ceil(n_iter / len(conc)))
    rng = np.random.RandomState(seed)
    draws = [np.full((per, n_bands), 1.0 / n_bands) if c == np.inf
             else rng.dirichlet([c] * n_bands, per) for c in conc]
    w = np.swapaxes(np.stack(draws), 0, 1).reshape(-1, n_bands)[:n_iter]
    w[0] = 1.0 / n_bands
    return w


def _check_weights(weights, n_iter, n_bands: int, seed) -> np.ndarray:
    if weights is None:
        if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 1:
            raise InvalidOptionError(f"n_iter must be a positive int, got {n_iter!r}")
        return dirichlet_weights(int(n_iter), n_bands, seed=seed)
    w = as_float_array(weights, "weights", ndim=2)
    if w.shape[1] != n_bands or w.shape[0] == 0:
        raise ShapeMismatchError(f"weights must be (n_iter, n_bands) = (k, {n_bands}), got "
                                 f"shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InvalidOptionError("weights must be finite and non-negative")
    if np.any(np.abs(w.sum(axis=1) - 1.0) > 1e-6):
        bad = int(np.flatnonzero(np.abs(w.sum(axis=1) - 1.0) > 1e-6)[0])
        raise InvalidOptionError(
            f"weights rows must sum to 1 (points of the simplex); row {bad} sums to "
            f"{w[bad].sum():.6g}: divide each row by its sum (the overall scale is alpha's)")
    return w


# --------------------------------------------------------------------------- device passes


def banded_cv_local(X, Y, groups, alphas, scales, *, cv_solver, score, chunk):
    """Base and grid gains (n_iter, 1 + n_alphas, t) summed over folds for every weight
    sample: ridge CV of the scaled features ``X * scales[i]`` (scales (n_iter, p))."""
    def one(s):
        return cv_solver(X * s, Y, groups, alphas, None, score=score, fit_intercept=True,
                         standardize=False, chunk=chunk)

    return lax.map(one, scales)


def banded_refit_local(X, Y, alpha, choice, scales, *, solver, chunk):
    """Coefficients (p, t) on the input scale and intercepts (t,) of a fit on all rows,
    target ``j`` with the weights ``scales[choice[j]] ** 2`` and alpha ``alpha[j]``."""
    p, t = X.shape[1], Y.shape[1]
    mu = jnp.mean(X, axis=0)
    Xc = X - mu

    def one(i, coef):
        s = scales[i]
        U, spec, keep, back = solver.basis(Xc * s)
        sel = choice == i

        def body(start, coef):
            Yc = lax.dynamic_slice_in_dim(Y, start, chunk, axis=1)
            Yc = Yc - jnp.mean(Yc, axis=0)
            a = lax.dynamic_slice_in_dim(alpha, start, chunk)
            m = lax.dynamic_slice_in_dim(sel, start, chunk)
            D = solver.shrink(spec[:, None], keep[:, None], a[None, :])
            w = s[:, None] * (back @ (D * (U.T @ Yc)))
            cur = lax.dynamic_slice_in_dim(coef, start, chunk, axis=1)
            return lax.dynamic_update_slice_in_dim(coef, jnp.where(m[None], w, cur), start,
                                                   axis=1)

        return lax.cond(jnp.any(sel), lambda c: chunk_loop(body, t, chunk, c), lambda c: c,
                        coef)

    coef = lax.fori_loop(0, scales.shape[0], one, jnp.zeros((p, t), Y.dtype))
    return coef, jnp.mean(Y, axis=0) - mu @ coef


_T = P(None, "t")
banded_cv_pass = sharded(banded_cv_local, (P(), _T, P(), P(), P()), P(None, None, "t"),
                         ("cv_solver", "score", "chunk"))
banded_refit_pass = sharded(banded_refit_local, (P(), _T, P("t"), P("t"), P()),
                            (_T, P("t")), ("solver", "chunk"))


# --------------------------------------------------------------------------- selection


def _choose(gain: np.ndarray, base: np.ndarray, alphas: np.ndarray, *, unit: float,
            eps: float):
    """Chosen (sample, grid alpha) per target from gains (n_iter, n_alphas, t) over the
    base score (t,): per sample the largest alpha within the tie tolerance of its best
    (:func:`~alignjax.ridge.solvers.pick_alpha`), then the first sample within it of the
    best sample."""
    t = gain.shape[-1]
    idx = np.stack([pick_alpha(g, base, alphas, unit=unit, eps=eps, xp=np) for g in gain])
    best = np.take_along_axis(gain, idx[:, None, :], axis=1)[:, 0]  # (n_iter, t)
    scale = np.maximum(np.maximum(unit, np.abs(base)), np.max(np.abs(base + best), axis=0))
    top = best >= best.max(axis=0) - TIE_ULPS * eps * scale
    it = np.argmax(top, axis=0)
    return it, idx[it, np.arange(t)]


# --------------------------------------------------------------------------- public


@float32_matmuls
def banded_ridge_cv(Xs, Y, *, alphas, n_iter: int = 20, weights=None, folds, seed: int = 0,
                    score: str = "r2", chunk_size: int | None = None,
                    devices: Sequence | None = None) -> BandedRidgeResult:
    """Banded ridge with band weights and alpha chosen per target by cross-validation.

    Per target, band ``b``'s penalty is ``alpha / w_b`` with ``w`` one of the searched
    points of the simplex (see the module docstring for the objective); every (``w``,
    alpha) pair is scored by cross-validation over ``folds`` and the best one refit on all
    samples. Features and responses are centred with each training fold's means (an
    unpenalised intercept); the features are not standardised (do it per run beforehand
    if wanted).

    Parameters
    ----------
    Xs : sequence of arrays (n_samples, n_features_b)
        The bands (feature spaces), e.g. delayed features (:func:`alignjax.delay_features`)
        of several models or layers.
    Y : array (n_samples, n_targets) or (n_samples,)
    alphas : array (n_alphas,)
        Strictly positive grid of the overall penalty.
    n_iter : int
        Weight samples when ``weights`` is None: the uniform weights then Dirichlet
        samples (:func:`dirichlet_weights` with ``seed``, himalaya's samples).
    weights : array (n_iter, n_bands), optional
        Band weights to search instead (rows non-negative, summing to 1); ``n_iter`` is
        then ``len(weights)``.
    folds : folds
        Test masks of whole runs (:func:`alignjax.run_folds`) or any explicit form of
        :func:`alignjax.resolve_folds`; an int is refused (shuffled folds leak
        autocorrelation).
    seed : int
        Seed of the Dirichlet samples.
    score : {"r2", "pearson", "neg_mse"}
        Per-fold score (a target constant over a test fold is refused), averaged over
        folds.
    chunk_size : int, optional
        Targets per chunk on each device; never changes the result.
    devices : sequence of jax devices, optional
        Devices the targets are sharded over (default: all local devices).

    Returns
    -------
    BandedRidgeResult
        ``coef`` (n_features, n_targets), ``intercept`` (n_targets,), ``band_weights``
        (n_targets, n_bands), ``alpha`` (n_targets,), ``cv_scores`` (n_iter, n_alphas,
        n_targets).

    Notes
    -----
    With the same weights (``n_iter=weights``), alphas and folds, the chosen weights and
    alpha (``deltas = log(band_weights.T / alpha)``) and the refit coefficients are those
    of ``himalaya.ridge.solve_group_ridge_random_search(..., fit_intercept=True,
    score_func=himalaya.scoring.r2_score)`` wherever the best score is unique. The
    decomposition per fold is a thin SVD when the training folds have at least as many
    samples as features, else an eigendecomposition of the kernel (its full-kernel form
    from 1,024 samples on), as :func:`alignjax.ridge_cv` chooses.
    """
    bands, Y = check_bands(Xs, Y)
    alphas_np = check_alphas(alphas)
    check_choice(score, "score", SCORES)
    n, p = Y.shape[0], sum(X.shape[1] for X in bands)
    masks = _time_series_folds(folds, n)
    _check_constant(Y, masks)
    w = _check_weights(weights, n_iter, len(bands), seed)
    X = np.concatenate(bands, axis=1)
    cv_solver = pick_cv_solver("auto", masks, p, len(alphas_np), False)
    plan = plan_targets(n, p, len(alphas_np), Y.shape[1], chunk_size, devices,
                        hot_rows=hot_rows(cv_solver, len(alphas_np), masks, p))
    with serial_lapack(min(n, p), plan.devices):
        return jax.block_until_ready(_solve(X, bands, Y, w, alphas_np, masks, plan, cv_solver,
                                            pick_solver("auto", n, p), score))


def _solve(X, bands, Y, w, alphas_np, masks, plan, cv_solver, fit_solver, score):
    """The device work of :func:`banded_ridge_cv` on validated inputs."""
    dtype = float_dtype()
    targets = place_targets(Y, plan, centre=True)
    scales = np.repeat(np.sqrt(w), [b.shape[1] for b in bands], axis=1)  # (n_iter, p)
    Xd, sd = jnp.asarray(X, dtype), jnp.asarray(scales, dtype)
    out = banded_cv_pass(Xd, targets.device, fold_groups(masks), jnp.asarray(alphas_np, dtype),
                         sd, cv_solver=CV_SOLVERS[cv_solver], score=SCORERS[score],
                         chunk=plan.chunk, devices=plan.devices) / masks.shape[0]
    out = out[..., :plan.n_targets]
    base, gain = out[0, 0], out[:, 1:]
    it, ia = _choose(np.asarray(gain, np.float64), np.asarray(base, np.float64), alphas_np,
                     unit=SCORERS[score].unit, eps=float(np.finfo(dtype).eps))
    alpha = alphas_np[ia]
    pad = plan.n_padded - plan.n_targets
    coef, icpt = banded_refit_pass(
        Xd, targets.device, jnp.asarray(np.pad(alpha, (0, pad), constant_values=1.0), dtype),
        jnp.asarray(np.pad(it, (0, pad), constant_values=-1), jnp.int32), sd,
        solver=FOLD_SOLVERS[fit_solver], chunk=plan.chunk, devices=plan.devices)
    icpt = icpt[:plan.n_targets] + jnp.asarray(targets.offset, dtype)
    return BandedRidgeResult(coef[:, :plan.n_targets], icpt, jnp.asarray(w[it], dtype),
                             jnp.asarray(alpha, dtype), base[None, None] + gain)


def r2_score_split(y_true, y_pred) -> jax.Array:
    """Split the R² of a sum of predictions among its terms (the product measure).

    With ``P = sum_b y_pred[b]`` and ``y`` the responses minus their mean over samples,
    band ``b`` gets ``sum_t y_pred[b] (2 y - P) / sum_t y^2``, so the parts sum to the R²
    of ``P`` (``1 - ||y - P||^2 / ||y||^2``): a target's explained variance attributed to
    the feature spaces, correlations between their predictions included. JAX version of
    ``himalaya.scoring.r2_score_split(y_true, y_pred, include_correlation=True)``, equal
    to it for zero-mean ``y_true`` (which himalaya requires); a constant target scores 0.

    Parameters
    ----------
    y_true : array (n_samples, n_targets)
    y_pred : array (n_bands, n_samples, n_targets)
        Each band's prediction ``X_b @ coef_b`` as a deviation from the mean of ``y_true``
        (e.g. held-out features centred with the training means).

    Returns
    -------
    array (n_bands, n_targets)
    """
    y = jnp.asarray(as_float_array(y_true, "y_true", ndim=2), float_dtype())
    pr = jnp.asarray(as_float_array(y_pred, "y_pred", ndim=3), float_dtype())
    if pr.shape[1:] != y.shape:
        raise ShapeMismatchError(f"y_pred {pr.shape} must be (n_bands, *y_true.shape) with "
                                 f"y_true {y.shape}")
    return _r2_split(y, pr)


@jax.jit
def _r2_split(y, pr):
    yc = y - jnp.mean(y, axis=0)
    sst = jnp.sum(yc ** 2, axis=0)
    num = jnp.sum(pr * (2.0 * yc - jnp.sum(pr, axis=0))[None], axis=1)
    return jnp.where(sst > 0, num / jnp.where(sst > 0, sst, 1.0), 0.0)
