"""Probe inputs: class labels to codes, layers and labels aligned by stimulus, class weights
and the C grid.

Public: :func:`encode_labels`. Package-internal: :func:`load_labelled`,
:func:`class_weights`, :func:`check_Cs`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .._validation import (
    AlignjaxInputError,
    InvalidOptionError,
    ShapeMismatchError,
    StimulusMismatchError,
    check_layers,
    match_ids,
)

__all__ = ["encode_labels"]


def _missing(y: np.ndarray) -> np.ndarray:
    """Where labels are missing: NaN, None or pandas' NA."""
    if y.dtype.kind == "f":
        return np.isnan(y)
    if y.dtype.kind == "O":
        return np.array([v is None or (isinstance(v, float) and v != v) or
                         type(v).__name__ in ("NAType", "NaTType") for v in y], dtype=bool)
    return np.zeros(y.shape, bool)


def encode_labels(y) -> tuple[np.ndarray, np.ndarray]:
    """Class labels (any hashable values) -> ``(classes, codes)`` with ``classes[codes] == y``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ShapeMismatchError(f"labels must be one-dimensional, got shape {y.shape}")
    missing = _missing(y)
    if missing.any():
        raise AlignjaxInputError(
            f"{int(missing.sum())} labels are missing (None/NaN, at stimuli "
            f"{np.flatnonzero(missing)[:5].tolist()}); drop unlabelled stimuli first (e.g. "
            "df = df.dropna(subset=[column]) before probing)")
    try:
        classes, codes = np.unique(y, return_inverse=True)
    except TypeError as exc:
        raise AlignjaxInputError(f"labels mix types that cannot be ordered ({exc}); convert "
                                 "them to one type, e.g. str") from None
    if len(classes) < 2:
        raise InvalidOptionError(
            f"labels hold a single class ({classes[0]!r} for all {len(y)} stimuli); a probe needs "
            "at least two classes")
    return classes, codes.astype(np.int32)


def load_labelled(X, y, *, layers=None):
    """Layers and labels aligned to their rows. Package-internal.

    Returns ``(names, arrays, stimulus_ids, y)``; ``y`` given as a mapping is matched to
    the features' stimulus ids.
    """
    from ..store import load_layers

    ls = load_layers(X, layers=layers)
    arrays = check_layers(ls.names, ls.arrays, ls.stimulus_ids, purpose="probes")
    n = arrays[0].shape[0]
    if isinstance(y, Mapping):
        if ls.stimulus_ids is None:
            raise StimulusMismatchError(
                "labels were given by stimulus id but the features carry no stimulus ids; pass "
                "labels as an array in row order or use a feature store")
        keys = [str(k) for k in y]
        idx = match_ids(ls.stimulus_ids, keys, what="the features", other_what="the labels")
        vals = list(y.values())
        y = np.asarray([vals[i] for i in idx])
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise StimulusMismatchError(
            f"got {y.shape[0] if y.ndim else 0} labels for {n} stimuli; labels must be in the "
            "row order of the features (or a mapping from stimulus id to label)")
    return list(ls.names), arrays, ls.stimulus_ids, y


def class_weights(codes, train, n_classes, class_weight):
    """Sample weights (n_stimuli,) of one training mask: zero outside it. Package-internal.

    ``class_weight`` is None, ``"balanced"`` (from the training set's class counts, as
    sklearn) or a mapping class code -> weight.
    """
    w = train.astype(float)
    if class_weight is None:
        return w
    if class_weight == "balanced":
        counts = np.bincount(codes[train], minlength=n_classes).astype(float)
        k = np.count_nonzero(counts)
        cw = np.where(counts > 0, train.sum() / (k * np.maximum(counts, 1)), 0.0)
    elif isinstance(class_weight, Mapping):
        cw = np.ones(n_classes)
        for c, v in class_weight.items():
            cw[int(c)] = float(v)
    else:
        raise InvalidOptionError(f"class_weight must be None, 'balanced' or a mapping, got "
                                 f"{class_weight!r}")
    return w * cw[codes]


def check_Cs(Cs) -> np.ndarray:
    """The C grid as a sorted float array; raises on empty, non-positive or repeated values.

    Package-internal.
    """
    Cs = np.atleast_1d(np.asarray(Cs, dtype=float))
    if Cs.ndim != 1 or Cs.size == 0 or not np.all(np.isfinite(Cs)) or np.any(Cs <= 0):
        raise InvalidOptionError(f"Cs must be a non-empty list of positive numbers, got {Cs}")
    if len(np.unique(Cs)) != len(Cs):
        raise InvalidOptionError(f"Cs has repeated values: {Cs}")
    return np.sort(Cs)
