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
                     StimulusMismatchError, check_unique_ids)


def _describe_positions(mask: np.ndarray, labels: Sequence[str] | None, limit: int = 5) -> str:
    """Name the first few positions where ``mask`` is true, by label (quoted) when given."""
    idx = np.argwhere(mask)
    shown = []
    for pos in idx[:limit]:
        pos = tuple(int(p) for p in pos)
        if labels is not None and len(pos) >= 1:
            shown.append(f"{str(labels[pos[0]])!r}" + (f"{list(pos[1:])}" if len(pos) > 1 else ""))
        else:
            shown.append(str(pos[0] if len(pos) == 1 else pos))
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return ", ".join(shown) + more


def as_float_array(x, name: str, *, ndim: int | tuple[int, ...] | None = None,
                   min_ndim: int | None = None) -> np.ndarray:
    """Convert to a floating NumPy array and check its number of dimensions."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - numpy gives good messages already
        raise AlignjaxInputError(f"{name}: could not be converted to an array ({exc})") from exc
    if arr.dtype == object:
        raise ShapeMismatchError(
            f"{name}: ragged or non-numeric input (dtype object); pass a rectangular numeric array"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise AlignjaxInputError(f"{name}: expected numbers, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            raise ShapeMismatchError(
                f"{name}: expected {' or '.join(map(str, allowed))} dimensions, got shape {arr.shape}"
            )
    if min_ndim is not None and arr.ndim < min_ndim:
        raise ShapeMismatchError(
            f"{name}: expected at least {min_ndim} dimensions, got shape {arr.shape}"
        )
    return arr


def check_finite(arr: np.ndarray, name: str, *, labels: Sequence[str] | None = None,
                 axis_name: str = "row", allow_nan: bool = False) -> None:
    """Raise :class:`NonFiniteError` naming the input and its offending rows if it has NaN/inf.

    Parameters
    ----------
    arr : ndarray
        The values; rows are the first axis.
    name : str
        The input, as the message names it (e.g. ``"brain responses of subject 'sub2'"``).
    labels : sequence of str, optional
        Ids of the rows (stimulus ids); rows are then named ``<axis_name> id '<id>'``,
        else by position.
    axis_name : str
        What a row is (``"stimulus"``).
    allow_nan : bool
        Refuse only inf.
    """
    bad = np.isinf(arr) if allow_nan else ~np.isfinite(arr)
    if bad.any():
        if arr.ndim >= 2:
            bad = bad.reshape(bad.shape[0], -1).any(axis=1)
        where = _describe_positions(bad, labels)
        place = f"at {axis_name} id {where}" if labels is not None else f"in {axis_name} {where}"
        kind = "inf" if allow_nan else "NaN or inf"
        raise NonFiniteError(
            f"{name} contains {kind} values ({place}); "
            "remove or impute those entries before the analysis"
        )


def match_ids(reference: Sequence[str], other: Sequence[str], *, what: str,
              other_what: str) -> np.ndarray:
    """Indices into ``other`` that put it in the order of ``reference``.

    Raises :class:`StimulusMismatchError` listing ids missing from ``other`` or duplicated.
    Extra ids in ``other`` are allowed (they are simply not selected).
    """
    reference = check_unique_ids(reference, what)
    other = check_unique_ids(other, other_what)
    pos = {s: i for i, s in enumerate(other)}
    missing = [s for s in reference if s not in pos]
    if missing:
        raise StimulusMismatchError(
            f"{len(missing)} stimulus ids of {what} are missing from {other_what} "
            f"(first: {missing[:5]}); check that both use the same stimulus ids"
        )
    return np.asarray([pos[s] for s in reference], dtype=np.int64)


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
