"""Model-zoo statistics against scipy: correlations across models (r, exact permutation p,
Fisher-z CI, bootstrap over models), paired comparisons (t, exact sign-flip p, max-T),
rankings (t-intervals, bootstrap ranks)."""

import itertools

import numpy as np
import pytest
from scipy import stats

from alignjax.zoo import (SmallSampleWarning, TooFewModelsError, alignment_score_correlation,
                          bootstrap_ranking, pairwise_comparisons)


def _planted(n, rho, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x, rho * x + np.sqrt(1 - rho ** 2) * rng.normal(size=n)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_correlation_and_exact_permutation_p_match_scipy(method):
    x, y = _planted(7, 0.7, 1)
    y[2] = y[3]  # a tie: average ranks
    ref = stats.pearsonr if method == "pearson" else stats.spearmanr
    res = alignment_score_correlation(x, y, method=method, n_boot=200, n_perm=10_000)
    r0 = ref(x, y)[0]
    np.testing.assert_allclose(res.r, r0, rtol=1e-12)
    assert res.exact and res.n_perm == 5040
    null = np.array([ref(x, y[list(p)])[0] for p in itertools.permutations(range(7))])
    p0 = np.mean(np.abs(null) >= abs(r0) * (1 - 1e-9))
    np.testing.assert_allclose(res.p, p0, atol=1e-6)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_fisher_ci_and_bootstrap_over_models_match_scipy(method):
    x, y = _planted(14, 0.8, 2)
    ref = stats.pearsonr if method == "pearson" else stats.spearmanr
    res = alignment_score_correlation(x, y, method=method, n_boot=4000, n_perm=500, seed=3)
    if method == "pearson":  # scipy's interval is the Fisher-z one
        ci = stats.pearsonr(x, y).confidence_interval(0.95)
        np.testing.assert_allclose(res.ci, [ci.low, ci.high], rtol=1e-10)
    else:  # Bonett & Wright: wider than the Pearson-style interval of the same r
        r = res.r
        narrow = np.tanh(np.arctanh(r) + np.array([-1, 1]) * 1.959964 / np.sqrt(11))
        assert res.ci[0] < narrow[0] and res.ci[1] > narrow[1]
    bs = stats.bootstrap((x, y), lambda a, b: ref(a, b)[0], paired=True, vectorized=False,
                         n_resamples=4000, method="percentile", random_state=4)
    np.testing.assert_allclose(np.nanpercentile(res.boot, [2.5, 97.5]),
                               [bs.confidence_interval.low, bs.confidence_interval.high],
                               atol=0.06)
    assert res.ci[0] < res.r < res.ci[1] and res.p < 0.01


def test_correlation_ci_needs_four_models():
    res = alignment_score_correlation([1.0, 2.0, 4.0], [0.0, 1.0, 3.0], n_boot=10, n_perm=10)
    assert np.isnan(res.ci).all() and np.isfinite(res.p)


def test_correlation_refuses_fewer_than_three_models():
    with pytest.raises(TooFewModelsError, match="at least 3 models; got 2"):
        alignment_score_correlation([0.1, 0.2], [0.5, 0.7])


def test_pairwise_t_and_exact_sign_flip_p_match_scipy():
    rng = np.random.default_rng(5)
    S = rng.normal(size=(3, 7))
    S[0] += 3.0
    res = pairwise_comparisons(S, n_perm=1000)
    assert res.exact and res.n_perm == 128
    flips = np.array(list(itertools.product([1, -1], repeat=7)))
    tmax = []
    for k, (a, b) in enumerate(res.pairs):
        d = S[a] - S[b]
        np.testing.assert_allclose(res.t[k], stats.ttest_rel(S[a], S[b]).statistic, rtol=1e-10)
        null = np.array([stats.ttest_1samp(f * d, 0).statistic for f in flips])
        np.testing.assert_allclose(res.p[k], np.mean(np.abs(null) >= abs(res.t[k]) * (1 - 1e-9)),
                                   atol=1e-6)
        tmax.append(np.abs(null))
    tmax = np.max(tmax, axis=0)
    for k in range(len(res.pairs)):
        np.testing.assert_allclose(res.p_fwe[k],
                                   np.mean(tmax >= abs(res.t[k]) * (1 - 1e-9)), atol=1e-6)
    assert res.p[0] < 0.05 and (res.p_fwe >= res.p - 1e-12).all()


def test_bootstrap_ranking_matches_a_direct_computation():
    rng = np.random.default_rng(6)
    S = rng.normal(size=(4, 9)) + np.array([0.8, 0.0, 0.4, -0.5])[:, None]
    with pytest.warns(SmallSampleWarning, match="9 units"):  # below MIN_BOOT_UNITS
        res = bootstrap_ranking(S, n_boot=300, seed=7)
    idx = np.random.default_rng(7).integers(0, 9, size=(300, 9))
    boot = np.array([S[:, i].mean(1) for i in idx])
    np.testing.assert_allclose(res.boot, boot)
    for i in range(4):  # the score CI is the t-interval of each model's mean
        ci = stats.ttest_1samp(S[i], 0).confidence_interval(0.95)
        np.testing.assert_allclose(res.ci[:, i], [ci.low, ci.high], rtol=1e-10)
    ranks = np.array([stats.rankdata(-b, method="min") for b in boot])
    np.testing.assert_allclose(res.rank_ci, np.percentile(ranks, [2.5, 97.5], axis=0))
    assert res.rank.tolist() == stats.rankdata(-S.mean(1), method="min").tolist()
    np.testing.assert_allclose(res.frac_boot_best, (ranks == 1).mean(0))
    with pytest.warns(DeprecationWarning, match="not the probability"):
        np.testing.assert_allclose(res.p_best, res.frac_boot_best)
