"""Public exceptions and input checks of alignjax.

Every input error alignjax raises is a subclass of :class:`AlignjaxInputError` (itself a
``ValueError``) whose message names the input it is about (an option, a layer, the
responses of one subject, a stimulus by its id), says what was wrong and what to do.

The checks here are the ones other packages (the torch ``extractors``) share with the
JAX core; they take the name of the input they look at and put it in their messages.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = [
    "as_float_array",
    "check_finite",
    "match_ids",
    "AlignjaxInputError",
    "NonFiniteError",
    "ZeroVarianceError",
    "ShapeMismatchError",
    "StimulusMismatchError",
    "InvalidFoldsError",
    "InvalidOptionError",
    "ConstantRDMError",
    "StoreError",
    "check_choice",
    "check_positive_int",
    "check_unique_ids",
]


class AlignjaxInputError(ValueError):
    """Base class for every input error raised by alignjax."""


class NonFiniteError(AlignjaxInputError):
    """An array holds NaN or inf where finite values are required."""


class ZeroVarianceError(AlignjaxInputError):
    """A row or column has zero variance where a correlation needs variance."""


class ConstantRDMError(AlignjaxInputError):
    """An RDM is constant, so a correlation with it is undefined."""


class ShapeMismatchError(AlignjaxInputError):
    """Array shapes do not agree with each other or with what a function expects."""


class StimulusMismatchError(AlignjaxInputError):
    """Stimulus ids of two data sources do not match."""


class InvalidFoldsError(AlignjaxInputError):
    """Cross-validation folds are not disjoint, not covering, or empty."""


class InvalidOptionError(AlignjaxInputError):
    """An option has a value outside the allowed set or range."""


class StoreError(AlignjaxInputError):
    """A feature store is missing, incomplete or inconsistent with a request."""


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= ``minimum``.

    Parameters
    ----------
    value : object
        The option's value.
    name : str
        The option's name, as the message shows it (e.g. ``"batch_size"``).
    minimum : int
        Smallest allowed value.

    Returns
    -------
    int

    Raises
    ------
    InvalidOptionError
        ``value`` is not an integer (bools are refused) or is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidOptionError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise InvalidOptionError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_choice(value, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise naming the option.

    Parameters
    ----------
    value, name
        As for :func:`check_positive_int`.
    choices : sequence of str
        The allowed values, listed in the message.

    Returns
    -------
    str

    Raises
    ------
    InvalidOptionError
    """
    if value not in choices:
        raise InvalidOptionError(
            f"unknown {name} {value!r}; choose one of {', '.join(repr(c) for c in choices)}"
        )
    return value


def check_unique_ids(ids: Sequence[str], name: str) -> list[str]:
    """Return ``ids`` as strings, or raise naming the duplicated ones and the input.

    Parameters
    ----------
    ids : sequence
        Stimulus ids.
    name : str
        What holds them (e.g. ``"the stimuli of /data/clips"``).

    Returns
    -------
    list of str

    Raises
    ------
    StimulusMismatchError
        Some id occurs more than once.
    """
    ids = [str(s) for s in ids]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = [s for s in ids if s in seen or seen.add(s)]
        raise StimulusMismatchError(f"{name} has duplicated stimulus ids: {dup[:5]}")
    return ids


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
