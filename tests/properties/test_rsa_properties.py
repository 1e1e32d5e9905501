"""Hypothesis properties of RDMs and RSA, on a few fixed shapes (no recompiles per example)."""

import numpy as np
import pytest
import scipy.stats as ss
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import alignjax as aj

N, P = 9, 4
finite = st.floats(-100, 100, allow_nan=False, width=32)
features = arrays(np.float64, (N, P), elements=finite)


@settings(max_examples=25, deadline=None)
@given(features, st.sampled_from(aj.rdm_metrics))
def test_rdm_is_symmetric_zero_diagonal_nonnegative(X, metric):
    X = X + np.arange(P)[None, :] * 1e-3 * (1 + np.arange(N))[:, None]  # no constant rows
    if metric == "cosine" and (np.abs(X).sum(1) == 0).any():
        return
    if metric == "correlation" and (np.ptp(X, 1) < 1e-6).any():
        return
    sq = np.asarray(aj.squareform(aj.rdm(X, metric=metric)))
    assert np.allclose(sq, sq.T)
    assert np.all(np.diag(sq) == 0)
    assert np.all(sq >= 0)


@settings(max_examples=25, deadline=None)
@given(arrays(np.int64, (2, 36), elements=st.integers(-1000, 1000)).map(lambda a: a / 100.0),
       st.sampled_from([np.exp, np.arctan, lambda x: x**3 + x]))
def test_spearman_invariant_under_monotone_maps(R, f):
    if (np.ptp(R, axis=1) == 0).any():
        return
    a = float(np.asarray(aj.compare(R[0], R[1]))[0, 0])
    b = float(np.asarray(aj.compare(f(R[0]), R[1]))[0, 0])
    if np.ptp(f(R[0])) == 0:
        return
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a, ss.spearmanr(R[0], R[1])[0], atol=1e-5)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_p_values_in_range(seed):
    rng = np.random.default_rng(seed)
    R = np.asarray(aj.rdm(rng.normal(size=(3, 10, 3))))
    res = aj.rsa_permutation_test(R[:2], R[2:], n_perm=50, seed=seed % 1000)
    p, pf = np.asarray(res.p), np.asarray(res.p_fwe)
    assert np.all(p >= 1 / 51 - 1e-7) and np.all(p <= 1)
    assert np.all(pf >= p - 1e-7) and np.all(pf <= 1)


def test_p_values_uniform_under_null():
    """Many independent null data sets: p-values ~ U(0, 1) (KS test) and 5% false positives."""
    rng = np.random.default_rng(7)
    n_sets, n = 300, 12
    A = np.asarray(aj.rdm(rng.normal(size=(n_sets, n, 6))))
    B = np.asarray(aj.rdm(rng.normal(size=(1, n, 6))))
    # one B against many independent A RDMs: each cell is an independent null test
    res = aj.rsa_permutation_test(A, B, n_perm=199, seed=1)
    p = np.asarray(res.p)[:, 0]
    assert ss.kstest(p, "uniform").pvalue > 0.01
    assert 0.01 < np.mean(p <= 0.05) < 0.10
    # the FWE-corrected p over the family of 300 is rarely significant under the null
    assert np.mean(np.asarray(res.p_fwe) <= 0.05) <= 0.05


def test_planted_strong_effect_gets_minimum_p(rng):
    X = rng.normal(size=(30, 8))
    a = np.asarray(aj.rdm(X))
    b = np.asarray(aj.rdm(X + 0.05 * rng.normal(size=X.shape)))
    res = aj.rsa_permutation_test(a, b, n_perm=500)
    assert float(res.p[0, 0]) == pytest.approx(1 / 501)
    assert float(res.p_fwe[0, 0]) == pytest.approx(1 / 501)
