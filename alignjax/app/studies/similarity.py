"""Similarity studies: every metric between model layers and brain data or another model."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from alignjax.app.studies.rsa import _layers_with_ids, _save_figure, _write_table
from alignjax.errors import InvalidOptionError
from alignjax.io import load_responses

__all__ = ["run_similarity"]


def _feature_sets(features, layers):
    """One LayerSet, or a mapping model -> LayerSet for several stores."""
    if isinstance(features, (str, os.PathLike)) or not isinstance(features, (list, tuple)):
        return _layers_with_ids(features, layers), [str(features)]
    if len(features) == 1:
        return _layers_with_ids(features[0], layers), [str(features[0])]
    sets, names = {}, []
    for i, f in enumerate(features):
        name = Path(str(f)).name or f"model{i}"
        name = name if name not in sets else f"{name}-{i}"
        sets[name] = _layers_with_ids(f, layers)
        names.append(str(f))
    return sets, names


def _no_nan(obj):
    """NaN (no permutations, undefined values) as null in the JSON."""
    if isinstance(obj, float):
        return None if obj != obj else obj
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_no_nan(v) for v in obj]
    return obj


def _best_layers(res) -> dict:
    best = {}
    for m, metric in enumerate(res.metrics):
        cal = np.nanmean(res.calibrated[m], 1) if res.n_perm else np.nanmean(res.score[m], 1)
        li = int(np.nanargmax(cal))
        best[metric] = {"layer": res.layers[li], "score": float(np.nanmean(res.score[m, li])),
                        "calibrated": None if not res.n_perm else float(cal[li]),
                        "p_fwe": None if not res.n_perm else float(np.nanmin(res.p_fwe[m, li]))}
    return best


def run_similarity(features, out: str | os.PathLike, *, brain=None, against=None,
                   metrics: Sequence[str] | str | None = None, n_perm: int = 1000, n_boot: int = 0,
                   seed: int = 0, k: int = 10, rdm_metric: str = "correlation",
                   layers: Sequence[str] | None = None, progress: bool = True,
                   brain_options: Mapping | None = None) -> dict:
    """Every metric between every layer of ``features`` and ``brain`` (or ``against``).

    Writes ``similarity.csv`` (one row per metric, layer, subject: score, p, p_fwe,
    null_mean, null_std, calibrated, and ci_low/ci_high with ``n_boot``),
    ``similarity.json`` (settings, rows, best layer per metric, rank agreement) and the
    figures ``similarity.png`` (score per layer per metric, significant layers starred),
    ``similarity_agreement.png`` (metric-rank agreement; two or more metrics and layers)
    and, with ``against``, ``similarity_heatmap.png`` (layer x layer per metric).

    Parameters
    ----------
    features : path or list of paths
        Feature stores (several: layers named ``store/layer``).
    brain : path, optional
        Responses file (stimuli matched by id).
    brain_options : mapping, optional
        Options of :func:`alignjax.load_responses` for NIfTI/GIfTI responses (``mask``: the
        voxels of the ROI compared, ``stimulus_ids``, ``nan_voxels``).
    against : path, optional
        Another model's feature store: model-vs-model similarity.
    """
    from alignjax.similarity import DEFAULT_METRICS, rank_agreement, similarity

    if (brain is None) == (against is None):
        raise InvalidOptionError("give exactly one of brain (responses) or against (a second "
                                 "feature store)")
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = list(DEFAULT_METRICS) if metrics is None else metrics
    X, sources = _feature_sets(features, layers)
    if against is not None:
        Y = _layers_with_ids(against, None)
    else:  # NIfTI/GIfTI options (mask: the ROI) go to the loader
        Y = load_responses(brain, **dict(brain_options)) if brain_options else brain
    res = similarity(X, Y, metrics=metrics, n_perm=n_perm, n_boot=n_boot, seed=seed, k=k,
                     rdm_metric=rdm_metric, progress=progress)
    rows = res.records()
    _write_table(out / "similarity.csv", rows)
    agreement = None
    if len(res.metrics) > 1 and len(res.layers) > 1:
        ra = rank_agreement(res)
        agreement = {"metrics": list(ra.metrics), "layers": list(ra.items),
                     "ranks": ra.ranks.tolist(), "kendall_tau": ra.tau.tolist(),
                     "kendalls_w": ra.w,
                     "kendalls_w_ci": None if ra.w_ci is None else ra.w_ci.tolist()}
    summary = {
        "analysis": "similarity", "features": sources if len(sources) > 1 else sources[0],
        "brain": None if brain is None else str(brain),
        "brain_options": {k: str(v) for k, v in (brain_options or {}).items()},
        "against": None if against is None else str(against),
        "metrics": list(res.metrics), "layers": list(res.layers), "subjects": list(res.subjects),
        "n_perm": res.n_perm, "exact": res.exact, "n_boot": res.n_boot, "seed": seed, "k": k,
        "rdm_metric": rdm_metric,
        "fwe_family": "layers, per metric and subject (max statistic, same permutations)",
        "best_layer": _best_layers(res), "rank_agreement": agreement, "rows": rows,
        "seconds": time.perf_counter() - t0,
    }
    with open(out / "similarity.json", "w") as fh:
        json.dump(_no_nan(summary), fh, indent=1)
    _figures(res, agreement, out, against is not None)
    return summary


def _figures(res, agreement, out: Path, model_vs_model: bool) -> None:
    from alignjax.app.report.similarity import (plot_layer_heatmaps, plot_rank_agreement,
                                                plot_similarity_layers)

    _save_figure(plot_similarity_layers(res.layers, res.metrics, res.score, res.p_fwe,
                                        res.null_mean, res.null_std,
                                        title="similarity per layer"), out / "similarity.png")
    if agreement is not None:
        _save_figure(plot_rank_agreement(agreement["metrics"], agreement["layers"],
                                         np.asarray(agreement["ranks"]),
                                         np.asarray(agreement["kendall_tau"]),
                                         agreement["kendalls_w"]),
                     out / "similarity_agreement.png")
    if model_vs_model:
        _save_figure(plot_layer_heatmaps(res.metrics, res.layers, res.subjects, res.score,
                                         title="layer x layer similarity"),
                     out / "similarity_heatmap.png")
