"""Per-target results written back in the input's space: NIfTI volumes or GIfTI surfaces.

:func:`write_maps` puts each value on the voxel (or vertex) its target came from, using the
:class:`~alignjax.io.neuro.VolumeSpace` / :class:`~alignjax.io.neuro.SurfaceSpace` that the
loaders of :mod:`alignjax.io.neuro` record: one file per measure, named after it
(``r2.nii.gz``; on surfaces ``r2.func.gii``, or ``r2_hemi-L.func.gii`` and
``r2_hemi-R.func.gii``). Volumes keep the input's affine and header (only the fields that
describe the new data change: dimensions, data type, scaling); surfaces keep the input's
metadata. Every map is checked against the space before the first file is written, so
nothing is ever written in the wrong space.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import InvalidOptionError, ShapeMismatchError
from .neuro import SurfaceSpace, VolumeSpace, _nibabel

__all__ = ["write_maps", "map_paths"]


def _as_map(name: str, values, n_targets: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim not in (1, 2) or arr.shape[-1] != n_targets:
        raise ShapeMismatchError(
            f"map {name!r} has shape {arr.shape}; the space holds {n_targets} targets, so "
            "expected (n_targets,) or (n_maps, n_targets): it is not from these responses")
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int16 if np.abs(arr).max(initial=0) < 2**15 else np.int32)
    return arr.astype(np.float32)


def _fill(dtype) -> float:
    return np.nan if np.issubdtype(dtype, np.floating) else (0 if dtype == np.uint8 else -1)


def _volume(arr: np.ndarray, space: VolumeSpace) -> np.ndarray:
    shape = tuple(space.shape) + ((arr.shape[0],) if arr.ndim == 2 else ())
    out = np.full(shape, _fill(arr.dtype), dtype=arr.dtype)
    out[space.mask] = arr.T
    return out


def _write_volume(path: Path, arr: np.ndarray, space: VolumeSpace) -> None:
    nib = _nibabel()
    data = _volume(arr, space)
    header = space.header.copy()
    header.set_data_dtype(data.dtype)
    klass = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    img = klass(data, space.affine, header=header)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["cal_min"], img.header["cal_max"] = 0, 0
    img.set_qform(space.header.get_qform(), int(space.header["qform_code"]))
    img.set_sform(space.header.get_sform(), int(space.header["sform_code"]))
    _atomic(path, lambda tmp: nib.save(img, str(tmp)))


def _write_surface(paths: list[Path], arr: np.ndarray, space: SurfaceSpace) -> None:
    nib = _nibabel()
    rows = arr if arr.ndim == 2 else arr[None]
    start = 0
    for path, n, verts, meta in zip(paths, space.n_vertices, space.vertices, space.meta):
        block = rows[:, start:start + len(verts)]
        start += len(verts)
        full = np.full((rows.shape[0], n), _fill(rows.dtype), dtype=rows.dtype)
        full[:, verts] = block
        if full.dtype == np.int16 or full.dtype == np.uint8:
            full = full.astype(np.int32)
        darrays = [nib.gifti.GiftiDataArray(col, intent="NIFTI_INTENT_NONE",
                                            datatype="NIFTI_TYPE_FLOAT32" if col.dtype == np.float32
                                            else "NIFTI_TYPE_INT32") for col in full]
        img = nib.gifti.GiftiImage(meta=nib.gifti.GiftiMetaData(dict(meta)), darrays=darrays)
        _atomic(path, lambda tmp, img=img: nib.save(img, str(tmp)))


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{''.join(path.suffixes)}")
    write(tmp)
    os.replace(tmp, path)


def map_paths(name: str, space, out_dir) -> list[Path]:
    """The file(s) :func:`write_maps` writes for measure ``name``."""
    out_dir = Path(out_dir)
    if isinstance(space, VolumeSpace):
        return [out_dir / f"{name}.nii.gz"]
    if len(space.hemispheres) == 1:
        hemi = space.hemispheres[0]
        return [out_dir / (f"{name}_hemi-{hemi}.func.gii" if hemi else f"{name}.func.gii")]
    return [out_dir / f"{name}_hemi-{h}.func.gii" for h in space.hemispheres]


def write_maps(maps: Mapping[str, np.ndarray], space, out_dir) -> dict[str, list[Path]]:
    """Write per-target results as images in ``space``, one file per measure.

    Parameters
    ----------
    maps : mapping of str to array
        Measure name -> values, (n_targets,) or (n_maps, n_targets) (a 4-D volume, or one
        data array per map on surfaces, e.g. R² per layer). Booleans are written as 0/1
        (uint8), integers as int16/int32 with -1 outside the targets, floats as float32
        with NaN outside the targets.
    space : VolumeSpace or SurfaceSpace
        Where the targets came from (``Responses.spaces[subject]``).
    out_dir : path
        Folder to write into (created).

    Returns
    -------
    dict of str to list of Path
        The files written per measure.

    Raises
    ------
    ShapeMismatchError
        A map does not have one value per target of ``space`` (checked for every map before
        any file is written).
    """
    if not isinstance(space, (VolumeSpace, SurfaceSpace)):
        raise InvalidOptionError(f"space must be a VolumeSpace or SurfaceSpace, got "
                                 f"{type(space).__name__}: only NIfTI/GIfTI responses have one")
    checked = {name: _as_map(name, v, space.n_targets) for name, v in maps.items()}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, arr in checked.items():
        paths = map_paths(name, space, out_dir)
        if isinstance(space, VolumeSpace):
            _write_volume(paths[0], arr, space)
        else:
            _write_surface(paths, arr, space)
        written[name] = paths
    return written
