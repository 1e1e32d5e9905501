"""RSA over time: model RDMs against time-resolved brain RDMs, and its permutation test.

``method`` is an RSA comparison name (``"spearman"``, ``"pearson"``, ``"cosine"``,
``"rho_a"``; as :func:`alignjax.compare`) or any similarity metric given as a jittable
callable ``method(A, B) -> (n_a, n_b)`` of condensed RDMs (rows of ``A`` and ``B``).

Inference (fixed effects over stimuli): stimulus labels are permuted, identically at
every time point, layer and subject (the temporal autocorrelation of the data is kept in
every permutation), and the family-wise error is controlled over the whole family with
the maximum statistic (``correction="max"``) or the maximum cluster mass over time
(``correction="cluster"``). Never permute time frames or RDM entries: neither gives a
valid null (neighbouring frames are not exchangeable; RDM entries share stimuli).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._runtime import float32_matmuls
from .._validation import (NonFiniteError, ShapeMismatchError, as_float_array, check_choice,
                           check_positive_int)
from ..clusters import cluster_masses, lattice_neighbours
from ..permutation import ALTERNATIVES, device_permutation_test, exact_permutations, \
    fold_in_permutations
from ..rdm import n_stimuli_from_pairs
# rsa.py's comparison transforms: rank once, then a dot product of transformed rows
from ..rsa import _DOT_METHODS, _check_not_constant, _pair_index, _permute_condensed, \
    _ranked, _transform

__all__ = ["temporal_rsa", "temporal_rsa_permutation_test", "TemporalRSAResult",
           "compare_rows", "prepare_rows", "PermutedRSA", "pilot_cluster_threshold"]


# --------------------------------------------------------------------------- comparisons


def _check_method(method):
    if callable(method):
        return method
    return check_choice(method, "method", _DOT_METHODS)


def prepare_rows(V: np.ndarray, method) -> jax.Array:
    """Condensed RDM rows (m, n_pairs) ready for :func:`compare_rows` (transformed once)."""
    dt = jnp.result_type(float)
    if callable(method):
        return jnp.asarray(V, dt)
    return _transform(_ranked(V, method), method)


def compare_rows(A, B, method) -> jax.Array:
    """Similarity of prepared rows: (n_a, n_pairs) x (n_b, n_pairs) -> (n_a, n_b)."""
    if callable(method):
        return method(A, B)
    return A @ B.T


def _as_model(model_rdms) -> np.ndarray:
    M = as_float_array(model_rdms, "model_rdms", ndim=(1, 2, 3))
    M = M[None] if M.ndim == 1 else M
    if not np.isfinite(M).all():
        raise NonFiniteError("model_rdms has NaN or inf entries; recompute them from "
                             "finite features")
    return M


def _as_brain(brain_rdms) -> np.ndarray:
    B = as_float_array(brain_rdms, "brain_rdms", ndim=(2, 3))
    B = B[None] if B.ndim == 2 else B
    if not np.isfinite(B).all():
        s, t = np.argwhere(~np.isfinite(B).all(-1))[0]
        raise NonFiniteError(f"brain_rdms has NaN or inf entries (first: subject {s}, "
                             f"time {t}); recompute them from finite data")
    return B


def _check_pairs(M, B):
    if M.shape[-1] != B.shape[-1]:
        raise ShapeMismatchError(
            f"model RDMs have {M.shape[-1]} pairs ({n_stimuli_from_pairs(M.shape[-1])} stimuli), "
            f"brain RDMs {B.shape[-1]} ({n_stimuli_from_pairs(B.shape[-1])} stimuli); build them "
            "over the same stimuli, in the same order")
    n = n_stimuli_from_pairs(M.shape[-1])
    _check_not_constant(M.reshape(-1, M.shape[-1]), "model_rdms")
    _check_not_constant(B.reshape(-1, B.shape[-1]), "brain_rdms")
    return n


def _layout(M, B):
    """Cells shape: (L, S, T) for a static model, (L, S, Tm, T) for a time-resolved one."""
    L, S, T = M.shape[0], B.shape[0], B.shape[1]
    return (L, S, T) if M.ndim == 2 else (L, S, M.shape[1], T)


def _to_cells(r, shape):
    """(..., L*[Tm], S*T) comparisons -> (..., *cells)."""
    lead = r.shape[:-2]
    if len(shape) == 3:
        return r.reshape(lead + shape)
    L, S, Tm, T = shape
    r = r.reshape(lead + (L, Tm, S, T))
    return jnp.moveaxis(r, -3, -2) if isinstance(r, jax.Array) else np.moveaxis(r, -3, -2)


@float32_matmuls
def temporal_rsa(model_rdms, brain_rdms, *, method="spearman") -> jax.Array:
    """RSA of model RDMs with brain RDMs at every time point.

    Parameters
    ----------
    model_rdms : array, shape (n_layers, n_pairs) or (n_layers, n_model_times, n_pairs)
        Static model RDMs, or time-resolved ones (frames of the model's features).
    brain_rdms : array, shape (n_subjects, n_times, n_pairs) or (n_times, n_pairs)
        E.g. :func:`temporal_rdms` of each subject's epochs.
    method : str or callable
        ``"spearman"``, ``"pearson"``, ``"cosine"``, ``"rho_a"`` (:func:`alignjax.compare`),
        or a jittable ``method(A, B) -> (n_a, n_b)`` similarity of condensed RDMs.

    Returns
    -------
    array, shape (n_layers, n_subjects, n_times)
        Or (n_layers, n_subjects, n_model_times, n_times) for time-resolved models: the
        model-time x brain-time generalisation map.
    """
    method = _check_method(method)
    M, B = _as_model(model_rdms), _as_brain(brain_rdms)
    _check_pairs(M, B)
    A = prepare_rows(M.reshape(-1, M.shape[-1]), method)
    Bt = prepare_rows(B.reshape(-1, B.shape[-1]), method)
    return _to_cells(compare_rows(A, Bt, method), _layout(M, B))


# --------------------------------------------------------------------------- null statistic


def _block_permutation(key, i, n: int, param: int):
    """One permutation of ``range(n)`` that puts the blocks of ``param`` frames (the
    independent units of :func:`alignjax.frame_rsa_permutation_test`) in a random order."""
    k = jax.random.fold_in(key, i)
    block = jnp.arange(n) // param
    n_blocks = -(-n // param)
    order = jax.random.permutation(k, n_blocks)
    rank = jnp.zeros(n_blocks, jnp.int32).at[order].set(jnp.arange(n_blocks, dtype=jnp.int32))
    return jnp.argsort(rank[block] * n + jnp.arange(n))


@dataclasses.dataclass(frozen=True)
class PermutedRSA:
    """Null statistic for the engine: similarity of relabelled model RDMs with the brain.

    ``data = (A, B, key, table, nbrs, threshold, sign)``. ``scheme``: ``"stimuli"``
    (:func:`alignjax.permutation.fold_in_permutations`, as :func:`alignjax.rsa_permutation_test`),
    ``"exact"`` (rows of ``table``) or ``"block"`` (independent units of ``param`` frames
    in a random order).
    With ``n_clusters > 0`` the statistic also returns, for each observed cluster, the
    largest cluster mass of the permuted map (``sign`` * magnitude).
    """

    n: int
    scheme: str
    shape: tuple
    method: Any = "spearman"
    param: int = 1
    n_clusters: int = 0
    tail: int = 1

    def permutations(self, key, table, ids):
        if self.scheme == "exact":
            return table[ids]
        if self.scheme == "stimuli":
            return fold_in_permutations(key, ids, self.n)
        return jax.vmap(lambda i: _block_permutation(key, i, self.n, self.param))(ids)

    def __call__(self, data, ids):
        A, B, key, table, nbrs, thr, sign = data
        ii, jj = (jnp.asarray(x) for x in _pair_index(self.n))
        perms = self.permutations(key, table, ids)
        idx = jax.vmap(lambda p: _permute_condensed(p, ii, jj, self.n))(perms)   # (c, P)
        if callable(self.method):
            r = jax.vmap(lambda ix: self.method(A[:, ix], B))(idx)
        else:
            r = jnp.einsum("acp,bp->cab", A[:, idx], B)
        r = _to_cells(r, self.shape).reshape(ids.shape[0], -1)
        if not self.n_clusters:
            return r
        m = jax.vmap(lambda x: max_cluster_magnitude(x, nbrs, thr, self.tail))(r)
        return jnp.concatenate([r, jnp.broadcast_to((sign * m)[:, None],
                                                    (r.shape[0], self.n_clusters))], axis=1)


def max_cluster_magnitude(x, nbrs, thr, tail: int):
    """Largest cluster mass magnitude of the flat map ``x`` (0 without clusters)."""
    out = jnp.zeros((), x.dtype)
    if tail >= 0:
        out = jnp.maximum(out, jnp.max(cluster_masses(x, x > thr, nbrs)[1]))
    if tail <= 0:
        out = jnp.maximum(out, jnp.max(-cluster_masses(x, x < -thr, nbrs)[1]))
    return out


def time_neighbours(shape, adjacency=None) -> np.ndarray:
    """Neighbour table of the flat cells (n_layers, n_subjects, *inner): cells are
    connected only within one layer and subject, along the inner axes (a time lattice;
    with ``adjacency``, inner is (n_times, n_channels) and channels connect by it)."""
    n_blocks, inner = shape[0] * shape[1], tuple(shape[2:])
    block = lattice_neighbours(inner, adjacency)
    size = int(np.prod(inner))
    return (block[None] + (np.arange(n_blocks) * size)[:, None, None]).reshape(-1, block.shape[1])


@jax.jit
def _signed_clusters(flat, nbrs, thr):
    return cluster_masses(flat, flat > thr, nbrs), cluster_masses(flat, flat < -thr, nbrs)


def observed_clusters(r: np.ndarray, nbrs, thr: float, tail: int):
    """Masks (n_clusters, *r.shape) and signed masses of the clusters of ``r``."""
    flat = jnp.asarray(r.reshape(-1))
    masks, masses = [], []
    pos, neg = _signed_clusters(flat, nbrs, jnp.asarray(thr, flat.dtype))
    for sgn in ([1] if tail >= 0 else []) + ([-1] if tail <= 0 else []):
        lab, mass = (np.asarray(a) for a in (pos if sgn > 0 else neg))
        for c in np.unique(lab[lab < flat.size]):
            masks.append((lab == c).reshape(r.shape))
            masses.append(mass[c])
    return np.asarray(masks, bool).reshape((len(masks),) + r.shape), np.asarray(masses)


def pilot_cluster_threshold(stat: "PermutedRSA", data, alternative: str, *, n_pilot: int = 200,
                            chunk_size: int = 8, devices=None) -> float:
    """Default cluster-forming threshold on r: the 95th percentile of the null r over all
    cells (of ``|r|`` for two-sided tests), from ``n_pilot`` permutations drawn apart
    from the test's (an uncorrected p = 0.05 threshold). It depends on the permutation
    distribution only, not on which labelling was observed, so the test stays valid."""
    pilot = dataclasses.replace(stat, n_clusters=0)
    A, B, key, *rest = data
    res = device_permutation_test(pilot, (A, B, jax.random.fold_in(key, 2**31 - 1), *rest),
                                  jnp.zeros(int(np.prod(stat.shape))), n_perm=n_pilot,
                                  return_null=True, chunk_size=chunk_size, devices=devices)
    null = np.asarray(res.null)
    if alternative == "two-sided":
        return float(np.quantile(np.abs(null), 0.95))
    return float(np.quantile(-null if alternative == "less" else null, 0.95))


# --------------------------------------------------------------------------- permutation test


class TemporalRSAResult(NamedTuple):
    """Result of :func:`temporal_rsa_permutation_test`.

    Attributes
    ----------
    r : array (n_layers, n_subjects, n_times) or (n_layers, n_subjects, n_model_times, n_times)
        Observed similarity (the subject axis has length 1 with ``average_subjects``).
    p : array like ``r``
        Uncorrected permutation p-value per cell.
    p_fwe : array like ``r``
        Family-wise corrected p-value over all cells: max statistic, or (``"cluster"``)
        the p-value of the cluster holding the cell (1 outside clusters).
    clusters : bool array ``(n_clusters, *r.shape)``
        Observed clusters (empty unless ``correction="cluster"``).
    cluster_p : array (n_clusters,)
        Family-wise p-value of each cluster (max cluster mass over the family).
    cluster_mass : array (n_clusters,)
        Sum of ``r`` over each cluster.
    cluster_threshold : float or None
    n_perm : int
    exact : bool
    """

    r: Any
    p: Any
    p_fwe: Any
    clusters: Any
    cluster_p: Any
    cluster_mass: Any
    cluster_threshold: Any
    n_perm: int
    exact: bool


_TAIL = {"greater": 1, "less": -1, "two-sided": 0}


def permuted_rsa_test(A, B, obs, shape, *, n: int, method, scheme: str, param: int, n_perm: int,
                      seed: int, alternative: str, correction: str, cluster_threshold,
                      chunk_size, devices, table=None, nbrs=None) -> TemporalRSAResult:
    """Engine call shared by the temporal and frame-wise tests (package-internal)."""
    tail = _TAIL[alternative]
    obs = np.asarray(obs)
    clusters, masses = np.zeros((0,) + shape, bool), np.zeros(0)
    thr, given, nbrs, sign = None, nbrs, np.zeros((1, 1), np.int32), 1.0
    dt = jnp.result_type(float)
    data = (A, B, jax.random.PRNGKey(seed),
            jnp.asarray(table if table is not None else np.zeros((1, n), np.int32)))
    if correction == "cluster":
        if cluster_threshold is None:
            pilot = PermutedRSA(n, scheme, shape, method, param, 0, tail)
            nb0 = jnp.zeros((1, 1), jnp.int32)
            cluster_threshold = pilot_cluster_threshold(
                pilot, data + (nb0, jnp.zeros((), dt), jnp.ones((), dt)), alternative,
                chunk_size=chunk_size, devices=devices)
        thr = float(cluster_threshold)
        nbrs = time_neighbours(shape) if given is None else given
        clusters, masses = observed_clusters(obs, jnp.asarray(nbrs), thr, tail)
        sign = -1.0 if tail < 0 else 1.0
    k = len(masses)
    k_pad = 0 if correction != "cluster" else 1 << int(np.ceil(np.log2(max(k, 8))))
    exact = table is not None
    # cluster cells padded to a power of two (one compiled statistic per size); the padding
    # cells observe inf and are dropped
    stat = PermutedRSA(n, "exact" if exact else scheme, shape, method, param, k_pad, tail)
    data = data + (jnp.asarray(nbrs), jnp.asarray(thr or 0.0, dt), jnp.asarray(sign, dt))
    pad = np.full(k_pad - k, np.inf)
    cells = np.concatenate([obs.reshape(-1), sign * np.abs(masses), sign * pad]).astype(dt)
    families = np.concatenate([np.zeros(obs.size, int), np.ones(k_pad, int)])
    res = device_permutation_test(stat, data, jnp.asarray(cells), n_perm=n_perm,
                                  alternative=alternative, families=families,
                                  chunk_size=chunk_size, exact=exact, devices=devices)
    p = np.asarray(res.p)[:obs.size].reshape(shape)
    if correction == "cluster":
        cluster_p = np.asarray(res.p)[obs.size:obs.size + k]
        p_fwe = np.ones(shape, p.dtype)
        for mask, cp in zip(clusters, cluster_p):
            p_fwe[mask] = np.minimum(p_fwe[mask], cp)
    else:
        cluster_p = np.zeros(0)
        p_fwe = np.asarray(res.p_fwe)[:obs.size].reshape(shape)
    return TemporalRSAResult(obs, p, p_fwe, clusters, cluster_p, masses, thr, n_perm, exact)


def _auto_chunk(n_rows: int, n_pairs: int, n_cells: int) -> int:
    per_perm = 4 * (n_rows * n_pairs + 2 * n_cells)
    return int(max(1, min(64, (128 << 20) // max(per_perm, 1))))


@float32_matmuls
def temporal_rsa_permutation_test(model_rdms, brain_rdms, *, method="spearman",
                                  n_perm: int = 1000, correction: str = "max",
                                  cluster_threshold: float | None = None, seed: int = 0,
                                  alternative: str = "greater", average_subjects: bool = False,
                                  chunk_size: int | None = None, devices: int | None = None
                                  ) -> TemporalRSAResult:
    """Stimulus-label permutation test of temporal RSA, family-wise over time x layer x subject.

    Each permutation relabels the stimuli of the model RDMs (rows and columns together)
    and is applied identically at every time point, layer and subject, so the temporal
    autocorrelation of the brain data is intact in every permutation. Permutation ``k`` is
    drawn from ``fold_in(PRNGKey(seed), k)`` (the permutations of
    :func:`alignjax.rsa_permutation_test` and :func:`alignjax.stimulus_permutations`);
    ``p = (1 + #{null >= r}) / (1 + n_perm)``; all ``n_stimuli!`` permutations are
    enumerated when that is at most ``n_perm``.

    Parameters
    ----------
    model_rdms : array, shape (n_layers, n_pairs) or (n_layers, n_model_times, n_pairs)
    brain_rdms : array, shape (n_subjects, n_times, n_pairs) or (n_times, n_pairs)
    method : str or callable
        As :func:`temporal_rsa`.
    n_perm : int
    correction : {"max", "cluster"}
        ``"max"``: max statistic over all cells. ``"cluster"``: clusters of consecutive
        time points (time x time for generalisation maps) with ``r`` beyond
        ``cluster_threshold``, each tested by its mass (sum of r) against the maximum
        cluster mass over the whole family in each permutation.
    cluster_threshold : float, optional
        Cluster-forming threshold on ``r``; default: the 95th percentile of the null r
        over all cells from 200 separate permutations (:func:`pilot_cluster_threshold`).
    seed : int
    alternative : {"greater", "less", "two-sided"}
        Two-sided: clusters of either sign, tested by ``|mass|``.
    average_subjects : bool
        Average the brain RDMs over subjects first (fixed effects on the group RDM): the
        subject axis of the result then has length 1.
    chunk_size : int, optional
        Permutations per scan step (memory only).
    devices : int, optional
        Shard the permutations over this many local devices (default: all).

    Returns
    -------
    TemporalRSAResult
        NumPy arrays.
    """
    method = _check_method(method)
    check_choice(correction, "correction", ("max", "cluster"))
    check_choice(alternative, "alternative", ALTERNATIVES)
    n_perm = check_positive_int(n_perm, "n_perm")
    M, B = _as_model(model_rdms), _as_brain(brain_rdms)
    if average_subjects:
        B = B.mean(0, keepdims=True)
    n = _check_pairs(M, B)
    shape = _layout(M, B)
    A = prepare_rows(M.reshape(-1, M.shape[-1]), method)
    Bt = prepare_rows(B.reshape(-1, B.shape[-1]), method)
    obs = np.asarray(_to_cells(compare_rows(A, Bt, method), shape))
    table = exact_permutations(n, n_perm)
    if table is not None:
        n_perm = table.shape[0]
    chunk = chunk_size or _auto_chunk(A.shape[0], A.shape[1], obs.size)
    return permuted_rsa_test(A, Bt, obs, shape, n=n, method=method, scheme="stimuli", param=1,
                             n_perm=n_perm, seed=seed, alternative=alternative,
                             correction=correction, cluster_threshold=cluster_threshold,
                             chunk_size=chunk, devices=devices, table=table)
