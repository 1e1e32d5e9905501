"""Sign-flip cluster, TFCE and max-T tests against mne.stats (the [eeg] extra).

Exact enumeration (2 ** (n_subjects - (tail == 0)) <= n_perm): identical p-values and
null distributions, but for one documented rounding case (one-tailed cluster tests: MNE's
sign-flip set holds the identity twice and MNE does not count its float64 recomputation
when it lands one ulp short of the observed mass; alignjax counts it, so that cluster's p
is exactly 1 / 2 ** n_subjects higher). Monte Carlo: within Monte-Carlo error of MNE's.
"""

import numpy as np
import pytest

mne = pytest.importorskip("mne")
from mne.stats import permutation_cluster_1samp_test, permutation_t_test  # noqa: E402

from alignjax.clusters import cluster_permutation_test, max_t_test  # noqa: E402

mne.set_log_level("ERROR")


def _data(n=8, T=30, seed=0, C=None):
    rng = np.random.default_rng(seed)
    shape = (n, T) if C is None else (n, T, C)
    X = rng.standard_normal(shape)
    X = np.cumsum(X, axis=1) * 0.3 + rng.standard_normal(shape)
    X[:, 8:16] += 0.9
    return X


def _masks(clusters, shape):
    out = []
    for c in clusters:
        m = np.zeros(shape, bool)
        m[c] = True
        out.append(m)
    return out


@pytest.mark.parametrize("seed, short", [(0, False), (2, True)])
@pytest.mark.parametrize("tail", [0, 1, -1])
def test_cluster_exact_matches_mne(tail, seed, short):
    """Seed 2 is a data set where MNE's recomputed identity falls one ulp short of its
    observed mass (tail=+-1): its largest cluster's p is then ours minus 1/2^n, exactly."""
    X = _data(seed=seed) * (1 if tail >= 0 else -1)
    ours = cluster_permutation_test(X, n_perm=1024, tail=tail)
    t, clusters, pv, h0 = permutation_cluster_1samp_test(X, n_permutations=1024, tail=tail,
                                                         out_type="mask")
    full = 2 ** (8 - (tail == 0))
    assert ours.exact and ours.n_perm == full
    np.testing.assert_allclose(ours.t_obs, t, rtol=1e-5)
    assert len(ours.clusters) == len(clusters) > 0
    theirs = _masks(clusters, t.shape)
    order = [next(k for k, m in enumerate(theirs) if (m == o).all()) for o in ours.clusters]
    # MNE's h0: the observed statistic, then rows 1 .. full-1 of bin_perm_rep; with tail=+-1
    # the last row (all +1) is the identity again, recomputed by another formula
    dropped = np.zeros(len(order), bool)
    if tail != 0:
        mass = np.array([t[m].sum() for m in theirs])[order]
        dropped = h0[-1] < mass if tail > 0 else h0[-1] > mass
        assert h0[-1] == pytest.approx(h0[0], rel=1e-12)          # the identity, up to rounding
    assert dropped.any() == (short and tail != 0)
    np.testing.assert_array_equal(ours.cluster_p, pv[order] + dropped / full)
    np.testing.assert_allclose(np.sort(ours.h0), np.sort(h0), rtol=1e-4)
    assert ours.h0[0] == pytest.approx(h0[0], rel=1e-4)      # the observed statistic first
    if tail != 0:
        assert ours.h0[-1] == ours.h0[0]                      # our duplicate is exact


@pytest.mark.parametrize("tail", [0, 1])
def test_tfce_exact_matches_mne(tail):
    X = _data(seed=1)
    ours = cluster_permutation_test(X, n_perm=1024, tail=tail, tfce=True)
    t, _, pv, h0 = permutation_cluster_1samp_test(X, n_permutations=1024, tail=tail,
                                                  threshold=dict(start=0, step=0.2))
    np.testing.assert_allclose(ours.stat, t, rtol=1e-4, atol=1e-6)   # MNE's TFCE t_obs
    np.testing.assert_array_equal(ours.cluster_p.ravel(), pv)
    np.testing.assert_allclose(np.sort(ours.h0), np.sort(h0), rtol=1e-4)


@pytest.mark.parametrize("tail", [0, 1, -1])
def test_max_t_exact_matches_mne(tail):
    X = _data(seed=2)
    ours = max_t_test(X, n_perm=1024, tail=tail)
    t, p, h0 = permutation_t_test(X, n_permutations=1024, tail=tail)
    np.testing.assert_allclose(ours.t_obs, t, rtol=1e-5)
    np.testing.assert_array_equal(ours.p, p)
    np.testing.assert_allclose(ours.h0, h0, rtol=1e-4)


def test_spatiotemporal_adjacency_matches_mne():
    from scipy import sparse

    rng = np.random.default_rng(3)
    C = 6
    adj = sparse.random(C, C, density=0.4, random_state=3) > 0
    adj = sparse.csr_matrix(((adj + adj.T) > 0).astype(int))
    X = _data(n=7, T=12, seed=3, C=C)
    X[:, 3:8, :3] += rng.uniform(0.5, 1.5, (1, 1, 3))
    for tfce in (False, True):
        ours = cluster_permutation_test(X, n_perm=128, adjacency=adj, tfce=tfce)
        kw = dict(threshold=dict(start=0, step=0.2)) if tfce else {}
        t, clusters, pv, h0 = permutation_cluster_1samp_test(X, n_permutations=128,
                                                             adjacency=adj, out_type="mask", **kw)
        np.testing.assert_allclose(np.sort(ours.h0), np.sort(h0), rtol=1e-4)
        if tfce:
            np.testing.assert_array_equal(ours.cluster_p.ravel(), pv)
            continue
        assert len(ours.clusters) == len(clusters)
        theirs = [c.reshape(t.shape) for c in clusters]
        order = [next(k for k, m in enumerate(theirs) if (m == o).all()) for o in ours.clusters]
        np.testing.assert_array_equal(ours.cluster_p, pv[order])


@pytest.mark.slow
def test_monte_carlo_within_error_of_mne():
    X = _data(n=13, T=25, seed=4)
    n_perm = 2000
    ours = cluster_permutation_test(X, n_perm=n_perm, seed=0)
    t, clusters, pv, h0 = permutation_cluster_1samp_test(X, n_permutations=n_perm, seed=0,
                                                         out_type="mask")
    assert not ours.exact and len(ours.cluster_p) == len(pv)
    theirs = _masks(clusters, t.shape)
    order = [next(k for k, m in enumerate(theirs) if (m == o).all()) for o in ours.clusters]
    ref = pv[order]
    sd = np.sqrt(2 * np.maximum(ref * (1 - ref), 1 / n_perm) / n_perm)
    assert (np.abs(ours.cluster_p - ref) <= 4 * sd + 1e-3).all()
    mt, mp = max_t_test(X, n_perm=n_perm).p, permutation_t_test(X, n_permutations=n_perm)[1]
    sd = np.sqrt(2 * np.maximum(mp * (1 - mp), 1 / n_perm) / n_perm)
    assert (np.abs(mt - mp) <= 4 * sd + 1e-3).all()
