"""Figures and the report section of a model-zoo study (``alignjax zoo``)."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

__all__ = ["plot_zoo_ranking", "plot_zoo_scatter", "plot_zoo_checkpoints", "write_zoo_figures",
           "zoo_section"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _panels(n: int, width: float = 4.2, height: float = 3.4):
    plt = _plt()
    cols = min(3, max(1, n))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    return fig, axes.flat


def plot_zoo_ranking(ranking: list[dict], path=None):
    """Models sorted by score per measure, with the CI (t over subjects; bootstrap over stimuli)."""
    keys = list(dict.fromkeys((r["measure"], r["over"]) for r in ranking))
    fig, axes = _panels(len(keys), height=max(2.5, 0.3 * len({r["model"] for r in ranking}) + 1.2))
    for ax, (measure, over) in zip(axes, keys):
        rows = sorted((r for r in ranking if (r["measure"], r["over"]) == (measure, over)),
                      key=lambda r: r["score"])
        y = np.arange(len(rows))
        s = np.array([r["score"] for r in rows])
        lo = np.array([r["ci_low"] for r in rows])
        hi = np.array([r["ci_high"] for r in rows])
        ax.errorbar(s, y, xerr=[np.clip(s - lo, 0, None), np.clip(hi - s, 0, None)], fmt="o",
                    color="C0", capsize=2)
        ax.set_yticks(y, [r["model"] for r in rows], fontsize=7)
        method = rows[0].get("ci_method", "bootstrap") if rows else "bootstrap"
        ax.set_xlabel(f"score (95% CI, {method})")
        ax.set_title(f"{measure}: over {over}", fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_zoo_scatter(summary: dict, path=None):
    """Alignment against each external score across models, points labelled by model."""
    corr = summary["correlation"]
    keys = list(dict.fromkeys((r["measure"], r["score"]) for r in corr))
    fig, axes = _panels(len(keys))
    for ax, (measure, score) in zip(axes, keys):
        svals = summary["scores"][score]
        pts = [(m, summary["values"][f"{measure}|{m}"], svals[m]) for m in summary["models"]
               if f"{measure}|{m}" in summary["values"] and m in svals]
        x = np.array([p[2] for p in pts])
        y = np.array([p[1] for p in pts])
        ax.scatter(x, y, s=18, color="C0")
        for m, yy, xx in pts:
            ax.annotate(m, (xx, yy), fontsize=6, xytext=(2, 2), textcoords="offset points")
        if len(pts) >= 2 and np.ptp(x) > 0:
            b, a = np.polyfit(x, y, 1)
            xs = np.linspace(x.min(), x.max(), 10)
            ax.plot(xs, a + b * xs, color="0.5", lw=1)
        lines = [f"{r['method']} r = {r['r']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}], "
                 f"p = {r['p']:.3g}" for r in corr
                 if (r["measure"], r["score"]) == (measure, score)]
        ax.set_title("\n".join(lines), fontsize=7)
        ax.set_xlabel(score)
        ax.set_ylabel(f"{measure} (alignment)")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_zoo_checkpoints(checkpoints: list[dict], path=None):
    """Alignment against training step, one line per model family, one panel per measure."""
    measures = list(dict.fromkeys(r["measure"] for r in checkpoints))
    fig, axes = _panels(len(measures))
    for ax, measure in zip(axes, measures):
        rows = [r for r in checkpoints if r["measure"] == measure]
        for family in sorted({r["family"] for r in rows}):
            fam = sorted((r for r in rows if r["family"] == family), key=lambda r: r["step"])
            ax.plot([r["step"] for r in fam], [r["value"] for r in fam], "o-", ms=3,
                    label=family)
        ax.set_xlabel("training step")
        ax.set_ylabel(measure)
        ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def write_zoo_figures(summary: dict, out) -> list[Path]:
    """``zoo_ranking.png``, ``zoo_scatter.png`` and ``zoo_checkpoints.png`` (those with data)."""
    plt = _plt()
    out = Path(out)
    written = []
    for name, data, fn in (("zoo_ranking.png", summary["ranking"], plot_zoo_ranking),
                           ("zoo_scatter.png", summary["correlation"],
                            lambda _, path: plot_zoo_scatter(summary, path)),
                           ("zoo_checkpoints.png", summary["checkpoints"], plot_zoo_checkpoints)):
        if data:
            plt.close(fn(data, out / name))
            written.append(out / name)
    return written


def zoo_section(pngs: list[Path], summary: dict, title: str, table) -> str:
    """Report section of one zoo step: figures, correlation table and top of each ranking."""
    from alignjax.app.report.html import _figures

    corr = table(summary.get("correlation", []),
                 ["measure", "score", "method", "r", "ci_low", "ci_high", "p", "n_models"])
    # frac_boot_best was called p_best in older zoo.json files
    best = [{**r, "frac_boot_best": r.get("frac_boot_best", r.get("p_best"))}
            for r in summary.get("ranking", []) if r["rank"] <= 3]
    rank = table(best, ["measure", "over", "model", "score", "ci_low", "ci_high", "rank",
                        "rank_ci_low", "rank_ci_high", "frac_boot_best"])
    pw = [r for r in summary.get("pairwise", []) if r["p_fwe"] < 0.05]
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in summary.get("notes", []))
    return (f"<h3>{title}</h3><p class=meta>{len(summary.get('models', []))} models, "
            f"measures {html.escape(', '.join(summary.get('measures', [])))}; "
            f"{summary.get('n_boot')} bootstrap samples, {summary.get('n_perm')} permutations; "
            f"{len(pw)} pairwise differences with p_FWE &lt; 0.05. frac_boot_best is the "
            "fraction of bootstrap samples in which a model ranks first, not the probability "
            "that it is best (formerly p_best)</p>"
            f"<div class=grid>{_figures(pngs)}</div>"
            + (f"<h4>Alignment vs scores, across models</h4>{corr}" if summary.get("correlation") else "")
            + f"<h4>Top 3 per measure</h4>{rank}" + (f"<ul>{notes}</ul>" if notes else ""))
