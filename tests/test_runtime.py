"""serial_lapack: OpenBLAS on one thread around small CPU decompositions, restored after."""

import jax
import numpy as np
import pytest

from alignjax import ridge_cv
from alignjax._runtime import SERIAL_LAPACK_MAX, blas_controller, serial_lapack


def _blas_threads():
    libs = blas_controller().select(user_api="blas").lib_controllers
    return {lib.filepath: lib.num_threads for lib in libs}


@pytest.fixture
def two_threads():
    """BLAS on two threads for the test (the CI machine may report one core)."""
    with blas_controller().limit(limits=2, user_api="blas"):
        yield


def test_small_cpu_work_runs_blas_serially_and_restores(two_threads):
    before = _blas_threads()
    assert before and all(n == 2 for n in before.values())
    with serial_lapack(SERIAL_LAPACK_MAX, jax.devices("cpu")):
        assert all(n == 1 for n in _blas_threads().values())
    assert _blas_threads() == before


def test_large_decompositions_keep_their_threads(two_threads):
    before = _blas_threads()
    with serial_lapack(SERIAL_LAPACK_MAX + 1, jax.devices("cpu")):
        assert _blas_threads() == before


def test_limit_lifted_after_an_error(two_threads):
    before = _blas_threads()
    with pytest.raises(ValueError):
        with serial_lapack(10):
            raise ValueError("boom")
    assert _blas_threads() == before


def test_ridge_cv_same_answer_with_and_without_serial_lapack(two_threads, monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 60)).astype(np.float32)
    Y = rng.standard_normal((40, 7)).astype(np.float32)
    a = ridge_cv(X, Y, alphas=np.logspace(-2, 3, 6), folds=4)
    monkeypatch.setattr("alignjax._runtime.SERIAL_LAPACK_MAX", 0)
    b = ridge_cv(X, Y, alphas=np.logspace(-2, 3, 6), folds=4)
    np.testing.assert_array_equal(np.asarray(a.best_alpha), np.asarray(b.best_alpha))
    np.testing.assert_allclose(np.asarray(a.coef), np.asarray(b.coef), rtol=1e-5, atol=1e-6)


def test_float32_matmuls_sets_precision_unless_the_user_did():
    from alignjax._runtime import float32_matmuls

    seen = float32_matmuls(lambda: jax.config.jax_default_matmul_precision)
    assert seen() == "float32"
    with jax.default_matmul_precision("tensorfloat32"):
        assert seen() == "tensorfloat32"
    assert jax.config.jax_default_matmul_precision is None


def test_public_kernels_trace_with_float32_matmuls(monkeypatch):
    """The RSA permutation slices run in worker threads: they must see the precision too."""
    import alignjax.permutation as perm
    import alignjax.rsa as rsa

    seen = []
    real = perm.null_scan

    def spy(*args, **kwargs):
        seen.append(jax.config.jax_default_matmul_precision)
        return real(*args, **kwargs)

    monkeypatch.setattr(perm, "null_scan", spy)
    monkeypatch.setattr(perm, "host_splits", lambda n_dev, n_steps: 2)
    rng = np.random.default_rng(0)
    A = rng.random((2, 45)).astype(np.float32)
    B = rng.random((3, 45)).astype(np.float32)
    rsa.rsa_permutation_test(A, B, n_perm=200, chunk_size=50)
    assert seen and all(p == "float32" for p in seen)
