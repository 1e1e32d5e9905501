"""RSA studies: model-layer RDMs vs brain RDMs (per subject) or behavioural RDMs."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from alignjax.errors import StimulusMismatchError, StoreError, check_finite
from alignjax.rdm import rdm, rdm_from_distributions
from alignjax.rsa import noise_ceiling, partial_compare, rsa_bootstrap, rsa_permutation_test
from alignjax.io import MANIFEST, FeatureStore, load_layers, load_responses

__all__ = ["run_rsa", "run_behaviour_rsa", "layer_rdms"]


def layer_rdms(layer_set, *, metric: str, progress: bool = True) -> np.ndarray:
    """Condensed RDM per layer -> (n_layers, n_pairs); time-resolved layers are flattened."""
    from tqdm.auto import tqdm

    out = []
    for name, X in zip(layer_set.names, tqdm(layer_set.arrays, desc="layer RDMs", unit="layer",
                                              disable=not progress, leave=False)):
        X = np.asarray(X, dtype=np.float32)
        check_finite(X, f"layer {name!r} of the features", labels=layer_set.stimulus_ids,
                     axis_name="stimulus")
        out.append(np.asarray(rdm(X.reshape(X.shape[0], -1), metric=metric,
                                  stimulus_ids=layer_set.stimulus_ids)))
    return np.stack(out)


def _layers_with_ids(features, layers):
    ls = load_layers(features, layers=layers)
    if ls.stimulus_ids is None:
        raise StimulusMismatchError(
            f"{features}: the features carry no stimulus ids, so they cannot be matched to the "
            "brain or behaviour data; use a feature store, or put a stimulus_ids.txt (one id per "
            "line) next to the .npy files"
        )
    _refuse_ragged_frames(features, ls.names)
    return ls


def _refuse_ragged_frames(features, names) -> None:
    """Refuse time-resolved layers whose stimuli have different numbers of valid frames.

    Their rows are zero-padded at the end to a common length; flattened into an RDM, the
    padding of one stimulus would be compared with the activations of another.
    """
    if isinstance(features, FeatureStore):
        store = features
    elif isinstance(features, (str, os.PathLike)) and (Path(features) / MANIFEST).is_file():
        store = FeatureStore(features)
    else:
        return
    keep = ~np.isin(store.stimulus_ids, list(store.skipped))
    for name in names:
        if len(store.shape(name)) != 3 or "n_valid_frames" not in store.manifest["layers"][name]:
            continue
        n = store.n_valid_frames(name)[keep]
        if n.size and n.min() != n.max():
            raise StoreError(
                f"{features}: layer {name!r} holds frames zero-padded at the end to "
                f"{store.shape(name)[1]} (valid frames per stimulus from {n.min()} to {n.max()}); "
                "an RDM of its flattened frames would compare padding with activations. Extract "
                "with --duration (equal-length clips) or a --pooling other than 'none'"
            )


def _write_table(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path)
    plt.close(fig)


def _control_rdm(control, control_layer, ids, metric):
    cls = _layers_with_ids(control, [control_layer] if control_layer else None)
    from alignjax.errors import match_ids

    idx = match_ids(ids, cls.stimulus_ids, what="the features", other_what=f"the control {control}")
    X = np.asarray(cls.arrays[0], dtype=np.float32)[idx]
    check_finite(X, f"layer {cls.names[0]!r} of the control {control}", labels=list(ids),
                 axis_name="stimulus")
    return np.asarray(rdm(X.reshape(X.shape[0], -1), metric=metric)), cls.names[0]


def _brain_rdm(resp, subject: str, brain, metric: str) -> np.ndarray:
    """Condensed RDM of one subject's responses, refusing NaN/inf by subject and stimulus id."""
    check_finite(np.asarray(resp.subjects[subject]),
                 f"brain responses of subject {subject!r} ({brain})",
                 labels=resp.stimulus_ids, axis_name="stimulus")
    return np.asarray(rdm(resp.subjects[subject], metric=metric, stimulus_ids=resp.stimulus_ids))


def run_rsa(features, brain, out: str | os.PathLike, *, method: str = "spearman",
            metric: str = "correlation", brain_metric: str = "correlation", n_perm: int = 10_000,
            seed: int = 0, alternative: str = "greater", layers: Sequence[str] | None = None,
            n_boot: int = 0, control=None, control_layer: str | None = None,
            progress: bool = True, brain_options: Mapping | None = None) -> dict:
    """Run RSA between every layer of ``features`` and every subject of ``brain``.

    Writes ``rsa.csv`` (layer, subject, r, p, p_fwe, noise ceiling; subject ``group`` is
    the RDM averaged over subjects), ``rsa.json`` (everything, with settings and timing),
    ``rdms/`` (``model.npy``: the best group layer's condensed RDM, ``subjects.npy``: each
    subject's, ``stimulus_ids.txt``) and
    ``rsa.png`` (RSA per layer with the noise-ceiling band; layers whose group-level
    ``p_fwe < 0.05`` marked). Stimuli are matched by id; every feature stimulus must be
    present in ``brain``.

    ``n_boot > 0`` adds stimulus-bootstrap 95% CIs for the group RSA per layer; ``control``
    (a store or layer directory; ``control_layer`` picks its layer, default the first)
    adds the group RSA after regressing that RDM out of each layer's RDM
    (:func:`alignjax.partial_compare`), e.g. to discount spectrogram similarity.

    ``brain_options`` go to :func:`alignjax.load_responses` (for NIfTI/GIfTI: ``mask``,
    ``stimulus_ids``, ``nan_voxels``); a mask then defines the voxels of an ROI RDM.
    """
    t0 = time.perf_counter()
    out = Path(out)
    ls = _layers_with_ids(features, layers)
    resp = load_responses(brain, **dict(brain_options or {})).aligned_to(
        ls.stimulus_ids, what=f"the features ({features})")
    out.mkdir(parents=True, exist_ok=True)  # after the inputs load: bad input writes nothing
    subjects = list(resp.subjects)
    model = layer_rdms(ls, metric=metric, progress=progress)
    sub = np.stack([_brain_rdm(resp, s, brain, brain_metric) for s in subjects])
    multi = len(subjects) > 1
    group = sub.mean(0, keepdims=True)
    kw = dict(method=method, n_perm=n_perm, seed=seed, alternative=alternative)
    # FWE over the layers x subjects family; separately over layers for the group RDM
    indiv = rsa_permutation_test(model, sub, **kw)
    grp = rsa_permutation_test(model, group, **kw) if multi else indiv
    nc = noise_ceiling(sub, method=method) if multi else None
    boot_ci = None
    if n_boot:
        boot_ci = np.asarray(rsa_bootstrap(model, group, method=method, n_boot=n_boot,
                                           seed=seed).ci)[:, :, 0]
    partial, control_name = None, None
    if control is not None:
        crdm, control_name = _control_rdm(control, control_layer, ls.stimulus_ids, metric)
        pm = "spearman" if method in ("spearman", "rho_a") else "pearson"
        partial = np.asarray(partial_compare(model, group, crdm, method=pm))[:, 0]
    names = subjects + (["group"] if multi else [])
    rows = []
    for li, layer in enumerate(ls.names):
        for si, sname in enumerate(names):
            src, col = (grp, 0) if sname == "group" else (indiv, si)
            is_group = sname == "group" or not multi
            rows.append({
                "layer": layer, "subject": sname,
                "r": float(np.asarray(src.r)[li, col]),
                "p": float(np.asarray(src.p)[li, col]),
                "p_fwe": float(np.asarray(src.p_fwe)[li, col]),
                "ci_low": float(boot_ci[0, li]) if boot_ci is not None and is_group else None,
                "ci_high": float(boot_ci[1, li]) if boot_ci is not None and is_group else None,
                "r_partial": float(partial[li]) if partial is not None and is_group else None,
                "noise_ceiling_lower": None, "noise_ceiling_upper": None,
            })
        if multi:  # the ceiling bounds the mean of per-subject correlations, nothing else
            rows.append({"layer": layer, "subject": "mean_of_subjects",
                         "r": float(np.asarray(indiv.r)[li].mean()), "p": None, "p_fwe": None,
                         "ci_low": None, "ci_high": None, "r_partial": None,
                         "noise_ceiling_lower": float(nc.lower),
                         "noise_ceiling_upper": float(nc.upper)})
    _write_table(out / "rsa.csv", rows)
    group_r = np.asarray(grp.r)[:, 0]
    summary = {
        "analysis": "rsa", "features": str(features), "brain": str(brain),
        "brain_options": {k: str(v) for k, v in (brain_options or {}).items()},
        "method": method, "metric": metric, "brain_metric": brain_metric, "n_perm": indiv.n_perm,
        "exact": indiv.exact, "seed": seed, "alternative": alternative, "n_boot": n_boot,
        "control": None if control is None else f"{control}:{control_name}",
        "n_stimuli": len(ls.stimulus_ids), "layers": ls.names, "subjects": subjects,
        "noise_ceiling": {"lower": float(nc.lower), "upper": float(nc.upper)} if multi else None,
        "group_r": group_r.tolist(), "group_p_fwe": np.asarray(grp.p_fwe)[:, 0].tolist(),
        "group_test": "fixed-effects test over stimuli: the group-average RDM, stimulus labels "
                      "permuted" if multi else None,
        "mean_subject_r": np.asarray(indiv.r).mean(1).tolist() if multi else None,
        "noise_ceiling_bounds": "mean_subject_r" if multi else None,
        "best_layer_group": ls.names[int(np.argmax(group_r))],
        "rows": rows, "seconds": time.perf_counter() - t0,
    }
    with open(out / "rsa.json", "w") as fh:
        json.dump(summary, fh, indent=1)
    # the best layer's RDM and the subjects' RDMs: what a model-zoo analysis bootstraps
    # over stimuli (alignjax zoo)
    # (.npy and text, not .npz: the bytes must not depend on when they were written)
    best = int(np.argmax(group_r))
    (out / "rdms").mkdir(exist_ok=True)
    np.save(out / "rdms" / "model.npy", model[best].astype(np.float32))
    np.save(out / "rdms" / "subjects.npy", sub.astype(np.float32))
    (out / "rdms" / "stimulus_ids.txt").write_text("\n".join(ls.stimulus_ids) + "\n")
    from alignjax.app.report.rsa import plot_rsa_layers

    _save_figure(plot_rsa_layers(
        ls.names, np.asarray(indiv.r), group_p_fwe=np.asarray(grp.p_fwe)[:, 0],
        noise_ceiling=(float(nc.lower), float(nc.upper)) if multi else None,
        title=f"RSA ({method}) of {Path(str(features)).name} with {Path(str(brain)).name}",
        ylabel=f"RSA ({method})"), out / "rsa.png")
    return summary


def run_behaviour_rsa(features, counts: np.ndarray, out: str | os.PathLike, *,
                      stimulus_ids: Sequence[str] | None = None, judgement_name: str = "judgements", metric: str = "symmetric_kl",
                      method: str = "spearman", n_perm: int = 10_000, seed: int = 0,
                      layers: Sequence[str] | None = None, smoothing: float = 1e-2,
                      progress: bool = True) -> dict:
    """RSA of every layer against an RDM of human judgement distributions.

    ``counts`` (n_judged, n_categories) holds the judgements of ``stimulus_ids`` (default:
    every stimulus of the features, in their order); the layers are restricted to those
    stimuli, matched by id. Writes ``behaviour_rsa.csv``, ``behaviour_rsa.json`` and
    ``behaviour_rsa.png``.
    """
    from alignjax.errors import match_ids
    from alignjax.io import LayerSet

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ls = _layers_with_ids(features, layers)
    if stimulus_ids is not None:
        idx = match_ids(stimulus_ids, ls.stimulus_ids, what=f"the {judgement_name} judgements",
                        other_what=f"the features ({features})")
        ls = LayerSet(ls.names, [np.asarray(a)[idx] for a in ls.arrays], list(stimulus_ids))
    target = np.asarray(rdm_from_distributions(counts, metric=metric, smoothing=smoothing))
    model = layer_rdms(ls, metric="correlation", progress=progress)
    res = rsa_permutation_test(model, target, method=method, n_perm=n_perm, seed=seed)
    rows = [{"layer": layer, "judgements": judgement_name, "r": float(res.r[li, 0]),
             "p": float(res.p[li, 0]), "p_fwe": float(res.p_fwe[li, 0])}
            for li, layer in enumerate(ls.names)]
    _write_table(out / "behaviour_rsa.csv", rows)
    r = np.asarray(res.r)[:, 0]
    summary = {"analysis": "behaviour_rsa", "features": str(features),
               "judgements": judgement_name, "n_stimuli": len(ls.stimulus_ids), "metric": metric, "method": method,
               "n_perm": res.n_perm, "seed": seed, "layers": ls.names, "group_r": r.tolist(),
               "group_p_fwe": np.asarray(res.p_fwe)[:, 0].tolist(),
               "best_layer_group": ls.names[int(np.argmax(r))], "rows": rows,
               "seconds": time.perf_counter() - t0}
    with open(out / "behaviour_rsa.json", "w") as fh:
        json.dump(summary, fh, indent=1)
    from alignjax.app.report.rsa import plot_rsa_layers

    _save_figure(plot_rsa_layers(ls.names, r[:, None], group_p_fwe=np.asarray(res.p_fwe)[:, 0],
                                 title=f"RSA with {judgement_name} judgements ({metric})",
                                 ylabel=f"RSA ({method})"), out / "behaviour_rsa.png")
    return summary
