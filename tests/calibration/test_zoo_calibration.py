"""Calibration of the model-zoo tests: under a true null the permutation p-values over
models are uniform, and the pairwise comparisons hold the family-wise error rate."""

import numpy as np
import pytest
from scipy import stats

from alignjax.zoo import alignment_score_correlation, pairwise_comparisons

N_SETS = 300


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_correlation_p_uniform_across_null_model_sets(method):
    rng = np.random.default_rng(11)
    p = []
    for k in range(N_SETS):  # alignment and score unrelated; skewed scores, 9 models
        x, y = rng.normal(size=9), rng.exponential(size=9)
        p.append(alignment_score_correlation(x, y, method=method, n_boot=1, n_perm=199,
                                             seed=k).p)
    p = np.asarray(p)
    assert stats.kstest(p, "uniform").pvalue > 0.01
    rate = np.mean(p <= 0.05)
    assert rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / N_SETS)


def test_pairwise_comparisons_hold_fwe_and_are_uniform():
    rng = np.random.default_rng(12)
    any_fwe, p_first = [], []
    for k in range(N_SETS):  # 4 equally good models, 8 subjects with subject effects
        S = rng.normal(size=(4, 8)) + rng.normal(size=(1, 8)) * 2
        res = pairwise_comparisons(S, n_perm=2000, seed=k)  # exact: 256 sign vectors
        any_fwe.append((res.p_fwe <= 0.05).any())
        p_first.append(res.p[0])
    se = np.sqrt(0.05 * 0.95 / N_SETS)
    assert np.mean(any_fwe) <= 0.05 + 3 * se
    # exact sign-flip p-values are discrete (multiples of 1/256): compare at their support
    p_first = np.asarray(p_first)
    for alpha in (0.05, 0.1, 0.25, 0.5):
        assert abs(np.mean(p_first <= alpha) - alpha) < 3 * np.sqrt(alpha * (1 - alpha) / N_SETS) + 1 / 256
