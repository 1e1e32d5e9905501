"""Temporal RSA: searchlight against mne-rsa, frame-wise null calibration, extras,
transform tests (chunk size, device count, jit), and the bad-input errors."""

import numpy as np
import pytest
from scipy.spatial.distance import pdist

import alignjax as aj
from alignjax.errors import (InvalidOptionError, NonFiniteError, ShapeMismatchError,
                             ZeroVarianceError)
from alignjax.clusters import InsufficientSubjectsError

N, C, T, S = 10, 6, 16, 3


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    data = np.cumsum(rng.standard_normal((S, N, C, T)), -1) + rng.standard_normal((S, N, C, T))
    model = np.stack([pdist(rng.standard_normal((N, 4))) for _ in range(2)])
    return data, model


def test_searchlight_matches_mne_rsa(problem):
    mne_rsa = pytest.importorskip("mne_rsa")
    data, model = problem
    adj = np.eye(C, k=1) + np.eye(C, k=-1)
    sl = aj.temporal_searchlight(model, data, adj, window=3)
    patches = mne_rsa.searchlight(data[1].shape, spatial_radius=[list(h) for h in sl.neighbourhoods],
                                  temporal_radius=1)
    ref = mne_rsa.rsa_array(data[1], model[1], patches=patches, rsa_metric="spearman")
    assert sl.r.shape == (2, S, C, T - 2)
    np.testing.assert_allclose(sl.r[1, 1], ref, atol=2e-5)


def test_results_independent_of_chunk_size_and_devices(problem):
    data, model = problem
    R = aj.temporal_rdms(data, window=3)
    np.testing.assert_allclose(aj.temporal_rdms(data, window=3, chunk_size=5).rdms, R.rdms,
                               atol=1e-6)
    kw = dict(n_perm=24, correction="cluster", cluster_threshold=0.1, seed=1)
    a = aj.temporal_rsa_permutation_test(model, R.rdms, **kw)
    b = aj.temporal_rsa_permutation_test(model, R.rdms, chunk_size=5, devices=1, **kw)
    np.testing.assert_array_equal(a.p, b.p)
    np.testing.assert_array_equal(a.p_fwe, b.p_fwe)
    X = np.random.default_rng(1).standard_normal((8, 14)) + 0.5
    a = aj.cluster_permutation_test(X, n_perm=100, seed=2)
    b = aj.cluster_permutation_test(X, n_perm=100, seed=2, chunk_size=3, devices=1)
    np.testing.assert_array_equal(a.h0, b.h0)


def test_generalisation_map_is_the_loop_over_model_times(problem):
    data, model = problem
    R = aj.temporal_rdms(data)
    frames = np.stack([model * (1 + 0.1 * k) + k for k in range(3)], axis=1)   # (L, 3, P)
    g = np.asarray(aj.temporal_rsa(frames, R.rdms))
    assert g.shape == (2, S, 3, T)
    for k in range(3):
        np.testing.assert_allclose(g[:, :, k], aj.temporal_rsa(frames[:, k], R.rdms), atol=1e-6)


def test_callable_method_gives_the_named_one(problem):
    data, model = problem
    R = aj.temporal_rdms(data)

    def pearson(A, B):
        z = lambda V: (V - V.mean(-1, keepdims=True)) / V.std(-1, keepdims=True)
        return z(A) @ z(B).T / A.shape[-1]

    np.testing.assert_allclose(aj.temporal_rsa(model, R.rdms, method=pearson),
                               aj.temporal_rsa(model, R.rdms, method="pearson"), atol=1e-5)
    a = aj.temporal_rsa_permutation_test(model, R.rdms, method=pearson, n_perm=50)
    b = aj.temporal_rsa_permutation_test(model, R.rdms, method="pearson", n_perm=50)
    np.testing.assert_allclose(a.p, b.p, atol=1e-6)


def _ar(rng, shape, phi=0.95):
    out = np.zeros(shape)
    e = rng.standard_normal(shape)
    for t in range(shape[-2]):
        out[..., t, :] = (phi * out[..., t - 1, :] if t else 0) + e[..., t, :]
    return out


@pytest.mark.parametrize("kw,words", [
    (dict(null="phase"), "periodic"), (dict(null="circular"), "lag structure"),
    (dict(null="block"), "pass block="), (dict(null="block", block=7), "equal length"),
    (dict(null="block", block=20), "fewer than 4"), (dict(block=10), "null='block'")])
def test_frame_nulls_that_are_liberal_are_refused_with_the_reason(kw, words):
    rng = np.random.default_rng(0)
    with pytest.raises(aj.InvalidOptionError, match=words):
        aj.frame_rsa_permutation_test(rng.random((1, 60, 3)), rng.random((1, 60, 4)),
                                      n_perm=9, **kw)


def test_ar_surrogate_basis_reconstructs_the_frames_and_keeps_their_autocorrelation():
    from alignjax.temporal.frames import ar_surrogate_basis

    rng = np.random.default_rng(1)
    M = _ar(rng, (200, 6), phi=0.8)
    m, V, C, phi = ar_surrogate_basis(M)
    assert 0.7 < phi < 0.9
    np.testing.assert_allclose(m + V @ C, M, atol=1e-9)          # no flips: the data
    np.testing.assert_allclose(V.T @ V, np.eye(V.shape[1]), atol=1e-9)

    def lag1(X):
        X = X - X.mean(0)
        return (X[1:] * X[:-1]).sum() / (X * X).sum()
    flips = rng.choice([-1.0, 1.0], size=(200, V.shape[1], 1))
    Z = m + np.einsum("nk,pkf->pnf", V, flips * C)
    assert abs(np.mean([lag1(z) for z in Z]) - lag1(M)) < 0.05
    # the same flips for every feature: cross-feature correlations are kept on average
    cc = np.mean([np.corrcoef(z.T)[0, 1] for z in Z])
    assert abs(cc - np.corrcoef(M.T)[0, 1]) < 0.1


def test_partial_rsa_share_and_peak_latency(problem):
    data, model = problem
    rng = np.random.default_rng(4)
    R = aj.temporal_rdms(data)
    pr = aj.temporal_partial_rsa(model, R.rdms, model[0])     # control = layer 0 itself
    np.testing.assert_allclose(pr.share[0], 1.0, atol=1e-4)  # it accounts for all of it
    assert np.isnan(pr.r_partial[0]).all() or np.allclose(pr.r_partial[0], 0, atol=1e-4)
    r = np.zeros((2, 8, 30))
    r[0, :, 12] = 1 + rng.random(8)
    r[1, :, 20] = 1
    r += 0.01 * rng.standard_normal(r.shape)
    pl = aj.peak_latency(r, np.arange(30) * 0.01, n_boot=200)
    np.testing.assert_allclose(pl.latency, [0.12, 0.20])
    assert (pl.ci[0] <= pl.latency).all() and (pl.latency <= pl.ci[1]).all()
    nc = aj.temporal_noise_ceiling(R.rdms)
    assert nc.lower.shape == (T,) and (nc.lower <= nc.upper + 1e-6).all()


def test_bad_inputs_name_what_and_where(problem):
    data, model = problem
    with pytest.raises(InvalidOptionError, match="longer than the epoch"):
        aj.temporal_rdms(data, window=T + 1)
    bad = data.copy()
    bad[1, :, 4] = np.nan
    with pytest.raises(NonFiniteError, match=r"channels \[4\]"):
        aj.temporal_rdms(bad)
    flat = data.copy()
    flat[0, 2] = 1.0
    with pytest.raises(ZeroVarianceError, match="windows starting"):
        aj.temporal_rdms(flat)
    with pytest.raises(InsufficientSubjectsError, match="at least 6 subjects"):
        aj.cluster_permutation_test(np.random.default_rng(0).standard_normal((5, 10)))
    with pytest.raises(ShapeMismatchError, match=r"must be \(4, 4\)"):
        aj.cluster_permutation_test(np.random.default_rng(0).standard_normal((8, 10, 4)),
                                    adjacency=np.eye(3))
    with pytest.raises(ShapeMismatchError, match="same stimuli"):
        aj.temporal_rsa(model[:, :10], aj.temporal_rdms(data).rdms)
    with pytest.raises(InvalidOptionError, match="correction"):
        aj.temporal_rsa_permutation_test(model, aj.temporal_rdms(data).rdms, correction="fdr")


def test_searchlight_cluster_test_finds_the_planted_channels_and_window():
    rng = np.random.default_rng(5)
    n, Cn, Tn = 12, 6, 14
    f = rng.standard_normal((n, 4))
    data = rng.standard_normal((3, n, Cn, Tn))
    data[:, :, :3, 5:9] += 2 * (f @ rng.standard_normal((4, 3)))[None, :, :, None]
    model = np.stack([pdist(f), pdist(rng.standard_normal((n, 4)))])
    adj = np.eye(Cn, k=1) + np.eye(Cn, k=-1)
    sl = aj.temporal_searchlight(model, data, adj, n_perm=100, correction="cluster")
    sig = sl.p_fwe < 0.05
    assert sl.p_fwe.shape == (2, 3, Cn, Tn)
    assert sig[0, :, :3, 5:9].mean() >= 0.9 and not sig[1].any()
    assert not sig[0, :, 5].any() and not sig[0, :, :, :4].any() and not sig[0, :, :, 10:].any()


def test_noise_normalisation_whitens_channels(problem):
    data, _ = problem
    rng = np.random.default_rng(6)
    mix = np.eye(C) + 0.5 * rng.standard_normal((C, C))
    cov = mix @ mix.T
    mixed = np.einsum("ij,snjt->snit", mix, data)
    # whitening with the mixing's covariance (no shrinkage) undoes the mixing up to a rotation,
    # which Euclidean distances do not see
    W = aj.temporal.whiten(mixed, cov, shrinkage=0.0)
    a = aj.temporal_rdms(W, metric="euclidean").rdms
    b = aj.temporal_rdms(data, metric="euclidean").rdms
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
    # a scaled identity covariance leaves correlation distances unchanged
    np.testing.assert_allclose(aj.temporal_rdms(data, noise_cov=4 * np.eye(C)).rdms,
                               aj.temporal_rdms(data).rdms, atol=1e-5)
