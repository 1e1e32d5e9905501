"""Time-lagged (FIR) copies of continuous features, zero-filled at run boundaries.

A time-series encoding model predicts the response at sample ``t`` from the features at
``t - d`` for a set of delays ``d`` (in samples; the haemodynamic lag of fMRI, or the
lags of a temporal response function). :func:`delay_features` builds that design:
``out[t, k * n_features + f] = X[t - delays[k], f]`` when sample ``t - delays[k]`` lies in
the same run as ``t``, else 0, so no lag reaches across the boundary between two runs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import InvalidOptionError, ShapeMismatchError, as_float_array, \
    check_finite
from ..errors import AlignjaxInputError

__all__ = ["delay_features", "run_bounds", "RunBounds"]


class RunBounds(NamedTuple):
    """Contiguous runs of a time series (see :func:`run_bounds`).

    Attributes
    ----------
    ids : ndarray (n_runs,)
        Run id of each run, in order of appearance.
    start : ndarray (n_runs,) of int
        First sample of each run.
    stop : ndarray (n_runs,) of int
        One past the last sample of each run.
    """

    ids: np.ndarray
    start: np.ndarray
    stop: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        """Samples per run (n_runs,)."""
        return self.stop - self.start

    def label(self, r: int) -> str:
        """The run ``r`` as messages name it."""
        return f"run {self.ids.tolist()[r]!r}"


def run_bounds(runs, n_samples: int, *, name: str = "runs") -> RunBounds:
    """Validate a run id per sample and return the runs' sample ranges.

    Parameters
    ----------
    runs : array (n_samples,) or None
        Run id of each sample (ints or strings). Each run must be one contiguous block of
        samples (the samples of a run are consecutive in time). ``None``: one run.
    n_samples : int
    name : str
        The input, as messages name it.

    Returns
    -------
    RunBounds
    """
    if runs is None:
        return RunBounds(np.array([0]), np.array([0]), np.array([n_samples]))
    ids = np.asarray(runs)
    if ids.ndim != 1 or ids.shape[0] != n_samples:
        raise ShapeMismatchError(
            f"{name} must give one run id per sample, shape ({n_samples},); got shape "
            f"{ids.shape}")
    if n_samples == 0:
        raise ShapeMismatchError(f"{name}: no samples")
    if ids.dtype.kind == "f" and not np.all(np.isfinite(ids)):
        raise AlignjaxInputError(f"{name} contains NaN or inf run ids; give every sample a run")
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    start = np.concatenate([[0], change]).astype(np.int64)
    stop = np.concatenate([change, [n_samples]]).astype(np.int64)
    order = ids[start]
    uniq, counts = np.unique(order, return_counts=True)
    if np.any(counts > 1):
        split = uniq[counts > 1]
        raise AlignjaxInputError(
            f"{name}: the samples of run(s) {split.tolist()[:5]} are not contiguous; each "
            "run must be one block of consecutive samples (concatenate runs in time order)")
    return RunBounds(order, start, stop)


def _check_delays(delays) -> np.ndarray:
    d = np.atleast_1d(np.asarray(delays))
    if d.ndim != 1 or d.size == 0:
        raise InvalidOptionError(f"delays must be a non-empty 1-D sequence of ints (samples), "
                                 f"got shape {d.shape}")
    if not (np.issubdtype(d.dtype, np.integer)
            or (np.issubdtype(d.dtype, np.floating) and np.all(d == np.round(d)))):
        raise InvalidOptionError(
            f"delays are in samples and must be integers, got {d.tolist()[:8]}; convert "
            "seconds with np.round(t * sfreq)")
    d = d.astype(np.int64)
    if len(np.unique(d)) != len(d):
        raise InvalidOptionError(f"delays must not repeat, got {d.tolist()}")
    return d


def _source_index(bounds: RunBounds, delays: np.ndarray, n: int):
    """Source sample (n_delays, n_samples) of each output row and its validity mask."""
    t = np.arange(n)
    run_of = np.repeat(np.arange(len(bounds.start)), bounds.lengths)
    lo, hi = bounds.start[run_of], bounds.stop[run_of]
    src = t[None, :] - delays[:, None]
    valid = (src >= lo[None]) & (src < hi[None])
    return np.where(valid, src, 0).astype(np.int32), valid


@jax.jit
def _delay_impl(X, src, valid):
    """Gather rows ``src`` (n_delays, n) of X (n, p), zero where not ``valid`` ->
    (n, n_delays * p), delay-major."""
    g = jnp.where(valid[..., None], X[src], 0.0)  # (n_delays, n, p)
    return jnp.transpose(g, (1, 0, 2)).reshape(X.shape[0], -1)


def delay_features(X, delays, *, runs=None) -> jax.Array:
    """Time-lagged copies of the features, zero-filled at run boundaries.

    ``out[t, k * n_features + f] = X[t - delays[k], f]`` if sample ``t - delays[k]``
    belongs to the same run as sample ``t``, else 0: a positive delay uses the features of
    earlier samples (the response lags the stimulus), a negative one those of later
    samples. No lag reaches across the boundary between two runs.

    Parameters
    ----------
    X : array (n_samples, n_features)
        Features on the response's sample times, runs concatenated in time order.
    delays : sequence of int (n_delays,)
        Delays in samples (negative allowed, no repeats), e.g. ``[1, 2, 3, 4]`` TRs for
        fMRI or ``range(-6, 33)`` samples for a TRF at 64 Hz.
    runs : array (n_samples,), optional
        Run id of each sample (ints or strings); each run must be one contiguous block of
        samples. Default: all samples are one run.

    Returns
    -------
    array (n_samples, n_delays * n_features)
        Delay-major columns: block ``k`` (columns ``k * n_features ... (k + 1) *
        n_features - 1``) holds the features delayed by ``delays[k]``, the layout of
        ``voxelwise_tutorials.delayer.Delayer`` (the Gallant-lab tutorials' delayer used
        with himalaya). Default float dtype (float32 unless ``jax_enable_x64``).

    Raises
    ------
    InvalidOptionError
        Delays empty, not integers or repeated.
    ShapeMismatchError
        ``runs`` of the wrong length.
    AlignjaxInputError
        A run's samples are not contiguous, or a delay is as long as a run or longer (the
        delayed copy of that run would be all zeros).

    Notes
    -----
    Within one run this equals ``Delayer(delays).fit_transform(X)`` and, up to the column
    order, MNE's ``mne.decoding.receptive_field._delay_time_series`` (whose columns are
    feature-major: ``(n_features, n_delays)``) with ``delays = arange(round(tmin *
    sfreq), round(tmax * sfreq) + 1)``; for runs of equal length it equals MNE's delaying
    of the runs given as epochs (zeros at each epoch's edges).

    Examples
    --------
    >>> import numpy as np, alignjax
    >>> x = np.arange(1.0, 6.0)[:, None]
    >>> np.asarray(alignjax.delay_features(x, [0, 1], runs=[0, 0, 0, 1, 1]))
    array([[1., 0.],
           [2., 1.],
           [3., 2.],
           [4., 0.],
           [5., 4.]], dtype=float32)
    """
    from ..ridge.placement import float_dtype

    X = as_float_array(X, "X", ndim=2)
    check_finite(X, "X", axis_name="sample")
    d = _check_delays(delays)
    n = X.shape[0]
    bounds = run_bounds(runs, n)
    short = bounds.lengths <= np.max(np.abs(d))
    if short.any():
        r = int(np.flatnonzero(short)[0])
        raise AlignjaxInputError(
            f"delay {int(d[np.argmax(np.abs(d))])} samples is as long as {bounds.label(r)} "
            f"({int(bounds.lengths[r])} samples) or longer, so its delayed copy would be all "
            "zeros; use shorter delays or longer runs")
    src, valid = _source_index(bounds, d, n)
    return _delay_impl(jnp.asarray(X, float_dtype()), jnp.asarray(src), jnp.asarray(valid))
