"""Calibration of the time-resolved tests on null data with autocorrelated noise.

Sign-flip cluster/TFCE/max-T tests over subjects, and the stimulus-permutation temporal
RSA test with max and cluster FWE over time x layer: over many null data sets the
family-wise error rate is at most the nominal level (within Monte-Carlo error), the
p-value of the family's maximum is not anti-conservative at any level, and uncorrected
p-values are uniform; a planted window is recovered and nothing outside it is flagged.
FWE counts are held to an exact binomial bound at the attainable size of p < 0.05 with
100 sign-flip / permutation sets (0.04): at 80 sets a true FWER of 0.1 still passes with
probability 0.83 (0.2: 0.06); the slow variants' 600 sets fail it with probability 0.997.
"""

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import kstest

from alignjax.clusters import cluster_permutation_test, max_t_test
from alignjax.temporal import temporal_rdms, temporal_rsa_permutation_test
from tests.calibration._binomial import attainable_size, fwer_ok

ALPHA = 0.05
SIZE = attainable_size(100)   # n_perm=100 sign flips (observed included), or 99 + observed


def _fwe_ok(hits):
    fwer_ok(hits, SIZE)


def _not_anticonservative(p, grid=(0.05, 0.1, 0.25, 0.5), z=3.3):
    p = np.asarray(p, float)
    for u in grid:
        assert np.mean(p <= u) <= u + z * np.sqrt(u * (1 - u) / p.size), (u, np.mean(p <= u))


def _ar_noise(rng, shape, phi=0.8):
    e = rng.standard_normal(shape)
    out = np.empty(shape)
    out[..., 0] = e[..., 0]
    for t in range(1, shape[-1]):
        out[..., t] = phi * out[..., t - 1] + np.sqrt(1 - phi**2) * e[..., t]
    return out


@pytest.mark.parametrize("n_sets", [80, pytest.param(600, marks=pytest.mark.slow)])
def test_sign_flip_tests_hold_fwe_on_autocorrelated_nulls(n_sets):
    rng = np.random.default_rng(0)
    p_cluster, p_tfce, p_maxt = [], [], []
    for ds in range(n_sets):
        X = _ar_noise(rng, (10, 24))
        c = cluster_permutation_test(X, n_perm=100, seed=ds)
        p_cluster.append(c.cluster_p.min() if c.cluster_p.size else 1.0)
        if ds < n_sets // 2 or n_sets >= 600:    # TFCE: half the sets in CI, all when slow
            p_tfce.append(cluster_permutation_test(X, n_perm=100, tfce=True, seed=ds)
                          .cluster_p.min())
        p_maxt.append(max_t_test(X, n_perm=100, seed=ds).p.min())
    for p in (p_cluster, p_maxt):
        _fwe_ok(np.asarray(p) < ALPHA)
        _not_anticonservative(p)
    _fwe_ok(np.asarray(p_tfce) < ALPHA)
    # the family maximum's p is uniform over its support (continuous max-|t| statistic)
    assert kstest(p_maxt, "uniform").pvalue > 1e-3


def _null_temporal(rng, n=10, L=3, S=2, C=5, T=12):
    model = np.stack([pdist(rng.standard_normal((n, 4))) for _ in range(L)])
    brain = np.asarray(temporal_rdms(_ar_noise(rng, (S, n, C, T))).rdms)
    return model, brain


@pytest.mark.parametrize("n_sets", [80, pytest.param(600, marks=pytest.mark.slow)])
@pytest.mark.parametrize("correction", ["max", "cluster"])
def test_temporal_rsa_test_holds_fwe_over_time_and_layers(correction, n_sets):
    rng = np.random.default_rng(1)
    any_fwe, p_cell = [], []
    for ds in range(n_sets):
        model, brain = _null_temporal(rng)
        res = temporal_rsa_permutation_test(model, brain, n_perm=99, seed=ds,
                                            correction=correction)
        any_fwe.append(bool((res.p_fwe < ALPHA).any()))
        p_cell.append(res.p[0, 0, 0])
    _fwe_ok(any_fwe)
    _not_anticonservative(p_cell)
    assert kstest(p_cell, "uniform").pvalue > 1e-3


def test_planted_window_is_recovered_and_nothing_outside():
    rng = np.random.default_rng(2)
    n, C, T, S = 16, 8, 30, 4
    feats = rng.standard_normal((n, C))
    model = np.stack([pdist(feats), pdist(rng.standard_normal((n, 6)))])   # planted, decoy
    gain = np.zeros(T)
    gain[12:20] = 1.5
    X = _ar_noise(rng, (S, n, C, T)) + gain * feats[None, :, :, None]
    brain = np.asarray(temporal_rdms(X).rdms)
    res = temporal_rsa_permutation_test(model, brain, n_perm=500, correction="cluster",
                                        average_subjects=True)
    sig = res.p_fwe[0, 0] < ALPHA
    assert sig[12:20].all()                        # the planted window
    assert not sig[:11].any() and not sig[21:].any()
    assert not (res.p_fwe[1] < ALPHA).any()        # the decoy layer
