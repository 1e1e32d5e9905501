"""Reference: the spatial probes' nested ridge and logistic probes against scikit-learn on the
same folds."""

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.model_selection import GridSearchCV, PredefinedSplit  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import alignjax as aj  # noqa: E402
from alignjax.folds import fold_ids, inner_test_masks, resolve_folds  # noqa: E402
from alignjax.spatial import ridge as sridge  # noqa: E402

ALPHAS = np.logspace(-2, 4, 7)


def _sklearn_nested(X, T, outer, inner, est, grid):
    pred = np.zeros(T.shape, dtype=float) if T.ndim == 2 else np.empty(len(T), dtype=T.dtype)
    for f, test in enumerate(outer):
        tr = ~test
        cv = PredefinedSplit(fold_ids(inner[f][:, tr]))
        cols = range(T.shape[1]) if T.ndim == 2 else [None]
        for k in cols:
            y = T[tr, k] if k is not None else T[tr]
            gs = GridSearchCV(make_pipeline(StandardScaler(), est), grid, cv=cv,
                              scoring="neg_mean_squared_error" if k is not None else "accuracy")
            gs.fit(X[tr], y)
            if k is None:
                pred[test] = gs.predict(X[test])
            else:
                pred[test, k] = gs.predict(X[test])
    return pred


@pytest.mark.parametrize("n,p", [(60, 8), (40, 70)])
def test_nested_ridge_matches_sklearn_gridsearch(n, p):
    rng = np.random.default_rng(n + p)
    X = rng.normal(size=(n, p)) * rng.uniform(0.5, 3, p)
    T = np.c_[X[:, :3] @ rng.normal(size=(3, 2)) + rng.normal(size=(n, 2)), rng.normal(size=n)]
    groups = np.arange(n) // 4
    outer = resolve_folds(4, n, groups=groups)
    inner = inner_test_masks(np.zeros(n), outer, 3, seed=1, groups=groups)
    train = np.concatenate([~outer, ((~outer)[:, None] & ~inner).reshape(-1, n)])
    prep = sridge.prepare(X, train)
    ours, _ = sridge.nested_predictions(prep, T, ALPHAS, inner, outer.shape[0])
    ref = _sklearn_nested(X, T, outer, inner, Ridge(), {"ridge__alpha": ALPHAS})
    np.testing.assert_allclose(ours, ref, rtol=2e-3, atol=2e-3)


def test_azimuth_probe_matches_sklearn_on_the_same_folds():
    rng = np.random.default_rng(0)
    n = 64
    az = np.tile(np.arange(0.0, 360.0, 45.0), n // 8)
    X = np.c_[np.cos(np.deg2rad(az)), np.sin(np.deg2rad(az))] + rng.normal(size=(n, 2))
    X = np.c_[X, rng.normal(size=(n, 4))]
    groups = np.arange(n) // 4
    res = aj.spatial_probe([X], {"azimuth": az}, groups=groups, folds=4, inner_folds=3,
                           alphas=ALPHAS, n_boot=0)
    inner = inner_test_masks(np.zeros(n), res.folds, 3, seed=1, groups=groups)
    r = np.deg2rad(az)
    P = _sklearn_nested(X, np.c_[np.cos(r), np.sin(r)], res.folds, inner, Ridge(),
                        {"ridge__alpha": ALPHAS})
    ref = np.rad2deg(np.arctan2(P[:, 1], P[:, 0])) % 360
    assert np.max(aj.angular_error(res.predictions["azimuth"][0], ref)) < 0.5


def test_class_probe_matches_sklearn_logistic_on_the_same_folds():
    rng = np.random.default_rng(1)
    n = 72
    y = np.tile(["a", "b", "c"], n // 3)
    X = rng.normal(size=(n, 5)) + 1.5 * (y[:, None] == np.array(["a", "b", "c", "a", "b"]))
    groups = np.arange(n) // 3
    res = aj.spatial_probe([X], {"class": y}, groups=groups, folds=4, inner_folds=3,
                           Cs=[1.0], n_boot=0)
    ref = np.empty(n, dtype=object)
    for test in res.folds:
        m = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, tol=1e-8))
        ref[test] = m.fit(X[~test], y[~test]).predict(X[test])
    assert np.mean(res.predictions["class"][0] == ref) >= 0.98
