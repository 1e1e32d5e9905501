"""serial_lapack: OpenBLAS on one thread around small CPU decompositions, restored after."""

import jax
import numpy as np
import pytest

from alignjax import ridge_cv
from alignjax._blas import SERIAL_LAPACK_MAX, _controller, serial_lapack


def _blas_threads():
    libs = _controller().select(user_api="blas").lib_controllers
    return {lib.filepath: lib.num_threads for lib in libs}


@pytest.fixture
def two_threads():
    """BLAS on two threads for the test (the CI machine may report one core)."""
    with _controller().limit(limits=2, user_api="blas"):
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
    monkeypatch.setattr("alignjax._blas.SERIAL_LAPACK_MAX", 0)
    b = ridge_cv(X, Y, alphas=np.logspace(-2, 3, 6), folds=4)
    np.testing.assert_array_equal(np.asarray(a.best_alpha), np.asarray(b.best_alpha))
    np.testing.assert_allclose(np.asarray(a.coef), np.asarray(b.coef), rtol=1e-5, atol=1e-6)
