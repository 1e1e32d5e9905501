"""Time-resolved RDMs: one RDM per sliding window of channels x samples.

Windows follow mne-rsa's ``temporal_radius`` semantics: a window of ``window`` samples
starts at every ``step``-th sample from 0, windows that would run past the epoch's edge
are dropped, and each window is labelled by its centre time (the mean of its samples'
times). ``window = 2 * temporal_radius + 1`` reproduces mne-rsa's time centres.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._runtime import float32_matmuls
from .._validation import (InvalidOptionError, NonFiniteError, ShapeMismatchError,
                           ZeroVarianceError, as_float_array, check_choice, check_positive_int)
from ..rdm import METRICS, rdm_body

__all__ = ["temporal_rdms", "TemporalRDMs", "window_starts", "whiten"]

CV_METRICS = ("correlation", "cosine", "sqeuclidean")


class TemporalRDMs(NamedTuple):
    """Result of :func:`temporal_rdms`.

    Attributes
    ----------
    rdms : array (..., n_windows, n_pairs)
        Condensed RDM of every window (``scipy.spatial.distance.pdist`` order).
    times : array (n_windows,)
        Centre time of every window (in the units of ``times``; sample index without it).
    starts : int array (n_windows,)
        First sample of every window.
    """

    rdms: Any
    times: Any
    starts: Any


def window_starts(n_times: int, window: int, step: int) -> np.ndarray:
    """First samples of the windows that fit in ``n_times`` samples."""
    if window > n_times:
        raise InvalidOptionError(
            f"window of {window} samples is longer than the epoch ({n_times} samples); "
            "use a shorter window or longer epochs")
    return np.arange(0, n_times - window + 1, step)


def _cv_distances(F, metric):
    """Cross-validated distances of fold patterns F (k, n, p): mean over test folds of the
    distance between the other folds' mean and the test fold, symmetrised over the pair."""
    k = F.shape[0]
    mean = F.mean(0)
    train = (k * mean[None] - F) / (k - 1)                              # (k, n, p)
    if metric == "sqeuclidean":
        # cross-validated squared Euclidean: (a - b)_train . (a - b)_test, unbiased by noise
        G = jnp.einsum("kip,kjp->kij", train, F)
        d_tr = jnp.einsum("kip,kip->ki", train, F)
        D = d_tr[:, :, None] + d_tr[:, None, :] - G - jnp.swapaxes(G, 1, 2)
        return D.mean(0)
    if metric == "correlation":
        train = train - train.mean(-1, keepdims=True)
        F = F - F.mean(-1, keepdims=True)
    A = train / jnp.linalg.norm(train, axis=-1, keepdims=True)
    B = F / jnp.linalg.norm(F, axis=-1, keepdims=True)
    D = 1.0 - jnp.einsum("kip,kjp->kij", A, B)
    return 0.5 * (D + jnp.swapaxes(D, 1, 2)).mean(0)


def _window_rdm(X, start, *, window, metric, cv):
    """RDM of one window: X (..., [k,] n, c, t) -> (..., n_pairs)."""
    W = jax.lax.dynamic_slice_in_dim(X, start, window, axis=-1)
    W = W.reshape(W.shape[:-2] + (-1,))
    if not cv:
        return rdm_body(W, metric, triangle=False)
    n = W.shape[-2]
    i, j = np.triu_indices(n, k=1)
    flat = W.reshape((-1,) + W.shape[-3:])
    D = jax.vmap(lambda F: _cv_distances(F, metric))(flat)
    return D[:, i, j].reshape(W.shape[:-3] + (len(i),))


@partial(jax.jit, static_argnames=("window", "metric", "cv", "chunk"))
def _temporal_rdms(X, starts, *, window, metric, cv, chunk):
    out = jax.lax.map(lambda s: _window_rdm(X, s, window=window, metric=metric, cv=cv),
                      starts, batch_size=chunk)                           # (w, ..., n_pairs)
    return jnp.moveaxis(out, 0, -2)


def whiten(data, noise_cov, *, shrinkage: float = 0.1):
    """Multivariate noise normalisation: channels whitened by ``noise_cov ** -1/2``.

    Parameters
    ----------
    data : array (..., n_channels, n_times)
    noise_cov : array (..., n_channels, n_channels)
        E.g. the covariance of the baseline (pre-stimulus) samples; shrunk towards its
        mean diagonal by ``shrinkage`` (Ledoit-Wolf style) before the inverse square root.
    """
    C = np.asarray(noise_cov, float)
    c = C.shape[-1]
    if C.shape[-2:] != (c, c) or np.shape(data)[-2] != c:
        raise ShapeMismatchError(f"noise_cov has shape {C.shape}; expected (..., {np.shape(data)[-2]}, "
                                 f"{np.shape(data)[-2]}) for data with {np.shape(data)[-2]} channels")
    mu = np.trace(C, axis1=-2, axis2=-1)[..., None, None] / c
    C = (1 - shrinkage) * C + shrinkage * mu * np.eye(c)
    w, V = np.linalg.eigh(C)
    if (w <= 0).any():
        raise ZeroVarianceError("noise_cov is not positive definite even after shrinkage")
    Wm = (V / np.sqrt(w)[..., None, :]) @ np.swapaxes(V, -1, -2)
    X = np.asarray(data, float)
    lead = Wm.shape[:-2]
    if X.shape[:len(lead)] != lead:
        raise ShapeMismatchError(f"noise_cov has leading shape {lead}, data {X.shape}: give one "
                                 "covariance, or one per leading index (subject) of data")
    extra = X.ndim - 2 - len(lead)
    return Wm.reshape(lead + (1,) * extra + (c, c)) @ X


def _check_data(X: np.ndarray, cv: bool) -> None:
    need = 4 if cv else 3
    if X.ndim < need:
        raise ShapeMismatchError(
            f"data has shape {X.shape}; expected (..., {'n_folds, ' if cv else ''}n_stimuli, "
            "n_channels, n_times)")
    bad = ~np.isfinite(X)
    if bad.any():
        ch = np.flatnonzero(bad.any(axis=tuple(a for a in range(X.ndim) if a != X.ndim - 2)))
        lead = np.argwhere(bad.reshape(X.shape[:-3] + (-1,)).any(-1)) if X.ndim > 3 else []
        where = f" (first at leading index {tuple(int(v) for v in lead[0])})" if len(lead) else ""
        raise NonFiniteError(
            f"data has NaN or inf in channels {ch[:10].tolist()}{where}; drop or interpolate "
            "bad channels before computing RDMs")


@float32_matmuls
def temporal_rdms(data, *, metric: str = "correlation", window: int = 1, step: int = 1,
                  cv_folds: int | None = None, times=None, noise_cov=None,
                  chunk_size: int = 32) -> TemporalRDMs:
    """RDMs over time: one per sliding window of channels x samples.

    The patterns of a window flatten its channels x samples (as mne-rsa's searchlight with
    ``temporal_radius=(window - 1) // 2``); windows are computed in chunks of
    ``chunk_size`` (``lax.map``), batched over every leading axis (subjects).

    Parameters
    ----------
    data : array, shape (..., n_stimuli, n_channels, n_times)
        With ``cv_folds``: (..., n_folds, n_stimuli, n_channels, n_times), each fold the
        average of a disjoint subset of every stimulus's trials
        (:func:`alignjax.load_epochs` with ``folds=``).
    metric : {"correlation", "cosine", "euclidean", "sqeuclidean"}
        As :func:`alignjax.rdm` (``scipy.spatial.distance.pdist``).
    window : int
        Samples per window (1: one RDM per time point).
    step : int
        Samples between window starts.
    cv_folds : int, optional
        Cross-validated distances over that many folds: for each test fold, the distance
        between the mean of the other folds and the test fold, averaged over folds (the
        split mne-rsa's ``compute_rdm_cv`` documents) and symmetrised over the two
        stimuli of a pair
        (split-data correlation/cosine), or the cross-validated squared Euclidean
        distance ``(a - b)_train . (a - b)_test`` (``metric="sqeuclidean"``), whose
        expectation is the noise-free distance: noise does not inflate it.
    times : array (n_times,), optional
        Sample times; the result's ``times`` are window centres in these units.
    noise_cov : array (..., n_channels, n_channels), optional
        Multivariate noise normalisation: the data are whitened with this covariance
        (e.g. of the baseline) first (:func:`whiten`).
    chunk_size : int
        Windows per step (memory only; never changes a result).

    Returns
    -------
    TemporalRDMs
    """
    check_choice(metric, "metric", METRICS)
    window = check_positive_int(window, "window")
    step = check_positive_int(step, "step")
    cv = cv_folds is not None
    X = as_float_array(data, "data")
    _check_data(X, cv)
    if cv:
        check_choice(metric, "metric with cv_folds", CV_METRICS)
        k = check_positive_int(cv_folds, "cv_folds", minimum=2)
        if X.shape[-4] != k:
            raise ShapeMismatchError(f"cv_folds={k} but data has {X.shape[-4]} folds on axis -4 "
                                     f"(shape {X.shape})")
    if X.shape[-3] < 3:
        raise ShapeMismatchError(f"need at least 3 stimuli for an RDM, got {X.shape[-3]}")
    if noise_cov is not None:
        X = whiten(X, noise_cov)
    n_times = X.shape[-1]
    starts = window_starts(n_times, window, step)
    t = np.arange(n_times, dtype=float) if times is None else np.asarray(times, float)
    if t.shape != (n_times,):
        raise ShapeMismatchError(f"times has shape {t.shape}; data has {n_times} samples")
    mid = starts + (window - 1) // 2                     # odd windows: the middle sample's time
    centres = t[mid] if window % 2 else 0.5 * (t[mid] + t[mid + 1])
    dt = jnp.result_type(float)
    out = _temporal_rdms(jnp.asarray(X, dt), jnp.asarray(starts, jnp.int32), window=window,
                         metric=metric, cv=cv, chunk=int(check_positive_int(chunk_size, "chunk_size")))
    bad = np.isnan(np.asarray(out)).any(-1)
    if bad.any():
        w = np.unique(np.argwhere(bad)[:, -1])
        raise ZeroVarianceError(
            f"some stimuli have {'zero variance' if metric == 'correlation' else 'all-zero'} "
            f"patterns in windows starting at samples {starts[w][:5].tolist()}, so the {metric} "
            "distance is undefined there; use a longer window or metric='euclidean'")
    return TemporalRDMs(out, centres, starts)
