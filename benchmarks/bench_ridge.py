"""Benchmark: closed-form multi-alpha ridge (alignjax.ridge_cv / encode) vs himalaya and sklearn.

Workloads (issue 3):

(a) 165 stimuli x 768 features, 10,000 voxels, 12 alphas, 5-fold ``ridge_cv`` vs himalaya
    (numpy backend: ``KernelRidgeCV`` and ``solve_ridge_cv_svd``) and sklearn
    ``RidgeCV(alpha_per_target=True)`` (efficient leave-one-out);
(b) 132 x 2,048, 7,694 voxels, 100 alphas, 5-fold vs himalaya ``RidgeCV`` and
    ``KernelRidgeCV``;
(c) the braindnn protocol: 165 stimuli, 13 layers x 768, 7,694 voxels, 8 alphas + edge
    extension, 5 outer x 5 inner folds (``encode``) vs the brute-force sklearn loop
    (StandardScaler + Ridge per voxel, layer, alpha and fold) timed on a few voxels and
    extrapolated;
(d) 3,600 x 6,820, 20 alphas, 12 folds, 2,000 voxels vs himalaya ``KernelRidgeCV``;
(d85k) the same at 85,000 voxels: alignjax timed in full, himalaya timed at 500 and 2,000
    voxels and extrapolated linearly (its per-fold eigendecompositions are the intercept);
(m) memory: 100,000 targets x 3,600 stimuli x 2,000 features (10 alphas, 5 folds) in
    float32, recording the process's peak resident memory.

On a GPU (JAX's default backend) the himalaya baselines use its ``torch_cuda`` backend, timed
after a warm-up run (set ``BENCH_HIMALAYA_BACKEND`` to choose another). Each workload checks
that alignjax and the baselines agree before timing. FLOP counts are a model of the work
alignjax does: matmuls exactly, eigh as 9 n^3 and a thin SVD of (m, n) as 6 m n^2 + 20 n^3
(so "fraction_of_matmul", against full-float32 matmuls, is approximate).

Workload ``io`` (:mod:`benchmarks.encode_io`) runs the encoding's I/O path: a 64 x 64 x 40 x
165 NIfTI with a 30,000-voxel mask through load, nested encoding and map writing, and
reports the time spent outside the solver (needs the ``[fmri]`` extra).

Usage: ``python benchmarks/bench_ridge.py [--quick] [--only a,b,c,d,io,d85k,m]`` (the
default runs a-d and io; d85k and m take several minutes each and run only when named).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import Recorder, check_close, parse_args, time_call, time_jax  # noqa: E402

SIZES = {
    "a": dict(n=165, p=768, t=10_000, n_alphas=12, folds=5),
    "b": dict(n=132, p=2048, t=7_694, n_alphas=100, folds=5),
    "c": dict(n=165, p=768, n_layers=13, t=7_694, n_alphas=8, outer=5, inner=5, brute_voxels=2),
    "d": dict(n=3600, p=6820, t=2_000, n_alphas=20, folds=12),
    "d85k": dict(n=3600, p=6820, t=85_000, n_alphas=20, folds=12, baseline_t=(500, 2_000)),
    "m": dict(n=3600, p=2000, t=100_000, n_alphas=10, folds=5),
}
QUICK = {
    "a": dict(n=165, p=768, t=300, n_alphas=12, folds=5),
    "b": dict(n=132, p=2048, t=300, n_alphas=20, folds=5),
    "c": dict(n=165, p=768, n_layers=2, t=200, n_alphas=8, outer=5, inner=5, brute_voxels=1),
    "d": dict(n=400, p=800, t=200, n_alphas=20, folds=12),
    "d85k": dict(n=400, p=800, t=2_000, n_alphas=20, folds=12, baseline_t=(100, 200)),
    "m": dict(n=400, p=200, t=5_000, n_alphas=10, folds=5),
}
OPT_IN = ("d85k", "m")


def _problem(n, p, t, seed=0, n_layers=None):
    rng = np.random.default_rng(seed)
    if n_layers is None:
        X = rng.standard_normal((n, p)).astype(np.float32)
        W = (rng.standard_normal((p, t)) / np.sqrt(p)).astype(np.float32)
        snr = rng.uniform(0.0, 2.0, t).astype(np.float32)
        Y = X @ W * snr + rng.standard_normal((n, t)).astype(np.float32)
        return X, Y.astype(np.float32)
    base = rng.standard_normal((n, 64))
    layers = [(base @ rng.standard_normal((64, p)) + 2.0 * rng.standard_normal((n, p))).astype(np.float32)
              for _ in range(n_layers)]
    src = rng.integers(0, n_layers, t)
    Y = np.empty((n, t), np.float32)
    for l in range(n_layers):
        cols = np.flatnonzero(src == l)
        W = rng.standard_normal((p, cols.size)) / np.sqrt(p)
        Y[:, cols] = layers[l] @ W + rng.standard_normal((n, cols.size))
    return layers, Y


def _kfold_masks(n, k):
    from sklearn.model_selection import KFold

    m = np.zeros((k, n), bool)
    for f, (_, te) in enumerate(KFold(k).split(np.zeros(n))):
        m[f, te] = True
    return m


def _flops_ridge_cv(n, p, t, n_alphas, n_folds):
    """FLOP model of alignjax.ridge_cv (fit_intercept=True, solver auto)."""
    n_te = n / n_folds
    n_tr = n - n_te

    def apply(r):  # predictions of every alpha on a test fold, from rank-r factors
        from alignjax.ridge import use_hat

        rows = n_alphas * n_te
        if use_hat(rows, r, n_tr, t):  # the (alphas x test, n_train) operator, formed once
            return 2 * rows * r * n_tr + 2 * rows * n_tr * t
        return 2 * n_tr * r * t + 2 * rows * r * t

    if n_tr >= p:  # primal: thin SVD per fold
        fold = 6 * n_tr * p * p + 20 * p ** 3 + 2 * n_te * p * p + apply(p)
        refit = 6 * n * p * p + 20 * p ** 3 + 2 * n * p * t + 2 * p * p * t
        return n_folds * fold + refit
    back = 2 * n * n * p + 2 * n * n * t + 2 * n * p * t  # refit from a decomposition
    refit = 2 * n * n * p + 9 * n ** 3 + back
    if n >= 1024:  # solver "eigh_full": one eigendecomposition of the full kernel, shared
        m = n_te  # with the refit
        per_alpha = 2 * n * n * t + n_folds * (2 * m * m * n + 2 / 3 * m ** 3 + 2 * m * m * t)
        return 2 * n * n * p + 9 * n ** 3 + 2 * n * n * t + n_alphas * per_alpha + back
    fold = 9 * n_tr ** 3 + 2 * n_te * n_tr ** 2 + apply(n_tr)
    return 2 * n * n * p + n_folds * fold + refit


def _agree_alphas(name, got, want, cv_scores, grid, *, tol=1e-4):
    """Alphas agree, or (near-ties in float32) the baseline's alpha scores within ``tol``
    of ours in our own CV curve; returns the fraction of exactly equal choices."""
    got, want = np.asarray(got, float), np.asarray(want, float)
    same = np.isclose(got, want, rtol=1e-5)
    cv = np.asarray(cv_scores, float)
    idx = np.argmin(np.abs(np.log(grid)[:, None] - np.log(want)[None, :]), axis=0)
    gap = cv.max(axis=0) - cv[idx, np.arange(cv.shape[1])]
    bad = ~same & (gap > tol * np.maximum(1.0, np.abs(cv.max(axis=0))))
    if bad.any():
        raise AssertionError(f"{name}: {int(bad.sum())} targets chose a clearly different alpha "
                             f"(max score gap {gap[bad].max():.3g})")
    return float(same.mean())


def _use_himalaya() -> str:
    """Set himalaya's backend for the baselines: ``$BENCH_HIMALAYA_BACKEND`` if set, else its
    torch backend on the GPU when JAX runs on one (the issue's GPU comparison), else NumPy.
    Returns the backend's name."""
    import jax
    from himalaya.backend import set_backend

    name = os.environ.get("BENCH_HIMALAYA_BACKEND") or (
        "torch_cuda" if jax.default_backend() == "gpu" else "numpy")
    set_backend(name, on_error="raise")
    return name


def _host(x) -> np.ndarray:
    """A himalaya result (NumPy array or torch tensor) as a host NumPy array."""
    from himalaya.backend import get_backend

    return np.asarray(get_backend().to_numpy(x))


def _time_himalaya(fn, backend: str) -> dict:
    """Time a himalaya fit; on the GPU after a warm-up run, synchronised, median of 3."""
    if backend != "torch_cuda":
        return time_call(fn)
    import torch

    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    run()  # CUDA context and solver handles
    return time_call(run, repeats=3)


def _hname(name: str, backend: str) -> str:
    return name if backend == "numpy" else f"{name}[{backend}]"


def bench_ridge_workload(rec, key, size, repeats):
    import jax

    from alignjax import ridge_cv
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV as HRidgeCV
    from himalaya.scoring import r2_score as h_r2
    from sklearn.model_selection import KFold

    hb = _use_himalaya()
    n, p, t, k = size["n"], size["p"], size["t"], size["folds"]
    alphas = np.logspace(-2, 6, size["n_alphas"])
    X, Y = _problem(n, p, t, seed=ord(key))
    masks = _kfold_masks(n, k)
    workload = f"{key}:{n}x{p} t={t} alphas={len(alphas)} folds={k}"

    def ours():
        return ridge_cv(X, Y, alphas=alphas, folds=masks, score="r2")

    res = ours()
    best = np.asarray(res.best_alpha)
    coef = np.asarray(res.coef)
    baselines = {}
    checks = {}
    Xt = np.random.default_rng(1).standard_normal((5, p)).astype(np.float32)
    ours_pred = Xt @ coef + np.asarray(res.intercept)
    # himalaya KernelRidgeCV (the faster himalaya solver when n < p)
    # baselines are slow: their one timed run is also the run whose answers are checked
    tk = _time_himalaya(lambda: KernelRidgeCV(alphas=alphas, kernel="linear", cv=KFold(k),
                                              fit_intercept=True,
                                              solver_params=dict(score_func=h_r2)).fit(X, Y), hb)
    kr = tk["output"]
    frac = _agree_alphas(f"{key} vs himalaya KernelRidgeCV", best, _host(kr.best_alphas_),
                         res.cv_scores, alphas)
    # himalaya's float32 kernel solve loses accuracy at tiny alphas (we checked against
    # float64 sklearn below), so predictions are compared where alpha >= 1
    same = np.isclose(best, _host(kr.best_alphas_), rtol=1e-5) & (best >= 1.0)
    check_close(f"{key} predictions vs himalaya KernelRidgeCV", ours_pred[:, same],
                _host(kr.predict(Xt))[:, same], rtol=2e-2, atol=2e-2 * np.abs(ours_pred).max())
    checks["himalaya_kernel_alpha_agreement"] = frac
    from sklearn.linear_model import Ridge

    for j in np.linspace(0, t - 1, 10).astype(int):
        m = Ridge(alpha=float(best[j])).fit(X.astype(np.float64), Y[:, j].astype(np.float64))
        want = Xt @ m.coef_ + m.intercept_
        check_close(f"{key} target {j} vs float64 sklearn Ridge", ours_pred[:, j], want,
                    rtol=1e-3, atol=1e-3 * np.abs(want).max())
    baselines[_hname("himalaya_KernelRidgeCV", hb)] = tk["seconds"]
    if key in ("a", "b"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            th = _time_himalaya(lambda: HRidgeCV(
                alphas=alphas, cv=KFold(k), fit_intercept=True,
                solver_params=dict(score_func=h_r2, warn=False)).fit(X, Y), hb)
            hr = th["output"]
            frac = _agree_alphas(f"{key} vs himalaya RidgeCV", best, _host(hr.best_alphas_),
                                 res.cv_scores, alphas)
            same = np.isclose(best, _host(hr.best_alphas_), rtol=1e-5) & (best >= 1.0)
            check_close(f"{key} coef vs himalaya RidgeCV", coef[:, same],
                        _host(hr.coef_)[:, same], rtol=2e-2, atol=2e-2 * np.abs(coef).max())
            checks["himalaya_ridge_alpha_agreement"] = frac
            baselines[_hname("himalaya_RidgeCV", hb)] = th["seconds"]
    if key == "a":
        from sklearn.linear_model import RidgeCV as SkRidgeCV

        from alignjax import ridge_fit

        ts = time_call(lambda: SkRidgeCV(alphas=alphas, alpha_per_target=True).fit(X, Y))
        sk = ts["output"]
        # sklearn uses efficient leave-one-out: check our fit at its alphas
        c2, _ = ridge_fit(X, Y, alpha=np.asarray(sk.alpha_, dtype=float))
        check_close("a coef vs sklearn RidgeCV at its alphas", np.asarray(c2), sk.coef_.T,
                    rtol=2e-2, atol=2e-3 * np.abs(sk.coef_).max())
        baselines["sklearn_RidgeCV_loo"] = ts["seconds"]
    timing = time_jax(lambda: ours().coef, repeats=repeats)
    flops = _flops_ridge_cv(n, p, t, len(alphas), k)
    rec.add(workload, "alignjax.ridge_cv", timing, flops=flops, baseline_seconds=baselines,
            **checks)
    for name, secs in baselines.items():
        rec.add(workload, name, {"seconds": secs, "repeats": 1}, flops=flops)
    jax.clear_caches()


def _brute_force_voxel(layers, y, alphas, outer, inner_masks, extend=True):
    """The braindnn protocol for one voxel with sklearn: per outer fold, per layer, per
    alpha (with edge extension), per inner fold a StandardScaler + Ridge fit."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pred = np.empty_like(y, dtype=float)
    choices = []
    for o in range(outer.shape[0]):
        tr, te = np.flatnonzero(~outer[o]), np.flatnonzero(outer[o])
        inner = inner_masks[o]

        def cv_score(X, a):
            s = 0.0
            for f in range(inner.shape[0]):
                itr, ite = tr[~inner[f]], tr[inner[f]]
                m = make_pipeline(StandardScaler(), Ridge(alpha=a)).fit(X[itr], y[itr])
                s += r2_score(y[ite], m.predict(X[ite]))
            return s / inner.shape[0]

        best = (-np.inf, None, None)
        for li, X in enumerate(layers):
            scores = [cv_score(X, a) for a in alphas]
            bi = int(np.argmax(scores))
            a, s = alphas[bi], scores[bi]
            if extend and bi in (0, len(alphas) - 1):
                step = 0.5 if bi == 0 else 2.0
                while 1e-49 <= a * step <= 1e50:
                    s2 = cv_score(X, a * step)
                    if not s2 > s + 256 * np.finfo(np.float32).eps * max(1.0, abs(s)):
                        break
                    a, s = a * step, s2
            if s > best[0]:
                best = (s, li, a)
        _, li, a = best
        m = make_pipeline(StandardScaler(), Ridge(alpha=a)).fit(layers[li][tr], y[tr])
        pred[te] = m.predict(layers[li][te])
        choices.append((li, a))
    return pred, choices


def bench_encode_workload(rec, size, repeats):
    import jax

    from alignjax import encode
    from alignjax.folds import resolve_folds

    n, p, L, t = size["n"], size["p"], size["n_layers"], size["t"]
    alphas = np.logspace(-1, 6, size["n_alphas"])
    layers, Y = _problem(n, p, t, seed=3, n_layers=L)
    kw = dict(alphas=alphas, outer_folds=size["outer"], inner_folds=size["inner"],
              extend_alphas=True, seed=0)
    workload = f"c:braindnn {n}x{L}x{p} t={t} alphas={len(alphas)}+ext {size['outer']}x{size['inner']}"
    t0 = time.perf_counter()
    res = encode(layers, Y, **kw)
    first = time.perf_counter() - t0  # compilation included: what one command pays
    # the brute-force loop on a few voxels, with the same outer and inner folds
    nv = size["brute_voxels"]
    inner_masks = []
    for o in range(res.folds.shape[0]):
        ntr = int((~res.folds[o]).sum())
        inner_masks.append(resolve_folds(size["inner"], ntr, seed=0 + 1 + o))
    t0 = time.perf_counter()
    agree = []
    for v in range(nv):
        pred, choices = _brute_force_voxel(layers, Y[:, v].astype(np.float64), alphas,
                                           res.folds, inner_masks)
        for o, (li, a) in enumerate(choices):
            agree.append(li == res.best_layer[o, v] and np.isclose(a, res.best_alpha[o, v],
                                                                   rtol=1e-5))
        if all(agree[-len(choices):]):
            check_close(f"c voxel {v} predictions vs brute force", res.prediction[:, v], pred,
                        rtol=1e-2, atol=1e-2 * np.abs(pred).max())
    brute = (time.perf_counter() - t0) / nv * t
    if np.mean(agree) < 0.8:
        raise AssertionError(f"c: brute force and encode chose the same (layer, alpha) in only "
                             f"{np.mean(agree):.0%} of (voxel, fold) pairs")
    timing = time_jax(lambda: encode(layers, Y, **kw).r, repeats=repeats)
    # FLOPs: per outer fold and layer, an inner ridge_cv (dual) and one refit+predict
    n_tr = n * (size["outer"] - 1) / size["outer"]
    inner = _flops_ridge_cv(n_tr, p, t, len(alphas), size["inner"])
    flops = size["outer"] * L * inner
    rec.add(workload, "alignjax.encode", timing, flops=flops,
            baseline_seconds={"sklearn_brute_force_extrapolated": brute},
            brute_force_agreement=float(np.mean(agree)), brute_force_voxels_timed=nv,
            first_call_seconds=first)
    rec.add(workload, "sklearn_brute_force_extrapolated", {"seconds": brute, "repeats": 1},
            flops=flops)
    jax.clear_caches()


def _targets(X, t, seed, chunk=10_000):
    """float32 responses (n, t) of ``X`` built in column chunks (no float64 temporaries)."""
    rng = np.random.default_rng(seed)
    n, p = X.shape
    Y = np.empty((n, t), np.float32)
    for s in range(0, t, chunk):
        c = min(chunk, t - s)
        W = rng.standard_normal((p, c), dtype=np.float32) / np.float32(np.sqrt(p))
        Y[:, s:s + c] = X @ W * rng.uniform(0.0, 2.0, c).astype(np.float32)
        Y[:, s:s + c] += rng.standard_normal((n, c), dtype=np.float32)
    return Y


def _peak_rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _check_against_sklearn(name, X, Y, res, cols):
    from sklearn.linear_model import Ridge

    coef, icpt, best = np.asarray(res.coef), np.asarray(res.intercept), np.asarray(res.best_alpha)
    for j in cols:
        m = Ridge(alpha=float(best[j])).fit(X.astype(np.float64), Y[:, j].astype(np.float64))
        check_close(f"{name} target {j} coef vs float64 sklearn Ridge", coef[:, j], m.coef_,
                    rtol=2e-2, atol=2e-3 * np.abs(m.coef_).max())
        check_close(f"{name} target {j} intercept", icpt[j], m.intercept_, rtol=2e-2, atol=2e-2)


def bench_many_voxels(rec, size):
    """(d85k): alignjax on all voxels; himalaya at two smaller counts, extrapolated."""
    import jax

    from alignjax import ridge_cv
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.scoring import r2_score as h_r2
    from sklearn.model_selection import KFold

    hb = _use_himalaya()
    n, p, t, k = size["n"], size["p"], size["t"], size["folds"]
    alphas = np.logspace(-2, 6, size["n_alphas"])
    rng = np.random.default_rng(85)
    X = rng.standard_normal((n, p), dtype=np.float32)
    Y = _targets(X, t, seed=86)
    masks = _kfold_masks(n, k)
    workload = f"d85k:{n}x{p} t={t} alphas={len(alphas)} folds={k}"
    timing = time_jax(lambda: ridge_cv(X, Y, alphas=alphas, folds=masks, score="r2").coef,
                      repeats=1)
    res = ridge_cv(X, Y[:, :64], alphas=alphas, folds=masks, score="r2")
    _check_against_sklearn("d85k", X, Y[:, :64], res, [0, 31, 63])
    secs = []
    for v in size["baseline_t"]:
        r = _time_himalaya(lambda: KernelRidgeCV(
            alphas=alphas, kernel="linear", cv=KFold(k), fit_intercept=True,
            solver_params=dict(score_func=h_r2)).fit(X, Y[:, :v]), hb)
        secs.append(r["seconds"])
        if v == size["baseline_t"][-1]:
            kr = r["output"]
            ours = ridge_cv(X, Y[:, :v], alphas=alphas, folds=masks, score="r2")
            _agree_alphas("d85k vs himalaya KernelRidgeCV", np.asarray(ours.best_alpha),
                          _host(kr.best_alphas_), ours.cv_scores, alphas)
    (v1, v2), (s1, s2) = size["baseline_t"], secs
    slope = (s2 - s1) / (v2 - v1)
    himalaya = s2 + slope * (t - v2)
    flops = _flops_ridge_cv(n, p, t, len(alphas), k)
    hname = _hname("himalaya_KernelRidgeCV_extrapolated", hb)
    rec.add(workload, "alignjax.ridge_cv", timing, flops=flops, baseline_seconds={hname: himalaya})
    rec.add(workload, hname, {"seconds": himalaya, "repeats": 1},
            flops=flops, timed_voxels=list(size["baseline_t"]), timed_seconds=secs)
    jax.clear_caches()


def bench_memory(rec, size):
    """(m): the largest problem the issue names must fit a 24 GB machine."""
    import jax

    from alignjax import ridge_cv

    n, p, t, k = size["n"], size["p"], size["t"], size["folds"]
    alphas = np.logspace(-2, 6, size["n_alphas"])
    rng = np.random.default_rng(100)
    X = rng.standard_normal((n, p), dtype=np.float32)
    Y = _targets(X, t, seed=101)
    inputs_gb = (X.nbytes + Y.nbytes) / 2**30
    before = _peak_rss_gb()
    t0 = time.perf_counter()
    res = ridge_cv(X, Y, alphas=alphas, folds=k, score="r2")
    coef = jax.block_until_ready(res.coef)
    secs = time.perf_counter() - t0
    peak = _peak_rss_gb()
    _check_against_sklearn("m", X, Y, res, [0, t // 2, t - 1])
    workload = f"m:{n}x{p} t={t} alphas={len(alphas)} folds={k}"
    rec.add(workload, "alignjax.ridge_cv", {"seconds": secs, "repeats": 1},
            flops=_flops_ridge_cv(n, p, t, len(alphas), k), peak_rss_gb=peak,
            peak_rss_gb_before_fit=before, inputs_gb=inputs_gb,
            coef_gb=coef.nbytes / 2**30)
    print(f"m: peak resident memory {peak:.2f} GiB (inputs {inputs_gb:.2f} GiB, "
          f"{before:.2f} GiB before the fit), {secs:.1f} s", flush=True)
    del res, coef
    jax.clear_caches()


def main():
    args = parse_args(__doc__.splitlines()[0])
    sizes = QUICK if args.quick else SIZES
    only = set(args.only.split(",")) if args.only else (set(sizes) | {"io"}) - set(OPT_IN)
    rec = Recorder("ridge", args.out, quick=args.quick)
    repeats = max(1, args.repeats if args.quick else min(args.repeats, 2))
    for key in ("a", "b", "d"):
        if key in only:
            print(f"--- workload {key}", flush=True)
            bench_ridge_workload(rec, key, sizes[key], repeats if key != "d" else 1)
    if "c" in only:
        print("--- workload c", flush=True)
        bench_encode_workload(rec, sizes["c"], 1)
    if "io" in only:
        from benchmarks.encode_io import QUICK as IO_QUICK, SIZES as IO_SIZES, bench_nifti_io

        print("--- workload io", flush=True)
        bench_nifti_io(rec, (IO_QUICK if args.quick else IO_SIZES)["io"])
    if "d85k" in only:
        print("--- workload d85k", flush=True)
        bench_many_voxels(rec, sizes["d85k"])
    if "m" in only:
        print("--- workload m", flush=True)
        bench_memory(rec, sizes["m"])
    rec.save()


if __name__ == "__main__":
    main()
