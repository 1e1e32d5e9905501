"""Time-resolved RSA study: model layers against EEG/MEG epochs (``alignjax temporal-rsa``)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from alignjax.errors import InvalidOptionError, match_ids
from alignjax.app.studies.rsa import _layers_with_ids, _save_figure, _write_table, layer_rdms

__all__ = ["run_temporal_rsa", "spans"]


def spans(mask: np.ndarray, times: np.ndarray) -> list[tuple[float, float]]:
    """Runs of True in ``mask`` (n_times,) as (first, last) times."""
    out, start = [], None
    for k, m in enumerate(list(mask) + [False]):
        if m and start is None:
            start = k
        elif not m and start is not None:
            out.append((float(times[start]), float(times[k - 1])))
            start = None
    return out


def _adjacency(ep):
    if ep.info is None:
        raise InvalidOptionError(
            "--searchlight needs channel positions to find neighbours: give MNE epochs (.fif), "
            "whose info holds the montage")
    import mne

    adj, names = mne.channels.find_ch_adjacency(ep.info, "eeg" if "eeg" in ep.info else None)
    idx = match_ids(ep.ch_names, list(names), what="the epochs' channels",
                    other_what="the adjacency")
    return adj[idx][:, idx]


def _random_effects(R: np.ndarray, n_perm: int, seed: int) -> dict | None:
    """Sign-flip cluster test over subjects on the layer x time family (S >= 6)."""
    from scipy import sparse

    from alignjax.clusters import InsufficientSubjectsError, cluster_permutation_test

    L, S, T = R.shape
    X = np.moveaxis(R, 1, 0).transpose(0, 2, 1)                       # (S, T, L)
    try:
        res = cluster_permutation_test(X, n_perm=min(n_perm, 4096), tail=1, seed=seed,
                                       adjacency=sparse.csr_matrix((L, L)))
    except InsufficientSubjectsError as exc:
        return {"test": "sign-flip cluster test over subjects", "skipped": str(exc)}
    sig = np.zeros((L, T), bool)
    for mask, p in zip(res.clusters, res.cluster_p):
        if p < 0.05:
            sig |= mask.T
    return {"test": "sign-flip cluster test over subjects (tail 1, MNE conventions)",
            "n_perm": res.n_perm, "exact": res.exact, "threshold": res.threshold,
            "cluster_p": res.cluster_p.tolist(),
            "n_significant_clusters": int((res.cluster_p < 0.05).sum()),
            "significant": sig.tolist()}


def run_temporal_rsa(features, epochs, out: str | os.PathLike, *, window: int = 1, step: int = 1,
                     n_perm: int = 1000, correction: str = "cluster",
                     cluster_threshold: float | None = None, method: str = "spearman",
                     metric: str = "correlation", brain_metric: str = "correlation",
                     layers: Sequence[str] | None = None, searchlight: bool = False,
                     cv_folds: int | None = None, noise_norm: bool = False, picks=None,
                     seed: int = 0, progress: bool = True) -> dict:
    """Temporal RSA of every layer of ``features`` against the epochs of every subject.

    Brain RDMs per subject and time window (:func:`alignjax.temporal_rdms`); the group
    test permutes stimulus labels on the subject-averaged RDMs with ``correction`` FWE
    over layers x time (:func:`alignjax.temporal_rsa_permutation_test`); the per-subject
    time courses get the noise ceiling over time, peak latencies with subject-bootstrap
    CIs, and (from 6 subjects) a sign-flip cluster test over subjects. Writes
    ``temporal_rsa.csv`` (layer, subject, time, r, p, p_fwe), ``temporal_rsa.json`` and
    the figures ``temporal_rsa_heatmap.png``, ``temporal_rsa_timecourses.png``,
    ``temporal_rsa_peaks.png`` (and ``temporal_rsa_topomaps.png`` with ``searchlight``).
    ``picks`` selects the channels (:func:`alignjax.io.load_epochs`; default: data
    channels of one type without bads); the summary records the channels used and
    those left out (``channels``, ``channel_types``, ``excluded_channels``).
    """
    from alignjax.io import load_epochs
    from alignjax.temporal import (peak_latency, temporal_noise_ceiling, temporal_rdms,
                                   temporal_rsa, temporal_rsa_permutation_test,
                                   temporal_searchlight)
    from alignjax.app.report import temporal as fig

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ls = _layers_with_ids(features, layers)
    ep = load_epochs(epochs, folds=cv_folds, picks=picks).aligned_to(ls.stimulus_ids,
                                                        what=f"the features ({features})")
    model = layer_rdms(ls, metric=metric, progress=progress)
    data = ep.folds if cv_folds else ep.data
    R = temporal_rdms(data, metric=brain_metric, window=window, step=step, cv_folds=cv_folds,
                      times=ep.times,
                      noise_cov=ep.noise_cov if noise_norm and ep.noise_cov is not None else None)
    brain, times = np.asarray(R.rdms), R.times
    S = brain.shape[0]
    grp = temporal_rsa_permutation_test(model, brain, method=method, n_perm=n_perm,
                                        correction=correction, seed=seed,
                                        cluster_threshold=cluster_threshold,
                                        average_subjects=True)
    per = np.asarray(temporal_rsa(model, brain, method=method))            # (L, S, W)
    nc = temporal_noise_ceiling(brain, method=method) if S > 1 else None
    curve = per if S > 1 else grp.r
    pl = peak_latency(curve, times, n_boot=1000, seed=seed)
    sig = grp.p_fwe[:, 0] < 0.05
    rfx = _random_effects(per, n_perm, seed) if S > 1 else None
    rows = []
    for li, layer in enumerate(ls.names):
        for k, t in enumerate(times):
            rows.append({"layer": layer, "subject": "group", "time": float(t),
                         "r": float(grp.r[li, 0, k]), "p": float(grp.p[li, 0, k]),
                         "p_fwe": float(grp.p_fwe[li, 0, k]),
                         "noise_ceiling_lower": None if nc is None else float(nc.lower[k]),
                         "noise_ceiling_upper": None if nc is None else float(nc.upper[k])})
            for si, sname in enumerate(ep.subjects if S > 1 else []):
                rows.append({"layer": layer, "subject": sname, "time": float(t),
                             "r": float(per[li, si, k]), "p": None, "p_fwe": None,
                             "noise_ceiling_lower": None, "noise_ceiling_upper": None})
    _write_table(out / "temporal_rsa.csv", rows)
    summary = {
        "analysis": "temporal_rsa", "features": str(features), "epochs": str(epochs),
        "method": method, "metric": metric, "brain_metric": brain_metric, "window": window,
        "step": step, "cv_folds": cv_folds, "noise_norm": noise_norm, "n_perm": grp.n_perm,
        "correction": correction, "cluster_threshold": grp.cluster_threshold, "seed": seed,
        "n_stimuli": len(ls.stimulus_ids), "n_subjects": S, "subjects": ep.subjects,
        "n_channels": len(ep.ch_names), "picks": picks, "channels": ep.ch_names,
        "channel_types": None if ep.ch_types is None else sorted(set(ep.ch_types)),
        "excluded_channels": dict(ep.excluded_channels or {}), "layers": ls.names, "times": times.tolist(),
        "group_r": grp.r[:, 0].tolist(), "group_p_fwe": grp.p_fwe[:, 0].tolist(),
        "cluster_p": grp.cluster_p.tolist(),
        "significant_spans": {layer: spans(sig[li], times) for li, layer in enumerate(ls.names)},
        "peak_r": np.nanmax(grp.r[:, 0], axis=-1).tolist(),
        "peak_latency": pl.latency.tolist(), "peak_latency_ci": pl.ci.tolist(),
        "noise_ceiling": None if nc is None else {"lower": nc.lower.tolist(),
                                                  "upper": nc.upper.tolist()},
        "random_effects": rfx,
        "group_test": "fixed effects over stimuli: subject-averaged RDMs, stimulus labels "
                      "permuted identically at every time point and layer",
    }
    name = Path(str(features)).name
    _save_figure(fig.plot_layer_time(ls.names, times, grp.r[:, 0], sig,
                                     title=f"{name}: RSA ({method}) over time, group RDM; "
                                           f"outlined: {correction} FWE p < 0.05"),
                 out / "temporal_rsa_heatmap.png")
    _save_figure(fig.plot_timecourses(ls.names, times, curve, sig=sig,
                                      noise_ceiling=None if nc is None else (nc.lower, nc.upper),
                                      label=f"RSA ({method})"),
                 out / "temporal_rsa_timecourses.png")
    _save_figure(fig.plot_peak_latency(ls.names, pl.latency, pl.ci),
                 out / "temporal_rsa_peaks.png")
    if searchlight:
        sl = temporal_searchlight(model, ep.data, _adjacency(ep), window=window, step=step,
                                  metric=brain_metric, method=method, times=ep.times,
                                  progress=progress)
        best = int(np.nanargmax(summary["peak_r"]))
        lats = sorted({float(pl.latency[best])} | {float(t) for t in np.quantile(times, [0.25, 0.75])})
        _save_figure(fig.plot_topomaps(sl.r[best].mean(0), sl.times, lats, info=ep.info,
                                       ch_names=ep.ch_names,
                                       title=f"searchlight RSA of {ls.names[best]}"),
                     out / "temporal_rsa_topomaps.png")
        np.save(out / "searchlight_r.npy", sl.r.astype(np.float32))
        summary["searchlight"] = {"layer": ls.names[best], "latencies": lats,
                                  "file": "searchlight_r.npy"}
    summary["seconds"] = time.perf_counter() - t0
    with open(out / "temporal_rsa.json", "w") as fh:
        json.dump(summary, fh, indent=1)
    return summary
