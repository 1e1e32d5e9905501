"""Brain-map and ROI figures of encoding results on NIfTI data, and their report section.

R² and best-layer maps are drawn with nilearn's stat-map and glass-brain views when
nilearn is installed (the ``[fmri]`` extra), else as a plain axial slice montage with
matplotlib (:func:`plot_brain_montage`). ROI summaries (:func:`plot_roi_summary`) show
the median R² per region (one dot per subject) and which layer wins in each region.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["plot_brain_montage", "plot_brain_nilearn", "plot_roi_summary",
           "write_brain_figures", "brain_section"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _discrete(values: np.ndarray, n: int):
    """Best-layer volume as floats with NaN outside the targets, and a discrete colour map."""
    plt = _plt()
    vol = np.where(values >= 0, values.astype(float), np.nan)
    cmap = plt.get_cmap("viridis", max(n, 2))  # a one-colour map breaks colour bars
    return vol, cmap


def plot_brain_montage(volume: np.ndarray, *, title: str = "", cmap="hot", vmin=None, vmax=None,
                       n_slices: int = 8, labels: Sequence[str] | None = None, path=None):
    """Axial slices through the non-empty part of a 3-D map (NaN = outside), matplotlib only.

    Parameters
    ----------
    volume : ndarray (x, y, z)
    labels : sequence of str, optional
        Names of the integer values (a categorical map such as the best layer).
    """
    plt = _plt()
    vol = np.asarray(volume, float)
    zs = np.flatnonzero(np.isfinite(vol).any(axis=(0, 1)))
    zs = zs if zs.size else np.arange(vol.shape[2])
    pick = np.unique(np.linspace(zs[0], zs[-1], min(n_slices, zs.size)).round().astype(int))
    cols = min(4, len(pick))
    rows = int(np.ceil(len(pick) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols + 1, 2.2 * rows + 0.4), squeeze=False)
    finite = vol[np.isfinite(vol)]
    lo = vmin if vmin is not None else (finite.min() if finite.size else 0)
    hi = vmax if vmax is not None else (finite.max() if finite.size else 1)
    hi = hi if hi > lo else lo + 1.0
    im = None
    for ax, z in zip(axes.flat, pick):
        im = ax.imshow(vol[:, :, z].T, origin="lower", cmap=cmap, vmin=lo, vmax=hi,
                       interpolation="nearest")
        ax.set_title(f"z = {z}", fontsize=7)
    for ax in axes.flat:
        ax.set_axis_off()
    if im is not None:
        cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
        if labels is not None:
            cb.set_ticks(np.arange(len(labels)))
            cb.set_ticklabels(labels, fontsize=6)
    fig.suptitle(title, fontsize=9)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_brain_nilearn(img, *, title: str = "", cmap="hot", vmin=None, vmax=None,
                       labels: Sequence[str] | None = None, path=None):
    """Glass-brain and axial stat-map views of a 3-D NIfTI map with nilearn."""
    import warnings

    plt = _plt()
    with warnings.catch_warnings():  # NaN outside the targets: shown as empty, as intended
        warnings.simplefilter("ignore", UserWarning)
        return _nilearn_views(img, title=title, cmap=cmap, vmin=vmin, vmax=vmax, labels=labels,
                              path=path, plt=plt)


def _nilearn_views(img, *, title, cmap, vmin, vmax, labels, path, plt):
    from nilearn import plotting

    fig, axes = plt.subplots(2, 1, figsize=(8, 5.2))
    data = np.asarray(img.dataobj, float)
    finite = data[np.isfinite(data)]
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    lo = vmin if vmin is not None else 0.0
    hi = hi if hi > lo else lo + 1.0  # a constant map (R² all 0) still gets a colour scale
    plotting.plot_glass_brain(img, axes=axes[0], figure=fig, cmap=cmap, vmin=lo, vmax=hi,
                              colorbar=True, plot_abs=False, title=title, threshold=None)
    zs = np.flatnonzero(np.isfinite(data).any(axis=(0, 1)))
    zs = zs if zs.size else np.arange(data.shape[2])
    ks = np.unique(np.linspace(zs[0], zs[-1], min(6, zs.size)).round().astype(int))
    cuts = [float((img.affine @ np.array([0, 0, k, 1]))[2]) for k in ks]
    plotting.plot_stat_map(img, bg_img=None, axes=axes[1], figure=fig, display_mode="z",
                           cut_coords=cuts, cmap=cmap, vmin=lo, vmax=hi, colorbar=True,
                           threshold=None, annotate=False, draw_cross=False)
    if labels is not None:
        fig.text(0.01, 0.01, "layers: " + ", ".join(f"{i}={n}" for i, n in enumerate(labels)),
                 fontsize=6)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _has_nilearn() -> bool:
    try:
        import nilearn.plotting  # noqa: F401
    except ImportError:
        return False
    return True


def write_brain_figures(maps: dict, layer_names: Sequence[str], out_dir, *, suffix: str = "",
                        plot=None) -> list[Path]:
    """``brain_r2{suffix}.png`` and ``brain_best_layer{suffix}.png`` from written volume maps.

    ``maps`` maps a measure to the files :func:`alignjax.io.write_maps` wrote (NIfTI only;
    surface maps are skipped). ``plot`` is :func:`plot_brain_nilearn` (default when nilearn
    is installed) or :func:`plot_brain_montage`, or any function of the same signature
    taking a nibabel image.
    """
    import nibabel as nib

    plt = _plt()
    out_dir = Path(out_dir)
    if plot is None:
        plot = plot_brain_nilearn if _has_nilearn() else plot_brain_montage
    written = []
    for measure, cmap in (("r2", "hot"), ("best_layer", None)):
        files = maps.get(measure) or []
        if len(files) != 1 or not str(files[0]).endswith((".nii", ".nii.gz")):
            continue
        img = nib.load(str(files[0]))
        data = np.asarray(img.dataobj)
        labels, vmin, vmax = None, None, None
        if measure == "best_layer":
            data, cmap = _discrete(data, len(layer_names))
            labels, vmin, vmax = list(layer_names), -0.5, len(layer_names) - 0.5
        title = {"r2": "cross-validated R²", "best_layer": "selected layer (mode over folds)"}
        target = out_dir / f"brain_{measure}{suffix}.png"
        arg = (nib.Nifti1Image(np.asarray(data, np.float32), img.affine)
               if plot is not plot_brain_montage else np.asarray(data, float))
        fig = plot(arg, title=title[measure] + (f" ({suffix.strip('_')})" if suffix else ""),
                   cmap=cmap, vmin=vmin, vmax=vmax, labels=labels, path=target)
        plt.close(fig)
        written.append(target)
    return written


def plot_roi_summary(rows: list[dict], layer_rows: list[dict], layer_names: Sequence[str],
                     path=None):
    """Median R² per region (a dot per subject, bar = mean) and the best-layer share per region."""
    plt = _plt()
    rois = list(dict.fromkeys(r["roi"] for r in rows))
    subjects = list(dict.fromkeys(r["subject"] for r in rows))
    x = np.arange(len(rois))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(max(6.0, 0.9 * len(rois) + 4), 3.4))
    med = np.full((len(subjects), len(rois)), np.nan)
    for r in rows:
        med[subjects.index(r["subject"]), rois.index(r["roi"])] = r["median_r2"]
    mean = np.array([np.nanmean(c) if np.isfinite(c).any() else np.nan for c in med.T])
    a1.bar(x, np.nan_to_num(mean), color="0.8")
    for s in range(len(subjects)):
        a1.plot(x, med[s], "o", ms=3, alpha=0.8)
    a1.set_xticks(x, rois, rotation=45, ha="right", fontsize=7)
    a1.set_ylabel("median R² over voxels")
    a1.set_title("R² per region", fontsize=9)
    share = np.zeros((len(layer_names), len(rois)))
    for r in layer_rows:
        if np.isfinite(r["fraction"]):
            share[list(layer_names).index(r["layer"]), rois.index(r["roi"])] += r["fraction"]
    share /= max(1, len(subjects))
    bottom = np.zeros(len(rois))
    cmap = plt.get_cmap("viridis", max(1, len(layer_names)))
    for li, layer in enumerate(layer_names):
        a2.bar(x, share[li], bottom=bottom, color=cmap(li), label=layer)
        bottom += share[li]
    a2.set_xticks(x, rois, rotation=45, ha="right", fontsize=7)
    a2.set_ylabel("fraction of voxels (mean over subjects)")
    a2.set_title("best layer per region", fontsize=9)
    if len(layer_names) <= 16:
        a2.legend(fontsize=6, frameon=False, bbox_to_anchor=(1, 1), loc="upper left")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def brain_section(steps: list[dict], table, figure, png) -> str:
    """Report section: brain maps and ROI summaries of every encoding step that has them.

    ``steps`` are the report's step entries (``step``, ``out``, ``files``); ``table``,
    ``figure`` and ``png`` are the report's HTML helpers.
    """
    import csv

    parts = []
    for st in steps:
        out = Path(st["out"])
        files = set(st.files)
        pngs = [p for p in sorted(files) if p.name.startswith(("brain_", "roi_summary"))
                and p.suffix == ".png"]
        roi_csv = out / "roi_summary.csv"
        if not pngs and roi_csv not in files:
            continue
        body = "".join(figure(png(p), f"{st['step']}: {p.stem}") for p in pngs)
        if roi_csv in files:
            with open(roi_csv, newline="") as fh:
                rows = list(csv.DictReader(fh))
            for r in rows:
                r["median_r2"] = float(r["median_r2"])
            body += table(rows, ["subject", "roi", "n_voxels", "n_valid", "median_r2",
                                 "mode_best_layer"])
        parts.append(f"<h3>{html.escape(st['step'])}</h3><div class=grid>{body}</div>")
    if not parts:
        return ""
    return ("<h2>Brain maps and regions</h2><p class=meta>Per-voxel results written back in "
            "the input's space (NIfTI/GIfTI beside each step's results).</p>" + "".join(parts))
