"""A target's alpha, layer and score depend on its own data and the settings only: never on
the chunk size or on which other targets are solved alongside (issue 25, item 9).

The hard regime: float32, responses with a large mean (10) and a weak signal, an alpha grid
up to 1e8, so that most targets choose heavy shrinkage, where the CV scores of nearly
constant predictions differ only in their last digits. Before the scores were split into
the score of the training mean plus a gain (and tied alphas went to the largest), 20 of
these 2,000 targets changed alpha with ``chunk_size=50`` and 23 changed alpha in ``encode``.
"""

import numpy as np
import pytest

from alignjax import encode, ridge_cv
from tests._compat import enable_x64

ALPHAS = np.logspace(-2, 8, 11)


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    n, p, t = 40, 64, 2000
    X = rng.standard_normal((n, p)).astype(np.float32)
    Y = (10 + X @ (0.05 * rng.standard_normal((p, t))) + rng.standard_normal((n, t)))
    return X, Y.astype(np.float32), rng.standard_normal((n, p)).astype(np.float32)


def test_ridge_cv_alphas_do_not_depend_on_chunk_size_or_other_targets(problem):
    X, Y, _ = problem
    with enable_x64(False):
        ref = ridge_cv(X, Y, alphas=ALPHAS, folds=3, chunk_size=Y.shape[1])
        runs = {cs: ridge_cv(X, Y, alphas=ALPHAS, folds=3, chunk_size=cs) for cs in (50, 200)}
        sub = np.arange(0, Y.shape[1], 3)
        runs["subset"] = ridge_cv(X, Y[:, sub], alphas=ALPHAS, folds=3)
    alpha, score = np.asarray(ref.best_alpha), np.asarray(ref.best_score)
    assert alpha.dtype == np.float32
    assert (alpha >= 1e4).mean() > 0.3  # the regime: heavy shrinkage for many targets
    for key, res in runs.items():
        cols = sub if key == "subset" else slice(None)
        np.testing.assert_array_equal(np.asarray(res.best_alpha), alpha[cols], err_msg=str(key))
        # scores agree to float32 rounding of the predictions
        np.testing.assert_allclose(np.asarray(res.best_score), score[cols], rtol=0, atol=1e-6)


def test_encode_does_not_depend_on_chunk_size_or_other_targets(problem):
    X, Y, X2 = problem
    kw = dict(alphas=ALPHAS, outer_folds=3, inner_folds=3)
    with enable_x64(False):
        ref = encode([X, X2], Y, chunk_size=Y.shape[1], **kw)
        small = encode([X, X2], Y, chunk_size=50, **kw)
        sub = np.arange(0, Y.shape[1], 3)
        part = encode([X, X2], Y[:, sub], **kw)
    for res, cols in ((small, slice(None)), (part, sub)):
        np.testing.assert_array_equal(res.best_alpha, ref.best_alpha[:, cols])
        np.testing.assert_array_equal(res.best_layer, ref.best_layer[:, cols])
        np.testing.assert_allclose(res.r2, ref.r2[cols], rtol=0, atol=1e-6)
        np.testing.assert_allclose(res.layer_r2, ref.layer_r2[:, cols], rtol=0, atol=1e-6)
