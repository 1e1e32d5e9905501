"""Spatial factors: their label columns, targets, metrics, chance predictors and groups.

Conventions: azimuth in degrees, 0 = front, +90 = left (counter-clockwise seen from
above); elevation in degrees, +90 = up; distance in metres; RT60 in seconds (measured).

Package-internal except :func:`angular_error`.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import numpy as np

from .._validation import AlignjaxInputError, InvalidOptionError, ShapeMismatchError

__all__ = ["angular_error", "FACTORS", "SOURCE_FACTORS", "ROOM_FACTORS"]


class Factor(NamedTuple):
    """A factor: how it is decoded (``circular``, ``sphere``, ``linear``, ``log`` or
    ``classes``), its label columns and its metrics (lower is better unless ``higher``)."""

    kind: str
    columns: tuple
    metrics: tuple
    higher: bool = False


FACTORS = {
    "azimuth": Factor("circular", ("azimuth",),
                      ("mean_abs_error_deg", "median_abs_error_deg", "acc_20deg",
                       "left_right_acc")),
    "elevation": Factor("linear", ("elevation",), ("mean_abs_error_deg",)),
    "direction": Factor("sphere", ("azimuth", "elevation"),
                        ("mean_great_circle_error_deg", "median_great_circle_error_deg")),
    "distance": Factor("log", ("distance",), ("mae_m", "relative_error")),
    "class": Factor("classes", ("class",), ("accuracy", "balanced_accuracy"), True),
    "rt60": Factor("linear", ("rt60",), ("mae_s",)),
    "volume": Factor("classes", ("volume",), ("accuracy", "balanced_accuracy"), True),
    "shape": Factor("classes", ("shape",), ("accuracy", "balanced_accuracy"), True),
}
SOURCE_FACTORS = ("azimuth", "elevation", "direction", "distance", "class")
ROOM_FACTORS = ("rt60", "volume", "shape")
HIGHER_METRICS = {"acc_20deg", "accuracy", "balanced_accuracy", "left_right_acc"}
LATERAL = "lateral_abs_error_deg"


def check_circular(deg, name: str) -> np.ndarray:
    """Angles in degrees as floats; raises when any lies outside [-180, 360)."""
    a = np.asarray(deg, dtype=float)
    if not np.isfinite(a).all():
        raise AlignjaxInputError(f"{name} holds NaN or inf angles")
    bad = (a < -180) | (a >= 360)
    if bad.any():
        raise InvalidOptionError(
            f"{name} has angles outside [-180, 360) degrees (e.g. {a[bad][:3].tolist()} at "
            f"positions {np.flatnonzero(bad)[:3].tolist()}); give degrees, not radians or "
            "unwrapped angles")
    return a


def angular_error(pred_deg, true_deg) -> np.ndarray:
    """Absolute angular difference in degrees, wrapped to [0, 180].

    ``angular_error(359, 1) == 2``. Both inputs are in degrees in [-180, 360) and
    broadcast against each other.
    """
    p = check_circular(pred_deg, "pred_deg")
    t = check_circular(true_deg, "true_deg")
    return _wrapped(p - t)


def _wrapped(d):
    d = np.abs(np.asarray(d, float)) % 360.0
    return np.minimum(d, 360.0 - d)


def side(azimuth_deg):
    """+1 left (0 < azimuth < 180 degrees), -1 right (180 < azimuth < 360), 0 on the
    median plane (0 or 180); exact in degrees, no trigonometry."""
    a = np.asarray(azimuth_deg, float) % 360.0
    return np.where((a > 0) & (a < 180), 1.0, np.where(a > 180, -1.0, 0.0))


def is_lateral(azimuth_deg):
    """Clearly lateral azimuths: within 60 degrees of +-90 (``|sin a| >= 1/2``), tested
    exactly in degrees, so a grid symmetric about the median plane keeps as many left as
    right azimuths (``sin 30`` and ``sin 150`` round differently in floating point)."""
    a = np.asarray(azimuth_deg, float) % 180.0
    return (a >= 30.0) & (a <= 150.0)


def lateral_deg(azimuth, elevation=0.0):
    """Front-back-folded lateral angle (degrees, +90 = left): asin(cos e sin a)."""
    a, e = np.deg2rad(azimuth), np.deg2rad(elevation)
    return np.rad2deg(np.arcsin(np.clip(np.cos(e) * np.sin(a), -1, 1)))


def unit_vectors(azimuth, elevation):
    a, e = np.deg2rad(azimuth), np.deg2rad(elevation)
    return np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], axis=-1)


def great_circle_deg(u, v):
    """Angle between unit vectors (..., 3) in degrees."""
    c = np.clip(np.sum(u * v, axis=-1), -1.0, 1.0)
    return np.rad2deg(np.arccos(c))


# --------------------------------------------------------------------------- weighted summaries


def wmean(x, w):
    """Weighted mean over the last axis; ``w`` broadcasts (bootstrap counts)."""
    return np.sum(x * w, axis=-1) / np.sum(w * np.ones_like(x), axis=-1)


def wmedian(x, w):
    """Weighted median over the last axis (lower median at exact halves)."""
    x, w = np.broadcast_arrays(x, w)
    order = np.argsort(x, axis=-1)
    xs = np.take_along_axis(x, order, -1)
    cw = np.cumsum(np.take_along_axis(w, order, -1), axis=-1)
    k = np.argmax(cw >= 0.5 * cw[..., -1:], axis=-1)
    return np.take_along_axis(xs, k[..., None], -1)[..., 0]


def _balanced(hit, codes, w):
    with np.errstate(invalid="ignore", divide="ignore"):  # a class absent from a resample
        recalls = [wmean(np.where(codes == c, hit, 0.0), w) / wmean((codes == c) * 1.0, w)
                   for c in np.unique(codes)]
    return np.nanmean(recalls, axis=0)


def metric_values(factor: str, metric: str, pred, true, w):
    """Value of one metric from decoded predictions and true values (per scene), with
    weights ``w`` (n,) or (n_boot, n)."""
    if metric in ("mean_abs_error_deg", "median_abs_error_deg", "acc_20deg"):
        err = _wrapped(pred - true) if factor == "azimuth" else np.abs(pred - true)
        if metric == "acc_20deg":
            return wmean((err <= 20.0) * 1.0, w)
        return (wmedian if metric.startswith("median") else wmean)(err, w)
    if metric == "left_right_acc":  # side of clearly lateral scenes, exact in degrees
        lateral = is_lateral(true) * 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            return wmean((side(pred) == side(true)) * lateral, w) / wmean(lateral, w)
    if metric == LATERAL:
        return wmean(np.abs(pred - true), w)
    if metric.endswith("great_circle_error_deg"):
        err = great_circle_deg(pred, true)
        return (wmedian if metric.startswith("median") else wmean)(err, w)
    if metric in ("mae_m", "mae_s"):
        return wmean(np.abs(pred - true), w)
    if metric == "relative_error":
        return wmean(np.abs(pred - true) / true, w)
    hit = (pred == true) * 1.0
    if metric == "accuracy":
        return wmean(hit, w)
    return _balanced(hit, true, w)


def no_information_predictions(factor: str, true, outer):
    """What a probe without information predicts under the folds ``outer`` (n_folds, n).

    Each test scene gets its outer training set's mean regression target (decoded:
    the circular mean azimuth, the normalised mean direction, the geometric mean
    distance, the mean elevation or RT60), or its training set's majority class (ties:
    the first class in sorted order): the limit of a ridge probe as alpha grows and of an
    L2 logistic probe as C shrinks, and so the chance level of a probe under the same
    cross-validation. Grouped folds with a label constant within groups make it
    anti-predict the held-out group (its label is under-represented in training).
    """
    outer = np.asarray(outer, bool)
    if FACTORS[factor].kind == "classes":
        levels, codes = np.unique(true, return_inverse=True)
        pred = np.empty(len(true), dtype=np.asarray(true).dtype)
        for test in outer:
            counts = np.bincount(codes[~test], minlength=len(levels))
            pred[test] = levels[np.argmax(counts)]
        return pred
    T = regression_targets(factor, true)
    P = np.zeros_like(T)
    for test in outer:
        P[test] = T[~test].mean(axis=0)
    return decode(factor, P)


# --------------------------------------------------------------------------- labels


def labels_table(labels, n: int, stimulus_ids):
    """Labels as a dict column -> array (n,) in the layers' stimulus order.

    ``labels``: a CSV path, a pandas DataFrame (with an ``id`` column to match by
    stimulus id, else in row order) or a mapping factor/column -> values in row order.
    """
    from ..errors import StimulusMismatchError, match_ids

    if isinstance(labels, Mapping):
        cols = {str(k): np.asarray(v) for k, v in labels.items()}
        ids = cols.pop("id", None)
    else:
        if not hasattr(labels, "columns"):
            import pandas as pd

            labels = pd.read_csv(labels, keep_default_na=False, dtype=str)
        cols = {str(c): np.asarray(labels[c]) for c in labels.columns}
        ids = cols.pop("id", cols.pop("stimulus_id", None))
    if ids is not None and stimulus_ids is not None:
        order = match_ids(list(stimulus_ids), [str(i) for i in ids], what="the features",
                          other_what="the labels")
        return {k: v[order] for k, v in cols.items()}
    for k, v in cols.items():
        if len(v) != n:
            raise StimulusMismatchError(f"label column {k!r} has {len(v)} values for {n} "
                                        "stimuli; labels must be in the features' row order "
                                        "(or carry an id column)")
    return cols


def check_factors(factors, table) -> list[str]:
    """The factors to probe: all those whose columns the labels carry, or those asked."""
    if factors is None:
        factors = [f for f, spec in FACTORS.items() if all(c in table for c in spec.columns)]
        if not factors:
            raise InvalidOptionError(f"the labels carry no spatial factor column; expected "
                                     f"some of {sorted({c for s in FACTORS.values() for c in s.columns})}")
        return factors
    factors = [factors] if isinstance(factors, str) else list(factors)
    unknown = [f for f in factors if f not in FACTORS]
    if unknown:
        raise InvalidOptionError(f"unknown factor(s) {unknown}; choose from {list(FACTORS)}")
    for f in factors:
        missing = [c for c in FACTORS[f].columns if c not in table]
        if missing:
            raise InvalidOptionError(f"factor {f!r} needs label column(s) {missing}; the "
                                     f"labels have {sorted(table)}")
    return factors


def factor_values(factor: str, table):
    """True values of a factor: degrees, unit vectors (n, 3), metres, seconds or codes.

    Raises when the factor has a single level (a degenerate design).
    """
    spec = FACTORS[factor]
    raw = [table[c] for c in spec.columns]
    if spec.kind == "classes":
        y = np.asarray([str(v) for v in raw[0]])
    elif spec.kind == "sphere":
        az = check_circular(np.asarray(raw[0], float), "azimuth")
        y = unit_vectors(az, np.asarray(raw[1], float))
    else:
        y = np.asarray(raw[0], dtype=float)
        if not np.isfinite(y).all():
            raise AlignjaxInputError(f"label column {spec.columns[0]!r} has missing or "
                                     "non-numeric values")
        if spec.kind == "circular":
            y = check_circular(y, "azimuth") % 360.0
        if spec.kind == "log" and (y <= 0).any():
            raise InvalidOptionError(f"{factor} must be > 0 to be regressed on its log")
    levels = np.unique(y, axis=0)
    if len(levels) < 2:
        raise InvalidOptionError(f"factor {factor!r} has a single level ({levels[0]!r}) in the "
                                 "labels: a degenerate design, nothing to decode")
    return y


def regression_targets(factor: str, y):
    """What the ridge predicts (n, k) and how predictions map back to the factor's units."""
    kind = FACTORS[factor].kind
    if kind == "circular":
        r = np.deg2rad(y)
        return np.stack([np.cos(r), np.sin(r)], axis=1)
    if kind == "sphere":
        return y
    if kind == "log":
        return np.log(y)[:, None]
    return y[:, None]


def decode(factor: str, P):
    """Predictions of :func:`regression_targets` columns (..., n, k) -> factor units."""
    kind = FACTORS[factor].kind
    if kind == "circular":
        return np.rad2deg(np.arctan2(P[..., 1], P[..., 0])) % 360.0
    if kind == "sphere":
        return P / np.maximum(np.linalg.norm(P, axis=-1, keepdims=True), 1e-12)
    if kind == "log":
        return np.exp(P[..., 0])
    return P[..., 0]


def fold_groups(groups, table, n: int):
    """Group ids for folds: given, or the connected components of (dry source, room).

    No dry source and no room is then split between training and test folds. Returns
    None when neither is known.
    """
    if groups is not None:
        g = np.asarray(groups)
        if g.shape != (n,):
            raise ShapeMismatchError(f"groups has shape {g.shape}; expected ({n},)")
        return g
    keys = [c for c in ("source_group", "room_group") if c in table]
    if not keys:
        return None
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for c in keys:
        first = {}
        for i, v in enumerate(table[c]):
            j = first.setdefault(str(v), i)
            parent[find(i)] = find(j)
    return np.array([find(i) for i in range(n)])
