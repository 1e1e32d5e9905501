"""Content fingerprints of the inputs a pipeline step reads.

Every input is fingerprinted by what it holds, never by its name, size or modification
time alone: files by their SHA-256 (cached by path, size, mtime, ctime and inode, so an
unchanged file is not read twice), a feature store by the per-layer content hashes its
writer records in ``manifest.json`` when a layer completes, audio stimuli by the hashes of
their files, label columns by the values actually used, and model weights by the hashes
of their weight files (or a hub model's cached commit), as ``alignjax extract`` records
them (:func:`extractors.spec.weight_hashes`).

An input is described by a small JSON-able dict (``kind`` plus what locates it); the same
description is stored in each step's ``step.json`` so the report can recompute it later
and say whether a result is stale. Hashing lives in :mod:`alignjax.io.hashing`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

from alignjax.io.hashing import MISSING, file_sha256, store_fingerprint, text_sha256

__all__ = ["fingerprint", "describe_file", "describe_folder", "describe_store", "describe_stimuli",
           "describe_labels", "describe_model", "MISSING"]


# --------------------------------------------------------------------------- descriptions


def describe_file(path) -> dict:
    """A data file; a ``.npy`` brings its ``.ids.txt`` companion (the stimulus order), a
    NIfTI/GIfTI file its stimulus-id sidecars (and a surface its other hemisphere), a
    subject table the files it lists; a folder (of beta images) is described file by file.
    """
    path = Path(path).resolve()
    if path.is_dir():
        return describe_folder(path)
    desc = {"kind": "file", "path": str(path)}
    if path.suffix.lower() == ".npy":
        desc["companions"] = [str(path.with_suffix(".ids.txt"))]
    else:
        from alignjax.io.neuro import companion_files

        extra = companion_files(path)
        if extra:
            desc["companions"] = [str(p) for p in extra]
    return desc


def describe_folder(path) -> dict:
    """A folder (of beta images, or another step's results), described file by file."""
    return {"kind": "folder", "path": str(Path(path).resolve())}


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
    from extractors.spec import weight_hashes

    try:
        hashes = weight_hashes(desc["spec"])
    except (ValueError, OSError):
        return MISSING
    return text_sha256(json.dumps([[name, digest] for name, digest in hashes.items()]))


def _file_fingerprint(desc: dict) -> str:
    digest = file_sha256(desc["path"])
    companions = desc.get("companions") or []
    if not companions:
        return digest
    return text_sha256(json.dumps([digest] + [file_sha256(c) for c in companions]))


def _folder_fingerprint(desc: dict) -> str:
    root = Path(desc["path"])
    if not root.is_dir():
        return MISSING
    return text_sha256(json.dumps([[p.relative_to(root).as_posix(), file_sha256(p)]
                                   for p in sorted(root.rglob("*")) if p.is_file()]))


_KINDS: dict[str, Callable[[dict], str]] = {
    "file": _file_fingerprint,
    "folder": _folder_fingerprint,
    "store": lambda d: store_fingerprint(d["path"]),
    "stimuli": _stimuli_fingerprint,
    "labels": _labels_fingerprint,
    "model": _model_fingerprint,
}


def fingerprint(desc: dict[str, Any]) -> str:
    """Content fingerprint of one described input (see the ``describe_*`` functions)."""
    return _KINDS[desc["kind"]](desc)
