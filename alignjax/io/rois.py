"""Summaries of per-target results by region of an atlas (``--rois atlas.nii.gz``).

The atlas is a label image on the data's grid (a NIfTI with the same shape and affine,
or a ``.label.gii`` per hemisphere for surfaces); the label table (``--roi-labels``) names
its integer labels: a TSV/CSV with columns ``index`` and ``name`` (BIDS ``dseg.tsv``;
also ``label``/``value`` and ``roi``/``region``), or two columns without a header. Label 0
is background. Every label the atlas uses must be in the table.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from ..errors import InvalidOptionError, StoreError
from .neuro import SurfaceSpace, VolumeSpace, _check_grid, _hemispheres, _nibabel

__all__ = ["read_roi_labels", "roi_summary", "RoiSummary"]

_INDEX_COLS = ("index", "label", "value", "id")
_NAME_COLS = ("name", "roi", "region", "label_name")


def read_roi_labels(path) -> dict[int, str]:
    """``{label: name}`` from a label table (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"ROI label table {path} does not exist")
    text = path.read_text(encoding="utf-8").splitlines()
    delim = "\t" if "\t" in (text[0] if text else "") else ","
    rows = [r for r in csv.reader(text, delimiter=delim) if r and any(c.strip() for c in r)]
    if not rows:
        raise StoreError(f"ROI label table {path} is empty")
    head = [c.strip().lower() for c in rows[0]]
    icol = next((head.index(c) for c in _INDEX_COLS if c in head), None)
    ncol = next((head.index(c) for c in _NAME_COLS if c in head and head.index(c) != icol), None)
    if icol is None or ncol is None:
        icol, ncol, body = 0, 1, rows
    else:
        body = rows[1:]
    out = {}
    for k, r in enumerate(body):
        try:
            out[int(float(r[icol]))] = r[ncol].strip()
        except (ValueError, IndexError):
            raise StoreError(f"{path} row {k + 1}: expected an integer label and a name, got "
                             f"{r}") from None
    return out


def _atlas_values(atlas, space) -> np.ndarray:
    """The atlas label of every target of ``space``: (n_targets,) int."""
    nib = _nibabel()
    if isinstance(space, VolumeSpace):
        if isinstance(atlas, (str, Path)):
            img = nib.load(str(atlas))
            arr = np.asarray(img.dataobj)
            _check_grid(f"the atlas {atlas}", arr.shape[:3], img.affine, space.shape,
                        space.affine, space.source)
            arr = arr.reshape(arr.shape[:3])
        else:
            arr = np.asarray(atlas)
            _check_grid("the atlas", arr.shape, space.affine, space.shape, space.affine,
                        space.source)
        return np.rint(np.nan_to_num(arr[space.mask])).astype(np.int64)
    if not isinstance(space, SurfaceSpace):
        raise InvalidOptionError("ROI summaries need responses read from NIfTI/GIfTI files")
    pairs = dict(_hemispheres(Path(atlas)))
    parts = []
    for h, n, verts in zip(space.hemispheres, space.n_vertices, space.vertices):
        if h not in pairs:
            raise StoreError(f"atlas {atlas}: no label file for hemisphere {h or '-'}")
        lab = np.asarray(nib.load(str(pairs[h])).darrays[0].data).reshape(-1)
        if lab.shape[0] != n:
            raise InvalidOptionError(f"atlas {pairs[h]} has {lab.shape[0]} vertices, the data {n}")
        parts.append(lab[verts].astype(np.int64))
    return np.concatenate(parts)


class RoiSummary(NamedTuple):
    """Result of :func:`roi_summary`.

    Attributes
    ----------
    rows : list of dict
        One per subject and region: ``subject, roi, label, n_voxels, n_valid, median_r2,
        mode_best_layer``.
    best_layer_rows : list of dict
        One per subject, region and layer: ``subject, roi, layer, n_voxels, fraction``
        (fraction of the region's valid voxels whose best layer it is).
    """

    rows: list
    best_layer_rows: list


def roi_summary(r2: Mapping[str, np.ndarray], best_layer: Mapping[str, np.ndarray],
                spaces: Mapping, atlas, labels, *, layer_names: Sequence[str]) -> RoiSummary:
    """Median R² and best-layer distribution per region and subject.

    Parameters
    ----------
    r2 : mapping subject -> (n_targets,)
        Cross-validated R² per target (NaN where excluded).
    best_layer : mapping subject -> (n_targets,) of int
        Index into ``layer_names`` per target (-1 where excluded).
    spaces : mapping subject -> VolumeSpace or SurfaceSpace
    atlas : path or ndarray
        Label image on the data's grid (see the module docstring).
    labels : mapping int -> str, or path
        Names of the atlas labels; every non-zero label of the atlas must be named.
    layer_names : sequence of str

    Returns
    -------
    RoiSummary
        Regions in label order; a region with no valid voxel gets ``median_r2`` NaN.
    """
    names = read_roi_labels(labels) if isinstance(labels, (str, Path)) else dict(labels)
    rows, layer_rows = [], []
    for subj in r2:
        if subj not in spaces:
            raise InvalidOptionError(f"subject {subj!r} has no space: ROI summaries need "
                                     "responses read from NIfTI/GIfTI files")
        lab = _atlas_values(atlas, spaces[subj])
        _check_labels(lab, names, atlas)
        vals, best = np.asarray(r2[subj], float), np.asarray(best_layer[subj])
        for index, roi in sorted(names.items()):
            if index == 0:
                continue
            inside = lab == index
            ok = inside & np.isfinite(vals) & (best >= 0)
            counts = np.bincount(best[ok], minlength=len(layer_names))
            rows.append({"subject": subj, "roi": roi, "label": index,
                         "n_voxels": int(inside.sum()), "n_valid": int(ok.sum()),
                         "median_r2": float(np.median(vals[ok])) if ok.any() else float("nan"),
                         "mode_best_layer": layer_names[int(counts.argmax())] if ok.any() else ""})
            for li, layer in enumerate(layer_names):
                layer_rows.append({"subject": subj, "roi": roi, "layer": layer,
                                   "n_voxels": int(counts[li]),
                                   "fraction": float(counts[li] / ok.sum()) if ok.any()
                                   else float("nan")})
    return RoiSummary(rows, layer_rows)


def _check_labels(lab: np.ndarray, names: Mapping[int, str], atlas) -> None:
    used = set(np.unique(lab).tolist()) - {0}
    missing = sorted(used - set(names))
    if missing:
        raise StoreError(f"the atlas {atlas if isinstance(atlas, (str, Path)) else ''} uses "
                         f"{len(missing)} label(s) missing from the label table (first: "
                         f"{missing[:10]}); name every label (index<TAB>name)")
