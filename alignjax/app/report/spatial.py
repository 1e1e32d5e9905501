"""Figures of spatial probing: per-factor decoding curves across layers, a source-vs-room
summary over models, and sensitivity bars and dose-response curves."""

from __future__ import annotations

import numpy as np

__all__ = ["skill", "plot_factor_curves", "plot_source_room", "plot_sensitivity"]

_HIGHER = {"acc_20deg", "accuracy", "balanced_accuracy", "left_right_acc"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def skill(metric: str, value: float, chance: float) -> float:
    """Chance-normalised skill: 0 at chance, 1 perfect (errors: 1 - value / chance;
    accuracies: (value - chance) / (1 - chance))."""
    if metric in _HIGHER:
        return (value - chance) / (1 - chance) if chance < 1 else np.nan
    return 1 - value / chance if chance > 0 else np.nan


def _primary(rows):
    """The first metric of each factor, in order of appearance."""
    out = {}
    for r in rows:
        out.setdefault(r["factor"], r["metric"])
    return out


def plot_factor_curves(rows: list[dict], *, title: str = "", path=None):
    """One panel per factor: its primary metric across layers, 95% CI band, chance line."""
    plt = _plt()
    prim = _primary(rows)
    k = len(prim)
    cols = min(4, k)
    nrow = -(-k // cols)
    fig, axes = plt.subplots(nrow, cols, figsize=(3.3 * cols, 2.7 * nrow), squeeze=False)
    for ax, (factor, metric) in zip(axes.ravel(), prim.items()):
        sel = [r for r in rows if r["factor"] == factor and r["metric"] == metric]
        x = np.arange(len(sel))
        y = np.array([r["value"] for r in sel], float)
        ax.plot(x, y, "o-", ms=3)
        lo = np.array([r["ci_low"] for r in sel], float)
        hi = np.array([r["ci_high"] for r in sel], float)
        if np.isfinite(lo).any():
            ax.fill_between(x, lo, hi, alpha=0.25)
        ax.axhline(sel[0]["chance"], color="0.4", ls=":", label="chance")
        sig = [i for i, r in enumerate(sel) if r.get("p_fwe") is not None
               and np.isfinite(r["p_fwe"]) and r["p_fwe"] < 0.05]
        if sig:
            ax.plot(x[sig], y[sig], "*", color="C3", ms=8, label="p_FWE < .05")
        ax.set_title(f"{factor}: {metric}", fontsize=8)
        ax.set_xticks(x)
        ax.set_xticklabels([r["layer"] for r in sel], rotation=70, ha="right", fontsize=6)
        ax.legend(fontsize=6, frameon=False)
    for ax in axes.ravel()[k:]:
        ax.axis("off")
    return _finish(fig, title, path)


def _finish(fig, title, path):
    """Title, layout and (when ``path`` is given) the PNG of a figure; the figure."""
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=130)
    return fig


def best_skills(rows: list[dict]) -> dict:
    """Best-layer chance-normalised skill of each factor's primary metric."""
    out = {}
    for factor, metric in _primary(rows).items():
        sel = [r for r in rows if r["factor"] == factor and r["metric"] == metric]
        out[factor] = float(np.nanmax([skill(metric, r["value"], r["chance"]) for r in sel]))
    return out


def plot_source_room(skills: dict[str, dict], *, source=(), room=(), path=None):
    """Grouped bars: best-layer skill per factor and model, source factors then room factors."""
    plt = _plt()
    factors = [f for f in list(source) + list(room)
               if any(f in s for s in skills.values())]
    x = np.arange(len(factors))
    width = 0.8 / max(1, len(skills))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(factors) + 2), 3.4))
    for i, (model, s) in enumerate(skills.items()):
        ax.bar(x + i * width, [s.get(f, np.nan) for f in factors], width, label=model)
    n_src = sum(f in source for f in factors)
    if 0 < n_src < len(factors):
        ax.axvline(n_src - 0.5 + 0.4 - width / 2, color="0.5", ls="--")
        ax.text(0.02, 0.95, "source factors", transform=ax.transAxes, fontsize=8, va="top")
        ax.text(0.98, 0.95, "room factors", transform=ax.transAxes, fontsize=8, va="top",
                ha="right")
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xticks(x + 0.4 - width / 2)
    ax.set_xticklabels(factors, fontsize=8)
    ax.set_ylabel("best-layer skill (0 = chance, 1 = perfect)")
    # beside the axes: bars below zero (room factors at chance) would run under it
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=130)
    return fig


def plot_sensitivity(rows: list[dict], dose: list[dict], *, title: str = "", path=None):
    """Left: S_f per factor and layer with the noise floor; right: dose-response curves of
    the last layer."""
    plt = _plt()
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    factors = list(dict.fromkeys(r["factor"] for r in rows))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4))
    x = np.arange(len(layers))
    for i, f in enumerate(factors):
        sel = [r for r in rows if r["factor"] == f]
        a1.plot(x, [r["S"] for r in sel], "o-", ms=3, color=f"C{i}", label=f)
        lo = np.array([r["ci_low"] for r in sel], float)
        if np.isfinite(lo).any():
            a1.fill_between(x, lo, [r["ci_high"] for r in sel], color=f"C{i}", alpha=0.15)
    floor = [next(r["noise_floor"] for r in rows if r["layer"] == layer) for layer in layers]
    a1.plot(x, floor, "k--", label="noise floor")
    a1.set_xticks(x)
    a1.set_xticklabels(layers, rotation=70, ha="right", fontsize=6)
    a1.set_ylabel("S_f (displacement / random-pair distance)")
    a1.legend(fontsize=6, frameon=False)
    last = layers[-1]
    for i, f in enumerate(factors):
        d = sorted((r["delta"], r["displacement"]) for r in dose
                   if r["layer"] == last and r["factor"] == f)
        if d and d[-1][0] > 0:
            dx = np.array([v[0] for v in d]) / d[-1][0]
            a2.plot(dx, [v[1] for v in d], "o-", ms=3, color=f"C{i}", label=f)
    a2.set_xlabel("|delta factor| (fraction of the sweep's largest change)")
    a2.set_ylabel(f"displacement ({last})")
    a2.legend(fontsize=6, frameon=False)
    return _finish(fig, title, path)
