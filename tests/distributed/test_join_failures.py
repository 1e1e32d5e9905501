"""A process that never joins, and a process 0 killed mid-run, through real processes.

The stalled process is made by a ``sitecustomize.py`` on its PYTHONPATH that sleeps at
interpreter start when ``ALIGNJAX_PROCESS_ID`` is ``STALL_RANK`` (no hook in alignjax).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from alignjax.app.launch import free_port

ROOT = Path(__file__).resolve().parents[2]
STALL = """import os, time
if os.environ.get("ALIGNJAX_PROCESS_ID") == os.environ.get("STALL_RANK", "none"):
    time.sleep(120)
"""


def _env(tmp_path, **extra):
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(STALL)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS" and not k.startswith("ALIGNJAX_")}
    env.update(JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES="1", TMPDIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join([str(ROOT), str(hook), env.get("PYTHONPATH", "")]),
               **extra)
    return env


def _cli(args, env, timeout=120):
    return subprocess.run([sys.executable, "-m", "alignjax.app.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(200)
def test_srun_style_missing_process_is_named_not_a_jax_abort(tmp_path):
    # process 0 of 2 started alone (as when srun's process 1 never starts)
    env = _env(tmp_path, ALIGNJAX_COORDINATOR=f"127.0.0.1:{free_port()}",
               ALIGNJAX_NUM_PROCESSES="2", ALIGNJAX_PROCESS_ID="0",
               ALIGNJAX_DISTRIBUTED_TIMEOUT="3")
    res = _cli(["info"], env)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "process 1 of 2 did not join within 3 s" in res.stderr
    assert "Check failure" not in res.stderr
    # process 1 started alone: it names process 0
    env.update(ALIGNJAX_PROCESS_ID="1")
    res = _cli(["info"], env)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "process 1 of 2 could not reach process 0" in res.stderr


@pytest.mark.timeout(200)
def test_launch_names_the_process_that_did_not_join_and_stops_the_others(tmp_path):
    t0 = time.monotonic()
    res = _cli(["launch", "-n", "2", "--join-timeout", "3", "--", "info"],
               _env(tmp_path, STALL_RANK="1"))
    assert res.returncode == 2, res.stderr[-2000:]
    assert "process 1 of 2 did not join within 3 s" in res.stderr
    assert "Check failure" not in res.stderr
    assert time.monotonic() - t0 < 60  # not the 120 s stall: the others were stopped


@pytest.mark.timeout(300)
def test_launch_reports_process_0_killed_by_sigkill_with_its_log(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    ids = [f"s{i:03d}" for i in range(n)]
    (tmp_path / "features").mkdir()
    np.save(tmp_path / "features" / "conv.npy", rng.standard_normal((n, 8)))
    (tmp_path / "features" / "stimulus_ids.txt").write_text("\n".join(ids) + "\n")
    np.savez(tmp_path / "brain.npz", stimulus_ids=np.array(ids), sub01=rng.standard_normal((n, 5)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "alignjax.app.cli", "launch", "-n", "2", "--join-timeout", "60",
         "--", "rsa", "--features", str(tmp_path / "features"), "--brain",
         str(tmp_path / "brain.npz"), "--n-perm", "5000000", "--out", str(tmp_path / "out")],
        env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        marker = None
        while marker is None and time.monotonic() < deadline and proc.poll() is None:
            found = list(tmp_path.glob("alignjax-launch-*/joined/rank-0.joined"))
            marker = found[0] if found else None
            time.sleep(0.1)
        assert marker is not None, "process 0 never joined"
        time.sleep(1.0)  # mid-run: joined, computing
        os.kill(int(marker.read_text()), signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, err[-2000:]
    assert "process 0 of 2 was killed by SIGKILL; its log ends:" in err
    assert "Gloo" in err.split("its log ends:")[1]  # process 0's own output, from its log
