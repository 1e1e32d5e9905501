"""Figures of probe results: accuracy per layer with the chance line and confidence intervals."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["wilson_interval", "plot_probe_accuracy"]


def wilson_interval(n_correct, n_total, *, level: float = 0.95):
    """Wilson score interval of a proportion, elementwise -> ``(low, high)``."""
    from scipy.stats import norm

    k = np.asarray(n_correct, dtype=float)
    n = np.asarray(n_total, dtype=float)
    z = norm.ppf(0.5 + level / 2)
    phat = k / n
    denom = 1 + z**2 / n
    centre = (phat + z**2 / (2 * n)) / denom
    half = z * np.sqrt(phat * (1 - phat) / n + z**2 / (4 * n**2)) / denom
    # clip rounding at the ends (the interval always holds the observed proportion)
    return (np.clip(np.minimum(centre - half, phat), 0.0, 1.0),
            np.clip(np.maximum(centre + half, phat), 0.0, 1.0))


def plot_probe_accuracy(layers: Sequence[str], accuracy, *, ci_low=None, ci_high=None,
                        chance: float | None = None, extra: dict | None = None,
                        title: str | None = None, ylabel: str = "test accuracy", path=None):
    """Accuracy per layer with a shaded CI band and a dashed chance line.

    Parameters
    ----------
    layers : sequence of str (n_layers,)
    accuracy : array (n_layers,)
    ci_low, ci_high : arrays (n_layers,), optional
    chance : float, optional
        Drawn as a horizontal dashed line.
    extra : dict label -> array (n_layers,), optional
        More curves on the same axes (e.g. the no-transfer baseline).
    path : str or Path, optional
        Save the figure there (PNG, 150 dpi).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    x = np.arange(len(layers))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(layers) + 2), 3.4))
    ax.plot(x, accuracy, "o-", color="C0", label="probe")
    if ci_low is not None and ci_high is not None:
        ax.fill_between(x, ci_low, ci_high, color="C0", alpha=0.25, label="95% CI")
    for i, (label, values) in enumerate((extra or {}).items()):
        ax.plot(x, values, "s--", color=f"C{i + 1}", label=label)
    if chance is not None:
        ax.axhline(chance, color="0.4", ls=":", label=f"chance ({chance:.2f})")
    ax.set_xticks(x)
    ax.set_xticklabels(layers, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=150)
    return fig
