"""Simulated EEG with a planted layer expressed in a known time window (for the demo).

Each subject's epochs are 64 channels at 100 Hz from -100 to 800 ms. Inside the planted
window the channels carry a noisy linear read-out of the planted layer's dominant
structure (switched on and off with raised-cosine ramps); everywhere there is spatially
and temporally correlated noise (an AR(1) process over samples, mixed over channels).
Without a feature store, a synthetic one is written too: ``n_layers`` layers of 165
stimuli whose structure drifts away from the planted layer with depth.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from alignjax.errors import check_positive_int

__all__ = ["simulate_eeg", "synthetic_layers", "run_eeg_demo", "PLANTED_WINDOW", "PLANTED_LAYER"]

PLANTED_WINDOW = (0.25, 0.5)
PLANTED_LAYER = "layer3"


def synthetic_layers(out: str | os.PathLike, *, n_stimuli: int = 165, n_layers: int = 6,
                     n_features: int = 48, seed: int = 0) -> Path:
    """Write a directory of per-layer ``.npy`` (+ ``stimulus_ids.txt``): layers whose
    stimulus geometry drifts gradually with depth (neighbouring layers are similar)."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids = [f"sound{i:03d}" for i in range(n_stimuli)]
    (out / "stimulus_ids.txt").write_text("\n".join(ids) + "\n")
    X = rng.standard_normal((n_stimuli, n_features))
    for k in range(n_layers):
        X = 0.6 * X + 0.8 * rng.standard_normal((n_stimuli, n_features))
        np.save(out / f"layer{k}.npy", X.astype(np.float32))
    return out


def simulate_eeg(features: np.ndarray, stimulus_ids: Sequence[str], out: str | os.PathLike, *,
                 n_subjects: int = 8, n_channels: int = 64, sfreq: float = 100.0,
                 tmin: float = -0.1, tmax: float = 0.8, window=PLANTED_WINDOW,
                 n_trials: int = 2, snr: float = 0.6, phi: float = 0.85, seed: int = 0) -> Path:
    """Write one ``.npz`` of simulated epochs (all subjects, ``subject`` per row).

    Parameters
    ----------
    features : array (n_stimuli, n_features)
        The planted layer.
    window : (start, stop) in seconds
        Where the layer is expressed.
    n_trials : int
        Repetitions per stimulus (the file holds single trials).
    snr : float
        Signal amplitude relative to the noise standard deviation.
    phi : float
        AR(1) coefficient of the noise over samples (10 ms).

    Returns
    -------
    Path of the ``.npz`` (``data`` (n_trials_total, n_channels, n_times), ``times``,
    ``stimulus_ids``, ``subject``, ``ch_names``, and the planted ``window``).
    """
    n_subjects = check_positive_int(n_subjects, "n_subjects")
    rng = np.random.default_rng(seed)
    X = np.asarray(features, float).reshape(len(stimulus_ids), -1)
    X = (X - X.mean(0)) / (X.std(0) + 1e-12)
    U, S, _ = np.linalg.svd(X, full_matrices=False)
    basis = U[:, :10] * S[:10] / S[0]
    times = np.round(np.arange(tmin, tmax + 1e-9, 1 / sfreq), 6)
    T = times.size
    ramp = np.clip(np.minimum((times - window[0]) / 0.05, (window[1] - times) / 0.05), 0, 1)
    gain = 0.5 - 0.5 * np.cos(np.pi * ramp)
    data, ids, subj = [], [], []
    for s in range(n_subjects):
        topo = rng.standard_normal((basis.shape[1], n_channels))
        signal = basis @ topo
        signal /= signal.std()
        mix = np.eye(n_channels) + 0.3 * rng.standard_normal((n_channels, n_channels)) / np.sqrt(n_channels)
        for rep in range(n_trials):
            e = rng.standard_normal((len(stimulus_ids), n_channels, T))
            noise = np.empty_like(e)
            noise[..., 0] = e[..., 0]
            for t in range(1, T):
                noise[..., t] = phi * noise[..., t - 1] + np.sqrt(1 - phi ** 2) * e[..., t]
            noise = np.einsum("ij,sjt->sit", mix, noise)
            data.append(snr * np.sqrt(n_trials) * signal[:, :, None] * gain + noise)
            ids += list(stimulus_ids)
            subj += [f"sub{s + 1:02d}"] * len(stimulus_ids)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, data=np.concatenate(data).astype(np.float32), times=times,
             stimulus_ids=np.asarray(ids), subject=np.asarray(subj),
             ch_names=np.asarray([f"EEG{c:03d}" for c in range(n_channels)]),
             window=np.asarray(window, float))
    (out.parent / "planted.json").write_text(json.dumps(
        {"window_s": list(window), "sfreq": sfreq, "n_subjects": n_subjects,
         "n_channels": n_channels, "n_trials": n_trials, "snr": snr, "ar_phi": phi}, indent=1))
    return out


def run_eeg_demo(out: str | os.PathLike = "eeg-demo", *, n_stimuli: int = 165,
                 n_subjects: int = 8, n_channels: int = 64, n_perm: int = 1000,
                 seed: int = 0, progress: bool = True, log=print) -> dict:
    """The EEG demo: synthetic features, simulated epochs with ``layer3`` planted at
    250-500 ms, time-resolved RSA, and checks of the findings against the planted truth.

    Writes ``features/``, ``epochs.npz``, ``results/`` (the ``temporal-rsa`` outputs) and
    ``eeg_checks.json``; returns ``{"checks": [...]}`` (each with ``passed``).
    """
    from alignjax.io import load_layers
    from alignjax.app.studies.temporal import run_temporal_rsa

    out = Path(out)
    feats = synthetic_layers(out / "features", n_stimuli=n_stimuli, seed=seed)
    ls = load_layers(feats)
    X = np.asarray(ls.arrays[ls.names.index(PLANTED_LAYER)], float)
    log(f"1/2 simulating EEG: {n_subjects} subjects x {n_channels} channels, {PLANTED_LAYER} "
        f"planted at {1000 * PLANTED_WINDOW[0]:.0f}-{1000 * PLANTED_WINDOW[1]:.0f} ms")
    epochs = simulate_eeg(X, ls.stimulus_ids, out / "epochs.npz", n_subjects=n_subjects,
                          n_channels=n_channels, seed=seed)
    log("2/2 time-resolved RSA with cluster-mass FWE over layers x time")
    s = run_temporal_rsa(feats, epochs, out / "results", n_perm=n_perm, seed=seed,
                         progress=progress)
    times = np.asarray(s["times"])
    sig = np.asarray(s["group_p_fwe"]) < 0.05
    lo, hi = PLANTED_WINDOW
    outside = (times < lo - 0.03) | (times > hi + 0.03)     # a cluster may run a sample past
    li = s["layers"].index(PLANTED_LAYER)
    inside = (times >= lo + 0.05) & (times <= hi - 0.05)
    best = s["layers"][int(np.argmax(s["peak_r"]))]
    checks = [
        {"what": "layer with the highest peak RSA", "expected": PLANTED_LAYER, "found": best,
         "passed": best == PLANTED_LAYER},
        {"what": f"{PLANTED_LAYER} significant inside the planted window (FWE)",
         "expected": "all of it", "found": f"{sig[li, inside].mean():.0%}",
         "passed": bool(sig[li, inside].all())},
        {"what": "significant layer x time cells outside the window", "expected": "<= 5%",
         "found": f"{sig[:, outside].mean():.1%}", "passed": bool(sig[:, outside].mean() <= 0.05)},
        {"what": f"peak latency of {PLANTED_LAYER}", "expected": "250-500 ms",
         "found": f"{1000 * s['peak_latency'][li]:.0f} ms",
         "passed": bool(lo <= s["peak_latency"][li] <= hi)},
    ]
    (out / "eeg_checks.json").write_text(json.dumps({"checks": checks}, indent=1))
    for c in checks:
        log(f"  [{'ok' if c['passed'] else 'FAIL'}] {c['what']}: {c['found']} "
            f"(expected {c['expected']})")
    return {"checks": checks, "summary": s}
