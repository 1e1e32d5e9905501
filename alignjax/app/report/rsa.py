"""Figures for RSA results."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_rsa_layers(layers: Sequence[str], r: np.ndarray, *, group_p_fwe: np.ndarray | None = None,
                    noise_ceiling: tuple[float, float] | None = None, ci: np.ndarray | None = None,
                    alpha: float = 0.05, title: str = "", ylabel: str = "RSA (Spearman r)"):
    """RSA per layer: mean of the per-subject correlations with SEM (or given CIs), the
    noise-ceiling band (which bounds that mean), and layers whose group-RDM test (fixed
    effects over stimuli) has FWE-corrected p below ``alpha`` marked with an asterisk.

    Parameters
    ----------
    layers : sequence of str, length n_layers
    r : array, shape (n_layers, n_subjects)
    group_p_fwe : array, shape (n_layers,), optional
    noise_ceiling : (lower, upper), optional
    ci : array, shape (2, n_layers), optional
        Error bars (low, high) to draw instead of the SEM.
    """
    plt = _plt()
    r = np.atleast_2d(np.asarray(r, float))
    n_layers, n_sub = r.shape
    x = np.arange(n_layers)
    mean = r.mean(1)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * n_layers + 2), 3.6), dpi=110)
    if noise_ceiling is not None:
        lo, up = noise_ceiling
        ax.axhspan(lo, up, color="0.85", zorder=0, label="noise ceiling")
    if n_sub > 1:
        for s in range(n_sub):
            ax.plot(x, r[:, s], color="C0", alpha=0.25, lw=0.8, zorder=1)
    if ci is not None:
        yerr = np.abs(np.asarray(ci) - mean[None, :])
        ax.errorbar(x, mean, yerr=yerr, color="C0", marker="o", lw=1.8, capsize=2, zorder=3,
                    label="mean (95% CI)")
    elif n_sub > 1:
        sem = r.std(1, ddof=1) / np.sqrt(n_sub)
        ax.errorbar(x, mean, yerr=sem, color="C0", marker="o", lw=1.8, capsize=2, zorder=3,
                    label=f"mean ± SEM ({n_sub} subjects)")
    else:
        ax.plot(x, mean, color="C0", marker="o", lw=1.8, zorder=3)
    if group_p_fwe is not None:
        sig = np.asarray(group_p_fwe) < alpha
        if sig.any():
            top = np.nanmax(r) + 0.05 * (np.nanmax(r) - min(np.nanmin(r), 0) + 1e-9)
            ax.plot(x[sig], np.full(sig.sum(), top), "k*", ms=7,
                    label=f"group RDM p_FWE < {alpha} (fixed effects)")
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_xticks(x)
    ax.set_xticklabels(layers, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, frameon=False, loc="best")
    fig.tight_layout()
    return fig


def plot_rdm(square: np.ndarray, *, categories: Sequence | None = None, title: str = "",
             ax=None):
    """Show a square RDM, with stimuli sorted and ticked by category when given."""
    plt = _plt()
    square = np.asarray(square, float)
    order = np.arange(square.shape[0])
    if categories is not None:
        categories = np.asarray(categories)
        order = np.argsort(categories, kind="stable")
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.4, 3.2), dpi=110)
    im = ax.imshow(square[np.ix_(order, order)], cmap="viridis", interpolation="nearest")
    if categories is not None:
        cats = categories[order]
        edges = np.flatnonzero(cats[1:] != cats[:-1]) + 0.5
        for e in edges:
            ax.axhline(e, color="w", lw=0.5)
            ax.axvline(e, color="w", lw=0.5)
        starts = np.r_[0, edges + 0.5].astype(int)
        ends = np.r_[edges + 0.5, len(cats)].astype(int)
        ax.set_yticks((starts + ends - 1) / 2)
        ax.set_yticklabels([str(cats[s]) for s in starts], fontsize=6)
        ax.set_xticks([])
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    (fig or ax.figure).colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return fig or ax.figure
