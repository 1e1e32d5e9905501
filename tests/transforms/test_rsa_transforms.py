"""jit = eager, chunked = unchunked, 4 devices = 1, no recompilation on a second call."""

import jax
import numpy as np
import pytest

import alignjax as aj
from alignjax import permutation as perm_mod
from alignjax import rsa as rsa_mod


@pytest.fixture
def rdms(rng):
    R = np.array(aj.rdm(rng.normal(size=(7, 15, 6))))
    R[5] = R[0] + 0.2 * np.abs(rng.normal(size=R.shape[1]))
    return R[:4], R[4:]


@pytest.mark.parametrize("method", aj.rsa.METHODS)
def test_jit_equals_eager(method, rdms):
    A, B = rdms
    jitted = np.asarray(aj.compare(A, B, method=method))
    with jax.disable_jit():
        eager = np.asarray(aj.compare(A, B, method=method))
    np.testing.assert_allclose(jitted, eager, atol=1e-5)


def test_rdm_jit_equals_eager(rng):
    X = rng.normal(size=(2, 10, 5))
    with jax.disable_jit():
        eager = np.asarray(aj.rdm(X))
    np.testing.assert_allclose(np.asarray(aj.rdm(X)), eager, atol=1e-6)


def test_rdm_vmap_equals_loop(rng):
    X = rng.normal(size=(3, 10, 5))
    from alignjax.rdm import rdm_body

    with jax.default_matmul_precision("float32"):  # as the public rdm() (TF32 on GPUs)
        batched = np.asarray(jax.vmap(lambda x: rdm_body(x, "correlation"))(X))
    looped = np.stack([np.asarray(aj.rdm(x)) for x in X])
    np.testing.assert_allclose(batched, looped, atol=1e-6)


def test_triangle_blocks_equal_the_full_square(rng):
    """CPU computes upper-triangle row blocks from 512 stimuli, a GPU the full square."""
    from alignjax.rdm import TRIANGLE_MIN, rdm_jit

    X = rng.normal(size=(TRIANGLE_MIN + 37, 16)).astype(np.float32)
    for metric in ("correlation", "euclidean"):
        with jax.default_matmul_precision("float32"):  # as the public rdm()
            blocks = np.asarray(rdm_jit(X, metric, triangle=True))
            square = np.asarray(rdm_jit(X, metric, triangle=False))
        np.testing.assert_allclose(blocks, square, atol=1e-5)


def test_chunk_size_and_devices_do_not_change_result(rdms):
    A, B = rdms
    ref = aj.rsa_permutation_test(A, B, n_perm=301, seed=5, chunk_size=301, devices=1,
                                  return_null=True)
    for chunk, dev in [(1, 1), (16, 1), (7, 4), (64, 4), (None, None)]:
        res = aj.rsa_permutation_test(A, B, n_perm=301, seed=5, chunk_size=chunk, devices=dev,
                                      return_null=True)
        np.testing.assert_array_equal(np.asarray(res.p), np.asarray(ref.p))
        np.testing.assert_array_equal(np.asarray(res.p_fwe), np.asarray(ref.p_fwe))
        np.testing.assert_allclose(np.asarray(res.null), np.asarray(ref.null), atol=1e-6)


@pytest.mark.parametrize("n_split, dev", [(2, 1), (3, 1), (3, 2)])
def test_concurrent_host_slices_do_not_change_result(rdms, monkeypatch, n_split, dev):
    # on a CPU with more cores than devices the permutations run as concurrent slices
    A, B = rdms
    ref = aj.rsa_permutation_test(A, B, n_perm=301, seed=5, chunk_size=4, devices=1,
                                  return_null=True)
    monkeypatch.setattr(perm_mod, "host_splits", lambda n_dev, n_steps: n_split)
    res = aj.rsa_permutation_test(A, B, n_perm=301, seed=5, chunk_size=4, devices=dev,
                                  return_null=True)
    np.testing.assert_array_equal(np.asarray(res.p), np.asarray(ref.p))
    np.testing.assert_array_equal(np.asarray(res.p_fwe), np.asarray(ref.p_fwe))
    np.testing.assert_allclose(np.asarray(res.null), np.asarray(ref.null), atol=1e-6)


@pytest.mark.parametrize("swap", [False, True])
def test_square_form_gather_does_not_change_result(rdms, monkeypatch, swap):
    # large RDM sets are gathered from their square form (cache-friendly), small ones from
    # the condensed vectors; both sides (A gathered, or B by the inverse permutation)
    A, B = rdms
    A, B = (B, A) if swap else (A, B)
    out = {}
    for square in (False, True):
        monkeypatch.setattr(rsa_mod, "_gather_square", lambda n_g, n, square=square: square)
        out[square] = aj.rsa_permutation_test(A, B, n_perm=200, seed=3, return_null=True)
    np.testing.assert_array_equal(np.asarray(out[True].p), np.asarray(out[False].p))
    np.testing.assert_array_equal(np.asarray(out[True].p_fwe), np.asarray(out[False].p_fwe))
    np.testing.assert_allclose(np.asarray(out[True].null), np.asarray(out[False].null),
                               atol=1e-6)


def test_four_devices_are_used():
    # on a GPU machine the default devices are the GPU's; the forced ones are the CPU's
    assert len(jax.devices("cpu")) == 4, "tests/conftest.py should force 4 CPU devices"


def test_gather_side_does_not_change_result(rdms):
    A, B = rdms
    ab = aj.rsa_permutation_test(A, B[:1], n_perm=100, return_null=True)   # gathers B
    ba = aj.rsa_permutation_test(B[:1], A, n_perm=100, return_null=True)   # gathers the 1-row side
    np.testing.assert_allclose(np.asarray(ab.r), np.asarray(ba.r).T, atol=1e-6)


def test_no_recompilation_on_second_call(rdms):
    A, B = rdms
    aj.rsa_permutation_test(A, B, n_perm=64, seed=0)
    aj.compare(A, B)
    before = (perm_mod.null_scan._cache_size(), rsa_mod._compare_jit._cache_size())
    aj.rsa_permutation_test(A + 0.01, B, n_perm=64, seed=1)
    aj.compare(A + 0.01, B)
    after = (perm_mod.null_scan._cache_size(), rsa_mod._compare_jit._cache_size())
    assert before == after


def test_bootstrap_chunk_does_not_change_result(rdms):
    A, B = rdms
    a = aj.rsa_bootstrap(A, B, n_boot=40, seed=2, chunk_size=1)
    b = aj.rsa_bootstrap(A, B, n_boot=40, seed=2, chunk_size=16)
    np.testing.assert_allclose(np.asarray(a.boot), np.asarray(b.boot), atol=1e-6)
