"""RSA benchmark: permutation-tested Spearman RSA and RDM construction.

Workloads (issue 2):
  (a) 165 stimuli, 13 layers x 8 subjects, 10,000 permutations
  (b) 1,000 stimuli, 48 layers x 20 subjects, 1,000 permutations
  (c) correlation RDM of 2,000 stimuli x 4,096 features

Baselines in the same run: a vectorised NumPy permutation test (rank once, gather,
matmul; the same permutations, so p-values must agree exactly), a scipy ``spearmanr``
loop (timed on a subset, extrapolated), rsatoolbox ``compare`` for the observed
statistic and ``calc_rdm`` / scipy ``pdist`` for (c).

    python benchmarks/bench_rsa.py [--quick] [--only a,b,c]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import scipy.stats as ss

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import alignjax as aj  # noqa: E402
from benchmarks.harness import Recorder, check_close, parse_args, time_call, time_jax  # noqa: E402

SIZES = {
    "a": dict(n=165, n_a=13, n_b=8, n_perm=10_000),
    "b": dict(n=1000, n_a=48, n_b=20, n_perm=1_000),
    "c": dict(n=2000, p=4096),
}
QUICK = {
    "a": dict(n=60, n_a=4, n_b=3, n_perm=500),
    "b": dict(n=200, n_a=6, n_b=4, n_perm=100),
    "c": dict(n=300, p=512),
}


def _rdms(rng, n, k, shared=None):
    X = rng.normal(size=(k, n, 32))
    if shared is not None:
        X = X + shared[None]
    return np.asarray(aj.rdm(X))


def numpy_permutation_test(A, B, perms, chunk=64):
    """Vectorised NumPy reference: rank once, z-score, gather permuted pairs, matmul."""
    n = perms.shape[1]
    ii, jj = np.triu_indices(n, 1)

    def z(x):
        r = ss.rankdata(x, axis=1)
        r -= r.mean(1, keepdims=True)
        return r / np.linalg.norm(r, axis=1, keepdims=True)

    ZA, ZB = z(A).astype(np.float32), z(B).astype(np.float32)
    obs = ZA @ ZB.T
    counts = np.zeros(obs.shape)
    fam = np.empty(len(perms))
    for s in range(0, len(perms), chunk):
        ps = perms[s:s + chunk]
        pi, pj = ps[:, ii], ps[:, jj]
        lo, hi = np.minimum(pi, pj), np.maximum(pi, pj)
        idx = n * lo - lo * (lo + 1) // 2 + hi - lo - 1           # (c, n_pairs)
        G = ZB[:, idx] if ZB.shape[0] < ZA.shape[0] else ZA[:, idx]
        if ZB.shape[0] < ZA.shape[0]:
            # permuting B by the inverse permutation is the same test; use the inverse here
            inv = np.argsort(ps, axis=1)
            pi, pj = inv[:, ii], inv[:, jj]
            lo, hi = np.minimum(pi, pj), np.maximum(pi, pj)
            idx = n * lo - lo * (lo + 1) // 2 + hi - lo - 1
            G = ZB[:, idx]                                          # (n_b, c, n_pairs)
            null = (G.reshape(-1, idx.shape[1]) @ ZA.T).reshape(ZB.shape[0], len(ps), -1)
            null = null.transpose(1, 2, 0)
        else:
            null = (G.reshape(-1, idx.shape[1]) @ ZB.T).reshape(ZA.shape[0], len(ps), -1)
            null = null.transpose(1, 0, 2)
        tol = 8 * np.finfo(np.float32).eps * np.maximum(1, np.abs(obs))
        counts += (null >= obs[None] - tol).sum(0)
        fam[s:s + len(ps)] = null.reshape(len(ps), -1).max(1)
    tol = 8 * np.finfo(np.float32).eps * np.maximum(1, np.abs(obs))
    p = (1 + counts) / (1 + len(perms))
    p_fwe = (1 + (fam[:, None, None] >= obs[None] - tol).sum(0)) / (1 + len(perms))
    return obs, p, p_fwe


def scipy_loop_seconds(A, B, perms, n_cells: int = 100) -> float:
    """Seconds for a spearmanr loop over every (permutation, a, b) cell, extrapolated from
    ``n_cells`` cells timed here (the loop body of rsatoolbox-style permutation code)."""
    from scipy.spatial.distance import squareform

    rng = np.random.default_rng(1)
    total = len(perms) * len(A) * len(B)
    t0 = time.perf_counter()
    for _ in range(n_cells):
        p = perms[rng.integers(len(perms))]
        a, b = A[rng.integers(len(A))], B[rng.integers(len(B))]
        ss.spearmanr(squareform(squareform(a)[p][:, p], checks=False), b)
    return (time.perf_counter() - t0) * total / n_cells


def bench_perm(rec, name, cfg, rng, repeats):
    n, n_a, n_b, n_perm = cfg["n"], cfg["n_a"], cfg["n_b"], cfg["n_perm"]
    shared = rng.normal(size=(n, 32))
    A = _rdms(rng, n, n_a, 0.5 * shared)
    B = _rdms(rng, n, n_b, 0.5 * shared)
    perms = aj.stimulus_permutations(n, n_perm, seed=0)
    # agreement first (the first call also compiles: timed, for the compile-time column)
    t0 = time.perf_counter()
    res = aj.rsa_permutation_test(A, B, n_perm=n_perm, seed=0)
    first = time.perf_counter() - t0
    t_np = time_call(lambda: numpy_permutation_test(A, B, perms), repeats=1)
    obs, p, p_fwe = t_np["output"]
    check_close(f"{name}: r", res.r, obs, atol=1e-4)
    check_close(f"{name}: p", res.p, p, atol=2.0 / (n_perm + 1))
    check_close(f"{name}: p_fwe", res.p_fwe, p_fwe, atol=2.0 / (n_perm + 1))
    import rsatoolbox

    want = rsatoolbox.rdm.compare(rsatoolbox.rdm.RDMs(A), rsatoolbox.rdm.RDMs(B), method="spearman")
    check_close(f"{name}: r vs rsatoolbox", res.r, want, atol=1e-4)
    # timing
    t = time_jax(lambda: aj.rsa_permutation_test(A, B, n_perm=n_perm, seed=0).p_fwe,
                 repeats=repeats)
    t["compile_seconds"] = max(first - t["seconds"], 0.0)
    n_cells = 200 if A.shape[1] < 50_000 else 20
    scipy_s = scipy_loop_seconds(A, B, perms, n_cells)
    flops = 2.0 * n_a * n_b * A.shape[1] * n_perm
    rec.add(name, "alignjax", t, flops=flops,
            baseline_seconds={"numpy": t_np["seconds"], "scipy_loop": scipy_s}, **cfg)
    rec.add(name, "numpy_vectorised", t_np, flops=flops, **cfg)
    rec.add(name, "scipy_spearmanr_loop", {"seconds": scipy_s, "repeats": 0},
            extrapolated_from_cells=n_cells, **cfg)


def bench_rdm(rec, name, cfg, rng, repeats):
    from scipy.spatial.distance import pdist

    import rsatoolbox

    X = rng.normal(size=(cfg["n"], cfg["p"])).astype(np.float32)
    t0 = time.perf_counter()
    got = np.asarray(aj.rdm(X))
    first = time.perf_counter() - t0
    t_sp = time_call(lambda: pdist(X, "correlation"), repeats=1)
    check_close(f"{name}: rdm vs pdist", got, t_sp["output"], atol=2e-5)
    ds = rsatoolbox.data.Dataset(X)
    t_rt = time_call(lambda: rsatoolbox.rdm.calc_rdm(ds, method="correlation"), repeats=1)
    check_close(f"{name}: rdm vs rsatoolbox", got, t_rt["output"].get_vectors()[0], atol=2e-5)
    t = time_jax(lambda: aj.rdm(X), repeats=repeats)
    t["compile_seconds"] = max(first - t["seconds"], 0.0)
    # the Gram products alignjax computes: the full square below 512 stimuli or off the
    # CPU, else the 256-row blocks of the upper triangle (each against the columns from its
    # start)
    n, p = cfg["n"], cfg["p"]
    from alignjax.rdm import TRIANGLE_BLOCK, TRIANGLE_MIN, use_triangle

    square = n < TRIANGLE_MIN or not use_triangle()
    cols = n * n if square else sum(
        (min(r0 + TRIANGLE_BLOCK, n) - r0) * (n - r0) for r0 in range(0, n - 1, TRIANGLE_BLOCK))
    flops = 2.0 * cols * p
    rec.add(name, "alignjax", t, flops=flops,
            baseline_seconds={"rsatoolbox": t_rt["seconds"], "scipy_pdist": t_sp["seconds"]}, **cfg)
    rec.add(name, "rsatoolbox_calc_rdm", t_rt, **cfg)
    rec.add(name, "scipy_pdist", t_sp, **cfg)


def main():
    args = parse_args(__doc__)
    rec = Recorder("rsa", args.out, quick=args.quick)
    sizes = QUICK if args.quick else SIZES
    only = set(args.only.split(",")) if args.only else set(sizes)
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        if name in only:
            print(f"workload {name}: {sizes[name]}", flush=True)
            bench_perm(rec, name, sizes[name], rng, args.repeats)
    if "c" in only:
        print(f"workload c: {sizes['c']}", flush=True)
        bench_rdm(rec, "c", sizes["c"], rng, args.repeats)
    rec.save()


if __name__ == "__main__":
    main()
