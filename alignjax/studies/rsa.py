"""RSA study: model-layer RDMs vs per-subject brain RDMs, with permutation statistics."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .._validation import StimulusMismatchError
from ..rdm import rdm
from ..rsa import noise_ceiling, rsa_permutation_test
from ..store import load_layers, load_responses


def layer_rdms(layer_set, *, metric: str, progress: bool = True) -> np.ndarray:
    """Condensed RDM per layer -> (n_layers, n_pairs); time-resolved layers are flattened."""
    from tqdm.auto import tqdm

    out = []
    for name, X in tqdm(list(zip(layer_set.names, layer_set.arrays)), desc="layer RDMs",
                        unit="layer", disable=not progress):
        X = np.asarray(X, dtype=np.float32)
        X = X.reshape(X.shape[0], -1)
        out.append(np.asarray(rdm(X, metric=metric, stimulus_ids=layer_set.stimulus_ids)))
    return np.stack(out)


def run_rsa(features, brain, out: str | os.PathLike, *, method: str = "spearman",
            metric: str = "correlation", brain_metric: str = "correlation", n_perm: int = 10_000,
            seed: int = 0, alternative: str = "greater", layers: Sequence[str] | None = None,
            progress: bool = True) -> dict:
    """Run RSA between every layer of ``features`` and every subject of ``brain``.

    Writes ``rsa.csv`` (layer, subject, r, p, p_fwe, noise ceiling; subject ``group`` is
    the RDM averaged over subjects), ``rsa.json`` (everything, with settings and timing) and
    ``rsa.png`` (RSA per layer with the noise-ceiling band; FWE-significant layers marked).
    Stimuli are matched by id; every feature stimulus must be present in ``brain``.
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ls = load_layers(features, layers=layers)
    if ls.stimulus_ids is None:
        raise StimulusMismatchError(
            f"{features}: the features carry no stimulus ids, so they cannot be matched to the "
            "brain data; use a feature store, or put a stimulus_ids.txt (one id per line) next "
            "to the .npy files"
        )
    resp = load_responses(brain).aligned_to(ls.stimulus_ids, what=f"the features ({features})")
    subjects = list(resp.subjects)
    model = layer_rdms(ls, metric=metric, progress=progress)
    sub = np.stack([np.asarray(rdm(resp.subjects[s], metric=brain_metric,
                                   stimulus_ids=resp.stimulus_ids)) for s in subjects])
    multi = len(subjects) > 1
    kw = dict(method=method, n_perm=n_perm, seed=seed, alternative=alternative)
    # FWE over the layers x subjects family; separately over layers for the group RDM
    indiv = rsa_permutation_test(model, sub, **kw)
    grp = rsa_permutation_test(model, sub.mean(0, keepdims=True), **kw) if multi else indiv
    nc = noise_ceiling(sub, method=method) if multi else None
    names = subjects + (["group"] if multi else [])
    rows = []
    for li, layer in enumerate(ls.names):
        for si, sname in enumerate(names):
            src, col = (grp, 0) if sname == "group" else (indiv, si)
            rows.append({
                "layer": layer, "subject": sname,
                "r": float(np.asarray(src.r)[li, col]),
                "p": float(np.asarray(src.p)[li, col]),
                "p_fwe": float(np.asarray(src.p_fwe)[li, col]),
                "noise_ceiling_lower": float(nc.lower) if multi else None,
                "noise_ceiling_upper": float(nc.upper) if multi else None,
            })
    group_r = np.asarray(grp.r)[:, 0] if multi else np.asarray(indiv.r)[:, 0]
    with open(out / "rsa.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    summary = {
        "analysis": "rsa", "features": str(features), "brain": str(brain),
        "method": method, "metric": metric, "brain_metric": brain_metric, "n_perm": indiv.n_perm,
        "exact": indiv.exact, "seed": seed, "alternative": alternative,
        "n_stimuli": len(ls.stimulus_ids), "layers": ls.names, "subjects": subjects,
        "noise_ceiling": {"lower": float(nc.lower), "upper": float(nc.upper)} if multi else None,
        "best_layer_group": ls.names[int(np.argmax(group_r))],
        "rows": rows, "seconds": time.perf_counter() - t0,
    }
    with open(out / "rsa.json", "w") as fh:
        json.dump(summary, fh, indent=1)
    from ..report.rsa import plot_rsa_layers

    fig = plot_rsa_layers(
        ls.names, np.asarray(indiv.r),
        group_p_fwe=np.asarray(grp.p_fwe)[:, 0],
        noise_ceiling=(float(nc.lower), float(nc.upper)) if multi else None,
        title=f"RSA ({method}) of {Path(str(features)).name} with {Path(str(brain)).name}",
        ylabel=f"RSA ({method})")
    fig.savefig(out / "rsa.png")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return summary
