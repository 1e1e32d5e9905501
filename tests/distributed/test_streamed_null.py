"""The permutation engine's null is streamed: peak memory does not grow with n_perm x n_cells."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_distributed.py"


def _peak_gib(tmp_path, n_perm: int, size: dict) -> float:
    out = tmp_path / f"null-{n_perm}.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, str(BENCH), "--worker", "null", json.dumps(size),
                    str(n_perm), str(out)], env=env, check=True, timeout=600)
    return json.loads(out.read_text())["peak_gib"]


@pytest.mark.timeout(900)
def test_peak_memory_is_bounded_as_n_perm_grows(tmp_path):
    size = dict(n=30, t=20_000)
    small = _peak_gib(tmp_path, 50, size)
    large = _peak_gib(tmp_path, 1_000, size)
    materialised = 1_000 * size["t"] * 4 / 2**30  # 76 MiB of float32 null
    assert large - small < 0.5 * materialised, (small, large)
