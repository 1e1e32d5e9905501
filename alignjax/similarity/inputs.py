"""Turning the many input forms of :func:`alignjax.similarity` into named 2-D arrays
matched by stimulus (package-internal)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from alignjax.errors import ShapeMismatchError, StimulusMismatchError, match_ids


def _is_layer_source(obj) -> bool:
    from alignjax.io import FeatureStore
    from alignjax.io.layers import LayerSet

    if isinstance(obj, (FeatureStore, LayerSet)):
        return True
    return isinstance(obj, (str, os.PathLike)) and Path(obj).is_dir()


def _flat(a) -> np.ndarray:
    a = np.asarray(a)
    return a.reshape(a.shape[0], -1) if a.ndim > 2 else a


def _layers(source, prefix: str = ""):
    """(names, arrays, ids or None) of one layer source."""
    from alignjax.io import load_layers
    from alignjax.io.layers import LayerSet

    if isinstance(source, LayerSet):
        ls = source
    elif _is_layer_source(source) or isinstance(source, (str, os.PathLike)):
        ls = load_layers(source)
    elif isinstance(source, Mapping):
        if source and all(_is_layer_source(v) or isinstance(v, Mapping) for v in source.values()):
            names, arrays, ids = [], [], None
            for model, sub in source.items():
                n, a, i = _layers(sub, prefix=f"{model}/")
                if ids is not None and i is not None and list(i) != list(ids):
                    i_idx = match_ids(ids, i, what="the first model's stimuli",
                                      other_what=f"model {model!r}")
                    a = [x[i_idx] for x in a]
                ids = ids if ids is not None else i
                names += n
                arrays += a
            return names, arrays, ids
        return ([prefix + str(k) for k in source], [_flat(v) for v in source.values()], None)
    else:
        arr = source if isinstance(source, (list, tuple)) else np.asarray(source)
        if isinstance(arr, np.ndarray) and arr.ndim == 2:
            return [prefix + "layer_0"], [arr], None
        if isinstance(arr, np.ndarray) and arr.ndim == 3:
            return [f"{prefix}layer_{i}" for i in range(len(arr))], list(arr), None
        if isinstance(arr, np.ndarray):
            raise ShapeMismatchError(
                f"layers: expected (n_stimuli, n_features) or (n_layers, n_stimuli, n_features), "
                f"got shape {arr.shape}")
        return [f"{prefix}layer_{i}" for i in range(len(arr))], [_flat(a) for a in arr], None
    return [prefix + n for n in ls.names], [_flat(a) for a in ls.arrays], ls.stimulus_ids


def _responses(Y):
    """(names, arrays, ids or None) of the Y side: responses or another model's layers."""
    from alignjax.io import load_responses
    from alignjax.io.responses import Responses

    if isinstance(Y, Responses):
        return list(Y.subjects), [_flat(v) for v in Y.subjects.values()], list(Y.stimulus_ids)
    if isinstance(Y, (str, os.PathLike)) and not _is_layer_source(Y):
        return _responses(load_responses(Y))
    if _is_layer_source(Y):
        return _layers(Y)
    if isinstance(Y, Mapping):
        if Y and all(_is_layer_source(v) or isinstance(v, Mapping) for v in Y.values()):
            return _layers(Y)
        return [str(k) for k in Y], [_flat(v) for v in Y.values()], None
    arr = np.asarray(Y) if not isinstance(Y, (list, tuple)) else None
    if arr is not None and arr.ndim == 2:
        return ["y"], [arr], None
    if arr is not None and arr.ndim == 3:
        return [f"subject_{i}" for i in range(len(arr))], list(arr), None
    if arr is not None:
        raise ShapeMismatchError(f"Y: expected (n_stimuli, n_targets) or (n_subjects, n_stimuli, "
                                 f"n_targets), got shape {arr.shape}")
    return [f"subject_{i}" for i in range(len(Y))], [_flat(a) for a in Y], None


def collect_inputs(layers, Y, *, stimulus_ids=None):
    """Named 2-D arrays of both sides, rows in the same stimulus order, and the ids.

    Raises
    ------
    StimulusMismatchError
        Ids on both sides that do not match (or ids given for the wrong number of rows).
    ShapeMismatchError
        Different numbers of rows without ids to match them.
    """
    xnames, xs, xids = _layers(layers)
    ynames, ys, yids = _responses(Y)
    if not xs or not ys:
        raise ShapeMismatchError("no layers or no subjects to compare")
    if stimulus_ids is not None:
        stimulus_ids = [str(s) for s in stimulus_ids]
        xids = xids if xids is not None else stimulus_ids
        yids = yids if yids is not None else stimulus_ids
    for names, arrays, what in ((xnames, xs, "layer"), (ynames, ys, "subject")):
        n0 = arrays[0].shape[0]
        for name, a in zip(names, arrays):
            if a.ndim != 2:
                raise ShapeMismatchError(f"{what} {name!r}: expected 2-D (n_stimuli, n_features), "
                                         f"got shape {a.shape}")
            if a.shape[0] != n0:
                raise ShapeMismatchError(f"{what} {name!r} has {a.shape[0]} stimuli (rows), "
                                         f"{what} {names[0]!r} has {n0}")
    if xids is not None and len(xids) != xs[0].shape[0]:
        raise StimulusMismatchError(f"{len(xids)} stimulus ids for {xs[0].shape[0]} layer rows")
    if xids is not None and yids is not None:
        idx = match_ids(xids, yids, what="the layers", other_what="the responses (Y)")
        ys = [a[idx] for a in ys]
    elif xs[0].shape[0] != ys[0].shape[0]:
        raise ShapeMismatchError(
            f"the layers have {xs[0].shape[0]} stimuli but Y has {ys[0].shape[0]}, and there are "
            "no stimulus ids to match them; pass stimulus_ids or inputs that carry ids")
    ids = xids if xids is not None else yids
    return (list(map(str, xnames)), [np.asarray(a, np.float64) for a in xs],
            list(map(str, ynames)), [np.asarray(a, np.float64) for a in ys], ids)
