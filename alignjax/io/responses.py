"""Brain and behaviour responses, loaded with their stimulus ids, by file type.

Each file type has a loader, a function ``loader(path) -> Responses``, registered under
the file's suffix (:func:`register_loader`). The built-in loaders read ``.npz``, ``.npy``
(with ``<name>.ids.txt``), ``.h5``/``.hdf5`` and ``.csv``; readers of other formats
(NIfTI/GIfTI, MNE epochs) join the same registry. :func:`load_responses` picks the loader
by the longest registered suffix the file name ends with (so ``.nii.gz`` can have its
own), then checks what every loader returns the same way: one 2-D array per subject, as
many rows as stimulus ids, ids unique.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .._validation import match_ids
from ..errors import InvalidOptionError, StimulusMismatchError, StoreError

__all__ = ["Responses", "load_responses", "register_loader", "response_formats"]


@dataclass(frozen=True)
class Responses:
    """Brain or behaviour responses: per subject an (n_stimuli, n_targets) array, by id."""

    stimulus_ids: list[str]
    subjects: dict[str, np.ndarray]

    def aligned_to(self, stimulus_ids: Sequence[str], *, what: str = "the features") -> "Responses":
        """Reorder (and subset) rows to ``stimulus_ids``; every id must be present."""
        idx = match_ids(stimulus_ids, self.stimulus_ids, what=what, other_what="the responses")
        return Responses([str(s) for s in stimulus_ids],
                         {k: np.asarray(v)[idx] for k, v in self.subjects.items()})


Loader = Callable[[Path], Responses]
_LOADERS: dict[str, Loader] = {}


def register_loader(suffix: str, loader: Loader, *, replace: bool = False) -> None:
    """Register ``loader(path) -> Responses`` for files whose name ends with ``suffix``.

    Parameters
    ----------
    suffix : str
        File-name ending, with its dot (``".nii.gz"``); matched case-insensitively.
    loader : callable
        Reads one file into :class:`Responses` (rows in the file's order, ids as strings);
        :func:`load_responses` then checks shapes and ids.
    replace : bool
        Replace a loader already registered for ``suffix`` (otherwise an error).
    """
    key = suffix.lower()
    if not key.startswith(".") or len(key) < 2:
        raise InvalidOptionError(f"loader suffix must start with a dot, like '.npz'; got {suffix!r}")
    if key in _LOADERS and not replace:
        raise InvalidOptionError(f"a response loader for {key!r} is already registered; pass "
                                 "replace=True to replace it")
    _LOADERS[key] = loader


def response_formats() -> tuple[str, ...]:
    """The file suffixes :func:`load_responses` reads, in registration order."""
    return tuple(_LOADERS)


def _loader_for(path: Path) -> Loader:
    name = path.name.lower()
    matches = [s for s in _LOADERS if name.endswith(s)]
    if not matches:
        raise StoreError(f"{path}: unsupported response format {path.suffix.lower()!r} "
                         f"(use {', '.join(_LOADERS)})")
    return _LOADERS[max(matches, key=len)]


def load_responses(path: str | os.PathLike) -> Responses:
    """Load per-subject responses with their stimulus ids.

    Formats
    -------
    ``.npz``
        ``stimulus_ids`` (n_stimuli,) plus one (n_stimuli, n_targets) array per subject,
        keyed by subject name.
    ``.h5`` / ``.hdf5``
        Dataset ``stimulus_ids`` plus one dataset per subject (at the root or in a group
        ``subjects``).
    ``.npy``
        One (n_stimuli, n_targets) array (one subject) or (n_subjects, n_stimuli, n_targets);
        stimulus ids from a sibling ``<name>.ids.txt`` (one per line), else ``0..n-1``.
    ``.csv``
        Column ``stimulus_id`` (or ``id``) then numeric columns; a ``subject`` column, if
        present, splits rows by subject (long format).

    Other formats join with :func:`register_loader`.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"response file {path} does not exist")
    return _checked(path, _loader_for(path)(path))


def _checked(path: Path, resp: Responses) -> Responses:
    """1-D subjects as one column; every subject with one row per id; ids unique."""
    ids = [str(s) for s in resp.stimulus_ids]
    subjects = {}
    for name, arr in resp.subjects.items():
        arr = np.asarray(arr)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.shape[0] != len(ids):
            raise StimulusMismatchError(
                f"{path}: subject {name!r} has {arr.shape[0]} rows but there are {len(ids)} stimulus ids"
            )
        subjects[name] = arr
    if len(set(ids)) != len(ids):
        raise StimulusMismatchError(f"{path}: stimulus ids are not unique")
    return Responses(ids, subjects)


# --------------------------------------------------------------------------- built-in loaders


def _load_npz(path: Path) -> Responses:
    with np.load(path, allow_pickle=False) as z:
        if "stimulus_ids" not in z.files:
            raise StimulusMismatchError(
                f"{path} has no 'stimulus_ids' array; save one so responses can be matched "
                "to stimuli by id (np.savez(..., stimulus_ids=ids, subj01=Y))"
            )
        ids = [str(s) for s in z["stimulus_ids"]]
        subjects = {k: np.asarray(z[k], dtype=float) for k in z.files if k != "stimulus_ids"}
    return Responses(ids, subjects)


def _load_h5(path: Path) -> Responses:
    import h5py

    with h5py.File(path, "r") as f:
        if "stimulus_ids" not in f:
            raise StimulusMismatchError(f"{path} has no 'stimulus_ids' dataset")
        ids = [s.decode() if isinstance(s, bytes) else str(s) for s in f["stimulus_ids"][()]]
        group = f["subjects"] if "subjects" in f else f
        subjects = {k: np.asarray(group[k][()], dtype=float) for k in group
                    if k != "stimulus_ids" and hasattr(group[k], "shape")}
    return Responses(ids, subjects)


def _load_npy(path: Path) -> Responses:
    arr = np.load(path).astype(float)
    id_file = path.with_suffix(".ids.txt")
    n = arr.shape[-2] if arr.ndim == 3 else arr.shape[0]
    ids = ([line.strip() for line in id_file.read_text().splitlines() if line.strip()]
           if id_file.is_file() else [str(i) for i in range(n)])
    subjects = ({f"sub{i:02d}": arr[i] for i in range(arr.shape[0])} if arr.ndim == 3
                else {path.stem: arr.reshape(arr.shape[0], -1)})
    return Responses(ids, subjects)


def _load_csv(path: Path) -> Responses:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise StoreError(f"{path} is empty")
    id_col = "stimulus_id" if "stimulus_id" in rows[0] else "id" if "id" in rows[0] else None
    if id_col is None:
        raise StimulusMismatchError(f"{path} needs a 'stimulus_id' (or 'id') column")
    value_cols = [c for c in rows[0] if c not in (id_col, "subject")]
    by_subject: dict[str, list[dict]] = {}
    for r in rows:
        by_subject.setdefault(r.get("subject", path.stem), []).append(r)
    ids = [r[id_col] for r in next(iter(by_subject.values()))]
    subjects = {}
    for subj, rs in by_subject.items():
        order = match_ids(ids, [r[id_col] for r in rs], what="the first subject",
                          other_what=f"subject {subj}")
        subjects[subj] = np.array([[float(rs[i][c]) for c in value_cols] for i in order])
    return Responses(ids, subjects)


register_loader(".npz", _load_npz)
register_loader(".npy", _load_npy)
register_loader(".h5", _load_h5)
register_loader(".hdf5", _load_h5)
register_loader(".csv", _load_csv)
