"""Overview figures across models: every model's layers on one axis, one panel per analysis.

Inputs are the JSON summaries the study steps write, so the report needs no recomputation.
"""

from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _axis(models: list[tuple[str, list[str]]], ax):
    """Lay models side by side on the x axis; return per-model x positions."""
    xs, ticks, labels, pos = [], [], [], 0
    for k, (model, layers) in enumerate(models):
        x = np.arange(pos, pos + len(layers))
        xs.append(x)
        ticks += list(x)
        labels += layers
        if k:
            ax.axvline(pos - 0.75, color="0.8", lw=0.8)
        ax.text(x.mean() if len(x) else pos, 1.02, model, transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=8, fontweight="bold")
        pos += len(layers) + 0.5
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, rotation=70, ha="right", fontsize=6)
    return xs


def plot_overview(kind: str, summaries: dict[str, dict]):
    """One figure for ``kind`` ("rsa", "behaviour_rsa", "encode", "probe") over all models.

    ``summaries`` maps model name -> the step's JSON summary.
    """
    plt = _plt()
    models = [(m, list(s["layer_names"] if kind == "encode" else
                       [r["layer"] for r in s["layers"]] if kind == "probe" else s["layers"]))
              for m, s in summaries.items()]
    n = sum(len(l) for _, l in models)
    fig, ax = plt.subplots(figsize=(min(max(6.0, 0.28 * n + 2.5), 16), 3.8), dpi=110)
    xs = _axis(models, ax)
    best = (None, -np.inf)
    for (model, layers), x, s in zip(models, xs, summaries.values()):
        if kind in ("rsa", "behaviour_rsa"):
            # the noise ceiling bounds the mean of per-subject correlations, so that mean
            # is drawn when the step has it; the group-RDM r is drawn without a ceiling
            mean_r = s.get("mean_subject_r")
            y = np.asarray(mean_r if mean_r else s["group_r"], float)
            which = "mean_of_subjects" if mean_r else "group"
            rows = {r["layer"]: r for r in s.get("rows", []) if r.get("subject", which) == which
                    or "subject" not in r}
            lo = np.array([rows.get(l, {}).get("ci_low") or np.nan for l in layers], float)
            hi = np.array([rows.get(l, {}).get("ci_high") or np.nan for l in layers], float)
            if np.isfinite(lo).any():
                ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="none", ecolor="C0", capsize=2, lw=1)
            sig = np.asarray(s["group_p_fwe"], float) < 0.05
            ax.plot(x[sig], y[sig] + 0.03 * (np.nanmax(y) - min(0, np.nanmin(y)) + 1e-9), "k*",
                    ms=5, label="p_FWE < 0.05" if not ax.get_legend_handles_labels()[0] else None)
            nc = s.get("noise_ceiling") if mean_r else None
            ylabel = (f"RSA ({s.get('method', 'spearman')}), mean of subjects; grey: noise ceiling"
                      if nc else f"RSA ({s.get('method', 'spearman')}), group RDM")
            if nc:
                ax.axhspan(nc["lower"], nc["upper"], color="0.88", zorder=0)
        elif kind == "encode":
            across = s["across_subjects"]["median_r2_per_layer"]
            y = np.array([np.nan if a["mean"] is None else a["mean"] for a in across])
            e = np.array([np.nan if a["sem"] is None else a["sem"] for a in across])
            ax.errorbar(x, y, yerr=np.nan_to_num(e), fmt="none", ecolor="C0", capsize=2, lw=1)
            ylabel = "median R² per voxel, per-fold mean (mean ± SEM over subjects)"
        else:
            acc_key = "accuracy" if "accuracy" in s["layers"][0] else "transfer_accuracy"
            lo_key = "ci_low" if acc_key == "accuracy" else "transfer_ci_low"
            hi_key = "ci_high" if acc_key == "accuracy" else "transfer_ci_high"
            y = np.array([r[acc_key] for r in s["layers"]], float)
            lo = np.array([r[lo_key] for r in s["layers"]], float)
            hi = np.array([r[hi_key] for r in s["layers"]], float)
            ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="none", ecolor="C0", capsize=2, lw=1)
            ax.axhline(s["layers"][0]["chance"], color="C3", ls="--", lw=1)
            ylabel = "accuracy (95% CI); dashed: chance" if acc_key == "accuracy" else \
                "transfer accuracy (95% CI); dashed: chance under the class shift"
        ax.plot(x, y, "o-", color="C0", ms=3.5, lw=1.2)
        if np.isfinite(y).any() and np.nanmax(y) > best[1]:
            i = int(np.nanargmax(y))
            best = (f"{model}:{layers[i]}", float(y[i]))
    if best[0]:
        ax.set_title(f"best: {best[0]} ({best[1]:.3f})", fontsize=9, loc="right", pad=14)
    ax.set_ylabel(ylabel, fontsize=8)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    fig.tight_layout()
    return fig
