"""Kendall's tau-b, the whitened comparisons and the negative Riemannian distance against
scipy and rsatoolbox, on the 92-image RDMs, in float32 and float64."""

import numpy as np
import pytest
import scipy.stats as ss

import alignjax as aj
from tests._compat import enable_x64
from tests.reference import kriegeskorte as k92

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.rdm import RDMs, compare as rsa_compare  # noqa: E402

NAMES = {"tau_b": "tau-b", "corr_cov": "corr_cov", "cosine_cov": "cosine_cov",
         "neg_riem_dist": "neg_riem_dist"}
# float32: rounding of n_pairs-long sums; float64: rsatoolbox's own arithmetic
TOL = {False: dict(rtol=5e-4, atol=5e-5), True: dict(rtol=1e-9, atol=1e-10)}


def test_tau_b_equals_scipy_with_ties(rng):
    a = rng.integers(0, 5, size=120).astype(float)       # heavy ties in both
    b = np.round(a + rng.normal(size=120), 0)
    got = float(np.asarray(aj.compare(a, b, method="tau_b"))[0, 0])
    want = ss.kendalltau(a, b).statistic
    tau_a = float(np.asarray(aj.compare(a, b, method="tau_a"))[0, 0])
    assert abs(want - tau_a) > 0.05     # the tie correction matters on these data
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
@pytest.mark.parametrize("method", ["tau_b", "corr_cov", "cosine_cov"])
def test_matches_rsatoolbox_on_kriegeskorte(method, x64):
    brain, _ = k92.brain()
    models, _ = k92.models()  # the categorical models are full of ties
    with enable_x64(x64):
        got = np.asarray(aj.compare(models, brain, method=method))
    want = rsa_compare(RDMs(models), RDMs(brain), method=NAMES[method])
    np.testing.assert_allclose(got, want, **TOL[x64])


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
def test_neg_riem_dist_matches_rsatoolbox_on_kriegeskorte(x64):
    brain, _ = k92.brain()
    A, B = brain[:2], brain[2:5]
    with enable_x64(x64):
        got = np.asarray(aj.compare(A, B, method="neg_riem_dist"))
        same = np.asarray(aj.compare(A[:1], 3.0 * A[:1], method="neg_riem_dist"))
    want = rsa_compare(RDMs(A), RDMs(B), method="neg_riem_dist")
    # rsatoolbox stops Nelder-Mead at its default tolerances; this finds the minimum,
    # so it is never further (more negative) than rsatoolbox's value beyond rounding
    np.testing.assert_allclose(got, want, rtol=1e-5 if x64 else 5e-5)
    assert (got >= want - (1e-9 if x64 else 5e-4)).all()
    # a distance: 0 between an RDM and a rescaled copy of itself
    assert abs(float(same[0, 0])) < (1e-5 if x64 else 2e-2)


def test_neg_riem_dist_has_no_noise_ceiling():
    brain, _ = k92.brain()
    with pytest.raises(ValueError, match="neg_riem_dist"):
        aj.noise_ceiling(brain, method="neg_riem_dist")
