"""Host-side input validation shared by the kernels of the JAX core (internal).

Every check runs on NumPy arrays before anything is traced by ``jax.jit`` and raises a
subclass of :class:`alignjax.errors.AlignjaxInputError` (itself a ``ValueError``) whose
message names the input, says what was wrong, where, and what to do about it. The
exception classes and the checks other packages use are public, in :mod:`alignjax.errors`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# the core modules import the public error classes and checks from here as well
from .errors import *  # noqa: F401,F403
from .errors import (AlignjaxInputError, NonFiniteError, ShapeMismatchError,
                     StimulusMismatchError, as_float_array, check_finite, check_unique_ids)


def width_groups(arrays: Sequence) -> list[list[int]]:
    """Indices of the layers (arrays of shape (n_stimuli, n_features)) of each width, in
    order of first appearance: layers of one width are stacked and batched together."""
    groups: dict[int, list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault(a.shape[1], []).append(i)
    return list(groups.values())


def check_layers(names: Sequence[str], arrays: Sequence, stimulus_ids: Sequence[str] | None,
                 *, purpose: str) -> list[np.ndarray]:
    """Validate layers for a kernel that needs pooled (n_stimuli, n_features) features.

    Each layer must be 2-D (time-resolved layers are refused: pool over frames first),
    finite, and have as many rows as the first. Returns float arrays (memory maps are
    read only as far as the checks need).
    """
    if len(arrays) == 0:
        raise ShapeMismatchError("no layers given")
    out, n = [], None
    for name, arr in zip(names, arrays):
        X = as_float_array(arr, f"layer {name!r}")
        if X.ndim != 2:
            raise ShapeMismatchError(
                f"layer {name!r} has shape {X.shape}; {purpose} need (n_stimuli, n_features) "
                "features (pool time-resolved features over frames first)")
        if n is None:
            n = X.shape[0]
        elif X.shape[0] != n:
            raise ShapeMismatchError(f"layer {name!r} has {X.shape[0]} stimuli, layer "
                                     f"{names[0]!r} has {n}")
        check_finite(X, f"layer {name!r}", labels=stimulus_ids, axis_name="stimulus")
        out.append(X)
    return out
