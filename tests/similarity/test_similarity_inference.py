"""Permutation inference of alignjax.similarity: calibration (KS), FWE, transforms."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import kstest

import alignjax
from alignjax.similarity import similarity

N = 14


@pytest.fixture(scope="module")
def null_result():
    """3 layers against 150 independent null subjects: each subject's p-values are iid
    uniform given the layers and the permutations."""
    rng = np.random.default_rng(11)
    layers = {f"l{i}": rng.normal(size=(N, 5)) for i in range(3)}
    Y = rng.normal(size=(150, N, 4))
    return similarity(layers, Y, metrics=["cka", "dcor", "knn"], n_perm=199, k=3, seed=3)


@pytest.mark.parametrize("metric", ["cka", "dcor", "knn"])
def test_p_uniform_under_null(null_result, metric):
    """Uniform (KS) for the continuous statistics; mutual kNN takes few values (multiples
    of 1/(n k)), ties with the observed value count as reaching it, so its p-values may
    only be conservative: one-sided KS against p being stochastically smaller."""
    p = null_result.get(metric, "p")
    assert np.all((p >= 1 / 200 - 1e-6) & (p <= 1 + 1e-6))
    for layer in range(p.shape[0]):
        if metric == "knn":
            assert kstest(p[layer], "uniform", alternative="greater").pvalue > 0.01
            for a in (0.05, 0.1, 0.25):
                assert np.mean(p[layer] <= a) <= a + 3 * np.sqrt(a * (1 - a) / p.shape[1])
        else:
            assert kstest(p[layer], "uniform").pvalue > 0.01


@pytest.mark.parametrize("metric", ["cka", "dcor", "knn"])
def test_fwe_held_over_layers(null_result, metric):
    p_fwe = null_result.get(metric, "p_fwe")
    any_hit = (p_fwe < 0.05).any(axis=0).mean()
    assert any_hit <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / p_fwe.shape[1])
    assert np.all(p_fwe >= null_result.get(metric, "p") - 1e-7)


def test_signal_detected_and_calibrated(null_result):
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(N, 3))
    X = np.c_[Z, 0.3 * rng.normal(size=(N, 2))]
    Y = Z @ rng.normal(size=(3, 6)) + 0.3 * rng.normal(size=(N, 6))
    res = similarity(X, Y, metrics=["cka", "dcor", "knn"], n_perm=199, k=3, seed=3, n_boot=30)
    assert np.all(res.p < 0.02)
    # intervals only for CI_METRICS: biased CKA, dCor and kNN get none
    assert np.isnan(res.ci_low).all() and np.isnan(res.ci_high).all() and res.boot.shape[0] == 30
    df = res.to_frame()
    assert list(df.columns) == ["metric", "layer", "subject", "score", "p", "p_fwe", "null_mean",
                                "null_std", "calibrated", "ci_low", "ci_high"]
    assert len(df) == 3


def test_chunked_equals_unchunked_and_exact():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3, N, 4))
    Y = rng.normal(size=(2, N, 5))
    kw = dict(metrics=["cka", "knn_cycle"], n_perm=30, k=3, seed=1)
    a = similarity(X, Y, chunk_size=1, **kw)
    b = similarity(X, Y, chunk_size=7, **kw)
    for f in ("p", "p_fwe", "null_mean"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-5)
    # 5 stimuli: all 120 permutations enumerated, identity included
    ex = similarity(X[:, :5], Y[:, :5], metrics=["cka"], n_perm=500)
    assert ex.exact and ex.n_perm == 120
    assert np.all(ex.p >= 1 / 120)


@pytest.mark.slow
def test_vmap_equals_loop_and_jit_equals_eager():
    import jax

    rng = np.random.default_rng(6)
    X = rng.normal(size=(3, N, 4))
    Y = rng.normal(size=(3, N, 5))
    for f in (alignjax.cka, alignjax.distance_correlation, alignjax.shape_distance,
              lambda a, b: alignjax.knn_alignment(a, b, k=3, method="cknna")):  # noqa: E731
        batched = np.asarray(f(X, Y))
        loop = np.array([float(f(x, y)) for x, y in zip(X, Y)])
        np.testing.assert_allclose(batched, loop, rtol=1e-5, atol=1e-6)
        with jax.disable_jit():
            eager = np.array([float(f(x, y)) for x, y in zip(X, Y)])
        np.testing.assert_allclose(eager, loop, rtol=2e-4, atol=1e-5)


@pytest.mark.slow
def test_four_devices_equal_one(tmp_path):
    """The same seed gives the same p-values on 4 forced CPU devices as on 1."""
    code = r"""
import json, sys, numpy as np
from alignjax.similarity import similarity
rng = np.random.default_rng(5)
X = rng.normal(size=(3, 14, 4)); Y = rng.normal(size=(2, 14, 5))
out = {}
for d in (1, 4):
    r = similarity(X, Y, metrics=["cka", "rsa_spearman", "knn"], n_perm=64, k=3, devices=d)
    out[d] = [r.p.tolist(), r.p_fwe.tolist(), r.null_mean.tolist()]
import jax; out["n"] = jax.local_device_count()
json.dump(out, open(sys.argv[1], "w"))
"""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = tmp_path / "out.json"
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=env, timeout=600)
    res = json.loads(out.read_text())
    assert res["n"] == 4
    for a, b in zip(res["1"], res["4"]):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_vmap_equals_loop_cka():
    """The fast transform check run in every CI job (the full one is marked slow)."""
    rng = np.random.default_rng(6)
    X, Y = rng.normal(size=(3, N, 4)), rng.normal(size=(3, N, 5))
    np.testing.assert_allclose(np.asarray(alignjax.cka(X, Y)),
                               [float(alignjax.cka(x, y)) for x, y in zip(X, Y)], rtol=1e-5)


def test_rank_agreement_and_model_similarity():
    rng = np.random.default_rng(8)
    Z = rng.normal(size=(N, 3))
    layers = {f"l{i}": np.c_[Z * i, rng.normal(size=(N, 3))] for i in range(4)}
    res = similarity(layers, Z @ rng.normal(size=(3, 5)), metrics=["cka", "dcor", "rsa_pearson"],
                     n_perm=0, n_boot=20)
    ra = alignjax.rank_agreement(res)
    assert ra.ranks.shape == (3, 4) and ra.tau.shape == (3, 3)
    np.testing.assert_allclose(np.diag(ra.tau), 1.0)
    assert 0 <= ra.w <= 1 and ra.w_boot.shape == (20,) and np.isfinite(ra.w_ci).all()
    # all metrics agree that the layer with no signal (l0) ranks last
    assert np.all(ra.ranks[:, 0] == 4)
    # Kendall's W of identical rankings is 1
    from alignjax.similarity.agreement import kendalls_w

    assert kendalls_w(np.tile(np.arange(1, 5), (3, 1))) == pytest.approx(1.0)
    mm = alignjax.model_similarity(layers, layers, metrics=["cka"])
    assert mm.score.shape == (1, 4, 4)
    np.testing.assert_allclose(np.diag(mm.score[0, 1:, 1:]), 1.0, rtol=1e-5)
