"""fit_logistic and logistic_probe against scikit-learn's LogisticRegression (lbfgs)."""

import warnings

import jax
import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
pytest.importorskip("optax")
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from alignjax.probes import fit_logistic, logistic_probe, predict_logistic  # noqa: E402
from tests._compat import enable_x64


def _data(n, p, k, *, ill, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    if ill:  # column scales over three decades, an offset and two nearly collinear columns
        X = X * np.logspace(-2, 1, p) + 3.0
        X[:, 1] = X[:, 0] + 1e-3 * rng.standard_normal(n)
    W = rng.standard_normal((k, p))
    y = np.argmax(X @ W.T / np.sqrt(p) + rng.standard_normal((n, k)), axis=1)
    return X, y


def _sk_objective(X, y, coef, intercept, C):
    z = X @ coef.T + intercept
    if coef.shape[0] == 1:
        z = np.concatenate([np.zeros_like(z), z], axis=1)
    z = z - z.max(axis=1, keepdims=True)
    ll = z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1))
    return -ll.sum() + 0.5 * np.sum(coef**2) / C


CASES = [
    # n, p, n_classes, ill-conditioned, C
    (90, 12, 2, False, 1.0),
    (90, 12, 3, False, 0.5),
    (30, 60, 2, False, 1.0),
    (30, 60, 4, False, 2.0),
    (90, 12, 2, True, 1.0),
    (90, 12, 3, True, 1.0),
    (30, 60, 3, True, 0.3),
]


@pytest.mark.parametrize("n,p,k,ill,C", CASES)
def test_fit_logistic_matches_sklearn(n, p, k, ill, C):
    X, y = _data(n, p, k, ill=ill, seed=n + p + k + int(ill))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = LogisticRegression(C=C, tol=1e-10, max_iter=100_000).fit(X, y)
    with enable_x64(True):
        fit = fit_logistic(X, y, C=C, tol=1e-10, max_iter=20_000)
        assert bool(fit.converged)
        coef, b = np.asarray(fit.coef), np.asarray(fit.intercept)
        pred = np.asarray(predict_logistic(fit, X))
    assert coef.shape == sk.coef_.shape and b.shape == sk.intercept_.shape
    scale = np.abs(sk.coef_).max()
    np.testing.assert_allclose(coef, sk.coef_, rtol=0, atol=1e-3 * scale)
    np.testing.assert_allclose(b, sk.intercept_, rtol=0,
                               atol=1e-3 * max(1.0, np.abs(sk.intercept_).max()))
    # same objective value (ours not worse), identical predictions
    ours = _sk_objective(X, y, coef, b, C)
    theirs = _sk_objective(X, y, sk.coef_, sk.intercept_, C)
    assert ours <= theirs * (1 + 1e-9) + 1e-9
    np.testing.assert_array_equal(pred, sk.predict(X))


def test_fit_logistic_float32_close_to_sklearn():
    X, y = _data(90, 12, 3, ill=False, seed=1)
    sk = LogisticRegression(C=1.0, tol=1e-8, max_iter=10_000).fit(X, y)
    fit = fit_logistic(X.astype(np.float32), y, C=1.0, tol=1e-5)
    assert fit.coef.dtype == np.float32 and bool(fit.converged)
    np.testing.assert_allclose(np.asarray(fit.coef), sk.coef_, rtol=0,
                               atol=1e-3 * np.abs(sk.coef_).max() * 10)


def test_fit_logistic_sample_weight_and_no_intercept():
    X, y = _data(90, 12, 3, ill=False, seed=2)
    w = np.random.default_rng(0).uniform(0.2, 2.0, len(y))
    sk = LogisticRegression(C=0.7, tol=1e-10, max_iter=100_000, fit_intercept=False)
    sk.fit(X, y, sample_weight=w)
    with enable_x64(True):
        fit = fit_logistic(X, y, C=0.7, sample_weight=w, fit_intercept=False, tol=1e-10,
                           max_iter=20_000)
        coef = np.asarray(fit.coef)
        assert np.all(np.asarray(fit.intercept) == 0)
    np.testing.assert_allclose(coef, sk.coef_, rtol=0, atol=1e-3 * np.abs(sk.coef_).max())


@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_logistic_probe_matches_sklearn_pipeline_loop(class_weight):
    """Every (layer, C, fold) accuracy equals a StandardScaler + LogisticRegression loop."""
    rng = np.random.default_rng(3)
    n, k = 80, 3
    y = np.repeat(np.arange(k), [30, 30, 20])
    layers = [rng.standard_normal((n, 10)) * np.logspace(-1, 2, 10) + 0.8 * np.eye(k)[y] @
              rng.standard_normal((k, 10)) * np.logspace(-1, 2, 10),
              rng.standard_normal((n, 6)) + np.eye(k)[y] @ rng.standard_normal((k, 6))]
    Cs = [0.01, 1.0, 100.0]
    with enable_x64(True):
        res = logistic_probe(layers, y, Cs=Cs, folds=4, inner_folds=None, tol=1e-8,
                             max_iter=5000, class_weight=class_weight)
    assert res.converged.all()
    for li, X in enumerate(layers):
        for ci, C in enumerate(Cs):
            for f, test in enumerate(res.folds):
                sc = StandardScaler().fit(X[~test])
                m = LogisticRegression(C=C, tol=1e-8, max_iter=5000,
                                       class_weight=class_weight).fit(sc.transform(X[~test]),
                                                                       y[~test])
                pred = m.predict(sc.transform(X[test]))
                np.testing.assert_array_equal(res.predictions[li, ci, test], pred)
                assert res.accuracy[li, ci, f] == pytest.approx(np.mean(pred == y[test]))


def test_logistic_probe_wide_layers_match_sklearn_pipeline_loop():
    """n_features > n_stimuli takes the exact training-row-space reduction; same predictions."""
    rng = np.random.default_rng(5)
    n, k, p = 60, 3, 150
    y = np.repeat(np.arange(k), 20)
    X = rng.standard_normal((n, p)) * np.logspace(-1, 1, p) + np.eye(k)[y] @ rng.standard_normal((k, p))
    Cs = [0.01, 1.0]
    with enable_x64(True):
        res = logistic_probe([X], y, Cs=Cs, folds=3, inner_folds=None, tol=1e-9, max_iter=5000)
    assert res.converged.all()
    for ci, C in enumerate(Cs):
        for test in res.folds:
            sc = StandardScaler().fit(X[~test])
            m = LogisticRegression(C=C, tol=1e-9, max_iter=5000).fit(sc.transform(X[~test]), y[~test])
            np.testing.assert_array_equal(res.predictions[0, ci, test], m.predict(sc.transform(X[test])))
