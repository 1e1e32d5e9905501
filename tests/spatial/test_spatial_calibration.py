"""Calibration of the spatial probes' permutation test on null data: p uniform (KS) and
the family-wise rate of max-T over layers held, and a planted effect detected."""

import numpy as np
import pytest
from scipy.stats import kstest

import alignjax as aj

ALPHA = 0.05
N, P, N_PERM = 32, 3, 39


def _null(seed):
    rng = np.random.default_rng(seed)
    layers = [rng.normal(size=(N, P)) for _ in range(3)]
    lab = {"elevation": rng.normal(size=N), "distance": np.exp(rng.normal(size=N) * 0.3)}
    return layers, lab


def _run(n_sets):
    ps, any_fwe = [], []
    for ds in range(n_sets):
        layers, lab = _null(ds)
        res = aj.spatial_probe(layers, lab, factors=["elevation"], folds=4, inner_folds=3,
                               alphas=[1.0, 100.0], n_boot=0, n_perm=N_PERM, seed=ds)
        df = res.to_frame()
        ps.append(df["p"].to_numpy()[0])          # one layer per data set: independent
        any_fwe.append(bool((df["p_fwe"] < ALPHA).any()))
    return np.array(ps), np.array(any_fwe)


def test_spatial_ridge_permutation_p_uniform_and_fwe_held():
    ps, fwe = _run(120)
    assert kstest(ps + np.random.default_rng(0).uniform(-1, 0, ps.size) / (N_PERM + 1),
                  "uniform").pvalue > 1e-3           # randomised p of a discrete test
    sd = np.sqrt(ALPHA * (1 - ALPHA) / fwe.size)
    assert fwe.mean() <= ALPHA + 3.3 * sd
    assert abs(np.mean(ps <= ALPHA) - ALPHA) <= 3.3 * sd


def test_planted_effect_detected():
    layers, lab = _null(0)
    layers[1] = layers[1] + 2.0 * lab["elevation"][:, None]
    res = aj.spatial_probe(layers, lab, factors=["elevation"], folds=4, inner_folds=3,
                           alphas=[1.0, 100.0], n_boot=0, n_perm=N_PERM)
    p_fwe = res.to_frame()["p_fwe"].to_numpy()
    assert p_fwe[1] <= 1 / (N_PERM + 1) + 1e-9 and p_fwe[0] > ALPHA


@pytest.mark.slow
def test_spatial_ridge_permutation_calibration_large():
    ps, fwe = _run(600)
    assert kstest(ps + np.random.default_rng(0).uniform(-1, 0, ps.size) / (N_PERM + 1),
                  "uniform").pvalue > 1e-3
    assert fwe.mean() <= ALPHA + 3.3 * np.sqrt(ALPHA * (1 - ALPHA) / fwe.size)
