"""Spatial factor probes: every factor decoded from every layer, with chance levels (what a
probe without information scores under the same folds), bootstrap CIs and permutation
p-values (max-T over layers) that permute at the level at which each label varies."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from .._runtime import float32_matmuls
from .._validation import check_layers, check_positive_int
from ..folds import inner_test_masks, resolve_folds
from ..permutation import permutation_test
from . import ridge as _ridge
from .targets import (FACTORS, HIGHER_METRICS, LATERAL, ROOM_FACTORS, check_factors, decode,
                      factor_values, fold_groups, labels_table, lateral_deg, metric_values,
                      no_information_predictions, regression_targets)

__all__ = ["SpatialProbeResult", "spatial_probe"]

COLUMNS = ("layer", "factor", "metric", "value", "chance", "chance_kind", "ci_low", "ci_high",
           "p", "p_fwe", "permuted")
MIN_LABELLINGS = 20  # below this many distinct labellings no p <= 0.05 is reachable


class SpatialProbeResult(NamedTuple):
    """Result of :func:`spatial_probe`.

    Attributes
    ----------
    layers : list of str (n_layers,)
    factors : list of str
    rows : list of dict
        One per (layer, factor, metric): the columns of :meth:`to_frame`.
    predictions : dict factor -> array (n_layers, n_stimuli[, 3])
        Cross-validated predictions in the factor's units (degrees, unit vectors, metres,
        seconds, class labels).
    truth : dict factor -> array (n_stimuli[, 3])
    folds : bool array (n_folds, n_stimuli)
        Outer test masks (grouped: no dry source or room on both sides).
    groups : array (n_stimuli,) or None
    notes : dict factor -> str
        How each factor was tested (what was permuted, or why no test is available) and
        what its chance level is.
    """

    layers: list
    factors: list
    rows: list
    predictions: dict
    truth: dict
    folds: np.ndarray
    groups: np.ndarray | None
    notes: dict = {}

    def to_frame(self):
        """A pandas DataFrame, one row per (layer, factor, metric), columns ``layer``,
        ``factor``, ``metric``, ``value``, ``chance``, ``chance_kind`` (``training_mean``,
        ``majority_class`` or ``permutation_null_mean``), ``ci_low``, ``ci_high``, ``p``,
        ``p_fwe``, ``permuted`` (``stimuli``, ``groups``, ``within_groups``, ``""``
        without a test, or ``unavailable``)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(COLUMNS))


def _metrics(factor, lateral):
    m = FACTORS[factor].metrics
    return m + (LATERAL,) if factor == "azimuth" and lateral else m


def _values(factor, metric, pred, true, w):
    """A metric from predictions (..., n) in the factor's units; lateral folds azimuths."""
    if metric == LATERAL:
        return metric_values(factor, metric, lateral_deg(pred), lateral_deg(true), w)
    return metric_values(factor, metric, pred, true, w)


def _boot_weights(groups, n, n_boot, seed):
    """Cluster-bootstrap counts (n_boot, n): groups (or scenes) drawn with replacement."""
    g = np.arange(n) if groups is None else np.unique(groups, return_inverse=True)[1]
    k = g.max() + 1
    rng = np.random.default_rng([seed, 7])
    counts = np.stack([np.bincount(rng.integers(0, k, k), minlength=k) for _ in range(n_boot)])
    return counts[:, g].astype(float)


def _splits(outer, inner):
    F, G, n = inner.shape
    return np.concatenate([~outer, ((~outer)[:, None] & ~inner).reshape(F * G, n)])


def _ridge_factors(arrays, cont, truth, outer, inner, alphas, progress):
    """Nested ridge predictions of every continuous factor: dict factor -> (L, n[, 3]),
    and the per-layer decompositions (reused by the permutation test)."""
    from tqdm.auto import tqdm

    T = np.concatenate([regression_targets(f, truth[f]) for f in cont], axis=1)
    sizes = np.cumsum([0] + [regression_targets(f, truth[f]).shape[1] for f in cont])
    train = _splits(outer, inner)
    preds = {f: [] for f in cont}
    preps = []
    for X in tqdm(arrays, desc="ridge probes", disable=not progress, leave=False):
        prep = _ridge.prepare(X, train)
        P, _ = _ridge.nested_predictions(prep, T, alphas, inner, outer.shape[0])
        for i, f in enumerate(cont):
            preds[f].append(decode(f, P[:, sizes[i]:sizes[i + 1]]))
        preps.append(prep)
    return {f: np.stack(v) for f, v in preds.items()}, preps, T, sizes


def _class_factors(arrays, cat, truth, outer, inner_folds, groups, Cs, seed):
    from ..probes import logistic_probe

    out, res = {}, {}
    for f in cat:
        r = logistic_probe(arrays, truth[f], Cs=Cs, folds=outer, inner_folds=inner_folds,
                           groups=groups, seed=seed)
        out[f] = r.classes[r.nested_predictions]
        res[f] = r
    return out, res


def _ridge_pvalues(preps, cont, truth, metrics, alphas, inner, F, perms, chunk_size,
                   progress):
    """Permutation p (uncorrected, max-T over layers) and null mean of every continuous
    metric of the factors ``cont``, all permuted by the index permutations ``perms``."""
    T = np.concatenate([regression_targets(f, truth[f]) for f in cont], axis=1)
    sizes = np.cumsum([0] + [regression_targets(f, truth[f]).shape[1] for f in cont])
    cells = [(f, m) for f in cont for m in metrics[f]]
    sign = np.array([1.0 if m in HIGHER_METRICS else -1.0 for _, m in cells])
    n = T.shape[0]
    w = np.ones(n)

    def stats_of(idx_batch):
        out = np.zeros((len(idx_batch), len(preps), len(cells)))
        Ts = T[idx_batch]
        for li, prep in enumerate(preps):
            P = _ridge.nested_predictions_batch(prep, Ts, alphas, inner, F)
            for b, perm in enumerate(idx_batch):
                dec = {f: decode(f, P[b][:, sizes[i]:sizes[i + 1]]) for i, f in enumerate(cont)}
                out[b, li] = [_values(f, m, dec[f], truth[f][perm], w) for f, m in cells]
        return out * sign

    observed = stats_of(np.arange(n)[None])[0]
    fam = np.broadcast_to(np.arange(len(cells)), observed.shape)
    res = permutation_test(stats_of, observed, n_perm=len(perms), permutations=perms.__getitem__,
                           families=fam, chunk_size=chunk_size, return_null=True,
                           progress=progress)
    null_mean = np.asarray(res.null, float).mean(axis=0) * sign
    return {c: (np.asarray(res.p)[:, j], np.asarray(res.p_fwe)[:, j], null_mean[:, j])
            for j, c in enumerate(cells)}


def _levels(factors, truth, groups):
    """What the permutation test permutes per factor, and a note saying so (or why no
    test is available)."""
    from ..probes.permutation import n_group_labellings, permutation_level

    levels, notes = {}, {}
    for f in factors:
        if groups is None:
            levels[f], notes[f] = "stimuli", "labels permuted over scenes"
            continue
        lv = "groups" if f in ROOM_FACTORS else permutation_level(truth[f], groups)
        n_groups = len(np.unique(groups))
        if lv == "within_groups":
            notes[f] = ("the label varies within fold groups: permuted within each group "
                        "(scenes of a group assumed exchangeable)")
        else:
            k = n_group_labellings(truth[f], groups)
            notes[f] = (f"the label is a property of the fold groups (constant within each, or "
                        f"a room factor): whole groups permuted ({n_groups} groups, {k} "
                        "distinct labellings); folds grouped the same way make a probe without "
                        "information anti-predict held-out groups, which the chance level "
                        "(same folds) includes")
            if k < MIN_LABELLINGS:
                lv = "unavailable"
                notes[f] = (f"no permutation test: the {n_groups} fold groups allow only {k} "
                            f"distinct labellings of this group-level factor (the smallest "
                            f"p-value would be 1/{k} > 0.05); the design cannot test it, use "
                            f"more groups (rooms). The chance level is a probe without "
                            "information under the same grouped folds, which anti-predicts "
                            "held-out groups")
        levels[f] = lv
    return levels, notes


def _class_pvalues(arrays, f, truth, outer, inner_folds, groups, Cs, n_perm, seed,
                   chunk_size, progress, level):
    """Permutation p and null mean of the nested-CV accuracy of a class factor (max-T over
    layers)."""
    from ..probes import probe_permutation_test

    r = probe_permutation_test(arrays, truth[f], Cs=Cs, inner_folds=inner_folds, folds=outer,
                               groups=groups, n_perm=n_perm, seed=seed, chunk_size=chunk_size,
                               progress=progress, permute=level)
    return {(f, "accuracy"): (r.p, r.p_fwe, np.asarray(r.null, float).mean(axis=0))}


@float32_matmuls
def spatial_probe(layers, labels, *, factors: Sequence[str] | None = None, groups=None,
                  folds=5, inner_folds: int = 3,
                  alphas: Sequence[float] = tuple(np.logspace(-2, 6, 9)),
                  Cs: Sequence[float] = tuple(np.logspace(-4, 4, 9)), n_boot: int = 1000,
                  n_perm: int = 0, lateral: bool | None = None, seed: int = 0,
                  chunk_size: int = 16, progress: bool = False) -> SpatialProbeResult:
    """Decode every spatial factor from every layer with nested cross-validated probes.

    Azimuth: ridge on (cos, sin), decoded by ``atan2``, errors wrapped to [0, 180] degrees
    (``mean_abs_error_deg``, ``median_abs_error_deg``, ``acc_20deg``, ``left_right_acc``:
    the side of scenes within 60 degrees of +-90, tested exactly in degrees; with ``lateral``,
    ``lateral_abs_error_deg``: front-back folded). Direction: ridge on the unit vector,
    great-circle error. Elevation (degrees), distance (ridge on log distance; ``mae_m``,
    ``relative_error``), RT60 (``mae_s`` on the measured values): ridge. Class, volume and
    shape: L2 logistic probes (:func:`alignjax.logistic_probe`), ``accuracy`` and
    ``balanced_accuracy``. The ridge penalty (per target) and C are chosen by inner CV in
    each outer training set.

    ``chance`` is what a probe without information scores under the same folds: each
    test fold predicted by its training set's mean target (circular mean azimuth, mean
    direction, geometric mean distance, mean elevation or RT60; ``chance_kind``
    ``training_mean``) or majority class (``majority_class``), the limit of the probes
    under strong regularisation; with ``n_perm`` the mean of the layer's permutation
    null (``permutation_null_mean``). With folds grouped by room and a label constant
    within rooms, this predictor anti-predicts the held-out room (its label is
    under-represented in training), so chance can be far worse than a random guess.

    Permutation tests permute at the level at which the label varies (``permuted``):
    over scenes without groups; with fold groups, whole groups for room factors (RT60,
    volume, shape) and any label constant within groups, within groups otherwise
    (:func:`alignjax.probes.permutation.permutation_level`). A group-level factor whose
    groups allow fewer than 20 distinct labellings gets no p-value (``permuted`` is
    ``unavailable``; ``notes`` says why).

    Parameters
    ----------
    layers : sequence or mapping of arrays (n_stimuli, n_features), or a feature store
    labels : str path to a CSV, pandas DataFrame, or mapping column -> values
        The labels (``alignjax synth-spatial``'s ``labels.csv``): matched by its ``id``
        column to the store's stimulus ids, else in row order.
    factors : sequence of str, optional
        Among ``azimuth, elevation, direction, distance, class, rt60, volume, shape``
        (default: all whose columns the labels have and vary; a factor asked for that has
        a single level raises).
    groups : array (n_stimuli,), optional
        Fold groups; default: the connected components of the labels' ``source_group`` and
        ``room_group`` columns, so no dry source and no room is on both sides of a split.
    folds : int or fold specification
        Outer folds (grouped k-fold for an int when groups are known).
    inner_folds : int
    alphas, Cs : sequences of float
        Ridge penalties and logistic inverse penalties searched by the inner CV.
    n_boot : int
        Cluster-bootstrap resamples (of groups, else of stimuli) for 95% CIs (0: none).
    n_perm : int
        Label permutations for p-values (0: none). Each reruns the whole nested procedure;
        ``p_fwe`` is max-T over layers per (factor, metric). For class factors the tested
        statistic is the nested-CV accuracy (mean over folds); ``balanced_accuracy`` has no p.
        What is permuted per factor: see above.
    lateral : bool, optional
        Report the lateral error of azimuth (default: when the labels' ``format`` is
        ``binaural``).
    seed : int
    chunk_size : int
        Permutations per batch (never changes results).
    progress : bool

    Returns
    -------
    SpatialProbeResult
        ``.to_frame()``: one row per (layer, factor, metric).
    """
    from ..io import load_layers

    check_positive_int(inner_folds, "inner_folds", minimum=2)
    ls = load_layers(layers)
    arrays = check_layers(ls.names, ls.arrays, ls.stimulus_ids, purpose="spatial probes")
    n = arrays[0].shape[0]
    table = labels_table(labels, n, ls.stimulus_ids)
    asked = factors is not None
    factors = check_factors(factors, table)
    if not asked:  # every factor the labels vary; a fixed one (one room, say) is left out
        factors = [f for f in factors if _varies(f, table)]
    truth = {f: factor_values(f, table) for f in factors}
    if lateral is None:
        lateral = "format" in table and bool(np.all(table["format"] == "binaural"))
    metrics = {f: _metrics(f, lateral) for f in factors}
    g = fold_groups(groups, table, n)
    outer = resolve_folds(folds, n, seed=seed, groups=g)
    inner = inner_test_masks(np.zeros(n), outer, inner_folds, seed=seed + 1, groups=g)
    cont = [f for f in factors if FACTORS[f].kind != "classes"]
    cat = [f for f in factors if FACTORS[f].kind == "classes"]
    alphas = np.sort(np.asarray(alphas, float))
    preds, preps, _, _ = (_ridge_factors(arrays, cont, truth, outer, inner, alphas, progress)
                          if cont else ({}, [], None, None))
    cpreds, _ = _class_factors(arrays, cat, truth, outer, inner_folds, g, Cs, seed)
    preds.update(cpreds)
    levels, notes = _levels(factors, truth, g)
    pvals = {}
    if n_perm > 0:
        pvals = _pvalues(arrays, preps, cont, cat, truth, metrics, levels, outer, inner,
                         inner_folds, g, alphas, Cs, n_perm, seed, chunk_size, progress)
    else:
        levels = dict.fromkeys(factors, "")
    rows = _rows(ls.names, factors, metrics, preds, truth, g, outer, n_boot, seed, pvals, levels)
    return SpatialProbeResult(list(ls.names), factors, rows, preds, truth, outer, g, notes)


def _pvalues(arrays, preps, cont, cat, truth, metrics, levels, outer, inner, inner_folds, g,
             alphas, Cs, n_perm, seed, chunk_size, progress):
    """p, p_fwe and null mean of every tested (factor, metric): the continuous factors of
    one permutation level share their permutations (and one pass of refits)."""
    from ..probes.permutation import labelling_permutations

    n = outer.shape[1]
    out = {}
    for lv in ("stimuli", "within_groups", "groups"):
        sub = [f for f in cont if levels[f] == lv]
        if sub:
            perms = labelling_permutations(n_perm, n, groups=g, level=lv, seed=[seed, 11])
            out.update(_ridge_pvalues(preps, sub, truth, metrics, alphas, inner,
                                      outer.shape[0], perms, chunk_size, progress))
    for f in cat:
        if levels[f] != "unavailable":
            out.update(_class_pvalues(arrays, f, truth, outer, inner_folds, g, Cs, n_perm,
                                      seed, chunk_size, progress, levels[f]))
    return out


def _varies(factor, table) -> bool:
    return all(len(np.unique(np.asarray(table[c]).astype(str))) > 1
               for c in FACTORS[factor].columns[:1])


def _rows(names, factors, metrics, preds, truth, groups, outer, n_boot, seed, pvals, levels):
    n = len(next(iter(truth.values())))
    W = _boot_weights(groups, n, n_boot, seed) if n_boot else None
    rows = []
    for f in factors:
        blank = no_information_predictions(f, truth[f], outer)
        kind = "majority_class" if FACTORS[f].kind == "classes" else "training_mean"
        for m in metrics[f]:
            chance = float(_values(f, m, blank, truth[f], np.ones(n)))
            p, p_fwe, null_mean = pvals.get((f, m), (None, None, None))
            for li, name in enumerate(names):
                value = float(_values(f, m, preds[f][li], truth[f], np.ones(n)))
                lo = hi = np.nan
                if W is not None:
                    bs = _values(f, m, preds[f][li][None], truth[f][None], W)
                    lo, hi = np.nanpercentile(bs, [2.5, 97.5])
                rows.append({"layer": name, "factor": f, "metric": m, "value": value,
                             "chance": chance if null_mean is None else float(null_mean[li]),
                             "chance_kind": kind if null_mean is None
                             else "permutation_null_mean",
                             "ci_low": float(lo), "ci_high": float(hi),
                             "p": np.nan if p is None else float(p[li]),
                             "p_fwe": np.nan if p_fwe is None else float(p_fwe[li]),
                             "permuted": levels[f] if p is not None or levels[f] ==
                             "unavailable" else ""})
    return rows
