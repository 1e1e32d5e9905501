"""variance_partition on a planted design: A = [s, a], B = [s, b], y = s + a + b + noise,
with y = 2 s + a + b / 2 + noise: unique A, unique B and shared are 1, 0.25 and 4 of 6.25."""

import numpy as np
import pytest

import alignjax
from alignjax.errors import InvalidFoldsError, InvalidOptionError


def test_planted_two_spaces():
    rng = np.random.default_rng(0)
    n, t = 600, 4
    runs = np.repeat(np.arange(4), n // 4)
    Z = rng.standard_normal((n, 3))
    q = np.linalg.qr(Z - Z.mean(0))[0] * np.sqrt(n)  # exactly orthogonal, unit variance
    s, a, b = q[:, :1], q[:, 1:2], q[:, 2:]
    Y = np.hstack([2 * s + a + 0.5 * b] * t) + rng.standard_normal((n, t))  # total var 6.25
    res = alignjax.variance_partition([np.hstack([s, a]), np.hstack([s, b])], Y,
                                      alphas=np.logspace(-2, 3, 6), n_iter=5,
                                      folds=alignjax.run_folds(runs))
    assert res.regions == ((0,), (1,), (0, 1)) and res.partition.shape == (3, t)
    truth = np.array([1.0, 0.25, 4.0])[:, None] / 6.25  # unique A, unique B, shared
    np.testing.assert_allclose(res.partition, np.broadcast_to(truth, (3, t)), atol=0.05)
    np.testing.assert_allclose(res.partition.sum(0), res.r2[-1], rtol=1e-12)


def test_negative_estimates_not_clipped_and_errors():
    rng = np.random.default_rng(1)
    n = 240
    runs = np.repeat(np.arange(4), n // 4)
    A, B = rng.standard_normal((n, 2)), rng.standard_normal((n, 2))
    Y = rng.standard_normal((n, 3))  # pure noise: held-out R² are all slightly negative
    res = alignjax.variance_partition([A, B], Y, alphas=[1e-2, 1.0], n_iter=2,
                                      folds=alignjax.run_folds(runs))
    assert np.all(res.r2 < 0) and (res.partition < 0).any()
    with pytest.raises(InvalidFoldsError, match="at least 3 folds"):
        alignjax.variance_partition([A, B], Y, alphas=[1.0], folds=alignjax.run_folds(runs, 2))
    with pytest.raises(InvalidOptionError, match="2 or 3"):
        alignjax.variance_partition([A], Y, alphas=[1.0], folds=alignjax.run_folds(runs))
