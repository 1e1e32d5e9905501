"""Host-side planning of a ridge problem: which solver, how many targets per chunk, and
where the targets live (padded and sharded over the devices)."""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from .._validation import InvalidOptionError
from .kernels import mesh
from .solvers import FOLD_SOLVERS

__all__ = ["Plan", "Targets", "plan_targets", "place_targets", "centre_columns", "pad_targets",
           "fold_groups",
           "pick_solver", "pick_cv_solver", "hot_rows", "default_target_chunk", "float_dtype",
           "layer_batch", "outer_fold_batch", "fold_shape", "extend_block", "SOLVERS"]

#: Values of the public ``solver=`` option.
SOLVERS = ("auto", "svd", "eigh", "eigh_full")
#: From this many stimuli on, the kernel form uses one eigendecomposition of the full
#: kernel for all folds ("eigh_full") instead of one per training fold.
FULL_EIGH_MIN_STIMULI = 1024
#: On CPU, with a low-rank fold decomposition, the predictions of all alphas for one chunk
#: of targets are kept within about this many bytes (cache-resident): the products are
#: memory-bound there (132 x 2,048, 100 alphas, 7,694 targets: 1.3x faster than one chunk).
_CPU_HOT_BYTES = 16 << 20
_LOW_RANK = 512
#: Targets per block of an edge-extension step (only the still-active targets are
#: gathered into blocks): small on CPU, where the work follows the active targets, large
#: on accelerators, where fewer, larger blocks keep the device busy.
_EXTEND_BLOCK = {"cpu": 256}
_EXTEND_BLOCK_ACCEL = 4096


def float_dtype():
    """The default float dtype (float32, or float64 with ``jax_enable_x64``)."""
    return jnp.asarray(0.0).dtype


def _available_memory() -> int:
    """Available host memory in bytes (MemAvailable), or a conservative 4 GiB."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    try:  # pragma: no cover
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 4 << 30


def _device_memory(device) -> int:
    try:
        stats = device.memory_stats()
        if stats and "bytes_limit" in stats:
            return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    except Exception:  # pragma: no cover - CPU devices have no stats
        pass
    return _available_memory()


def default_target_chunk(n_stimuli: int, n_features: int, n_alphas: int, n_targets: int,
                         *, itemsize: int = 4, n_devices: int = 1, device=None) -> int:
    """Targets per chunk so a chunk's temporaries use at most ~1/8 of the free memory.

    Counts, per target, the training/test responses and spectral products of up to 12
    folds batched together, the predictions of every alpha on all test rows (three
    temporaries) and the refit coefficients.
    """
    mem = _device_memory(device) if device is not None else _available_memory()
    r = min(n_stimuli, n_features)
    per_target = itemsize * (12 * (n_stimuli + r) + n_features + 3 * n_alphas * n_stimuli
                             + 4 * n_alphas)
    fixed = itemsize * (4 * n_stimuli * r + 2 * n_stimuli * n_features + 2 * n_stimuli * n_stimuli)
    budget = max(mem // 8 - fixed, 64 << 20)
    chunk = int(budget // per_target)
    per_device = -(-n_targets // n_devices)
    return int(max(1, min(chunk, per_device, 65536)))


def _pass_bytes_per_layer(n_stimuli: int, n_features: int, n_alphas: int, n_folds: int,
                          plan: "Plan", n_test: int) -> int:
    """Device memory one layer takes in one outer fold's pass of the nested CV: its
    features, the decompositions of the inner folds and of the outer fit, one chunk's
    temporaries (predictions of every alpha, centred responses) and the outputs."""
    itemsize = jnp.dtype(float_dtype()).itemsize
    r = min(n_stimuli, n_features)
    fixed = n_stimuli * n_features + 2 * n_stimuli * n_stimuli + (n_folds + 1) * n_stimuli * r
    per_target = 3 * n_alphas * n_stimuli + 4 * n_stimuli + r
    return itemsize * (fixed + plan.chunk * per_target
                       + (n_test + 3) * (plan.n_padded // len(plan.devices)))


def layer_batch(n_layers: int, n_stimuli: int, n_features: int, n_alphas: int,
                n_folds: int, plan: "Plan", *, n_test: int) -> int:
    """Layers vmapped together in one pass of the nested CV (the others run in sequence).

    On CPU one layer at a time: its predictions of every alpha stay cache-resident (13
    layers vmapped together ran the braindnn protocol 1.5x slower). On accelerators as
    many as fit in 1/8 of the first device's free memory (see
    :func:`_pass_bytes_per_layer`). The batch size never changes a result.
    """
    if plan.devices[0].platform == "cpu":
        return 1
    per_layer = _pass_bytes_per_layer(n_stimuli, n_features, n_alphas, n_folds, plan, n_test)
    budget = _device_memory(plan.devices[0]) // 8
    return int(max(1, min(n_layers, budget // per_layer)))


def outer_fold_batch(n_outer: int, n_layers: int, n_stimuli: int, n_features: int,
                     n_alphas: int, n_folds: int, plan: "Plan", *, n_test: int) -> int:
    """Outer folds (of the same shapes) vmapped together in one pass of the nested CV.

    On CPU one at a time (batched decompositions can deadlock XLA:CPU's pool, see
    ``nested._map``, and the next fold is dispatched while the host scores this one). On
    accelerators as many as fit in 1/8 of the first device's free memory with all
    ``n_layers`` layers of a width in the same pass; 1 when not even all layers fit. The
    batch size never changes a result.
    """
    if plan.devices[0].platform == "cpu":
        return 1
    per_layer = _pass_bytes_per_layer(n_stimuli, n_features, n_alphas, n_folds, plan, n_test)
    budget = _device_memory(plan.devices[0]) // 8
    return int(max(1, min(n_outer, budget // (per_layer * n_layers))))


def fold_shape(n_test: int, masks: np.ndarray) -> tuple:
    """What must agree for outer folds to run in one vmapped pass: the outer-test size and
    the inner folds' training size and test sizes (``masks`` (n_folds, n_train))."""
    sizes, counts = np.unique(masks.sum(axis=1), return_counts=True)
    return int(n_test), masks.shape, tuple(sizes.tolist()), tuple(counts.tolist())


def extend_block(plan: "Plan") -> int:
    """Targets per block of an edge-extension step on the devices of ``plan``."""
    return min(plan.chunk, _EXTEND_BLOCK.get(plan.devices[0].platform, _EXTEND_BLOCK_ACCEL))


# --------------------------------------------------------------------------- solvers


def pick_solver(solver: str, n_rows: int, n_features: int) -> str:
    """Fold solver (a key of ``FOLD_SOLVERS``) for a fit on ``n_rows`` rows: ``"auto"`` is
    ``"svd"`` when ``n_rows >= n_features``, else ``"eigh"``; ``"eigh_full"`` fits as
    ``"eigh"``."""
    if solver == "auto":
        return "svd" if n_rows >= n_features else "eigh"
    return "eigh" if solver == "eigh_full" else solver


def pick_cv_solver(solver: str, masks: np.ndarray, n_features: int, n_alphas: int,
                   standardize: bool) -> str:
    """CV solver (a key of ``CV_SOLVERS``) for the folds ``masks`` (n_folds, n_stimuli).

    ``"auto"`` uses the full-kernel shortcut from 1024 stimuli on in the kernel form (not
    standardising) when its per-fold systems fit in 1/8 of the free memory.
    """
    n_folds, n_stimuli = masks.shape
    if solver == "eigh_full":
        if standardize:
            raise InvalidOptionError("solver='eigh_full' cannot standardise per training fold; "
                                     "use solver='eigh' or standardize=False")
        return "eigh_full"
    name = pick_solver(solver, int((~masks).sum(axis=1).max()), n_features)
    if solver == "auto" and name == "eigh" and not standardize \
            and n_stimuli >= FULL_EIGH_MIN_STIMULI:
        m = -(-n_stimuli // n_folds)
        if n_folds * n_alphas * m * (m + n_stimuli) * 4 <= _available_memory() // 8:
            return "eigh_full"
    return name


def hot_rows(cv_solver: str, n_alphas: int, masks: np.ndarray, n_features: int) -> int | None:
    """Rows (alphas x test rows) of one chunk's predictions when they should stay in cache
    (a per-fold CV solver with a low-rank decomposition)."""
    n_train = int((~masks).sum(axis=1).max())
    if cv_solver in FOLD_SOLVERS and min(n_train, n_features) <= _LOW_RANK:
        return n_alphas * int(masks.sum(axis=1).max())
    return None


# --------------------------------------------------------------------------- targets


class Plan(NamedTuple):
    """Placement of ``n_targets`` targets: ``chunk`` per step on each of ``devices``,
    padded with zero targets to ``n_padded`` (a multiple of ``len(devices) * chunk``)."""

    devices: tuple
    chunk: int
    n_targets: int
    n_padded: int


def _check_chunk_size(chunk_size) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
            or chunk_size < 1:
        raise InvalidOptionError(f"chunk_size must be a positive integer or None, got "
                                 f"{chunk_size!r}")
    return int(chunk_size)


def plan_targets(n_stimuli, n_features, n_alphas, n_targets, chunk_size, devices,
                 hot_rows: int | None = None) -> Plan:
    """Targets per chunk (``chunk_size``, or from the free memory when None) and devices
    (all local devices when None); ``hot_rows`` caps the chunk on CPU (cache-resident)."""
    devices = tuple(jax.local_devices() if devices is None else devices)
    n_dev = len(devices)
    itemsize = jnp.dtype(float_dtype()).itemsize
    if chunk_size is None:
        chunk = default_target_chunk(n_stimuli, n_features, n_alphas, n_targets,
                                     itemsize=itemsize, n_devices=n_dev, device=devices[0])
        if hot_rows and devices[0].platform == "cpu":
            chunk = min(chunk, max(64, _CPU_HOT_BYTES // (itemsize * hot_rows)))
            per_device = -(-n_targets // n_dev)
            chunk = -(-per_device // -(-per_device // chunk))  # equal chunks, little padding
    else:
        chunk = min(_check_chunk_size(chunk_size), -(-n_targets // n_dev))
    per = n_dev * chunk
    n_padded = -(-n_targets // per) * per
    return Plan(devices, chunk, n_targets, n_padded)


class Targets(NamedTuple):
    """Responses on the host (n_rows, n_targets) and on the devices (padded, sharded).

    With ``offset`` (n_targets,) the responses are stored centred: the original responses
    are ``host + offset`` (see :func:`place_targets`).
    """

    host: np.ndarray
    device: jax.Array
    plan: Plan
    offset: np.ndarray | None = None


#: Columns centred at a time on the host (bounds the float64 temporary).
_CENTRE_BLOCK = 4096


def centre_columns(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Y - mean, mean)``: columns centred on the host, the means in float64 and the
    differences formed in float64, then stored in ``Y``'s float dtype.

    Removing a large common offset here (a response with a mean of 10 and a spread of 1)
    keeps the per-fold centring on the devices, whose float32 reductions round
    differently with the number of columns reduced together, from deciding the
    responses' last digits; elementwise host arithmetic is the same for a column whatever
    other columns are centred with it.
    """
    Y = np.asarray(Y)
    dtype = Y.dtype if np.issubdtype(Y.dtype, np.floating) else np.float64
    mean = np.empty(Y.shape[1], np.float64)
    out = np.empty(Y.shape, dtype)
    for j in range(0, Y.shape[1], _CENTRE_BLOCK):
        blk = np.asarray(Y[:, j:j + _CENTRE_BLOCK], np.float64)
        mean[j:j + _CENTRE_BLOCK] = blk.mean(axis=0)
        out[:, j:j + _CENTRE_BLOCK] = blk - mean[j:j + _CENTRE_BLOCK]
    return out, mean


def place_targets(Y: np.ndarray, plan: Plan, *, centre: bool = False) -> Targets:
    """Pad ``Y`` (n_rows, n_targets) to ``plan.n_padded`` columns and shard them.

    ``centre``: store the columns centred (:func:`centre_columns`), with their means in
    ``offset``; for fits with an intercept, which are invariant to a shift of the responses.
    """
    offset = None
    if centre:
        Y, offset = centre_columns(Y)
    Yp = Y
    if Y.shape[1] != plan.n_padded:
        Yp = np.concatenate([Y, np.zeros((Y.shape[0], plan.n_padded - Y.shape[1]), Y.dtype)], 1)
    dev = jax.device_put(np.asarray(Yp, dtype=float_dtype()),
                         NamedSharding(mesh(plan.devices), P(None, "t")))
    return Targets(Y, dev, plan, offset)


def pad_targets(v, plan: Plan, fill=1.0) -> jax.Array:
    """A per-target vector (n_targets,) padded with ``fill`` to ``plan.n_padded``."""
    v = np.asarray(v)
    if v.shape[0] != plan.n_padded:
        v = np.concatenate([v, np.full(plan.n_padded - v.shape[0], fill, v.dtype)])
    return jnp.asarray(v, float_dtype())


def fold_groups(masks: np.ndarray):
    """Group folds by training size -> tuple of (train idx (g, n_tr), test idx (g, n_te))."""
    n_test = masks.sum(axis=1)
    groups = []
    for size in np.unique(n_test):
        sel = np.flatnonzero(n_test == size)
        tr = np.stack([np.flatnonzero(~masks[f]) for f in sel]).astype(np.int32)
        te = np.stack([np.flatnonzero(masks[f]) for f in sel]).astype(np.int32)
        groups.append((jnp.asarray(tr), jnp.asarray(te)))
    return tuple(groups)
