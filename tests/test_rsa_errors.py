"""Bad input: each raises a ValueError subclass that says what and where."""

import numpy as np
import pytest

import alignjax as aj


def test_nan_features_name_the_stimulus(rng):
    X = rng.normal(size=(5, 3))
    X[2, 1] = np.nan
    with pytest.raises(aj.NonFiniteError, match="b2"):
        aj.rdm(X, stimulus_ids=[f"b{i}" for i in range(5)])


def test_zero_variance_stimulus_under_correlation(rng):
    X = rng.normal(size=(5, 3))
    X[3] = 1.0
    with pytest.raises(aj.ZeroVarianceError, match=r"\[3\].*euclidean"):
        aj.rdm(X)
    aj.rdm(X, metric="euclidean")  # fine


def test_constant_rdm(rng):
    with pytest.raises(aj.ConstantRDMError, match="constant"):
        aj.compare(np.ones(10), rng.normal(size=10))
    with pytest.raises(aj.ConstantRDMError):
        aj.rsa_permutation_test(rng.normal(size=10), np.zeros(10), n_perm=10)


def test_mismatched_pairs(rng):
    with pytest.raises(aj.ShapeMismatchError, match="same stimuli"):
        aj.compare(rng.normal(size=10), rng.normal(size=15))
    with pytest.raises(aj.ShapeMismatchError, match="n\\*\\(n-1\\)/2"):
        aj.compare(rng.normal(size=11), rng.normal(size=11))


def test_bad_options(rng):
    a, b = rng.normal(size=(2, 10))
    with pytest.raises(aj.InvalidOptionError, match="n_perm"):
        aj.rsa_permutation_test(a, b, n_perm=0)
    with pytest.raises(aj.InvalidOptionError, match="unknown method"):
        aj.compare(a, b, method="kendall")
    with pytest.raises(aj.InvalidOptionError, match="alternative"):
        aj.rsa_permutation_test(a, b, alternative="bigger")
    with pytest.raises(aj.InvalidOptionError, match="metric"):
        aj.rdm(rng.normal(size=(4, 2)), metric="manhattan")
    for err in (aj.InvalidOptionError, aj.NonFiniteError, aj.ConstantRDMError):
        assert issubclass(err, ValueError)


def test_nan_rdm_in_permutation_test(rng):
    a, b = rng.normal(size=(2, 10))
    a[0] = np.nan
    with pytest.raises(aj.NonFiniteError, match="complete RDMs"):
        aj.rsa_permutation_test(a, b, n_perm=10)


def test_noise_ceiling_needs_two_subjects(rng):
    with pytest.raises(aj.ShapeMismatchError, match="2 subjects"):
        aj.noise_ceiling(rng.normal(size=(1, 10)))


def test_bootstrap_detects_better_layer(rng):
    X = rng.normal(size=(20, 6))
    good = np.asarray(aj.rdm(X + 0.2 * rng.normal(size=X.shape)))
    bad = np.asarray(aj.rdm(rng.normal(size=X.shape)))
    brain = np.asarray(aj.rdm(X))
    res = aj.rsa_bootstrap(np.stack([good, bad]), brain, n_boot=200, seed=1)
    assert float(res.ci[0, 0, 0]) > float(res.ci[1, 1, 0])  # good's low above bad's high
    assert float(res.diff_ci[0, 0, 1, 0]) > 0 and float(res.diff_p[0, 1, 0]) < 0.05
    assert float(res.ci[0, 0, 0]) <= float(res.r[0, 0]) <= float(res.ci[1, 0, 0])


def test_cv_best_layer_picks_planted_layer(rng):
    X = rng.normal(size=(30, 6))
    layers = np.stack([np.asarray(aj.rdm(rng.normal(size=X.shape))),
                       np.asarray(aj.rdm(X + 0.3 * rng.normal(size=X.shape))),
                       np.asarray(aj.rdm(rng.normal(size=X.shape)))])
    brain = np.stack([np.asarray(aj.rdm(X + 0.5 * rng.normal(size=X.shape))) for _ in range(3)])
    res = aj.cv_best_layer(layers, brain, folds=5)
    assert np.asarray(res.best_layer).shape == (5, 3)
    assert (np.asarray(res.best_layer) == 1).mean() > 0.9
    assert np.all(np.asarray(res.score) > 0.3)
