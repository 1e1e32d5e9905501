"""Transform tests for the ridge kernels: jit = eager, chunked = unchunked, 4 devices = 1,
no recompilation on a second call with the same shapes."""

import jax
import numpy as np
import pytest

from alignjax import ridge as R
from alignjax import ridge_cv

ALPHAS = np.logspace(-2, 4, 7)


def _problem(n=48, p=16, t=23, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    Y = X @ rng.standard_normal((p, t)) * rng.uniform(0, 1, t) + rng.standard_normal((n, t))
    return X, Y


def _close(a, b):
    for name in ("cv_scores", "coef", "intercept", "best_score"):
        np.testing.assert_allclose(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)),
                                   rtol=2e-4, atol=2e-5, err_msg=name)
    np.testing.assert_array_equal(np.asarray(a.best_alpha), np.asarray(b.best_alpha))


@pytest.mark.parametrize("p,solver", [(16, "auto"), (70, "auto"), (70, "eigh_full")])
def test_chunked_equals_unchunked(p, solver):
    """Primal SVD, per-fold kernel and full-kernel forms."""
    X, Y = _problem(p=p)
    kw = dict(alphas=ALPHAS, extend_alphas=True, solver=solver)
    full = ridge_cv(X, Y, chunk_size=None, **kw)
    for chunk in (2, 7):
        _close(ridge_cv(X, Y, chunk_size=chunk, **kw), full)


@pytest.mark.skipif(jax.local_device_count() < 4, reason="needs 4 (forced CPU) devices")
def test_four_devices_equal_one():
    X, Y = _problem()
    one = ridge_cv(X, Y, alphas=ALPHAS, devices=jax.local_devices()[:1], chunk_size=3)
    four = ridge_cv(X, Y, alphas=ALPHAS, devices=jax.local_devices()[:4], chunk_size=3)
    _close(four, one)
    # and the targets really are sharded over the four devices inside the kernel
    plan = R.plan_targets(48, 16, 7, 23, 3, jax.local_devices()[:4])
    Yd = R.place_targets(Y, plan).device
    assert len(Yd.sharding.device_set) == 4


def test_jit_equals_eager():
    """The private un-jitted bodies, run op by op, equal the jitted sharded kernels."""
    X, Y = _problem(n=12, p=4, t=4)
    masks = np.zeros((3, 12), bool)
    for f in range(3):
        masks[f, f::3] = True
    groups = R.fold_groups(masks)
    dev = jax.local_devices()[:1]
    dt = R.float_dtype()
    Xd, Yd, al = jax.numpy.asarray(X, dt), jax.numpy.asarray(Y, dt), jax.numpy.asarray(ALPHAS, dt)
    kw = dict(cv_solver=R.CV_SOLVERS["svd"], score=R.SCORERS["r2"], fit_intercept=True,
              standardize=True, chunk=2)
    jitted = R.cv_pass(Xd, Yd, groups, al, devices=tuple(dev), **kw)
    a_t = jax.numpy.asarray([0.1, 1.0, 10.0, 100.0], dt)
    fkw = dict(solver=R.FOLD_SOLVERS["svd"], fit_intercept=True, standardize=True, chunk=2)
    jfit = R.refit_pass(Xd, Yd, a_t, devices=tuple(dev), **fkw)
    with jax.disable_jit():
        eager = R.cv_local(Xd, Yd, groups, al, **kw)
        efit = R.refit_local(Xd, Yd, a_t, **fkw)
    np.testing.assert_allclose(np.asarray(eager), np.asarray(jitted), rtol=1e-4, atol=1e-5)
    for e, j in zip(efit, jfit):
        np.testing.assert_allclose(np.asarray(e), np.asarray(j), rtol=1e-4, atol=1e-5)


def test_no_recompilation_on_second_call():
    X, Y = _problem(seed=1)
    ridge_cv(X, Y, alphas=ALPHAS, chunk_size=5)
    sizes = (R.cv_pass._cache_size(), R.refit_pass._cache_size())
    X2, Y2 = _problem(seed=2)
    ridge_cv(X2, Y2, alphas=ALPHAS * 3, chunk_size=5)
    assert (R.cv_pass._cache_size(), R.refit_pass._cache_size()) == sizes
