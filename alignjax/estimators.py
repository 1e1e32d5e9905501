"""scikit-learn compatible estimators backed by the JAX kernels.

Importing this module imports scikit-learn (an optional dependency); ``alignjax.RidgeCV``
is resolved lazily so ``import alignjax`` does not need it.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .ridge import ridge_cv

__all__ = ["RidgeCV"]


class RidgeCV(RegressorMixin, BaseEstimator):
    """Ridge regression with per-target alpha chosen by K-fold cross-validation.

    A thin sklearn wrapper around :func:`alignjax.ridge_cv`: one decomposition per
    training fold serves every alpha and every target.

    Parameters
    ----------
    alphas : array (n_alphas,)
        Positive regularisation values.
    cv : int, folds or sklearn splitter
        Number of (shuffled, seeded) K folds, explicit folds, or an object with ``split``.
    fit_intercept : bool
    scoring : {"r2", "pearson", "neg_mse"}
        Cross-validation score used to choose alphas. Named ``scoring`` by sklearn's
        convention (its ``RidgeCV``; an attribute called ``score`` would hide the ``score``
        method), where alignjax's functions say ``score=``; passed on as that.
    extend_alphas : bool
        Halve/double edge-selected alphas while the CV score improves.
    seed : int
        Seed of the fold shuffle.

    Attributes
    ----------
    alpha_ : float or ndarray (n_targets,)
        Chosen alpha (a float when fitted on a 1-D ``y``).
    coef_ : ndarray (n_features,) or (n_targets, n_features)
        sklearn layout.
    intercept_ : float or ndarray (n_targets,)
    cv_scores_ : ndarray (n_alphas, n_targets)
    best_score_ : ndarray (n_targets,)
    n_features_in_ : int
    """

    def __init__(self, alphas=(0.1, 1.0, 10.0), *, cv=5, fit_intercept=True, scoring="r2",
                 extend_alphas=False, seed=0):
        self.alphas = alphas
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.scoring = scoring
        self.extend_alphas = extend_alphas
        self.seed = seed

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X, y):
        """Fit on X (n_stimuli, n_features) and y (n_stimuli,) or (n_stimuli, n_targets)."""
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        one = y.ndim == 1
        Y = y[:, None] if one else y
        n = X.shape[0]
        if n < 2:
            raise ValueError(f"RidgeCV needs at least 2 samples for cross-validation, got "
                             f"n_samples={n}")
        folds = self.cv
        if hasattr(folds, "split"):
            folds = list(folds.split(X, y))
        elif isinstance(folds, (int, np.integer)) and not isinstance(folds, bool):
            folds = int(min(folds, n))
        res = ridge_cv(X, Y, alphas=self.alphas, folds=folds, fit_intercept=self.fit_intercept,
                       score=self.scoring, extend_alphas=self.extend_alphas, seed=self.seed)
        coef = np.asarray(res.coef, dtype=np.float64).T  # (n_targets, n_features)
        self.cv_scores_ = np.asarray(res.cv_scores, dtype=np.float64)
        alpha = np.asarray(res.best_alpha, dtype=np.float64)
        icpt = np.asarray(res.intercept, dtype=np.float64)
        self.coef_ = coef[0] if one else coef
        self.alpha_ = float(alpha[0]) if one else alpha
        self.intercept_ = float(icpt[0]) if one else icpt
        self.best_score_ = np.asarray(res.best_score, dtype=np.float64)
        return self

    def predict(self, X):
        """Predictions (n_stimuli,) or (n_stimuli, n_targets)."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X @ np.asarray(self.coef_).T + self.intercept_

    def score(self, X, y, sample_weight=None):
        """Coefficient of determination R^2 of the predictions of ``X`` against ``y``
        (``sklearn.metrics.r2_score``, averaged uniformly over targets)."""
        return super().score(X, y, sample_weight=sample_weight)
