"""The ridge solver registries, tested solver by solver (as himalaya tests its solvers)."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

from alignjax import ridge as R
from alignjax import resolve_folds, ridge_cv, ridge_fit

ALPHAS = np.logspace(-1, 3, 5)


def _problem(n=40, p=12, t=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    Y = X @ rng.standard_normal((p, t)) + 2 * rng.standard_normal((n, t))
    return X, Y


def _reference_cv(X, Y, masks, alphas, score):
    """Brute-force K-fold scores (n_alphas, n_targets): centred normal equations per fold."""
    out = np.zeros((len(alphas), Y.shape[1]))
    for test in masks:
        Xtr, Ytr = X[~test], Y[~test]
        mx, my = Xtr.mean(0), Ytr.mean(0)
        for a, alpha in enumerate(alphas):
            W = np.linalg.solve((Xtr - mx).T @ (Xtr - mx) + alpha * np.eye(X.shape[1]),
                                (Xtr - mx).T @ (Ytr - my))
            pred = (X[test] - mx) @ W + my
            out[a] += np.asarray(R.SCORERS[score](jnp.asarray(pred), jnp.asarray(Y[test])))
    return out / masks.shape[0]


def test_registries_cover_the_solver_option():
    assert set(R.CV_SOLVERS) == set(R.SOLVERS) - {"auto"}
    picked = {R.pick_solver(s, n_rows, 8) for s in R.SOLVERS for n_rows in (4, 16)}
    assert picked == set(R.FOLD_SOLVERS)
    assert R.SCORES == tuple(R.SCORERS)


@pytest.mark.parametrize("name", sorted(R.CV_SOLVERS))
@pytest.mark.parametrize("p", [12, 60])
def test_cv_solver_matches_brute_force_kfold(name, p):
    X, Y = _problem(p=p)
    masks = resolve_folds(4, X.shape[0], seed=1)
    res = ridge_cv(X, Y, alphas=ALPHAS, folds=masks, solver=name, score="r2")
    want = _reference_cv(X, Y, masks, ALPHAS, "r2")
    np.testing.assert_allclose(np.asarray(res.cv_scores), want, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("name", sorted(R.FOLD_SOLVERS))
@pytest.mark.parametrize("p", [12, 60])
def test_fold_solver_fit_solves_the_normal_equations(name, p):
    X, Y = _problem(p=p)
    alpha = np.logspace(-1, 2, Y.shape[1])
    coef, icpt = ridge_fit(X, Y, alpha=alpha, solver=name)
    coef, icpt = np.asarray(coef, float), np.asarray(icpt, float)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    for j, a in enumerate(alpha):
        want = np.linalg.solve(Xc.T @ Xc + a * np.eye(p), Xc.T @ Yc[:, j])
        np.testing.assert_allclose(coef[:, j], want, rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(icpt, Y.mean(0) - X.mean(0) @ coef, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", sorted(R.SCORERS))
def test_scorer_matches_numpy(name):
    rng = np.random.default_rng(3)
    pred, y = rng.standard_normal((2, 15, 4))
    got = np.asarray(R.SCORERS[name](jnp.asarray(pred), jnp.asarray(y)))
    if name == "r2":
        want = 1 - ((y - pred) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)
    elif name == "pearson":
        want = [np.corrcoef(pred[:, j], y[:, j])[0, 1] for j in range(4)]
    else:
        want = -((y - pred) ** 2).mean(0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_target_chunk_is_accepted_with_a_deprecation_warning():
    X, Y = _problem()
    new = ridge_cv(X, Y, alphas=ALPHAS, chunk_size=4)
    with pytest.warns(DeprecationWarning, match="chunk_size"):
        old = ridge_cv(X, Y, alphas=ALPHAS, target_chunk=4)
    np.testing.assert_array_equal(np.asarray(old.coef), np.asarray(new.coef))
    with warnings.catch_warnings(), pytest.raises(TypeError):
        ridge_cv(X, Y, alphas=ALPHAS, chunk_size=4, target_chunk=4)
