"""NIfTI and GIfTI responses: per-stimulus beta images in, with the space they came from.

Readers for the response registry (:func:`alignjax.io.register_loader`), used by
:func:`alignjax.load_responses` and ``--brain``; nibabel comes with the ``[fmri]`` extra
(``pip install 'alignjax[fmri]'``) and is imported only when such a file is read.

- A 4-D NIfTI (``.nii``/``.nii.gz``), one volume per stimulus, with the stimulus ids from
  ``stimulus_ids``: a list, a text file (one id per line) or a BIDS-style events/labels
  table (``.tsv``/``.csv``, one row per volume; column ``stimulus_id``, else
  ``trial_type``, ``stim_file``, ``condition``, ``label`` or ``id``). Without it, a sidecar
  ``<name>.ids.txt``, ``<name>_ids.txt``, ``<name>_events.tsv`` or ``<name>_labels.tsv``
  is used; rows are never matched to stimuli by position alone.
- A folder of 3-D beta images named by stimulus id (``<id>.nii.gz``); with
  ``stimulus_ids``, each of those ids must have its image.
- GIfTI functional surfaces (``.func.gii``): one data array per stimulus (or one 2-D
  array, vertices x stimuli); a file of one hemisphere brings its sibling
  (``hemi-L``/``hemi-R``, ``lh.``/``rh.``, ``.L.``/``.R.``) when it exists.
- A table of subjects (``.subjects.tsv``/``.subjects.csv``; columns ``subject``, ``path``,
  optional ``mask`` and ``stimulus_ids``, paths relative to the table).

``mask`` (a NIfTI on the data's grid, or a GIfTI per hemisphere; non-zero = inside) picks
the voxels that become targets, in the order of ``numpy.argwhere`` (C order); without one,
the voxels finite and not all zero across stimuli are kept. Voxels inside a mask holding
NaN or inf are refused with their counts unless ``nan_voxels="exclude"``. Each subject's
:class:`VolumeSpace` or :class:`SurfaceSpace` (in :attr:`Responses.spaces`) lets
:func:`alignjax.io.maps.write_maps` put every per-target result back on its voxel.
"""

from __future__ import annotations

import csv
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import (InvalidOptionError, NonFiniteError, ShapeMismatchError,
                      StimulusMismatchError, StoreError, check_choice, check_unique_ids)
from .responses import Responses, register_loader

__all__ = ["VolumeSpace", "SurfaceSpace", "load_nifti_responses", "load_nifti_folder",
           "load_gifti_responses", "load_subject_table", "read_stimulus_ids", "companion_files",
           "NAN_VOXELS"]

NAN_VOXELS = ("raise", "exclude")
_NIFTI = (".nii.gz", ".nii")
_ID_COLUMNS = ("stimulus_id", "stim_id", "trial_type", "stim_file", "condition", "label", "id")
_AFFINE_TOL = 1e-4


def _nibabel():
    try:
        import nibabel
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("reading NIfTI/GIfTI needs nibabel: pip install 'alignjax[fmri]'") from None
    return nibabel


# --------------------------------------------------------------------------- spaces


@dataclass(frozen=True, eq=False)
class VolumeSpace:
    """Where the targets of one subject live in a volume.

    Attributes
    ----------
    shape : tuple of int
        The 3-D grid.
    affine : ndarray (4, 4)
        Voxel -> world (mm) transform of the input.
    header : nibabel header
        The input's header (copied into every written map).
    mask : ndarray of bool, shape ``shape``
        The targets: ``mask`` voxels in C order (``numpy.argwhere``).
    source : str
        The file (or folder) read.
    n_excluded_nan : int
        Voxels of the mask left out because they held NaN/inf (``nan_voxels="exclude"``).
    """

    shape: tuple
    affine: np.ndarray = field(repr=False)
    header: Any = field(repr=False)
    mask: np.ndarray = field(repr=False)
    source: str = ""
    n_excluded_nan: int = 0

    @property
    def n_targets(self) -> int:
        return int(self.mask.sum())

    @property
    def coords(self) -> np.ndarray:
        """Voxel indices (i, j, k) of the targets: (n_targets, 3)."""
        return np.argwhere(self.mask)

    @property
    def world(self) -> np.ndarray:
        """World coordinates (mm) of the targets: (n_targets, 3)."""
        ijk = self.coords
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]


@dataclass(frozen=True, eq=False)
class SurfaceSpace:
    """Where the targets of one subject live on cortical surfaces (one or two hemispheres).

    Attributes
    ----------
    hemispheres : tuple of str
        ``("L", "R")``, ``("L",)``, ... (``("",)`` when the file names none).
    n_vertices : tuple of int
        Vertices per hemisphere.
    vertices : tuple of ndarray of int
        Per hemisphere, the vertices that are targets (targets are these, hemisphere by
        hemisphere).
    meta : tuple of dict
        Each input file's GIfTI metadata (copied into the written maps).
    source : tuple of str
    n_excluded_nan : int
    """

    hemispheres: tuple
    n_vertices: tuple
    vertices: tuple = field(repr=False)
    meta: tuple = field(repr=False)
    source: tuple = ()
    n_excluded_nan: int = 0

    @property
    def n_targets(self) -> int:
        return int(sum(len(v) for v in self.vertices))


# --------------------------------------------------------------------------- stimulus ids


def _read_table(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        text = fh.read()
    delim = "\t" if path.suffix.lower() == ".tsv" or "\t" in text.split("\n", 1)[0] else ","
    return list(csv.DictReader(text.splitlines(), delimiter=delim))


def read_stimulus_ids(spec) -> list[str]:
    """Stimulus ids from a sequence, a text file (one per line) or an events/labels table.

    Parameters
    ----------
    spec : sequence of str or path
        A table (``.tsv``/``.csv``) gives the first of the columns ``stimulus_id``,
        ``stim_id``, ``trial_type``, ``stim_file`` (file name without extension),
        ``condition``, ``label``, ``id`` it has, one row per volume.

    Returns
    -------
    list of str
    """
    if not isinstance(spec, (str, Path)):
        return [str(s) for s in spec]
    path = Path(spec)
    if not path.is_file():
        raise StoreError(f"stimulus id file {path} does not exist")
    if path.suffix.lower() not in (".tsv", ".csv"):
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    rows = _read_table(path)
    cols = list(rows[0]) if rows else []
    col = next((c for c in _ID_COLUMNS if c in cols), None)
    if col is None:
        raise StimulusMismatchError(f"{path}: no stimulus id column (one of {list(_ID_COLUMNS)}); "
                                    f"its columns are {cols}")
    ids = [r[col].strip() for r in rows]
    if col == "stim_file":
        ids = [re.sub(r"\.[A-Za-z0-9]+$", "", Path(s).name) for s in ids]
    return ids


def _strip(name: str) -> str:
    low = name.lower()
    for suffix in (".func.gii", ".shape.gii", ".gii") + _NIFTI:
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _sidecar_ids(path: Path) -> list[str] | None:
    stems = [_strip(path.name)]
    hemi_less = re.sub(r"[_.-]?hemi-[LR]", "", stems[0])
    if hemi_less != stems[0]:
        stems.append(hemi_less)
    for stem in stems:
        for suffix in (".ids.txt", "_ids.txt", "_events.tsv", "_labels.tsv"):
            cand = path.with_name(stem + suffix)
            if cand.is_file():
                return read_stimulus_ids(cand)
    return None


def _ids_for(path: Path, stimulus_ids, n: int) -> list[str]:
    ids = read_stimulus_ids(stimulus_ids) if stimulus_ids is not None else _sidecar_ids(path)
    if ids is None:
        raise StimulusMismatchError(
            f"{path}: no stimulus ids for its {n} volumes; pass stimulus_ids (--stimulus-ids "
            f"ids.txt or an events table), or put {_strip(path.name)}.ids.txt next to it")
    if len(ids) != n:
        raise StimulusMismatchError(f"{path} holds {n} volumes but {len(ids)} stimulus ids were "
                                    "given (one per volume, in volume order)")
    return check_unique_ids(ids, f"the stimulus ids of {path}")


def _subject_name(path: Path) -> str:
    m = re.search(r"sub-[A-Za-z0-9]+", str(path))
    return m.group(0) if m else _strip(path.name)


# --------------------------------------------------------------------------- masks and NaNs


def _check_grid(what: str, shape, affine, ref_shape, ref_affine, ref: str) -> None:
    if tuple(shape) != tuple(ref_shape):
        raise ShapeMismatchError(f"{what} has the grid {tuple(shape)} but {ref} has "
                                 f"{tuple(ref_shape)}; resample it to the data's grid")
    if not np.allclose(affine, ref_affine, atol=_AFFINE_TOL):
        raise ShapeMismatchError(f"{what} and {ref} have different affines (voxel -> world); "
                                 f"largest difference {np.abs(affine - ref_affine).max():.3g}: "
                                 "they are not in the same space")


def _volume_mask(mask, shape, affine, source: str) -> np.ndarray | None:
    if mask is None:
        return None
    if isinstance(mask, (str, Path)):
        if not Path(mask).is_file():
            raise StoreError(f"mask {mask} does not exist")
        img = _nibabel().load(str(mask))
        arr = np.asarray(img.dataobj)
        if arr.ndim == 4 and arr.shape[3] == 1:
            arr = arr[..., 0]
        _check_grid(f"the mask {mask}", arr.shape, img.affine, shape, affine, source)
        where = f"mask {mask}"
    else:
        arr = np.asarray(mask)
        if arr.shape != tuple(shape):
            raise ShapeMismatchError(f"the mask has shape {arr.shape} but {source} has the grid "
                                     f"{tuple(shape)}")
        where = "the mask"
    out = np.nan_to_num(np.asarray(arr, dtype=float)) != 0
    if not out.any():
        raise InvalidOptionError(f"{where} holds no voxels (all zero): nothing to analyse")
    return out


def _drop_nan(Y: np.ndarray, ids: Sequence[str], source: str, nan_voxels: str,
              where_of=lambda j: f"target {j}") -> tuple[np.ndarray, np.ndarray]:
    """``Y`` without non-finite targets (columns) when allowed; returns ``(Y, keep)``."""
    check_choice(nan_voxels, "nan_voxels", NAN_VOXELS)
    bad = ~np.isfinite(Y)
    cols = bad.any(axis=0)
    if not cols.any():
        return Y, np.ones(Y.shape[1], bool)
    n_cols, n_rows = int(cols.sum()), int(bad.any(axis=1).sum())
    first = int(np.flatnonzero(cols)[0])
    stim = ids[int(np.flatnonzero(bad[:, first])[0])]
    msg = (f"{source}: {n_cols} of {Y.shape[1]} voxels inside the mask hold NaN or inf "
           f"(in {n_rows} of {len(ids)} stimuli; first at {where_of(first)}, stimulus {stim!r})")
    if nan_voxels == "raise":
        raise NonFiniteError(msg + "; fix the mask, or exclude them (nan_voxels='exclude', "
                                   "--drop-nan-voxels)")
    if n_cols == Y.shape[1]:
        raise NonFiniteError(msg + "; excluding them would leave no voxel")
    warnings.warn(msg + "; excluded", stacklevel=3)
    return Y[:, ~cols], ~cols


# --------------------------------------------------------------------------- NIfTI


def _volume_responses(data4d: np.ndarray, ids, affine, header, mask, source: str,
                      nan_voxels: str, subject: str) -> Responses:
    shape = data4d.shape[:3]
    m = _volume_mask(mask, shape, affine, source)
    if m is None:
        finite = np.isfinite(data4d).all(axis=3)
        m = finite & (np.nan_to_num(data4d) != 0).any(axis=3)
        if not m.any():
            raise InvalidOptionError(f"{source}: every voxel is zero or non-finite: no data")
    Y = np.ascontiguousarray(data4d[m].T)
    coords = np.argwhere(m)
    Y, keep = _drop_nan(Y, ids, source, nan_voxels,
                        lambda j: f"voxel {tuple(int(c) for c in coords[j])}")
    n_drop = int((~keep).sum())
    if n_drop:
        m = m.copy()
        m[tuple(coords[~keep].T)] = False
    space = VolumeSpace(tuple(shape), np.asarray(affine, float), header.copy(), m, source, n_drop)
    return Responses(list(ids), {subject: Y}, {subject: space})


def load_nifti_responses(path, *, mask=None, stimulus_ids=None, nan_voxels: str = "raise",
                         subject: str | None = None) -> Responses:
    """One subject's responses from a 4-D NIfTI, one volume per stimulus.

    Parameters
    ----------
    path : path
        ``.nii`` or ``.nii.gz``, shape (x, y, z, n_stimuli).
    mask : path or ndarray, optional
        Voxels to keep (non-zero), on the same grid and affine as ``path``.
    stimulus_ids : sequence or path, optional
        See :func:`read_stimulus_ids`; default a sidecar of ``path``.
    nan_voxels : {"raise", "exclude"}
        Voxels in the mask with NaN/inf: refuse (with counts), or leave them out.
    subject : str, optional
        Subject name (default: the ``sub-XX`` in the path, else the file name).

    Returns
    -------
    Responses
        One (n_stimuli, n_voxels) array and its :class:`VolumeSpace`.
    """
    path = Path(path)
    img = _nibabel().load(str(path))
    if len(img.shape) != 4:
        raise ShapeMismatchError(f"{path} has shape {img.shape}: expected a 4-D image, one "
                                 "volume per stimulus (or a folder of 3-D images named by "
                                 "stimulus id)")
    ids = _ids_for(path, stimulus_ids, img.shape[3])
    data = np.asarray(img.dataobj, dtype=np.float32)
    return _volume_responses(data, ids, img.affine, img.header, mask, str(path), nan_voxels,
                             subject or _subject_name(path))


def _nifti_files(folder: Path) -> dict[str, Path]:
    out = {}
    for f in sorted(folder.iterdir()):
        low = f.name.lower()
        if f.is_file() and low.endswith(_NIFTI) and not low.startswith("."):
            out[_strip(f.name)] = f
    return out


def load_nifti_folder(path, *, mask=None, stimulus_ids=None, nan_voxels: str = "raise",
                      subject: str | None = None) -> Responses:
    """One subject's responses from a folder of 3-D beta images named ``<stimulus id>.nii.gz``.

    Parameters are those of :func:`load_nifti_responses`; with ``stimulus_ids`` only those
    stimuli are read (each must have its image), else every image of the folder (sorted).
    """
    nib = _nibabel()
    folder = Path(path)
    files = _nifti_files(folder)
    ids = read_stimulus_ids(stimulus_ids) if stimulus_ids is not None else list(files)
    missing = [s for s in ids if s not in files]
    if missing:
        raise StimulusMismatchError(f"{folder}: no beta image for {len(missing)} of {len(ids)} "
                                    f"stimulus ids (first: {missing[:5]}); expected <id>.nii.gz")
    ids = check_unique_ids(ids, f"the stimulus ids of {folder}")
    first = nib.load(str(files[ids[0]]))
    vols = []
    for s in ids:
        img = nib.load(str(files[s]))
        arr = np.asarray(img.dataobj, dtype=np.float32)
        if arr.ndim == 4 and arr.shape[3] == 1:
            arr = arr[..., 0]
        _check_grid(f"beta image {files[s].name}", arr.shape, img.affine, first.shape[:3],
                    first.affine, f"{files[ids[0]].name}")
        vols.append(arr)
    return _volume_responses(np.stack(vols, axis=3), ids, first.affine, first.header, mask,
                             str(folder), nan_voxels, subject or _subject_name(folder))


# --------------------------------------------------------------------------- GIfTI

# (left pattern, right pattern, left text, right text)
_HEMI_PAIRS = ((r"hemi-L", r"hemi-R", "hemi-L", "hemi-R"), (r"^lh\.", r"^rh\.", "lh.", "rh."),
               (r"\.L\.", r"\.R\.", ".L.", ".R."))


def _hemispheres(path: Path) -> list[tuple[str, Path]]:
    """``[(hemi, path)]`` of the file and, when it exists, its other hemisphere."""
    name = path.name
    for lpat, rpat, ltxt, rtxt in _HEMI_PAIRS:
        if re.search(lpat, name):
            other = path.with_name(re.sub(lpat, rtxt, name, count=1))
            return [("L", path)] + ([("R", other)] if other.is_file() else [])
        if re.search(rpat, name):
            other = path.with_name(re.sub(rpat, ltxt, name, count=1))
            return ([("L", other)] if other.is_file() else []) + [("R", path)]
    return [("", path)]


def _gifti_data(path: Path) -> tuple[np.ndarray, dict]:
    """(n_stimuli, n_vertices) of a functional GIfTI, and its metadata."""
    img = _nibabel().load(str(path))
    arrays = [np.asarray(d.data, dtype=np.float32) for d in img.darrays]
    if not arrays:
        raise StoreError(f"{path} holds no data arrays")
    if len(arrays) == 1 and arrays[0].ndim == 2:
        data = arrays[0].T
    elif all(a.ndim == 1 for a in arrays) and len({a.shape for a in arrays}) == 1:
        data = np.stack(arrays)
    else:
        raise ShapeMismatchError(f"{path}: expected one 1-D data array per stimulus (or one "
                                 f"vertices x stimuli array), got shapes "
                                 f"{[a.shape for a in arrays][:5]}")
    return data, dict(img.meta)


def _surface_mask(mask, hemis: list[tuple[str, Path]], n_vertices: list[int]):
    if mask is None:
        return [None] * len(hemis)
    if not isinstance(mask, (str, Path)):
        arrs = [np.asarray(mask)] if len(hemis) == 1 else list(mask)
        files = ["the mask"] * len(arrs)
    else:
        pairs = dict(_hemispheres(Path(mask)))
        missing = [h for h, _ in hemis if h not in pairs or not pairs[h].is_file()]
        if missing:
            raise StoreError(f"mask {mask}: no mask file for hemisphere(s) {missing}")
        files = [pairs[h] for h, _ in hemis]
        arrs = [np.asarray(_nibabel().load(str(f)).darrays[0].data) for f in files]
    out = []
    for arr, f, n, (h, p) in zip(arrs, files, n_vertices, hemis):
        if arr.reshape(-1).shape[0] != n:
            raise ShapeMismatchError(f"{f} has {arr.size} vertices but {p} has {n}")
        out.append(np.flatnonzero(np.nan_to_num(arr.reshape(-1).astype(float)) != 0))
    if sum(len(v) for v in out) == 0:
        raise InvalidOptionError(f"mask {mask} holds no vertices (all zero): nothing to analyse")
    return out


def load_gifti_responses(path, *, mask=None, stimulus_ids=None, nan_voxels: str = "raise",
                         subject: str | None = None) -> Responses:
    """One subject's responses from functional GIfTI surfaces (one or both hemispheres).

    Parameters are those of :func:`load_nifti_responses`; ``mask`` is a GIfTI per
    hemisphere (paired like the data files) or an array per hemisphere. Targets are the
    mask's vertices of the left hemisphere, then of the right one.
    """
    path = Path(path)
    hemis = _hemispheres(path)
    datas, metas = zip(*[_gifti_data(p) for _, p in hemis])
    if len({d.shape[0] for d in datas}) != 1:
        raise ShapeMismatchError(f"{path}: the hemispheres hold different numbers of stimuli "
                                 f"({[d.shape[0] for d in datas]})")
    ids = _ids_for(path, stimulus_ids, datas[0].shape[0])
    n_vertices = [d.shape[1] for d in datas]
    verts = _surface_mask(mask, hemis, n_vertices)
    verts = [np.arange(n) if v is None else v for v, n in zip(verts, n_vertices)]
    Y = np.concatenate([d[:, v] for d, v in zip(datas, verts)], axis=1)
    labels = [(h, int(v)) for (h, _), vs in zip(hemis, verts) for v in vs]
    Y, keep = _drop_nan(Y, ids, str(path), nan_voxels,
                        lambda j: f"vertex {labels[j][1]} of hemisphere {labels[j][0] or '-'}")
    bounds = np.cumsum([0] + [len(v) for v in verts])
    verts = [v[keep[a:b]] for v, a, b in zip(verts, bounds[:-1], bounds[1:])]
    space = SurfaceSpace(tuple(h for h, _ in hemis), tuple(n_vertices), tuple(verts),
                         tuple(metas), tuple(str(p) for _, p in hemis), int((~keep).sum()))
    name = subject or re.sub(r"[_.-]?hemi-[LR]", "", _subject_name(path))
    return Responses(list(ids), {name: Y}, {name: space})


# --------------------------------------------------------------------------- several subjects


def load_subject_table(path, *, mask=None, stimulus_ids=None,
                       nan_voxels: str = "raise") -> Responses:
    """Several subjects from a table with columns ``subject``, ``path`` and optionally
    ``mask`` and ``stimulus_ids`` (paths relative to the table; a column overrides the
    option of the same name). Every subject must cover the first subject's stimuli.
    """
    from .responses import load_responses

    path = Path(path)
    rows = _read_table(path)
    if not rows or not {"subject", "path"} <= set(rows[0]):
        raise StoreError(f"{path}: a subject table needs the columns 'subject' and 'path'")
    check_unique_ids([r["subject"] for r in rows], f"the subjects of {path}")

    def rel(v):
        return None if not v else (path.parent / v if not Path(v).is_absolute() else Path(v))

    ids, subjects, spaces = None, {}, {}
    for r in rows:
        resp = load_responses(rel(r["path"]), mask=rel(r.get("mask")) or mask,
                              stimulus_ids=rel(r.get("stimulus_ids")) or stimulus_ids,
                              nan_voxels=nan_voxels, subject=r["subject"])
        if ids is None:
            ids = resp.stimulus_ids
        resp = resp.aligned_to(ids, what=f"subject {rows[0]['subject']!r}")
        for name, arr in resp.subjects.items():
            subjects[r["subject"]] = arr
            if name in resp.spaces:
                spaces[r["subject"]] = resp.spaces[name]
    return Responses(list(ids), subjects, spaces)


def companion_files(path) -> list[Path]:
    """Files a response file is read together with: its stimulus-id sidecars, the other
    hemisphere of a surface, the files a subject table lists (for content fingerprints)."""
    path = Path(path)
    low = path.name.lower()
    out: list[Path] = []
    if low.endswith(_NIFTI + (".func.gii",)):
        stem = _strip(path.name)
        stems = {stem, re.sub(r"[_.-]?hemi-[LR]", "", stem)}
        out += [path.with_name(s + suf) for s in sorted(stems)
                for suf in (".ids.txt", "_ids.txt", "_events.tsv", "_labels.tsv")]
        if low.endswith(".func.gii"):
            out += [p for _, p in _hemispheres(path) if p != path]
    elif low.endswith((".subjects.tsv", ".subjects.csv")) and path.is_file():
        for r in _read_table(path):
            for key in ("path", "mask", "stimulus_ids"):
                if r.get(key):
                    p = Path(r[key])
                    out.append(p if p.is_absolute() else path.parent / p)
    return out


for _suffix in _NIFTI:
    register_loader(_suffix, load_nifti_responses)
    register_loader(_suffix, load_nifti_folder, folder=True)
register_loader(".func.gii", load_gifti_responses)
register_loader(".subjects.tsv", load_subject_table)
register_loader(".subjects.csv", load_subject_table)
