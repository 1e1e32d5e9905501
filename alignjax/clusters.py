"""Sign-flip tests over subjects: cluster mass, TFCE and max-T, with MNE's conventions.

Random-effects inference over subjects on maps ``X`` (n_subjects, n_times[, n_channels]),
e.g. per-subject RSA time courses: every subject's map is multiplied by +1 or -1 (a
"permutation" of the shared engine is a set of sign flips drawn from its id), the
one-sample t map is recomputed, and the family-wise null is the maximum over the whole
map of the cluster mass (:func:`cluster_permutation_test`), of the TFCE score
(``tfce=True``) or of ``|t|`` (:func:`max_t_test`). Every null runs through
:func:`alignjax.device_permutation_test`: the sign flips are batched and scanned on
device, chunked, and the same seed gives the same result on any chunk size and number
of devices.

Conventions (those of ``mne.stats.permutation_cluster_1samp_test`` and
``mne.stats.permutation_t_test``)
------------------------------------------------------------------------------------
- ``t = mean / (sd / sqrt(n_subjects))`` with ``ddof=1``.
- Default cluster-forming threshold: ``-scipy.stats.t.ppf(0.05 / (1 + (tail == 0)),
  n_subjects - 1)`` (negated for ``tail=-1``). With ``tail=0`` positive (``t >
  threshold``) and negative (``t < -threshold``) clusters are formed separately.
- Cluster mass: the sum of ``t`` over the cluster. Clusters are connected over
  neighbouring time points and, with ``adjacency``, over neighbouring channels at the
  same time point; without ``adjacency`` a 2-D map is a lattice (as ``scipy.ndimage.label``).
- The null statistic of a sign-flip set is the cluster mass of largest magnitude (0 when
  no cluster forms); ``h0`` holds the observed one first. ``p = mean(|h0| >= |mass|)``
  (``tail=1``: ``h0 >= mass``; ``tail=-1``: ``h0 <= mass``): the observed data count as
  one of the ``n_perm`` sign-flip sets.
- Exact enumeration when ``2 ** (n_subjects - (tail == 0)) <= n_perm``: MNE's set of
  sign flips (``tail=0``: the first subject is never flipped, which covers all flips
  by symmetry), so p-values are identical to MNE's, but for one rounding case: with
  ``tail=+-1`` MNE's set holds the identity twice, and MNE drops its recomputed copy
  when float64 rounding puts it one ulp short of its observed statistic; alignjax always
  counts it, so its p-value of that cluster is then ``1 / 2 ** n_subjects`` higher.
- TFCE (Smith & Nichols 2009) with MNE's Riemann sum: thresholds ``start, start + step,
  ...`` below the largest ``|t|``, each adding ``h ** h_power * dh * extent ** e_power``
  to the points of every cluster above it (MNE's defaults ``e_power=0.5``,
  ``h_power=2``).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._runtime import float32_matmuls
from ._validation import (InvalidOptionError, ShapeMismatchError, ZeroVarianceError,
                          as_float_array, check_finite, check_positive_int)
from .permutation import device_permutation_test, exceeds

__all__ = ["cluster_permutation_test", "max_t_test", "ClusterTestResult", "MaxTResult",
           "InsufficientSubjectsError", "t_threshold", "lattice_neighbours", "label_clusters",
           "cluster_masses"]

TAILS = (-1, 0, 1)
_ALTERNATIVE = {0: "two-sided", 1: "greater", -1: "less"}


class InsufficientSubjectsError(ShapeMismatchError):
    """Too few subjects for a sign-flip test to reach significance."""


class ClusterTestResult(NamedTuple):
    """Result of :func:`cluster_permutation_test` (MNE's pieces under plain names).

    Attributes
    ----------
    t_obs : array (n_times[, n_channels])
        One-sample t statistic of the data.
    clusters : bool array (n_clusters, n_times[, n_channels])
        One mask per observed cluster (cluster mode). With ``tfce=True`` every point is
        its own cluster, as in MNE: ``clusters`` is then None and ``cluster_p`` is shaped
        like ``t_obs``.
    cluster_p : array (n_clusters,) or shaped like ``t_obs`` (TFCE)
        Family-wise corrected p-value of each cluster (each point, TFCE).
    h0 : array (n_perm,)
        The null distribution of the maximum statistic; ``h0[0]`` is the observed one.
    stat : array (n_clusters,) or shaped like ``t_obs`` (TFCE)
        Cluster masses (sum of t), or TFCE scores signed by ``t`` (MNE's TFCE ``t_obs``).
    threshold : float or dict
        The cluster-forming threshold used (the TFCE dict with defaults filled in).
    n_perm : int
        Sign-flip sets used, the observed one included.
    exact : bool
        True when all sign-flip sets were enumerated.
    """

    t_obs: Any
    clusters: Any
    cluster_p: Any
    h0: Any
    stat: Any
    threshold: Any
    n_perm: int
    exact: bool


class MaxTResult(NamedTuple):
    """Result of :func:`max_t_test` (as ``mne.stats.permutation_t_test``).

    Attributes
    ----------
    t_obs : array (n_times[, n_channels])
    p : array like ``t_obs``
        Max-T family-wise corrected p-values.
    h0 : array (n_perm,)
        Sorted maxima of ``|t|`` over the map, one per sign-flip set (observed included).
    n_perm : int
    exact : bool
    """

    t_obs: Any
    p: Any
    h0: Any
    n_perm: int
    exact: bool


# --------------------------------------------------------------------------- validation


def _check_tail(tail) -> int:
    if tail not in TAILS:
        raise InvalidOptionError(f"tail must be -1, 0 or 1, got {tail!r}")
    return int(tail)


def _check_X(X) -> np.ndarray:
    X = as_float_array(X, "X", ndim=(2, 3))
    check_finite(X, "X (n_subjects, n_times[, n_channels])", axis_name="subject")
    flat = X.reshape(X.shape[0], -1)
    const = np.ptp(flat, axis=0) == 0
    if const.any():
        where = np.unravel_index(np.flatnonzero(const)[:5], X.shape[1:])
        raise ZeroVarianceError(
            f"X has zero variance over subjects at {len(np.flatnonzero(const))} points "
            f"(first at index {[tuple(int(a[k]) for a in where) for k in range(len(where[0]))]}); "
            "the t statistic is undefined there: crop those points (e.g. a baseline set to 0)")
    return X


def _check_subjects(n: int, tail: int, what: str = "a sign-flip test", alpha: float = 0.05):
    if n < 2 or 2 ** (n - (tail == 0)) * alpha < 1:
        need = next(k for k in range(2, 64) if 2 ** (k - (tail == 0)) * alpha >= 1)
        raise InsufficientSubjectsError(
            f"{what} needs at least {need} subjects for tail={tail} (with {n}, the smallest "
            f"attainable p-value is {1 / 2 ** max(n - (tail == 0), 0):.3g}, above {alpha}); "
            "add subjects or use a fixed-effects test (temporal_rsa_permutation_test)")


def t_threshold(n_subjects: int, tail: int = 0, p: float = 0.05) -> float:
    """MNE's default cluster-forming threshold for a one-sample t test."""
    from scipy import stats

    thr = float(-stats.t.ppf(p / (1 + (tail == 0)), n_subjects - 1))
    return -thr if tail < 0 else thr


# --------------------------------------------------------------------------- adjacency


def lattice_neighbours(shape: tuple[int, ...], adjacency=None) -> np.ndarray:
    """Neighbour table (n_points, max_degree) of the points of a map of ``shape``.

    Points are in C order. ``shape`` (n_times,): time neighbours. (n_times, n_channels):
    time neighbours of each channel, and with ``adjacency`` (n_channels, n_channels)
    the adjacent channels at the same time point; without it, the channel axis is a
    lattice too. Rows are padded with the point's own index.
    """
    n = int(np.prod(shape))
    idx = np.arange(n).reshape(shape)
    pairs = []
    for ax in range(len(shape)):
        if ax == 1 and adjacency is not None:
            continue
        a = np.moveaxis(idx, ax, 0)
        pairs.append((a[:-1].ravel(), a[1:].ravel()))
    if adjacency is not None:
        from scipy import sparse

        coo = sparse.coo_matrix(adjacency)
        keep = coo.row != coo.col
        ci, cj = coo.row[keep], coo.col[keep]
        pairs.append((idx[:, ci].ravel(), idx[:, cj].ravel()))
    src = np.concatenate([p[0] for p in pairs] + [p[1] for p in pairs]) if pairs else np.zeros(0, int)
    dst = np.concatenate([p[1] for p in pairs] + [p[0] for p in pairs]) if pairs else np.zeros(0, int)
    deg = np.bincount(src, minlength=n)
    width = max(int(deg.max()) if deg.size else 0, 1)
    table = np.repeat(np.arange(n)[:, None], width, axis=1)
    order = np.argsort(src, kind="stable")
    src, dst = src[order], dst[order]
    start = np.concatenate([[0], np.cumsum(deg)[:-1]])
    table[src, np.arange(src.size) - start[src]] = dst
    return table.astype(np.int32)


def _check_adjacency(adjacency, n_channels: int):
    if adjacency is None:
        return None
    from scipy import sparse

    if not (sparse.issparse(adjacency) or isinstance(adjacency, np.ndarray)):
        raise InvalidOptionError("adjacency must be a scipy sparse matrix or a boolean array "
                                 "(n_channels, n_channels), e.g. from mne.channels.find_ch_adjacency")
    if adjacency.shape != (n_channels, n_channels):
        raise ShapeMismatchError(
            f"adjacency has shape {adjacency.shape}, but X has {n_channels} channels: it must be "
            f"({n_channels}, {n_channels}), channels in the order of X's last axis")
    return adjacency


# --------------------------------------------------------------------------- kernels


def label_clusters(mask, nbrs):
    """Connected components of ``mask`` (n_points,) over the neighbour table ``nbrs``.

    Returns int labels (n_points,): the smallest point index of each component, and
    ``n_points`` for points outside ``mask``. Min-label propagation with pointer jumping
    (``lax.while_loop``); jittable and vmappable.
    """
    n = mask.shape[0]
    lab0 = jnp.where(mask, jnp.arange(n, dtype=jnp.int32), n)

    def body(state):
        lab, _ = state
        ext = jnp.concatenate([lab, jnp.array([n], lab.dtype)])
        nb = jnp.min(ext[nbrs], axis=1)
        new = jnp.where(mask, jnp.minimum(lab, nb), n)
        ext = jnp.concatenate([new, jnp.array([n], new.dtype)])
        new = jnp.where(mask, ext[new], n)                      # pointer jumping
        return new, jnp.any(new != lab)

    lab, _ = jax.lax.while_loop(lambda s: s[1], body, (lab0, jnp.array(True)))
    return lab


def cluster_masses(t, mask, nbrs):
    """Labels (n_points,) and mass (sum of t) per label (n_points + 1,) of ``mask``."""
    lab = label_clusters(mask, nbrs)
    mass = jax.ops.segment_sum(jnp.where(mask, t, 0.0), lab, num_segments=t.shape[0] + 1)
    return lab, mass.at[-1].set(0.0)


def _signed_extreme(v):
    """The entry of largest magnitude (MNE keeps its sign)."""
    return v[jnp.argmax(jnp.abs(v))]


def _cluster_stat(t, nbrs, thr, tail):
    """Largest-magnitude cluster mass of the map ``t`` (n_points,), 0 without clusters."""
    parts = []
    if tail >= 0:
        parts.append(cluster_masses(t, t > thr, nbrs)[1])
    if tail <= 0:
        parts.append(cluster_masses(t, t < (thr if tail < 0 else -thr), nbrs)[1])
    return _signed_extreme(jnp.concatenate(parts))


def _tfce(t, nbrs, grid, e_power, tail):
    """TFCE scores (n_points,) of ``t`` (MNE's Riemann sum); ``grid`` (2, n_thresholds)
    holds the thresholds and their weights ``h ** h_power * dh`` (padding: inf, 0)."""
    n = t.shape[0]
    thresholds, weights = grid[0], grid[1]

    def one(score, th_w):
        th, w = th_w
        masks = []
        if tail >= 0:
            masks.append(t > th)
        if tail <= 0:
            masks.append(t < (th if tail < 0 else -th))
        for m in masks:
            lab = label_clusters(m, nbrs)
            size = jax.ops.segment_sum(m.astype(t.dtype), lab, num_segments=n + 1)
            score = score + jnp.where(m, w * size[lab] ** e_power, 0.0)
        return score, None

    score, _ = jax.lax.scan(one, jnp.zeros_like(t), (thresholds, weights))
    return score


def _t_from_sums(sums, sumsq, n):
    """One-sample t from column sums (c, p) and the flip-invariant sums of squares (p,)."""
    mean = sums / n
    var = jnp.maximum(sumsq - n * mean * mean, 0.0)
    return jnp.where(var > 0, mean * jnp.sqrt(n * (n - 1.0)) / jnp.sqrt(jnp.where(var > 0, var, 1.0)),
                     0.0)


def sign_flips(key, ids, n: int, exact: bool):
    """Sign-flip sets (c, n) of ``ids``: id 0 is the identity; exact: the bits of the id
    (MSB first, 0 -> -1, as MNE's ``bin_perm_rep`` rows); else drawn from ``fold_in(key, id)``."""
    if exact:
        bits = (ids[:, None] >> jnp.arange(n - 1, -1, -1)[None, :]) & 1
        s = 2 * bits - 1
    else:
        s = jax.vmap(lambda k: 2 * jax.random.bernoulli(jax.random.fold_in(key, k), 0.5, (n,))
                     .astype(jnp.int32) - 1)(ids)
    return jnp.where((ids == 0)[:, None], 1, s).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class _FlipStatistic:
    """Null statistic of sign-flip ids for the engine: (c, 1) family maximum.

    ``kind``: "cluster" (largest-magnitude cluster mass), "tfce" (largest TFCE score),
    "maxt" (largest |t|). ``data = (X, sumsq, key, nbrs, threshold(s))``.
    """

    kind: str
    n: int
    tail: int
    exact: bool
    e_power: float = 0.5

    def __call__(self, data, ids):
        X, sumsq, key, nbrs, thr = data
        s = sign_flips(key, ids, self.n, self.exact).astype(X.dtype)
        t = _t_from_sums(s @ X, sumsq, self.n)                            # (c, p)
        if self.kind == "maxt":
            m = jnp.max(jnp.abs(t), axis=1)
            return (-m if self.tail < 0 else m)[:, None]
        if self.kind == "cluster":
            return jax.vmap(lambda ti: _cluster_stat(ti, nbrs, thr, self.tail))(t)[:, None]
        sign = -1.0 if self.tail < 0 else 1.0
        score = jax.vmap(lambda ti: _tfce(sign * ti, nbrs, thr, self.e_power,
                                          abs(self.tail) if self.tail else 0))(t)
        return jnp.max(score, axis=1)[:, None]


@partial(jax.jit, static_argnames=("tail",))
def _observed_clusters(t, nbrs, thr, tail):
    """Labels and masses of the observed map: positive then negative clusters."""
    out = []
    if tail >= 0:
        out.append(cluster_masses(t, t > thr, nbrs))
    if tail <= 0:
        out.append(cluster_masses(t, t < (thr if tail < 0 else -thr), nbrs))
    return out


@partial(jax.jit, static_argnames=("tail", "e_power"))
def _observed_tfce(t, nbrs, grid, tail, e_power):
    sign = -1.0 if tail < 0 else 1.0
    return _tfce(sign * t, nbrs, grid, e_power, abs(tail) if tail else 0)


def _t_obs(X: np.ndarray) -> np.ndarray:
    n = X.shape[0]
    return X.mean(0) / (X.std(0, ddof=1) / np.sqrt(n))


def _plan(n: int, n_perm: int, tail: int) -> tuple[int, bool]:
    """Number of sign-flip sets (observed included) and whether they are all of them."""
    full = 2 ** (n - (tail == 0))
    return (full, True) if full <= n_perm else (n_perm, False)


@partial(jax.jit, static_argnames=("alternative",))
def _hits(h0, v, alternative):
    return jax.lax.map(lambda x: jnp.sum(exceeds(h0, x, alternative)), v, batch_size=256)


def _p_from_h0(h0: np.ndarray, values: np.ndarray, tail: int) -> np.ndarray:
    """``mean(h0 reaches value)`` per value, with the engine's tie tolerance."""
    v = np.asarray(values).reshape(-1)
    size = 1 << int(np.ceil(np.log2(max(v.size, 1))))      # one compiled shape per size
    padded = jnp.asarray(np.pad(v, (0, size - v.size)), jnp.asarray(h0).dtype)
    hits = np.asarray(_hits(jnp.asarray(h0), padded, _ALTERNATIVE[tail]))[:v.size]
    return (hits / h0.size).reshape(np.shape(values))


def _tfce_thresholds(threshold: dict, bound: float, tail: int) -> tuple[np.ndarray, dict]:
    thr = dict(threshold)
    if not {"start", "step"} <= set(thr):
        raise InvalidOptionError("a TFCE threshold needs 'start' and 'step' "
                                 "(e.g. dict(start=0, step=0.2))")
    thr.setdefault("e_power", 0.5)
    thr.setdefault("h_power", 2.0)
    start, step = float(thr["start"]), float(thr["step"])
    if tail < 0:   # MNE's tail=-1 TFCE runs down from start <= 0 with step < 0: mirror it
        start, step = -start, -step
    if step <= 0 or start < 0:
        raise InvalidOptionError(f"TFCE threshold {threshold}: need start >= 0 and step > 0 "
                                 "(start <= 0 and step < 0 for tail=-1)")
    th = np.arange(start, bound, step, float)
    if th.size == 0:
        th = np.array([start])
    dh = np.abs(np.diff(th, prepend=th[0]))
    dh[0] = abs(th[0])
    w = np.abs(th) ** float(thr["h_power"]) * dh
    size = 1 << int(np.ceil(np.log2(th.size)))          # padded: one compiled shape per size
    grid = np.stack([np.full(size, np.inf), np.zeros(size)])
    grid[0, :th.size], grid[1, :th.size] = th, w
    return grid, thr


def _flip_bound(X: np.ndarray) -> float:
    """Largest |t| any sign-flip set can reach (sets the static TFCE threshold grid)."""
    n = X.shape[0]
    m = np.abs(X).mean(0)
    var = np.maximum((X * X).sum(0) - n * m * m, 1e-30)
    return float(np.max(m * np.sqrt(n * (n - 1.0)) / np.sqrt(var))) * (1 + 1e-6) + 1e-6


# --------------------------------------------------------------------------- public


def _prepare(X, tail, adjacency, n_perm, seed, what):
    tail = _check_tail(tail)
    n_perm = check_positive_int(n_perm, "n_perm")
    if np.ndim(X) in (2, 3):
        _check_subjects(np.shape(X)[0], tail, what)
    X = _check_X(X)
    shape = X.shape[1:]
    adj = _check_adjacency(adjacency, shape[1]) if len(shape) == 2 else None
    if len(shape) == 1 and adjacency is not None:
        raise ShapeMismatchError("adjacency given, but X (n_subjects, n_times) has no channel "
                                 "axis; pass X shaped (n_subjects, n_times, n_channels)")
    nbrs = jnp.asarray(lattice_neighbours(shape, adj))
    total, exact = _plan(X.shape[0], n_perm, tail)
    dt = jnp.result_type(float)
    flat = jnp.asarray(X.reshape(X.shape[0], -1), dt)
    data = (flat, jnp.sum(flat * flat, axis=0), jax.random.PRNGKey(seed), nbrs)
    return tail, X, shape, nbrs, total, exact, data


def _run(stat, data, observed, total, chunk_size, devices):
    """h0: the null statistic of every sign-flip set; as MNE, the observed statistic itself
    stands for the identity (``h0[0]``), so rounding never keeps it from reaching itself.

    One-tailed exact enumeration takes MNE's set, which holds the identity twice (its
    all-ones row ``2 ** n - 1`` besides ``h0[0]``) and not the all-minus flip; the
    duplicate is set to the observed statistic too. MNE recomputes its duplicate (in
    float64, by another formula than its observed statistic) and does not count it when
    it lands an ulp beyond the observed one: its p-value is then ``1 / 2 ** n_subjects``
    lower than ours for that cluster (and equal otherwise)."""
    alternative = "greater" if stat.kind == "tfce" else _ALTERNATIVE[stat.tail]
    res = device_permutation_test(stat, data, jnp.atleast_1d(observed), n_perm=total,
                                  alternative=alternative, exact=True,
                                  return_null=True, chunk_size=chunk_size, devices=devices)
    h0 = np.asarray(res.null, np.float64)[:, 0]
    h0[0] = observed
    if stat.exact and stat.tail != 0:
        h0[-1] = observed
    return h0


@float32_matmuls
def cluster_permutation_test(X, *, n_perm: int = 1024, threshold=None, tail: int = 0,
                             tfce: bool = False, adjacency=None, seed: int = 0,
                             chunk_size: int = 16, devices: int | None = None
                             ) -> ClusterTestResult:
    """Sign-flip one-sample cluster test over subjects, as ``mne.stats.permutation_cluster_1samp_test``.

    Parameters
    ----------
    X : array, shape (n_subjects, n_times) or (n_subjects, n_times, n_channels)
        One map per subject (e.g. RSA time courses minus a chance level of 0).
    n_perm : int
        Sign-flip sets, the observed one included (MNE's ``n_permutations``); all of
        them are enumerated when ``2 ** (n_subjects - (tail == 0)) <= n_perm``.
    threshold : float or dict, optional
        Cluster-forming t threshold (default: MNE's, from the t distribution at p = 0.05),
        or a TFCE dict ``dict(start=0, step=0.2[, e_power=0.5, h_power=2])``.
    tail : {0, 1, -1}
    tfce : bool
        Threshold-free cluster enhancement (``threshold`` then defaults to
        ``dict(start=0, step=0.2)``).
    adjacency : scipy sparse or bool array (n_channels, n_channels), optional
        Channel adjacency (e.g. ``mne.channels.find_ch_adjacency(info, "eeg")[0]``);
        channels are also connected to themselves at neighbouring time points.
    seed : int
        Sign-flip set ``k`` is drawn from ``fold_in(PRNGKey(seed), k)``: results do not
        depend on ``chunk_size`` or on the number of devices.
    chunk_size : int
        Sign-flip sets per scan step (memory only).
    devices : int, optional
        Shard the sign flips over this many local devices (default: all).

    Returns
    -------
    ClusterTestResult
        NumPy arrays.
    """
    tfce = bool(tfce) or isinstance(threshold, dict)
    tail, X, shape, nbrs, total, exact, data = _prepare(X, tail, adjacency, n_perm, seed,
                                                        "a sign-flip cluster test")
    t = _t_obs(X).reshape(-1)
    tj = jnp.asarray(t, data[0].dtype)
    if tfce:
        grid, thr = _tfce_thresholds(threshold or dict(start=0, step=0.2), _flip_bound(X), tail)
        g = jnp.asarray(grid, tj.dtype)
        score = np.asarray(_observed_tfce(tj, nbrs, g, tail, float(thr["e_power"])))
        stat = _FlipStatistic("tfce", X.shape[0], tail, exact, float(thr["e_power"]))
        h0 = _run(stat, data + (g,), float(score.max()), total, chunk_size, devices)
        p = _p_from_h0(h0, score, 1)
        return ClusterTestResult(t.reshape(shape), None, p.reshape(shape), h0,
                                 (score * np.sign(t)).reshape(shape), thr, total, exact)
    thr = float(t_threshold(X.shape[0], tail) if threshold is None else threshold)
    if (tail > 0 and thr < 0) or (tail < 0 and thr > 0) or (tail == 0 and thr < 0):
        raise InvalidOptionError(f"threshold {thr} has the wrong sign for tail={tail}")
    masks, masses = [], []
    for lab, mass in _observed_clusters(tj, nbrs, jnp.asarray(thr, tj.dtype), tail):
        lab, mass = np.asarray(lab), np.asarray(mass)
        for c in np.unique(lab[lab < t.size]):
            masks.append((lab == c).reshape(shape))
            masses.append(t[lab == c].sum())          # float64, as MNE
    masses = np.asarray(masses, np.float64)
    clusters = np.asarray(masks, bool).reshape((len(masks),) + shape)
    obs = masses[np.argmax(np.abs(masses))] if masses.size else 0.0
    stat = _FlipStatistic("cluster", X.shape[0], tail, exact)
    h0 = _run(stat, data + (jnp.asarray(thr, tj.dtype),), float(obs), total, chunk_size, devices)
    p = _p_from_h0(h0, masses, tail) if masses.size else np.zeros(0)
    return ClusterTestResult(t.reshape(shape), clusters, p, h0, masses, thr, total, exact)


@float32_matmuls
def max_t_test(X, *, n_perm: int = 10_000, tail: int = 0, seed: int = 0, chunk_size: int = 64,
               devices: int | None = None) -> MaxTResult:
    """Sign-flip max-T test over subjects, as ``mne.stats.permutation_t_test``.

    ``p`` of each point is the fraction of sign-flip sets (observed included) whose
    ``max |t|`` over the map reaches the point's ``|t|`` (``tail=1``: reaches ``t``;
    ``tail=-1``: ``-max |t| <= t``), MNE's definition.

    Parameters
    ----------
    X : array, shape (n_subjects, n_times[, n_channels])
    n_perm : int
        Sign-flip sets, observed included; exact when ``2 ** (n_subjects - (tail == 0))
        <= n_perm``.
    tail : {0, 1, -1}
    seed, chunk_size, devices
        As for :func:`cluster_permutation_test`.

    Returns
    -------
    MaxTResult
    """
    tail, X, shape, nbrs, total, exact, data = _prepare(X, tail, None, n_perm, seed,
                                                        "a sign-flip max-T test")
    t = _t_obs(X)
    obs = np.abs(t).max()
    stat = _FlipStatistic("maxt", X.shape[0], tail, exact)
    h0 = _run(stat, data + (jnp.zeros(()),), float(-obs if tail < 0 else obs), total,
              chunk_size, devices)
    values = np.abs(t) if tail == 0 else t
    p = _p_from_h0(h0, values, tail if tail else 1)
    return MaxTResult(t, p, np.sort(np.abs(h0)), total, exact)
