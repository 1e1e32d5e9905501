"""A multi-process ``alignjax encode``: every process writes the voxels it owns.

Under several processes (``alignjax launch -n N -- encode ...``, or ``srun`` on a cluster)
each process fits a contiguous block of the voxels of all subjects together
(``encode(..., gather=False)``) and writes it to ``<out>/.parts/rank-R-of-N.npz``; no
per-voxel result travels between processes. Process 0 then joins the blocks
(:func:`alignjax.encoding.concat_targets`) to write the tables, maps, figures and summary,
and removes ``.parts``. The output folder must be visible to every process (on a cluster:
a shared file system).

A block is written under a key: a digest of the inputs (every layer and every subject's
responses, by content), the settings, the rank and the number of processes. A rerun after
an interrupted run keeps every block whose key matches and fits only the missing ones; a
block written by another run (other data, settings or N) is fitted again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from alignjax import distributed
from alignjax.encoding import TARGET_FIELDS, EncodingResult, concat_targets, encode

__all__ = ["PARTS", "OwnedBlocks", "inputs_digest", "remove_blocks"]

#: The folder (inside the output folder) of the per-process blocks.
PARTS = ".parts"


def inputs_digest(layers, responses: Mapping[str, np.ndarray], settings: Mapping) -> str:
    """A digest of what a block's result depends on: layer and response contents (names,
    shapes, dtypes, bytes) and the settings (JSON-able values)."""
    h = hashlib.blake2b(digest_size=20)
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for name, a in list(zip(layers.names, layers.arrays)) + list(responses.items()):
        a = np.ascontiguousarray(a)
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


def _save(path: Path, part: EncodingResult, key: str) -> None:
    """Write a block atomically (a private temporary name, then a rename)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    meta = {"n_constant_features": part.summary.get("n_constant_features", {}),
            "scoring": part.summary.get("scoring")}
    with open(tmp, "wb") as fh:
        np.savez(fh, key=np.array(key), meta=np.array(json.dumps(meta)),
                 layer_names=np.array(part.layer_names, dtype=str),
                 subjects=np.array(part.subjects, dtype=str), folds=part.folds,
                 **{f: getattr(part, f) for f in TARGET_FIELDS})
    os.replace(tmp, path)


def _load(path: Path, key: str) -> EncodingResult | None:
    """The block at ``path`` if it was written under ``key`` (None if absent, unreadable or
    from another run)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            return EncodingResult(
                **{f: z[f] for f in TARGET_FIELDS},
                layer_names=tuple(str(v) for v in z["layer_names"]),
                subjects=tuple(str(v) for v in z["subjects"]), folds=z["folds"],
                summary=json.loads(str(z["meta"])))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


class OwnedBlocks:
    """The per-process blocks of one multi-process encode, in ``<out>/.parts``."""

    def __init__(self, out, layers, Y, settings: Mapping):
        self.folder = Path(out) / PARTS
        self.size = distributed.process_count()
        self.digest = inputs_digest(layers, getattr(Y, "subjects", Y), settings)
        self.layers, self.Y = layers, Y

    def _where(self, rank: int) -> tuple[Path, str]:
        return (self.folder / f"rank-{rank}-of-{self.size}.npz",
                f"{self.digest}:{rank}/{self.size}")

    def fit(self, **encode_options) -> tuple[EncodingResult, int]:
        """Fit and write this process's block of the voxels (or keep the one an identical
        earlier run wrote), then wait until every process has written its block.

        Returns this process's block and the number of voxels of all blocks together.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        path, key = self._where(distributed.process_index())
        part = _load(path, key)
        if part is None:
            part = encode(self.layers, self.Y, gather=False, **encode_options)
            _save(path, part, key)
        # a collective: when it returns, every process has written its block
        n_total = int(distributed.allsum(np.array([part.r.size], np.int64))[0])
        return part, n_total

    def join(self) -> EncodingResult:
        """The whole result from every process's block (in process 0, after :meth:`fit`)."""
        parts = []
        for rank in range(self.size):
            part = _load(*self._where(rank))
            if part is None:
                raise distributed.DistributedError(
                    f"the block of process {rank} in {self.folder} is missing or was written "
                    "by another run; rerun the command (blocks already written are kept)")
            parts.append(part)
        return concat_targets(parts)


def remove_blocks(out) -> None:
    """Remove ``<out>/.parts`` once the whole result is written (or a one-process run has
    made it obsolete)."""
    shutil.rmtree(Path(out) / PARTS, ignore_errors=True)
