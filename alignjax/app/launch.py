"""``alignjax launch -n N -- <subcommand ...>``: N local processes on one jax.distributed run.

For workstations and tests: process 0 is the coordinator on localhost; every process runs
the same subcommand, splitting its heavy loops (permutations, targets) by process and
exchanging small results (see :mod:`alignjax.distributed`). Process 0 writes the output
(``--out``); the others write into scratch folders removed afterwards, except ``encode``,
whose every process writes the voxels it owns into ``--out`` for process 0 to join (see
:mod:`alignjax.app.cli` and :mod:`alignjax.app.studies.encode_blocks`). On a cluster,
start the processes with ``srun`` instead: :func:`alignjax.distributed.initialize` reads
SLURM's variables, and the same rules apply.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

from alignjax.distributed import ENV_COORDINATOR, ENV_JOIN_MARKERS, ENV_NUM_PROCESSES, \
    ENV_PROCESS_ID, ENV_RENDEZVOUS_PORT, DistributedError

ENV_TIMEOUT = "ALIGNJAX_DISTRIBUTED_TIMEOUT"

# Subcommands whose every process does the same steps (so collectives always meet). A
# pipeline run skips up-to-date steps by what is on disk, which differs between process
# 0's output and the others' scratch folders; extraction has its own --shard/--slurm.
LAUNCHABLE = ("rsa", "encode", "probe", "similarity", "zoo", "temporal-rsa", "info")


def free_port() -> int:
    """A TCP port on localhost that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 2000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-n:]


#: Seconds, beyond ``join_timeout``, the launcher waits for a process's join before it
#: stops the run itself (the processes' own rendezvous reports first; this covers a
#: process stuck before it even reaches its join, e.g. in its imports).
JOIN_GRACE = 30.0


def launch(n: int, argv: Sequence[str], *, timeout: float | None = None,
           join_timeout: int = 120, port: int | None = None) -> int:
    """Run ``alignjax <argv>`` in ``n`` local processes of one distributed run.

    Returns the exit status of process 0. A process that fails makes the others stop;
    the error names its rank and shows the end of its log. A process that has not joined
    within ``join_timeout`` seconds is named ("process 1 of 2 did not join within 15 s")
    and the others are stopped; a process killed by a signal (process 0 included) is
    reported with the signal's name and the end of its log. Process 0's output goes to
    this terminal and to its log.
    """
    if n < 1:
        raise DistributedError(f"-n must be at least 1, got {n}")
    if not argv:
        raise DistributedError("nothing to launch: give a subcommand after '--'")
    if argv[0] not in LAUNCHABLE:
        hint = (" (extraction: use --shard I/N or --slurm --jobs N)" if argv[0] == "extract"
                else "")
        raise DistributedError(f"alignjax launch runs the subcommands {', '.join(LAUNCHABLE)}"
                               f", not {argv[0]!r}{hint}")
    scratch = Path(tempfile.mkdtemp(prefix="alignjax-launch-"))
    markers = scratch / "joined"
    markers.mkdir()
    address = f"127.0.0.1:{port or free_port()}"
    rendezvous_port = free_port()
    while f":{rendezvous_port}" == address[address.rindex(":"):]:
        rendezvous_port = free_port()
    procs, logs, tees = [], [], []
    try:
        for rank in range(n):
            env = dict(os.environ, **{ENV_COORDINATOR: address, ENV_NUM_PROCESSES: str(n),
                                      ENV_PROCESS_ID: str(rank),
                                      ENV_TIMEOUT: str(int(join_timeout)),
                                      ENV_RENDEZVOUS_PORT: str(rendezvous_port),
                                      ENV_JOIN_MARKERS: str(markers)})
            log = scratch / f"rank-{rank}.log"
            logs.append(log)
            cmd = [sys.executable, "-m", "alignjax.app.cli", *argv]
            if rank == 0:  # to the terminal, and to its log for the report of a crash
                env["PYTHONUNBUFFERED"] = "1"
                proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
                tees = _tee(proc, log)
            else:
                with open(log, "w") as out:
                    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
            procs.append(proc)
        return _wait(procs, logs, timeout, markers=markers, join_timeout=join_timeout)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for th in tees:
            th.join(timeout=5)
        shutil.rmtree(scratch, ignore_errors=True)


def _tee(proc: subprocess.Popen, log: Path) -> list[threading.Thread]:
    """Copy the process's stdout and stderr to ours and, both, into ``log``."""
    fh = open(log, "wb")
    lock = threading.Lock()
    done = []

    def pump(src, dst):
        try:
            for chunk in iter(lambda: os.read(src.fileno(), 65536), b""):
                with lock:
                    fh.write(chunk)
                    fh.flush()
                dst.write(chunk)
                dst.flush()
        finally:
            src.close()
            with lock:
                done.append(dst)
                if len(done) == 2:
                    fh.close()

    threads = [threading.Thread(target=pump, args=(proc.stdout, sys.stdout.buffer), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, sys.stderr.buffer), daemon=True)]
    for th in threads:
        th.start()
    return threads


def _status(code: int) -> str:
    """``exited with status 2`` or ``was killed by SIGKILL``."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"


def _joined(markers: Path | None, n: int) -> set[int]:
    if markers is None:
        return set(range(n))
    return {r for r in range(n) if (markers / f"rank-{r}.joined").exists()}


def _not_joined(procs, codes, markers, join_timeout) -> DistributedError:
    """The error for processes still running that have not joined."""
    n = len(procs)
    stalled = [r for r, c in enumerate(codes) if c is None and r not in _joined(markers, n)]
    who = (f"process {stalled[0]}" if len(stalled) == 1
           else "processes " + ", ".join(map(str, stalled)))
    return DistributedError(f"{who} of {n} did not join within {join_timeout:g} s; stopped "
                            "every process. Check what held it (its imports, the machine's "
                            "load) or give more time with --join-timeout")


def _wait(procs, logs, timeout: float | None, *, markers: Path | None = None,
          join_timeout: float = 120) -> int:
    """Wait for every process; stop all when one fails, one does not join, or time runs out."""
    start = time.monotonic()
    n = len(procs)
    all_joined = False
    while True:
        codes = [p.poll() for p in procs]
        failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            time.sleep(0.2)  # let the others' own failures (and markers) land
            codes = [p.poll() for p in procs]
            failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
            joined = _joined(markers, n)
            stalled = [r for r, c in enumerate(codes) if c is None and r not in joined]
            signalled = [r for r in failed if codes[r] < 0]
            if stalled and not signalled:  # a failed join: name who never came
                raise _not_joined(procs, codes, markers, join_timeout)
            r = (signalled or failed)[0]
            if r == 0 and codes[0] > 0:  # its own message is on the terminal already
                return codes[0]
            raise DistributedError(f"process {r} of {n} {_status(codes[r])}; its log "
                                   f"ends:\n{_tail(logs[r])}")
        if all(c == 0 for c in codes):
            return 0
        elapsed = time.monotonic() - start
        if not all_joined and elapsed > join_timeout + JOIN_GRACE:
            all_joined = len(_joined(markers, n)) == n
            if not all_joined:
                raise _not_joined(procs, codes, markers, join_timeout)
        if timeout is not None and elapsed > timeout:
            hung = [r for r, c in enumerate(codes) if c is None]
            raise DistributedError(f"processes {hung} still running after {timeout:g} s; "
                                   "stopped. Rerunning resumes from what was written.")
        time.sleep(0.05)
