"""Figures for voxel-wise encoding results (``alignjax encode``).

Every function takes an :class:`alignjax.encoding.EncodingResult`, draws one matplotlib
figure with the Agg backend, saves it when ``path`` is given and returns the figure.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_median_r2_per_layer", "plot_best_layer_histogram", "plot_r2_per_subject",
           "write_figures"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, path):
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_median_r2_per_layer(result, path=None):
    """Median R² over valid voxels per layer: one line per subject, mean +- SEM in black."""
    plt = _plt()
    names = list(result.layer_names)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(names) + 2), 3.2))
    per = result.summary["subjects"]
    for subj, entry in per.items():
        vals = [np.nan if v is None else v for v in entry["median_r2_per_layer"]]
        ax.plot(x, vals, color="0.6", lw=1, alpha=0.8)
    across = result.summary["across_subjects"]["median_r2_per_layer"]
    mean = np.array([np.nan if a["mean"] is None else a["mean"] for a in across])
    sem = np.array([np.nan if a["sem"] is None else a["sem"] for a in across])
    ax.errorbar(x, mean, yerr=np.nan_to_num(sem), color="k", lw=2, capsize=3,
                label=f"mean ± SEM over {len(per)} subject(s)")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("median R² over voxels\n(per outer fold, averaged)")
    ax.set_title("Cross-validated R² per layer")
    ax.legend(fontsize=7, frameon=False)
    return _finish(fig, path)


def plot_best_layer_histogram(result, path=None):
    """How often each layer is selected (over valid voxels and outer folds), per subject."""
    plt = _plt()
    names = list(result.layer_names)
    x = np.arange(len(names))
    per = result.summary["subjects"]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(names) + 2), 3.2))
    width = 0.8 / max(1, len(per))
    for k, (subj, entry) in enumerate(per.items()):
        counts = np.asarray(entry["best_layer_counts"], dtype=float)
        frac = counts / counts.sum() if counts.sum() else counts
        ax.bar(x - 0.4 + width * (k + 0.5), frac, width=width, label=subj)
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("fraction of voxels x folds")
    ax.set_title("Selected layer")
    if len(per) <= 12:
        ax.legend(fontsize=7, frameon=False)
    return _finish(fig, path)


def plot_r2_per_subject(result, path=None):
    """Distribution of cross-validated R² over valid voxels, one violin per subject."""
    plt = _plt()
    data, labels = [], []
    for k, subj in enumerate(result.subjects):
        m = (result.subject_index == k) & result.valid & np.isfinite(result.r2)
        if m.any():
            data.append(result.r2[m])
            labels.append(subj)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(labels) + 2), 3.2))
    if data:
        if all(len(d) > 1 for d in data):
            ax.violinplot(data, showmedians=True)
        else:
            ax.boxplot(data)
        ax.set_xticks(np.arange(1, len(labels) + 1), labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("R² (r², r<0 set to 0),\nmean over outer folds")
    ax.set_title("R² distribution per subject")
    return _finish(fig, path)


def write_figures(result, out_dir) -> list:
    """Write the three encode figures as PNGs into ``out_dir``; return their paths."""
    from pathlib import Path

    plt = _plt()
    out = Path(out_dir)
    paths = []
    for name, fn in (("median_r2_per_layer.png", plot_median_r2_per_layer),
                     ("best_layer_histogram.png", plot_best_layer_histogram),
                     ("r2_per_subject.png", plot_r2_per_subject)):
        fig = fn(result, out / name)
        plt.close(fig)
        paths.append(out / name)
    return paths
