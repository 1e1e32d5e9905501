"""Two local processes on jax.distributed give the results of one process."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alignjax import distributed
from alignjax.app.launch import free_port

WORKER = Path(__file__).with_name("_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("XLA_FLAGS",) and not k.startswith("ALIGNJAX_")}
    env.update(JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]), **extra)
    return env


def _run(tmp_path, n):
    base = str(tmp_path / f"n{n}")
    if n == 1:
        subprocess.run([sys.executable, str(WORKER), base], env=_env(), check=True,
                       timeout=300)
        return [dict(np.load(f"{base}.0.npz"))]
    address = f"127.0.0.1:{free_port()}"
    procs = [subprocess.Popen([sys.executable, str(WORKER), base], env=_env(
        ALIGNJAX_COORDINATOR=address, ALIGNJAX_NUM_PROCESSES=str(n),
        ALIGNJAX_PROCESS_ID=str(r))) for r in range(n)]
    try:
        codes = [p.wait(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert codes == [0] * n
    return [dict(np.load(f"{base}.{r}.npz")) for r in range(n)]


@pytest.mark.timeout(900)
def test_two_processes_equal_one(tmp_path):
    (one,) = _run(tmp_path, 1)
    two = _run(tmp_path, 2)
    for rank, res in enumerate(two):
        assert set(res) == set(one)
        for key in one:  # integer counts: p-values equal exactly; solves to rounding
            exact = key.startswith(("rsa_", "gather_")) or key == "enc_layer"
            if exact:
                np.testing.assert_array_equal(res[key], one[key], err_msg=f"{key} rank {rank}")
            else:
                np.testing.assert_allclose(res[key], one[key], rtol=1e-5, atol=1e-6,
                                           err_msg=f"{key} rank {rank}")


def test_blocks_cover_every_item_once():
    for n in (0, 1, 5, 7, 100):
        for size in (1, 2, 3, 8):
            got = np.concatenate([np.arange(n)[distributed.block(n, rank=r, size=size)]
                                  for r in range(size)])
            np.testing.assert_array_equal(got, np.arange(n))


def test_out_of_range_process_id_is_a_clear_error():
    with pytest.raises(distributed.DistributedError, match="out of range"):
        distributed.initialize("127.0.0.1:1", num_processes=2, process_id=2, timeout=1)
