"""banded_ridge_cv against himalaya's solve_group_ridge_random_search (same weights, alphas
and run-wise folds), r2_score_split against himalaya's, run_folds, and the input errors."""

import numpy as np
import pytest

import alignjax
from alignjax.errors import InvalidFoldsError, InvalidOptionError, NonFiniteError, \
    ShapeMismatchError, ZeroVarianceError
from alignjax.naturalistic import dirichlet_weights
from tests._compat import enable_x64

ALPHAS = np.logspace(-2, 4, 7)


def _problem(widths=(6, 4, 3), n_run=40, n_runs=4, t=7, seed=0):
    rng = np.random.default_rng(seed)
    n = n_run * n_runs
    runs = np.repeat(np.arange(n_runs), n_run)
    Xs = [rng.standard_normal((n, p)) for p in widths]
    gains = [1.0, 0.3, 0.0, 0.5][:len(widths)]
    Y = sum(X @ (g * rng.standard_normal((X.shape[1], t))) for X, g in zip(Xs, gains))
    return Xs, Y + rng.standard_normal((n, t)) + 3.0, runs


def _himalaya(Xs, Y, w, masks):
    ridge = pytest.importorskip("himalaya.ridge")
    from himalaya.scoring import r2_score
    cv = [(np.flatnonzero(~m), np.flatnonzero(m)) for m in masks]
    return ridge.solve_group_ridge_random_search(
        Xs, Y, n_iter=w, alphas=ALPHAS, fit_intercept=True, score_func=r2_score, cv=cv,
        return_weights=True, progress_bar=False)


@pytest.mark.parametrize("x64, widths", [(True, (6, 4, 3)), (False, (6, 4, 3)),
                                         (True, (60, 50, 40))])
def test_equals_himalaya(x64, widths):
    Xs, Y, runs = _problem(widths)
    masks = alignjax.run_folds(runs)
    w = dirichlet_weights(8, 3, seed=3)
    dt = np.float64 if x64 else np.float32
    Xs_h, Y_h = [X.astype(dt) for X in Xs], Y.astype(dt)
    with enable_x64(x64):
        res = alignjax.banded_ridge_cv(Xs_h, Y_h, alphas=ALPHAS, weights=w, folds=masks,
                                       chunk_size=3)
        deltas, coef, cvs, icpt = _himalaya(Xs_h, Y_h, w.astype(dt), masks)
    ours = np.log(np.asarray(res.band_weights, np.float64).T / np.asarray(res.alpha))
    np.testing.assert_allclose(ours, deltas, rtol=0, atol=1e-6 if x64 else 1e-4)
    X = np.concatenate(Xs, 1)
    pred = X @ np.asarray(res.coef, np.float64) + np.asarray(res.intercept)
    pred_h = X @ coef + icpt
    tol = 1e-10 if x64 else 2e-4
    np.testing.assert_allclose(pred, pred_h, rtol=tol, atol=tol * np.abs(pred_h).max())
    # himalaya's CV score per sample is the best over alphas (plus its 1e-10 log-alpha slope)
    np.testing.assert_allclose(np.asarray(res.cv_scores).max(axis=1), cvs,
                               atol=1e-8 if x64 else 1e-5)
    assert res.cv_scores.shape == (8, len(ALPHAS), 7) and res.coef.shape == (sum(widths), 7)


def test_dirichlet_samples_are_himalayas():
    kr = pytest.importorskip("himalaya.kernel_ridge")
    g = kr.generate_dirichlet_samples(9, 3, concentration=[0.1, 1.0], random_state=5)
    g[0] = 1 / 3
    np.testing.assert_array_equal(dirichlet_weights(9, 3, seed=5), g)


def test_planted_band_weights_and_seeded_search():
    # only band 0 carries signal: its chosen weight dominates on every target
    Xs, Y, runs = _problem((5, 5), n_run=60, t=6, seed=2)
    rng = np.random.default_rng(9)
    Y = Xs[0] @ rng.standard_normal((5, 6)) + 0.5 * rng.standard_normal(Y.shape)
    res = alignjax.banded_ridge_cv(Xs, Y, alphas=ALPHAS, n_iter=12, seed=1,
                                   folds=alignjax.run_folds(runs))
    assert np.all(np.asarray(res.band_weights)[:, 0] > 0.9)
    again = alignjax.banded_ridge_cv(Xs, Y, alphas=ALPHAS, n_iter=12, seed=1, chunk_size=2,
                                     folds=alignjax.run_folds(runs))
    np.testing.assert_array_equal(res.band_weights, again.band_weights)
    np.testing.assert_allclose(res.coef, again.coef, rtol=1e-5, atol=1e-6)


def test_r2_score_split_equals_himalaya():
    scoring = pytest.importorskip("himalaya.scoring")
    rng = np.random.default_rng(1)
    y = rng.standard_normal((50, 4))
    y -= y.mean(0)
    pr = 0.4 * y[None] + rng.standard_normal((3, 50, 4))
    with enable_x64(True):
        ours = np.asarray(alignjax.r2_score_split(y, pr))
    np.testing.assert_allclose(ours, scoring.r2_score_split(y, pr), rtol=1e-12, atol=1e-12)
    total = 1 - ((y - pr.sum(0)) ** 2).sum(0) / (y ** 2).sum(0)
    np.testing.assert_allclose(ours.sum(0), total, rtol=1e-10)


def test_run_folds():
    runs = np.repeat(["a", "b", "c", "d", "e"], [3, 4, 3, 5, 2])
    loro = alignjax.run_folds(runs)
    assert loro.shape == (5, 17) and np.array_equal(loro.sum(1), [3, 4, 3, 5, 2])
    k2 = alignjax.run_folds(runs, 2)  # runs a,b,c | d,e
    np.testing.assert_array_equal(k2[0], np.arange(17) < 10)
    with pytest.raises(InvalidFoldsError, match="at least two runs"):
        alignjax.run_folds(np.zeros(8))
    with pytest.raises(InvalidFoldsError, match="2..5"):
        alignjax.run_folds(runs, 6)


def test_bad_inputs():
    Xs, Y, runs = _problem((3, 2), n_run=10, n_runs=3, t=2)
    folds = alignjax.run_folds(runs)
    kw = dict(alphas=ALPHAS, folds=folds, n_iter=3)
    with pytest.raises(ShapeMismatchError, match="band 1"):
        alignjax.banded_ridge_cv([Xs[0], np.zeros((30, 0))], Y, **kw)
    with pytest.raises(ShapeMismatchError, match=r"Xs\[1\] has 29 samples but Y has 30"):
        alignjax.banded_ridge_cv([Xs[0], Xs[1][:29]], Y, **kw)
    Yc = Y.copy()
    Yc[10:20, 1] = 4.0
    with pytest.raises(ZeroVarianceError, match=r"\[1\].*fold 1"):
        alignjax.banded_ridge_cv(Xs, Yc, **kw)
    Yc[3, 0] = np.nan
    with pytest.raises(NonFiniteError, match="Y"):
        alignjax.banded_ridge_cv(Xs, Yc, **kw)
    with pytest.raises(InvalidFoldsError, match="run_folds"):
        alignjax.banded_ridge_cv(Xs, Y, alphas=ALPHAS, folds=3)
    with pytest.raises(InvalidOptionError, match="sum to 1"):
        alignjax.banded_ridge_cv(Xs, Y, alphas=ALPHAS, folds=folds, weights=[[1.0, 1.0]])
    with pytest.raises(ShapeMismatchError, match=r"\(k, 2\)"):
        alignjax.banded_ridge_cv(Xs, Y, alphas=ALPHAS, folds=folds, weights=[[1.0]])
