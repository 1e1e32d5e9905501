"""Multi-process runs and streamed nulls.

Workloads (``--only ridge_d85k,ridge_m,null``):

(ridge_d85k, ridge_m) ``ridge_cv`` at the sizes of ``bench_ridge.py``'s d85k and m, in one
    process and in two processes of one ``jax.distributed`` run on this machine (started as
    ``alignjax launch`` starts them), each process keeping its own targets' results
    (``gather=False``); the chosen alphas are gathered and checked equal, and the
    overhead of two processes against one is reported (on one machine two processes share
    its cores, so the point is the overhead, not a speed-up).
(null) the streamed permutation null of the shared engine at 1e4 permutations x 1e5
    targets (Pearson r of permuted responses against fixed predictions, with max-T): the
    peak resident memory of the process at 1e3 and 1e4 permutations, which must not grow
    with ``n_perm x n_targets`` (1e4 x 1e5 float32 would be 4 GB).

Usage: ``python benchmarks/bench_distributed.py [--quick] [--only ...]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import REPO, Recorder, parse_args  # noqa: E402

RIDGE = {"ridge_d85k": dict(n=3600, p=6820, t=85_000, n_alphas=20, folds=12),
         "ridge_m": dict(n=3600, p=2000, t=100_000, n_alphas=10, folds=5)}
RIDGE_QUICK = {"ridge_d85k": dict(n=400, p=800, t=2_000, n_alphas=20, folds=12),
               "ridge_m": dict(n=400, p=200, t=5_000, n_alphas=10, folds=5)}
NULL = dict(n=165, t=100_000, n_perms=(1_000, 10_000))
NULL_QUICK = dict(n=60, t=5_000, n_perms=(100, 1_000))


# --------------------------------------------------------------------------- workers


def _ridge_worker(size: dict, out: str) -> None:
    """One process: ridge_cv on the seeded problem; first-call and second-call seconds."""
    import time

    import jax
    import numpy as np

    from alignjax import distributed

    if os.environ.get(distributed.ENV_NUM_PROCESSES):
        distributed.initialize(timeout=120)
    import alignjax as aj

    rng = np.random.default_rng(0)
    X = rng.standard_normal((size["n"], size["p"]), dtype=np.float32)
    Y = X[:, :50] @ rng.standard_normal((50, size["t"]), dtype=np.float32) \
        + 5 * rng.standard_normal((size["n"], size["t"]), dtype=np.float32)
    alphas = np.logspace(-2, 6, size["n_alphas"])
    times = []
    for _ in range(2):  # each process keeps its own targets' results (no 2.3 GB coef gather)
        t0 = time.perf_counter()
        res = jax.block_until_ready(aj.ridge_cv(X, Y, alphas=alphas, folds=size["folds"],
                                                gather=False))
        times.append(time.perf_counter() - t0)
    alpha = distributed.gather_blocks(np.asarray(res.best_alpha), size["t"])
    if distributed.is_main():
        np.save(out + ".alpha.npy", alpha)
        Path(out).write_text(json.dumps({"first": times[0], "second": times[1]}))
    distributed.shutdown()


def _null_worker(size: dict, n_perm: int, out: str) -> None:
    """One process: the streamed null; its peak resident memory."""
    import resource

    import jax
    import jax.numpy as jnp
    import numpy as np

    from alignjax.permutation import device_permutation_test

    rng = np.random.default_rng(0)
    pred = rng.standard_normal((size["n"], size["t"])).astype(np.float32)
    Y = (0.05 * pred + rng.standard_normal(pred.shape)).astype(np.float32)
    z = lambda a: (a - a.mean(0)) / np.linalg.norm(a - a.mean(0), axis=0)  # noqa: E731
    P, Z = jnp.asarray(z(pred)), jnp.asarray(z(Y))
    observed = (P * Z).sum(0)
    res = device_permutation_test(_permuted_r, (P, Z, jax.random.PRNGKey(0)), observed,
                                  n_perm=n_perm, chunk_size=8)
    jax.block_until_ready(res.p)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB (ru_maxrss: KiB)
    Path(out).write_text(json.dumps({"peak_gib": peak, "min_p_fwe": float(res.p_fwe.min())}))


def _permuted_r(data, ids):
    """Pearson r of each target's permuted responses with its predictions: (c, n_targets)."""
    import jax
    import jax.numpy as jnp

    from alignjax.permutation import fold_in_permutations

    P, Z, key = data
    perms = fold_in_permutations(key, ids, Z.shape[0])
    onehot = jax.nn.one_hot(perms, Z.shape[0], dtype=Z.dtype)      # (c, n, n): a matmul,
    return jnp.einsum("cij,jt,it->ct", onehot, Z, P)                 # not a row gather


# --------------------------------------------------------------------------- driver


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNJAX_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _run_procs(args: list[str], n: int) -> None:
    from alignjax.app.launch import free_port

    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *args]
    if n == 1:
        subprocess.run(cmd, env=_env(), check=True)
        return
    address = f"127.0.0.1:{free_port()}"
    procs = [subprocess.Popen(cmd, env=_env(ALIGNJAX_COORDINATOR=address,
                                            ALIGNJAX_NUM_PROCESSES=str(n),
                                            ALIGNJAX_PROCESS_ID=str(r))) for r in range(n)]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise RuntimeError(f"worker processes exited with {codes}")


def bench_ridge(rec: Recorder, name: str, size: dict, tmp: Path) -> None:
    import numpy as np

    res = {}
    for n in (1, 2):
        out = str(tmp / f"{name}-{n}.json")
        _run_procs(["ridge", json.dumps(size), out], n)
        res[n] = json.loads(Path(out).read_text())
        res[n]["alpha"] = np.load(out + ".alpha.npy")
    if not np.array_equal(res[1]["alpha"], res[2]["alpha"]):
        frac = float(np.mean(res[1]["alpha"] != res[2]["alpha"]))
        raise AssertionError(f"{name}: 2 processes chose other alphas for {frac:.2%} of targets")
    workload = f"{name}:{size['n']}x{size['p']} t={size['t']}"
    for n in (1, 2):
        timing = {"seconds": res[n]["second"],
                  "compile_seconds": max(res[n]["first"] - res[n]["second"], 0.0), "repeats": 1}
        rec.add(workload, f"alignjax ridge_cv, {n} process(es)", timing,
                overhead_vs_1_process=res[n]["second"] / res[1]["second"])


def bench_null(rec: Recorder, size: dict, tmp: Path) -> None:
    for n_perm in size["n_perms"]:
        out = str(tmp / f"null-{n_perm}.json")
        import time

        t0 = time.perf_counter()
        _run_procs(["null", json.dumps(size), str(n_perm), out], 1)
        secs = time.perf_counter() - t0
        got = json.loads(Path(out).read_text())
        full = n_perm * size["t"] * 4 / 2**30
        rec.add(f"null:n={size['n']} t={size['t']} n_perm={n_perm}", "streamed null (engine)",
                {"seconds": secs, "compile_seconds": None, "repeats": 1},
                peak_rss_gib=got["peak_gib"], materialised_null_gib=full)
        print(f"n_perm={n_perm}: peak RSS {got['peak_gib']:.2f} GiB "
              f"(a materialised null would be {full:.2f} GiB)")


def main() -> None:
    import tempfile

    args = parse_args(__doc__.splitlines()[0])
    only = set((args.only or "ridge_d85k,ridge_m,null").split(","))
    rec = Recorder("distributed", args.out, quick=args.quick)
    ridge = RIDGE_QUICK if args.quick else RIDGE
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("ridge_d85k", "ridge_m"):
            if name in only:
                print(f"--- workload {name}", flush=True)
                bench_ridge(rec, name, ridge[name], Path(tmp))
        if "null" in only:
            print("--- workload null", flush=True)
            bench_null(rec, NULL_QUICK if args.quick else NULL, Path(tmp))
    rec.save()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        kind, size, *rest = sys.argv[2:]
        if kind == "ridge":
            _ridge_worker(json.loads(size), rest[0])
        else:
            _null_worker(json.loads(size), int(rest[0]), rest[1])
    else:
        main()
