"""One writer per feature store: an exclusive lock on the store for the writer's lifetime.

The lock is ``fcntl.flock`` on ``<store>/.alignjax-writer.lock``: the kernel releases it
when the process that holds it dies, however it dies, so a killed writer never leaves a
store locked. The file also holds a JSON record (pid, host, start time, command) of the
holder, for the message a second writer gets::

    store /data/st is being written by process 4242 on host node07 since
    2026-05-01T10:00:00Z (alignjax extract ...); wait for it to finish, or stop it

A record left by a writer that was killed (its lock is free, its record is still there) is
recognised and taken over, with a warning naming the dead process. A writer that ends
normally removes the lock file, so a finished store holds only its manifest and layers.

Locks are re-entrant within a process (the extraction driver takes the lock before it
loads the model, :class:`~alignjax.io.StoreWriter` takes it again). Linux and macOS; on a
network file system ``flock`` needs NFSv4 or a local lock manager.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreError

__all__ = ["LOCK_NAME", "StoreLock", "store_lock", "lock_holder"]

LOCK_NAME = ".alignjax-writer.lock"


@dataclass
class _Held:
    fd: int
    count: int
    created_dir: bool


_HELD: dict[str, _Held] = {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_record(fd: int) -> dict | None:
    try:
        data = os.pread(fd, 1 << 16, 0)
    except OSError:
        return None
    try:
        rec = json.loads(data.decode("utf-8")) if data.strip() else None
    except (UnicodeDecodeError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def lock_holder(path: str | os.PathLike) -> dict | None:
    """The record (pid, host, since, command) of the writer holding ``path``'s lock, or None."""
    lockfile = Path(path) / LOCK_NAME
    try:
        fd = os.open(lockfile, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _read_record(fd)
    finally:
        os.close(fd)


def _busy_message(path: Path, rec: dict | None) -> str:
    if rec is None:
        who = "another process (it has not written its record yet)"
        since = ""
    else:
        who = f"process {rec.get('pid')} on host {rec.get('host')}"
        since = f" since {rec.get('since')}"
        if rec.get("command"):
            since += f" ({rec['command']})"
        if rec.get("host") == socket.gethostname() and isinstance(rec.get("pid"), int) \
                and not _pid_alive(rec["pid"]):
            since += (f"; process {rec['pid']} has exited, but a process it started still "
                      "holds the lock")
    return (f"store {path} is being written by {who}{since}; wait for it to finish or stop "
            "it, or write into another --out directory")


def _record() -> bytes:
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    command = " ".join([Path(sys.argv[0]).name] + sys.argv[1:]) if sys.argv else ""
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since,
                       "command": command[:300]}).encode("utf-8")


def _acquire(path: Path, key: str) -> None:
    import fcntl

    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    lockfile = path / LOCK_NAME
    for _ in range(100):
        fd = os.open(lockfile, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            rec = None
            for _ in range(20):  # the holder writes its record just after it locks
                rec = _read_record(fd)
                if rec is not None:
                    break
                time.sleep(0.01)
            os.close(fd)
            raise StoreError(_busy_message(path, rec)) from None
        try:  # a holder that released meanwhile unlinked the file we opened: open it anew
            same = os.stat(lockfile).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    else:  # pragma: no cover - 100 releases in a row between our open and flock
        raise StoreError(f"could not lock {path}: its lock file keeps being replaced")
    stale = _read_record(fd)
    if stale is not None:
        warnings.warn(
            f"{path}: taking over the lock left by process {stale.get('pid')} on host "
            f"{stale.get('host')} (writing since {stale.get('since')}), which was stopped "
            "before it finished; resuming its store", stacklevel=3)
    os.ftruncate(fd, 0)
    os.pwrite(fd, _record(), 0)
    _HELD[key] = _Held(fd=fd, count=1, created_dir=created)


def _release(path: Path, key: str) -> None:
    held = _HELD[key]
    held.count -= 1
    if held.count:
        return
    del _HELD[key]
    try:  # unlink while still holding the lock: a waiting opener sees the inode change
        os.unlink(path / LOCK_NAME)
    except FileNotFoundError:
        pass
    os.close(held.fd)
    if held.created_dir:
        try:  # nothing was written (e.g. the model failed to load): leave no empty folder
            path.rmdir()
        except OSError:
            pass


class StoreLock:
    """Exclusive, re-entrant (per process) lock on a store directory, as a context manager.

    Parameters
    ----------
    path : str or Path
        The store directory; created if missing (and removed again on release if it was
        created here and is still empty).

    Raises
    ------
    StoreError
        At once (no waiting) when another process holds the lock, naming its pid, host,
        start time and command.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._key = str(self.path.resolve())
        self._locked = False

    def acquire(self) -> "StoreLock":
        if self._locked:
            return self
        if self._key in _HELD:
            _HELD[self._key].count += 1
        else:
            _acquire(self.path, self._key)
        self._locked = True
        return self

    def release(self) -> None:
        if self._locked:
            self._locked = False
            _release(self.path, self._key)

    @property
    def held(self) -> bool:
        return self._locked

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False


def store_lock(path: str | os.PathLike) -> StoreLock:
    """Take the writer's lock of the store ``path`` (see :class:`StoreLock`); use with ``with``."""
    return StoreLock(path).acquire()
