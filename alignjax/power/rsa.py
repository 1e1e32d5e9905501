"""The ``"rsa"`` design: model RDM vs subjects' brain RDMs, the group test of ``alignjax rsa``.

Generative model (condensed RDMs, each component of unit variance, built by
:func:`alignjax.power.checks.condensed_component`):

- ``m``: the model RDM (plus ``n_layers - 1`` further model RDMs unrelated to the brain,
  the other layers of the family-wise correction);
- ``T = rho m + sqrt(1 - rho**2) s``: the true brain RDM, ``s`` the part of the brain's
  geometry no model layer explains;
- subject ``k``: ``B_k = T + c e_k``, ``e_k`` independent measurement noise.

``noise_ceiling`` is the correlation of a subject's RDM with the true one,
``corr(B_k, T) = 1 / sqrt(1 + c**2)`` (what the noise-ceiling bounds of the study bracket),
and ``effect`` is the model's correlation with a subject's RDM, ``corr(B_k, m) = rho *
noise_ceiling`` (the study's ``mean_subject_r``), so ``rho = effect / noise_ceiling``
and ``effect <= noise_ceiling``. Both are Pearson correlations of the generative RDMs
(Spearman ones are slightly lower for normal entries). ``stimulus_share`` is the share of
each entry's variance that belongs to its two stimuli (0: entries independent, the
optimistic case; RDMs of response patterns have more).

Analysis: the study's group test (``alignjax rsa``, :func:`alignjax.app.studies.rsa.run_rsa`):
the subjects' RDMs averaged, :func:`alignjax.rsa_permutation_test` of every model layer
against the group RDM (stimulus labels permuted, FWE by the maximum over layers); detected
when the true layer's ``p_fwe < alpha``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from alignjax.errors import InvalidOptionError, StoreError, check_choice, check_positive_int

from .checks import (analysis_seed, check_alpha, check_at_least, check_unit_interval,
                     condensed_component)
from .registry import PowerDesign, register

__all__ = ["DESIGN", "simulate_rdms", "rsa_from_results"]


def _check(point, effect, options):
    check_at_least(point, "n_stimuli", 4)
    check_at_least(point, "n_subjects", 1)
    nc = check_unit_interval(point["noise_ceiling"], "noise_ceiling", closed_high=True)
    if nc == 0:
        raise InvalidOptionError("noise_ceiling must be > 0 (a subject's RDM with no relation "
                                 "to the true one cannot show any effect)")
    check_unit_interval(effect, "effect (the model-brain r)", closed_high=True)
    if effect > nc:
        raise InvalidOptionError(f"effect r={effect} exceeds the noise ceiling {nc}: no model "
                                 "can correlate with a subject's RDM beyond it")
    check_alpha(options["alpha"])
    check_positive_int(options["n_perm"], "n_perm")
    check_positive_int(options["n_layers"], "n_layers")
    check_choice(options["method"], "method", ("spearman", "pearson", "cosine", "rho_a"))
    check_unit_interval(options["stimulus_share"], "stimulus_share")


def _memory(point, options):
    n, s, L = point["n_stimuli"], point["n_subjects"], options["n_layers"]
    n_pairs = n * (n - 1) // 2
    return 8 * n_pairs * (s + L + 6) + 8 * L * n * n


def simulate_rdms(rng, *, n_stimuli: int, n_subjects: int, effect: float,
                  noise_ceiling: float, n_layers: int = 1, stimulus_share: float = 0.0):
    """One simulated data set of the rsa design -> (model RDMs (n_layers, n_pairs), subject
    RDMs (n_subjects, n_pairs)); layer 0 carries the effect."""
    rho = effect / noise_ceiling
    c = np.sqrt(1 / noise_ceiling**2 - 1)
    m, shared = condensed_component(rng, n_layers, n_stimuli, stimulus_share), \
        condensed_component(rng, 1, n_stimuli, stimulus_share)[0]
    true = rho * m[0] + np.sqrt(max(1 - rho * rho, 0.0)) * shared
    noise = condensed_component(rng, n_subjects, n_stimuli, stimulus_share)
    return m.astype(np.float32), (true + c * noise).astype(np.float32)


def _simulate(point, effect, options, seeds, bar):
    from alignjax.rsa import rsa_permutation_test

    out = np.zeros(len(seeds))
    for k, ss in enumerate(seeds):
        rng = np.random.default_rng(ss)
        model, subjects = simulate_rdms(
            rng, n_stimuli=point["n_stimuli"], n_subjects=point["n_subjects"], effect=effect,
            noise_ceiling=point["noise_ceiling"], n_layers=options["n_layers"],
            stimulus_share=options["stimulus_share"])
        group = subjects.mean(0, keepdims=True)
        res = rsa_permutation_test(model, group, method=options["method"],
                                   n_perm=options["n_perm"], seed=analysis_seed(rng))
        out[k] = float(np.asarray(res.p_fwe)[0, 0]) < options["alpha"]
        bar.update(1)
    return out


def rsa_from_results(results_dir) -> dict:
    """Effect and noise ceiling from a pilot ``alignjax rsa`` results folder (``rsa.json``).

    ``effect``: the best layer's mean per-subject r; ``noise_ceiling``: the midpoint of the
    pilot's lower and upper noise-ceiling bounds (the true ceiling lies between them);
    ``method``: the pilot's comparison method.
    """
    path = Path(results_dir) / "rsa.json"
    if not path.is_file():
        raise StoreError(f"{results_dir}: no rsa.json; give the --out folder of an "
                         "'alignjax rsa' run")
    summary = json.loads(path.read_text())
    if not summary.get("noise_ceiling") or not summary.get("mean_subject_r"):
        raise StoreError(f"{path}: the pilot has a single subject, so it holds no noise ceiling "
                         "or mean per-subject r; give --effect-r and --noise-ceiling instead")
    nc = summary["noise_ceiling"]
    ceiling = float(np.clip((nc["lower"] + nc["upper"]) / 2, 1e-3, 1.0))
    effect = float(np.clip(max(summary["mean_subject_r"]), 0.0, ceiling))
    return {"effect": effect, "noise_ceiling": ceiling, "method": summary.get("method", "spearman")}


DESIGN = register(PowerDesign(
    name="rsa", grid_params={"n_stimuli": 40, "n_subjects": 10, "noise_ceiling": 1.0},
    integer_params=("n_stimuli", "n_subjects"),
    options={"alpha": 0.05, "n_perm": 500, "method": "spearman", "n_layers": 1,
             "stimulus_share": 0.0},
    check=_check, memory_bytes=_memory, simulate=_simulate, from_results=rsa_from_results))
