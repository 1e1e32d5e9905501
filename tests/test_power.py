"""alignjax.power: simulated power against closed forms, size at a null effect, bad inputs."""

import numpy as np
import pytest

import alignjax
from alignjax.errors import InvalidOptionError
from alignjax.power import correlation_power


def test_correlation_power_matches_exact_closed_form():
    # 3 points x 1500 sims: MC SE <= 0.013; a test off by one degree of freedom moves the
    # power at n=10 by ~0.03 (> 3.5 SE is ~0.045 only at the worst point, so check all)
    df = alignjax.power("correlation", {"n_stimuli": [10, 25, 60]}, effect=0.3, n_sim=1500,
                        seed=0, progress=False)
    assert list(df.columns) == ["n_stimuli", "power", "mc_se"]
    exact = np.array([correlation_power(0.3, n) for n in df.n_stimuli])
    assert np.all(np.abs(df.power - exact) <= 3.5 * df.mc_se)
    assert np.all(np.diff(df.power) > 0)


def test_correlation_size_at_zero_effect():
    df = alignjax.power("correlation", {"n_stimuli": [15]}, effect=0.0, n_sim=2000, seed=1,
                        progress=False)
    assert abs(df.power[0] - 0.05) <= 3.5 * np.sqrt(0.05 * 0.95 / 2000)


def test_rsa_group_test_matches_correlation_over_pairs():
    # independent pair entries + Pearson: the group test is a correlation test over n_pairs
    # with r = rho / sqrt(1 + c^2 / S); rho = effect / nc, c^2 = 1 / nc^2 - 1
    n, S, eff, nc = 12, 4, 0.12, 0.5
    df = alignjax.power("rsa", {"n_stimuli": [n]}, effect=eff, n_sim=150, seed=0,
                        progress=False, n_subjects=S, noise_ceiling=nc, method="pearson",
                        n_perm=200)
    rho, c2 = eff / nc, 1 / nc**2 - 1
    ref = correlation_power(rho / np.sqrt(1 + c2 / S), n * (n - 1) // 2)
    assert abs(df.power[0] - ref) <= 3.5 * df.mc_se[0]


def test_bad_inputs_refused():
    with pytest.raises(InvalidOptionError, match="n_stimuli"):
        alignjax.power("correlation", {"n_stimuli": [2.5]}, effect=0.3, n_sim=20, seed=0)
    with pytest.raises(InvalidOptionError, match="noise ceiling"):
        alignjax.power("rsa", {"n_stimuli": [10]}, effect=0.5, noise_ceiling=0.3, n_sim=20,
                       seed=0)
    with pytest.raises(InvalidOptionError, match="GiB"):
        alignjax.power("rsa", {"n_stimuli": [10, 2_000_000]}, effect=0.1, n_sim=20, seed=0)
    with pytest.raises(InvalidOptionError, match="unknown power design"):
        alignjax.power("nope", {"n_stimuli": [10]}, effect=0.1, n_sim=20, seed=0)
    with pytest.warns(UserWarning, match="n_sim=5"):
        alignjax.power("correlation", {"n_stimuli": [10]}, effect=0.1, n_sim=5, seed=0,
                       progress=False)
