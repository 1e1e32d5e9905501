"""Temporal RDMs and RSA against mne-rsa (rsa_array / searchlight) and rsatoolbox
(calc_rdm_movie), and the temporal permutation test against rsa_permutation_test."""

import numpy as np
import pytest
from scipy.spatial.distance import pdist

import alignjax as aj
from alignjax.temporal import temporal_rdms, temporal_rsa, temporal_rsa_permutation_test

N, C, T = 10, 6, 16


def _epochs(seed=0, S=None):
    rng = np.random.default_rng(seed)
    shape = (N, C, T) if S is None else (S, N, C, T)
    return np.cumsum(rng.standard_normal(shape), axis=-1) + rng.standard_normal(shape)


@pytest.mark.parametrize("radius", [0, 2])
def test_rsa_matches_mne_rsa_rsa_array(radius):
    mne_rsa = pytest.importorskip("mne_rsa")
    X = _epochs()
    model = pdist(np.random.default_rng(1).standard_normal((N, 4)))
    ref = mne_rsa.rsa_array(X, model, patches=mne_rsa.searchlight(X.shape, temporal_radius=radius),
                            data_rdm_metric="correlation", rsa_metric="spearman")
    times = np.arange(T) / 100.0 - 0.05
    R = temporal_rdms(X, window=2 * radius + 1, times=times)
    ours = np.asarray(temporal_rsa(model, R.rdms))[0, 0]
    assert ours.shape == ref.shape == (T - 2 * radius,)                # edges dropped
    np.testing.assert_allclose(ours, ref, atol=2e-5)
    centres = mne_rsa.searchlight(X.shape, temporal_radius=radius).time_centers
    np.testing.assert_allclose(R.times, times[centres])                # window centres


def test_cross_validated_rdms_match_scipy_definition():
    """mne-rsa documents the same split (mean of the other folds against the test fold)
    but its compute_rdm_cv (1.0) builds the training mean as ``mean - (mean - test) /
    (k - 1)``, which keeps the test fold in it; checked here against scipy's cdist on the
    documented definition instead."""
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(2)
    k = 3
    folds = rng.standard_normal((k, N, C, T))
    ours = np.asarray(temporal_rdms(folds, window=3, cv_folds=k).rdms)
    i, j = np.triu_indices(N, 1)
    for w in range(T - 2):
        X = folds[..., w:w + 3].reshape(k, N, -1)
        D = sum(cdist(np.delete(X, f, 0).mean(0), X[f], "correlation") for f in range(k)) / k
        np.testing.assert_allclose(ours[w], 0.5 * (D + D.T)[i, j], atol=2e-5)


def test_cross_validated_euclidean_is_unbiased_by_noise():
    rng = np.random.default_rng(3)
    signal = rng.standard_normal((N, 40, 1))
    clean = pdist(signal[..., 0], "sqeuclidean")
    folds = signal[None] + 2.0 * rng.standard_normal((4, N, 40, 200))
    cv = np.asarray(temporal_rdms(folds, metric="sqeuclidean", cv_folds=4).rdms).mean(0)
    naive = np.asarray(temporal_rdms(folds.mean(0), metric="sqeuclidean").rdms).mean(0)
    assert abs(cv.mean() / clean.mean() - 1) < 0.05        # noise cancels across folds
    assert naive.mean() > clean.mean() * 1.2               # ... but inflates the plain distance


@pytest.mark.parametrize("metric, scale", [("correlation", 1), ("sqeuclidean", C)])
def test_rdms_match_rsatoolbox_calc_rdm_movie(metric, scale):
    from rsatoolbox.data import TemporalDataset
    from rsatoolbox.rdm import calc_rdm_movie

    X = _epochs(seed=4)
    ds = TemporalDataset(X, obs_descriptors={"conds": np.arange(N)},
                         time_descriptors={"time": np.arange(T) / 100.0})
    ref = calc_rdm_movie(ds, method="euclidean" if metric == "sqeuclidean" else metric,
                         descriptor="conds")
    ours = np.asarray(temporal_rdms(X, metric=metric).rdms) / scale
    np.testing.assert_allclose(ours, ref.dissimilarities, rtol=2e-5, atol=2e-6)


def test_one_time_point_equals_rsa_permutation_test():
    rng = np.random.default_rng(5)
    model = np.stack([pdist(rng.standard_normal((N, 4))) for _ in range(3)])
    brain = np.asarray(temporal_rdms(_epochs(6, S=2)).rdms)
    ours = temporal_rsa_permutation_test(model, brain[:, 3:4], n_perm=300, seed=7)
    ref = aj.rsa_permutation_test(model, brain[:, 3], n_perm=300, seed=7)
    np.testing.assert_allclose(ours.r[..., 0], ref.r, atol=1e-6)
    np.testing.assert_array_equal(ours.p[..., 0], np.asarray(ref.p))
    np.testing.assert_array_equal(ours.p_fwe[..., 0], np.asarray(ref.p_fwe))
