"""Property tests: the refit ridge coefficients satisfy the normal equations."""

import jax
import numpy as np
from hypothesis import given, settings, strategies as st

from alignjax import ridge_cv

SHAPES = [(30, 8), (20, 45)]  # few shapes so JAX does not recompile for every example


@settings(max_examples=12, deadline=None)
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 10_000),
       log_alpha=st.floats(-2, 3), fit_intercept=st.booleans(), scale=st.floats(0.1, 10))
def test_refit_coefficients_satisfy_normal_equations(shape, seed, log_alpha, fit_intercept, scale):
    n, p = shape
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * scale + rng.standard_normal(p)
    Y = rng.standard_normal((n, 3)) + 2.0
    alphas = 10.0 ** (log_alpha + np.array([-1.0, 0.0, 1.0]))
    with jax.enable_x64(True):
        res = ridge_cv(X, Y, alphas=alphas, folds=3, fit_intercept=fit_intercept, seed=seed)
        W, b, a = np.asarray(res.coef), np.asarray(res.intercept), np.asarray(res.best_alpha)
    assert np.all(np.isin(a, alphas))
    Xc, Yc = (X - X.mean(0), Y - Y.mean(0)) if fit_intercept else (X, Y)
    for j in range(3):
        lhs = Xc.T @ Xc @ W[:, j] + a[j] * W[:, j]
        rhs = Xc.T @ Yc[:, j]
        np.testing.assert_allclose(lhs, rhs, rtol=1e-7, atol=1e-8 * np.abs(rhs).max())
        if fit_intercept:  # the residuals have zero mean
            assert abs(np.mean(Y[:, j] - X @ W[:, j] - b[j])) < 1e-8 * (1 + np.abs(Y[:, j]).max())
        else:
            assert b[j] == 0
