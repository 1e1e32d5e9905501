"""Sensitivity of embeddings to one-factor perturbations (normalised displacement).

For a factor f and a layer, ``S_f = median ||z(x) - z(x')|| over one-factor pairs /
median ||z(a) - z(b)|| over random scene pairs``. The noise floor is the same ratio for
pairs that differ only in the background-noise seed. The pairs of one anchor scene share
it (and whatever the anchor's rendering does to every perturbation), so the independent
units are the anchors: bootstrap CIs resample anchors (and, for the random reference
pairs, scenes), and the test against the noise floor permutes the factor and noise labels
of the pairs within each anchor. Dose-response curves give the normalised displacement per
|delta factor| (azimuth wrapped to [0, 180]); the mirror check compares azimuth
displacements at +theta and -theta.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._validation import (AlignjaxInputError, InvalidOptionError, check_layers,
                           check_positive_int)
from .targets import wmedian

__all__ = ["SensitivityResult", "sensitivity"]

PAIR_COLUMNS = ("a", "b", "factor", "kind", "delta")


class SensitivityResult(NamedTuple):
    """Result of :func:`sensitivity`.

    Attributes
    ----------
    rows : list of dict
        One per (layer, factor): ``layer, factor, S, ci_low, ci_high, noise_floor,
        noise_ci_low, noise_ci_high, n_pairs, n_anchors``, ``S_minus_noise`` with its 95%
        CI ``diff_ci_low, diff_ci_high`` (anchors resampled jointly for both) and
        ``p_above_noise``, the permutation p-value of S_f > noise floor (see
        :meth:`to_frame`).
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
        raise InvalidOptionError(
            f"pairs lack column(s) {missing}; expected a, b, factor, kind and delta "
            "(|change of the factor| of each factor pair, for the dose-response curves), as "
            "alignjax synth-spatial writes to pairs.csv")
    kinds = set(map(str, t["kind"]))
    for need in ("random", "noise"):
        if need not in kinds:
            raise InvalidOptionError(f"pairs have no {need!r} pairs; S_f needs random scene "
                                     "pairs and the noise floor needs noise pairs")
    delta = np.array([float(v) if str(v).strip() not in ("", "nan") else np.nan
                      for v in t["delta"]])
    bad = (np.array([str(k) for k in t["kind"]]) == "factor") & ~np.isfinite(delta)
    if bad.any():
        raise InvalidOptionError(
            f"{int(bad.sum())} factor pairs have no delta (e.g. rows "
            f"{np.flatnonzero(bad)[:3].tolist()}): give |change of the factor| of every "
            "factor pair in the 'delta' column")
    t["delta"] = delta
    return t


def _index(ids, names, what):
    pos = {s: i for i, s in enumerate(ids)}
    missing = [s for s in names if s not in pos]
    if missing:
        from .._validation import StimulusMismatchError

        raise StimulusMismatchError(f"{len(missing)} {what} ids are not among the features' "
                                    f"stimulus ids (e.g. {missing[:3]})")
    return np.array([pos[s] for s in names])


def _boot_weights(anchor_codes, scene_a, scene_b, n_boot, rng):
    """Bootstrap weights (n_boot, n_pairs): anchors drawn with replacement weight their
    factor and noise pairs by their count; the random pairs' scenes drawn with
    replacement weight each random pair by the product of its scenes' counts."""
    k = anchor_codes.max() + 1
    ca = np.stack([np.bincount(rng.integers(0, k, k), minlength=k) for _ in range(n_boot)])
    m = max(scene_a.max(), scene_b.max()) + 1
    cs = np.stack([np.bincount(rng.integers(0, m, m), minlength=m) for _ in range(n_boot)])
    return ca[:, anchor_codes].astype(float), (cs[:, scene_a] * cs[:, scene_b]).astype(float)


def _percentiles(x):
    with np.errstate(invalid="ignore"):
        return tuple(float(v) for v in np.nanpercentile(x, [2.5, 97.5]))


def _within_anchor_null(d, fac, noi, unit, n_perm, rng):
    """Null of median(d[factor]) - median(d[noise]) with the factor/noise labels of the
    pairs permuted within each anchor (n_perm,). ``fac``, ``noi``: pair indices."""
    F_fix, N_fix, F_parts, N_parts = [], [], [], []
    for u in np.unique(unit[np.r_[fac, noi]]):
        f, nz = fac[unit[fac] == u], noi[unit[noi] == u]
        if not len(f) or not len(nz):  # nothing to exchange with: kept as it is
            F_fix.append(f)
            N_fix.append(nz)
            continue
        pool = np.r_[f, nz]
        q = pool[rng.permuted(np.tile(np.arange(len(pool)), (n_perm, 1)), axis=1)]
        F_parts.append(q[:, :len(f)])
        N_parts.append(q[:, len(f):])
    Fi = np.concatenate(F_parts + [np.tile(np.concatenate(F_fix + [np.zeros(0, int)]),
                                           (n_perm, 1))], axis=1)
    Ni = np.concatenate(N_parts + [np.tile(np.concatenate(N_fix + [np.zeros(0, int)]),
                                           (n_perm, 1))], axis=1)
    return np.median(d[Fi], axis=1) - np.median(d[Ni], axis=1)


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


def sensitivity(layers, pairs, *, azimuths=None, n_boot: int = 1000, n_perm: int = 1000,
                standardize: bool = False, stimulus_ids=None,
                seed: int = 0) -> SensitivityResult:
    """Normalised displacement of every layer's embeddings under one-factor perturbations.

    Parameters
    ----------
    layers : sequence or mapping of arrays (n_stimuli, n_features), or a feature store
        Features of every scene the pairs name, matched by stimulus id (a store's, or
        ``stimulus_ids`` for in-memory arrays).
    pairs : str path to a CSV, DataFrame or mapping
        Columns ``a``, ``b`` (stimulus ids), ``factor``, ``kind`` (``factor`` for a
        one-factor pair, ``noise`` for a noise-seed pair, ``random`` for random scene
        pairs) and ``delta`` (the absolute change of the factor; required for factor pairs), as
        ``pairs.csv`` of ``alignjax synth-spatial``. The anchor of a factor or noise pair
        (its independent unit) is its ``anchor`` column when there is one, else its
        ``a`` scene.
    azimuths : mapping stimulus id -> azimuth, optional
        Azimuths of the azimuth-sweep scenes for the mirror check (left/right symmetry).
    n_boot : int
        Bootstrap resamples for 95% CIs (0: none): anchors with replacement (all pairs of
        an anchor together), and the scenes of the random pairs with replacement.
    n_perm : int
        Permutations for ``p_above_noise`` (0: none): one-sided test of "the factor
        displaces the embedding no more than a noise-seed change", exchanging the factor
        and noise labels of the pairs within each anchor (exact under the null that an
        anchor's factor and noise pairs have the same distribution of distances);
        ``p = (1 + #{null >= observed}) / (1 + n_perm)``.
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
    n_perm = 0 if not n_perm else check_positive_int(n_perm, "n_perm")
    t = _pairs_table(pairs)
    a = _index(ids, [str(s) for s in t["a"]], "pair")
    b = _index(ids, [str(s) for s in t["b"]], "pair")
    kind = np.array([str(k) for k in t["kind"]])
    factor = np.array([str(k) for k in t["factor"]])
    delta = t["delta"]
    unit = np.unique(np.array([str(u) for u in t.get("anchor", t["a"])]),
                     return_inverse=True)[1].ravel()
    used = np.unique(np.concatenate([a, b]))
    rng = np.random.default_rng(seed)
    rand = np.flatnonzero(kind == "random")
    noi = np.flatnonzero(kind == "noise")
    if n_boot:
        _, scenes = np.unique(np.r_[a[rand], b[rand]], return_inverse=True)
        Wa, Wr = _boot_weights(unit, scenes[:len(rand)], scenes[len(rand):], n_boot, rng)
    factors = [f for f in dict.fromkeys(factor[kind == "factor"])]
    rows, dose, mirror = [], [], []
    for name, X in zip(ls.names, arrays):
        if standardize:
            mu, sd = X[used].mean(0), X[used].std(0)
            X = (X - mu) / np.where(sd > 0, sd, 1.0)
        d = np.linalg.norm(X[a] - X[b], axis=1)
        ref_med = np.median(d[rand])
        if not ref_med > 0:
            raise AlignjaxInputError(f"layer {name!r}: random scene pairs have zero median "
                                     "distance; the layer is constant over scenes")
        nf = float(np.median(d[noi]) / ref_med)
        if n_boot:
            ref_b = wmedian(d[rand], Wr)
            noise_b = wmedian(d[noi], Wa[:, noi]) / ref_b
        for f in factors:
            sel = (kind == "factor") & (factor == f)
            fac = np.flatnonzero(sel)
            S = float(np.median(d[fac]) / ref_med)
            row = {"layer": name, "factor": f, "S": S, "ci_low": np.nan, "ci_high": np.nan,
                   "noise_floor": nf, "noise_ci_low": np.nan, "noise_ci_high": np.nan,
                   "n_pairs": int(sel.sum()), "n_anchors": int(len(np.unique(unit[fac]))),
                   "S_minus_noise": S - nf, "diff_ci_low": np.nan, "diff_ci_high": np.nan,
                   "p_above_noise": np.nan}
            if n_boot:
                S_b = wmedian(d[fac], Wa[:, fac]) / ref_b
                row["ci_low"], row["ci_high"] = _percentiles(S_b)
                row["noise_ci_low"], row["noise_ci_high"] = _percentiles(noise_b)
                row["diff_ci_low"], row["diff_ci_high"] = _percentiles(S_b - noise_b)
            if n_perm:
                r = np.random.default_rng([seed, 29, factors.index(f)])  # same for every layer
                null = _within_anchor_null(d, fac, noi, unit, n_perm, r)
                obs = np.median(d[fac]) - np.median(d[noi])
                row["p_above_noise"] = float((1 + np.sum(null >= obs - 1e-12 * abs(obs)))
                                             / (1 + n_perm))
            rows.append(row)
            for dv in np.unique(delta[sel]):
                m = sel & (delta == dv)
                dose.append({"layer": name, "factor": f, "delta": float(dv),
                             "displacement": float(np.median(d[m]) / ref_med)})
        if azimuths is not None and "azimuth" in factors:
            sel = (kind == "factor") & (factor == "azimuth")
            az = [azimuths[str(s)] for s in np.asarray(t["b"])[sel]]
            mirror += _mirror(name, d[sel], delta[sel], az, ref_med)
    return SensitivityResult(rows, dose, mirror)
