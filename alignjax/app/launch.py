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
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from alignjax.distributed import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID, \
    DistributedError

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


def launch(n: int, argv: Sequence[str], *, timeout: float | None = None,
           join_timeout: int = 120, port: int | None = None) -> int:
    """Run ``alignjax <argv>`` in ``n`` local processes of one distributed run.

    Returns the exit status of process 0. A process that fails makes the others stop;
    the error names its rank and shows the end of its log.
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
    address = f"127.0.0.1:{port or free_port()}"
    procs, logs = [], []
    try:
        for rank in range(n):
            env = dict(os.environ, **{ENV_COORDINATOR: address, ENV_NUM_PROCESSES: str(n),
                                      ENV_PROCESS_ID: str(rank),
                                      ENV_TIMEOUT: str(int(join_timeout))})
            log = scratch / f"rank-{rank}.log"
            logs.append(log)
            out = None if rank == 0 else open(log, "w")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "alignjax.app.cli", *argv], env=env,
                stdout=out if out else None, stderr=subprocess.STDOUT if out else None))
        return _wait(procs, logs, timeout)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(scratch, ignore_errors=True)


def _wait(procs, logs, timeout: float | None) -> int:
    """Wait for every process; stop all when one fails or time runs out."""
    start = time.monotonic()
    while True:
        codes = [p.poll() for p in procs]
        failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            r = failed[0]
            if r == 0:  # its own message is on the terminal already
                return codes[0]
            raise DistributedError(f"process {r} of {len(procs)} exited with status "
                                   f"{codes[r]}; its log ends:\n{_tail(logs[r])}")
        if all(c == 0 for c in codes):
            return 0
        if timeout is not None and time.monotonic() - start > timeout:
            hung = [r for r, c in enumerate(codes) if c is None]
            raise DistributedError(f"processes {hung} still running after {timeout:g} s; "
                                   "stopped. Rerunning resumes from what was written.")
        time.sleep(0.05)
