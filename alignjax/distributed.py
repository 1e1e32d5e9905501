"""Multi-process runs on ``jax.distributed``: each process computes a block, small results meet.

Under N processes (started by ``alignjax launch -n N`` on one machine, by SLURM's
``srun`` on a cluster, or by any launcher that sets the variables below), alignjax's
heavy loops split their work by process and exchange only what is needed to finish:

- the permutation engine (:mod:`alignjax.permutation`) gives each process a contiguous
  block of permutation ids and sums the integer exceedance counts (and family-maxima
  counts) over processes, so p-values and FWE p-values are bit-identical to one process;
- :func:`alignjax.ridge_cv` and :func:`alignjax.encode` give each process a block of
  targets (voxels) and gather the per-target results, so every process ends with the
  whole result; ``encode(..., gather=False)`` keeps each block in the process that
  computed it (join blocks with :func:`alignjax.concat_targets`).
- ``alignjax encode`` writes each block from the process that owns it and process 0 joins
  them (:mod:`alignjax.app.studies.encode_blocks`); the other commands write from process
  0 only (:mod:`alignjax.app.cli`).

The same seed gives the same result for any number of processes. Work that is already a
block of a distributed computation runs locally (see :func:`local`), so nested calls
(an encoding permutation test refitting encode) split only once.

Meshes are built from ``jax.local_devices()`` in every process; arrays never span
processes (all exchange is of host NumPy arrays through ``process_allgather``).

Environment
-----------
``ALIGNJAX_COORDINATOR`` (``host:port``), ``ALIGNJAX_NUM_PROCESSES``, ``ALIGNJAX_PROCESS_ID``
are read by :func:`initialize` when its arguments are not given; without them, on a SLURM
allocation, JAX's own cluster detection (``SLURM_*`` variables) is used.

``ALIGNJAX_RENDEZVOUS_PORT``: the port of the pre-join rendezvous (default: the
coordinator's port + 1; see :func:`initialize`). ``ALIGNJAX_JOIN_MARKERS``: a folder in
which each process, once joined, writes ``rank-<id>.joined`` holding its pid (set by
``alignjax launch`` to tell which process has not joined).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["initialize", "rendezvous", "shutdown", "process_count", "process_index", "is_main", "active",
           "local", "block", "gather_blocks", "allsum", "map_blocks", "DistributedError"]

ENV_COORDINATOR = "ALIGNJAX_COORDINATOR"
ENV_NUM_PROCESSES = "ALIGNJAX_NUM_PROCESSES"
ENV_PROCESS_ID = "ALIGNJAX_PROCESS_ID"
ENV_RENDEZVOUS_PORT = "ALIGNJAX_RENDEZVOUS_PORT"
ENV_JOIN_MARKERS = "ALIGNJAX_JOIN_MARKERS"

_LOCAL = contextvars.ContextVar("alignjax_distributed_local", default=False)


class DistributedError(RuntimeError):
    """A multi-process run could not start or its processes disagree."""


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"{name}={value!r} is not an integer") from None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, timeout: int = 300) -> None:
    """Join a multi-process run: a thin wrapper over :func:`jax.distributed.initialize`.

    Parameters
    ----------
    coordinator_address : str, optional
        ``host:port`` of process 0 (default: ``$ALIGNJAX_COORDINATOR``; on SLURM, JAX's
        detection).
    num_processes, process_id : int, optional
        Default: ``$ALIGNJAX_NUM_PROCESSES`` and ``$ALIGNJAX_PROCESS_ID``.
    timeout : int
        Seconds to wait for every process to join. A process that has not joined by then
        gives, in every process that is waiting, a :class:`DistributedError` naming the
        missing process ("process 1 of 2 did not join within 15 s"), instead of JAX's
        abort of the whole interpreter.

    Notes
    -----
    Before :func:`jax.distributed.initialize` the processes meet at a rendezvous of their
    own: process 0 listens on the coordinator's port + 1 (``$ALIGNJAX_RENDEZVOUS_PORT``
    overrides it) and every other process connects and says its rank; when all are there
    (or ``timeout`` is over, naming who is missing) process 0 answers all of them. A rank
    given twice, or another process count, is refused. Without a known coordinator address
    and process count (JAX's detection failed) the rendezvous is skipped.

    On CPU the cross-process collectives use gloo. After joining, the processes compare
    their alignjax and jax versions and x64 setting, and refuse to run mixed.
    """
    import jax

    if jax.distributed.is_initialized():
        return
    coordinator_address = coordinator_address or os.environ.get(ENV_COORDINATOR) or None
    num_processes = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    process_id = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    if num_processes is not None and process_id is not None \
            and not 0 <= process_id < num_processes:
        raise DistributedError(f"process id {process_id} is out of range for "
                               f"{num_processes} processes (0 <= id < {num_processes})")
    address, n, rank = _detected(coordinator_address, num_processes, process_id)
    if address is not None and n is not None and rank is not None and n > 1:
        rendezvous(address, n, rank, timeout=timeout)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address, num_processes, process_id,
                                   initialization_timeout=int(timeout))
    except Exception as exc:  # noqa: BLE001 - re-raised with the rank that failed
        raise DistributedError(
            f"process {process_id} of {num_processes} could not join the run at "
            f"{coordinator_address or '(SLURM-detected coordinator)'} within {timeout} s: "
            f"{exc}. Check that every process started and that the coordinator port is "
            "free; rerunning resumes from what was written.") from exc
    _check_versions()
    _mark_joined()


def _mark_joined() -> None:
    """Write ``$ALIGNJAX_JOIN_MARKERS/rank-<id>.joined`` (this pid) once joined."""
    folder = os.environ.get(ENV_JOIN_MARKERS)
    if folder:
        import jax

        path = Path(folder) / f"rank-{jax.process_index()}.joined"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(path)


def _detected(address, n, rank):
    """Coordinator address, process count and rank as JAX will use them (SLURM detection
    for what is not given); None for what cannot be known before joining."""
    if address is not None and n is not None and rank is not None:
        return address, n, rank
    try:  # JAX's own cluster detection (private API: skipped if it changes)
        from jax._src.clusters import ClusterEnv

        return ClusterEnv.auto_detect_unset_distributed_params(address, n, rank, None, None,
                                                               None)[:3]
    except Exception:  # noqa: BLE001 - no cluster detected: JAX reports it when joining
        return address, n, rank


def _ranks(ranks) -> str:
    ranks = sorted(ranks)
    return (f"process {ranks[0]}" if len(ranks) == 1
            else "processes " + ", ".join(str(r) for r in ranks))


def _rendezvous_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    override = os.environ.get(ENV_RENDEZVOUS_PORT)
    if override:
        return host, int(override)
    port = int(port)
    return host, port + 1 if port < 65535 else port - 1


def rendezvous(address: str, n: int, rank: int, *, timeout: float) -> None:
    """Meet every process of the run before joining it (see :func:`initialize`).

    Raises
    ------
    DistributedError
        Naming the processes that did not arrive within ``timeout`` seconds, or, in a
        process other than 0, that process 0 could not be reached.
    """
    host, port = _rendezvous_port(address)
    if rank == 0:
        _rendezvous_serve(port, n, timeout)
    else:
        _rendezvous_join(host, port, n, rank, timeout)


def _readline(conn: socket.socket, limit: int = 256) -> str:
    data = b""
    while not data.endswith(b"\n") and len(data) < limit:
        piece = conn.recv(limit)
        if not piece:
            break
        data += piece
    return data.decode(errors="replace").strip()


def _rendezvous_serve(port: int, n: int, timeout: float) -> None:
    """Process 0: wait for ranks 1..n-1 to say their rank, then answer all of them."""
    deadline = time.monotonic() + timeout
    conns: dict[int, socket.socket] = {}
    refused: list[str] = []
    try:
        srv = socket.create_server(("", port))
    except OSError as exc:
        raise DistributedError(f"process 0 of {n} cannot listen on port {port} for the other "
                               f"processes to arrive ({exc}); free the port or set "
                               f"{ENV_RENDEZVOUS_PORT}") from None
    try:
        srv.settimeout(0.1)
        while len(conns) < n - 1 and not refused and time.monotonic() < deadline:
            try:
                conn, peer = srv.accept()
            except (socket.timeout, BlockingIOError):
                continue
            conn.settimeout(max(0.5, deadline - time.monotonic()))
            try:
                words = _readline(conn).split()
            except OSError:
                conn.close()
                continue
            if len(words) != 3 or words[0] != "alignjax-join":
                conn.close()  # not one of ours
                continue
            their_n, their_rank = int(words[1]), int(words[2])
            if their_n != n or not 0 < their_rank < n or their_rank in conns:
                why = (f"a process at {peer[0]} says the run has {their_n} processes, "
                       f"process 0 says {n}" if their_n != n else
                       f"process id {their_rank} was given to two processes"
                       if their_rank in conns else f"process id {their_rank} is out of range")
                refused.append(why)
                _send(conn, f"error {why}")
                conn.close()
                continue
            conns[their_rank] = conn
        missing = sorted(set(range(1, n)) - set(conns))
        if refused:
            reply = "error " + refused[0]
        else:
            reply = "ok" if not missing else "missing " + ",".join(map(str, missing))
        for conn in conns.values():
            _send(conn, reply)
    finally:
        for conn in conns.values():
            conn.close()
        srv.close()
    if refused:
        raise DistributedError(f"the processes of the run disagree: {refused[0]}; give every "
                               "process the same process count and its own id")
    if missing:
        raise DistributedError(_missing_message(missing, n, timeout))


def _send(conn: socket.socket, line: str) -> None:
    try:
        conn.sendall(line.encode() + b"\n")
    except OSError:
        pass


def _missing_message(missing, n: int, timeout: float) -> str:
    return (f"{_ranks(missing)} of {n} did not join within {timeout:g} s; check that "
            "every process started (its log, the scheduler's) and that they all got the same "
            "coordinator address, or give more time (launch --join-timeout, "
            "ALIGNJAX_DISTRIBUTED_TIMEOUT)")


def _rendezvous_join(host: str, port: int, n: int, rank: int, timeout: float) -> None:
    """Process ``rank`` > 0: connect to process 0, say our rank, wait for its answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = socket.create_connection((host, port), timeout=1.0)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise DistributedError(
                    f"process {rank} of {n} could not reach process 0 (the coordinator) at "
                    f"{host}:{port} within {timeout:g} s: process 0 did not join within "
                    f"{timeout:g} s (check that it started, and its log)") from None
            time.sleep(0.1)
    with conn:
        try:
            _send(conn, f"alignjax-join {n} {rank}")
            # process 0 answers by its own deadline, at most `timeout` after we connected
            conn.settimeout(timeout + 10.0)
            reply = _readline(conn)
        except OSError:
            reply = ""
    word, _, rest = reply.partition(" ")
    if word == "ok":
        return
    if word == "missing":
        missing = [int(r) for r in rest.split(",")]
        raise DistributedError(_missing_message(missing, n, timeout)
                               + f" (this is process {rank}; process 0 stopped waiting)")
    if word == "error":
        raise DistributedError(f"process {rank} of {n} was refused by process 0: {rest}")
    raise DistributedError(f"process {rank} of {n}: process 0 stopped answering before every "
                           "process joined (it died or was stopped; see its log)")


def shutdown() -> None:
    """Leave the multi-process run (no-op when not in one)."""
    import jax

    if jax.distributed.is_initialized():
        jax.distributed.shutdown()


def _check_versions() -> None:
    """Every process runs the same alignjax, jax and x64 setting, or none runs."""
    import jax

    from . import __version__

    key = f"{__version__}|{jax.__version__}|{jax.config.jax_enable_x64}"
    digest = np.frombuffer(hashlib.sha256(key.encode()).digest()[:8], np.int64)
    seen = _allgather(digest)
    bad = [i for i, d in enumerate(seen[:, 0]) if d != digest[0]]
    if bad:
        raise DistributedError(f"processes {bad} run other versions than process "
                               f"{jax.process_index()} (alignjax|jax|x64 = {key}): install "
                               "the same versions everywhere")


def process_count() -> int:
    """Number of processes in the run (1 outside a multi-process run)."""
    import jax

    return jax.process_count()


def process_index() -> int:
    """This process's rank (0 outside a multi-process run)."""
    import jax

    return jax.process_index()


def is_main() -> bool:
    """True in process 0 (and outside a multi-process run): the process that writes."""
    return process_index() == 0


def active() -> bool:
    """Whether work should be split over processes here: several processes, and not
    already inside a block of a distributed computation (:func:`local`)."""
    return not _LOCAL.get() and process_count() > 1


@contextlib.contextmanager
def local():
    """Run the enclosed alignjax calls on this process's data only (no further split)."""
    token = _LOCAL.set(True)
    try:
        yield
    finally:
        _LOCAL.reset(token)


def block(n: int, *, rank: int | None = None, size: int | None = None) -> slice:
    """The contiguous slice of ``range(n)`` that process ``rank`` of ``size`` computes.

    The first ``n % size`` processes get one item more; a process may get none.
    """
    size = process_count() if size is None else int(size)
    rank = process_index() if rank is None else int(rank)
    base, extra = divmod(int(n), size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


#: Bytes sent per collective by :func:`_allgather`: large results travel in pieces, so the
#: transient copies JAX makes of each piece stay small.
GATHER_PIECE_BYTES = 64 << 20


def _allgather(x: np.ndarray) -> np.ndarray:
    """(n_processes, *x.shape): ``x`` of every process (same shape everywhere).

    Sent as raw bytes (JAX would otherwise narrow 64-bit values when x64 is off), in pieces
    of :data:`GATHER_PIECE_BYTES` written straight into the result: gathering a 2.3 GB
    coefficient block once held about 4 copies of it per process (85,000 targets x 6,820
    features under two processes ran out of 24 GB).
    """
    from jax.experimental import multihost_utils

    x = np.ascontiguousarray(x)
    flat = x.reshape(-1).view(np.uint8)
    out = np.empty((process_count(), flat.size), np.uint8)
    for start in range(0, flat.size, GATHER_PIECE_BYTES):
        piece = flat[start:start + GATHER_PIECE_BYTES]
        out[:, start:start + piece.size] = np.asarray(
            multihost_utils.process_allgather(piece))
    return out.view(x.dtype).reshape((out.shape[0],) + x.shape)


def gather_blocks(x, n: int, *, axis: int = -1):
    """Assemble per-process blocks (from :func:`block`) of a length-``n`` axis.

    Parameters
    ----------
    x : array or pytree of arrays
        This process's block: ``axis`` has length ``len(range(n)[block(n)])``.
    n : int
        Length of the whole axis.
    axis : int

    Returns
    -------
    The whole arrays (``axis`` of length ``n``), identical in every process.
    """
    import jax

    size = process_count()
    longest = block(n, rank=0, size=size).stop
    lengths = [len(range(n)[block(n, rank=r, size=size)]) for r in range(size)]

    def one(a):
        a = np.asarray(a)
        ax = axis % a.ndim
        if a.shape[ax] < longest:  # every process sends the same shape
            pad = [(0, 0)] * a.ndim
            pad[ax] = (0, longest - a.shape[ax])
            fill = False if a.dtype == bool else (-1 if a.dtype.kind in "iu" else np.nan)
            a = np.pad(a, pad, constant_values=fill)
        every = _allgather(a)
        del a
        index = [slice(None)] * every.ndim
        parts = []
        for r, length in enumerate(lengths):  # views: one copy, into the result
            index[0], index[ax + 1] = r, slice(0, length)
            parts.append(every[tuple(index)])
        return np.concatenate(parts, axis=ax)

    return jax.tree.map(one, x)


def allsum(x: Any):
    """Sum of ``x`` (an array or pytree of arrays) over processes, in every process."""
    import jax

    return jax.tree.map(lambda a: _allgather(np.asarray(a)).sum(0, dtype=np.asarray(a).dtype), x)


def map_blocks(fn, n: int, *, axis: int = -1):
    """``fn(block)`` on this process's block of ``range(n)``, the results gathered.

    ``fn(sl)`` computes the items ``sl`` (a slice) and returns an array or pytree of
    arrays whose ``axis`` indexes those items. Outside a multi-process run (or with fewer
    items than processes, or inside :func:`local`) it is ``fn(slice(0, n))``.
    """
    if not active() or n < process_count():
        return fn(slice(0, n))
    with local():
        part = fn(block(n))
    return gather_blocks(part, n, axis=axis)
