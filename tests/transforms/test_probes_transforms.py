"""Transform tests for the probe kernels: vmap = loop, jit = eager, chunked = unchunked,
no recompilation on a repeated call."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("optax")
from alignjax.probes import solve  # noqa: E402
from alignjax.probes import fit_logistic, logistic_probe  # noqa: E402
from tests._compat import enable_x64


def _problems(b=4, n=40, p=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((b, n, p)).astype(np.float32)
    y = np.stack([np.arange(n) % k for _ in range(b)])
    y = np.stack([rng.permutation(r) for r in y]).astype(np.int32)
    X = X + 0.7 * np.eye(k, dtype=np.float32)[y] @ rng.standard_normal((k, p)).astype(np.float32)
    Cs = np.array([0.1, 0.5, 1.0, 4.0], np.float32)
    return X, y, Cs


def test_vmap_equals_loop():
    """Batched and one-by-one fits agree (float64, tight tol: rounding-order differences of
    the batched matrix products must not move the solution)."""
    X, y, Cs = _problems()
    with enable_x64(True):
        X = X.astype(np.float64)
        f = jax.vmap(lambda X, y, C: fit_logistic(X, y, C=C, n_classes=3, tol=1e-10))
        batched = f(jnp.asarray(X), jnp.asarray(y), jnp.asarray(Cs, jnp.float64))
        assert bool(batched.converged.all())
        for i in range(X.shape[0]):
            one = fit_logistic(X[i], y[i], C=float(Cs[i]), n_classes=3, tol=1e-10)
            np.testing.assert_allclose(batched.coef[i], one.coef, rtol=1e-7, atol=1e-8)
            np.testing.assert_allclose(batched.intercept[i], one.intercept, rtol=1e-7, atol=1e-8)
            assert abs(int(batched.n_iter[i]) - int(one.n_iter)) <= 2


def test_jit_equals_eager():
    X, y, Cs = _problems(b=1)
    eager = fit_logistic(X[0], y[0], C=1.0, n_classes=3, tol=1e-5)
    jitted = jax.jit(lambda X, y: fit_logistic(X, y, C=1.0, n_classes=3, tol=1e-5))(X[0], y[0])
    np.testing.assert_allclose(jitted.coef, eager.coef, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jitted.intercept, eager.intercept, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def layers():
    rng = np.random.default_rng(1)
    n, k = 60, 3
    y = np.arange(n) % k
    arrs = [rng.standard_normal((n, 8)) + s * np.eye(k)[y] @ rng.standard_normal((k, 8))
            for s in (0.2, 1.0, 2.0)]
    return arrs, y


def test_layer_chunking_and_grouping_do_not_change_results(layers):
    arrs, y = layers
    kw = dict(Cs=[0.1, 1.0], folds=3, inner_folds=None)
    full = logistic_probe(arrs, y, **kw)
    chunked = logistic_probe(arrs, y, layer_chunk_size=1, **kw)
    np.testing.assert_array_equal(full.predictions, chunked.predictions)
    # each layer alone (a loop over layers) gives the same answer as the batch
    for i, a in enumerate(arrs):
        single = logistic_probe([a], y, **kw)
        np.testing.assert_array_equal(single.predictions[0], full.predictions[i])
        np.testing.assert_allclose(single.accuracy[0], full.accuracy[i])


def test_no_recompilation_on_second_call(layers):
    arrs, y = layers
    kw = dict(Cs=[0.1, 1.0], folds=3, inner_folds=None)
    logistic_probe(arrs, y, **kw)
    before = solve.solve_group._cache_size()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        logistic_probe([a * 2.0 for a in arrs], y, **kw)
    assert solve.solve_group._cache_size() == before
