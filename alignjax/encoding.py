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

import math
import os
from functools import partial
from typing import Any, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import ridge as _ridge
from ._runtime import float32_matmuls, serial_lapack
from ._validation import (
    InvalidFoldsError,
    InvalidOptionError,
    ShapeMismatchError,
    as_float_array,
    check_choice,
    check_finite,
    check_layers,
    check_positive_int,
)
from .folds import resolve_folds
from .permutation import permutation_test
from .stats import column_scores, fdr_bh, fold_scores, r2_from_r
from .store import FeatureStore, LayerSet, Responses, load_layers

__all__ = ["encode", "EncodingResult", "encoding_permutation_test", "EncodingPermutationResult",
           "split_subjects", "summarize"]


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
        False for targets excluded because they have zero variance.
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


def _zero_variance(Y: np.ndarray) -> np.ndarray:
    sd = Y.std(axis=0)
    scale = np.maximum(np.abs(Y).max(axis=0), np.finfo(float).tiny)
    return sd <= 1e-7 * scale


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


@float32_matmuls
def encode(layers, Y, *, alphas, outer_folds=5, inner_folds=5, stratify=None, groups=None,
           standardize: bool = True, select_layer: bool = True,
           target_chunk: int | None = None, extend_alphas: bool = False, score: str = "r2",
           pooled: bool = False, seed: int = 0, progress: bool = False,
           devices=None) -> EncodingResult:
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
        and stratified by ``stratify`` like the outer folds). An int gives shuffled K-fold,
        which assumes exchangeable rows (condition-averaged stimuli), not time series.
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
    target_chunk : int, optional
        Targets per chunk (see :func:`alignjax.ridge_cv`).
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

    Returns
    -------
    EncodingResult
    """
    ls = _as_layers(layers)
    Xs = check_layers(ls.names, ls.arrays, ls.stimulus_ids, purpose="encoding models")
    n = Xs[0].shape[0]
    n_const = {name: int((np.ptp(X, axis=0) == 0).sum()) for name, X in zip(ls.names, Xs)}
    Yall, subjects, subject_index = _as_targets(Y, ls.stimulus_ids, n)
    alphas_np = _ridge.check_alphas(alphas)
    check_choice(score, "score", _ridge.SCORES)
    if stratify is not None and len(stratify) != n:
        raise ShapeMismatchError(f"stratify has {len(stratify)} labels for {n} stimuli")
    if groups is not None and len(groups) != n:
        raise ShapeMismatchError(f"groups has {len(groups)} labels for {n} stimuli")
    outer = resolve_folds(outer_folds, n, seed=seed, stratify=stratify, groups=groups)
    if not (isinstance(inner_folds, (int, np.integer)) and not isinstance(inner_folds, bool)):
        raise InvalidOptionError(f"inner_folds must be an int, got {inner_folds!r}")
    inner_k = check_positive_int(inner_folds, "inner_folds", minimum=2)

    valid = ~_zero_variance(Yall)
    n_t = Yall.shape[1]
    n_layers, n_outer = len(Xs), outer.shape[0]
    layer_alpha = np.full((n_outer, n_layers, n_t), np.nan)
    layer_r = np.full((n_layers, n_t), np.nan)
    layer_cod = np.full((n_layers, n_t), np.nan)
    layer_fold_r = np.full((n_layers, n_outer, n_t), np.nan)
    layer_fold_cod = np.full((n_layers, n_outer, n_t), np.nan)
    fold_r = np.full((n_outer, n_t), np.nan)
    fold_cod = np.full((n_outer, n_t), np.nan)
    r = np.full(n_t, np.nan)
    cod = np.full(n_t, np.nan)
    best_layer = np.full((n_outer, n_t), -1, dtype=np.int64)
    best_alpha = np.full((n_outer, n_t), np.nan)
    pred_sel = np.full((n, n_t), np.nan)
    cols = np.flatnonzero(valid)
    dtype = _ridge._float_dtype()

    if cols.size:
        Y = Yall[:, cols]
        t = Y.shape[1]
        # per-layer pooled predictions are accumulated as sufficient statistics (memory
        # O(n_layers * n_targets)): sum p, sum p^2, sum p*y, sum (y-p)^2
        stats = np.zeros((n_layers, 4, t))
        lfr = np.zeros((n_layers, n_outer, t))
        lfc = np.zeros((n_layers, n_outer, t))
        sel = np.zeros((n, t), dtype=np.float64) if select_layer else None
        plan = _ridge._plan(n, max(X.shape[1] for X in Xs), len(alphas_np), t, target_chunk,
                            devices)
        Yd = _ridge._put_targets(Y, plan, dtype)
        Xds = [jnp.asarray(X, dtype) for X in Xs]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_outer * n_layers, desc="encode", unit="fit")
        # small decompositions: OpenBLAS on one thread, so it does not spin against XLA
        with serial_lapack(min(n, max(X.shape[1] for X in Xs)), plan.devices):
            for o in range(n_outer):
                tr = np.flatnonzero(~outer[o])
                te = np.flatnonzero(outer[o])
                sub_strat = None if stratify is None else np.asarray(stratify)[tr]
                sub_groups = None if groups is None else np.asarray(groups)[tr]
                if inner_k > len(tr):
                    raise InvalidFoldsError(f"cannot make {inner_k} inner folds from the {len(tr)} "
                                            f"training stimuli of outer fold {o}")
                inner = resolve_folds(inner_k, len(tr), seed=seed + 1 + o, stratify=sub_strat,
                                      groups=sub_groups)
                inner_groups = _ridge._fold_groups(inner)
                Ytr_host = Y[tr]  # once per outer fold: the edge extension reads it per step
                Ytr = _ridge._put_targets(Ytr_host, plan, dtype)
                alpha_l = np.empty((n_layers, t))
                score_l = np.empty((n_layers, t))
                preds = []
                for li, Xd in enumerate(Xds):
                    p = Xd.shape[1]
                    Xtr = Xd[tr]
                    kw = dict(mode=_ridge._pick_mode("auto", int((~inner).sum(1).max()), p),
                              score=score, fit_intercept=True, standardize=standardize,
                              chunk=plan.chunk, devices=plan.devices)
                    cvs = np.asarray(_ridge._cv_pass(Xtr, Ytr, inner_groups,
                                                     jnp.asarray(alphas_np, dtype), what="grid",
                                                     **kw))[:, :t] / inner.shape[0]
                    bi = np.argmax(cvs, axis=0)
                    a = alphas_np[bi]
                    s = cvs[bi, np.arange(cvs.shape[1])]
                    if extend_alphas and len(alphas_np) >= 2:
                        a, s = _ridge._extend(
                            lambda aa, cc: _ridge._subset_grid_scores(
                                Xtr, Ytr_host, inner_groups, aa, cc, target_chunk=target_chunk,
                                devices=plan.devices, n_folds=inner.shape[0], mode=kw["mode"],
                                score=score, fit_intercept=True, standardize=standardize),
                            a, s, alphas_np, dtype)
                    alpha_l[li], score_l[li] = a, s
                    pr = np.asarray(_ridge._predict_pass(
                        Xd, Yd, jnp.asarray(tr, jnp.int32), jnp.asarray(te, jnp.int32),
                        jnp.asarray(_ridge._pad_vec(a, plan, 1.0), dtype), what="predict",
                        mode=_ridge._pick_mode("auto", len(tr), p), fit_intercept=True,
                        standardize=standardize, chunk=plan.chunk, devices=plan.devices),
                        dtype=np.float64)[:, :t]
                    yte = Y[te]
                    stats[li, 0] += pr.sum(0)
                    stats[li, 1] += (pr ** 2).sum(0)
                    stats[li, 2] += (pr * yte).sum(0)
                    stats[li, 3] += ((yte - pr) ** 2).sum(0)
                    lfr[li, o], lfc[li, o] = column_scores(pr, yte)
                    preds.append(pr)
                    if bar is not None:
                        bar.update(1)
                layer_alpha[o][:, cols] = alpha_l[:, :t]
                if select_layer:
                    bl = np.argmax(score_l[:, :t], axis=0)
                    best_layer[o, cols] = bl
                    best_alpha[o, cols] = alpha_l[bl, np.arange(t)]
                    sel[te] = np.stack(preds)[bl, :, np.arange(t)].T
        if bar is not None:
            bar.close()
        if select_layer:
            pred_sel[:, cols] = sel
        pooled_lr = pooled_lcod = None
        if pooled:
            pooled_lr, pooled_lcod = _pooled_from_stats(stats, Y)
        lr, _, lcod = _aggregate(lfr, lfc, pooled_lr, pooled_lcod)
        layer_r[:, cols], layer_cod[:, cols] = lr, lcod
        layer_fold_r[:, :, cols], layer_fold_cod[:, :, cols] = lfr, lfc
    layer_r2 = r2_from_r(layer_r) if pooled else r2_from_r(layer_fold_r).mean(axis=1)
    if select_layer and cols.size:
        fr, fc = fold_scores(pred_sel[:, cols], Yall[:, cols], outer)
        fold_r[:, cols], fold_cod[:, cols] = fr, fc
        pr_, pc_ = column_scores(pred_sel[:, cols], Yall[:, cols]) if pooled else (None, None)
        r[cols], _, cod[cols] = _aggregate(fr, fc, pr_, pc_)
    fold_r2 = r2_from_r(fold_r)
    r2 = fold_r2.mean(axis=0) if not pooled else r2_from_r(r)
    res = EncodingResult(prediction=pred_sel, r=r, r2=r2, cod=cod, fold_r=fold_r,
                         fold_r2=fold_r2, fold_cod=fold_cod, best_layer=best_layer,
                         best_alpha=best_alpha, layer_r=layer_r, layer_r2=layer_r2,
                         layer_cod=layer_cod, layer_fold_r=layer_fold_r,
                         layer_fold_cod=layer_fold_cod, layer_alpha=layer_alpha, valid=valid,
                         layer_names=tuple(ls.names), subjects=subjects,
                         subject_index=subject_index, folds=outer, summary={})
    summary = summarize(res)
    summary["n_constant_features"] = n_const
    summary["scoring"] = "pooled" if pooled else "per_fold_mean"
    return res._replace(summary=summary)


def _mean_sem(values: list[float]) -> dict:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"mean": None, "sem": None, "n_subjects": 0}
    sem = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None
    return {"mean": float(v.mean()), "sem": sem, "n_subjects": int(v.size)}


def summarize(result: EncodingResult) -> dict:
    """Per-subject medians over valid targets, and mean +- SEM across subjects.

    Zero-variance targets are excluded (and counted in ``n_excluded``). Each target's score
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
                              progress: bool = False) -> EncodingPermutationResult:
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
        ``pooled``, ``target_chunk``).
    progress : bool
        Show a progress bar over the permutations.

    Returns
    -------
    EncodingPermutationResult
        Targets excluded by :func:`encode` (zero variance) get NaN.
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
    obs = fit(Y)
    Yall = _as_targets(Y, ls.stimulus_ids, obs.prediction.shape[0])[0]
    n, t = Yall.shape
    family = obs.subject_index if family is None else np.asarray(family)
    if family.shape != (t,):
        raise ShapeMismatchError(f"family has shape {family.shape}; expected ({t},)")
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(n) for _ in range(n_perm)])

    def null_scores(batch):  # permuted response sets refitted as extra targets of one call
        return getattr(fit(np.concatenate([Yall[pi] for pi in batch], axis=1)),
                       field).reshape(len(batch), t)

    observed = np.asarray(getattr(obs, field), float)
    res = permutation_test(null_scores, observed, n_perm=n_perm, permutations=perms.__getitem__,
                           families=family, chunk_size=_perm_batch(t, n_perm), progress=progress)
    p, p_fwe = np.asarray(res.p, float), np.asarray(res.p_fwe, float)
    q = np.full(t, np.nan)
    for f in np.unique(family):  # BH within each family
        q[family == f] = fdr_bh(p[family == f])
    return EncodingPermutationResult(observed, p, p_fwe, q)
