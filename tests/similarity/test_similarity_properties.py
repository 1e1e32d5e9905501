"""Invariances, symmetry, metric axioms, errors and the alignjax.similarity naming."""

import numpy as np
import pytest

import alignjax
from alignjax.errors import (AlignjaxInputError, InvalidOptionError, NonFiniteError,
                             ShapeMismatchError, StimulusMismatchError, ZeroVarianceError)
from alignjax.similarity import (cca_similarity, cka, distance_correlation, knn_alignment,
                                 shape_distance)

N, P, Q = 20, 6, 8


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, P))
    Y = X @ rng.normal(size=(P, Q)) + 0.5 * rng.normal(size=(N, Q))
    Z = rng.normal(size=(N, Q))
    O, _ = np.linalg.qr(rng.normal(size=(P, P)))
    A = rng.normal(size=(P, P)) + 3 * np.eye(P)
    return X, Y, Z, O, A


def close(a, b, rtol=5e-4):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=5e-5)


def test_isotropic_scaling_and_rotation_invariance(data):
    X, Y, _, O, _ = data
    for f in (lambda a, b: cka(a, b), lambda a, b: cka(a, b, debiased=True),
              lambda a, b: shape_distance(a, b)):
        close(f(X, Y), f(2.5 * X @ O, Y))


def test_invertible_linear_maps(data):
    X, Y, _, _, A = data
    close(cca_similarity(X, Y), cca_similarity(X @ A, Y))
    close(shape_distance(X, Y, alpha=0.0), shape_distance(X @ A, Y, alpha=0.0))
    assert abs(float(shape_distance(X, Y)) - float(shape_distance(X @ A, Y))) > 1e-3
    assert abs(float(cka(X, Y)) - float(cka(X @ A, Y))) > 1e-3


def test_symmetry_and_identity(data):
    X, Y, _, _, _ = data
    Yn = Y[:, :P]  # same width: symmetric in every respect
    for f in (cka, distance_correlation, lambda a, b: knn_alignment(a, b, k=4),
              lambda a, b: shape_distance(a, b, score="euclidean")):
        close(f(X, Yn), f(Yn, X))
    close(shape_distance(X, Y), shape_distance(Y, X))
    for alpha in (0.0, 0.5, 1.0):
        assert float(shape_distance(X, X, alpha=alpha)) < 2e-3
    assert float(shape_distance(X, X, score="euclidean")) < 1e-2 * np.linalg.norm(X)
    close(cka(X, X), 1.0)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_shape_triangle_inequality(alpha):
    rng = np.random.default_rng(7)
    base = rng.normal(size=(N, 4))
    trip = np.stack([base @ rng.normal(size=(4, P)) + s * rng.normal(size=(N, P))
                     for s in (0.3, 1.0, 3.0)])
    for score in ("angular", "euclidean"):
        d = lambda a, b: float(shape_distance(trip[a], trip[b], alpha=alpha, score=score))  # noqa
        for i, j, k in ((0, 1, 2), (1, 0, 2), (0, 2, 1)):
            assert d(i, k) <= d(i, j) + d(j, k) + 1e-4


def test_naming_function_and_module():
    from alignjax.similarity import cka as cka2  # the submodule stays importable
    from alignjax.similarity.kernels import cka as cka3

    assert callable(alignjax.similarity) and cka2 is cka3
    assert "similarity" in alignjax.__all__


def test_bad_inputs(data):
    X, Y, _, _, _ = data
    sim = alignjax.similarity
    with pytest.raises(ShapeMismatchError, match="at least 4 stimuli"):
        cka(X[:3], Y[:3], debiased=True)
    with pytest.raises(ShapeMismatchError, match="at least 4"):
        distance_correlation(X[:3], Y[:3], unbiased=True)
    with pytest.raises(AlignjaxInputError, match="k=20"):
        knn_alignment(X, Y, k=N)
    with pytest.raises(ZeroVarianceError, match="constant"):
        cka(np.ones((N, P)), Y)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(NonFiniteError):
        cka(bad, Y)
    with pytest.raises(NonFiniteError, match="layer 'a'"):
        sim({"a": bad}, Y, metrics=["cka"], n_perm=0)
    with pytest.raises(ZeroVarianceError, match="subject 's'"):
        sim({"a": X}, {"s": np.zeros((N, 3))}, metrics=["cka"], n_perm=0)
    with pytest.raises(InvalidOptionError, match="unknown metric 'ckaa'"):
        sim(X, Y, metrics=["ckaa"], n_perm=0)
    with pytest.raises(InvalidOptionError, match="at least 4 stimuli"):
        sim(X[:3], Y[:3], metrics=["cka_debiased"], n_perm=0)
    with pytest.raises(AlignjaxInputError, match="k="):
        sim(X, Y, metrics=["knn"], k=N, n_perm=0)
    ids = [f"s{i}" for i in range(N)]
    from alignjax.io import Responses

    resp = Responses([f"t{i}" for i in range(N)], {"a": Y})
    with pytest.raises(StimulusMismatchError, match="missing"):
        sim(X, resp, stimulus_ids=ids, metrics=["cka"], n_perm=0)
    with pytest.raises(ShapeMismatchError, match="no stimulus ids"):
        sim(X, Y[:-1], metrics=["cka"], n_perm=0)


def test_responses_matched_by_id(data):
    X, Y, _, _, _ = data
    from alignjax.io import Responses

    ids = [f"s{i}" for i in range(N)]
    order = np.random.default_rng(1).permutation(N)
    resp = Responses([ids[i] for i in order], {"a": Y[order]})
    res = alignjax.similarity(X, resp, stimulus_ids=ids, metrics=["cka"], n_perm=0)
    close(res.score[0, 0, 0], cka(X, Y))
