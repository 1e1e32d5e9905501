import numpy as np
import pytest
import scipy.stats as ss

import alignjax as aj
from tests.reference import kriegeskorte as k92

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.rdm import RDMs, compare as rsa_compare  # noqa: E402
from rsatoolbox.inference import boot_noise_ceiling  # noqa: E402

RSA_METHOD = {"spearman": "spearman", "pearson": "corr", "cosine": "cosine",
              "rho_a": "rho-a", "tau_a": "tau-a"}


def test_compare_matches_scipy_with_ties(rng):
    a = rng.integers(0, 6, size=45).astype(float)  # heavy ties
    b = rng.normal(size=45)
    A = np.stack([a, b])
    got = np.asarray(aj.compare(A, A, method="spearman"))
    np.testing.assert_allclose(got[0, 1], ss.spearmanr(a, b)[0], rtol=1e-5)
    got = np.asarray(aj.compare(A, A, method="pearson"))
    np.testing.assert_allclose(got[0, 1], ss.pearsonr(a, b)[0], rtol=1e-5)


@pytest.mark.parametrize("shape", [(45,), (3, 4, 50), (2, 40_000)])
def test_ranks_match_scipy_rankdata(rng, shape):
    from alignjax.stats import rank_rows, rankdata

    x = rng.integers(0, 9, size=shape).astype(np.float32)  # heavy ties
    x[..., ::7] = rng.normal(size=x[..., ::7].shape)
    want = ss.rankdata(x, axis=-1)
    np.testing.assert_array_equal(np.asarray(rank_rows(x)), want)   # NumPy path on CPU
    np.testing.assert_array_equal(np.asarray(rankdata(x)), want)    # in-jit path


def test_tau_a_equals_kendall_on_tie_free_data(rng):
    a, b = rng.normal(size=(2, 66))
    got = float(np.asarray(aj.compare(a, b, method="tau_a"))[0, 0])
    np.testing.assert_allclose(got, ss.kendalltau(a, b)[0], rtol=1e-5)


@pytest.mark.parametrize("method", list(RSA_METHOD))
def test_compare_matches_rsatoolbox_on_kriegeskorte(method):
    brain, _ = k92.brain()
    models, _ = k92.models()  # animacy / category models are full of ties
    if method == "tau_a":
        brain = brain[:2]
    got = np.asarray(aj.compare(models, brain, method=method))
    want = rsa_compare(RDMs(models), RDMs(brain), method=RSA_METHOD[method])
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine", "rho_a"])
def test_noise_ceiling_matches_rsatoolbox(method):
    brain, _ = k92.brain()
    nc = aj.noise_ceiling(brain, method=method)
    lo, up = boot_noise_ceiling(RDMs(brain), method=RSA_METHOD[method])
    np.testing.assert_allclose([float(nc.lower), float(nc.upper)], [lo, up], rtol=2e-4, atol=2e-5)


def test_nan_entries_are_masked_in_both(rng):
    a, b = rng.normal(size=(2, 36))
    a_nan = a.copy()
    a_nan[[3, 10]] = np.nan
    keep = ~np.isnan(a_nan)
    got = float(np.asarray(aj.compare(a_nan, b))[0, 0])
    np.testing.assert_allclose(got, ss.spearmanr(a[keep], b[keep])[0], rtol=1e-5)


def test_partial_compare_removes_control(rng):
    n_pairs = 190
    control = rng.normal(size=n_pairs)
    a = control + 0.1 * rng.normal(size=n_pairs)
    b = control + rng.normal(size=n_pairs)
    plain = float(np.asarray(aj.compare(a, b, method="pearson"))[0, 0])
    part = float(np.asarray(aj.partial_compare(a, b, control, method="pearson"))[0, 0])
    resid = a - np.polyval(np.polyfit(control, a, 1), control)
    np.testing.assert_allclose(part, ss.pearsonr(resid, b)[0], rtol=1e-4)
    assert plain > 0.5 and abs(part) < 0.2
