"""Encoding study: nested cross-validated voxel-wise ridge from model layers to brain data."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from alignjax import distributed
from alignjax.app.studies.encode_blocks import OwnedBlocks, remove_blocks
from alignjax.errors import InvalidOptionError
from alignjax.encoding import encode, encoding_permutation_test, split_subjects
from alignjax.io import load_layers, load_responses
from alignjax.options import renamed

__all__ = ["run_encode", "parse_alphas", "DEFAULT_ALPHAS"]

DEFAULT_ALPHAS = "logspace:-2:8:11"


def parse_alphas(alphas) -> np.ndarray:
    """Alphas from a sequence, ``"0.1,1,10"`` or ``"logspace:START:STOP:NUM"`` (powers of ten)."""
    if alphas is None:
        alphas = DEFAULT_ALPHAS
    if not isinstance(alphas, str):
        return np.asarray(alphas, dtype=float)
    try:
        if alphas.startswith("logspace:"):
            a, b, k = alphas.split(":")[1:]
            return np.logspace(float(a), float(b), int(k))
        return np.array([float(v) for v in alphas.split(",") if v.strip()])
    except ValueError as exc:
        raise InvalidOptionError(f"alphas {alphas!r}: expected comma-separated numbers or "
                                 f"logspace:START:STOP:NUM ({exc})") from None


def _write_tables(out: Path, parts: dict, names: list, perm) -> None:
    """``voxels.csv`` and the per-subject ``.npy`` arrays."""
    with open(out / "voxels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject", "voxel", "valid", "r", "r2", "cod", "best_layer", "best_alpha"]
                   + (["p", "p_fwe", "q"] if perm is not None else []))
        offset = 0
        for subj, d in parts.items():
            sdir = out / subj
            sdir.mkdir(exist_ok=True)
            for key in ("r", "r2", "cod", "best_layer", "best_alpha", "layer_r2", "valid"):
                np.save(sdir / f"{key}.npy", d[key])
            for v in range(d["r"].shape[0]):
                bl = d["best_layer"][:, v]
                if d["valid"][v] and (bl >= 0).all():
                    mode = int(np.bincount(bl).argmax())
                    layer = names[mode]
                    alpha = float(np.exp(np.median(np.log(d["best_alpha"][:, v]))))
                else:
                    layer, alpha = "", float("nan")
                row = [subj, v, bool(d["valid"][v]), f"{d['r'][v]:.6g}", f"{d['r2'][v]:.6g}",
                       f"{d['cod'][v]:.6g}", layer, f"{alpha:.6g}"]
                if perm is not None:
                    k = offset + v
                    row += [f"{perm.p[k]:.6g}", f"{perm.p_fwe[k]:.6g}", f"{perm.q[k]:.6g}"]
                w.writerow(row)
            offset += d["r"].shape[0]


@renamed(target_chunk="chunk_size")
def run_encode(features, brain, out: str | os.PathLike, *, alphas=None, outer_folds: int = 5,
               inner_folds: int = 5, stratify: Sequence | None = None, score: str = "r2",
               extend_alphas: bool = False, standardize: bool = True,
               layers: Sequence[str] | None = None, chunk_size: int | None = None,
               n_perm: int = 0, seed: int = 0, progress: bool = True,
               brain_options: Mapping | None = None, rois=None, roi_labels=None
               ) -> dict | None:
    """Nested-CV encoding of every voxel of every subject; writes results to ``out``.

    Writes ``voxels.csv`` (subject, voxel, valid, r, r2, cod, modal best layer, median best
    alpha), per-subject ``.npy`` arrays, ``summary.json`` (median per subject, mean ± SEM
    across subjects, best-layer counts) and the encoding figures. ``stratify`` holds one
    category label per stimulus of ``features`` (in its order); ``n_perm > 0`` adds
    permutation p-values of the per-fold mean r (``p``; ``p_fwe`` and ``q`` corrected within
    each subject), from refits on permuted responses.

    NIfTI/GIfTI responses (``brain_options``: ``mask``, ``stimulus_ids``, ``nan_voxels``,
    see :mod:`alignjax.io.neuro`) also get every per-voxel measure written back in their
    space (``r2.nii.gz``, ``best_layer.nii.gz``, ... in a folder per subject when there are
    several; :mod:`alignjax.app.studies.brainmaps`), brain-map figures, and with ``rois``
    (an atlas on the data's grid) and ``roi_labels`` (its label table) ``roi_summary.csv``,
    ``roi_best_layer.csv`` and ``roi_summary.png``.

    Under several processes (:mod:`alignjax.distributed`) each process fits and writes its
    own block of the voxels, and process 0 joins them and writes the rest
    (:mod:`alignjax.app.studies.encode_blocks`); ``out`` must be visible to every process.

    Returns the summary (None in processes other than 0 of a multi-process run).
    """
    t0 = time.perf_counter()
    ls = load_layers(features, layers=layers)
    resp = load_responses(brain, **dict(brain_options or {}))
    if (rois is not None or roi_labels is not None) and not resp.spaces:
        raise InvalidOptionError("--rois/--roi-labels need brain data read from NIfTI/GIfTI "
                                 f"files; {brain} has no spatial layout")
    if ls.stimulus_ids is not None:
        resp = resp.aligned_to(ls.stimulus_ids)
    timings = {"load": time.perf_counter() - t0}
    alphas = parse_alphas(alphas)
    Y = resp if ls.stimulus_ids is not None else resp.subjects
    options = dict(inner_folds=inner_folds, stratify=stratify, standardize=standardize,
                   chunk_size=chunk_size, extend_alphas=extend_alphas, score=score)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    blocks = None
    if distributed.active():  # each process fits and writes its own block of the voxels
        blocks = OwnedBlocks(out, ls, Y, dict(
            options, stratify=None if stratify is None else [str(c) for c in stratify],
            alphas=[float(a) for a in alphas], outer_folds=outer_folds, seed=seed))
        res, n_total = blocks.fit(alphas=alphas, outer_folds=outer_folds, seed=seed,
                                  progress=progress, **options)
        observed = distributed.gather_blocks(res.r, n_total) if n_perm else None
    else:
        res = encode(ls, Y, alphas=alphas, outer_folds=outer_folds, seed=seed,
                     progress=progress, **options)
        observed = res.r
    timings["encode"] = time.perf_counter() - t0 - sum(timings.values())
    perm = None
    if n_perm:  # refits the nested CV on permuted responses; max-T and FDR per subject
        perm = encoding_permutation_test(
            ls, Y, alphas=alphas, folds=res.folds, n_perm=n_perm, seed=seed, score="pearson",
            progress=progress, encode_options=options, observed=observed)
    timings["permutation"] = time.perf_counter() - t0 - sum(timings.values())
    if blocks is not None:
        if not distributed.is_main():
            return None
        res = blocks.join()  # process 0 writes what needs every voxel
    parts = split_subjects(res)
    names = list(res.layer_names)
    _write_tables(out, parts, names, perm)
    timings["tables"] = time.perf_counter() - t0 - sum(timings.values())
    summary = dict(res.summary)
    counts = np.zeros(len(names), dtype=int)
    for entry in summary["subjects"].values():
        counts += np.asarray(entry["best_layer_counts"], dtype=int)
    summary.update({"analysis": "encode", "features": str(features), "brain": str(brain),
                    "alphas": [float(a) for a in alphas], "outer_folds": outer_folds,
                    "inner_folds": inner_folds, "score": score, "seed": seed,
                    "stratify": None if stratify is None else [str(c) for c in stratify],
                    "extend_alphas": extend_alphas, "standardize": standardize,
                    "n_stimuli": int(res.prediction.shape[0]),
                    "best_layer_counts": dict(zip(names, counts.tolist())),
                    "n_perm": n_perm,
                    "correction": "max-T and BH within each subject" if n_perm else None,
                    "n_significant_fwe": None if perm is None else int((perm.p_fwe < 0.05).sum()),
                    "seconds": time.perf_counter() - t0})
    if resp.spaces:
        from alignjax.app.studies.brainmaps import write_encoding_maps

        summary.update(write_encoding_maps(res, parts, perm, resp.spaces, out, rois=rois,
                                           roi_labels=roi_labels))
        summary["brain_options"] = {k: str(v) for k, v in (brain_options or {}).items()}
        timings.update(summary.pop("timings"))
    from alignjax.app.report.encoding import write_figures

    t_fig = time.perf_counter()
    write_figures(res, out)
    timings["figures"] = time.perf_counter() - t_fig
    summary["timings"] = timings  # seconds per part: load, encode (the solver), writing
    summary["seconds"] = time.perf_counter() - t0
    with open(out / "summary.json", "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1)
    remove_blocks(out)  # written into the whole result (or left by an interrupted run)
    summary["n_valid"] = int(res.valid.sum())
    summary["n_subjects"] = len(res.subjects)
    summary["n_excluded_constant"] = int((~res.valid).sum())
    summary["n_excluded_nonfinite"] = sum(int(sp.n_excluded_nan)
                                          for sp in (resp.spaces or {}).values())
    summary["excluded"] = excluded_text(summary)
    return summary


def excluded_text(summary: dict) -> str:
    """What the encode log says was left out and why: ``"3 excluded: 2 constant, 1
    non-finite"`` (constant: all values equal or within rounding, see
    :func:`alignjax.encoding.constant_targets`; non-finite: NaN/inf voxels of the mask left
    out at loading with ``nan_voxels="exclude"``)."""
    n_const = int(summary.get("n_excluded_constant", 0))
    n_nan = int(summary.get("n_excluded_nonfinite", 0))
    if n_const + n_nan == 0:
        return "none excluded"
    parts = [f"{n:,} {why}" for n, why in ((n_const, "constant"), (n_nan, "non-finite")) if n]
    return f"{n_const + n_nan:,} excluded: {', '.join(parts)}"
