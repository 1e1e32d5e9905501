"""alignjax.trf: against MNE's ReceptiveField / TimeDelayingRidge, against an explicit
nested leave-one-run-out ridge on delay_features designs, a planted TRF, and bad inputs."""

import numpy as np
import pytest

import alignjax
from alignjax import delay_features, trf
from alignjax.errors import (InvalidFoldsError, InvalidOptionError, NonFiniteError,
                             ShapeMismatchError, StimulusMismatchError, ZeroVarianceError)
from tests._compat import enable_x64

SF = 50.0


def _epochs(n_t=240, n_r=3, f=3, c=4, seed=0):
    rng = np.random.default_rng(seed)
    X3 = rng.standard_normal((n_t, n_r, f)) + 2.0  # non-zero means: the centring matters
    Y3 = rng.standard_normal((n_t, n_r, c)) - 1.0
    X3[:, :, 0] = np.cumsum(X3[:, :, 0], axis=0) * 0.2  # a slow, autocorrelated feature
    Y3 += 0.5 * np.roll(X3[:, :, :1], 3, axis=0)

    def flat(a):
        return a.transpose(1, 0, 2).reshape(-1, a.shape[-1])

    return X3, Y3, flat(X3), flat(Y3), np.repeat(np.arange(n_r), n_t)


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_one_alpha_equals_mne_receptive_field(direction, fit_intercept):
    rf_mod = pytest.importorskip("mne.decoding")
    X3, Y3, X, Y, runs = _epochs()
    tmin, tmax, alpha = -0.1, 0.2, 30.0
    with enable_x64(True):
        res = trf(X, Y, tmin=tmin, tmax=tmax, sfreq=SF, alphas=[alpha], runs=runs,
                  direction=direction, fit_intercept=fit_intercept)
    if direction == "forward":
        ref = rf_mod.ReceptiveField(tmin, tmax, SF, estimator=alpha,
                                    fit_intercept=fit_intercept).fit(X3, Y3)
        ref_coef = ref.coef_.transpose(2, 1, 0)  # (n_outputs, n_feats, n_delays) -> ours
    else:  # MNE decodes with the reversed lags: stimulus at t from channels at t - delay
        ref = rf_mod.ReceptiveField(-tmax, -tmin, SF, estimator=alpha,
                                    fit_intercept=fit_intercept).fit(Y3, X3)
        ref_coef = ref.coef_.transpose(2, 1, 0)[::-1]
    assert res.coef.shape == ref_coef.shape
    # float64: MNE solves the normal equations (fastmath numba), we use their eigenbasis
    np.testing.assert_allclose(np.asarray(res.coef), ref_coef, rtol=1e-7,
                               atol=1e-9 * np.abs(ref_coef).max())
    np.testing.assert_allclose(res.times, np.arange(-5, 11) / SF)
    np.testing.assert_array_equal(np.asarray(res.alpha), alpha)


def _explicit_trf(X, Y, runs, lags, alphas, *, score, n_components=None):
    """Nested leave-one-run-out ridge on explicit delay_features designs (float64 numpy):
    centre with the training runs' means, optional PCA of the training runs' features,
    delay within runs, solve the normal equations per alpha."""
    ids = list(dict.fromkeys(runs.tolist()))

    def fit(train):
        tr = np.isin(runs, train)
        m, mu = X[tr].mean(0), Y[tr].mean(0)
        P = np.eye(X.shape[1])
        if n_components is not None:
            _, _, vt = np.linalg.svd(X[tr] - m, full_matrices=False)
            P = vt[:n_components].T
        D = np.asarray(delay_features((X - m) @ P, lags, runs=runs))
        G, C = D[tr].T @ D[tr], D[tr].T @ (Y[tr] - mu)
        return D, mu, P, G, C

    def weights(G, C, a):
        return np.linalg.solve(G + a * np.eye(len(G)), C)

    def held_out(train, test, alpha_per):  # score per output on run `test`
        D, mu, _, G, C = fit(train)
        te = runs == test
        pred = np.stack([D[te] @ weights(G, C[:, [j]], a)[:, 0] + mu[j]
                         for j, a in enumerate(alpha_per)], axis=1)
        return pred, Y[te]

    def pearson(p, y):
        p, y = p - p.mean(0), y - y.mean(0)
        return (p * y).sum(0) / np.sqrt((p * p).sum(0) * (y * y).sum(0))

    def score_fn(p, y):
        if score == "pearson":
            return pearson(p, y)
        return 1 - ((y - p) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)

    def choose(pool):
        s = np.zeros((len(alphas), Y.shape[1]))
        for i in pool:
            for k, a in enumerate(alphas):
                s[k] += score_fn(*held_out([j for j in pool if j != i], i,
                                           [a] * Y.shape[1]))
        return alphas[np.argmax(s, axis=0)]

    alpha = choose(ids)
    r = np.mean([pearson(*held_out([j for j in ids if j != o], o,
                                   choose([j for j in ids if j != o]))) for o in ids], axis=0)
    D, mu, P, G, C = fit(ids)
    W = np.stack([weights(G, C[:, [j]], a)[:, 0] for j, a in enumerate(alpha)], axis=1)
    coef = np.einsum("fa,jac->jfc", P, W.reshape(len(lags), P.shape[1], -1))
    return alpha, r, coef


@pytest.mark.parametrize("score,n_components", [("pearson", None), ("r2", 2)])
def test_nested_cv_equals_explicit_designs(score, n_components):
    rng = np.random.default_rng(3)
    lengths = [130, 170, 150, 110]  # unequal runs
    runs = np.repeat(np.array(["a", "b", "c", "d"]), lengths)
    n = runs.size
    X = rng.standard_normal((n, 3)) + [1.0, -2.0, 0.5]
    X[:, 1] += 0.8 * X[:, 0]
    Y = rng.standard_normal((n, 5)) * [0.5, 1, 2, 4, 8] + 3.0
    Y[:, :3] += np.roll(X[:, :1], 2, axis=0) * [[2.0, 0.5, 0.2]]
    alphas = np.logspace(-1, 4, 6)
    tmin, tmax = -0.04, 0.1
    lags = np.arange(-2, 6)
    with enable_x64(True):
        res = trf(X, Y, tmin=tmin, tmax=tmax, sfreq=SF, alphas=alphas, runs=runs, score=score,
                  n_components=n_components)
        alpha, r, coef = _explicit_trf(X, Y, runs, lags, alphas, score=score,
                                       n_components=n_components)
    np.testing.assert_array_equal(np.asarray(res.alpha), alpha)
    assert len(set(alpha.tolist())) > 1  # the channels chose different alphas
    np.testing.assert_allclose(np.asarray(res.r), r, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.asarray(res.coef), coef, rtol=1e-8,
                               atol=1e-10 * np.abs(coef).max())


def _planted(seed=0, n_runs=4, n_t=1500, sf=64.0, peak=0.15):
    """Envelope-like features, responses = feature 0 convolved with a Gaussian TRF peaking
    at ``peak`` s (different gain per channel) plus noise."""
    rng = np.random.default_rng(seed)
    n = n_runs * n_t
    raw = rng.standard_normal((n + 64, 2))
    kern = np.exp(-0.5 * (np.arange(-8, 9) / 3.0) ** 2)
    env = np.abs(np.apply_along_axis(lambda v: np.convolve(v, kern, "same"), 0, raw))[:n]
    lag_t = np.arange(0, 33) / sf
    h = np.exp(-0.5 * ((lag_t - peak) / 0.03) ** 2)
    runs = np.repeat(np.arange(n_runs), n_t)
    drive = np.zeros(n)
    for r in range(n_runs):  # the response of each run to its own stimulus only
        s = env[runs == r, 0]
        drive[runs == r] = np.convolve(s, h)[:n_t]
    gains = np.array([1.0, -0.6, 0.4])
    Y = drive[:, None] * gains + rng.standard_normal((n, 3)) * 2.0
    return env, Y, runs


def test_planted_trf_peak_lag_forward_and_backward():
    X, Y, runs = _planted()
    alphas = np.logspace(0, 5, 6)
    fwd = trf(X, Y, tmin=-0.2, tmax=0.4, sfreq=64.0, alphas=alphas, runs=runs)  # float32
    assert fwd.coef.shape == (len(fwd.times), 2, 3)
    peaks = fwd.times[np.argmax(np.abs(np.asarray(fwd.coef[:, 0, :])), axis=0)]
    np.testing.assert_allclose(peaks, 0.15, atol=1.01 / 64)  # within one sample
    # the weights of the driving feature carry the channel gains' signs
    at_peak = np.asarray(fwd.coef[np.argmin(np.abs(fwd.times - 0.15)), 0, :])
    np.testing.assert_array_equal(np.sign(at_peak), [1, -1, 1])
    assert np.all(np.asarray(fwd.r) > 0.15)
    bwd = trf(X, Y, tmin=-0.2, tmax=0.4, sfreq=64.0, alphas=alphas, runs=runs,
              direction="backward")
    assert bwd.coef.shape == (len(bwd.times), 3, 2) and bwd.r.shape == (2,)
    # the channels at t + 0.15 s carry the stimulus at t
    peak = bwd.times[np.argmax(np.abs(np.asarray(bwd.coef[:, 0, 0])))]
    assert abs(peak - 0.15) <= 2.01 / 64
    assert float(bwd.r[0]) > 0.3 and float(bwd.r[0]) > float(bwd.r[1]) + 0.2


def test_two_runs_one_alpha_and_exported():
    X, Y, runs = _planted(n_runs=2, n_t=400)
    res = trf(X, Y, tmin=0.0, tmax=0.25, sfreq=64.0, alphas=100.0, runs=runs)
    assert isinstance(res, alignjax.TRFResult)
    assert res.alpha.shape == res.r.shape == (3,)
    assert np.all(np.isfinite(np.asarray(res.r)))


def test_bad_inputs():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((300, 2)), rng.standard_normal((300, 3))
    runs = np.repeat([0, 1, 2], 100)
    kw = dict(tmin=-0.1, tmax=0.2, sfreq=SF, alphas=[1.0, 10.0])
    with pytest.raises(InvalidFoldsError, match="at least 2 runs"):
        trf(X, Y, runs=np.zeros(300), **kw)
    with pytest.raises(InvalidFoldsError, match="at least 3 runs"):
        trf(X[:200], Y[:200], runs=runs[:200], **kw)
    with pytest.raises(ShapeMismatchError, match="299"):
        trf(X[:299], Y, runs=runs, **kw)
    with pytest.raises(ShapeMismatchError, match=r"run 'r2'.*100.*99"):
        trf({"r1": X[:100], "r2": X[100:200]}, {"r1": Y[:100], "r2": Y[100:199]},
            runs=["r1", "r2"], tmin=0, tmax=0.1, sfreq=SF, alphas=1.0)
    with pytest.raises(StimulusMismatchError, match="r3"):
        trf({"r1": X[:100], "r2": X[100:200]}, {"r1": Y[:100], "r3": Y[100:200]},
            runs=["r1", "r2"], tmin=0, tmax=0.1, sfreq=SF, alphas=1.0)
    with pytest.raises(InvalidOptionError, match="run 0 has 100 samples.*150 samples"):
        trf(X, Y, runs=runs, tmin=-3.0, tmax=0.2, sfreq=SF, alphas=[1.0, 10.0])
    with pytest.raises(InvalidOptionError, match="response_sfreq is 100 Hz but sfreq is 50"):
        trf(X, Y, runs=runs, response_sfreq=100.0, **kw)
    Xn = X.copy()
    Xn[150, 1] = np.nan
    with pytest.raises(NonFiniteError, match="run 1"):
        trf(Xn, Y, runs=runs, **kw)
    Yc = Y.copy()
    Yc[200:, 2] = 4.0
    with pytest.raises(ZeroVarianceError, match=r"\[2\] is constant within run 2"):
        trf(X, Yc, runs=runs, **kw)
    with pytest.raises(InvalidOptionError, match="n_components=3 exceeds the 2 features"):
        trf(X, Y, runs=runs, n_components=3, **kw)
    with pytest.raises(InvalidOptionError, match="tmin <= tmax"):
        trf(X, Y, runs=runs, tmin=0.2, tmax=0.1, sfreq=SF, alphas=1.0)
    with pytest.raises(InvalidOptionError, match="direction"):
        trf(X, Y, runs=runs, direction="sideways", **kw)
