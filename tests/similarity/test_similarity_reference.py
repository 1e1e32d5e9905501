"""Similarity kernels against the libraries and published values users trust."""

import numpy as np
import pytest

from alignjax.similarity import (cca_similarity, cka, distance_correlation, hsic, knn_alignment,
                                 rv_coefficient, shape_distance)

TOL = dict(rtol=2e-4, atol=2e-5)


@pytest.fixture(scope="module")
def kornblith():
    """The seeded data of Kornblith et al.'s CKA demo notebook
    (google-research/representation_similarity/Demo.ipynb)."""
    rs = np.random.RandomState(1337)
    X = rs.randn(100, 10)
    Y = rs.randn(100, 10) + X
    return X, Y


@pytest.fixture(scope="module")
def xy():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(24, 7))
    Y = X @ rng.normal(size=(7, 11)) + rng.normal(size=(24, 11))
    return X, Y


def test_cka_matches_kornblith_notebook(kornblith):
    X, Y = kornblith
    # the values the notebook prints ({:.5f})
    assert round(float(cka(X, Y)), 5) == 0.55761
    assert round(float(cka(X, Y, kernel="rbf", rbf_threshold=0.5)), 5) == 0.65483
    assert round(float(cka(X, Y, debiased=True)), 5) == 0.51346


def test_rv_is_linear_cka(xy):
    X, Y = xy
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Sxy = Xc.T @ Yc
    rv = np.trace(Sxy @ Sxy.T) / np.sqrt(np.trace((Xc.T @ Xc) @ (Xc.T @ Xc))
                                         * np.trace((Yc.T @ Yc) @ (Yc.T @ Yc)))
    np.testing.assert_allclose(rv_coefficient(X, Y), rv, **TOL)
    np.testing.assert_allclose(rv_coefficient(X, Y), cka(X, Y), rtol=1e-6)


def test_distance_correlation_matches_dcor(xy):
    dcor = pytest.importorskip("dcor")
    X, Y = xy
    np.testing.assert_allclose(distance_correlation(X, Y), dcor.distance_correlation(X, Y), **TOL)
    np.testing.assert_allclose(distance_correlation(X, Y, squared=True),
                               dcor.distance_correlation_sqr(X, Y), **TOL)
    np.testing.assert_allclose(distance_correlation(X, Y, unbiased=True),
                               dcor.u_distance_correlation_sqr(X, Y), **TOL)


@pytest.mark.parametrize("unbiased", [False, True])
def test_hsic_matches_hyppo(xy, unbiased):
    """hyppo's Hsic statistic is the normalised HSIC (Dcorr of kernel-induced distances),
    square-rooted for the biased estimator (as hyppo's Dcorr)."""
    hyppo = pytest.importorskip("hyppo.independence")
    X, Y = xy
    ours = hsic(X, Y, unbiased=unbiased) / np.sqrt(hsic(X, X, unbiased=unbiased)
                                                    * hsic(Y, Y, unbiased=unbiased))
    if not unbiased:
        ref = hyppo.Hsic(compute_kernel="linear", bias=True).statistic(X, Y)
        np.testing.assert_allclose(ours, ref ** 2, **TOL)
    else:
        # hyppo's Hsic keeps the kernel-distance diagonal (1 - K_ii / max K) in its U-centring
        # sums; Song et al.'s estimator drops it: give hyppo's unbiased Dcorr the
        # kernel-induced distances with a zero diagonal
        def dist(Z):
            K = Z @ Z.T
            D = K.max() - K
            np.fill_diagonal(D, 0.0)
            return D

        ref = hyppo.Dcorr(compute_distance=None, bias=False).statistic(dist(X), dist(Y))
        np.testing.assert_allclose(ours, ref, **TOL)
    np.testing.assert_allclose(ours, cka(X, Y, debiased=unbiased), rtol=1e-5)


def test_hsic_biased_formula(xy):
    X, Y = xy
    n = len(X)
    K, L = X @ X.T, Y @ Y.T
    H = np.eye(n) - 1 / n
    np.testing.assert_allclose(hsic(X, Y), np.trace(K @ H @ L @ H) / (n - 1) ** 2, rtol=2e-4)


def test_procrustes_distance_matches_scipy(xy):
    from scipy.linalg import orthogonal_procrustes

    X, Y = xy
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Xp = np.pad(Xc, ((0, 0), (0, Y.shape[1] - X.shape[1])))
    R, nuc = orthogonal_procrustes(Xp, Yc)
    ref = np.linalg.norm(Xp @ R - Yc)
    np.testing.assert_allclose(shape_distance(X, Y, score="euclidean"), ref, rtol=5e-4)
    cos = nuc / (np.linalg.norm(Xc) * np.linalg.norm(Yc))
    np.testing.assert_allclose(np.cos(shape_distance(X, Y)), cos, rtol=5e-4)


def test_bures_equals_cos_angular_shape(xy):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    X, Y = xy
    rdms = [rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(Z), method="euclidean")
            for Z in (X, Y)]
    bures = rsatoolbox.rdm.compare(rdms[0], rdms[1], method="bures")[0, 0]
    np.testing.assert_allclose(np.cos(shape_distance(X, Y, alpha=1.0)), bures, rtol=5e-4)


def test_mean_cca_r2_matches_qr(xy):
    X, Y = xy
    qx, _ = np.linalg.qr(X - X.mean(0))
    qy, _ = np.linalg.qr(Y - Y.mean(0))
    ref = np.linalg.norm(qx.T @ qy) ** 2 / min(X.shape[1], Y.shape[1])
    np.testing.assert_allclose(cca_similarity(X, Y), ref, **TOL)


def test_svcca_and_pwcca_direct(xy):
    """SVCCA and PWCCA against a direct numpy computation of their definitions."""
    X, Y = xy

    def pcs(Z, var=None):
        Zc = Z - Z.mean(0)
        U, s, _ = np.linalg.svd(Zc, full_matrices=False)
        if var is not None:
            k = int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), var) + 1)
            U = U[:, :k]
        return U, Zc

    (Ux, _), (Uy, _) = pcs(X, 0.99), pcs(Y, 0.99)
    rho = np.linalg.svd(Ux.T @ Uy, compute_uv=False)
    np.testing.assert_allclose(cca_similarity(X, Y, method="svcca"), rho.mean(), **TOL)
    (Ux, Xc), (Uy, _) = pcs(X), pcs(Y)
    u, rho, _ = np.linalg.svd(Ux.T @ Uy)
    h = Ux @ u[:, : len(rho)]                   # canonical variates of X
    w = np.abs(h.T @ Xc).sum(1)
    np.testing.assert_allclose(cca_similarity(X, Y, method="pwcca"), np.sum(w * rho) / w.sum(),
                               **TOL)


def test_knn_against_direct_sets(xy):
    X, Y = xy
    k = 4

    def nn(Z):
        Zn = Z / np.linalg.norm(Z, axis=1, keepdims=True)
        C = Zn @ Zn.T
        np.fill_diagonal(C, -np.inf)
        return [set(np.argsort(-row, kind="stable")[:k]) for row in C]

    a, b = nn(X), nn(Y)
    mutual = np.mean([len(a[i] & b[i]) / k for i in range(len(X))])
    jac = np.mean([len(a[i] & b[i]) / len(a[i] | b[i]) for i in range(len(X))])
    cyc = np.mean([any(i in a[j] for j in b[i]) for i in range(len(X))])
    np.testing.assert_allclose(knn_alignment(X, Y, k=k), mutual, rtol=1e-6)
    np.testing.assert_allclose(knn_alignment(X, Y, k=k, method="jaccard"), jac, rtol=1e-5)
    np.testing.assert_allclose(knn_alignment(X, Y, k=k, method="cycle"), cyc, rtol=1e-6)


def test_cknna_direct(xy):
    """CKNNA against a direct numpy implementation of its definition (unbiased HSIC of
    the kNN-masked cosine Gram matrices)."""
    X, Y = xy
    k = 5
    n = len(X)

    def parts(Z):
        Zn = Z / np.linalg.norm(Z, axis=1, keepdims=True)
        K = Zn @ Zn.T
        C = K.copy()
        np.fill_diagonal(C, -np.inf)
        M = np.zeros((n, n))
        for i, row in enumerate(C):
            M[i, np.argsort(-row, kind="stable")[:k]] = 1
        return K, M

    def hsic_u(K, L):
        K, L = K.copy(), L.copy()
        np.fill_diagonal(K, 0)
        np.fill_diagonal(L, 0)
        one = np.ones(n)
        return (np.trace(K @ L) + one @ K @ one * (one @ L @ one) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * one @ K @ L @ one) / (n * (n - 3))

    (K, A), (L, B) = parts(X), parts(Y)
    M = A * B
    ref = hsic_u(M * K, M * L) / np.sqrt(hsic_u(A * K, A * K) * hsic_u(B * L, B * L))
    np.testing.assert_allclose(knn_alignment(X, Y, k=k, method="cknna"), ref, rtol=2e-4,
                               atol=1e-6)


def test_unbiased_hsic_song_formula(xy):
    X, Y = xy
    n = len(X)
    K, L = X @ X.T, Y @ Y.T
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    one = np.ones(n)
    ref = (np.trace(K @ L) + one @ K @ one * (one @ L @ one) / ((n - 1) * (n - 2))
           - 2 / (n - 2) * one @ K @ L @ one) / (n * (n - 3))
    np.testing.assert_allclose(hsic(X, Y, unbiased=True), ref, rtol=5e-4)


def test_rsa_metric_matches_compare(xy):
    from alignjax import compare, rdm
    from alignjax.similarity import similarity

    X, Y = xy
    res = similarity(X, Y, metrics=["rsa_spearman", "rsa_pearson"], n_perm=0)
    for m, method in ((0, "spearman"), (1, "pearson")):
        ref = compare(rdm(X), rdm(Y), method=method)[0, 0]
        np.testing.assert_allclose(res.score[m, 0, 0], ref, rtol=2e-4)


def test_entry_point_matches_kernels(xy):
    from alignjax.similarity import similarity

    X, Y = xy
    res = similarity({"a": X}, {"s": Y}, metrics=["cka", "cka_debiased", "dcor", "shape",
                                                 "cca", "svcca", "knn", "hsic_unbiased"],
                     n_perm=0, k=4)
    ref = [cka(X, Y), cka(X, Y, debiased=True), distance_correlation(X, Y),
           np.cos(shape_distance(X, Y)), cca_similarity(X, Y),
           cca_similarity(X, Y, method="svcca"), knn_alignment(X, Y, k=4),
           hsic(X, Y, unbiased=True)]
    np.testing.assert_allclose(res.score[:, 0, 0], np.asarray(ref, float), rtol=5e-4)
