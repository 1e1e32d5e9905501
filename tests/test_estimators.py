"""alignjax.RidgeCV follows the scikit-learn estimator contract and matches sklearn."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.model_selection import KFold, cross_val_score  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from alignjax import RidgeCV  # noqa: E402


@parametrize_with_checks([RidgeCV(alphas=(0.1, 1.0, 10.0))])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_fit_predict_score_layout_and_sklearn_agreement():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 8))
    Y = X @ rng.standard_normal((8, 3)) + rng.standard_normal((50, 3)) + 2
    est = RidgeCV(alphas=np.logspace(-2, 3, 6), cv=KFold(5)).fit(X, Y)
    assert est.coef_.shape == (3, 8) and est.alpha_.shape == (3,) and est.n_features_in_ == 8
    assert est.cv_scores_.shape == (6, 3)
    for j in range(3):
        sk = Ridge(alpha=est.alpha_[j]).fit(X, Y[:, j])
        np.testing.assert_allclose(est.coef_[j], sk.coef_, rtol=2e-3, atol=2e-4)
    one = RidgeCV(alphas=np.logspace(-2, 3, 6)).fit(X, Y[:, 0])
    assert isinstance(one.alpha_, float) and one.coef_.shape == (8,)
    assert one.predict(X).shape == (50,)
    assert one.score(X, Y[:, 0]) > 0.5
    assert cross_val_score(RidgeCV(alphas=[1.0, 10.0]), X, Y[:, 0], cv=3).mean() > 0.5
