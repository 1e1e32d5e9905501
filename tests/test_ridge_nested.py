"""One outer fold of the nested CV for a stack of layers (``ridge.nested_fold_layers``, the
device pass :func:`alignjax.encode` uses) against the per-layer path it replaced:
``ridge.cv_alphas`` on the outer-training rows, then ``ridge.fit_predict``."""

import jax.numpy as jnp
import numpy as np
import pytest

from alignjax import ridge as R
from alignjax.folds import resolve_folds
from alignjax.ridge import cv as ridge_cv_module, placement

ALPHAS = np.logspace(0, 2, 3)  # narrow: strong and null targets leave it at both edges


def _problem(n=40, widths=(6, 6, 30, 6), t=10, seed=0):
    """Layers of mixed widths; targets 0-4 nearly noiseless (lower edge), 5-9 noise (upper)."""
    rng = np.random.default_rng(seed)
    Xs = [rng.standard_normal((n, p)) for p in widths]
    Y = rng.standard_normal((n, t))
    Y[:, :t // 2] = Xs[0] @ rng.standard_normal((widths[0], t // 2)) \
        + 0.01 * rng.standard_normal((n, t // 2))
    return Xs, Y


def _folds(n, seed=0):
    test = resolve_folds(5, n, seed=seed)[0]
    tr, te = np.flatnonzero(~test), np.flatnonzero(test)
    return tr, te, resolve_folds(4, len(tr), seed=seed + 1)


def _per_layer(Xs, Y, tr, te, inner, plan, **kw):
    """The per-layer reference: alphas, scores (n_layers, t) and predictions."""
    targets, inner_targets = R.place_targets(Y, plan), R.place_targets(Y[tr], plan)
    out = []
    for X in Xs:
        Xd, p = jnp.asarray(X, R.float_dtype()), X.shape[1]
        choice = R.cv_alphas(Xd[tr], inner_targets, inner, ALPHAS,
                             solver=R.pick_solver("auto", int((~inner).sum(1).max()), p),
                             chunk_size=plan.chunk, **kw)
        kw_fit = {k: kw[k] for k in ("fit_intercept", "standardize")}
        pred = R.fit_predict(Xd, targets, tr, te, choice.alpha,
                             solver=R.pick_solver("auto", len(tr), p), **kw_fit)
        out.append((choice.alpha, choice.score, np.asarray(pred)))
    return [np.stack(part) for part in zip(*out)]


def _batched(Xs, Y, tr, te, inner, plan, *, solver, **kw):
    """The device pass, one call per width (as encode groups layers)."""
    targets = R.place_targets(Y, plan)
    alpha, score = np.empty((2, len(Xs), Y.shape[1]))
    pred = np.empty((len(Xs), len(te), Y.shape[1]))
    for p in dict.fromkeys(X.shape[1] for X in Xs):
        idx = [i for i, X in enumerate(Xs) if X.shape[1] == p]
        stack = jnp.asarray(np.stack([Xs[i] for i in idx]), R.float_dtype())
        fits = R.nested_fold_layers(
            stack, targets, tr, te, inner, ALPHAS,
            cv_solver=R.pick_solver(solver, int((~inner).sum(1).max()), p),
            fit_solver=R.pick_solver(solver, len(tr), p), **kw).fetch()
        alpha[idx], score[idx], pred[idx] = fits.alpha, fits.score, fits.prediction
    return alpha, score, pred


@pytest.mark.parametrize("chunk_size, block, batch, score", [
    (None, None, None, "pearson"),  # the defaults: one chunk per device, one layer at a time
    (2, 1, 2, "r2"),  # chunks split the targets, one-target extension blocks, 2-layer batches
])
def test_batched_pass_equals_the_per_layer_path(monkeypatch, chunk_size, block, batch, score):
    if block is not None:
        monkeypatch.setitem(placement._EXTEND_BLOCK, "cpu", block)
    if batch is not None:
        monkeypatch.setattr(ridge_cv_module, "layer_batch", lambda *a, **k: batch)
    Xs, Y = _problem()
    tr, te, inner = _folds(Y.shape[0])
    plan = R.plan_targets(Y.shape[0], 30, len(ALPHAS), Y.shape[1], chunk_size, None)
    kw = dict(score=score, fit_intercept=True, standardize=True)
    want = _per_layer(Xs, Y, tr, te, inner, plan, extend_alphas=True, **kw)
    got = _batched(Xs, Y, tr, te, inner, plan, solver="auto", extend_alphas=True, **kw)
    np.testing.assert_array_equal(got[0], want[0])  # the same alphas, bit for bit
    np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-4, atol=1e-4 * np.abs(want[2]).max())
    # the edge extension walked both edges, and targets of every layer kept grid alphas
    assert (got[0] < ALPHAS.min()).any() and (got[0] > ALPHAS.max()).any()
    assert np.isin(got[0], ALPHAS).any()


def test_without_extension_alphas_stay_on_the_grid():
    Xs, Y = _problem(widths=(6, 6))
    tr, te, inner = _folds(Y.shape[0])
    plan = R.plan_targets(Y.shape[0], 6, len(ALPHAS), Y.shape[1], None, None)
    kw = dict(score="r2", fit_intercept=True, standardize=False, extend_alphas=False)
    want = _per_layer(Xs, Y, tr, te, inner, plan, **kw)
    got = _batched(Xs, Y, tr, te, inner, plan, solver="auto", **kw)
    np.testing.assert_array_equal(got[0], want[0])
    assert np.isin(got[0], ALPHAS).all()
    np.testing.assert_allclose(got[2], want[2], rtol=1e-4, atol=1e-4 * np.abs(want[2]).max())


class _Accelerator:
    """A stand-in device with ``free`` bytes of memory."""

    platform = "gpu"

    def __init__(self, free):
        self.free = free

    def memory_stats(self):
        return {"bytes_limit": self.free, "bytes_in_use": 0}


def test_layer_batch_is_bounded_by_memory():
    plan = R.plan_targets(165, 768, 8, 7694, None, None)
    assert R.layer_batch(13, 165, 768, 8, 5, plan, n_test=33) == 1  # CPU: one at a time
    for free, want in ((140 << 30, 13), (4 << 30, 3), (64 << 20, 1)):
        gpu = R.Plan((_Accelerator(free),), 7694, 7694, 7694)
        assert R.layer_batch(13, 165, 768, 8, 5, gpu, n_test=33) == want


def test_outer_fold_batch_is_bounded_by_memory():
    plan = R.plan_targets(165, 768, 8, 7694, None, None)
    assert R.outer_fold_batch(5, 13, 165, 768, 8, 5, plan, n_test=33) == 1  # CPU
    for free, want in ((140 << 30, 5), (32 << 30, 2), (4 << 30, 1)):
        gpu = R.Plan((_Accelerator(free),), 7694, 7694, 7694)
        assert R.outer_fold_batch(5, 13, 165, 768, 8, 5, gpu, n_test=33) == want
    masks = resolve_folds(4, 30, seed=0)
    assert R.fold_shape(8, masks) == (8, (4, 30), (7, 8), (2, 2))


def test_outer_folds_batched_in_one_pass_equal_one_at_a_time(monkeypatch):
    batch = 2  # units [0, 1], [2], [3, 4]: a batch, a single fold and a batch of other shapes
    import alignjax as aj
    from alignjax import encoding

    Xs, Y = _problem(n=38, widths=(6, 9, 6))  # outer tests of 8, 8, 8, 7, 7 stimuli
    kw = dict(alphas=ALPHAS, outer_folds=5, inner_folds=3, extend_alphas=True)
    want = aj.encode(Xs, Y, **kw)
    units = []
    real_units = encoding._fold_units

    def spy(*a):
        units.append(real_units(*a))
        return units[-1]

    monkeypatch.setattr(R, "outer_fold_batch", lambda n_outer, *a, **k: min(batch, n_outer))
    monkeypatch.setattr(encoding, "_fold_units", spy)
    got = aj.encode(Xs, Y, **kw)
    # folds of the same shapes batched together, in batches of at most `batch`
    assert sorted(o for u in units[0] for o in u) == list(range(5))
    assert max(len(u) for u in units[0]) == min(batch, 3)
    assert all(len({int(want.folds[o].sum()) for o in u}) == 1 for u in units[0])
    np.testing.assert_array_equal(got.layer_alpha, want.layer_alpha)
    np.testing.assert_array_equal(got.best_layer, want.best_layer)
    np.testing.assert_allclose(got.prediction, want.prediction, rtol=1e-4,
                               atol=1e-4 * np.abs(want.prediction).max())
    np.testing.assert_allclose(got.layer_fold_r, want.layer_fold_r, rtol=1e-4, atol=1e-5)
