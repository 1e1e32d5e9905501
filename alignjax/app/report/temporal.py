"""Figures and the report section of time-resolved RSA (``alignjax temporal-rsa``)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

import numpy as np

from alignjax.app.report.rsa import _plt

__all__ = ["plot_layer_time", "plot_timecourses", "plot_peak_latency", "plot_topomaps",
           "section_temporal"]


def _outline(ax, mask: np.ndarray, x: np.ndarray, color: str = "k") -> None:
    """Outline the True cells of ``mask`` (n_layers, n_times) on an imshow grid."""
    L, T = mask.shape
    dx = (x[-1] - x[0]) / max(T - 1, 1) if T > 1 else 1.0
    for i in range(L):
        for j in range(T):
            if not mask[i, j]:
                continue
            x0, x1 = x[j] - dx / 2, x[j] + dx / 2
            if j == 0 or not mask[i, j - 1]:
                ax.plot([x0, x0], [i - 0.5, i + 0.5], color=color, lw=1.2)
            if j == T - 1 or not mask[i, j + 1]:
                ax.plot([x1, x1], [i - 0.5, i + 0.5], color=color, lw=1.2)
            if i == 0 or not mask[i - 1, j]:
                ax.plot([x0, x1], [i - 0.5, i - 0.5], color=color, lw=1.2)
            if i == L - 1 or not mask[i + 1, j]:
                ax.plot([x0, x1], [i + 0.5, i + 0.5], color=color, lw=1.2)


def plot_layer_time(layers: Sequence[str], times, r, sig=None, *, title: str = "",
                    label: str = "RSA (Spearman r)"):
    """Layer x time heatmap of RSA, FWE-significant cells (clusters) outlined.

    Parameters
    ----------
    layers : sequence of str, length n_layers
    times : array (n_times,), seconds
    r : array (n_layers, n_times)
    sig : bool array (n_layers, n_times), optional
    """
    plt = _plt()
    r = np.asarray(r, float)
    t = np.asarray(times, float) * 1000
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(layers) + 1.8), dpi=110)
    lim = np.nanmax(np.abs(r)) or 1.0
    dx = (t[-1] - t[0]) / max(len(t) - 1, 1) if len(t) > 1 else 1.0
    im = ax.imshow(r, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, origin="lower",
                   extent=(t[0] - dx / 2, t[-1] + dx / 2, -0.5, len(layers) - 0.5),
                   interpolation="nearest")
    if sig is not None and np.any(sig):
        _outline(ax, np.asarray(sig, bool), t)
    ax.set_yticks(range(len(layers)), layers, fontsize=7)
    ax.set_xlabel("time (ms)")
    ax.axvline(0, color="0.4", lw=0.6, ls=":")
    fig.colorbar(im, ax=ax, label=label, fraction=0.04)
    ax.set_title(title or "RSA over time (outlined: FWE p < 0.05)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_timecourses(layers: Sequence[str], times, r_subjects, *, sig=None, noise_ceiling=None,
                     title: str = "", label: str = "RSA (Spearman r)", max_layers: int = 13):
    """RSA time course per layer (mean over subjects ± SEM), the noise-ceiling band and
    FWE-significant spans shaded.

    Parameters
    ----------
    r_subjects : array (n_layers, n_subjects, n_times)
    sig : bool array (n_layers, n_times), optional
    noise_ceiling : (lower, upper) arrays (n_times,), optional
    """
    plt = _plt()
    R = np.asarray(r_subjects, float)
    t = np.asarray(times, float) * 1000
    L = min(len(layers), max_layers)
    cols = min(L, 4)
    rows = -(-L // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.2 * rows), dpi=110, sharex=True,
                             sharey=True, squeeze=False)
    mean = R.mean(1)
    sem = R.std(1, ddof=1) / np.sqrt(R.shape[1]) if R.shape[1] > 1 else np.zeros_like(mean)
    for li in range(rows * cols):
        ax = axes.flat[li]
        if li >= L:
            ax.axis("off")
            continue
        if noise_ceiling is not None:
            ax.fill_between(t, noise_ceiling[0], noise_ceiling[1], color="0.85", lw=0,
                            label="noise ceiling")
        if sig is not None and np.any(sig[li]):
            ax.fill_between(t, 0, 1, where=np.asarray(sig[li], bool), color="C1", alpha=0.25,
                            transform=ax.get_xaxis_transform(), lw=0, label="FWE p < 0.05")
        ax.plot(t, mean[li], color="C0", lw=1.4)
        ax.fill_between(t, mean[li] - sem[li], mean[li] + sem[li], color="C0", alpha=0.25, lw=0)
        ax.axhline(0, color="0.5", lw=0.5)
        ax.axvline(0, color="0.5", lw=0.5, ls=":")
        ax.set_title(str(layers[li]), fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("time (ms)", fontsize=8)
    axes[0, 0].set_ylabel(label, fontsize=8)
    handles, names = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="upper right", fontsize=7)
    fig.suptitle(title or "RSA time courses (mean ± SEM over subjects)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_peak_latency(layers: Sequence[str], latency, ci, *, title: str = ""):
    """Peak latency per layer with its CI over subjects (ms)."""
    plt = _plt()
    lat = np.asarray(latency, float) * 1000
    ci = np.asarray(ci, float) * 1000
    fig, ax = plt.subplots(figsize=(5.5, 0.3 * len(layers) + 1.5), dpi=110)
    y = np.arange(len(layers))
    ax.errorbar(lat, y, xerr=np.abs(ci - lat[None]), fmt="o", color="C0", capsize=2)
    ax.set_yticks(y, layers, fontsize=7)
    ax.set_xlabel("peak latency (ms)")
    ax.set_title(title or "Peak latency per layer (95% CI over subjects)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_topomaps(r_channels, times, latencies, *, info=None, ch_names=None, title: str = ""):
    """Searchlight RSA maps at chosen latencies: topomaps through MNE when ``info`` (with
    sensor positions) is given and mne is installed, else a channel x time image.

    Parameters
    ----------
    r_channels : array (n_channels, n_times)
    latencies : sequence of float (s)
    """
    plt = _plt()
    R = np.asarray(r_channels, float)
    t = np.asarray(times, float)
    lim = np.nanmax(np.abs(R)) or 1.0
    if info is not None:
        try:
            import mne

            fig, axes = plt.subplots(1, len(latencies), figsize=(2.2 * len(latencies), 2.4),
                                     dpi=110, squeeze=False)
            for ax, lat in zip(axes[0], latencies):
                k = int(np.argmin(np.abs(t - lat)))
                mne.viz.plot_topomap(R[:, k], info, axes=ax, show=False, cmap="RdBu_r",
                                     vlim=(-lim, lim))
                ax.set_title(f"{t[k] * 1000:.0f} ms", fontsize=8)
            fig.suptitle(title or "Searchlight RSA", fontsize=9)
            return fig
        except (ImportError, RuntimeError, ValueError):
            pass
    fig, ax = plt.subplots(figsize=(7, 0.12 * R.shape[0] + 1.8), dpi=110)
    ax.imshow(R, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, origin="lower",
              extent=(t[0] * 1000, t[-1] * 1000, -0.5, R.shape[0] - 0.5))
    for lat in latencies:
        ax.axvline(lat * 1000, color="k", lw=0.8, ls="--")
    if ch_names is not None and len(ch_names) <= 40:
        ax.set_yticks(range(len(ch_names)), ch_names, fontsize=6)
    ax.set_xlabel("time (ms)")
    ax.set_title(title or "Searchlight RSA by channel (dashed: chosen latencies)", fontsize=9)
    fig.tight_layout()
    return fig


def section_temporal(pngs: list[Path], summary: dict, title: str, figure, table) -> str:
    """The report section of one temporal-RSA step (``figure``/``table``: html helpers)."""
    from alignjax.app.report.html import _png

    rows = []
    for i, layer in enumerate(summary["layers"]):
        spans = summary.get("significant_spans", {}).get(layer) or []
        rows.append({"layer": layer,
                     "peak r (group)": summary["peak_r"][i],
                     "peak latency (ms)": 1000 * summary["peak_latency"][i],
                     "95% CI (ms)": "[{:.0f}, {:.0f}]".format(*(1000 * np.asarray(
                         summary["peak_latency_ci"])[:, i])),
                     "FWE-significant spans (ms)": ", ".join(
                         f"{1000 * a:.0f}-{1000 * b:.0f}" for a, b in spans) or "none"})
    rfx = summary.get("random_effects") or {}
    rfx_txt = (f"; random effects over subjects: {rfx.get('test')}, "
               f"{rfx.get('n_significant_clusters')} cluster(s) with p < 0.05"
               if rfx else "")
    figs = "".join(figure(_png(p), p.stem) for p in pngs)
    return (f"<h3>{title}</h3><p class=meta>{summary.get('n_subjects')} subjects, "
            f"{summary.get('n_stimuli')} stimuli, window {summary.get('window')} samples, "
            f"{summary.get('n_perm')} stimulus-label permutations, "
            f"{html.escape(str(summary.get('correction')))} FWE over layers x time"
            f"{html.escape(rfx_txt)}</p><div class=grid>{figs}</div>"
            + table(rows, list(rows[0]) if rows else ["layer"]))
