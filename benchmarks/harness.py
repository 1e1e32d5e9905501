"""Shared benchmark harness: timing, the machine's matmul rate, metadata, JSON-lines output.

Every workload script:

1. builds its problem from a seed;
2. runs alignjax and each CPU baseline on the same data and checks the answers agree
   (``check_close``) before timing anything;
3. times alignjax with :func:`time_jax` (compile time apart from the steady-state median
   over repeats, with ``block_until_ready``) and each baseline with :func:`time_call`;
4. appends one row per (workload, implementation) with :meth:`Recorder.add`, which stamps
   device, versions and git commit, and prints a table at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def parse_args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes (run in CI)")
    p.add_argument("--out", default=str(REPO / "bench-results" / "results.jsonl"),
                   help="JSON-lines file the rows are appended to")
    p.add_argument("--repeats", type=int, default=5, help="steady-state repeats")
    p.add_argument("--only", default=None, help="comma-separated workload names to run")
    return p.parse_args()


def _block(x):
    import jax

    return jax.block_until_ready(x)


def time_jax(fn: Callable[[], Any], *, repeats: int = 5) -> dict:
    """Time a JAX callable: first call (compile + run) and the median of ``repeats`` calls."""
    t0 = time.perf_counter()
    out = _block(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _block(fn())
        times.append(time.perf_counter() - t0)
    steady = statistics.median(times)
    return {"seconds": steady, "compile_seconds": max(first - steady, 0.0),
            "repeats": repeats, "output": out}


def time_call(fn: Callable[[], Any], *, repeats: int = 1) -> dict:
    """Time a plain (NumPy/sklearn) callable: median over ``repeats`` calls."""
    times, out = [], None
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(times), "repeats": len(times), "output": out}


_MATMUL_CACHE: dict[str, float] = {}


def matmul_rate(n: int = 2048, dtype: str = "float32") -> float:
    """The machine's measured matmul rate in FLOP/s (JAX on the default device)."""
    key = f"{n}-{dtype}"
    if key not in _MATMUL_CACHE:
        import jax
        import jax.numpy as jnp

        a = jax.random.normal(jax.random.key(0), (n, n), dtype=dtype)
        # full float32 products, as alignjax's kernels use (not TF32 on a GPU)
        f = jax.jit(lambda x: jnp.matmul(x, x, precision="highest"))
        r = time_jax(lambda: f(a), repeats=5)
        _MATMUL_CACHE[key] = 2 * n**3 / r["seconds"]
    return _MATMUL_CACHE[key]


def check_close(name: str, got, want, *, rtol: float = 1e-4, atol: float = 1e-5) -> float:
    """Raise if alignjax and a baseline disagree; return the max abs difference."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if got.shape != want.shape:
        raise AssertionError(f"{name}: shape {got.shape} != baseline {want.shape}")
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        raise AssertionError(f"{name}: alignjax and baseline disagree (max abs diff {diff:.3g})")
    return diff


def machine_info() -> dict:
    import jax

    def v(pkg):
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    cwd=REPO, capture_output=True, text=True).stdout.strip())
        commit += "+dirty" if dirty else ""
    except Exception:  # pragma: no cover - not a checkout
        commit = None
    dev = jax.devices()[0]
    return {
        "device": f"{dev.platform}:{dev.device_kind}",
        "n_devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "versions": {p: v(p) for p in ("alignjax", "jax", "jaxlib", "numpy", "scipy",
                                       "scikit-learn", "himalaya", "rsatoolbox", "torch")},
        "commit": commit,
        "x64": bool(jax.config.jax_enable_x64),
    }


@dataclass
class Recorder:
    """Collects benchmark rows, writes them as JSON lines and prints a table."""

    bench: str
    out: str
    quick: bool = False
    rows: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.info = machine_info()

    def add(self, workload: str, impl: str, timing: dict, *, flops: float | None = None,
            baseline_seconds: dict[str, float] | None = None, **extra) -> dict:
        row = {"bench": self.bench, "workload": workload, "impl": impl, "quick": self.quick,
               "seconds": timing["seconds"], "compile_seconds": timing.get("compile_seconds"),
               "repeats": timing.get("repeats")}
        if flops is not None:
            rate = matmul_rate()
            row["gflops"] = flops / timing["seconds"] / 1e9
            row["matmul_gflops"] = rate / 1e9
            row["fraction_of_matmul"] = flops / timing["seconds"] / rate
        for name, secs in (baseline_seconds or {}).items():
            row[f"speedup_vs_{name}"] = secs / timing["seconds"]
        row.update(extra)
        row.update(self.info)
        self.rows.append(row)
        return row

    def save(self) -> None:
        path = Path(self.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            for row in self.rows:
                fh.write(json.dumps(row, default=str) + "\n")
        self.print_table()
        print(f"\n{len(self.rows)} rows appended to {path}")

    def print_table(self) -> None:
        cols = ["workload", "impl", "seconds", "compile_seconds", "fraction_of_matmul"]
        extra = sorted({k for r in self.rows for k in r if k.startswith("speedup_vs_")})
        cols += extra
        print("\n" + " | ".join(cols))
        print(" | ".join("---" for _ in cols))
        for r in self.rows:
            cells = []
            for c in cols:
                val = r.get(c)
                cells.append(f"{val:.4g}" if isinstance(val, float) else ("" if val is None else str(val)))
            print(" | ".join(cells))
