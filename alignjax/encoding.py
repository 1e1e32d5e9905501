"""Voxel-wise encoding models: nested cross-validated ridge with layer x alpha selection.

For each outer fold, the inner folds (inside the outer-training stimuli only) choose per
target a layer and an alpha; the chosen ridge model is refit on the outer-training stimuli
and predicts the held-out ones. Feature standardisation uses the statistics of each fit's
own training stimuli (inner-training for selection, outer-training for the refit), so
no held-out stimulus ever influences standardisation, alpha or layer choice.

Scores on the pooled cross-validated predictions follow the auditory fMRI literature:
``r`` (Pearson), ``r2`` (``r**2`` with negative ``r`` set to 0) and ``cod`` (coefficient of
determination), reported separately.
"""

from __future__ import annotations

import math
import os
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
from .stats import fdr_bh, permutation_pvalues
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
        Pearson r, ``max(r, 0)**2`` and coefficient of determination of ``prediction``.
    best_layer : ndarray (n_outer, n_targets) of int
        Layer chosen per outer fold and target (-1 for excluded targets or without selection).
    best_alpha : ndarray (n_outer, n_targets)
        Alpha chosen with that layer.
    layer_r, layer_r2, layer_cod : ndarray (n_layers, n_targets)
        The same scores for each layer on its own (alpha chosen per target and outer fold by
        the inner folds), always computed.
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
    best_layer: np.ndarray
    best_alpha: np.ndarray
    layer_r: np.ndarray
    layer_r2: np.ndarray
    layer_cod: np.ndarray
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
    if isinstance(Y, Responses):
        if layer_ids is not None:
            Y = Y.aligned_to(layer_ids)
        subjects = Y.subjects
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
        check_finite(arr, f"responses of {name!r}", axis_name="stimulus")
        names.append(str(name))
        blocks.append(arr)
        index.append(np.full(arr.shape[1], k))
    return np.concatenate(blocks, axis=1), tuple(names), np.concatenate(index)


def _zero_variance(Y: np.ndarray) -> np.ndarray:
    sd = Y.std(axis=0)
    scale = np.maximum(np.abs(Y).max(axis=0), np.finfo(float).tiny)
    return sd <= 1e-7 * scale


def _pooled_scores(pred: np.ndarray, Y: np.ndarray):
    """Pearson r, r^2 (negative r -> 0) and COD per column of pooled predictions."""
    pred = pred.astype(np.float64)
    Y = Y.astype(np.float64)
    pc = pred - pred.mean(axis=0)
    yc = Y - Y.mean(axis=0)
    den = np.sqrt((pc ** 2).sum(0) * (yc ** 2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, (pc * yc).sum(0) / np.where(den > 0, den, 1), 0.0)
        sst = (yc ** 2).sum(0)
        cod = 1.0 - ((Y - pred) ** 2).sum(0) / sst
    r2 = np.maximum(r, 0.0) ** 2
    return r, r2, cod


# --------------------------------------------------------------------------- encode


@float32_matmuls
def encode(layers, Y, *, alphas, outer_folds=5, inner_folds=5, stratify=None, groups=None,
           standardize: bool = True, select_layer: bool = True,
           target_chunk: int | None = None, extend_alphas: bool = False, score: str = "r2",
           seed: int = 0, progress: bool = False, devices=None) -> EncodingResult:
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
        number of inner folds drawn inside each outer-training set.
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
        # per-layer pooled scores from the sufficient statistics
        ysum, yss = Y.sum(0), (Y ** 2).sum(0)
        sp, spp, spy, sse = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3]
        cov = spy - sp * ysum / n
        vp = spp - sp ** 2 / n
        vy = yss - ysum ** 2 / n
        with np.errstate(invalid="ignore", divide="ignore"):
            den = np.sqrt(np.maximum(vp, 0) * vy)
            lr = np.where(den > 0, cov / np.where(den > 0, den, 1), 0.0)
            lcod = 1.0 - sse / vy
        layer_r = np.full((n_layers, n_t), np.nan)
        layer_cod = np.full((n_layers, n_t), np.nan)
        layer_r[:, cols], layer_cod[:, cols] = lr, lcod
    else:
        layer_r = np.full((n_layers, n_t), np.nan)
        layer_cod = np.full((n_layers, n_t), np.nan)
    layer_r2 = np.where(np.isnan(layer_r), np.nan, np.maximum(layer_r, 0) ** 2)
    r = np.full(n_t, np.nan)
    cod = np.full(n_t, np.nan)
    if select_layer and cols.size:
        rr, _, cc = _pooled_scores(pred_sel[:, cols], Yall[:, cols])
        r[cols], cod[cols] = rr, cc
    r2 = np.where(np.isnan(r), np.nan, np.maximum(r, 0) ** 2)
    res = EncodingResult(prediction=pred_sel, r=r, r2=r2, cod=cod, best_layer=best_layer,
                         best_alpha=best_alpha, layer_r=layer_r, layer_r2=layer_r2,
                         layer_cod=layer_cod, layer_alpha=layer_alpha, valid=valid,
                         layer_names=tuple(ls.names), subjects=subjects,
                         subject_index=subject_index, folds=outer, summary={})
    summary = summarize(res)
    summary["n_constant_features"] = n_const
    return res._replace(summary=summary)


def _mean_sem(values: list[float]) -> dict:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"mean": None, "sem": None, "n_subjects": 0}
    sem = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None
    return {"mean": float(v.mean()), "sem": sem, "n_subjects": int(v.size)}


def summarize(result: EncodingResult) -> dict:
    """Per-subject medians over valid targets, and mean +- SEM across subjects.

    Zero-variance targets are excluded (and counted in ``n_excluded``).
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
            "cod": result.cod[m], "best_layer": result.best_layer[:, m],
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
    p : ndarray (n_targets,)
        ``(1 + #{null >= observed}) / (1 + n_perm)``.
    p_fwe : ndarray (n_targets,)
        Family-wise corrected by the maximum statistic over targets.
    q : ndarray (n_targets,)
        Benjamini-Hochberg q-values over the valid targets.
    """

    observed: np.ndarray
    p: np.ndarray
    p_fwe: np.ndarray
    q: np.ndarray


_PERM_SCORES = ("pearson", "cod")


def _perm_null(P, Y, perms, *, score: str, batch: int):
    """Scores of permuted predictions: (n_perm, n_targets)."""
    Pc = P - P.mean(0)
    Yc = Y - Y.mean(0)
    if score == "pearson":
        Pn = Pc / jnp.linalg.norm(Pc, axis=0)
        Yn = Yc / jnp.linalg.norm(Yc, axis=0)
        return jax.lax.map(lambda pi: jnp.sum(Pn[pi] * Yn, axis=0), perms, batch_size=batch)
    sst = jnp.sum(Yc ** 2, axis=0)
    return jax.lax.map(lambda pi: 1.0 - jnp.sum((Y - P[pi]) ** 2, axis=0) / sst, perms,
                       batch_size=batch)


_perm_null_jit = jax.jit(_perm_null, static_argnames=("score", "batch"))


@float32_matmuls
def encoding_permutation_test(prediction, Y, *, n_perm: int, seed: int,
                              score: str = "pearson") -> EncodingPermutationResult:
    """Per-target permutation p-values of cross-validated encoding predictions.

    The null permutes the stimuli of ``prediction`` relative to ``Y`` (the same
    permutations for every target), so p-values are corrected family-wise by the maximum
    statistic over targets (:func:`alignjax.stats.permutation_pvalues`) and by
    Benjamini-Hochberg (:func:`alignjax.stats.fdr_bh`).

    Parameters
    ----------
    prediction : array (n_stimuli, n_targets)
        Cross-validated predictions (e.g. ``encode(...).prediction``).
    Y : array (n_stimuli, n_targets)
    n_perm : int
    seed : int
    score : {"pearson", "cod"}

    Returns
    -------
    EncodingPermutationResult
        Targets that are all-NaN in ``prediction`` or have zero variance get NaN.
    """
    check_choice(score, "score", _PERM_SCORES)
    n_perm = check_positive_int(n_perm, "n_perm")
    P = as_float_array(prediction, "prediction", ndim=(1, 2))
    Y = as_float_array(Y, "Y", ndim=(1, 2))
    P = P[:, None] if P.ndim == 1 else P
    Y = Y[:, None] if Y.ndim == 1 else Y
    if P.shape != Y.shape:
        raise ShapeMismatchError(f"prediction {P.shape} and Y {Y.shape} differ in shape")
    nan_cols = np.isnan(P).all(axis=0)
    partial_nan = np.isnan(P).any(axis=0) & ~nan_cols
    if partial_nan.any():
        raise ShapeMismatchError(f"prediction has NaN in some rows of targets "
                                 f"{np.flatnonzero(partial_nan)[:5].tolist()}")
    check_finite(np.where(nan_cols, 0.0, P), "prediction", axis_name="stimulus")
    check_finite(Y, "Y", axis_name="stimulus")
    ok = ~nan_cols & ~_zero_variance(Y) & ~_zero_variance(np.where(nan_cols, 0.0, P))
    n_t = Y.shape[1]
    out = [np.full(n_t, np.nan) for _ in range(4)]
    if not ok.any():
        return EncodingPermutationResult(*out)
    dtype = _ridge._float_dtype()
    Pd = jnp.asarray(P[:, ok], dtype)
    Yd = jnp.asarray(Y[:, ok], dtype)
    n = P.shape[0]
    keys = jax.random.split(jax.random.key(seed), n_perm)
    perms = jax.vmap(lambda k: jax.random.permutation(k, n))(keys)
    ident = jnp.arange(n)[None]
    observed = _perm_null_jit(Pd, Yd, ident, score=score, batch=1)[0]
    batch = int(max(1, min(n_perm, (256 << 20) // max(1, 4 * n * Pd.shape[1]))))
    null = _perm_null_jit(Pd, Yd, perms, score=score, batch=batch)
    p, p_fwe = permutation_pvalues(observed, null, alternative="greater")
    out[0][ok] = np.asarray(observed)
    out[1][ok] = np.asarray(p)
    out[2][ok] = np.asarray(p_fwe)
    out[3][ok] = fdr_bh(np.asarray(p))
    return EncodingPermutationResult(*out)
