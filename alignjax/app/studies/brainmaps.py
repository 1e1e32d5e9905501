"""Encoding results back in the brain: per-voxel maps, ROI summaries and their figures.

Used by :func:`alignjax.app.studies.encode.run_encode` when the responses came from
NIfTI/GIfTI files (they carry a space per subject). One subject: the maps go into the
output folder itself (``r2.nii.gz``, ...); several: into one folder per subject.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from alignjax.errors import InvalidOptionError

__all__ = ["encoding_maps", "write_encoding_maps", "MEASURES"]

MEASURES = ("r", "r2", "cod", "best_layer", "best_alpha", "layer_r2", "valid",
            "p", "p_fwe", "q", "sig_fwe", "sig_fdr")


def _modal_layer(best_layer: np.ndarray, valid: np.ndarray, n_layers: int) -> np.ndarray:
    """Most frequent layer over outer folds per target (ties: the lowest), -1 if excluded."""
    bl = np.asarray(best_layer)
    ok = valid & (bl >= 0).all(axis=0)
    counts = np.stack([(bl == k).sum(axis=0) for k in range(n_layers)])
    return np.where(ok, counts.argmax(axis=0), -1).astype(np.int32)


def encoding_maps(d: dict, n_layers: int, perm: dict | None = None, *,
                  alpha: float = 0.05) -> dict[str, np.ndarray]:
    """Per-voxel measures of one subject (a :func:`alignjax.encoding.split_subjects` entry).

    ``best_layer`` is the layer chosen most often over the outer folds, ``best_alpha`` the
    geometric median of the chosen alphas, ``layer_r2`` one map per layer; with ``perm``
    (``p``, ``p_fwe``, ``q`` per voxel) also the masks ``sig_fwe`` (``p_fwe < alpha``) and
    ``sig_fdr`` (``q < alpha``).
    """
    valid = np.asarray(d["valid"], bool)
    best = _modal_layer(d["best_layer"], valid, n_layers)
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha_med = np.exp(np.median(np.log(np.asarray(d["best_alpha"], float)), axis=0))
    maps = {"r": d["r"], "r2": d["r2"], "cod": d["cod"], "best_layer": best,
            "best_alpha": np.where(best >= 0, alpha_med, np.nan), "layer_r2": d["layer_r2"],
            "valid": valid}
    if perm is not None:
        maps.update(p=perm["p"], p_fwe=perm["p_fwe"], q=perm["q"],
                    sig_fwe=np.nan_to_num(perm["p_fwe"], nan=1.0) < alpha,
                    sig_fdr=np.nan_to_num(perm["q"], nan=1.0) < alpha)
    return maps


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_encoding_maps(res, parts: dict, perm, spaces: dict, out, *, rois=None,
                        roi_labels=None, figures: bool = True) -> dict:
    """Write every subject's maps (and ROI summaries); return what the summary records.

    Parameters
    ----------
    res : EncodingResult
    parts : dict
        :func:`alignjax.encoding.split_subjects` of ``res``.
    perm : EncodingPermutationResult or None
    spaces : dict subject -> space
        From ``Responses.spaces``; every subject of ``res`` must have one.
    out : path
    rois, roi_labels : path, optional
        Atlas and its label table for ROI summaries (both or neither).
    figures : bool
        Also draw the brain-map (and ROI) figures.

    Returns
    -------
    dict
        ``maps`` (files per subject and measure, relative to ``out``), ``spaces``,
        ``rois`` (with an atlas) and ``timings`` (seconds spent writing maps, figures, ROIs).
    """
    from alignjax.io import write_maps

    out = Path(out)
    names = list(res.layer_names)
    missing = [s for s in parts if s not in spaces]
    if missing:
        raise InvalidOptionError(f"subjects {missing} have no space (not read from NIfTI/GIfTI), "
                                 "so their results cannot be written as maps")
    if (rois is None) != (roi_labels is None):
        raise InvalidOptionError("ROI summaries need both --rois (atlas) and --roi-labels")
    several = len(parts) > 1
    # check every subject's maps against its space before writing any
    all_maps = {}
    for k, (subj, d) in enumerate(parts.items()):
        sel = np.asarray(res.subject_index) == k
        p = None if perm is None else {f: np.asarray(getattr(perm, f))[sel] for f in ("p", "p_fwe", "q")}
        all_maps[subj] = encoding_maps(d, len(names), p)
        n = spaces[subj].n_targets
        if d["r"].shape[0] != n:
            raise InvalidOptionError(f"subject {subj!r}: {d['r'].shape[0]} results but its space "
                                     f"holds {n} targets; nothing was written")
    record = {"maps": {}, "spaces": {}}
    timings = {"maps": 0.0, "brain_figures": 0.0}
    for subj, maps in all_maps.items():
        folder = out / subj if several else out
        t0 = time.perf_counter()
        written = write_maps(maps, spaces[subj], folder)
        (folder / "best_layer_labels.tsv").write_text(
            "index\tname\n" + "".join(f"{i}\t{n}\n" for i, n in enumerate(names)))
        record["maps"][subj] = {m: [str(p.relative_to(out)) for p in ps] for m, ps in written.items()}
        sp = spaces[subj]
        record["spaces"][subj] = {"kind": type(sp).__name__, "n_targets": sp.n_targets,
                                  "n_excluded_nan": sp.n_excluded_nan}
        timings["maps"] += time.perf_counter() - t0
        if figures and (not several or list(all_maps).index(subj) < 4):
            from alignjax.app.report.brain import write_brain_figures

            t0 = time.perf_counter()
            write_brain_figures(written, names, out, suffix=f"_{subj}" if several else "")
            timings["brain_figures"] += time.perf_counter() - t0
    if rois is not None:
        t0 = time.perf_counter()
        record["rois"] = _rois(all_maps, spaces, rois, roi_labels, names, out, figures)
        timings["rois"] = time.perf_counter() - t0
    record["timings"] = timings
    return record


def _rois(all_maps, spaces, rois, roi_labels, names: Sequence[str], out: Path,
          figures: bool) -> dict:
    from alignjax.io import roi_summary

    summ = roi_summary({s: m["r2"] for s, m in all_maps.items()},
                       {s: m["best_layer"] for s, m in all_maps.items()}, spaces, rois,
                       roi_labels, layer_names=names)
    _write_csv(out / "roi_summary.csv", summ.rows)
    _write_csv(out / "roi_best_layer.csv", summ.best_layer_rows)
    if figures and summ.rows:
        from alignjax.app.report.brain import _plt, plot_roi_summary

        fig = plot_roi_summary(summ.rows, summ.best_layer_rows, names, out / "roi_summary.png")
        _plt().close(fig)
    return {"atlas": str(rois), "labels": str(roi_labels),
            "regions": sorted({r["roi"] for r in summ.rows})}
