"""Ridge's internal interface: cross-validated alphas per target (with edge extension), the
refit on all rows, fit-then-predict of held-out rows, and one outer fold of a nested CV
for a stack of layers.

Used by :func:`alignjax.ridge_cv` and friends (:func:`cv_alphas`, :func:`refit`,
:func:`fit_predict`) and by :func:`alignjax.encode` (:func:`nested_fold_layers`, one
device pass per outer fold and width of layers). Inputs are validated already: ``X`` is a
device array of the default float dtype, ``targets`` come from
:func:`~alignjax.ridge.placement.place_targets`, solvers are registry names.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .kernels import CV_SOLVERS, cv_pass, predict_pass, refit_pass
from .nested import MAX_EXTEND_STEPS, folds_layers_pass, layers_fold_pass
from .placement import (
    Targets,
    extend_block,
    fold_groups,
    fold_shape,
    layer_batch,
    pad_targets,
    place_targets,
    plan_targets,
)
from .solvers import FOLD_SOLVERS, SCORERS, pick_alpha

__all__ = ["AlphaChoice", "cv_alphas", "refit", "fit_predict", "LayerFits",
           "PendingLayerFits", "nested_fold_layers", "ALPHA_MIN", "ALPHA_MAX"]

#: Bounds of the alpha-grid edge extension (Pepino et al.).
ALPHA_MIN, ALPHA_MAX = 1e-49, 1e50


class AlphaChoice(NamedTuple):
    """Result of :func:`cv_alphas`.

    Attributes
    ----------
    alpha : ndarray (n_targets,)
        Alpha chosen per target (off the grid where the edge extension moved it).
    score : ndarray (n_targets,)
        Cross-validated score at ``alpha``.
    cv_scores : array (n_alphas, n_targets)
        Cross-validated score of each grid alpha, averaged over folds.
    """

    alpha: np.ndarray
    score: np.ndarray
    cv_scores: jax.Array


def cv_alphas(X, targets: Targets, masks: np.ndarray, alphas: np.ndarray, *, solver: str,
              score: str, fit_intercept: bool, standardize: bool, extend_alphas: bool,
              chunk_size: int | None = None, eig=None) -> AlphaChoice:
    """Per-target alpha chosen by K-fold cross-validation on the rows of ``X``.

    Parameters
    ----------
    X : array (n_stimuli, n_features)
    targets : Targets
        Responses of the same rows (:func:`place_targets`).
    masks : ndarray (n_folds, n_stimuli) of bool
        Test masks of the folds.
    alphas : ndarray (n_alphas,)
    solver : str
        Key of ``CV_SOLVERS``.
    score : str
        Key of ``SCORERS``.
    extend_alphas : bool
        Halve (double) alphas chosen at the lower (upper) edge of the grid while the score
        strictly improves (Pepino et al.).
    chunk_size : int, optional
        Targets per chunk of the edge-extension passes (as given by the user).
    eig : tuple, optional
        The full kernel's eigendecomposition, for the ``"eigh_full"`` solver.
    """
    plan = targets.plan
    groups = fold_groups(masks)
    kw = dict(cv_solver=CV_SOLVERS[solver], score=SCORERS[score], fit_intercept=fit_intercept,
              standardize=standardize)
    out = cv_pass(X, targets.device, groups, jnp.asarray(alphas, X.dtype), eig,
                  chunk=plan.chunk, devices=plan.devices, **kw) / masks.shape[0]
    out = out[:, :plan.n_targets]
    base, gain = out[0], out[1:]
    cv = base[None] + gain
    base_np, gain_np = np.asarray(base, np.float64), np.asarray(gain, np.float64)
    best = pick_alpha(gain_np, base_np, alphas, unit=kw["score"].unit,
                      eps=float(np.finfo(X.dtype).eps), xp=np)
    alpha, best_gain = alphas[best], gain_np[best, np.arange(gain_np.shape[1])]
    if extend_alphas and len(alphas) >= 2:
        def grid_gains(a, cols):
            return _subset_grid_scores(X, targets.host, groups, a, cols, eig,
                                       chunk_size=chunk_size, devices=plan.devices,
                                       n_folds=masks.shape[0], **kw)[1:]

        alpha, best_gain = _extend(grid_gains, alpha, best_gain, base_np, alphas, X.dtype)
    return AlphaChoice(alpha, base_np + best_gain, cv)


def _subset_grid_scores(Xd, Y: np.ndarray, groups, alphas, cols, eig=None, *, chunk_size,
                        devices, n_folds, **kw) -> np.ndarray:
    """CV base and gains (1 + n_alphas, len(cols)) of the targets ``cols`` of host array
    ``Y`` (as :func:`~alignjax.ridge.kernels.grid_chunk_scores`).

    The subset is padded to a power of two (>= 64) so repeated calls with shrinking
    subsets compile only a few shapes.
    """
    n, p = Xd.shape
    bucket = max(64, 1 << int(np.ceil(np.log2(max(1, len(cols))))))
    bucket = min(bucket, max(Y.shape[1], 1))
    bucket = max(bucket, len(cols))
    plan = plan_targets(n, p, len(alphas), bucket, chunk_size, devices)
    Ysub = np.zeros((n, bucket), Y.dtype)
    Ysub[:, :len(cols)] = Y[:, cols]
    out = cv_pass(Xd, place_targets(Ysub, plan).device, groups, jnp.asarray(alphas, Xd.dtype),
                  eig, chunk=plan.chunk, devices=plan.devices, **kw)
    return np.asarray(out)[:, :len(cols)] / n_folds


def _extend(grid_gain_fn, best_alpha, best_gain, base, grid, dtype):
    """Halve/double edge-selected alphas while the CV score improves (Pepino et al.).

    Targets at the lower edge all walk ``lo/2, lo/4, ...`` and those at the upper edge
    ``hi*2, hi*4, ...`` in lockstep, so each step is one two-alpha grid pass
    (``grid_gain_fn(alphas (2,), cols) -> (2, len(cols))``, the gains over the base score
    ``base``) over the still-active targets ``cols`` only. Returns the alpha and its gain.

    An improvement must exceed a few hundred ulps of the score, so rounding noise on a
    flat score curve (tiny alphas: the minimum-norm limit; huge alphas with Pearson r) does
    not keep the search walking, and the chunk size cannot change the outcome.
    """
    lo_bound, hi_bound = _alpha_bounds(dtype)
    finfo = np.finfo(dtype)
    best_alpha = best_alpha.astype(np.float64)
    best_gain = best_gain.astype(np.float64)
    lo, hi = float(grid.min()), float(grid.max())
    down = best_alpha <= lo
    up = (best_alpha >= hi) & ~down
    active_dn, active_up = down.copy(), up.copy()
    for k in range(1, MAX_EXTEND_STEPS + 1):
        a_dn, a_up = lo / 2.0 ** k, hi * 2.0 ** k
        active_dn &= a_dn >= lo_bound
        active_up &= a_up <= hi_bound
        if not (active_dn.any() or active_up.any()):
            break
        cols = np.flatnonzero(active_dn | active_up)
        s = np.full((2, best_gain.shape[0]), -np.inf)
        s[:, cols] = np.asarray(grid_gain_fn(
            np.array([max(a_dn, lo_bound), min(a_up, hi_bound)]), cols), dtype=np.float64)
        tol = 256 * float(finfo.eps) * np.maximum(1.0, np.abs(base + best_gain))
        imp_dn = active_dn & (s[0] > best_gain + tol)
        imp_up = active_up & (s[1] > best_gain + tol)
        best_alpha = np.where(imp_dn, a_dn, np.where(imp_up, a_up, best_alpha))
        best_gain = np.where(imp_dn, s[0], np.where(imp_up, s[1], best_gain))
        active_dn, active_up = imp_dn, imp_up
    return best_alpha, best_gain


def _alpha_bounds(dtype) -> tuple[float, float]:
    """Lowest and highest alpha of the edge extension in ``dtype``."""
    finfo = np.finfo(dtype)
    return max(ALPHA_MIN, float(finfo.tiny) * 1e3), min(ALPHA_MAX, float(finfo.max) * 1e-3)


def refit(X, targets: Targets, alpha, *, solver: str, fit_intercept: bool, standardize: bool,
          eig=None):
    """Fit on all rows of ``X`` with per-target ``alpha`` (n_targets,).

    Returns ``coef`` (n_features, n_targets) and ``intercept`` (n_targets,); ``solver`` is
    a key of ``FOLD_SOLVERS`` (``eig``: the full kernel's eigendecomposition, for "eigh").
    """
    plan = targets.plan
    coef, icpt = refit_pass(X, targets.device, pad_targets(alpha, plan), eig,
                            solver=FOLD_SOLVERS[solver], fit_intercept=fit_intercept,
                            standardize=standardize, chunk=plan.chunk, devices=plan.devices)
    return coef[:, :plan.n_targets], icpt[:plan.n_targets]


def fit_predict(X, targets: Targets, train, test, alpha, *, solver: str, fit_intercept: bool,
                standardize: bool) -> jax.Array:
    """Fit on rows ``train`` with per-target ``alpha`` (n_targets,), predict rows ``test``.

    Returns predictions (n_test, n_targets); ``solver`` is a key of ``FOLD_SOLVERS``.
    """
    plan = targets.plan
    out = predict_pass(X, targets.device, jnp.asarray(train, jnp.int32),
                       jnp.asarray(test, jnp.int32), pad_targets(alpha, plan),
                       solver=FOLD_SOLVERS[solver], fit_intercept=fit_intercept,
                       standardize=standardize, chunk=plan.chunk, devices=plan.devices)
    return out[:, :plan.n_targets]


# --------------------------------------------------------------------------- nested CV


class LayerFits(NamedTuple):
    """One outer fold of :func:`nested_fold_layers`, on the host (with a leading fold
    axis on every field for a batch of folds).

    Attributes
    ----------
    alpha : ndarray (n_layers, n_targets)
        Alpha chosen per layer and target by the inner folds (with the edge extension).
    score : ndarray (n_layers, n_targets)
        Inner-CV score at ``alpha``.
    prediction : ndarray (n_layers, n_test, n_targets)
        Predictions of the outer test rows from the fit on the outer-training rows.
    gain : ndarray (n_layers, n_targets)
        Inner-CV score at ``alpha`` minus that of the training mean (the same for every
        layer): compare layers by it, as it keeps the dtype's precision where heavy
        shrinkage makes every score nearly that of the mean.
    """

    alpha: np.ndarray
    score: np.ndarray
    prediction: np.ndarray
    gain: np.ndarray


class PendingLayerFits(NamedTuple):
    """:class:`LayerFits` still on the devices (padded targets); :meth:`fetch` brings them
    to the host in one transfer."""

    index: jax.Array  # (n_layers, n_padded) grid index of the chosen alpha
    steps: jax.Array  # (n_layers, n_padded) signed edge-extension steps
    gain: jax.Array  # (n_layers, n_padded) inner-CV gain over the base score
    base: jax.Array  # (n_layers, n_padded) inner-CV score of the training mean
    prediction: jax.Array
    alphas: np.ndarray
    n_targets: int
    offset: np.ndarray | None = None  # host-side centring of the targets (Targets.offset)

    def fetch(self) -> LayerFits:
        """The fits on the host (float64), the extended alphas exactly ``lo/2^k``
        (``hi*2^k``) as :func:`cv_alphas` reports them."""
        index, steps, gain, base, pred = jax.device_get(
            (self.index, self.steps, self.gain, self.base, self.prediction))
        t = self.n_targets
        index, steps = index[..., :t], steps[..., :t].astype(np.float64)
        lo, hi = float(self.alphas.min()), float(self.alphas.max())
        alpha = np.where(steps < 0, lo / 2.0 ** -steps,
                         np.where(steps > 0, hi * 2.0 ** steps, self.alphas[index]))
        gain = gain[..., :t].astype(np.float64)
        pred = pred[..., :t].astype(np.float64)
        if self.offset is not None:
            pred = pred + self.offset
        return LayerFits(alpha, base[..., :t].astype(np.float64) + gain, pred, gain)


def _extend_bounds(alphas: np.ndarray, dtype, extend: bool) -> np.ndarray:
    """Most halving and doubling steps (2,) of the edge extension within the alpha bounds."""
    if not extend:
        return np.zeros(2, np.int32)
    lo_bound, hi_bound = _alpha_bounds(dtype)
    lo, hi = float(alphas.min()), float(alphas.max())
    k = np.arange(1, MAX_EXTEND_STEPS + 1)
    return np.array([np.sum(lo / 2.0 ** k >= lo_bound), np.sum(hi * 2.0 ** k <= hi_bound)],
                    np.int32)


def nested_fold_layers(Xs, targets: Targets, train, test, masks: np.ndarray,
                       alphas: np.ndarray, *, cv_solver: str, fit_solver: str, score: str,
                       fit_intercept: bool, standardize: bool,
                       extend_alphas: bool) -> PendingLayerFits:
    """One outer fold of a nested CV for a stack of layers of one width, on the devices.

    Per layer and target, the inner folds choose an alpha on the outer-training rows (as
    :func:`cv_alphas` on ``X[train]``, edge extension included), and the fit on rows
    ``train`` with that alpha predicts rows ``test`` (as :func:`fit_predict`), all layers
    in one device pass (``vmap`` over as many layers as fit in memory, see
    :func:`layer_batch`, in sequence over the rest); nothing comes back to the host until
    ``.fetch()`` on the result.

    A batch of outer folds of the same shapes (:func:`fold_shape`) runs in one vmapped
    pass when ``train``, ``test`` and ``masks`` are stacks over the folds (see
    :func:`outer_fold_batch`); every field of the result then has a leading fold axis.

    Parameters
    ----------
    Xs : array (n_layers, n_stimuli, n_features)
    targets : Targets
        Responses of all rows (:func:`place_targets`).
    train, test : int arrays (n_train,), (n_test,), or stacks (n_batch, ...) of them
        Outer-training and outer-test rows.
    masks : ndarray (n_folds, n_train) of bool, or a stack (n_batch, n_folds, n_train)
        Test masks of the inner folds, over the rows ``train``.
    alphas : ndarray (n_alphas,)
    cv_solver, fit_solver : str
        Keys of ``FOLD_SOLVERS`` for the inner folds and for the outer fit.
    score : str
        Key of ``SCORERS``.
    extend_alphas : bool
        Halve (double) alphas chosen at the lower (upper) edge of the grid while the score
        improves (Pepino et al.).
    """
    plan = targets.plan
    n_layers, n, p = Xs.shape
    masks = np.asarray(masks)
    batched = masks.ndim == 3
    if batched:
        shapes = {fold_shape(np.shape(te)[0], m) for te, m in zip(test, masks)}
        if len(shapes) != 1:
            raise ValueError(f"outer folds of different shapes run in one pass: {shapes}")
        groups = jax.tree.map(lambda *g: jnp.stack(g), *[fold_groups(m) for m in masks])
    else:
        groups = fold_groups(masks)
    n_test = np.shape(test)[-1]
    batch = layer_batch(n_layers, n, p, len(alphas), masks.shape[-2], plan, n_test=n_test)
    run = folds_layers_pass if batched else layers_fold_pass
    out = run(
        Xs, targets.device, jnp.asarray(train, jnp.int32), jnp.asarray(test, jnp.int32),
        groups, jnp.asarray(alphas, Xs.dtype),
        jnp.asarray(_extend_bounds(alphas, Xs.dtype, extend_alphas)),
        cv_solver=FOLD_SOLVERS[cv_solver], fit_solver=FOLD_SOLVERS[fit_solver],
        score=SCORERS[score], fit_intercept=fit_intercept, standardize=standardize,
        extend=bool(extend_alphas and len(alphas) >= 2), chunk=plan.chunk,
        block=extend_block(plan), layer_batch=batch,
        serial=plan.devices[0].platform == "cpu", devices=plan.devices)
    return PendingLayerFits(*out, alphas=alphas, n_targets=plan.n_targets,
                            offset=targets.offset)
