"""Content hashes: SHA-256 of files (cached by stat, so an unchanged file is read once) and
of a feature store's layers.

Standard library only. The feature-store writer records each layer's hash with these, the
extractors hash audio with them, and the study runner fingerprints its inputs with them
(:mod:`alignjax.app.fingerprint`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path

__all__ = ["file_sha256", "text_sha256", "load_cache", "save_cache", "store_fingerprint",
           "MISSING"]

MISSING = "missing"
_RACY_NS = 2_000_000_000
_CACHE: dict[str, tuple[list, str]] = {}


def text_sha256(data: str | bytes) -> str:
    """SHA-256 hex digest of a string (UTF-8) or bytes."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def _stat_key(st: os.stat_result) -> list:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, or :data:`MISSING`; cached by (size, mtime, ctime, inode).

    A file rewritten in place changes its mtime and ctime, a file replaced by a rename its
    inode, so a cached hash is reused only for the very same bytes on disk. Files modified
    in the last two seconds are not cached (their next change might keep the same stamp).
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return MISSING
    if not path.is_file():
        return MISSING
    key, stamp = str(path.resolve()), _stat_key(st)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    # a file modified within the file system's timestamp granularity of now could change
    # again without changing its stamp ("racily clean", as git calls it): not cached
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _RACY_NS:
        _CACHE[key] = (stamp, h.hexdigest())
    return h.hexdigest()


def load_cache(path: str | os.PathLike) -> None:
    """Merge a hash cache written by :func:`save_cache` (ignored when absent or corrupt)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return
    for key, (stamp, digest) in data.items():
        _CACHE.setdefault(key, (list(stamp), digest))


def save_cache(path: str | os.PathLike) -> None:
    """Write the hash cache atomically (a temporary file of this process + rename), so
    processes saving the cache at once never interleave their bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(json.dumps({k: list(v) for k, v in _CACHE.items()}))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def store_fingerprint(path) -> str:
    """Fingerprint of a feature store from its manifest's per-layer content hashes.

    Covers the stimulus ids, skipped stimuli, layer order and every layer's shape, dtype
    and content. Layers without a recorded hash (stores written before hashes were
    recorded) are hashed from their files.
    """
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return MISSING
    if not manifest.get("complete"):
        return "incomplete"
    layers = {}
    for name in manifest.get("layer_order", []):
        info = manifest["layers"][name]
        layers[name] = [info.get("shape"), info.get("dtype"),
                        info.get("sha256") or file_sha256(path / info["file"])]
    return text_sha256(json.dumps({"ids": manifest.get("stimulus_ids"),
                                   "skipped": sorted(manifest.get("skipped", {})),
                                   "layers": layers}, sort_keys=True))
