"""Similarity benchmark: every metric with its 1,000-permutation null (issue 14).

Workload (full): 165 stimuli, 13 layers x 768 features vs 8 subjects x 2,000 voxels,
1,000 stimulus permutations.

- ``cka``: linear CKA with its null. Baselines: NumPy written the way Kornblith et al.'s
  notebook is used (``cka(gram_linear(X), gram_linear(Y[perm]))``: Gram matrices
  recomputed for every permutation, layer and subject) and a torch CKA on CPU (same
  loop, batched over layers); both timed on a subset of permutations and extrapolated.
- ``dcor``: distance correlation with its null; baseline the dcor package per
  (layer, subject, permutation), timed on a subset and extrapolated.
- ``all``: the default metrics (cka, cka_debiased, rsa_spearman, dcor, shape, knn) in one
  call, and each metric alone (steady state and compile time apart).
- ``rsa_null``: the shared RSA null (13 x 8 RDMs of 165 stimuli, 10,000 permutations):
  ``rsa_permutation_test`` and ``similarity(metrics=["rsa_spearman"])`` against the
  vectorised NumPy loop of ``bench_rsa.py`` (gather through an index table, multiply).

Scores are checked against each baseline before anything is timed.

    python benchmarks/bench_similarity.py [--quick] [--only cka,dcor,all,rsa_null]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import alignjax as aj  # noqa: E402
from benchmarks.harness import Recorder, check_close, parse_args, time_call, time_jax  # noqa: E402

SIZES = dict(n=165, n_layers=13, p=768, n_subjects=8, q=2000, n_perm=1000, rsa_perm=10_000,
             subset=3, shape_perm=20)
QUICK = dict(n=40, n_layers=3, p=64, n_subjects=2, q=80, n_perm=100, rsa_perm=500, subset=3,
             shape_perm=20)
DEFAULT = ("cka", "cka_debiased", "rsa_spearman", "dcor", "shape", "knn")


def make_data(cfg, rng):
    n = cfg["n"]
    latent = rng.normal(size=(n, 20))
    X = np.stack([latent @ rng.normal(size=(20, cfg["p"])) * (l / cfg["n_layers"])
                  + rng.normal(size=(n, cfg["p"])) for l in range(cfg["n_layers"])])
    Y = np.stack([latent @ rng.normal(size=(20, cfg["q"])) + 3 * rng.normal(size=(n, cfg["q"]))
                  for _ in range(cfg["n_subjects"])])
    return X.astype(np.float32), Y.astype(np.float32)


# ---------------------------------------------------------------- baselines (the repos' way)


def np_gram_linear(x):
    return x @ x.T


def np_center(g):
    n = g.shape[0]
    h = np.eye(n) - 1.0 / n
    return h @ g @ h


def np_cka(gx, gy):
    gx, gy = np_center(gx), np_center(gy)
    return np.sum(gx * gy) / (np.linalg.norm(gx) * np.linalg.norm(gy))


def numpy_cka_null(X, Y, perms):
    """Observed (L, S) and null (n_perm, L, S): Gram matrices recomputed per permutation."""
    obs = np.array([[np_cka(np_gram_linear(x), np_gram_linear(y)) for y in Y] for x in X])
    null = np.array([[[np_cka(np_gram_linear(x), np_gram_linear(y[p])) for y in Y] for x in X]
                     for p in perms])
    return obs, null


def torch_cka_null(X, Y, perms):
    import torch

    torch.set_num_threads(2)  # the 2-core machine; more only oversubscribes
    Xt, Yt = torch.as_tensor(X), torch.as_tensor(Y)
    n = X.shape[1]
    H = torch.eye(n) - 1.0 / n

    def cka(Kx, Ky):  # (L, n, n), (n, n) -> (L,)
        A, B = H @ Kx @ H, H @ Ky @ H
        return (A * B).sum((1, 2)) / (A.flatten(1).norm(dim=1) * B.norm())

    with torch.no_grad():
        Kx = Xt @ Xt.transpose(1, 2)
        obs = torch.stack([cka(Kx, y @ y.T) for y in Yt], 1)
        null = torch.stack([torch.stack([cka(Kx, y[p] @ y[p].T) for y in Yt], 1)
                            for p in torch.as_tensor(perms)])
    return obs.numpy(), null.numpy()


def dcor_null(X, Y, perms):
    import dcor

    obs = np.array([[dcor.distance_correlation(x.astype(float), y.astype(float)) for y in Y]
                    for x in X])
    null = np.array([[[dcor.distance_correlation(x.astype(float), y[p].astype(float)) for y in Y]
                      for x in X] for p in perms])
    return obs, null


# ---------------------------------------------------------------- workloads


def _perms(cfg, k):
    return aj.stimulus_permutations(cfg["n"], k, seed=0)


def bench_cka(rec, cfg, X, Y, repeats):
    sub = _perms(cfg, cfg["subset"])
    numpy_cka_null(X[:1], Y[:1], sub[:1])  # warm up (imports, BLAS threads)
    torch_cka_null(X[:1], Y[:1], sub[:1])
    t_np = time_call(lambda: numpy_cka_null(X, Y, sub))
    t_torch = time_call(lambda: torch_cka_null(X, Y, sub))
    scale = (cfg["n_perm"] + 1) / (cfg["subset"] + 1)
    t = time_jax(lambda: aj.similarity(X, Y, metrics=["cka"], n_perm=cfg["n_perm"]).score,
                 repeats=repeats)
    check_close("cka vs numpy", t["output"][0], t_np["output"][0], rtol=2e-3, atol=1e-4)
    check_close("cka vs torch", t["output"][0], t_torch["output"][0], rtol=2e-3, atol=1e-4)
    base = {"numpy_loop": t_np["seconds"] * scale, "torch_cpu": t_torch["seconds"] * scale}
    kw = dict(n_perm=cfg["n_perm"], n_stimuli=cfg["n"])
    rec.add("cka+null", "alignjax", t, baseline_seconds=base, **kw)
    rec.add("cka+null", "numpy_loop (extrapolated)", {"seconds": base["numpy_loop"], "repeats": 0},
            measured_perms=cfg["subset"], **kw)
    rec.add("cka+null", "torch_cpu (extrapolated)", {"seconds": base["torch_cpu"], "repeats": 0},
            measured_perms=cfg["subset"], **kw)


def bench_dcor(rec, cfg, X, Y, repeats):
    sub = _perms(cfg, 1)
    dcor_null(X[:1, :, :4], Y[:1, :, :4], sub[:1])  # warm up (numba compilation)
    t_dc = time_call(lambda: dcor_null(X, Y, sub))
    scale = (cfg["n_perm"] + 1) / 2
    t = time_jax(lambda: aj.similarity(X, Y, metrics=["dcor"], n_perm=cfg["n_perm"]).score,
                 repeats=repeats)
    check_close("dcor vs dcor package", t["output"][0], t_dc["output"][0], rtol=2e-3, atol=1e-4)
    base = {"dcor_package": t_dc["seconds"] * scale}
    rec.add("dcor+null", "alignjax", t, baseline_seconds=base, n_perm=cfg["n_perm"])
    rec.add("dcor+null", "dcor_package (extrapolated)", {"seconds": base["dcor_package"],
                                                         "repeats": 0}, measured_perms=1)


def bench_all(rec, cfg, X, Y, repeats):
    """The default metrics but ``shape`` with the full null in one call, each metric alone,
    and ``shape`` (an SVD per permutation and cell) on ``shape_perm`` permutations,
    extrapolated to ``n_perm``."""
    fast = [m for m in DEFAULT if m != "shape"]
    for metrics in [fast] + [[m] for m in fast]:
        t = time_jax(lambda: aj.similarity(X, Y, metrics=metrics, n_perm=cfg["n_perm"]).score,
                     repeats=repeats)
        rec.add("all-but-shape" if len(metrics) > 1 else f"metric:{metrics[0]}", "alignjax", t,
                metrics=",".join(metrics), n_perm=cfg["n_perm"])
        print(f"{','.join(metrics)}: {t['seconds']:.3f} s (+{t['compile_seconds']:.1f} s compile)",
              flush=True)
    k = cfg["shape_perm"]
    t0 = aj.similarity(X, Y, metrics=["shape"], n_perm=0)  # prepare + observed (compiled)
    t = time_jax(lambda: aj.similarity(X, Y, metrics=["shape"], n_perm=k).score, repeats=repeats)
    t_obs = time_jax(lambda: aj.similarity(X, Y, metrics=["shape"], n_perm=0).score,
                     repeats=repeats)
    per_perm = max(t["seconds"] - t_obs["seconds"], 0.0) / k
    est = {"seconds": t_obs["seconds"] + per_perm * cfg["n_perm"], "repeats": 0}
    rec.add("metric:shape", "alignjax (extrapolated)", est, metrics="shape",
            n_perm=cfg["n_perm"], measured_perms=k, seconds_per_perm=per_perm)
    print(f"shape: {per_perm:.3f} s per permutation; {est['seconds']:.1f} s for "
          f"{cfg['n_perm']} (measured on {k})", flush=True)
    del t0


def bench_rsa_null(rec, cfg, X, Y, repeats):
    from benchmarks.bench_rsa import numpy_permutation_test

    A, B = np.asarray(aj.rdm(X)), np.asarray(aj.rdm(Y))
    n_perm = cfg["rsa_perm"]
    perms = _perms(cfg, n_perm)
    t_np = time_call(lambda: numpy_permutation_test(A, B, perms), repeats=1)
    ref = aj.rsa_permutation_test(A, B, n_perm=n_perm, seed=0)
    t_rsa = time_jax(lambda: aj.rsa_permutation_test(A, B, n_perm=n_perm, seed=0).p_fwe,
                     repeats=repeats)
    t_sim = time_jax(lambda: aj.similarity(X, Y, metrics=["rsa_spearman"], n_perm=n_perm).score,
                     repeats=repeats)
    check_close("rsa_spearman vs rsa_permutation_test", t_sim["output"][0], ref.r, rtol=1e-3,
                atol=1e-4)
    base = {"numpy_index_table": t_np["seconds"]}
    rec.add("rsa_null", "alignjax.rsa_permutation_test", t_rsa, baseline_seconds=base,
            n_perm=n_perm)
    rec.add("rsa_null", "alignjax.similarity[rsa_spearman] (features in)", t_sim,
            baseline_seconds=base, n_perm=n_perm)
    rec.add("rsa_null", "numpy_index_table", t_np, n_perm=n_perm)


def main():
    args = parse_args(__doc__.splitlines()[0])
    rec = Recorder("similarity", args.out, quick=args.quick)
    cfg = QUICK if args.quick else SIZES
    only = set(args.only.split(",")) if args.only else {"cka", "dcor", "all", "rsa_null"}
    X, Y = make_data(cfg, np.random.default_rng(0))
    for name, fn in (("cka", bench_cka), ("dcor", bench_dcor), ("all", bench_all),
                     ("rsa_null", bench_rsa_null)):
        if name in only:
            t0 = time.perf_counter()
            fn(rec, cfg, X, Y, args.repeats)
            print(f"[{name}] done in {time.perf_counter() - t0:.1f} s", flush=True)
    rec.save()


if __name__ == "__main__":
    main()
