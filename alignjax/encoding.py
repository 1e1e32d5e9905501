"""Voxel-wise encoding models: nested cross-validated ridge with layer x alpha selection.

For each outer fold, the inner folds (inside the outer-training stimuli only) choose per
target a layer and an alpha; the chosen ridge model is refit on the outer-training stimuli
and predicts the held-out ones. Feature standardisation uses the statistics of each fit's
own training stimuli (inner-training for selection, outer-training for the refit), so
no held-out stimulus ever influences standardisation, alpha or layer choice.

Scores follow the auditory fMRI literature: within each outer test fold, ``r`` (Pearson),
``r2`` (``r**2`` with negative ``r`` set to 0) and ``cod`` (coefficient of determination)
are computed, then averaged over the outer folds (the per-fold values are kept, and their
median is summarised). Pooling the folds' predictions before correlating them biases ``r``
downward: each fold's predictions carry that fold's training mean, which is anti-correlated
with its held-out mean (null voxels of 165 stimuli read a median pooled r of -0.11). Pooled
scoring is kept as an option (``pooled=True``).

Default folds are shuffled K-fold, which assumes exchangeable rows (condition-averaged
responses to distinct stimuli), not time series: for those, pass contiguous or grouped folds.
"""

from __future__ import annotations

import contextlib
import math
import os
from functools import partial
from typing import Any, Mapping, NamedTuple

import jax.numpy as jnp
import numpy as np

from . import distributed, ridge
from ._runtime import float32_matmuls, serial_lapack
from ._validation import (
    InvalidOptionError,
    ShapeMismatchError,
    as_float_array,
    check_choice,
    check_finite,
    check_layers,
    check_positive_int,
    width_groups,
)
from .folds import nested_folds, resolve_folds
from .options import renamed
from .permutation import permutation_test
from .stats import column_scores, fdr_bh, fold_scores, r2_from_r
from .io import FeatureStore, LayerSet, Responses, load_layers

__all__ = ["encode", "EncodingResult", "encoding_permutation_test", "EncodingPermutationResult",
           "split_subjects", "summarize", "concat_targets", "constant_targets", "TARGET_FIELDS"]


class EncodingResult(NamedTuple):
    """Result of :func:`encode`.

    Attributes
    ----------
    prediction : ndarray (n_stimuli, n_targets)
        Cross-validated predictions (each stimulus predicted by the model of the outer fold
        that held it out), with the layer and alpha selected per target. NaN for excluded
        targets, and everywhere when ``select_layer=False``.
    r, r2, cod : ndarray (n_targets,)
        Pearson r, ``max(r, 0)**2`` and coefficient of determination of ``prediction``,
        each computed within every outer test fold and averaged over the folds (with
        ``pooled=True``: computed once on the pooled predictions).
    fold_r, fold_r2, fold_cod : ndarray (n_outer, n_targets)
        The per-fold scores of ``prediction`` (NaN for excluded targets).
    best_layer : ndarray (n_outer, n_targets) of int
        Layer chosen per outer fold and target (-1 for excluded targets or without selection).
    best_alpha : ndarray (n_outer, n_targets)
        Alpha chosen with that layer.
    layer_r, layer_r2, layer_cod : ndarray (n_layers, n_targets)
        The same scores for each layer on its own (alpha chosen per target and outer fold by
        the inner folds), always computed, aggregated like ``r``.
    layer_fold_r, layer_fold_cod : ndarray (n_layers, n_outer, n_targets)
        Per-fold Pearson r and coefficient of determination of each layer.
    layer_alpha : ndarray (n_outer, n_layers, n_targets)
        Alpha chosen per outer fold for each layer.
    valid : ndarray (n_targets,) of bool
        False for targets excluded because they are constant (all values equal, or a
        spread within rounding of their dtype: :func:`constant_targets`); they are not
        fitted and their scores are NaN.
    layer_names : tuple of str
    subjects : tuple of str
        Subject names (one ``"subject"`` for a single array).
    subject_index : ndarray (n_targets,) of int
        Subject of each target (index into ``subjects``).
    folds : ndarray (n_outer, n_stimuli) of bool
        Outer test masks.
    summary : dict
        Per-subject medians over valid targets and mean +- SEM across subjects
        (see :func:`summarize`).
    """

    prediction: np.ndarray
    r: np.ndarray
    r2: np.ndarray
    cod: np.ndarray
    fold_r: np.ndarray
    fold_r2: np.ndarray
    fold_cod: np.ndarray
    best_layer: np.ndarray
    best_alpha: np.ndarray
    layer_r: np.ndarray
    layer_r2: np.ndarray
    layer_cod: np.ndarray
    layer_fold_r: np.ndarray
    layer_fold_cod: np.ndarray
    layer_alpha: np.ndarray
    valid: np.ndarray
    layer_names: tuple
    subjects: tuple
    subject_index: np.ndarray
    folds: np.ndarray
    summary: dict


# --------------------------------------------------------------------------- inputs


def _as_layers(layers) -> LayerSet:
    if isinstance(layers, LayerSet):
        return layers
    if isinstance(layers, (FeatureStore, str, os.PathLike, Mapping, np.ndarray)) or hasattr(layers, "__iter__"):
        return load_layers(layers)
    raise ShapeMismatchError("layers must be a sequence of (n_stimuli, n_features) arrays, a "
                             f"mapping name -> array, or a feature store; got {type(layers)}")


def _as_targets(Y, layer_ids, n_stimuli):
    """-> (Y (n_stimuli, n_targets) float, subject names, subject index per target)."""
    ids = None  # stimulus ids of the rows, to name an offending stimulus by id
    if isinstance(Y, Responses):
        if layer_ids is not None:
            Y = Y.aligned_to(layer_ids)
        subjects, ids = Y.subjects, Y.stimulus_ids
    elif isinstance(Y, Mapping):
        subjects = dict(Y)
    else:
        subjects = {"subject": Y}
    if not subjects:
        raise ShapeMismatchError("Y holds no subjects")
    names, blocks, index = [], [], []
    for k, (name, arr) in enumerate(subjects.items()):
        arr = as_float_array(arr, f"Y[{name!r}]", ndim=(1, 2))
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.shape[0] != n_stimuli:
            raise ShapeMismatchError(
                f"responses of {name!r} have {arr.shape[0]} stimuli but the features have "
                f"{n_stimuli}; pass responses with stimulus ids (alignjax.load_responses) to "
                "match them by id")
        check_finite(arr, f"responses of subject {name!r}", labels=ids, axis_name="stimulus")
        names.append(str(name))
        blocks.append(arr)
        index.append(np.full(arr.shape[1], k))
    return np.concatenate(blocks, axis=1), tuple(names), np.concatenate(index)


#: A target is constant when its standard deviation is at most this many ulps of its dtype,
#: times sqrt(n_stimuli), of its largest magnitude (:func:`constant_targets`).
CONSTANT_ULPS = 4


def constant_targets(Y: np.ndarray, *, block: int = 8192) -> np.ndarray:
    """Targets (n_targets,) of ``Y`` (n_stimuli, n_targets) that are constant, so have no
    variance to explain: all values equal (max == min, exactly), or a standard deviation
    (computed in float64) within rounding of the dtype, ``sd <= CONSTANT_ULPS *
    sqrt(n_stimuli) * eps(dtype) * max|y|``.

    The threshold follows the resolution of ``Y``'s own dtype: a fixed relative one
    (``1e-7``, as before) is finer than float32 resolves, and the float32 standard deviation
    of a constant non-integer column is rounding noise of about that size, so most such
    columns passed as varying. Columns are checked ``block`` at a time (bounded memory).
    """
    eps = float(np.finfo(Y.dtype if np.issubdtype(Y.dtype, np.floating) else np.float64).eps)
    tol = CONSTANT_ULPS * np.sqrt(Y.shape[0]) * eps
    out = np.empty(Y.shape[1], bool)
    for j in range(0, Y.shape[1], block):
        blk = np.asarray(Y[:, j:j + block])
        exact = blk.max(axis=0) == blk.min(axis=0)
        b64 = blk.astype(np.float64)
        out[j:j + block] = exact | (b64.std(axis=0) <= tol * np.abs(b64).max(axis=0))
    return out


def _pooled_from_stats(stats, Y):
    """Pooled r and COD per layer from sums of p, p^2, p*y and (y-p)^2 over all folds."""
    n = Y.shape[0]
    ysum, yss = Y.sum(0), (Y ** 2).sum(0)
    sp, spp, spy, sse = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3]
    cov = spy - sp * ysum / n
    vp = spp - sp ** 2 / n
    vy = yss - ysum ** 2 / n
    with np.errstate(invalid="ignore", divide="ignore"):
        den = np.sqrt(np.maximum(vp, 0) * vy)
        r = np.where(den > 0, cov / np.where(den > 0, den, 1), 0.0)
        cod = 1.0 - sse / vy
    return r, cod


def _aggregate(fold_r, fold_cod, pooled_r=None, pooled_cod=None):
    """Scores over folds: mean of the per-fold r, r2 and COD, or the pooled r and COD."""
    if pooled_r is not None:
        return pooled_r, r2_from_r(pooled_r), pooled_cod
    return fold_r.mean(axis=-2), r2_from_r(fold_r).mean(axis=-2), fold_cod.mean(axis=-2)


# --------------------------------------------------------------------------- encode


class _Problem(NamedTuple):
    """Validated inputs of :func:`encode`."""

    names: tuple
    Xs: list
    Y: np.ndarray  # (n_stimuli, n_targets), all subjects
    subjects: tuple
    subject_index: np.ndarray
    outer: np.ndarray  # (n_outer, n_stimuli) test masks
    n_inner: int
    alphas: np.ndarray
    n_const: dict


class _LayerFits(NamedTuple):
    """Per-layer results of the nested CV on the valid targets (t of them)."""

    alpha: np.ndarray  # (n_outer, n_layers, t)
    fold_r: np.ndarray  # (n_layers, n_outer, t)
    fold_cod: np.ndarray  # (n_layers, n_outer, t)
    stats: np.ndarray  # (n_layers, 4, t): sums of p, p^2, p*y, (y-p)^2 over all folds
    best_layer: np.ndarray  # (n_outer, t)
    best_alpha: np.ndarray  # (n_outer, t)
    prediction: np.ndarray  # (n_stimuli, t): the selected layer's predictions


def _check_inputs(layers, Y, *, alphas, outer_folds, inner_folds, stratify, groups, score,
                  seed) -> _Problem:
    """Validate the inputs of :func:`encode` (host side, before any fit)."""
    ls = _as_layers(layers)
    Xs = check_layers(ls.names, ls.arrays, ls.stimulus_ids, purpose="encoding models")
    n = Xs[0].shape[0]
    n_const = {name: int((np.ptp(X, axis=0) == 0).sum()) for name, X in zip(ls.names, Xs)}
    Yall, subjects, subject_index = _as_targets(Y, ls.stimulus_ids, n)
    alphas_np = ridge.check_alphas(alphas)
    check_choice(score, "score", ridge.SCORES)
    for name, labels in (("stratify", stratify), ("groups", groups)):
        if labels is not None and len(labels) != n:
            raise ShapeMismatchError(f"{name} has {len(labels)} labels for {n} stimuli")
    outer = resolve_folds(outer_folds, n, seed=seed, stratify=stratify, groups=groups)
    if not (isinstance(inner_folds, (int, np.integer)) and not isinstance(inner_folds, bool)):
        raise InvalidOptionError(f"inner_folds must be an int, got {inner_folds!r}")
    n_inner = check_positive_int(inner_folds, "inner_folds", minimum=2)
    return _Problem(tuple(ls.names), Xs, Yall, subjects, subject_index, outer, n_inner,
                    alphas_np, n_const)


def _fold_units(outer, inners, stacks, plan, n_alphas) -> list[list[int]]:
    """Outer folds dispatched together: one at a time on CPU; on accelerators, batches of
    folds of the same shapes that fit in memory with all layers of each width
    (:func:`alignjax.ridge.outer_fold_batch`)."""
    n_outer = outer.shape[0]
    n_test = int(outer.sum(axis=1).max())
    batch = min(ridge.outer_fold_batch(n_outer, len(idx), Xs.shape[1], Xs.shape[2], n_alphas,
                                       inners[0].shape[0], plan, n_test=n_test)
                for idx, Xs in stacks)
    if batch == 1:
        return [[o] for o in range(n_outer)]
    alike: dict = {}
    for o in range(n_outer):
        alike.setdefault(ridge.fold_shape(int(outer[o].sum()), inners[o]), []).append(o)
    return [folds[i:i + batch] for folds in alike.values() for i in range(0, len(folds), batch)]


def _dispatch_folds(stacks, targets, folds, outer, inners, alphas, opts):
    """Start outer folds ``folds`` (one, or a batch of the same shapes) on the devices, one
    pass per width group of layers: ``[(layer indices, PendingLayerFits)]``."""
    tr = np.stack([np.flatnonzero(~outer[o]) for o in folds])
    te = np.stack([np.flatnonzero(outer[o]) for o in folds])
    masks = np.stack([inners[o] for o in folds])
    if len(folds) == 1:
        tr, te, masks = tr[0], te[0], masks[0]
    pending = []
    for idx, Xs in stacks:
        p = Xs.shape[2]
        pending.append((idx, ridge.nested_fold_layers(
            Xs, targets, tr, te, masks, alphas,
            cv_solver=ridge.pick_solver("auto", int((~masks).sum(-1).max()), p),
            fit_solver=ridge.pick_solver("auto", tr.shape[-1], p), score=opts["score"],
            fit_intercept=True, standardize=opts["standardize"],
            extend_alphas=opts["extend_alphas"])))
    return pending


def _fetch_folds(pending, n_folds, n_layers):
    """Per outer fold of a dispatch (:func:`_dispatch_folds`): alphas, inner-CV scores
    (n_layers, t), predictions (n_layers, n_test, t) and inner-CV gains (n_layers, t)."""
    fits = [(idx, f.fetch()) for idx, f in pending]
    if n_folds == 1:  # a single fold's fields have no fold axis
        fits = [(idx, ridge.LayerFits(*(a[None] for a in fit))) for idx, fit in fits]
    n_test, t = fits[0][1].prediction.shape[2:]
    alpha, score, gain = np.empty((3, n_folds, n_layers, t))
    pred = np.empty((n_folds, n_layers, n_test, t))
    for idx, fit in fits:
        alpha[:, idx], score[:, idx], pred[:, idx], gain[:, idx] = fit
    return list(zip(alpha, score, pred, gain))


def _pick_layer(score, gain, unit: float) -> np.ndarray:
    """Layer (t,) of the best inner-CV score per target (n_layers, t); layers whose gains
    over the (common) score of the training mean are within the tie tolerance of the
    alpha choice (:func:`alignjax.ridge.solvers.pick_alpha`) of the best are tied, and
    the lowest of them is chosen."""
    eps = float(np.finfo(ridge.float_dtype()).eps)
    base = score[0] - gain[0]
    scale = np.maximum(np.maximum(unit, np.abs(base)), np.abs(score).max(axis=0))
    tied = gain >= gain.max(axis=0) - ridge.TIE_ULPS * eps * scale
    return np.argmax(tied, axis=0)


def _add_stats(stats, pred, y):
    """Accumulate sums of p, p^2, p*y and (y-p)^2 per target (pooled scores)."""
    stats[0] += pred.sum(0)
    stats[1] += (pred ** 2).sum(0)
    stats[2] += (pred * y).sum(0)
    stats[3] += ((y - pred) ** 2).sum(0)


def _nested_cv(Xs, Y, outer, inners, alphas, opts, bar) -> _LayerFits:
    """Nested CV of every layer on targets Y (n_stimuli, t), with layer selection."""
    (n, t), n_layers, n_outer = Y.shape, len(Xs), outer.shape[0]
    p_max = max(X.shape[1] for X in Xs)
    plan = ridge.plan_targets(n, p_max, len(alphas), t, opts["chunk_size"], opts["devices"])
    targets = ridge.place_targets(Y, plan, centre=True)
    stacks = [(idx, jnp.asarray(np.stack([Xs[i] for i in idx]), ridge.float_dtype()))
              for idx in width_groups(Xs)]
    fits = _LayerFits(np.empty((n_outer, n_layers, t)), np.zeros((n_layers, n_outer, t)),
                      np.zeros((n_layers, n_outer, t)), np.zeros((n_layers, 4, t)),
                      np.empty((n_outer, t), np.int64), np.empty((n_outer, t)),
                      np.zeros((n, t)))
    units = _fold_units(outer, inners, stacks, plan, len(alphas))
    start = partial(_dispatch_folds, stacks, targets, outer=outer, inners=inners,
                    alphas=alphas, opts=opts)
    # small decompositions: OpenBLAS on one thread, so it does not spin against XLA
    with serial_lapack(min(n, p_max), plan.devices):
        pending = start(units[0])
        for u, folds in enumerate(units):
            # the next folds run on the devices while these are scored on the host
            after = start(units[u + 1]) if u + 1 < len(units) else None
            done = _fetch_folds(pending, len(folds), n_layers)
            pending = after
            for o, (alpha, score, pred, gain) in zip(folds, done):
                if bar is not None:
                    bar.update(n_layers)
                te = outer[o]
                fits.alpha[o] = alpha
                for li in range(n_layers):
                    if opts["pooled"]:  # sums for the pooled scores, only when asked for
                        _add_stats(fits.stats[li], pred[li], Y[te])
                    fits.fold_r[li, o], fits.fold_cod[li, o] = column_scores(pred[li], Y[te])
                best = _pick_layer(score, gain, ridge.SCORERS[opts["score"]].unit)
                fits.best_layer[o] = best
                fits.best_alpha[o] = alpha[best, np.arange(t)]
                fits.prediction[te] = pred[best, :, np.arange(t)].T
    return fits


def _layer_scores(fits: _LayerFits | None, Y, cols, n_layers, n_outer, n_t, pooled):
    """layer_r, layer_r2, layer_cod (n_layers, n_targets) and the per-fold layer_fold_r,
    layer_fold_cod (n_layers, n_outer, n_targets), NaN for excluded targets."""
    layer_r, layer_cod = np.full((2, n_layers, n_t), np.nan)
    layer_fold_r, layer_fold_cod = np.full((2, n_layers, n_outer, n_t), np.nan)
    if fits is not None:
        pooled_r, pooled_cod = _pooled_from_stats(fits.stats, Y) if pooled else (None, None)
        lr, _, lcod = _aggregate(fits.fold_r, fits.fold_cod, pooled_r, pooled_cod)
        layer_r[:, cols], layer_cod[:, cols] = lr, lcod
        layer_fold_r[:, :, cols], layer_fold_cod[:, :, cols] = fits.fold_r, fits.fold_cod
    layer_r2 = r2_from_r(layer_r) if pooled else r2_from_r(layer_fold_r).mean(axis=1)
    return layer_r, layer_r2, layer_cod, layer_fold_r, layer_fold_cod


def _selected_scores(prediction, Y, outer, cols, pooled):
    """r, r2, cod (n_targets,) and fold_r, fold_r2, fold_cod (n_outer, n_targets) of the
    selected model's predictions (NaN where there are none)."""
    n_outer, n_t = outer.shape[0], Y.shape[1]
    r, cod = np.full((2, n_t), np.nan)
    fold_r, fold_cod = np.full((2, n_outer, n_t), np.nan)
    if cols is not None and cols.size:
        fr, fc = fold_scores(prediction[:, cols], Y[:, cols], outer)
        fold_r[:, cols], fold_cod[:, cols] = fr, fc
        pr, pc = column_scores(prediction[:, cols], Y[:, cols]) if pooled else (None, None)
        r[cols], _, cod[cols] = _aggregate(fr, fc, pr, pc)
    fold_r2 = r2_from_r(fold_r)
    r2 = fold_r2.mean(axis=0) if not pooled else r2_from_r(r)
    return r, r2, cod, fold_r, fold_r2, fold_cod


def _assemble(prob: _Problem, valid, fits: _LayerFits | None, *, select_layer,
              pooled) -> EncodingResult:
    """The :class:`EncodingResult` of the nested CV ``fits`` of the valid targets."""
    n, n_t = prob.Y.shape
    n_layers, n_outer = len(prob.Xs), prob.outer.shape[0]
    cols = np.flatnonzero(valid)
    layer_alpha = np.full((n_outer, n_layers, n_t), np.nan)
    best_layer = np.full((n_outer, n_t), -1, dtype=np.int64)
    best_alpha = np.full((n_outer, n_t), np.nan)
    prediction = np.full((n, n_t), np.nan)
    if fits is not None:
        layer_alpha[:, :, cols] = fits.alpha
    if fits is not None and select_layer:
        best_layer[:, cols], best_alpha[:, cols] = fits.best_layer, fits.best_alpha
        prediction[:, cols] = fits.prediction
    layers = _layer_scores(fits, prob.Y[:, cols], cols, n_layers, n_outer, n_t, pooled)
    sel = _selected_scores(prediction, prob.Y, prob.outer,
                           cols if select_layer else None, pooled)
    # field order: prediction, r, r2, cod, fold_r, fold_r2, fold_cod, best_layer, best_alpha,
    # layer_r, layer_r2, layer_cod, layer_fold_r, layer_fold_cod, layer_alpha, ...
    res = EncodingResult(prediction, *sel, best_layer, best_alpha, *layers, layer_alpha, valid,
                         prob.names, prob.subjects, prob.subject_index, prob.outer, summary={})
    return _summarized(res, prob.n_const, "pooled" if pooled else "per_fold_mean")


def _summarized(res: EncodingResult, n_const: dict, scoring: str) -> EncodingResult:
    summary = summarize(res)
    summary["n_constant_features"] = n_const
    summary["scoring"] = scoring
    return res._replace(summary=summary)


#: Fields of :class:`EncodingResult` indexed by target (along their last axis).
TARGET_FIELDS = tuple(f for f in EncodingResult._fields
                      if f not in ("layer_names", "subjects", "folds", "summary"))


def concat_targets(parts) -> EncodingResult:
    """Join the results of consecutive blocks of targets into one :class:`EncodingResult`.

    ``parts`` are results of the same layers, subjects and folds on disjoint, consecutive
    blocks of the targets, in order: the blocks :func:`encode` computes with
    ``gather=False`` in each process of a multi-process run, in process order. Every
    per-target field is concatenated and the summary recomputed, so the result equals one
    :func:`encode` on all targets.
    """
    parts = list(parts)
    if not parts:
        raise InvalidOptionError("concat_targets needs at least one EncodingResult")
    first = parts[0]
    for k, part in enumerate(parts[1:], 1):
        if part.layer_names != first.layer_names or part.subjects != first.subjects \
                or not np.array_equal(part.folds, first.folds):
            raise ShapeMismatchError(
                f"part {k} was fitted with other layers, subjects or folds than part 0 "
                f"(layers {part.layer_names} vs {first.layer_names}, subjects "
                f"{part.subjects} vs {first.subjects}); only blocks of one encode join")
    joined = first._replace(**{f: np.concatenate([getattr(p, f) for p in parts], axis=-1)
                               for f in TARGET_FIELDS})
    return _summarized(joined, first.summary.get("n_constant_features", {}),
                       first.summary.get("scoring", "per_fold_mean"))


@renamed(target_chunk="chunk_size")
@float32_matmuls
def encode(layers, Y, *, alphas, outer_folds=5, inner_folds=5, stratify=None, groups=None,
           standardize: bool = True, select_layer: bool = True,
           chunk_size: int | None = None, extend_alphas: bool = False, score: str = "r2",
           pooled: bool = False, seed: int = 0, progress: bool = False,
           devices=None, gather: bool = True) -> EncodingResult:
    """Nested cross-validated voxel-wise ridge encoding with layer x alpha selection.

    Parameters
    ----------
    layers : sequence of arrays (n_stimuli, n_features_l), mapping, LayerSet or feature store
        One feature matrix per layer; feature counts may differ.
    Y : array (n_stimuli, n_targets), mapping subject -> (n_stimuli, n_voxels_s), or Responses
        Responses. With a mapping, all voxels of all subjects are solved together and split
        back; with :class:`alignjax.store.Responses` they are matched to the layers' stimulus
        ids.
    alphas : array (n_alphas,)
        Positive ridge penalties.
    outer_folds, inner_folds : int or folds
        Outer folds (int or explicit folds, see :func:`alignjax.resolve_folds`) and the
        number of inner folds drawn inside each outer-training set (grouped by ``groups``
        and stratified by ``stratify`` like the outer folds, see
        :func:`alignjax.folds.nested_folds`). An int gives shuffled K-fold, which assumes
        exchangeable rows (condition-averaged stimuli), not time series.
    stratify : array (n_stimuli,), optional
        Category labels: outer and inner folds are balanced across them.
    groups : array (n_stimuli,), optional
        Group labels: no group is split across folds (outer or inner).
    standardize : bool
        z-score features with the training stimuli of each fit (constant features are set
        to zero and counted in ``summary["n_constant_features"]``).
    select_layer : bool
        Choose a layer per target (True), or only score each layer on its own (False; the
        selected-model fields are then NaN / -1).
    chunk_size : int, optional
        Targets per chunk (see :func:`alignjax.ridge_cv`; formerly ``target_chunk``).
    extend_alphas : bool
        Extend edge-selected alphas in the inner CV (Pepino et al.).
    score : {"r2", "pearson", "neg_mse"}
        Inner-CV selection score.
    pooled : bool
        Score the pooled predictions of all outer folds at once instead of each outer test
        fold on its own (biased downward; kept for comparison with older pipelines).
    seed : int
        Seed of the fold shuffles.
    progress : bool
        Show a tqdm progress bar over (outer fold, layer).
    devices : sequence of jax devices, optional
        Devices the targets are sharded over (default: all local devices).
    gather : bool
        Under several processes (:mod:`alignjax.distributed`) each process solves a
        contiguous block of the targets (``distributed.block(n_targets)``). True gathers
        the whole result to every process; False returns only this process's block, for
        per-target outputs written by the process that owns them (join the blocks with
        :func:`concat_targets`). One process: the whole result either way.

    Returns
    -------
    EncodingResult
    """
    prob = _check_inputs(layers, Y, alphas=alphas, outer_folds=outer_folds,
                         inner_folds=inner_folds, stratify=stratify, groups=groups,
                         score=score, seed=seed)
    scope = contextlib.nullcontext()
    if not gather and distributed.active():  # this process's block only, not gathered
        mine = distributed.block(prob.Y.shape[1])
        prob = prob._replace(Y=prob.Y[:, mine], subject_index=prob.subject_index[mine])
        scope = distributed.local()
    with scope:
        valid = ~constant_targets(prob.Y)
        fits = None
        if valid.any():
            inners = nested_folds(prob.outer, prob.n_inner, seed=seed, stratify=stratify,
                                  groups=groups)
            opts = dict(score=score, standardize=standardize, extend_alphas=extend_alphas,
                        chunk_size=chunk_size, devices=devices, pooled=pooled)
            Yv = prob.Y[:, valid]
            with _progress(progress and distributed.is_main(),
                           prob.outer.shape[0] * len(prob.Xs)) as bar:
                # under several processes each solves a block of the targets (then gathered)
                fits = distributed.map_blocks(
                    lambda cols: _nested_cv(prob.Xs, Yv[:, cols], prob.outer, inners,
                                            prob.alphas, opts, bar), Yv.shape[1])
        return _assemble(prob, valid, fits, select_layer=select_layer, pooled=pooled)


@contextlib.contextmanager
def _progress(show: bool, total: int):
    """A tqdm bar over (outer fold, layer) fits, or None."""
    if not show:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="encode", unit="fit")
    try:
        yield bar
    finally:
        bar.close()


def _mean_sem(values: list[float]) -> dict:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"mean": None, "sem": None, "n_subjects": 0}
    sem = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None
    return {"mean": float(v.mean()), "sem": sem, "n_subjects": int(v.size)}


def summarize(result: EncodingResult) -> dict:
    """Per-subject medians over valid targets, and mean +- SEM across subjects.

    Constant targets (:func:`constant_targets`) are excluded (and counted in ``n_excluded``). Each target's score
    is its mean over outer folds; ``median_r_fold_median`` summarises the median over
    folds instead.
    """
    per = {}
    n_layers = result.layer_r2.shape[0]
    for k, name in enumerate(result.subjects):
        m = (result.subject_index == k)
        ok = m & result.valid
        entry = {"n_targets": int(m.sum()), "n_excluded": int((m & ~result.valid).sum())}
        for key in ("r", "r2", "cod"):
            vals = getattr(result, key)[ok]
            vals = vals[np.isfinite(vals)]
            entry[f"median_{key}"] = float(np.median(vals)) if vals.size else None
        # the per-fold scores summarised by their median over folds instead of their mean
        fold_med = np.median(result.fold_r[:, ok], axis=0) if ok.any() else np.array([])
        fold_med = fold_med[np.isfinite(fold_med)]
        entry["median_r_fold_median"] = float(np.median(fold_med)) if fold_med.size else None
        entry["median_r2_per_layer"] = [
            float(np.median(result.layer_r2[li, ok])) if ok.any() else None
            for li in range(n_layers)]
        bl = result.best_layer[:, ok]
        entry["best_layer_counts"] = [int((bl == li).sum()) for li in range(n_layers)]
        per[name] = entry
    across = {f"median_{key}": _mean_sem([per[s][f"median_{key}"] if per[s][f"median_{key}"]
                                          is not None else np.nan for s in per])
              for key in ("r", "r2", "cod")}
    across["median_r2_per_layer"] = [
        _mean_sem([per[s]["median_r2_per_layer"][li] if per[s]["median_r2_per_layer"][li]
                   is not None else np.nan for s in per]) for li in range(n_layers)]
    return {"subjects": per, "across_subjects": across, "layer_names": list(result.layer_names),
            "n_excluded": int((~result.valid).sum())}


def split_subjects(result: EncodingResult) -> dict[str, dict[str, np.ndarray]]:
    """Per-subject views of the per-target fields of an :class:`EncodingResult`."""
    out = {}
    for k, name in enumerate(result.subjects):
        m = result.subject_index == k
        out[name] = {
            "prediction": result.prediction[:, m], "r": result.r[m], "r2": result.r2[m],
            "cod": result.cod[m], "fold_r": result.fold_r[:, m],
            "fold_cod": result.fold_cod[:, m], "best_layer": result.best_layer[:, m],
            "best_alpha": result.best_alpha[:, m], "layer_r": result.layer_r[:, m],
            "layer_r2": result.layer_r2[:, m], "layer_cod": result.layer_cod[:, m],
            "layer_alpha": result.layer_alpha[:, :, m], "valid": result.valid[m],
        }
    return out


# --------------------------------------------------------------------------- permutation test


class EncodingPermutationResult(NamedTuple):
    """Result of :func:`encoding_permutation_test`.

    Attributes
    ----------
    observed : ndarray (n_targets,)
        The tested score of :func:`encode` (per outer test fold, averaged over folds).
    p : ndarray (n_targets,)
        ``(1 + #{null >= observed}) / (1 + n_perm)``.
    p_fwe : ndarray (n_targets,)
        Family-wise corrected by the maximum statistic over the targets of the same family
        (each subject, when ``family`` is ``encode(...).subject_index``).
    q : ndarray (n_targets,)
        Benjamini-Hochberg q-values over the valid targets of the same family.
    """

    observed: np.ndarray
    p: np.ndarray
    p_fwe: np.ndarray
    q: np.ndarray


_PERM_SCORES = {"pearson": "r", "r2": "r2", "cod": "cod"}


def _perm_batch(n_targets: int, n_perm: int, budget_targets: int = 20_000) -> int:
    """Permutations refitted together (as extra targets of one encode call)."""
    return int(max(1, min(n_perm, budget_targets // max(1, n_targets))))


@float32_matmuls
def encoding_permutation_test(layers, Y, *, alphas, folds, n_perm: int, seed: int,
                              score: str = "pearson", family=None,
                              encode_options: Mapping[str, Any] | None = None,
                              observed=None, progress: bool = False
                              ) -> EncodingPermutationResult:
    """Permutation p-values of nested cross-validated encoding scores, by refitting.

    The statistic is the one :func:`encode` reports: each outer test fold's score of the
    selected model, averaged over folds. The null permutes the stimuli of ``Y`` (the same
    permutation for every target) and reruns the whole procedure (inner-CV alpha and
    layer choice, refit, per-fold scores) with the same outer and inner folds, so each
    null score is the statistic of data in which features and responses are unrelated.
    Permuted response sets are solved as extra targets of one ridge problem (the feature
    decompositions are shared).

    Permuting only the test responses of each fold, with the predictions kept, is not a
    valid null for a score averaged over folds: a fold's responses also trained the other
    folds' models, which makes the fold scores positively correlated under the null (r
    about 0.25 on noise), and that test rejected 11-16 % of null voxels at 0.05.

    Parameters
    ----------
    layers, Y
        As :func:`encode`.
    alphas : array (n_alphas,)
    folds : int or fold specification
        The outer folds (``encode(...).folds`` to test a result you already have).
    n_perm : int
    seed : int
        Seed of the inner folds (as :func:`encode`) and of the permutations.
    score : {"pearson", "r2", "cod"}
        Tested score: ``r``, ``r2`` or ``cod`` of :class:`EncodingResult`.
    family : array (n_targets,), optional
        Family of each target for the max-T and FDR corrections; default: each subject is
        a family (``EncodingResult.subject_index``).
    encode_options : mapping, optional
        Further keyword arguments of :func:`encode` (``inner_folds``, ``stratify``,
        ``groups``, ``standardize``, ``extend_alphas``, ``score`` for the inner selection,
        ``pooled``, ``chunk_size``).
    observed : array (n_targets,), optional
        The tested score of the result under test (``encode(layers, Y, alphas=alphas,
        outer_folds=folds, seed=seed, **encode_options)`` and its ``r``, ``r2`` or ``cod``),
        when you already have it: the unpermuted fit is then not repeated. NaN marks
        excluded targets.
    progress : bool
        Show a progress bar over the permutations.

    Returns
    -------
    EncodingPermutationResult
        Targets excluded by :func:`encode` (constant, see :func:`constant_targets`) get NaN.
    """
    field = _PERM_SCORES.get(score)
    if field is None:
        check_choice(score, "score", tuple(_PERM_SCORES))
    n_perm = check_positive_int(n_perm, "n_perm")
    opts = dict(encode_options or {})
    bad = sorted(set(opts) & {"alphas", "outer_folds", "seed", "select_layer", "progress"})
    if bad:
        raise InvalidOptionError(f"encode_options may not set {bad}: they are arguments of "
                                 "encoding_permutation_test itself (or fixed by it)")
    ls = _as_layers(layers)
    fit = partial(encode, ls, alphas=alphas, outer_folds=folds, seed=seed, **opts)
    if observed is None:
        observed = getattr(fit(Y), field)
    observed = np.asarray(observed, float)
    Yall, _, subject_index = _as_targets(Y, ls.stimulus_ids, len(ls.arrays[0]))
    n, t = Yall.shape
    if observed.shape != (t,):
        raise ShapeMismatchError(f"observed has shape {observed.shape}; expected ({t},), "
                                 "one score per target of Y")
    family = subject_index if family is None else np.asarray(family)
    if family.shape != (t,):
        raise ShapeMismatchError(f"family has shape {family.shape}; expected ({t},)")
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(n) for _ in range(n_perm)])

    def null_scores(batch):  # permuted response sets refitted as extra targets of one call
        return getattr(fit(np.concatenate([Yall[pi] for pi in batch], axis=1)),
                       field).reshape(len(batch), t)

    res = permutation_test(null_scores, observed, n_perm=n_perm, permutations=perms.__getitem__,
                           families=family, chunk_size=_perm_batch(t, n_perm), progress=progress)
    p, p_fwe = np.asarray(res.p, float), np.asarray(res.p_fwe, float)
    q = np.full(t, np.nan)
    for f in np.unique(family):  # BH within each family
        q[family == f] = fdr_bh(p[family == f])
    return EncodingPermutationResult(observed, p, p_fwe, q)
