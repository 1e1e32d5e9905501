"""Spatial study: every spatial factor probed in every layer of every model, and the
sensitivity of each layer to one-factor perturbations when perturbation sets exist."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from alignjax.errors import AlignjaxInputError, StimulusMismatchError, match_ids

__all__ = ["run_spatial", "DEFAULT_ALPHAS", "DEFAULT_CS"]

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-2, 6, 9))
DEFAULT_CS = tuple(float(c) for c in np.logspace(-4, 4, 9))


def _stores(features) -> dict:
    """Model name -> store path (a mapping, one path, or several: named by folder)."""
    if isinstance(features, Mapping):
        return dict(features)
    if isinstance(features, (str, os.PathLike)):
        features = [features]
    names = [Path(f).name or str(f) for f in features]
    if len(set(names)) != len(names):
        names = [f"{i}:{n}" for i, n in enumerate(names)]
    return dict(zip(names, features))


def _read_labels(labels):
    import pandas as pd

    if not Path(labels).is_file():
        raise AlignjaxInputError(f"labels file {labels} does not exist")
    t = pd.read_csv(labels, keep_default_na=False, dtype=str)
    if "id" not in t.columns:
        raise AlignjaxInputError(f"{labels} has no 'id' column to match the store's stimulus ids")
    return t


def _main_rows(ls, table, labels):
    """Layers restricted to the design scenes (``set == main``) and their label rows."""
    order = match_ids(ls.stimulus_ids, list(table["id"]), what="the features",
                      other_what=str(labels))
    t = table.iloc[order].reset_index(drop=True)
    main = (t["set"] == "main").to_numpy() if "set" in t.columns else np.ones(len(t), bool)
    if not main.any():
        raise StimulusMismatchError(f"no design scenes (set == main) in {labels}")
    arrays = {n: np.asarray(a)[main] for n, a in zip(ls.names, ls.arrays)}
    return arrays, t[main].drop(columns=["id"]).reset_index(drop=True), t


def run_spatial(features, labels, out: str | os.PathLike, *, pairs=None,
                factors: Sequence[str] | None = None, folds: int = 5, inner_folds: int = 3,
                alphas: Sequence[float] = DEFAULT_ALPHAS, Cs: Sequence[float] = DEFAULT_CS,
                n_boot: int = 1000, n_perm: int = 0, layers: Sequence[str] | None = None,
                seed: int = 0, progress: bool = True, log=print) -> dict:
    """Probe every spatial factor in every layer of each store; sensitivity when pairs exist.

    ``features``: one store, several (named by folder) or a mapping name -> store.
    ``labels``: ``labels.csv`` of ``alignjax synth-spatial`` (matched by ``id``); only the
    design scenes (``set == main``) are probed. ``pairs``: the perturbation pairs (default
    ``pairs.csv`` beside the labels, when present). Writes ``spatial.csv`` (one row per
    model, layer, factor and metric), ``spatial.json``, ``spatial_<model>.png``,
    ``spatial_summary.png`` and, with pairs, ``sensitivity.csv``,
    ``sensitivity_dose.csv``, ``sensitivity_<model>.png``. Returns the summary.
    """
    import pandas as pd

    from alignjax.io import load_layers
    from alignjax.spatial import ROOM_FACTORS, SOURCE_FACTORS, sensitivity, spatial_probe
    from alignjax.app.report.spatial import (best_skills, plot_factor_curves, plot_sensitivity,
                                             plot_source_room)

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = _read_labels(labels)
    if pairs is None and (Path(labels).parent / "pairs.csv").is_file():
        pairs = Path(labels).parent / "pairs.csv"
    frames, sens, doses, mirrors, skills, per_model = [], [], [], [], {}, {}
    for model, store in _stores(features).items():
        ls = load_layers(store, layers=layers)
        if ls.stimulus_ids is None:
            raise StimulusMismatchError(f"{store} carries no stimulus ids; use a feature store")
        arrays, lab, full = _main_rows(ls, table, labels)
        log(f"{model}: probing {len(arrays)} layers x {len(lab)} scenes")
        res = spatial_probe(arrays, lab, factors=factors, folds=folds, inner_folds=inner_folds,
                            alphas=alphas, Cs=Cs, n_boot=n_boot, n_perm=n_perm, seed=seed,
                            progress=progress)
        rows = res.rows
        frames.append(pd.DataFrame(rows).assign(model=model))
        plot_factor_curves(rows, title=model, path=out / f"spatial_{_safe(model)}.png")
        skills[model] = best_skills(rows)
        per_model[model] = {"factors": res.factors, "layers": res.layers,
                            "n_scenes": int(len(lab)), "best_skill": skills[model],
                            "notes": dict(res.notes)}
        if pairs is not None:
            az = {i: float(a) for i, a in zip(full["id"], full["azimuth"])} \
                if "azimuth" in full.columns else None
            s = sensitivity(dict(zip(ls.names, ls.arrays)), pairs, azimuths=az, n_boot=n_boot,
                            seed=seed, stimulus_ids=ls.stimulus_ids)
            sens.append(s.to_frame().assign(model=model))
            doses.append(s.dose_frame().assign(model=model))
            mirrors.append(s.mirror_frame().assign(model=model))
            plot_sensitivity(s.rows, s.dose, title=model,
                             path=out / f"sensitivity_{_safe(model)}.png")
            per_model[model]["mirror_asymmetry"] = (
                float(s.mirror_frame()["asymmetry"].median()) if s.mirror else None)
    frame = pd.concat(frames, ignore_index=True)
    frame = frame[["model"] + [c for c in frame.columns if c != "model"]]
    frame.to_csv(out / "spatial.csv", index=False)
    plot_source_room(skills, source=SOURCE_FACTORS, room=ROOM_FACTORS,
                     path=out / "spatial_summary.png")
    if sens:
        pd.concat(sens, ignore_index=True).to_csv(out / "sensitivity.csv", index=False)
        pd.concat(doses, ignore_index=True).to_csv(out / "sensitivity_dose.csv", index=False)
        pd.concat(mirrors, ignore_index=True).to_csv(out / "sensitivity_mirror.csv", index=False)
    summary = {"analysis": "spatial", "labels": str(labels),
               "pairs": None if pairs is None else str(pairs), "models": per_model,
               "folds": folds, "inner_folds": inner_folds, "n_boot": n_boot, "n_perm": n_perm,
               "seed": seed, "rows": json.loads(frame.to_json(orient="records")),
               "sensitivity": (json.loads(pd.concat(sens).to_json(orient="records"))
                               if sens else None),
               "conventions": "azimuth degrees, 0 = front, +90 = left (counter-clockwise from "
                              "above); elevation +90 = up",
               "seconds": time.perf_counter() - t0}
    with open(out / "spatial.json", "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1)
    return summary


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
