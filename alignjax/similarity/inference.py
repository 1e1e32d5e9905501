"""``alignjax.similarity``: every metric, every layer x subject, with one permutation null.

Each input (layer, subject) is prepared once per metric (its centred Gram, distance,
adjacency or factor matrix; :mod:`alignjax.similarity.registry`). The null permutes the
stimulus labels of the Y side: one gather of Y's prepared matrices per permutation and a
contraction with every layer's, run by the shared engine
(:func:`alignjax.permutation.device_permutation_test`) with the same permutations for
every layer and metric.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from alignjax._runtime import float32_matmuls, serial_lapack
from alignjax._validation import width_groups
from alignjax.errors import InvalidOptionError, check_positive_int
from alignjax.permutation import (device_permutation_test, exact_permutations,
                                  fold_in_permutations)

from ._checks import check_features, check_k, dtype_of
from .inputs import collect_inputs
from .registry import Metric, Prep, get_metric, permute

__all__ = ["similarity", "SimilarityResult", "DEFAULT_METRICS", "CI_METRICS", "prepare_inputs",
           "score_matrix"]

DEFAULT_METRICS = ("cka", "cka_debiased", "rsa_spearman", "dcor", "shape", "knn")
CI_METHOD = "half-sample percentile"


# --------------------------------------------------------------------------- result


@dataclasses.dataclass(frozen=True)
class SimilarityResult:
    """Result of :func:`similarity`: arrays (n_metrics, n_layers, n_subjects).

    Attributes
    ----------
    metrics, layers, subjects : tuple of str
    score : array
        Observed similarity (greater = more similar for every metric).
    p : array
        Stimulus-permutation p-value ``(1 + #{null >= score}) / (1 + n_perm)`` (NaN when
        ``n_perm=0``).
    p_fwe : array
        Max-statistic family-wise p over layers, per metric and subject.
    null_mean, null_std : array
        Mean and standard deviation of the permutation null.
    calibrated : array
        ``score - null_mean``: the score above chance, comparable across widths and depths.
    ci_low, ci_high : array or None
        Interval of the score over stimuli (``n_boot > 0``): percentiles of its values on
        ``n_boot`` half-samples (``n_stimuli // 2`` distinct stimuli each). Only for the
        metrics in :data:`CI_METRICS` (unbiased or with a null expectation of 0); NaN for
        the others, whose bias at this number of stimuli no interval around the score
        accounts for.
    boot : array (n_boot, n_metrics, n_layers, n_subjects) or None
        Scores on the half-samples (every metric; :func:`rank_agreement` ranks them).
    n_perm, n_boot, seed : int
    exact : bool
        All permutations were enumerated.
    ci : float
    ci_method : str
        How ``ci_low``/``ci_high`` were computed.
    """

    metrics: tuple
    layers: tuple
    subjects: tuple
    score: np.ndarray
    p: np.ndarray
    p_fwe: np.ndarray
    null_mean: np.ndarray
    null_std: np.ndarray
    calibrated: np.ndarray
    ci_low: np.ndarray | None
    ci_high: np.ndarray | None
    boot: np.ndarray | None
    n_perm: int
    n_boot: int
    seed: int
    exact: bool
    ci: float = 0.95
    ci_method: str = CI_METHOD

    def records(self) -> list[dict]:
        """One dict per (metric, layer, subject), the rows of :meth:`to_frame`."""
        rows = []
        for m, metric in enumerate(self.metrics):
            for li, layer in enumerate(self.layers):
                for si, subject in enumerate(self.subjects):
                    row = {"metric": metric, "layer": layer, "subject": subject}
                    for col in ("score", "p", "p_fwe", "null_mean", "null_std", "calibrated"):
                        row[col] = float(getattr(self, col)[m, li, si])
                    if self.ci_low is not None:
                        row["ci_low"] = float(self.ci_low[m, li, si])
                        row["ci_high"] = float(self.ci_high[m, li, si])
                    rows.append(row)
        return rows

    def to_frame(self):
        """Tidy pandas table: one row per (metric, layer, subject), columns ``metric``,
        ``layer``, ``subject``, ``score``, ``p``, ``p_fwe``, ``null_mean``, ``null_std``,
        ``calibrated`` (and ``ci_low``, ``ci_high`` with a bootstrap)."""
        import pandas as pd

        return pd.DataFrame.from_records(self.records())

    def get(self, metric: str, field: str = "score") -> np.ndarray:
        """``field`` (n_layers, n_subjects) of one metric."""
        return np.asarray(getattr(self, field))[self.metrics.index(metric)]


# --------------------------------------------------------------------------- preparation


@partial(jax.jit, static_argnames=("metric",))
def _prepare_stack(metric: Metric, X):
    return jax.vmap(metric.prepare)(X)


def _pad_last(a, size):
    if a.ndim < 2 or a.shape[-1] == size:
        return a
    pad = [(0, 0)] * (a.ndim - 1) + [(0, size - a.shape[-1])]
    return jnp.pad(a, pad)


def prepare_inputs(metric: Metric, arrays: Sequence[np.ndarray]) -> Prep:
    """``metric.prepare`` of every array (n, p_i), stacked (n_inputs, ...), computed once
    per group of equal widths; factors zero-padded to a common width."""
    dt = dtype_of()
    widths: dict[int, list[int]] = {}
    for i, a in enumerate(arrays):
        widths.setdefault(a.shape[1], []).append(i)
    parts: list = [None] * len(arrays)
    for idx in widths.values():
        prep = _prepare_stack(metric, jnp.asarray(np.stack([arrays[i] for i in idx]), dt))
        for j, i in enumerate(idx):
            parts[i] = jax.tree.map(lambda x: x[j], prep)
    leaves = [jax.tree.leaves(p) for p in parts]
    size = [max(lv[k].shape[-1] if lv[k].ndim >= 2 else 0 for lv in leaves)
            for k in range(len(leaves[0]))]
    stacked = [jnp.stack([_pad_last(lv[k], size[k]) for lv in leaves]) for k in range(len(size))]
    return jax.tree.unflatten(jax.tree.structure(parts[0]), stacked)


def _pair_scores(metric: Metric, PX: Prep, PY: Prep):
    """(n_x, n_y) scores of stacked preparations."""
    return jax.vmap(lambda px: jax.vmap(lambda py: metric.score(px, py))(PY))(PX)


@partial(jax.jit, static_argnames=("metric",))
def _pair_scores_jit(metric, PX, PY):
    return _pair_scores(metric, PX, PY)


def score_matrix(metric: Metric, PX: Prep, PY: Prep) -> jax.Array:
    """Scores (n_x, n_y) of every prepared X against every prepared Y (package-internal)."""
    return _pair_scores_jit(metric, PX, PY)


# --------------------------------------------------------------------------- the null


def _inner_null(metric: Metric, PX: Prep, PY: Prep, perms):
    """(c, n_x, n_y) inner-metric null: gather My by each permutation, contract with Mx.

    Symmetric matrices (all but the kNN adjacency) are gathered as their upper triangle
    and diagonal only: ``<A, B> = 2 sum_{i<j} A_ij B_ij + sum_i A_ii B_ii``.
    """
    n = PX.sq[0].shape[-1]
    if metric.kind == "knn":
        G = jax.vmap(lambda p: PY.sq[0][:, p][:, :, p])(perms)            # (c, n_y, n, n)
        dots = jnp.einsum("lij,csij->cls", PX.sq[0], G)
    else:
        ii, jj = np.triu_indices(n, 1)
        d = np.arange(n)
        G = jax.vmap(lambda p: PY.sq[0][:, p[ii], p[jj]])(perms)          # (c, n_y, n_pairs)
        D = jax.vmap(lambda p: PY.sq[0][:, p, p])(perms)                  # (c, n_y, n)
        dots = (2.0 * jnp.einsum("lm,csm->cls", PX.sq[0][:, ii, jj], G)
                + jnp.einsum("li,csi->cls", PX.sq[0][:, d, d], D))
    norm = jax.vmap(lambda px: jax.vmap(lambda py: metric.norm(px, py, n))(PY))(PX)
    return metric.post(dots / norm)


def _general_null(metric: Metric, PX: Prep, PY: Prep, perms):
    """(c, n_x, n_y) null of any metric: score against the re-indexed Y preparations."""

    def one(p):
        PYp = jax.vmap(lambda py: permute(py, p))(PY)
        return _pair_scores(metric, PX, PYp)

    return jax.lax.map(one, perms)


@dataclasses.dataclass(frozen=True)
class _SimilarityNull:
    """Engine statistic: null (c, n_metrics, n_x, n_y) of the permutation ids ``ids``."""

    metrics: tuple
    n: int
    exact: bool

    def __call__(self, data, ids):
        PXs, PYs, key, table = data
        perms = table[ids] if self.exact else fold_in_permutations(key, ids, self.n)
        out = []
        for metric, PX, PY in zip(self.metrics, PXs, PYs):
            f = _inner_null if metric.inner else _general_null
            out.append(f(metric, PX, PY, perms))
        return jnp.stack(out, axis=1)


@partial(jax.jit, static_argnames=("statistic",))
def _observed(statistic, preps):
    n = statistic.n
    table = jnp.arange(n, dtype=jnp.int32)[None]
    return statistic((*preps, jax.random.PRNGKey(0), table), jnp.zeros((1,), jnp.int32))[0]


def _chunk(n: int, n_y: int, n_inner: int) -> int:
    """Permutations per engine step: gathered matrices within about 32 MiB."""
    per_perm = 2 * n * n * n_y * max(n_inner, 1)
    return int(max(1, min(64, (32 << 20) // max(per_perm, 1))))


# --------------------------------------------------------------------------- intervals

#: Metrics that get an interval (``ci_low``, ``ci_high``). Their estimators are unbiased
#: (U-statistics: ``cka_debiased``, ``hsic_unbiased``, ``dcor_unbiased``) or have an exact
#: null expectation of 0 at every sample size (RSA of z-scored RDM entries), so a score on
#: a subset of the stimuli estimates the same population value as the score on all of
#: them. Every other metric is biased upwards by an amount that depends on the number of
#: stimuli and the widths (biased CKA of independent 500-wide features on 30 stimuli is
#: about 0.5 against a population value of 0): no interval around it covers the
#: population value, and its ``ci_low``/``ci_high`` are NaN. Compare such metrics with
#: ``p`` and ``calibrated``, or use the debiased counterpart.
CI_METRICS = ("cka_debiased", "hsic_unbiased", "dcor_unbiased", "rsa_pearson", "rsa_spearman")


def half_sample_size(n: int) -> int:
    """Stimuli in one half-sample: ``n // 2``."""
    return n // 2


def _half_samples(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n // 2) sorted stimulus indices, each drawn without replacement.

    Draw ``b`` is the first ``n // 2`` entries of ``permutation(fold_in(PRNGKey(seed + 1),
    b), n)``: the same for any chunking of the draws.
    """
    key = jax.random.PRNGKey(seed + 1)
    m = half_sample_size(n)
    perms = jax.vmap(lambda b: jax.random.permutation(jax.random.fold_in(key, b), n))(
        jnp.arange(n_boot))
    return np.sort(np.asarray(perms)[:, :m], axis=1)


@partial(jax.jit, static_argnames=("metric",))
def _subset_scores(metric: Metric, X, Y, idx):
    """Scores (c, n_x, n_y) of X (n_x, n, p), Y (n_y, n, q) on each subset ``idx`` (c, m)."""

    def one(i):
        PX = jax.vmap(metric.prepare)(X[:, i])
        PY = jax.vmap(metric.prepare)(Y[:, i])
        return _pair_scores(metric, PX, PY)

    return jax.vmap(one)(idx)


def _resample_chunk(m: int, widths: int) -> int:
    """Subsets per step: gathered features within about 64 MiB."""
    return int(max(1, min(64, (64 << 20) // max(4 * m * widths, 1))))


def check_half_samples(metrics, n: int, k: int) -> None:
    """Raise when a half-sample of ``n`` stimuli is too small for one of ``metrics``."""
    m = half_sample_size(n)
    for metric in metrics:
        need = max(metric.min_stimuli, k + 1 if metric.kind == "knn" else 0)
        if m < need:
            raise InvalidOptionError(
                f"n_boot > 0 resamples half of the {n} stimuli ({m}), but metric "
                f"{metric.name!r} needs at least {need} stimuli"
                + (f" with k={k}" if metric.kind == "knn" else "")
                + f"; use at least {2 * need} stimuli, a smaller k, drop that metric, or "
                "set n_boot=0")


def _bootstrap(metrics, xs, ys, n_boot, seed, progress):
    """Scores (n_boot, n_metrics, n_x, n_y) of every metric on half-samples of the stimuli.

    Each draw takes ``n // 2`` distinct stimuli (no copies: resampling with replacement
    puts zero-distance pairs and self-similarities among the off-diagonal terms, and the
    U-centred estimators then score far from the truth). For a statistic that is linear
    in the stimuli, the spread of half-sample values equals the sampling spread of the
    full-sample value (the finite-population factor ``1/m - 1/n = 1/n`` at ``m = n/2``;
    the delete-half jackknife, Shao & Wu 1989), and an unbiased estimator's half-sample
    values are centred on the full-sample value.
    """
    from tqdm.auto import tqdm

    dt = dtype_of()
    n = xs[0].shape[0]
    subsets = _half_samples(n, n_boot, seed)
    out = np.full((n_boot, len(metrics), len(xs), len(ys)), np.nan, np.float64)
    gx, gy = width_groups(xs), width_groups(ys)
    X = [jnp.asarray(np.stack([xs[i] for i in g]), dt) for g in gx]
    Y = [jnp.asarray(np.stack([ys[i] for i in g]), dt) for g in gy]
    widths = sum(a.shape[1] for a in xs) + sum(a.shape[1] for a in ys)
    step = min(_resample_chunk(subsets.shape[1], widths), n_boot)
    for start in tqdm(range(0, n_boot, step), desc="half-samples", unit="chunk",
                      disable=not progress, leave=False):
        idx = subsets[start:start + step]
        if len(idx) < step:  # pad the last chunk to the compiled shape
            idx = np.concatenate([idx, np.repeat(idx[-1:], step - len(idx), 0)])
        stop = min(start + step, n_boot)
        for m, metric in enumerate(metrics):
            for a, ia in enumerate(gx):
                for c, ic in enumerate(gy):
                    s = np.asarray(_subset_scores(metric, X[a], Y[c], jnp.asarray(idx)))
                    out[start:stop, m][np.ix_(np.arange(stop - start), ia, ic)] = \
                        s[:stop - start]
    return out


def _intervals(metrics, boot, ci):
    """Percentile intervals (n_metrics, n_x, n_y) of the half-sample scores; NaN for the
    metrics outside :data:`CI_METRICS`."""
    q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
    lo, hi = np.nanpercentile(boot, q, axis=0)
    off = np.array([m.name not in CI_METRICS for m in metrics])
    lo[off] = hi[off] = np.nan
    return lo, hi


# --------------------------------------------------------------------------- entry point


def resolve_metrics(metrics, k, rdm_metric, n) -> tuple[Metric, ...]:
    """The :class:`Metric` of each name (a list or a comma-separated string) for ``n``
    stimuli, or a clear error: unknown names, too few stimuli for a debiased/unbiased
    estimator, ``k >= n`` for the kNN metrics, an unknown RDM metric."""
    from alignjax.errors import check_choice
    from alignjax.rdm import METRICS as RDM_METRICS

    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    metrics = list(metrics)
    if not metrics:
        raise InvalidOptionError("metrics is empty; name at least one metric")
    if len(set(metrics)) != len(metrics):
        raise InvalidOptionError(f"metrics lists a metric twice: {metrics}")
    check_choice(rdm_metric, "rdm_metric", RDM_METRICS)
    out = tuple(get_metric(m, k=k, rdm_metric=rdm_metric) for m in metrics)
    for m in out:
        if n < m.min_stimuli:
            raise InvalidOptionError(
                f"metric {m.name!r} needs at least {m.min_stimuli} stimuli, but the inputs have "
                f"{n}; use more stimuli or drop that metric")
        if m.kind == "knn":
            check_k(k, n)
    return out


def _check_inputs(metrics, names, arrays, what, ids):
    from alignjax.rdm import _validate_features

    from .knn import check_nonzero_rows

    for name, X in zip(names, arrays):
        label = f"{what} {name!r}"
        check_features(X, label, stimulus_ids=ids)
        if any(m.kind == "rsa" for m in metrics):
            try:
                _validate_features(X, metrics[[m.kind for m in metrics].index("rsa")].option, ids)
            except Exception as exc:
                raise type(exc)(f"{label}: {exc}") from None
        if any(m.kind == "knn" for m in metrics):
            check_nonzero_rows(X, label)


@float32_matmuls
def similarity(layers, Y, *, metrics: Sequence[str] | str = DEFAULT_METRICS, n_perm: int = 1000,
               n_boot: int = 0, seed: int = 0, k: int = 10, rdm_metric: str = "correlation",
               stimulus_ids: Sequence[str] | None = None, ci: float = 0.95,
               chunk_size: int | None = None, devices: int | None = None,
               progress: bool = False) -> SimilarityResult:
    """Every metric between every layer and every subject, with a permutation null.

    Parameters
    ----------
    layers : array, sequence, mapping or store
        ``(n_stimuli, n_features)`` or ``(n_layers, n_stimuli, n_features)`` arrays; a
        sequence or mapping name -> array (widths may differ); a feature store (path,
        :class:`~alignjax.io.FeatureStore`) or :class:`~alignjax.io.LayerSet`; or a
        mapping model -> any of those (layers named ``model/layer``).
    Y : array, mapping, responses or layers
        Subjects' responses: an array (one subject, or ``(n_subjects, n_stimuli,
        n_targets)``), a mapping subject -> array, :class:`~alignjax.io.Responses` or a
        response file (matched to the layers by stimulus id); or another model's layers
        (any form ``layers`` accepts), for model-vs-model similarity.
    metrics : sequence of str or comma-separated str
        Names from :data:`alignjax.similarity.METRICS` (``cka``, ``cka_debiased``,
        ``cka_rbf``, ``rv``, ``hsic``, ``hsic_unbiased``, ``dcor``, ``dcor_sqr``,
        ``dcor_unbiased``, ``cca``, ``svcca``, ``pwcca``, ``shape``, ``shape_cca``,
        ``knn``, ``knn_jaccard``, ``knn_cycle``, ``cknna``, ``rsa_spearman``,
        ``rsa_pearson``). Every score is a similarity (``shape`` reports the cosine of
        the angular shape distance).
    n_perm : int
        Stimulus-label permutations of Y (0: no inference; p-values NaN). When
        ``n_stimuli! <= n_perm`` all permutations are enumerated.
    n_boot : int
        Half-samples over stimuli for the intervals (0: none). Each draws ``n_stimuli // 2``
        stimuli without replacement (never a stimulus twice); ``ci_low``/``ci_high`` are
        percentiles of the scores on them, for the metrics in :data:`CI_METRICS`. Needs
        ``n_stimuli // 2`` to be enough stimuli for every metric.
    seed : int
        Permutation ``k`` is drawn from ``fold_in(PRNGKey(seed), k)``: the same for every
        metric, layer, chunk size and device count.
    k : int
        Neighbours of the kNN metrics.
    rdm_metric : str
        Distance of the RDMs of the ``rsa_*`` metrics (see :func:`alignjax.rdm`).
    stimulus_ids : sequence of str, optional
        Ids of the rows of array inputs (when one side carries ids and the other does not).
    ci : float
        Coverage of the intervals.
    chunk_size : int, optional
        Permutations per step (memory only; never changes a result).
    devices : int, optional
        Shard the permutations over this many local devices.
    progress : bool

    Returns
    -------
    SimilarityResult
        ``.to_frame()`` gives the tidy table.

    Notes
    -----
    ``p_fwe`` takes the maximum over layers of each (metric, subject) family, so a "best
    layer" claim is corrected for the choice of layer. Biased CKA and kNN scores grow with
    width and depth even under the null; ``calibrated = score - null_mean`` removes that.

    The intervals resample stimuli without replacement: with replacement (the usual
    bootstrap) copies of a stimulus form zero-distance pairs and self-similarities that
    the U-centred estimators take for off-diagonal terms, and a 95% interval then covers 0
    under independence in 0% of data sets. On 30 stimuli (20 or 500 features against 50)
    the half-sample intervals of :data:`CI_METRICS` cover the population value in at
    least 95% of data sets, null and planted; they are conservative (near 100%) under
    independence and for weak effects, where the half-sample spread overstates the
    sampling spread of the degenerate (quadratic) part of the estimators.
    """
    xnames, xs, ynames, ys, ids = collect_inputs(layers, Y, stimulus_ids=stimulus_ids)
    n = xs[0].shape[0]
    metrics = resolve_metrics(metrics, k, rdm_metric, n)
    n_perm = check_positive_int(n_perm, "n_perm", minimum=0)
    n_boot = check_positive_int(n_boot, "n_boot", minimum=0)
    if not 0 < ci < 1:
        raise InvalidOptionError(f"ci must be in (0, 1), got {ci}")
    _check_inputs(metrics, xnames, xs, "layer", ids)
    _check_inputs(metrics, ynames, ys, "subject", ids)
    if n_boot:
        check_half_samples(metrics, n, k)
    with serial_lapack(n):
        return _run(metrics, xnames, xs, ynames, ys, n, n_perm, n_boot, seed, ci, chunk_size,
                    devices, progress)


def _run(metrics, xnames, xs, ynames, ys, n, n_perm, n_boot, seed, ci, chunk_size, devices,
         progress) -> SimilarityResult:
    PXs = tuple(prepare_inputs(m, xs) for m in metrics)
    PYs = tuple(prepare_inputs(m, ys) for m in metrics)
    # the observed scores are the statistic of the identity permutation (same arithmetic)
    score = np.asarray(_observed(_SimilarityNull(metrics, n, True), (PXs, PYs)))
    shape = score.shape
    nan = np.full(shape, np.nan)
    p = p_fwe = null_mean = null_std = nan
    exact = False
    if n_perm:
        p, p_fwe, null_mean, null_std, exact, n_perm = _permutation(
            metrics, PXs, PYs, score, n, n_perm, seed, chunk_size, devices)
    lo = hi = boot = None
    if n_boot:
        boot = _bootstrap(metrics, xs, ys, n_boot, seed, progress)
        lo, hi = _intervals(metrics, boot, ci)
    return SimilarityResult(tuple(m.name for m in metrics), tuple(xnames), tuple(ynames), score,
                            p, p_fwe, null_mean, null_std, score - null_mean, lo, hi, boot,
                            int(n_perm), int(n_boot), int(seed), bool(exact), float(ci))


def _uses_lapack(metric: Metric) -> bool:
    """Its null runs SVDs (shape, SVCCA, PWCCA)."""
    return not metric.inner and metric.kind in ("shape", "cca")


def _permutation(metrics, PXs, PYs, score, n, n_perm, seed, chunk_size, devices):
    """p, p_fwe, null mean and std (n_metrics, n_x, n_y), exactness and n_perm.

    Metrics whose null runs LAPACK decompositions are tested in one scan on one thread:
    XLA:CPU programs calling LAPACK deadlock when several run concurrently (the engine's
    per-core slices). They see the same permutations (ids) as every other metric.
    """
    table = exact_permutations(n, n_perm)
    exact = table is not None
    n_perm = table.shape[0] if exact else n_perm
    data_tail = (jax.random.PRNGKey(seed),
                 jnp.asarray(table if exact else np.zeros((1, n), np.int32)))
    out = [np.full(score.shape, np.nan) for _ in range(4)]
    lapack = [i for i, m in enumerate(metrics) if _uses_lapack(m)]
    rest = [i for i in range(len(metrics)) if i not in lapack]
    for group, single in ((rest, False), (lapack, True)):
        if not group:
            continue
        ms = tuple(metrics[i] for i in group)
        sub = score[group]
        n_y = sub.shape[2]
        families = (np.arange(len(group))[:, None, None] * n_y
                    + np.arange(n_y)[None, None, :]) + np.zeros(sub.shape, int)
        chunk = n_perm if single else (chunk_size or _chunk(n, n_y, sum(m.inner for m in ms)))
        res = device_permutation_test(
            _SimilarityNull(ms, n, exact), (tuple(PXs[i] for i in group),
                                            tuple(PYs[i] for i in group)) + data_tail,
            jnp.asarray(sub, dtype_of()), n_perm=n_perm, families=families,
            chunk_size=int(chunk), return_null=True, exact=exact,
            devices=1 if single else devices)
        null = np.asarray(jax.block_until_ready(res.null), np.float64)
        for arr, val in zip(out, (res.p, res.p_fwe, np.nanmean(null, 0), np.nanstd(null, 0))):
            arr[group] = np.asarray(val)
    return (*out, exact, n_perm)
