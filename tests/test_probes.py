"""Behaviour of the probes on simulated data, and their handling of bad input."""

import warnings

import numpy as np
import pytest

pytest.importorskip("optax")
import alignjax  # noqa: E402
from alignjax import (  # noqa: E402
    AlignjaxInputError,
    InvalidFoldsError,
    InvalidOptionError,
    NonFiniteError,
    StimulusMismatchError,
)
from alignjax.probes import (  # noqa: E402
    encode_labels,
    fit_logistic,
    logistic_probe,
    probe_permutation_test,
    probe_transfer,
    ridge_probe,
)

N, P = 72, 8
CS = [0.1, 1.0]


def _factors(seed=0):
    """Two crossed factors; layer 0 encodes `material` the same way in both `hollow` halves,
    layer 1 encodes it with a code that flips between the halves, layer 2 is noise."""
    rng = np.random.default_rng(seed)
    material = np.tile(np.arange(3), N // 3)
    hollow = np.repeat([0, 1], N // 2)
    code = rng.standard_normal((3, P)) * 1.5
    inv = np.eye(3)[material] @ code + 0.5 * rng.standard_normal((N, P))
    flip = np.where(hollow[:, None] == 1, -1.0, 1.0)
    var = flip * (np.eye(3)[material] @ code) + 0.5 * rng.standard_normal((N, P))
    noise = rng.standard_normal((N, P))
    return [inv, var, noise], material, hollow


def test_probe_finds_decodable_layers_and_reports_everything():
    layers, material, _ = _factors()
    res = logistic_probe(layers, material, Cs=CS, folds=4, inner_folds=2)
    L, nC, F = 3, len(CS), 4
    assert res.accuracy.shape == (L, nC, F) and res.balanced_accuracy.shape == (L, nC, F)
    assert res.confusion.shape == (L, nC, F, 3, 3)
    assert res.chosen_C.shape == (L, F) and res.nested_accuracy.shape == (L, F)
    assert res.inner_converged.shape == (L, nC, F, 2)
    assert res.chance == pytest.approx(1 / 3)
    assert res.nested_accuracy[0].mean() > 0.9
    assert res.nested_accuracy[2].mean() < 0.6
    # confusion matrices add up to the accuracies
    cm = res.confusion
    acc = np.trace(cm, axis1=-2, axis2=-1) / cm.sum(axis=(-2, -1))
    np.testing.assert_allclose(acc, res.accuracy)
    assert cm.sum(axis=(0, 1, 3, 4)).tolist() == [F * 0 + int(m.sum()) * L * nC
                                                  for m in res.folds]
    assert set(np.unique(res.chosen_C)) <= set(CS)
    assert res.converged.all()


def test_transfer_separates_invariant_from_context_specific_code():
    layers, material, hollow = _factors()
    res = probe_transfer(layers, material, train_mask=hollow == 0, test_mask=hollow == 1,
                         Cs=CS, folds=3, inner_folds=2)
    # layer 0: decodable invariantly -> transfers; layer 1: decodable within each half only
    assert res.transfer_accuracy[0] > 0.9
    assert res.within_accuracy[1] > 0.9
    assert res.transfer_accuracy[1] < 0.2
    assert res.within_accuracy[2] < 0.7 and res.transfer_accuracy[2] < 0.7
    assert res.chance == pytest.approx(1 / 3)


def test_permutation_p_uniform_under_null():
    rng = np.random.default_rng(5)
    y = np.tile([0, 1], 15)
    layers = [rng.standard_normal((30, 4)) for _ in range(2)]
    ps = []
    for rep in range(12):
        yr = rng.permutation(y)
        r = probe_permutation_test(layers, yr, C=1.0, folds=3, n_perm=19, seed=rep, chunk_size=20)
        ps.append(r.p)
        assert np.all(r.p_fwe >= r.p - 1e-12)
        assert r.null.shape == (19, 2)
    ps = np.concatenate(ps)
    assert ps.min() >= 1 / 20 - 1e-12 and ps.max() <= 1.0
    # uniform on {1/20, ..., 1}: mean 0.525; 24 draws -> sd about 0.06
    assert 0.33 < ps.mean() < 0.72
    assert np.mean(ps <= 0.25) < 0.55


def test_permutation_detects_signal():
    layers, material, _ = _factors()
    r = probe_permutation_test(layers, material, C=1.0, folds=3, n_perm=19, seed=0, chunk_size=20)
    assert r.p_fwe[0] == pytest.approx(1 / 20)
    assert r.p[2] > 0.05


def test_class_smaller_than_folds():
    layers, material, _ = _factors()
    y = material.copy()
    y[:2] = 7
    with pytest.raises(InvalidFoldsError, match="fewer members"):
        logistic_probe(layers, y, Cs=CS, folds=4)


def test_single_class():
    layers, material, _ = _factors()
    with pytest.raises(InvalidOptionError, match="single class"):
        logistic_probe(layers, np.zeros(N), Cs=CS, folds=4)
    with pytest.raises(InvalidOptionError, match="single class"):
        fit_logistic(layers[0], np.zeros(N, int))


def test_label_id_mismatch(tmp_path):
    layers, material, _ = _factors()
    ids = [f"s{i}" for i in range(N)]
    labels = {f"s{i}": m for i, m in enumerate(material)}
    np.savez(tmp_path / "f.npz", a=layers[0], stimulus_ids=np.array(ids))
    res = logistic_probe(str(tmp_path / "f.npz"), dict(reversed(list(labels.items()))), Cs=[1.0],
                         folds=3, inner_folds=None)
    ref = logistic_probe([layers[0]], material, Cs=[1.0], folds=3, inner_folds=None)
    np.testing.assert_array_equal(res.accuracy, ref.accuracy)  # matched by id, not position
    del labels["s5"]
    with pytest.raises(StimulusMismatchError, match="missing"):
        logistic_probe(str(tmp_path / "f.npz"), labels, Cs=[1.0], folds=3)
    with pytest.raises(StimulusMismatchError):
        logistic_probe(layers, material[:-1], Cs=[1.0], folds=3)


def test_nan_features():
    layers, material, _ = _factors()
    bad = layers[1].copy()
    bad[4, 2] = np.nan
    with pytest.raises(NonFiniteError, match="layer 'layer1'"):
        logistic_probe([layers[0], bad], material, Cs=CS, folds=4)


def test_non_convergence_is_flagged():
    layers, material, _ = _factors()
    with pytest.warns(RuntimeWarning, match="did not reach tol"):
        res = logistic_probe(layers, material, Cs=[1e4], folds=4, inner_folds=None,
                             max_iter=2, tol=1e-9)
    assert not res.converged.all()
    fit = fit_logistic(layers[0], material, C=1e4, max_iter=2, tol=1e-9)
    assert not bool(fit.converged) and int(fit.n_iter) == 2


def test_public_names():
    for name in ("fit_logistic", "logistic_probe", "probe_transfer", "probe_permutation_test"):
        assert name in alignjax.__all__ and callable(getattr(alignjax, name))


# --------------------------------------------------------------------------- ridge probes


def test_ridge_probe_matches_sklearn_with_one_alpha():
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    from alignjax.probes import ridge_probe

    rng = np.random.default_rng(7)
    X = rng.standard_normal((50, 6)) * np.logspace(-1, 1, 6) + 2.0
    y = X @ rng.standard_normal(6) + 0.3 * rng.standard_normal(50)
    res = ridge_probe([X], y, alphas=[3.0], folds=5, inner_folds=2)
    for test in res.folds:
        sc = StandardScaler().fit(X[~test])
        m = Ridge(alpha=3.0).fit(sc.transform(X[~test]), y[~test])
        np.testing.assert_allclose(res.predictions[0, test], m.predict(sc.transform(X[test])),
                                   rtol=1e-4, atol=1e-4)
    assert res.r2[0] > 0.8 and res.chosen_alpha.shape == (1, 5, 1)


def test_ridge_probe_continuous_and_circular():
    from alignjax.probes import ridge_probe

    rng = np.random.default_rng(8)
    n = 90
    az = rng.uniform(-180, 180, n)
    dist = rng.uniform(1, 5, n)
    rad = np.deg2rad(az)
    good = np.column_stack([np.sin(rad), np.cos(rad), dist]) @ rng.standard_normal((3, 10))
    good += 0.05 * rng.standard_normal((n, 10))
    noise = rng.standard_normal((n, 10))
    circ = ridge_probe([good, noise], az, alphas=[0.1, 1.0, 10.0], folds=5, circular=True)
    assert circ.mae[0] < 15 and circ.mae[1] > 60  # degrees; chance is about 90
    assert circ.chance_mae > 60 and np.isnan(circ.r2).all()
    assert np.all(np.abs(circ.predictions) <= 180)
    cont = ridge_probe([good, noise], dist, alphas=[0.1, 1.0, 10.0], folds=5)
    assert cont.r2[0] > 0.9 and cont.r2[1] < 0.2 and cont.pearson_r[0] > 0.95
    assert cont.mae[0] < cont.chance_mae
    with pytest.raises(InvalidOptionError, match="constant"):
        ridge_probe([good], np.ones(n), alphas=[1.0])


# --------------------------------------------------------------------------- validity


def test_permutation_test_reports_the_nested_statistic():
    """With inner_folds, the observed statistic is logistic_probe's nested accuracy."""
    layers, material, _ = _factors()
    res = logistic_probe(layers, material, Cs=CS, folds=3, inner_folds=2, seed=4)
    perm = probe_permutation_test(layers, material, Cs=CS, inner_folds=2, folds=3, n_perm=9,
                                  seed=4, chunk_size=5)
    np.testing.assert_allclose(perm.observed, res.nested_accuracy.mean(axis=1))
    assert perm.statistic == "nested_accuracy" and np.isnan(perm.C).all()
    assert perm.p_fwe[0] == pytest.approx(1 / 10)
    with pytest.raises(InvalidOptionError, match="not both"):
        probe_permutation_test(layers, material, C=1.0, inner_folds=2, n_perm=3)
    with pytest.raises(InvalidOptionError, match="inner_folds"):
        probe_permutation_test(layers, material, Cs=CS, n_perm=3)


def test_permutation_result_does_not_depend_on_chunk_size():
    layers, material, _ = _factors()
    a = probe_permutation_test(layers, material, C=1.0, folds=3, n_perm=7, seed=2, chunk_size=3)
    b = probe_permutation_test(layers, material, C=1.0, folds=3, n_perm=7, seed=2, chunk_size=8)
    np.testing.assert_array_equal(a.null, b.null)


def test_transfer_chance_holds_under_class_shift():
    """80/20 training subset, 20/80 test subset: a noise probe scores the shifted chance."""
    rng = np.random.default_rng(11)
    y = np.array([0] * 40 + [1] * 10 + [0] * 10 + [1] * 40)
    tr = np.arange(100) < 50
    layers = [rng.standard_normal((100, 6)) for _ in range(3)]
    res = probe_transfer(layers, y, train_mask=tr, test_mask=~tr, Cs=[1e-2, 1.0], folds=3,
                         inner_folds=2, n_perm=19, seed=0)
    assert res.chance == pytest.approx(0.2)
    assert res.chance_balanced == pytest.approx(0.5)
    assert np.all(np.abs(res.transfer_accuracy - res.chance) < 0.15)
    assert res.p.shape == (3,) and (res.p > 0.05).all() and (res.p_fwe >= res.p).all()
    assert res.within_skipped == ""


def test_transfer_runs_when_the_within_baseline_cannot():
    layers, material, hollow = _factors()
    test = hollow == 1
    y = material.copy()
    y[test] = material[test][0]  # one class in the test subset
    res = probe_transfer(layers, y, train_mask=hollow == 0, test_mask=test, Cs=CS, folds=3,
                         inner_folds=2)
    assert np.isnan(res.within_accuracy).all() and "within" in res.within_skipped
    assert np.isfinite(res.transfer_accuracy).all() and np.isnan(res.p).all()


def test_extreme_test_stimulus_does_not_change_the_training_fit():
    """One test stimulus at 1e6 in an informative feature: same predictions as sklearn's
    StandardScaler + LogisticRegression on the same split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(2)
    n = 60
    y = np.repeat([0, 1], n // 2)
    X = rng.standard_normal((n, 5)) + 1.5 * y[:, None] * np.array([1, 0.5, 0, 0, 0])
    test = np.zeros(n, bool)
    test[::5] = True
    X[np.flatnonzero(test)[0], 0] = 1e6
    res = logistic_probe([X], y, Cs=[1.0], folds=[np.flatnonzero(test), np.flatnonzero(~test)],
                         inner_folds=None)
    sc = StandardScaler().fit(X[~test])
    ref = LogisticRegression(C=1.0).fit(sc.transform(X[~test]), y[~test])
    np.testing.assert_array_equal(res.predictions[0, 0, test], ref.predict(sc.transform(X[test])))
    assert res.accuracy[0, 0, 0] == pytest.approx(np.mean(ref.predict(sc.transform(X[test])) == y[test]))


def test_probe_groups_are_never_split():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(12), 3)
    y = np.tile([0, 1], 18)
    layers = [rng.standard_normal((36, 4))]
    res = logistic_probe(layers, y, Cs=[1.0], folds=4, inner_folds=3, groups=groups)
    for m in res.folds:
        assert all(m[groups == g].all() or not m[groups == g].any() for g in range(12))
    rp = ridge_probe(layers, rng.standard_normal(36), alphas=[1.0], folds=4, inner_folds=3,
                     groups=groups)
    for m in rp.folds:
        assert all(m[groups == g].all() or not m[groups == g].any() for g in range(12))


def test_inner_folds_respect_groups():
    from alignjax.folds import inner_test_masks  # the inner split is not in any result

    groups = np.repeat(np.arange(10), 4)
    codes = np.tile([0, 1], 20)
    outer = np.zeros((2, 40), bool)
    outer[0, :20] = True
    outer[1, 20:] = True
    inner = inner_test_masks(codes, outer, 3, seed=0, groups=groups)
    for f in range(2):
        for g in range(3):
            m = inner[f, g]
            assert all(m[groups == k].all() or not m[groups == k].any() for k in range(10))


def test_bad_sample_weights_and_missing_labels():
    X = np.random.default_rng(0).standard_normal((6, 2))
    y = np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(InvalidOptionError, match=">= 0"):
        fit_logistic(X, y, sample_weight=np.array([1, 1, -1, 1, 1, 1.0]))
    with pytest.raises(InvalidOptionError, match="zero for every"):
        fit_logistic(X, y, sample_weight=np.zeros(6))
    pd = pytest.importorskip("pandas")
    col = pd.Series(["a", None, "b", "a", np.nan, "b"], dtype=object)
    with pytest.raises(AlignjaxInputError, match="drop unlabelled stimuli"):
        encode_labels(col)
    with pytest.raises(AlignjaxInputError, match="missing"):
        encode_labels(pd.Series(["a", pd.NA, "b"], dtype="string"))


def test_ridge_probe_scores_each_fold():
    from scipy.stats import pearsonr

    rng = np.random.default_rng(9)
    X = rng.standard_normal((60, 5))
    y = X[:, 0] + 0.5 * rng.standard_normal(60)
    res = ridge_probe([X], y, alphas=[1.0, 10.0], folds=5, inner_folds=3)
    rs = [pearsonr(res.predictions[0, m], y[m])[0] for m in res.folds]
    np.testing.assert_allclose(res.fold_pearson_r[0], rs)
    assert res.pearson_r[0] == pytest.approx(np.mean(rs))


def test_old_option_names_warn_and_give_the_same_result():
    """scoring -> score, perm_batch -> chunk_size, layer_batch -> layer_chunk_size."""
    layers, material, _ = _factors()
    kw = dict(Cs=CS, folds=3, inner_folds=2, seed=1)
    new = logistic_probe(layers, material, score="balanced_accuracy", layer_chunk_size=1, **kw)
    with pytest.warns(DeprecationWarning, match="renamed") as record:
        old = logistic_probe(layers, material, scoring="balanced_accuracy", layer_batch=1, **kw)
    assert {str(w.message).split("'")[1] for w in record} == {"scoring", "layer_batch"}
    np.testing.assert_array_equal(new.chosen_C, old.chosen_C)
    kw = dict(C=1.0, folds=3, n_perm=3, seed=2)
    new = probe_permutation_test(layers, material, chunk_size=2, **kw)
    with pytest.warns(DeprecationWarning, match="'perm_batch' is renamed 'chunk_size'"):
        old = probe_permutation_test(layers, material, perm_batch=2, **kw)
    np.testing.assert_array_equal(new.null, old.null)
    with pytest.raises(TypeError, match="both"):
        probe_transfer(layers, material, train_mask=np.arange(N) < 36, test_mask=np.arange(N) >= 36,
                       scoring="accuracy", score="accuracy")
