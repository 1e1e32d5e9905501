"""The ``"temporal_rsa"`` design: time-resolved RSA with the cluster test of ``alignjax temporal-rsa``.

Generative model: one model RDM ``m`` and, per subject and time point, a brain RDM built
as in the rsa design (:mod:`alignjax.power.rsa`): inside the effect window
``[window_start, window_stop)`` the true brain RDM is ``rho m + sqrt(1 - rho**2) s_t``,
outside it ``s_t``; subject ``k`` adds noise ``c e_{k,t}``. ``s_t`` and ``e_{k,t}``
follow an AR(1) over time with coefficient ``autocorrelation``. ``effect`` is a
subject's model-brain r inside the window, ``noise_ceiling`` as in the rsa design.

Analysis: :func:`alignjax.temporal_rsa_permutation_test` on the subject-averaged RDMs with
cluster-mass FWE over time (the group test of ``alignjax temporal-rsa``); detected when a
cluster overlapping the window has ``cluster_p < alpha``.
"""

from __future__ import annotations

import numpy as np

from alignjax.errors import InvalidOptionError, check_choice, check_positive_int

from .checks import (analysis_seed, check_alpha, check_at_least, check_unit_interval,
                     condensed_component)
from .registry import PowerDesign, register

__all__ = ["DESIGN", "simulate_temporal_rdms"]


def _check(point, effect, options):
    check_at_least(point, "n_stimuli", 4)
    check_at_least(point, "n_subjects", 1)
    T = check_positive_int(options["n_times"], "n_times", minimum=2)
    a, b = options["window_start"], options["window_stop"]
    if not 0 <= a < b <= T:
        raise InvalidOptionError(f"the effect window [{a}, {b}) must lie within the "
                                 f"{T} time points and hold at least one")
    nc = check_unit_interval(point["noise_ceiling"], "noise_ceiling", closed_high=True)
    if nc == 0 or effect > nc:
        raise InvalidOptionError(f"effect r={effect} must not exceed the noise ceiling {nc} (> 0)")
    check_unit_interval(effect, "effect (the model-brain r in the window)", closed_high=True)
    check_unit_interval(options["autocorrelation"], "autocorrelation")
    check_alpha(options["alpha"])
    check_positive_int(options["n_perm"], "n_perm")
    check_choice(options["method"], "method", ("spearman", "pearson", "cosine", "rho_a"))


def _memory(point, options):
    n, s, T = point["n_stimuli"], point["n_subjects"], options["n_times"]
    return 8 * n * (n - 1) // 2 * (T * (s + 3) + 64)


def _ar(x, phi):
    """AR(1) over axis 1 with unit stationary variance."""
    out = np.empty_like(x)
    out[:, 0] = x[:, 0]
    for t in range(1, x.shape[1]):
        out[:, t] = phi * out[:, t - 1] + np.sqrt(1 - phi * phi) * x[:, t]
    return out


def simulate_temporal_rdms(rng, *, n_stimuli, n_subjects, effect, noise_ceiling, n_times,
                           window, autocorrelation=0.0, stimulus_share=0.0):
    """One simulated data set -> (model RDM (1, n_pairs), brain RDMs (n_subjects, n_times,
    n_pairs))."""
    rho, c = effect / noise_ceiling, np.sqrt(1 / noise_ceiling**2 - 1)
    m = condensed_component(rng, 1, n_stimuli, stimulus_share)
    s = _ar(condensed_component(rng, n_times, n_stimuli, stimulus_share)[None], autocorrelation)[0]
    e = condensed_component(rng, n_subjects * n_times, n_stimuli, stimulus_share)
    e = _ar(e.reshape(n_subjects, n_times, -1), autocorrelation)
    true = s.copy()
    a, b = window
    true[a:b] = rho * m + np.sqrt(max(1 - rho * rho, 0.0)) * s[a:b]
    return m.astype(np.float32), (true[None] + c * e).astype(np.float32)


def _simulate(point, effect, options, seeds, bar):
    from alignjax.temporal import temporal_rsa_permutation_test

    win = (options["window_start"], options["window_stop"])
    out = np.zeros(len(seeds))
    for k, ss in enumerate(seeds):
        rng = np.random.default_rng(ss)
        model, brain = simulate_temporal_rdms(
            rng, n_stimuli=point["n_stimuli"], n_subjects=point["n_subjects"], effect=effect,
            noise_ceiling=point["noise_ceiling"], n_times=options["n_times"], window=win,
            autocorrelation=options["autocorrelation"], stimulus_share=options["stimulus_share"])
        res = temporal_rsa_permutation_test(model, brain, method=options["method"],
                                            n_perm=options["n_perm"], correction="cluster",
                                            seed=analysis_seed(rng), average_subjects=True)
        clusters = np.asarray(res.clusters).reshape(len(res.cluster_p), options["n_times"])
        inside = clusters[:, win[0]:win[1]].any(axis=1)
        out[k] = float(np.any(inside & (np.asarray(res.cluster_p) < options["alpha"])))
        bar.update(1)
    return out


DESIGN = register(PowerDesign(
    name="temporal_rsa", grid_params={"n_stimuli": 24, "n_subjects": 10, "noise_ceiling": 1.0},
    integer_params=("n_stimuli", "n_subjects"),
    options={"alpha": 0.05, "n_perm": 200, "method": "spearman", "n_times": 20,
             "window_start": 8, "window_stop": 12, "autocorrelation": 0.5,
             "stimulus_share": 0.0},
    check=_check, memory_bytes=_memory, simulate=_simulate))
