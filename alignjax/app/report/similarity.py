"""Figures and the report section of similarity analyses (``alignjax similarity``)."""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np

from alignjax.app.report.rsa import _plt


def plot_similarity_layers(layers: Sequence[str], metrics: Sequence[str], score: np.ndarray,
                           p_fwe: np.ndarray, null_mean: np.ndarray | None = None,
                           null_std: np.ndarray | None = None, *, alpha: float = 0.05,
                           title: str = ""):
    """Score per layer, one panel per metric: the mean over subjects (thin lines: each
    subject), the permutation null's mean +- 1 sd (grey band), and layers whose
    FWE-corrected p is below ``alpha`` for at least one subject starred.

    Parameters
    ----------
    score, p_fwe, null_mean, null_std : arrays (n_metrics, n_layers, n_subjects)
    """
    plt = _plt()
    score = np.asarray(score, float)
    n_m, n_l, n_s = score.shape
    cols = min(3, n_m)
    rows = -(-n_m // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.2, 0.3 * n_l + 2.2) * cols, 2.8 * rows),
                             dpi=100, squeeze=False)
    x = np.arange(n_l)
    for m, metric in enumerate(metrics):
        ax = axes.flat[m]
        if null_mean is not None and np.isfinite(null_mean[m]).any():
            mu, sd = np.nanmean(null_mean[m], 1), np.nanmean(null_std[m], 1)
            ax.fill_between(x, mu - sd, mu + sd, color="0.85", label="null mean ± sd")
        if n_s > 1:
            ax.plot(x, score[m], color="C0", alpha=0.2, lw=0.7)
        mean = np.nanmean(score[m], 1)
        ax.plot(x, mean, color="C0", marker="o", ms=3, lw=1.6, label="score (mean)")
        sig = (np.asarray(p_fwe[m]) < alpha).any(1)
        if sig.any():
            top = np.nanmax(score[m]) + 0.04 * (np.nanmax(score[m]) - np.nanmin(score[m]) + 1e-9)
            ax.plot(x[sig], np.full(sig.sum(), top), "k*", ms=6, label=f"p_FWE < {alpha}")
        ax.set_title(metric, fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(layers, rotation=60, ha="right", fontsize=6)
        ax.tick_params(axis="y", labelsize=7)
        if m == 0:
            ax.legend(fontsize=6, frameon=False)
    for ax in list(axes.flat)[n_m:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_rank_agreement(metrics: Sequence[str], items: Sequence[str], ranks: np.ndarray,
                        tau: np.ndarray, w: float, *, title: str = ""):
    """Metrics x layers coloured by rank (1 = most similar) and the Kendall tau matrix."""
    plt = _plt()
    ranks = np.asarray(ranks, float)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(max(6.0, 0.35 * len(items) + 4.5), 0.4 * len(metrics) + 2.2),
                                 dpi=100, gridspec_kw={"width_ratios": [max(len(items), 3), len(metrics) + 1]})
    im = a1.imshow(ranks, cmap="viridis_r", aspect="auto")
    for (i, j), r in np.ndenumerate(ranks):
        a1.text(j, i, f"{r:g}", ha="center", va="center", fontsize=6, color="w")
    a1.set_yticks(range(len(metrics)))
    a1.set_yticklabels(metrics, fontsize=7)
    a1.set_xticks(range(len(items)))
    a1.set_xticklabels(items, rotation=60, ha="right", fontsize=6)
    a1.set_title(f"rank per metric (1 = most similar); Kendall's W = {w:.2f}", fontsize=8)
    fig.colorbar(im, ax=a1, fraction=0.03)
    im2 = a2.imshow(tau, cmap="RdBu_r", vmin=-1, vmax=1)
    a2.set_xticks(range(len(metrics)))
    a2.set_xticklabels(metrics, rotation=60, ha="right", fontsize=6)
    a2.set_yticks(range(len(metrics)))
    a2.set_yticklabels(metrics, fontsize=6)
    a2.set_title("Kendall tau between rankings", fontsize=8)
    fig.colorbar(im2, ax=a2, fraction=0.046)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_layer_heatmaps(metrics: Sequence[str], layers_a: Sequence[str], layers_b: Sequence[str],
                        score: np.ndarray, *, title: str = ""):
    """Layer x layer similarity of two models, one heatmap per metric."""
    plt = _plt()
    n_m = len(metrics)
    fig, axes = plt.subplots(1, n_m, figsize=(3.4 * n_m + 0.6, 3.4), dpi=100, squeeze=False)
    for m, ax in enumerate(axes.flat):
        im = ax.imshow(np.asarray(score[m], float), cmap="magma", origin="lower", aspect="auto")
        ax.set_title(metrics[m], fontsize=9)
        ax.set_yticks(range(len(layers_a)))
        ax.set_yticklabels(layers_a, fontsize=5)
        ax.set_xticks(range(len(layers_b)))
        ax.set_xticklabels(layers_b, rotation=90, fontsize=5)
        fig.colorbar(im, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def section_similarity(figures_html: str, summary: dict, title: str, table) -> str:
    """HTML of one similarity step: figures, best layer per metric, metric agreement."""
    rows = []
    for metric, best in (summary.get("best_layer") or {}).items():
        rows.append({"metric": metric, "best layer (calibrated)": best["layer"],
                     "score": best["score"], "calibrated": best["calibrated"],
                     "min p_FWE": best["p_fwe"]})
    agree = summary.get("rank_agreement") or {}
    w = agree.get("kendalls_w")
    meta = (f"{summary.get('n_perm')} stimulus permutations of Y (the same for every metric and "
            f"layer; p_FWE: max over layers per metric and subject); "
            f"{len(summary.get('layers', []))} layers x {len(summary.get('subjects', []))} "
            f"{'layers of ' + html.escape(str(summary.get('against'))) if summary.get('against') else 'subjects'}")
    if w is not None:
        meta += f"; metric-rank agreement Kendall's W = {w:.2f}"
    return (f"<h3>{title}</h3><p class=meta>{meta}</p><div class=grid>{figures_html}</div>"
            + (table(rows, list(rows[0])) if rows else ""))
