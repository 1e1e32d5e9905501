"""Content fingerprints of the inputs a pipeline step reads.

Every input is fingerprinted by what it holds, never by its name, size or modification
time alone: files by their SHA-256 (cached by path, size, mtime, ctime and inode, so an
unchanged file is not read twice), a feature store by the per-layer content hashes its
writer records in ``manifest.json`` when a layer completes, audio stimuli by the hashes of
their files, label columns by the values actually used, and model weights by the hashes
of their weight files.

An input is described by a small JSON-able dict (``kind`` plus what locates it); the same
description is stored in each step's ``step.json`` so the report can recompute it later
and say whether a result is stale. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

__all__ = ["file_sha256", "text_sha256", "fingerprint", "describe_file", "describe_store",
           "describe_stimuli", "describe_labels", "describe_model", "load_cache", "save_cache",
           "store_fingerprint", "MISSING"]

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
    """Write the hash cache atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({k: list(v) for k, v in _CACHE.items()}))
    os.replace(tmp, path)


# --------------------------------------------------------------------------- descriptions


def describe_file(path) -> dict:
    """A data file; a ``.npy`` brings its ``.ids.txt`` companion (the stimulus order)."""
    path = Path(path).resolve()
    desc = {"kind": "file", "path": str(path)}
    if path.suffix.lower() == ".npy":
        desc["companions"] = [str(path.with_suffix(".ids.txt"))]
    return desc


def describe_store(path) -> dict:
    """A feature store directory."""
    return {"kind": "store", "path": str(Path(path).resolve())}


def describe_stimuli(source) -> dict:
    """The audio of every stimulus of a folder or CSV (ids and file contents, not paths)."""
    return {"kind": "stimuli", "path": str(Path(source).resolve())}


def describe_labels(source, columns: Iterable[str]) -> dict:
    """The values of some label columns of a stimulus CSV, by stimulus id."""
    return {"kind": "labels", "path": str(Path(source).resolve()),
            "columns": sorted(set(columns))}


def describe_model(spec: str) -> dict:
    """A model's weights, named by its spec string."""
    return {"kind": "model", "spec": spec}


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


def _stimuli_fingerprint(desc: dict) -> str:
    from extractors.audio import AudioError, list_stimuli

    try:
        stimuli = list_stimuli(desc["path"])
    except (AudioError, ValueError, OSError):
        return MISSING
    return text_sha256(json.dumps([[s.id, file_sha256(s.path)] for s in stimuli]))


def _labels_fingerprint(desc: dict) -> str:
    from extractors.audio import AudioError, list_stimuli

    try:
        stimuli = list_stimuli(desc["path"])
    except (AudioError, ValueError, OSError):
        return MISSING
    cols = desc["columns"]
    return text_sha256(json.dumps([[s.id] + [s.labels.get(c) for c in cols] for s in stimuli]))


def _model_fingerprint(desc: dict) -> str:
    from extractors.spec import weight_files

    try:
        files = weight_files(desc["spec"])
    except (ValueError, OSError):
        return MISSING
    return text_sha256(json.dumps([[str(name), file_sha256(p)] for name, p in files]))


def _file_fingerprint(desc: dict) -> str:
    digest = file_sha256(desc["path"])
    companions = desc.get("companions") or []
    if not companions:
        return digest
    return text_sha256(json.dumps([digest] + [file_sha256(c) for c in companions]))


_KINDS: dict[str, Callable[[dict], str]] = {
    "file": _file_fingerprint,
    "store": lambda d: store_fingerprint(d["path"]),
    "stimuli": _stimuli_fingerprint,
    "labels": _labels_fingerprint,
    "model": _model_fingerprint,
}


def fingerprint(desc: dict[str, Any]) -> str:
    """Content fingerprint of one described input (see the ``describe_*`` functions)."""
    return _KINDS[desc["kind"]](desc)
