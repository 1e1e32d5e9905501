"""Constant targets are found at the resolution of their own dtype (issue 25, item 10): the
old rule ``sd <= 1e-7 * max|y|`` is finer than float32 resolves, so 91% of constant
non-integer float32 columns of 100 stimuli (43% of scaled int16 ones) passed as varying
and were fitted (r2 = 0 written for them)."""

import numpy as np
import pytest

from alignjax import encode
from alignjax.app.studies.encode import excluded_text
from alignjax.encoding import constant_targets


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [20, 100, 1000])
def test_constant_columns_are_flagged_and_varying_ones_are_not(dtype, n):
    rng = np.random.default_rng(n)
    t = 2000
    const = np.broadcast_to(rng.uniform(-1e4, 1e4, t).astype(dtype), (n, t))
    raw = np.broadcast_to(rng.integers(-2000, 2000, t).astype(np.int16), (n, t))
    scaled = raw.astype(dtype) * dtype(0.37) + dtype(12.5)  # a scaled int16 NIfTI
    ulp = np.finfo(dtype).eps * rng.integers(-1, 2, (n, t))
    noisy = (const.astype(np.float64) * (1 + ulp)).astype(dtype)  # one-ulp rounding noise
    assert constant_targets(const).all()
    assert constant_targets(scaled).all()
    assert constant_targets(noisy).all()
    # a 0.1% signal on a mean of 1000, and a single deviating stimulus, are not constant
    varying = (1000 + rng.standard_normal((n, t))).astype(dtype)
    spike = const.copy()
    spike[0] += np.abs(const[0]) * dtype(1e-3) + dtype(1e-3)
    assert not constant_targets(varying).any()
    assert not constant_targets(spike).any()


def test_encode_excludes_constant_float32_targets_and_counts_them():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 5))
    Y = (X @ rng.standard_normal((5, 40)) + rng.standard_normal((30, 40))).astype(np.float32)
    const = np.arange(0, 40, 4)
    Y[:, const] = rng.uniform(1, 1e3, const.size).astype(np.float32)  # non-integer constants
    res = encode([X], Y, alphas=np.logspace(-1, 3, 5), outer_folds=3, inner_folds=3)
    np.testing.assert_array_equal(np.flatnonzero(~res.valid), const)
    assert np.isnan(res.r2[const]).all() and np.isfinite(np.delete(res.r2, const)).all()
    assert res.summary["n_excluded"] == const.size


def test_the_log_says_how_many_were_excluded_and_why():
    assert excluded_text({"n_excluded_constant": 180050, "n_excluded_nonfinite": 12}) \
        == "180,062 excluded: 180,050 constant, 12 non-finite"
    assert excluded_text({"n_excluded_constant": 3, "n_excluded_nonfinite": 0}) \
        == "3 excluded: 3 constant"
    assert excluded_text({"n_excluded_constant": 0, "n_excluded_nonfinite": 0}) == "none excluded"
