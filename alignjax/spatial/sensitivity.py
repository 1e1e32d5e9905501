"""Sensitivity of embeddings to one-factor perturbations (normalised displacement).

For a factor f and a layer, ``S_f = median ||z(x) - z(x')|| over one-factor pairs /
median ||z(a) - z(b)|| over random scene pairs``. The noise floor is the same ratio for
pairs that differ only in the background-noise seed. Bootstrap CIs resample pairs;
dose-response curves give the normalised displacement per |delta factor| (azimuth wrapped
to [0, 180]); the mirror check compares azimuth displacements at +theta and -theta.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._validation import (AlignjaxInputError, InvalidOptionError, check_layers,
                           check_positive_int)

__all__ = ["SensitivityResult", "sensitivity"]

PAIR_COLUMNS = ("a", "b", "factor", "kind")


class SensitivityResult(NamedTuple):
    """Result of :func:`sensitivity`.

    Attributes
    ----------
    rows : list of dict
        One per (layer, factor): ``layer, factor, S, ci_low, ci_high, noise_floor,
        noise_ci_low, noise_ci_high, n_pairs`` (see :meth:`to_frame`).
    dose : list of dict
        ``layer, factor, delta, displacement`` (normalised, median over pairs).
    mirror : list of dict
        ``layer, theta, left, right, asymmetry``: normalised azimuth displacement at
        +theta (left) and -theta (right) and their absolute difference.
    """

    rows: list
    dose: list
    mirror: list

    def to_frame(self):
        """pandas DataFrame of :attr:`rows`."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def dose_frame(self):
        import pandas as pd

        return pd.DataFrame(self.dose, columns=["layer", "factor", "delta", "displacement"])

    def mirror_frame(self):
        import pandas as pd

        return pd.DataFrame(self.mirror, columns=["layer", "theta", "left", "right",
                                                  "asymmetry"])


def _pairs_table(pairs):
    if isinstance(pairs, dict):
        t = {k: np.asarray(v) for k, v in pairs.items()}
    else:
        if not hasattr(pairs, "columns"):
            import pandas as pd

            pairs = pd.read_csv(pairs, keep_default_na=False, dtype=str)
        t = {str(c): np.asarray(pairs[c]) for c in pairs.columns}
    missing = [c for c in PAIR_COLUMNS if c not in t]
    if missing:
        raise InvalidOptionError(f"pairs lack column(s) {missing}; expected a, b, factor, kind "
                                 "(and delta), as alignjax synth-spatial writes to pairs.csv")
    kinds = set(map(str, t["kind"]))
    for need in ("random", "noise"):
        if need not in kinds:
            raise InvalidOptionError(f"pairs have no {need!r} pairs; S_f needs random scene "
                                     "pairs and the noise floor needs noise pairs")
    return t


def _index(ids, names, what):
    pos = {s: i for i, s in enumerate(ids)}
    missing = [s for s in names if s not in pos]
    if missing:
        from .._validation import StimulusMismatchError

        raise StimulusMismatchError(f"{len(missing)} {what} ids are not among the features' "
                                    f"stimulus ids (e.g. {missing[:3]})")
    return np.array([pos[s] for s in names])


def _ratio_ci(d, ref, n_boot, rng):
    """Bootstrap 95% CI of median(d) / median(ref), resampling both sets of pairs."""
    if not n_boot:
        return np.nan, np.nan
    a = np.median(d[rng.integers(0, len(d), (n_boot, len(d)))], axis=1)
    b = np.median(ref[rng.integers(0, len(ref), (n_boot, len(ref)))], axis=1)
    return tuple(np.percentile(a / b, [2.5, 97.5]))


def _mirror(name, d, deltas, table_az, ref_med):
    """Displacement at +theta (left) vs -theta (right) for azimuth sweeps from 0."""
    out = []
    az = np.asarray(table_az, float) % 360
    for theta in np.unique(deltas):
        if theta <= 0 or theta >= 180:
            continue
        left = d[np.isclose(az, theta)]
        right = d[np.isclose(az, 360 - theta)]
        if len(left) and len(right):
            L, R = np.median(left) / ref_med, np.median(right) / ref_med
            out.append({"layer": name, "theta": float(theta), "left": float(L),
                        "right": float(R), "asymmetry": float(abs(L - R))})
    return out


def sensitivity(layers, pairs, *, azimuths=None, n_boot: int = 1000, standardize: bool = False,
                stimulus_ids=None, seed: int = 0) -> SensitivityResult:
    """Normalised displacement of every layer's embeddings under one-factor perturbations.

    Parameters
    ----------
    layers : sequence or mapping of arrays (n_stimuli, n_features), or a feature store
        Features of every scene the pairs name, matched by stimulus id (a store's, or
        ``stimulus_ids`` for in-memory arrays).
    pairs : str path to a CSV, DataFrame or mapping
        Columns ``a``, ``b`` (stimulus ids), ``factor``, ``kind`` (``factor`` for a
        one-factor pair, ``noise`` for a noise-seed pair, ``random`` for random scene
        pairs) and ``delta`` (|change of the factor|), as ``pairs.csv`` of
        ``alignjax synth-spatial``.
    azimuths : mapping stimulus id -> azimuth, optional
        Azimuths of the azimuth-sweep scenes for the mirror check (left/right symmetry).
    n_boot : int
        Bootstrap resamples of pairs for 95% CIs (0: none).
    standardize : bool
        Z-score each feature over the scenes the pairs use before measuring distances
        (default: the embedding's own Euclidean geometry; z-scoring inflates noise-only
        dimensions).
    stimulus_ids : sequence of str, optional
        Row ids of in-memory ``layers``.
    seed : int

    Returns
    -------
    SensitivityResult
    """
    from ..io import load_layers

    ls = load_layers(layers)
    ids = ls.stimulus_ids if stimulus_ids is None else [str(i) for i in stimulus_ids]
    if ids is None:
        raise AlignjaxInputError("sensitivity matches pairs to features by stimulus id: give a "
                                 "feature store (or arrays with stimulus ids)")
    arrays = check_layers(ls.names, ls.arrays, ids, purpose="sensitivity")
    if len(ids) != arrays[0].shape[0]:
        from .._validation import ShapeMismatchError

        raise ShapeMismatchError(f"{len(ids)} stimulus ids for {arrays[0].shape[0]} rows")
    n_boot = 0 if not n_boot else check_positive_int(n_boot, "n_boot")
    t = _pairs_table(pairs)
    a = _index(ids, [str(s) for s in t["a"]], "pair")
    b = _index(ids, [str(s) for s in t["b"]], "pair")
    kind = np.array([str(k) for k in t["kind"]])
    factor = np.array([str(k) for k in t["factor"]])
    delta = np.array([float(v) if str(v) not in ("", "nan") else np.nan
                      for v in t.get("delta", np.full(len(kind), np.nan))])
    used = np.unique(np.concatenate([a, b]))
    rng = np.random.default_rng(seed)
    rows, dose, mirror = [], [], []
    factors = [f for f in dict.fromkeys(factor[kind == "factor"])]
    for name, X in zip(ls.names, arrays):
        if standardize:
            mu, sd = X[used].mean(0), X[used].std(0)
            X = (X - mu) / np.where(sd > 0, sd, 1.0)
        d = np.linalg.norm(X[a] - X[b], axis=1)
        ref = d[kind == "random"]
        ref_med = np.median(ref)
        if not ref_med > 0:
            raise AlignjaxInputError(f"layer {name!r}: random scene pairs have zero median "
                                     "distance; the layer is constant over scenes")
        noise = d[kind == "noise"]
        nf = float(np.median(noise) / ref_med)
        nlo, nhi = _ratio_ci(noise, ref, n_boot, rng)
        for f in factors:
            sel = (kind == "factor") & (factor == f)
            lo, hi = _ratio_ci(d[sel], ref, n_boot, rng)
            rows.append({"layer": name, "factor": f, "S": float(np.median(d[sel]) / ref_med),
                         "ci_low": float(lo), "ci_high": float(hi), "noise_floor": nf,
                         "noise_ci_low": float(nlo), "noise_ci_high": float(nhi),
                         "n_pairs": int(sel.sum())})
            for dv in np.unique(delta[sel]):
                m = sel & (delta == dv)
                dose.append({"layer": name, "factor": f, "delta": float(dv),
                             "displacement": float(np.median(d[m]) / ref_med)})
        if azimuths is not None and "azimuth" in factors:
            sel = (kind == "factor") & (factor == "azimuth")
            az = [azimuths[str(s)] for s in np.asarray(t["b"])[sel]]
            mirror += _mirror(name, d[sel], delta[sel], az, ref_med)
    return SensitivityResult(rows, dose, mirror)
