"""The permutation test against a direct scipy computation with the same permutations."""

import numpy as np
import pytest
import scipy.stats as ss
from scipy.spatial.distance import squareform

import alignjax as aj


def _loop_null(A, B, perms):
    null = np.empty((len(perms), len(A), len(B)))
    for k, p in enumerate(perms):
        for a, ra in enumerate(A):
            p = np.asarray(p)
            sq = squareform(ra)[p][:, p]
            for b, rb in enumerate(B):
                null[k, a, b] = ss.spearmanr(squareform(sq, checks=False), rb)[0]
    return null


@pytest.mark.parametrize("n_a, n_b", [(3, 2), (1, 4)])
def test_null_and_pvalues_match_scipy_loop(n_a, n_b, rng):
    n = 12
    X = rng.normal(size=(n_a + n_b, n, 5))
    R = np.asarray(aj.rdm(X))
    A, B = R[:n_a], R[n_a:].copy()
    B[0] = A[0] + 0.3 * rng.normal(size=A.shape[1])  # one real effect
    res = aj.rsa_permutation_test(A, B, n_perm=200, seed=3, return_null=True)
    perms = aj.stimulus_permutations(n, 200, seed=3)
    null = _loop_null(A, B, perms)
    np.testing.assert_allclose(np.asarray(res.null), null, atol=2e-5)
    r = np.array([[ss.spearmanr(a, b)[0] for b in B] for a in A])
    np.testing.assert_allclose(np.asarray(res.r), r, atol=2e-5)
    p = (1 + (null >= r - 1e-6).sum(0)) / 201
    fam = null.reshape(200, -1).max(1)
    p_fwe = (1 + (fam[:, None, None] >= r[None] - 1e-6).sum(0)) / 201
    np.testing.assert_allclose(np.asarray(res.p), p, atol=1e-6)
    np.testing.assert_allclose(np.asarray(res.p_fwe), p_fwe, atol=1e-6)


@pytest.mark.parametrize("alternative", ["less", "two-sided"])
def test_other_alternatives(alternative, rng):
    R = np.asarray(aj.rdm(rng.normal(size=(3, 10, 4))))
    res = aj.rsa_permutation_test(R[:2], R[2:], n_perm=100, seed=1, alternative=alternative,
                                  return_null=True)
    null, r = np.asarray(res.null), np.asarray(res.r)
    if alternative == "less":
        want = (1 + (null <= r + 1e-6).sum(0)) / 101
    else:
        want = (1 + (np.abs(null) >= np.abs(r) - 1e-6).sum(0)) / 101
    np.testing.assert_allclose(np.asarray(res.p), want, atol=1e-6)


def test_exact_enumeration_for_small_n(rng):
    R = np.asarray(aj.rdm(rng.normal(size=(2, 5, 3))))
    res = aj.rsa_permutation_test(R[:1], R[1:], n_perm=1000, return_null=True)
    assert res.exact and res.n_perm == 120
    import itertools
    null = _loop_null(R[:1], R[1:], list(itertools.permutations(range(5))))
    np.testing.assert_allclose(np.sort(np.asarray(res.null).ravel()), np.sort(null.ravel()), atol=1e-5)
    want = (null >= np.asarray(res.r) - 1e-6).sum() / 120
    np.testing.assert_allclose(float(res.p[0, 0]), want)
