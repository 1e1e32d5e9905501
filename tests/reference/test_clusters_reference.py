"""Sign-flip cluster, TFCE and max-T tests against mne.stats (the [eeg] extra).

Exact enumeration (2 ** (n_subjects - (tail == 0)) <= n_perm): identical p-values and
null distributions; Monte Carlo: p-values within Monte-Carlo error of MNE's.
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


@pytest.mark.parametrize("tail", [0, 1, -1])
def test_cluster_exact_matches_mne(tail):
    X = _data() * (1 if tail >= 0 else -1)
    ours = cluster_permutation_test(X, n_perm=1024, tail=tail)
    t, clusters, pv, h0 = permutation_cluster_1samp_test(X, n_permutations=1024, tail=tail,
                                                         out_type="mask")
    assert ours.exact and ours.n_perm == 2 ** (8 - (tail == 0))
    np.testing.assert_allclose(ours.t_obs, t, rtol=1e-5)
    assert len(ours.clusters) == len(clusters) > 0
    theirs = _masks(clusters, t.shape)
    order = [next(k for k, m in enumerate(theirs) if (m == o).all()) for o in ours.clusters]
    np.testing.assert_array_equal(ours.cluster_p, pv[order])
    np.testing.assert_allclose(np.sort(ours.h0), np.sort(h0), rtol=1e-4)
    assert ours.h0[0] == pytest.approx(h0[0], rel=1e-4)      # the observed statistic first


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
