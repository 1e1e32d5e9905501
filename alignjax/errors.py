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
