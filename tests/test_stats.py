"""permutation_pvalues and fdr_bh: NaN in, NaN out; references against scipy."""

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from alignjax import fdr_bh, permutation_pvalues


def test_nan_observed_gives_nan_and_leaves_others_alone():
    rng = np.random.default_rng(0)
    null = rng.standard_normal((99, 4))
    obs = np.array([0.1, np.nan, 3.0, 0.0])
    p, p_fwe = map(np.asarray, permutation_pvalues(obs, null))
    assert np.isnan(p[1]) and np.isnan(p_fwe[1])
    ref = (1 + (null[:, 0] >= 0.1).sum()) / 100
    assert p[0] == pytest.approx(ref)


def test_all_nan_member_is_left_out_of_the_family_maximum():
    rng = np.random.default_rng(1)
    null = rng.standard_normal((99, 3))
    obs = np.array([0.5, 1.0, 0.2])
    base = np.asarray(permutation_pvalues(obs, null)[1])
    null_nan = np.concatenate([null, np.full((99, 1), np.nan)], axis=1)
    p, p_fwe = map(np.asarray, permutation_pvalues(np.append(obs, 0.3), null_nan))
    np.testing.assert_allclose(p_fwe[:3], base, rtol=1e-6)
    assert p_fwe[:3].min() > 1 / 100  # not the smallest possible p
    assert np.isnan(p[3]) and np.isnan(p_fwe[3])


def test_nan_null_values_are_not_counted():
    null = np.array([[1.0], [np.nan], [-1.0], [np.nan]])
    p, _ = permutation_pvalues(np.array([0.0]), null)
    assert float(p[0]) == pytest.approx((1 + 1) / (1 + 2))


@pytest.mark.parametrize("m", [1, 7, 50])
def test_fdr_bh_matches_scipy(m):
    p = np.random.default_rng(m).uniform(size=m) ** 2
    np.testing.assert_allclose(fdr_bh(p), false_discovery_control(p, method="bh"))


def test_fdr_bh_corrects_only_the_finite_pvalues():
    p = np.random.default_rng(3).uniform(size=(4, 5)) ** 3
    p[1, 2] = p[3, 0] = np.nan
    q = fdr_bh(p)
    assert np.isnan(q[1, 2]) and np.isnan(q[3, 0])
    ok = np.isfinite(p)
    np.testing.assert_allclose(q[ok], false_discovery_control(p[ok], method="bh"))
    assert np.isnan(fdr_bh(np.full(3, np.nan))).all()
