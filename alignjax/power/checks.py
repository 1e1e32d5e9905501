"""One-line checks and helpers the design modules share."""

from __future__ import annotations

import numpy as np

from alignjax.errors import InvalidOptionError, check_positive_int

__all__ = ["check_alpha", "check_at_least", "check_unit_interval", "analysis_seed",
           "condensed_component"]


def check_alpha(alpha) -> float:
    """``alpha`` as a float in (0, 1), or raise."""
    a = float(alpha)
    if not 0 < a < 1:
        raise InvalidOptionError(f"alpha must lie in (0, 1), got {alpha!r}")
    return a


def check_at_least(point: dict, name: str, minimum: int) -> int:
    """The integer grid value ``point[name]``, or raise if it is below ``minimum``."""
    v = point[name]
    if v < minimum:
        raise InvalidOptionError(f"grid parameter {name!r} must be >= {minimum}, got {v}")
    return check_positive_int(v, name, minimum=minimum)


def check_unit_interval(value, name: str, *, low: float = 0.0, high: float = 1.0,
                        closed_high: bool = False) -> float:
    """``value`` as a float in ``[low, high)`` (``[low, high]`` with ``closed_high``)."""
    v = float(value)
    if not (low <= v < high or (closed_high and v == high)):
        raise InvalidOptionError(f"{name} must lie in [{low}, {high}{']' if closed_high else ')'}, "
                                 f"got {value!r}")
    return v


def analysis_seed(rng: np.random.Generator) -> int:
    """A seed for the analysis (its permutations, folds) drawn from the data set's stream."""
    return int(rng.integers(0, 2**31 - 1))


def condensed_component(rng: np.random.Generator, k: int, n: int,
                        stimulus_share: float) -> np.ndarray:
    """``k`` unit-variance condensed RDM components over ``n`` stimuli -> (k, n_pairs).

    Entry ``(i, j)`` is ``sqrt(s / 2) (u_i + u_j) + sqrt(1 - s) v_ij`` with standard normal
    ``u`` (per stimulus) and ``v`` (per pair), ``s = stimulus_share``: ``s`` is the share
    of each entry's variance that belongs to its two stimuli, which makes entries that share
    a stimulus correlated (``s / 2``), as in RDMs computed from response patterns.
    """
    i, j = np.triu_indices(n, k=1)
    v = rng.standard_normal((k, i.size))
    if stimulus_share == 0:
        return v
    u = rng.standard_normal((k, n))
    return np.sqrt(stimulus_share / 2) * (u[:, i] + u[:, j]) + np.sqrt(1 - stimulus_share) * v
