"""One permutation engine: exceedance counts and max-T family maxima, streamed in chunks.

A permutation test is a statistic evaluated on a batch of permutations. The engine draws
the permutations of each chunk of permutation ids (deterministically per id, so neither
the chunk size nor the number of devices changes a result), evaluates the statistic on
them, and keeps only running counts per cell: memory is bounded by the chunk, never by
``n_perm x n_cells`` (unless the null itself is asked for).

Two entry points share the counting:

- :func:`permutation_test`: ``statistic`` is any host callable (refits of an encoding
  model or of a probe), called once per chunk.
- :func:`device_permutation_test`: ``statistic(data, ids)`` is jittable; the chunks are
  scanned inside one compiled program (``lax.scan``), sharded over local devices, and on
  CPU run as concurrent slices (one per core).

A "permutation" is whatever the statistic draws from its id: a relabelling of stimuli, a
set of sign flips (one-sample and cluster tests), a circular shift of a time course.

Under several processes (:mod:`alignjax.distributed`) each process takes a contiguous
block of permutation ids and the integer counts are summed over processes, so results do
not depend on the number of processes either.

Conventions
-----------
- ``p = (1 + #{null >= observed}) / (1 + n_perm)`` (Phipson & Smyth 2010) for
  ``alternative="greater"``; ``"less"`` counts ``null <= observed``, ``"two-sided"``
  ``|null| >= |observed|``. With exact enumeration (the identity among the permutations)
  ``p = #{null >= observed} / n_perm``.
- A null value within ``8 eps max(1, |observed|)`` of the observed one counts as reaching
  it (a permutation that reproduces the data up to rounding).
- Family-wise error: the maximum statistic over each family of cells (Nichols & Holmes
  2002), with the same permutations for every member.
- NaN in, NaN out: a NaN observed value gets a NaN p-value; NaN null values are not
  counted (nor in the denominator); NaN members are left out of their family's maximum.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from . import distributed
from ._runtime import usable_cores
from ._validation import ShapeMismatchError, check_choice, check_positive_int

__all__ = ["permutation_test", "device_permutation_test", "PermutationTestResult",
           "exact_permutations", "fold_in_permutations", "ALTERNATIVES"]

ALTERNATIVES = ("greater", "less", "two-sided")


class PermutationTestResult(NamedTuple):
    """Result of :func:`permutation_test` and :func:`device_permutation_test`.

    Attributes
    ----------
    observed : array ``(*cells)``
    p : array ``(*cells)``
        Uncorrected p-value, in [1/(n_perm+1), 1] (exact: [1/n_perm, 1]) or NaN.
    p_fwe : array ``(*cells)``
        Max-statistic family-wise corrected p-value (over each cell's family).
    null : array ``(n_perm, *cells)`` or None
        The null distribution, when ``return_null=True``.
    n_perm : int
    exact : bool
        True when the permutations were all permutations (identity included).
    """

    observed: Any
    p: Any
    p_fwe: Any
    null: Any
    n_perm: int
    exact: bool


# --------------------------------------------------------------------------- counting


class Counts(NamedTuple):
    """Running counts of a permutation test (int32, summed over chunks and devices)."""

    hit: jax.Array         # (*cells) null values reaching the observed one
    finite: jax.Array      # (*cells) finite null values
    hit_fwe: jax.Array     # (*cells) family maxima reaching the observed value
    finite_fwe: jax.Array  # (*cells) finite family maxima


def exceeds(null, observed, alternative: str):
    """Whether each null value reaches ``observed``, with a relative tie tolerance.

    A permutation that reproduces the observed statistic up to rounding (the identity, or
    a symmetry of the data) counts as reaching it.
    """
    tol = 8 * jnp.finfo(jnp.result_type(null)).eps * jnp.maximum(1.0, jnp.abs(observed))
    if alternative == "greater":
        return null >= observed - tol
    if alternative == "less":
        return null <= observed + tol
    return jnp.abs(null) >= jnp.abs(observed) - tol


def family_extremes(null, alternative: str, family=None, n_families: int = 1):
    """Per-permutation extreme of each family: (n, *cells) -> (n, n_families).

    The maximum (``"less"``: minimum; ``"two-sided"``: maximum of ``|null|``) over the
    cells of each family (``family``: int index per cell, flat; None: one family). NaN
    members are ignored; a family whose members are all NaN gives NaN.
    """
    flat = null.reshape(null.shape[0], -1)
    if alternative == "two-sided":
        flat = jnp.abs(flat)
    sign = -1 if alternative == "less" else 1
    if family is None:
        return sign * jnp.nanmax(sign * flat, axis=1, keepdims=True)
    x = jnp.where(jnp.isnan(flat), -jnp.inf, sign * flat).T
    top = jax.ops.segment_max(x, family, num_segments=n_families)          # (n_fam, n)
    some = jax.ops.segment_max((~jnp.isnan(flat.T)).astype(jnp.int32), family,
                               num_segments=n_families)
    return jnp.where(some > 0, sign * top, jnp.nan).T


def empty_counts(shape) -> Counts:
    """Zero counts for cells of ``shape``."""
    z = jnp.zeros(shape, jnp.int32)
    return Counts(z, z, z, z)


def accumulate(counts: Counts, null, valid, observed, *, alternative: str, family=None,
               n_families: int = 1) -> Counts:
    """``counts`` plus one chunk ``null`` (c, *cells); ``valid`` (c,) masks padding."""
    v = valid.reshape((-1,) + (1,) * observed.ndim)
    finite = jnp.isfinite(null) & v
    hit = exceeds(null, observed[None], alternative) & finite
    ext = family_extremes(null, alternative, family, n_families)             # (c, n_fam)
    if family is None:
        ext = ext.reshape((-1,) + (1,) * observed.ndim)                       # all cells
    else:
        ext = ext[:, family].reshape(null.shape)                              # (c, *cells)
    ext_finite = jnp.isfinite(ext) & v
    hit_fwe = exceeds(ext, observed[None], alternative) & ext_finite
    sums = [x.sum(0, dtype=jnp.int32) for x in (hit, finite, hit_fwe, ext_finite)]
    return Counts(*(c + jnp.broadcast_to(s, observed.shape) for c, s in zip(counts, sums)))


def pvalues(counts: Counts, observed, *, exact: bool = False, dtype=None,
            reciprocal: bool = False):
    """``p`` and ``p_fwe`` from the counts: ``(1 + hit) / (1 + finite)`` (exact:
    ``hit / finite``), NaN where ``observed`` is NaN or no null value was finite.

    Rounding, kept bit for bit from the earlier implementations: ``p_fwe`` is
    ``(1 + hit) * (1 / (1 + finite))`` (XLA rewrote the division by a broadcast count
    so), and so is ``p`` with ``reciprocal`` (as :func:`alignjax.rsa_permutation_test`
    always rounded it; :func:`device_permutation_test` keeps that); else ``p`` is the
    correctly rounded quotient.
    """

    def one(hit, n, reciprocal):
        num, den = (hit, n) if exact else (1.0 + hit, 1.0 + n)
        p = num * (1.0 / den) if reciprocal else num / den
        return jnp.where(jnp.isnan(observed) | (n == 0), jnp.nan, p)

    p = one(counts.hit, counts.finite, reciprocal)
    p_fwe = jnp.where(jnp.isnan(p), jnp.nan, one(counts.hit_fwe, counts.finite_fwe, True))
    dtype = dtype or jnp.result_type(observed)
    return p.astype(dtype), p_fwe.astype(dtype)


def _family_index(families, shape):
    """Flat int family index per cell and the number of families (None: one family)."""
    if families is None:
        return None, 1
    families = np.asarray(families)
    if families.shape != tuple(shape):
        raise ShapeMismatchError(f"families has shape {families.shape}; expected one label "
                                 f"per cell, {tuple(shape)}")
    labels, index = np.unique(families.reshape(-1), return_inverse=True)
    return jnp.asarray(index.astype(np.int32)), len(labels)


# --------------------------------------------------------------------------- permutations


def exact_permutations(n: int, n_perm: int) -> np.ndarray | None:
    """All ``n!`` permutations of ``range(n)`` (identity first) when ``n! <= n_perm``, else None."""
    if math.factorial(n) > n_perm:
        return None
    return np.array(list(itertools.permutations(range(n))), dtype=np.int32)


def fold_in_permutations(key, ids, n: int):
    """Permutation ``k`` of ``range(n)`` drawn from ``fold_in(key, k)``, for each id: (c, n).

    Each permutation depends on its id only, so any chunking of the ids gives the same ones.
    """
    return jax.vmap(lambda k: jax.random.permutation(jax.random.fold_in(key, k), n))(ids)


# --------------------------------------------------------------------------- host statistics


@partial(jax.jit, static_argnames=("alternative", "n_families"))
def _accumulate_jit(counts, null, valid, observed, family, *, alternative, n_families):
    return accumulate(counts, null, valid, observed, alternative=alternative,
                      family=family, n_families=n_families)


def _check(alternative: str, n_perm: int) -> int:
    check_choice(alternative, "alternative", ALTERNATIVES)
    return check_positive_int(n_perm, "n_perm")


def _common_dtype(obs):
    """Result dtype of a process that evaluated no permutation (float32 or float64)."""
    return jnp.result_type(obs, jnp.float32)


def _padded(null: np.ndarray, size: int) -> np.ndarray:
    """A chunk padded with NaN rows to ``size`` (one compiled shape for every chunk)."""
    if len(null) == size:
        return null
    pad = np.full((size - len(null),) + null.shape[1:], np.nan, null.dtype)
    return np.concatenate([null, pad])


def permutation_test(statistic: Callable, observed, *, n_perm: int, permutations: Callable,
                     alternative: str = "greater", families=None, chunk_size: int = 100,
                     return_null: bool = False, exact: bool = False,
                     progress: bool = False) -> PermutationTestResult:
    """Permutation p-values of a host-side statistic, streamed in chunks of permutations.

    Parameters
    ----------
    statistic : callable
        ``statistic(batch)`` -> array ``(c, *cells)``: the statistic of each permutation of
        ``batch``; any Python code (refits included).
    observed : array ``(*cells)``
        The statistic of the data.
    n_perm : int
    permutations : callable
        ``permutations(ids)`` -> the batch of permutations with ids ``ids`` (c,) int, the
        same batch for the same ids whatever the chunking (e.g. ``table.__getitem__``
        for permutations drawn beforehand, rows of a table).
    alternative : {"greater", "less", "two-sided"}
    families : array ``(*cells)``, optional
        Family label of each cell: ``p_fwe`` uses the maximum over the cell's family
        (default: all cells are one family).
    chunk_size : int
        Permutations per call of ``statistic``: memory is about ``chunk_size x n_cells``.
        Never changes a result.
    return_null : bool
        Also return the null ``(n_perm, *cells)`` (memory n_perm x n_cells).
    exact : bool
        The ids enumerate every permutation, identity included: ``p = #hit / n_perm``.
    progress : bool
        Show a progress bar over the chunks.

    Returns
    -------
    PermutationTestResult
        NumPy arrays (float32, or float64 with ``jax_enable_x64``).
    """
    n_perm = _check(alternative, n_perm)
    chunk = min(check_positive_int(chunk_size, "chunk_size"), n_perm)
    obs = jnp.asarray(observed)
    family, n_fam = _family_index(families, obs.shape)
    split = distributed.active()
    mine = distributed.block(n_perm) if split else slice(0, n_perm)
    counts, nulls, dtype = empty_counts(obs.shape), [], None
    starts = range(mine.start, mine.stop, chunk)
    if progress and distributed.is_main():
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="permutations", unit="chunk")
    with distributed.local() if split else contextlib.nullcontext():
        for start in starts:
            ids = np.arange(start, min(start + chunk, mine.stop))
            null = np.asarray(statistic(permutations(ids)))
            nulls += [null] if return_null else []
            dtype = dtype or jnp.asarray(null[:1]).dtype
            counts = _accumulate_jit(counts, _padded(null, chunk),
                                     jnp.arange(chunk) < len(ids), obs, family,
                                     alternative=alternative, n_families=n_fam)
    null = (np.concatenate(nulls) if nulls else np.empty((0,) + obs.shape)) \
        if return_null else None
    if split:
        counts = Counts(*(jnp.asarray(c) for c in distributed.allsum(tuple(counts))))
        null = distributed.gather_blocks(null, n_perm, axis=0) if return_null else None
        dtype = dtype or _common_dtype(obs)
    p, p_fwe = pvalues(counts, obs, exact=exact, dtype=dtype)
    return PermutationTestResult(np.asarray(observed), np.asarray(p), np.asarray(p_fwe), null,
                                 n_perm, bool(exact))


# --------------------------------------------------------------------------- jittable statistics


def _scan_block(statistic, data, ids, observed, family, *, chunk, alternative, n_perm,
                n_families, return_null):
    """Counts (and null) over one device's ids, scanned in chunks; ids < 0 are padding."""

    def body(counts, pids):
        null = statistic(data, jnp.clip(pids, 0, n_perm - 1))
        valid = (pids >= 0) & (pids < n_perm)
        counts = accumulate(counts, null, valid, observed, alternative=alternative,
                            family=family, n_families=n_families)
        return counts, (null if return_null else None)

    counts, null = jax.lax.scan(body, empty_counts(observed.shape), ids.reshape(-1, chunk))
    return counts, (null.reshape((-1,) + observed.shape) if return_null else None)


@partial(jax.jit, static_argnames=("statistic", "chunk", "alternative", "n_perm", "n_families",
                                   "return_null", "n_dev"))
def null_scan(statistic, data, ids, observed, family, *, chunk, alternative, n_perm, n_families,
              return_null, n_dev):
    """Counts and null of ``ids`` (n_dev * per_device,), sharded over ``n_dev`` devices.

    ``statistic`` is static (hashable: a module-level function or a frozen dataclass), so
    a second call with the same shapes and options does not recompile.
    """
    kw = dict(chunk=chunk, alternative=alternative, n_perm=n_perm, n_families=n_families,
              return_null=return_null)
    if n_dev == 1:
        return _scan_block(statistic, data, ids, observed, family, **kw)
    mesh = Mesh(np.array(jax.local_devices()[:n_dev]), ("d",))

    def local(data, ids, observed, family):
        counts, null = _scan_block(statistic, data, ids, observed, family, **kw)
        return jax.lax.psum(counts, "d"), null

    f = jax.shard_map(local, mesh=mesh, in_specs=(P(), P("d"), P(), P()),
                      out_specs=(P(), P("d") if return_null else None), check_vma=False)
    return f(data, ids, observed, family)


def host_splits(n_dev: int, n_steps: int) -> int:
    """Concurrent slices of the permutations: on CPU, one per core a device has.

    One scan of small fused steps keeps a single core busy; XLA:CPU runs separate
    executions of the same program concurrently when they are dispatched from separate
    threads.
    """
    if jax.default_backend() != "cpu":
        return 1
    return int(max(1, min(usable_cores() // n_dev, n_steps)))


def _layout(mine: range, chunk: int, devices: int | None):
    """Permutation ids ``mine`` laid out as (n_dev, n_split, per_slice), padded with -1,
    and chunk."""
    n_ids = max(1, len(mine))
    n_dev = int(devices or jax.local_device_count())
    n_dev = max(1, min(n_dev, jax.local_device_count(), n_ids))
    chunk = max(1, min(chunk, -(-n_ids // n_dev)))
    n_split = host_splits(n_dev, -(-n_ids // (n_dev * chunk)))
    per_dev = -(-n_ids // (n_dev * chunk * n_split)) * chunk * n_split
    ids = np.full(n_dev * per_dev, -1, np.int32)
    ids[:len(mine)] = np.asarray(mine, dtype=np.int32)
    return ids.reshape(n_dev, n_split, -1), chunk


def _run_slices(args, ids: np.ndarray, kw: dict):
    """:func:`null_scan` on each slice ``ids[:, s]`` concurrently; counts summed, null in
    id order (slices are contiguous per device)."""
    n_dev, n_split = ids.shape[:2]
    precision = jax.config.jax_default_matmul_precision  # thread-local: pass it on

    def one(s):
        with jax.default_matmul_precision(precision):
            return jax.block_until_ready(null_scan(args[0], args[1], jnp.asarray(
                ids[:, s].reshape(-1)), *args[2:], **kw))

    if n_split == 1:
        return one(0)
    with ThreadPoolExecutor(n_split) as pool:
        parts = list(pool.map(one, range(n_split)))
    counts = jax.tree.map(lambda *c: sum(c), *(p[0] for p in parts))
    if not kw["return_null"]:
        return counts, None
    blocks = [p[1].reshape((n_dev, -1) + p[1].shape[1:]) for p in parts]
    return counts, jnp.concatenate([b[d] for d in range(n_dev) for b in blocks])


def device_permutation_test(statistic: Callable, data, observed, *, n_perm: int,
                            alternative: str = "greater", families=None, chunk_size: int = 32,
                            return_null: bool = False, exact: bool = False,
                            devices: int | None = None) -> PermutationTestResult:
    """Permutation p-values of a jittable statistic, scanned on device over chunks.

    Parameters
    ----------
    statistic : hashable callable
        ``statistic(data, ids)`` -> array ``(c, *cells)`` for permutation ids ``ids`` (c,)
        int in ``[0, n_perm)``; it draws the permutations itself (e.g.
        :func:`fold_in_permutations` or rows of a table in ``data``) and must be
        jittable. Static: pass a module-level function or a frozen dataclass, not a
        closure or lambda made anew per call (that recompiles).
    data : pytree of arrays
        Inputs of ``statistic`` (e.g. ranked or centred data, a PRNG key), replicated on
        every device.
    observed : array ``(*cells)``
    n_perm : int
    alternative : {"greater", "less", "two-sided"}
    families : array ``(*cells)``, optional
        Family label of each cell for ``p_fwe`` (default: one family).
    chunk_size : int
        Permutations per scan step. Never changes a result.
    return_null : bool
        Also return the null ``(n_perm, *cells)``.
    exact : bool
        The ids enumerate every permutation, identity included: ``p = #hit / n_perm``.
    devices : int, optional
        Shard the permutations over this many local devices (default: all).

    Returns
    -------
    PermutationTestResult
        JAX arrays.
    """
    n_perm = _check(alternative, n_perm)
    obs = jnp.asarray(observed)
    family, n_fam = _family_index(families, obs.shape)
    split = distributed.active()
    mine = range(n_perm)[distributed.block(n_perm)] if split else range(n_perm)
    ids, chunk = _layout(mine, check_positive_int(chunk_size, "chunk_size"), devices)
    kw = dict(chunk=chunk, alternative=alternative, n_perm=n_perm, n_families=n_fam,
              return_null=return_null, n_dev=ids.shape[0])
    counts, null = _run_slices((statistic, data, obs, family), ids, kw)
    if return_null:
        null = null[jnp.asarray(ids.reshape(-1) >= 0)]
    if split:  # integer counts summed over processes: identical to one process
        counts = Counts(*(jnp.asarray(c) for c in distributed.allsum(tuple(counts))))
        null = jnp.asarray(distributed.gather_blocks(null, n_perm, axis=0)) \
            if return_null else None
    p, p_fwe = pvalues(counts, obs, exact=exact, reciprocal=True)
    return PermutationTestResult(obs, p, p_fwe, null, n_perm, bool(exact))
