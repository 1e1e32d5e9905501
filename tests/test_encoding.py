"""encode: planted-layer recovery, no leakage, multi-subject summaries, bad inputs,
and the encoding permutation test."""

import numpy as np
import pytest

from alignjax import (
    InvalidFoldsError,
    InvalidOptionError,
    NonFiniteError,
    ShapeMismatchError,
    StimulusMismatchError,
    encode,
    encoding_permutation_test,
)
from alignjax.encoding import split_subjects
from alignjax.store import Responses

ALPHAS = np.logspace(-2, 4, 7)
N = 60


def _planted(seed=0, n=N, t=30, noise=0.6):
    rng = np.random.default_rng(seed)
    layers = [rng.standard_normal((n, p)) * rng.uniform(0.5, 5, p) + rng.standard_normal(p)
              for p in (10, 25, 40)]
    true = np.arange(t) % 3
    Y = np.stack([layers[true[j]] @ rng.standard_normal(layers[true[j]].shape[1]) for j in range(t)], 1)
    Y = Y / Y.std(0) + noise * rng.standard_normal(Y.shape) + 10.0
    return layers, Y, true


@pytest.fixture(scope="module")
def planted():
    layers, Y, true = _planted()
    res = encode(layers, {"s1": Y[:, :18], "s2": Y[:, 18:]}, alphas=ALPHAS, outer_folds=4,
                 inner_folds=3)
    return layers, Y, true, res


def test_recovers_the_planted_layer(planted):
    layers, Y, true, res = planted
    assert res.best_layer.shape == (4, Y.shape[1]) and res.best_alpha.shape == (4, Y.shape[1])
    assert (res.best_layer == true[None]).mean() > 0.8
    assert np.median(res.r2) > 0.3
    # per-layer scores: the driving layer scores best for most targets
    assert (np.argmax(res.layer_r2, axis=0) == true).mean() > 0.8
    # scores per outer test fold (scipy / sklearn on each fold), averaged over folds
    from scipy.stats import pearsonr
    from sklearn.metrics import r2_score

    for j in range(3):
        rs = [pearsonr(res.prediction[m, j], Y[m, j])[0] for m in res.folds]
        cods = [r2_score(Y[m, j], res.prediction[m, j]) for m in res.folds]
        np.testing.assert_allclose(res.fold_r[:, j], rs, rtol=1e-6)
        np.testing.assert_allclose(res.r[j], np.mean(rs), rtol=1e-6)
        np.testing.assert_allclose(res.r2[j], np.mean(np.maximum(rs, 0) ** 2), rtol=1e-6)
        np.testing.assert_allclose(res.cod[j], np.mean(cods), rtol=1e-6)
    assert res.summary["scoring"] == "per_fold_mean"


def test_pooled_scoring_is_an_option(planted):
    layers, Y, _, res = planted
    pooled = encode(layers, {"s1": Y[:, :18], "s2": Y[:, 18:]}, alphas=ALPHAS, outer_folds=4,
                    inner_folds=3, pooled=True)
    np.testing.assert_allclose(pooled.prediction, res.prediction)
    for j in range(3):
        np.testing.assert_allclose(pooled.r[j], np.corrcoef(res.prediction[:, j], Y[:, j])[0, 1],
                                   rtol=1e-6)
    np.testing.assert_allclose(pooled.r2, np.maximum(pooled.r, 0) ** 2)
    assert pooled.summary["scoring"] == "pooled"


def test_multi_subject_split_and_summary(planted):
    _, Y, _, res = planted
    assert res.subjects == ("s1", "s2")
    parts = split_subjects(res)
    assert parts["s1"]["r"].shape == (18,) and parts["s2"]["r"].shape == (12,)
    med = [np.median(parts[s]["r2"]) for s in ("s1", "s2")]
    acc = res.summary["across_subjects"]["median_r2"]
    assert acc["mean"] == pytest.approx(np.mean(med))
    assert acc["sem"] == pytest.approx(np.std(med, ddof=1) / np.sqrt(2))
    assert res.summary["subjects"]["s1"]["median_r2"] == pytest.approx(med[0])
    assert sum(res.summary["subjects"]["s2"]["best_layer_counts"]) == 12 * 4


def test_no_leakage(planted):
    """Outer-fold-0 choices and predictions must not depend on its test stimuli's responses
    (selection / fit) nor on its test stimuli's features (standardisation / selection), and
    must equal a fit that standardises with training stimuli only."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    layers, Y, _, _ = planted
    Y = Y[:, :8]
    base = encode(layers, Y, alphas=ALPHAS, outer_folds=4, inner_folds=3)
    te = base.folds[0]
    rng = np.random.default_rng(1)
    Yj = Y.copy()
    Yj[te] = rng.standard_normal((te.sum(), Y.shape[1])) * 100 - 50
    junk_y = encode(layers, Yj, alphas=ALPHAS, outer_folds=4, inner_folds=3)
    np.testing.assert_array_equal(junk_y.best_layer[0], base.best_layer[0])
    np.testing.assert_array_equal(junk_y.best_alpha[0], base.best_alpha[0])
    np.testing.assert_allclose(junk_y.prediction[te], base.prediction[te], rtol=1e-4, atol=1e-4)
    Lj = [X.copy() for X in layers]
    for X in Lj:
        X[te] = X[te] * 50 + 1000  # would shift mean/std (and so the fit) if they leaked
    junk_x = encode(Lj, Y, alphas=ALPHAS, outer_folds=4, inner_folds=3)
    np.testing.assert_array_equal(junk_x.best_layer[0], base.best_layer[0])
    np.testing.assert_array_equal(junk_x.best_alpha[0], base.best_alpha[0])
    tr = ~te
    for j in range(4):
        X = layers[base.best_layer[0, j]]
        m = make_pipeline(StandardScaler(), Ridge(alpha=base.best_alpha[0, j])).fit(X[tr], Y[tr, j])
        np.testing.assert_allclose(base.prediction[te, j], m.predict(X[te]), rtol=2e-3, atol=2e-3)


def test_select_layer_false_gives_per_layer_scores_only(planted):
    layers, Y, _, _ = planted
    a = encode(layers, Y[:, :6], alphas=ALPHAS, outer_folds=4, inner_folds=3)
    b = encode(layers, Y[:, :6], alphas=ALPHAS, outer_folds=4, inner_folds=3, select_layer=False)
    assert b.layer_r2.shape == (3, 6) and np.isnan(b.r).all() and (b.best_layer == -1).all()
    np.testing.assert_allclose(b.layer_r2, a.layer_r2, rtol=1e-5, atol=1e-6)


def test_zero_variance_and_degenerate_features_are_handled():
    layers, Y, _ = _planted(seed=2, t=6)
    Y[:, 2] = 4.0  # zero-variance voxel: excluded and counted, never crashes
    layers[0][:, 0] = 7.0  # constant feature
    layers[1][:, 5] = layers[1][:, 4]  # duplicated column (rank-deficient)
    res = encode(layers, Y, alphas=ALPHAS, outer_folds=3, inner_folds=3)
    assert not res.valid[2] and res.valid.sum() == 5
    assert np.isnan(res.r[2]) and np.isfinite(res.r[res.valid]).all()
    assert res.summary["n_excluded"] == 1
    assert res.summary["subjects"]["subject"]["n_excluded"] == 1
    assert res.summary["n_constant_features"]["layer0"] == 1


def test_stratified_folds_and_responses_matched_by_id():
    layers, Y, _ = _planted(seed=3, t=4)
    ids = [f"s{i}" for i in range(N)]
    from alignjax.store import LayerSet

    ls = LayerSet(["a", "b", "c"], layers, ids)
    perm = np.random.default_rng(0).permutation(N)
    resp = Responses([ids[i] for i in perm], {"sub": Y[perm]})
    labels = np.repeat(np.arange(6), 10)
    res = encode(ls, resp, alphas=ALPHAS, outer_folds=5, inner_folds=3, stratify=labels)
    ref = encode(layers, Y, alphas=ALPHAS, outer_folds=5, inner_folds=3, stratify=labels)
    np.testing.assert_allclose(res.r, ref.r, rtol=1e-5)
    # each outer test fold holds each category equally
    assert (np.stack([np.bincount(labels[f], minlength=6) for f in res.folds]) == 2).all()
    bad = Responses(ids[:-1] + ["other"], {"sub": Y})
    with pytest.raises(StimulusMismatchError):
        encode(ls, bad, alphas=ALPHAS)


def test_nan_in_responses_names_subject_and_stimulus_id():
    layers, Y, _ = _planted(seed=5, t=3)
    ids = [f"clip{i:02d}" for i in range(N)]
    from alignjax.store import LayerSet

    ls = LayerSet(["a", "b", "c"], layers, ids)
    perm = np.random.default_rng(1).permutation(N)
    Yp = Y[perm]
    Yp[7, 1] = np.nan  # row 7 of the file is stimulus ids[perm[7]]
    resp = Responses([ids[i] for i in perm], {"sub1": Y[perm], "sub2": Yp})
    with pytest.raises(NonFiniteError) as info:
        encode(ls, resp, alphas=ALPHAS, outer_folds=3, inner_folds=3)
    msg = str(info.value)
    assert "subject 'sub2'" in msg and f"stimulus id '{ids[perm[7]]}'" in msg
    assert "features" not in msg


def test_bad_inputs_raise_clear_errors():
    layers, Y, _ = _planted(seed=4, t=3)
    Ynan = Y.copy()
    Ynan[3, 1] = np.nan
    with pytest.raises(NonFiniteError, match="NaN"):
        encode(layers, Ynan, alphas=ALPHAS)
    Xinf = [X.copy() for X in layers]
    Xinf[1][0, 0] = np.inf
    with pytest.raises(NonFiniteError):
        encode(Xinf, Y, alphas=ALPHAS)
    with pytest.raises(ShapeMismatchError, match="stimuli"):
        encode(layers, Y[:-1], alphas=ALPHAS)
    with pytest.raises(InvalidOptionError, match="positive"):
        encode(layers, Y, alphas=[0.0, 1.0])
    with pytest.raises(InvalidOptionError, match="positive"):
        encode(layers, Y, alphas=[-1.0])
    with pytest.raises(InvalidFoldsError):
        encode(layers, Y, alphas=ALPHAS, outer_folds=N + 1)
    overlapping = [np.arange(0, 40), np.arange(30, 60)]
    with pytest.raises(InvalidFoldsError, match="disjoint"):
        encode(layers, Y, alphas=ALPHAS, outer_folds=overlapping)
    with pytest.raises(InvalidFoldsError):
        encode([X[:6] for X in layers], Y[:6], alphas=ALPHAS, outer_folds=3, inner_folds=5)


def test_permutation_test(planted):
    layers, Y, _, res = planted
    rng = np.random.default_rng(5)
    T = np.concatenate([Y[:, :5], rng.standard_normal((N, 10))], axis=1)
    kw = dict(alphas=ALPHAS, folds=4, n_perm=39, seed=0, encode_options={"inner_folds": 3})
    out = encoding_permutation_test(layers, T, **kw)
    again = encoding_permutation_test(layers, T, **kw)
    np.testing.assert_array_equal(out.p, again.p)
    assert (out.p >= 1 / 40 - 1e-7).all() and (out.p <= 1 + 1e-7).all()
    assert (out.p_fwe >= out.p - 1e-7).all() and (out.q >= out.p - 1e-7).all()
    np.testing.assert_allclose(out.p[:5], 1 / 40, rtol=1e-6)
    assert (out.p_fwe[:5] < 0.05).all()
    # the observed statistic is the one encode reports
    ref = encode(layers, T, alphas=ALPHAS, outer_folds=4, inner_folds=3, seed=0)
    np.testing.assert_allclose(out.observed, ref.r, rtol=1e-6)
    cod = encoding_permutation_test(layers, T, score="cod", **kw)
    np.testing.assert_allclose(cod.observed, ref.cod, rtol=1e-6)
    with pytest.raises(ShapeMismatchError):
        encoding_permutation_test(layers, T, family=np.zeros(3), **kw)
    with pytest.raises(InvalidOptionError, match="encode_options"):
        encoding_permutation_test(layers, T, alphas=ALPHAS, folds=4, n_perm=9, seed=0,
                                  encode_options={"seed": 3})


def test_permutation_test_corrects_per_subject(planted):
    layers, Y, _, _ = planted
    kw = dict(alphas=ALPHAS, folds=4, n_perm=19, seed=0, encode_options={"inner_folds": 3})
    both = encoding_permutation_test(layers, {"s1": Y[:, :4], "s2": Y[:, 4:8]}, **kw)
    one = encoding_permutation_test(layers, Y[:, :4], **kw)
    np.testing.assert_allclose(both.p_fwe[:4], one.p_fwe)
    np.testing.assert_allclose(both.q[:4], one.q)


