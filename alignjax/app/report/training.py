"""Scores against training step: one analysis over the checkpoints of a training run.

The models of a checkpoint series (``checkpoints = "GLOB"`` in a pipeline, or any stores
whose manifests record a training step) are set on a training-step axis, one line per
layer, so one sees when in training a layer's alignment with the brain emerges.
"""

from __future__ import annotations

import numpy as np

__all__ = ["layer_scores", "plot_score_vs_step"]


def layer_scores(kind: str, summary: dict) -> tuple[list[str], np.ndarray, str]:
    """Each layer's headline score in an analysis summary -> (layers, scores, label).

    RSA: the mean of the per-subject correlations (the group-RDM r when absent); encoding:
    the median R² per voxel averaged over subjects; probes: the cross-validated accuracy.
    """
    if kind in ("rsa", "behaviour_rsa"):
        y = summary.get("mean_subject_r") or summary["group_r"]
        return list(summary["layers"]), np.asarray(y, float), f"RSA ({summary.get('method', 'spearman')})"
    if kind == "encode":
        across = summary["across_subjects"]["median_r2_per_layer"]
        y = [np.nan if a["mean"] is None else a["mean"] for a in across]
        return list(summary["layer_names"]), np.asarray(y, float), "median R² per voxel"
    key = "accuracy" if "accuracy" in summary["layers"][0] else "transfer_accuracy"
    return ([r["layer"] for r in summary["layers"]],
            np.asarray([r[key] for r in summary["layers"]], float), key.replace("_", " "))


def plot_score_vs_step(kind: str, by_step: dict[int, dict], *, title: str = ""):
    """Score of every layer against training step (one line per layer, darker = deeper).

    Parameters
    ----------
    kind : str
        Analysis kind ("rsa", "behaviour_rsa", "encode", "probe").
    by_step : dict step -> summary
        The analysis's JSON summary for the checkpoint at each training step.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    steps = sorted(by_step)
    scored = [layer_scores(kind, by_step[s]) for s in steps]
    layers, label = scored[0][0], scored[0][2]
    Y = np.full((len(steps), len(layers)), np.nan)
    for i, (names, y, _) in enumerate(scored):
        pos = {n: k for k, n in enumerate(names)}
        Y[i] = [y[pos[n]] if n in pos else np.nan for n in layers]
    fig, ax = plt.subplots(figsize=(6.0, 3.6), dpi=110)
    colors = plt.cm.viridis(np.linspace(0.9, 0.1, len(layers)))
    for k, name in enumerate(layers):
        ax.plot(steps, Y[:, k], "o-", ms=3, lw=1.2, color=colors[k], label=name)
    if steps[0] > 0 and steps[-1] / steps[0] >= 20:
        ax.set_xscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(label, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, frameon=False, ncol=1 + len(layers) // 8, loc="best")
    fig.tight_layout()
    return fig
