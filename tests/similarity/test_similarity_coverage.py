"""Coverage of the intervals of :func:`alignjax.similarity` (``n_boot > 0``).

30 stimuli, layers of 20 (slow: also 500) features against subjects of 50. Null data: the
population value of every metric in :data:`CI_METRICS` is 0 (U-statistics, and RSA of
z-scored RDM entries, whose expectation over stimulus permutations is exactly 0). Planted
data: layers and subjects share a 5-dimensional latent; the population value is the
metric on 1,500 stimuli from the same population (its own sampling error there is about
a seventh of the interval's half-width at 30). The bootstrap with replacement that
the half-samples replaced covered 0 on null data in 0% of sets and the planted value in
47% (cka_debiased) and 5% (rsa_pearson) of them.

The fast tests score 4 layers x 4 subjects per draw of the data (pairs share a layer or
a subject, so their coverage events are not independent: the bounds leave room for
that); the slow ones use independent data sets and the binomial bound 0.95 - 3 se.
"""

import numpy as np
import pytest

from alignjax.similarity import CI_METRICS, similarity
from alignjax.similarity.inference import _half_samples
from alignjax.similarity.registry import get_metric

N, Q, K = 30, 50, 5


def _population(p):
    g = np.random.default_rng(123)
    return g.normal(size=(K, p)) * np.sqrt(2 / K), g.normal(size=(K, Q)) * np.sqrt(2 / K)


def _draw(rng, n, p, planted, n_x=1, n_y=1):
    A, B = _population(p)
    Z = rng.normal(size=(n, K)) if planted else np.zeros((n, K))
    X = [Z @ A + 2.5 * rng.normal(size=(n, p)) for _ in range(n_x)]
    Y = [Z @ B + 2.5 * rng.normal(size=(n, Q)) for _ in range(n_y)]
    return X, Y


def _rsa(X, Y, rank):
    from scipy.spatial.distance import pdist
    from scipy.stats import pearsonr, spearmanr

    return (spearmanr if rank else pearsonr)(pdist(X, "correlation"), pdist(Y, "correlation"))[0]


def _truth(p, planted):
    """Population value of each metric of CI_METRICS: 0 under the null; under the planted
    effect, the metric on 1,500 stimuli (kernels directly and scipy for RSA, so no new
    program is compiled for that size)."""
    import alignjax

    if not planted:
        return np.zeros(len(CI_METRICS))
    X, Y = _draw(np.random.default_rng(999), 1500, p, True)
    X, Y = X[0], Y[0]
    value = {"cka_debiased": float(alignjax.cka(X, Y, debiased=True)),
             "hsic_unbiased": float(alignjax.hsic(X, Y, unbiased=True)),
             "dcor_unbiased": float(alignjax.distance_correlation(X, Y, unbiased=True)),
             "rsa_pearson": _rsa(X, Y, False), "rsa_spearman": _rsa(X, Y, True)}
    return np.array([value[m] for m in CI_METRICS])


def _coverage(p, planted, n_draws, n_x, n_y, seed, n_boot=100):
    truth = _truth(p, planted)
    rng = np.random.default_rng(seed)
    hits = []
    for d in range(n_draws):
        X, Y = _draw(rng, N, p, planted, n_x, n_y)
        res = similarity({f"l{i}": x for i, x in enumerate(X)}, np.stack(Y),
                         metrics=list(CI_METRICS), n_perm=0, n_boot=n_boot, seed=d)
        t = truth[:, None, None]
        hits.append((res.ci_low <= t) & (t <= res.ci_high))
    return np.concatenate(hits, axis=1).mean(axis=(1, 2))  # per metric


@pytest.mark.parametrize("planted", [False, True], ids=["null", "planted"])
def test_intervals_cover_with_20_features(planted):
    cov = _coverage(20, planted, n_draws=6, n_x=4, n_y=4, seed=1 + planted)
    for metric, c in zip(CI_METRICS, cov):  # 96 pairs per metric; the old bootstrap: 0-0.8
        assert c >= 0.88, (metric, c)


def test_biased_metrics_have_no_interval_but_keep_their_half_samples():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(N, 500)), rng.normal(size=(N, Q))
    res = similarity(X, Y, metrics=["cka", "cka_debiased"], n_perm=0, n_boot=20)
    assert np.isnan(res.ci_low[0]).all() and np.isnan(res.ci_high[0]).all()
    # biased CKA of independent 500-wide features on 15-30 stimuli sits far above its
    # population value of 0: an interval around it could not cover
    assert res.score[0, 0, 0] > 0.3 and np.all(res.boot[:, 0] > 0.3)
    assert np.isfinite(res.ci_low[1]).all() and res.ci_method == "half-sample percentile"


def test_half_samples_have_no_copies_and_do_not_depend_on_chunking():
    s = _half_samples(30, 50, seed=4)
    assert s.shape == (50, 15)
    assert all(len(np.unique(row)) == 15 for row in s)  # no stimulus twice: no self-pairs
    np.testing.assert_array_equal(_half_samples(30, 7, seed=4), s[:7])
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(3, N, 6)), rng.normal(size=(2, N, 5))
    a = similarity(X, Y, metrics=["cka_debiased"], n_perm=0, n_boot=12, seed=4)
    b = similarity(X, Y, metrics=["cka_debiased"], n_perm=0, n_boot=5, seed=4)
    np.testing.assert_allclose(a.boot[:5], b.boot, rtol=1e-5, atol=1e-6)
    # each half-sample score is the metric on those stimuli
    m = get_metric("cka_debiased")
    ref = similarity(X[1][s[2]], Y[0][s[2]], metrics=["cka_debiased"], n_perm=0).score
    np.testing.assert_allclose(a.boot[2, 0, 1, 0], ref[0, 0, 0], rtol=1e-4, atol=1e-6)
    assert m.unbiased


def test_too_few_stimuli_for_a_half_sample_is_refused():
    from alignjax.errors import InvalidOptionError

    rng = np.random.default_rng(2)
    with pytest.raises(InvalidOptionError, match="half of the 10 stimuli"):
        similarity(rng.normal(size=(10, 4)), rng.normal(size=(10, 3)), metrics=["knn"], k=5,
                   n_perm=0, n_boot=10)


@pytest.mark.slow
@pytest.mark.parametrize("p", [20, 500])
@pytest.mark.parametrize("planted", [False, True], ids=["null", "planted"])
def test_intervals_cover_independent_sets(p, planted):
    n_sets = 200
    cov = _coverage(p, planted, n_draws=n_sets, n_x=1, n_y=1, seed=10 + p + planted,
                    n_boot=200)
    for metric, c in zip(CI_METRICS, cov):
        assert c >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / n_sets), (metric, c)
