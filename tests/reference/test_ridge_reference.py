"""ridge_cv against scikit-learn (Ridge, RidgeCV) and himalaya (solve_ridge_cv_svd, KernelRidgeCV).

Run in float64 (``jax.enable_x64``) so alpha choices can be compared exactly.
"""

import jax
import numpy as np
import pytest

from alignjax import ridge_cv, ridge_fit

sklearn = pytest.importorskip("sklearn")
himalaya = pytest.importorskip("himalaya")

from himalaya.kernel_ridge import KernelRidgeCV  # noqa: E402
from himalaya.ridge import solve_ridge_cv_svd  # noqa: E402
from himalaya.scoring import r2_score as h_r2  # noqa: E402
from sklearn.linear_model import Ridge, RidgeCV  # noqa: E402
from sklearn.metrics import r2_score  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402
from tests._compat import enable_x64

ALPHAS = np.logspace(-3, 5, 17)


def _problem(n, p, t, *, seed=0, rank=None, dup=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    if rank is not None:  # rank-deficient: low-rank features
        X = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, p))
    if dup:  # duplicated columns
        X[:, p // 2:] = X[:, : p - p // 2]
    W = rng.standard_normal((p, t)) * rng.uniform(0.0, 1.0, t)
    Y = X @ W + rng.standard_normal((n, t)) * 2.0 + 5.0
    return X, Y


def _masks(n, k=5):
    m = np.zeros((k, n), bool)
    for f, (_, te) in enumerate(KFold(k).split(np.zeros(n))):
        m[f, te] = True
    return m


CASES = {
    "n>p": dict(n=60, p=15, t=8),
    "n<p": dict(n=30, p=80, t=8),
    "rank-deficient": dict(n=40, p=25, t=6, rank=5),
    "duplicated-cols": dict(n=40, p=30, t=6, dup=True),
    "many-targets": dict(n=35, p=12, t=300),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_matches_himalaya_alphas_and_sklearn_coefs(case, fit_intercept):
    kw = CASES[case]
    X, Y = _problem(kw["n"], kw["p"], kw["t"], rank=kw.get("rank"), dup=kw.get("dup", False))
    with enable_x64(True):
        res = ridge_cv(X, Y, alphas=ALPHAS, folds=_masks(len(X)), fit_intercept=fit_intercept,
                       score="r2", chunk_size=5)
        best = np.asarray(res.best_alpha)
        coef = np.asarray(res.coef)
        icpt = np.asarray(res.intercept)
        cv = np.asarray(res.cv_scores)
    assert cv.shape == (len(ALPHAS), kw["t"]) and coef.shape == (kw["p"], kw["t"])
    hb, _, hcv, *_ = solve_ridge_cv_svd(X, Y, alphas=ALPHAS, cv=KFold(5), score_func=h_r2,
                                        fit_intercept=fit_intercept, warn=False)
    hb, hcv = np.asarray(hb), np.asarray(hcv).ravel()
    # compare alphas where himalaya's argmax is unique (scores differ beyond rounding)
    srt = np.sort(cv, axis=0)
    unique = (srt[-1] - srt[-2]) > 1e-9
    assert unique.mean() > 0.5
    np.testing.assert_allclose(best[unique], hb[unique], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(res.best_score)[unique], hcv[unique], atol=1e-8)
    for j in range(min(kw["t"], 10)):
        m = Ridge(alpha=float(best[j]), fit_intercept=fit_intercept, solver="svd").fit(X, Y[:, j])
        np.testing.assert_allclose(coef[:, j], m.coef_, rtol=1e-7, atol=1e-8 * np.abs(m.coef_).max())
        np.testing.assert_allclose(icpt[j], m.intercept_, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("score", ["r2", "pearson", "neg_mse"])
def test_cv_scores_match_sklearn_fold_loop(score):
    X, Y = _problem(42, 20, 4, seed=3)
    alphas = np.array([0.1, 3.0, 100.0])
    masks = _masks(42, 4)
    with enable_x64(True):
        cv = np.asarray(ridge_cv(X, Y, alphas=alphas, folds=masks, score=score).cv_scores)
    want = np.zeros_like(cv)
    for f in range(4):
        tr, te = ~masks[f], masks[f]
        for a, alpha in enumerate(alphas):
            pred = Ridge(alpha=alpha).fit(X[tr], Y[tr]).predict(X[te])
            for j in range(Y.shape[1]):
                if score == "r2":
                    s = r2_score(Y[te, j], pred[:, j])
                elif score == "pearson":
                    s = np.corrcoef(Y[te, j], pred[:, j])[0, 1]
                else:
                    s = -np.mean((Y[te, j] - pred[:, j]) ** 2)
                want[a, j] += s / 4
    np.testing.assert_allclose(cv, want, rtol=1e-9, atol=1e-10)


def test_kernel_form_matches_himalaya_kernel_ridge_cv():
    X, Y = _problem(36, 120, 20, seed=5)
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    with enable_x64(True):
        res = ridge_cv(X, Y, alphas=ALPHAS, folds=_masks(36), fit_intercept=False)
        best, coef, cv = np.asarray(res.best_alpha), np.asarray(res.coef), np.asarray(res.cv_scores)
    kr = KernelRidgeCV(alphas=ALPHAS, kernel="linear", cv=KFold(5),
                       solver_params=dict(score_func=h_r2)).fit(X, Y)
    srt = np.sort(cv, axis=0)
    unique = (srt[-1] - srt[-2]) > 1e-9
    np.testing.assert_allclose(best[unique], np.asarray(kr.best_alphas_)[unique], rtol=1e-12)
    Xt = np.random.default_rng(9).standard_normal((7, 120))
    np.testing.assert_allclose((Xt @ coef)[:, unique], np.asarray(kr.predict(Xt))[:, unique],
                               rtol=1e-6, atol=1e-8)


def test_leave_one_out_matches_sklearn_ridgecv_alpha_per_target():
    X, Y = _problem(30, 10, 12, seed=7)
    with enable_x64(True):
        res = ridge_cv(X, Y, alphas=ALPHAS, folds=30, fit_intercept=False, score="neg_mse")
        best = np.asarray(res.best_alpha)
    sk = RidgeCV(alphas=ALPHAS, fit_intercept=False, alpha_per_target=True).fit(X, Y)
    np.testing.assert_allclose(best, sk.alpha_, rtol=1e-12)


def test_float32_close_to_sklearn():
    X, Y = _problem(50, 20, 5, seed=11)
    res = ridge_cv(X, Y, alphas=ALPHAS, folds=_masks(50))
    assert res.coef.dtype == np.float32 or jax.config.jax_enable_x64
    for j in range(5):
        m = Ridge(alpha=float(res.best_alpha[j])).fit(X, Y[:, j])
        np.testing.assert_allclose(np.asarray(res.coef[:, j]), m.coef_, rtol=2e-3,
                                   atol=2e-4 * np.abs(m.coef_).max())


def test_ridge_fit_matches_sklearn_per_target_alpha():
    X, Y = _problem(25, 40, 3, seed=13)
    alpha = np.array([0.5, 5.0, 50.0])
    with enable_x64(True):
        coef, icpt = ridge_fit(X, Y, alpha=alpha)
        coef, icpt = np.asarray(coef), np.asarray(icpt)
    for j in range(3):
        m = Ridge(alpha=alpha[j]).fit(X, Y[:, j])
        np.testing.assert_allclose(coef[:, j], m.coef_, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(icpt[j], m.intercept_, rtol=1e-8)


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_full_kernel_shortcut_equals_per_fold_decompositions(fit_intercept):
    """solver='eigh_full' (one eigendecomposition for all folds) gives the per-fold answers."""
    X, Y = _problem(45, 70, 6, seed=17)
    with enable_x64(True):
        per = ridge_cv(X, Y, alphas=ALPHAS, folds=4, fit_intercept=fit_intercept, solver="eigh")
        full = ridge_cv(X, Y, alphas=ALPHAS, folds=4, fit_intercept=fit_intercept,
                        solver="eigh_full")
        np.testing.assert_allclose(np.asarray(full.cv_scores), np.asarray(per.cv_scores),
                                   rtol=1e-9, atol=1e-10)
        np.testing.assert_array_equal(np.asarray(full.best_alpha), np.asarray(per.best_alpha))
        np.testing.assert_allclose(np.asarray(full.coef), np.asarray(per.coef), rtol=1e-9,
                                   atol=1e-12)
