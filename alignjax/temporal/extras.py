"""Around temporal RSA: noise ceiling over time, peak latency CIs, partial RSA over time."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .._validation import InvalidOptionError, ShapeMismatchError, as_float_array, \
    check_choice, check_positive_int
from ..rsa import METHODS, noise_ceiling, partial_compare
from .rsa import _as_brain, _as_model, _check_pairs, temporal_rsa

__all__ = ["temporal_noise_ceiling", "TemporalNoiseCeiling", "peak_latency", "PeakLatency",
           "temporal_partial_rsa", "TemporalPartialRSA"]


class TemporalNoiseCeiling(NamedTuple):
    """Noise ceiling at every time point (:func:`alignjax.noise_ceiling` per time).

    Attributes
    ----------
    lower, upper : arrays (n_times,)
    """

    lower: Any
    upper: Any


def temporal_noise_ceiling(brain_rdms, *, method: str = "spearman",
                           progress: bool = False) -> TemporalNoiseCeiling:
    """Lower and upper noise ceiling of subjects' RDMs at every time point.

    Parameters
    ----------
    brain_rdms : array, shape (n_subjects, n_times, n_pairs), n_subjects >= 2
    method : {"spearman", "pearson", "cosine", "rho_a", "tau_a"}
    progress : bool
        Show a progress bar over time points.
    """
    check_choice(method, "method", METHODS)
    B = _as_brain(brain_rdms)
    if B.shape[0] < 2:
        raise ShapeMismatchError("a noise ceiling needs RDMs from at least 2 subjects")
    from tqdm.auto import tqdm

    lo, up = np.empty(B.shape[1]), np.empty(B.shape[1])
    for t in tqdm(range(B.shape[1]), desc="noise ceiling", disable=not progress, leave=False):
        nc = noise_ceiling(B[:, t], method=method)
        lo[t], up[t] = float(nc.lower), float(nc.upper)
    return TemporalNoiseCeiling(lo, up)


class PeakLatency(NamedTuple):
    """Result of :func:`peak_latency`.

    Attributes
    ----------
    latency : array (n_layers,)
        Time of the maximum of the subject-mean RSA time course.
    ci : array (2, n_layers)
        Confidence interval (low, high) over subjects.
    samples : array (n_samples, n_layers)
        Bootstrap (or leave-one-subject-out) latencies.
    """

    latency: Any
    ci: Any
    samples: Any


def peak_latency(rsa, times, *, n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
                 resampling: str = "bootstrap") -> PeakLatency:
    """Peak latency of every layer's RSA time course, with a CI over subjects.

    Parameters
    ----------
    rsa : array, shape (n_layers, n_subjects, n_times)
        E.g. :func:`temporal_rsa`.
    times : array (n_times,)
    n_boot : int
        Bootstrap samples of subjects (drawn with replacement).
    ci : float
        Coverage.
    seed : int
    resampling : {"bootstrap", "jackknife"}
        ``"bootstrap"``: percentile interval of the peak of the mean over resampled
        subjects. ``"jackknife"``: leave-one-subject-out latencies, interval
        ``latency -/+ z * se`` with the jackknife standard error.
    """
    check_choice(resampling, "resampling", ("bootstrap", "jackknife"))
    R = as_float_array(rsa, "rsa", ndim=3)
    t = np.asarray(times, float)
    if t.shape != (R.shape[2],):
        raise ShapeMismatchError(f"times has shape {t.shape}; rsa has {R.shape[2]} time points")
    if not 0 < ci < 1:
        raise InvalidOptionError(f"ci must be in (0, 1), got {ci}")
    S = R.shape[1]
    latency = t[np.argmax(R.mean(1), axis=-1)]
    if resampling == "bootstrap":
        idx = np.random.default_rng(seed).integers(0, S, (check_positive_int(n_boot, "n_boot"), S))
        samples = t[np.argmax(R[:, idx].mean(2), axis=-1)].T                 # (n_boot, L)
        q = 100 * np.array([(1 - ci) / 2, (1 + ci) / 2])
        return PeakLatency(latency, np.percentile(samples, q, axis=0), samples)
    if S < 3:
        raise ShapeMismatchError("a jackknife CI needs at least 3 subjects")
    from scipy import stats

    loo = np.stack([t[np.argmax(np.delete(R, s, 1).mean(1), axis=-1)] for s in range(S)])
    se = np.sqrt((S - 1) / S * ((loo - loo.mean(0)) ** 2).sum(0))
    z = stats.norm.ppf((1 + ci) / 2)
    return PeakLatency(latency, np.stack([latency - z * se, latency + z * se]), loo)


class TemporalPartialRSA(NamedTuple):
    """Result of :func:`temporal_partial_rsa`.

    Attributes
    ----------
    r : array (n_layers, n_subjects, n_times)
        Model-brain RSA.
    r_partial : array (n_layers, n_subjects, n_times)
        Model-brain RSA after regressing the control RDM out of the model RDM.
    control_r : array (n_subjects, n_times)
        Control-brain RSA (rho).
    control_r_partial : array (n_layers, n_subjects, n_times)
        Control-brain RSA after regressing each model RDM out of the control RDM.
    share : array (n_layers, n_subjects, n_times)
        Share of the control-brain RSA the model accounts for: ``1 - partial rho^2 / rho^2``.
    """

    r: Any
    r_partial: Any
    control_r: Any
    control_r_partial: Any
    share: Any


def temporal_partial_rsa(model_rdms, brain_rdms, control_rdm, *,
                         method: str = "spearman") -> TemporalPartialRSA:
    """Partial RSA over time with a control RDM (e.g. an acoustic-envelope RDM).

    Semi-partial correlations as :func:`alignjax.partial_compare` (the control, or the
    model, is regressed out of the other RDM; ranks first for ``spearman``).

    Parameters
    ----------
    model_rdms : array, shape (n_layers, n_pairs)
    brain_rdms : array, shape (n_subjects, n_times, n_pairs)
    control_rdm : array, shape (n_pairs,)
    method : {"spearman", "pearson"}
    """
    check_choice(method, "method", ("spearman", "pearson"))
    M, B = _as_model(model_rdms), _as_brain(brain_rdms)
    if M.ndim != 2:
        raise ShapeMismatchError("temporal_partial_rsa needs static model RDMs (n_layers, n_pairs)")
    c = as_float_array(control_rdm, "control_rdm", ndim=(1, 2)).reshape(1, -1)
    _check_pairs(M, B)
    _check_pairs(c, B)
    L, S, T = M.shape[0], B.shape[0], B.shape[1]
    flat = B.reshape(S * T, -1)
    r = np.asarray(temporal_rsa(M, B, method=method))
    rp = np.asarray(partial_compare(M, flat, c, method=method)).reshape(L, S, T)
    cr = np.asarray(temporal_rsa(c, B, method=method))[0]
    crp = np.stack([np.asarray(partial_compare(c, flat, M[l:l + 1], method=method))[0]
                    for l in range(L)]).reshape(L, S, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = 1.0 - crp ** 2 / cr[None] ** 2
    # the model explains the control RDM entirely (partial_compare gives NaN): all of it
    share = np.where(np.isnan(crp) & np.isfinite(cr)[None], 1.0, share)
    return TemporalPartialRSA(r, rp, cr, crp, share)
