"""Brain and behaviour responses, loaded with their stimulus ids, by file type.

Each file type has a loader, a function ``loader(path) -> Responses``, registered under
the file's suffix (:func:`register_loader`). The built-in loaders read ``.npz``, ``.npy``
(with ``<name>.ids.txt``), ``.h5``/``.hdf5`` and ``.csv``; readers of other formats
(NIfTI/GIfTI, MNE epochs) join the same registry. :func:`load_responses` picks the loader
by the longest registered suffix the file name ends with (so ``.nii.gz`` can have its
own), then checks what every loader returns the same way: one 2-D array per subject, as
many rows as stimulus ids, ids unique.

A loader may take keyword options (the NIfTI loader's ``mask=``, ``stimulus_ids=``);
:func:`load_responses` passes them on and refuses options a loader does not take. A loader
registered with ``folder=True`` reads a directory of such files (a folder of 3-D beta
images), and a path with a glob pattern (``sub-*/betas.nii.gz``) loads one subject per
matching file. Loaders of spatial data record each subject's space
(:attr:`Responses.spaces`) so results can be written back where they came from.
"""

from __future__ import annotations

import csv
import glob
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .._validation import match_ids
from ..errors import InvalidOptionError, StimulusMismatchError, StoreError

__all__ = ["Responses", "load_responses", "register_loader", "response_formats"]


@dataclass(frozen=True)
class Responses:
    """Brain or behaviour responses: per subject an (n_stimuli, n_targets) array, by id.

    ``spaces`` maps a subject to where its targets live (a
    :class:`alignjax.io.neuro.VolumeSpace` or :class:`~alignjax.io.neuro.SurfaceSpace`,
    from the NIfTI/GIfTI loaders); subjects of array formats have none.
    """

    stimulus_ids: list[str]
    subjects: dict[str, np.ndarray]
    spaces: dict = field(default_factory=dict)

    def aligned_to(self, stimulus_ids: Sequence[str], *, what: str = "the features") -> "Responses":
        """Reorder (and subset) rows to ``stimulus_ids``; every id must be present."""
        idx = match_ids(stimulus_ids, self.stimulus_ids, what=what, other_what="the responses")
        return Responses([str(s) for s in stimulus_ids],
                         {k: np.asarray(v)[idx] for k, v in self.subjects.items()},
                         dict(self.spaces))


Loader = Callable[..., Responses]
_LOADERS: dict[str, Loader] = {}
_FOLDER_LOADERS: dict[str, Loader] = {}


def register_loader(suffix: str, loader: Loader, *, replace: bool = False,
                    folder: bool = False) -> None:
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
    folder : bool
        ``loader(folder)`` reads a directory of files ending with ``suffix`` (one file per
        stimulus); :func:`load_responses` uses it when given a directory holding such files.
    """
    key = suffix.lower()
    if not key.startswith(".") or len(key) < 2:
        raise InvalidOptionError(f"loader suffix must start with a dot, like '.npz'; got {suffix!r}")
    table = _FOLDER_LOADERS if folder else _LOADERS
    if key in table and not replace:
        raise InvalidOptionError(f"a response loader for {key!r} is already registered; pass "
                                 "replace=True to replace it")
    table[key] = loader


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


def _folder_loader_for(path: Path) -> Loader:
    names = [f.name.lower() for f in path.iterdir() if f.is_file()]
    found = [s for s in _FOLDER_LOADERS if any(n.endswith(s) for n in names)]
    if not found:
        raise StoreError(f"{path} is a folder without files of a format read per stimulus "
                         f"(one of {', '.join(_FOLDER_LOADERS) or 'none registered'})")
    return _FOLDER_LOADERS[max(found, key=len)]


def _call(loader: Loader, path: Path, options: dict) -> Responses:
    """``loader(path, **options)``, refusing options the loader does not take."""
    if options:
        params = inspect.signature(loader).parameters
        takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
        unknown = [k for k in options if k not in params and not takes_all]
        if unknown:
            raise InvalidOptionError(
                f"{path}: option(s) {unknown} do not apply to this format (they apply to "
                "NIfTI/GIfTI data, e.g. --mask, --stimulus-ids)")
    return loader(path, **options)


def _matched_name(pattern: str, path: str) -> str:
    """The path components a pattern's wildcards matched (``sub-*/b.nii`` -> ``sub-01``)."""
    pat, got = Path(pattern).parts, Path(path).parts
    parts = [g for p, g in zip(pat[::-1], got[::-1]) if any(c in p for c in "*?[")][::-1]
    if parts and any(c in pat[-1] for c in "*?["):
        last = parts[-1]
        for suffix in sorted(_LOADERS, key=len, reverse=True):
            if last.lower().endswith(suffix):
                last = last[: -len(suffix)]
                break
        parts[-1] = last
    return "_".join(parts) or Path(path).stem


def _load_pattern(pattern: str, options: dict) -> Responses:
    """One subject per file matching ``pattern``, named by the text the wildcards matched."""
    files = sorted(glob.glob(pattern))
    if not files:
        raise StoreError(f"no response files match the pattern {pattern!r}")
    merged, spaces, ids = {}, {}, None
    for f in files:
        resp = load_responses(f, **options)
        name = _matched_name(pattern, f)
        for subj, arr in resp.subjects.items():
            key = name if len(resp.subjects) == 1 else f"{name}_{subj}"
            if ids is None:
                ids = resp.stimulus_ids
            idx = match_ids(ids, resp.stimulus_ids, what=f"the first file ({files[0]})",
                            other_what=f)
            merged[key] = np.asarray(arr)[idx]
            if subj in resp.spaces:
                spaces[key] = resp.spaces[subj]
    return Responses(list(ids), merged, spaces)


def load_responses(path: str | os.PathLike, **options) -> Responses:
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

    ``.nii`` / ``.nii.gz``, a folder of them, ``.func.gii``, ``.subjects.tsv``
        Neuroimaging data (a 4-D image, 3-D beta images named by stimulus id, surface data,
        a table of subjects), with the ``[fmri]`` extra: see :mod:`alignjax.io.neuro` for
        the options (``mask``, ``stimulus_ids``, ``nan_voxels``).

    A path with wildcards (``data/sub-*/betas.nii.gz``) loads each matching file as one
    subject, named by what the wildcards matched. Other formats join with
    :func:`register_loader`. ``options`` go to the format's loader.
    """
    options = {k: v for k, v in options.items() if v is not None}
    text = os.fspath(path)
    if any(c in text for c in "*?["):
        return _checked(Path(text), _load_pattern(text, options))
    path = Path(path)
    if path.is_dir():
        return _checked(path, _call(_folder_loader_for(path), path, options))
    if not path.is_file():
        raise StoreError(f"response file {path} does not exist")
    return _checked(path, _call(_loader_for(path), path, options))


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
    return Responses(ids, subjects, dict(resp.spaces))


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
