"""Calibration of every hypothesis test alignjax offers, on null data.

For each test, over many null data sets (or many null layers/voxels of independent data
sets): the rate of p < 0.05 is within Monte-Carlo error of 0.05 (family-wise: the rate of
any p_fwe < 0.05 within error of 0.05), p-values are uniform (Kolmogorov-Smirnov for
continuous statistics; never above the uniform CDF for discrete ones such as accuracy),
and a planted effect is detected. Cross-validated scores on null data are centred on
their null value. Family-wise error counts are held to an exact binomial bound at the
test's attainable size (``_binomial.fwer_ok``). Sizes are small enough for CI, where a
true FWER of 0.1 still passes often; the ``-m slow`` variants use enough null sets that it
fails with probability >= 0.99 (numbers in each test's comment).
"""

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import kstest

import alignjax as aj
from tests.calibration._binomial import attainable_size, fwer_ok

ALPHA = 0.05


def _rate_ok(p, alpha=ALPHA, *, z=3.3):
    """The rate of p < alpha lies within z binomial SDs of alpha (z = 3.3: 0.1 % two-sided)."""
    p = np.asarray(p, float).ravel()
    rate = np.mean(p < alpha)
    sd = np.sqrt(alpha * (1 - alpha) / p.size)
    assert abs(rate - alpha) <= z * sd, f"rate of p < {alpha}: {rate:.3f} over {p.size}"
    return rate


def _not_anticonservative(p, grid=(0.05, 0.1, 0.25, 0.5), *, z=3.3):
    """P(p <= u) <= u + MC error at every u: valid for discrete statistics, where ties make
    exact uniformity impossible."""
    p = np.asarray(p, float).ravel()
    for u in grid:
        sd = np.sqrt(u * (1 - u) / p.size)
        assert np.mean(p <= u) <= u + z * sd, f"P(p <= {u}) = {np.mean(p <= u):.3f}"


def _uniform(p):
    assert kstest(np.asarray(p).ravel(), "uniform").pvalue > 1e-3


# --------------------------------------------------------------------------- RSA


def _null_rdms(seed, n=12, n_layers=4, n_subjects=2):
    rng = np.random.default_rng(seed)
    A = np.stack([pdist(rng.standard_normal((n, 5))) for _ in range(n_layers)])
    B = np.stack([pdist(rng.standard_normal((n, 5))) for _ in range(n_subjects)])
    return A, B


@pytest.mark.parametrize("n_sets", [400, pytest.param(1000, marks=pytest.mark.slow)])
def test_rsa_mantel_and_max_t_are_calibrated(n_sets):
    """FWER 0.1 passes with probability 0.036 at 400 sets (it was 0.67 at the former 150
    with the normal bound), < 1e-4 at 1,000."""
    ps, any_fwe = [], []
    for ds in range(n_sets):
        A, B = _null_rdms(ds)
        r = aj.rsa_permutation_test(A, B, n_perm=99, seed=ds)
        ps.append(np.asarray(r.p)[:, 0][:1])  # one member per data set: independent draws
        any_fwe.append(bool((np.asarray(r.p_fwe) < ALPHA).any()))
    _rate_ok(np.concatenate(ps))
    _uniform(np.concatenate(ps))
    fwer_ok(any_fwe, attainable_size(100))  # the family-wise error rate


def test_rsa_detects_a_planted_model():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 5))
    A = np.stack([pdist(X), pdist(rng.standard_normal((16, 5)))])
    B = np.stack([pdist(X + 0.5 * rng.standard_normal(X.shape)) for _ in range(2)])
    r = aj.rsa_permutation_test(A, B, n_perm=199, seed=1)
    assert (np.asarray(r.p_fwe)[0] < ALPHA).all()


def test_rsa_bootstrap_intervals_cover_and_differences_are_calibrated():
    cover, diff_p = [], []
    for ds in range(60):
        A, B = _null_rdms(1000 + ds, n_layers=2, n_subjects=1)
        b = aj.rsa_bootstrap(A, B, n_boot=200, seed=ds)
        ci = np.asarray(b.ci)[:, 0, 0]
        cover.append(ci[0] <= 0 <= ci[1])
        diff_p.append(np.asarray(b.diff_p)[0, 1, 0])
    # resampling stimuli makes these intervals conservative (98 % here), never too narrow
    assert np.mean(cover) >= 0.95 - 3.3 * np.sqrt(0.05 * 0.95 / len(cover))
    _not_anticonservative(diff_p)


# --------------------------------------------------------------------------- probes


def test_probe_permutation_test_fixed_C_is_calibrated():
    """The case of the issue: 40 stimuli, 2 balanced classes, 8 features, 5 folds, C=1e-2
    (40 % of noise layers had p < 0.05 when folds were stratified on the true labels only)."""
    ps = []
    for ds in range(12):
        rng = np.random.default_rng(100 + ds)
        y = rng.permutation(np.repeat([0, 1], 20))
        layers = [rng.standard_normal((40, 8)) for _ in range(20)]
        r = aj.probe_permutation_test(layers, y, C=1e-2, folds=5, n_perm=99, seed=ds,
                                      chunk_size=50)
        ps.append(r.p)
    ps = np.concatenate(ps)
    _not_anticonservative(ps)
    assert np.mean(ps < ALPHA) >= 0.01 and 0.4 < ps.mean() < 0.62


@pytest.mark.parametrize("n_sets", [12, pytest.param(300, marks=pytest.mark.slow)])
def test_probe_permutation_test_nested_C_is_calibrated(n_sets):
    """FWER 0.1 passes with probability 0.97 at 12 sets (0.2: 0.80; more sets cost ~0.4 s
    each in CI for little power), 0.005 at 300 (0.2: < 1e-6): run -m slow before release."""
    ps, any_fwe = [], []
    for ds in range(n_sets):
        rng = np.random.default_rng(200 + ds)
        y = rng.permutation(np.repeat([0, 1], 15))
        layers = [rng.standard_normal((30, 6)) for _ in range(6)]
        r = aj.probe_permutation_test(layers, y, Cs=[1e-3, 1.0], inner_folds=2, folds=3,
                                      n_perm=39, seed=ds, chunk_size=40)
        ps.append(r.p)
        any_fwe.append((r.p_fwe < ALPHA).any())
    _not_anticonservative(np.concatenate(ps))
    fwer_ok(any_fwe, attainable_size(40))


def test_nested_probe_accuracy_is_centred_on_chance():
    accs = []
    for ds in range(8):
        rng = np.random.default_rng(300 + ds)
        y = rng.permutation(np.repeat([0, 1, 2], 12))
        layers = [rng.standard_normal((36, 6)) for _ in range(5)]
        res = aj.logistic_probe(layers, y, Cs=[1e-2, 1.0], folds=3, inner_folds=2, seed=ds)
        accs.append(res.nested_accuracy.mean(axis=1))
    assert abs(np.median(np.concatenate(accs)) - 1 / 3) < 0.05


def test_transfer_permutation_test_is_calibrated():
    ps = []
    y = np.array([0] * 24 + [1] * 8 + [0] * 8 + [1] * 24)
    tr = np.arange(64) < 32
    for ds in range(10):
        rng = np.random.default_rng(400 + ds)
        layers = [rng.standard_normal((64, 5)) for _ in range(4)]
        r = aj.probe_transfer(layers, y, train_mask=tr, test_mask=~tr, Cs=[1e-2, 1.0],
                              folds=3, inner_folds=2, n_perm=39, seed=ds, score="balanced_accuracy")
        ps.append(r.p)
    _not_anticonservative(np.concatenate(ps))


# --------------------------------------------------------------------------- encoding


def test_encoding_scores_are_centred_on_null_voxels():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 30))
    Y = rng.standard_normal((60, 300))
    res = aj.encode([X], Y, alphas=np.logspace(-2, 6, 9), outer_folds=5, inner_folds=3)
    assert abs(np.median(res.r)) < 0.03 and abs(np.median(res.fold_r)) < 0.03
    assert abs(np.median(res.layer_r)) < 0.03
    pooled = aj.encode([X], Y, alphas=np.logspace(-2, 6, 9), outer_folds=5, inner_folds=3,
                       pooled=True)
    assert np.median(pooled.r) < -0.05  # the documented bias of pooled scoring


def test_ridge_probe_is_centred_on_a_null_target():
    fold_r = []
    for ds in range(12):
        rng = np.random.default_rng(500 + ds)
        layers = [rng.standard_normal((60, 8)) for _ in range(20)]
        res = aj.ridge_probe(layers, rng.standard_normal(60), alphas=[1e-1, 1e2, 1e5],
                             folds=5, inner_folds=3, seed=ds)
        fold_r.append(res.fold_pearson_r.ravel())
    # 1,200 per-fold r of 12 stimuli each: the median's SE is about 0.011
    assert abs(np.median(np.concatenate(fold_r))) < 0.03


@pytest.mark.parametrize("n_sets", [150, pytest.param(1000, marks=pytest.mark.slow)])
def test_encoding_permutation_test_is_calibrated_and_holds_fwe_per_subject(n_sets):
    """Two families per set: FWER 0.1 passes with probability 0.005 at 300 families, < 1e-6
    at 2,000 (it passed with 0.92, and 0.2 with 0.46, at the former 24 families)."""
    ps, any_fwe = [], []
    alphas = np.logspace(-1, 4, 4)
    for ds in range(n_sets):
        rng = np.random.default_rng(600 + ds)
        X = rng.standard_normal((30, 6))
        Y = {"s1": rng.standard_normal((30, 10)), "s2": rng.standard_normal((30, 10))}
        r = aj.encoding_permutation_test([X], Y, alphas=alphas, folds=3, n_perm=39, seed=ds,
                                         encode_options={"inner_folds": 2})
        ps.append(r.p)
        any_fwe += [(r.p_fwe[:10] < ALPHA).any(), (r.p_fwe[10:] < ALPHA).any()]
    ps = np.concatenate(ps)
    _not_anticonservative(ps)
    assert 0.4 < ps.mean() < 0.6 and np.mean(ps < ALPHA) > 0.015
    fwer_ok(any_fwe, attainable_size(40))


def test_encoding_permutation_test_detects_planted_voxels():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((40, 5))
    Y = np.concatenate([X @ rng.standard_normal((5, 4)) + rng.standard_normal((40, 4)),
                        rng.standard_normal((40, 6))], axis=1)
    r = aj.encoding_permutation_test([X], Y, alphas=np.logspace(-1, 3, 3), folds=4, n_perm=49,
                                     seed=0, encode_options={"inner_folds": 3})
    assert (r.p_fwe[:4] < ALPHA).all() and (r.q[:4] < ALPHA).all()


# --------------------------------------------------------------------------- FDR


def test_fdr_bh_controls_the_false_discovery_rate():
    rng = np.random.default_rng(0)
    fdp, any_null = [], []
    for _ in range(400):
        p_null = rng.uniform(size=40)
        p_alt = rng.uniform(size=10) * 1e-3
        q = aj.fdr_bh(np.concatenate([p_null, p_alt]))
        rej = q < ALPHA
        fdp.append(rej[:40].sum() / max(1, rej.sum()))
        any_null.append((aj.fdr_bh(p_null) < ALPHA).any())
    assert np.mean(fdp) <= ALPHA * 40 / 50 + 0.01  # BH: FDR = alpha * m0 / m
    fwer_ok(any_null, ALPHA)   # continuous p-values: the size is alpha


# --------------------------------------------------------------------------- slow variants
# Larger versions for a release check, outside CI: pytest -m slow tests/calibration


@pytest.mark.slow
def test_slow_probe_cli_path_nested_C_is_calibrated():
    """The issue's `alignjax probe --n-perm` case: 80 noise layers, 9 C values, 5 x 3 folds."""
    ps = []
    for ds in range(4):
        rng = np.random.default_rng(700 + ds)
        y = rng.permutation(np.repeat([0, 1], 20))
        layers = [rng.standard_normal((40, 8)) for _ in range(20)]
        r = aj.probe_permutation_test(layers, y, Cs=np.logspace(-4, 4, 9), inner_folds=3,
                                      folds=5, n_perm=99, seed=ds, chunk_size=25)
        ps.append(r.p)
    _not_anticonservative(np.concatenate(ps))


@pytest.mark.slow
def test_slow_encoding_permutation_test_is_uniform():
    ps = []
    for ds in range(40):
        rng = np.random.default_rng(800 + ds)
        X = rng.standard_normal((40, 10))
        r = aj.encoding_permutation_test([X], rng.standard_normal((40, 5)),
                                         alphas=np.logspace(-1, 4, 6), folds=4, n_perm=99,
                                         seed=ds, encode_options={"inner_folds": 3})
        ps.append(r.p)
    _rate_ok(np.concatenate(ps))
    _uniform(np.concatenate(ps))
