"""Sharded extraction: shards merged (after an interruption too) equal one process, byte for byte."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from alignjax import InvalidOptionError, StoreError
from alignjax.app.cli import main
from extractors import shards
from extractors.run import extract

HERE = Path(__file__).parent
REPO = HERE.parents[1]
SLOW = "torch:slow_model:build"


def _env(**extra):
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    return env


def _snapshot(path: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def _n_done(manifest: Path) -> int:
    try:
        m = json.loads(manifest.read_text())
        return bin(int(m["layers"]["conv"]["done"], 16)).count("1") if m["layers"] else 0
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def test_two_shards_merge_byte_identical_after_a_killed_shard(stim_copy, tmp_path):
    cli = [sys.executable, "-m", "alignjax.app.cli", "extract", "--model", SLOW, "--stimuli",
           str(stim_copy), "--batch-size", "2", "--quiet", "--sync-every", "0"]
    fast = _env(SLOW_MODEL_SLEEP="0")
    ref, out = tmp_path / "ref", tmp_path / "sharded"
    subprocess.run(cli + ["--out", str(ref)], env=fast, check=True, capture_output=True)
    subprocess.run(cli + ["--out", str(out), "--shard", "0/2"], env=fast, check=True,
                   capture_output=True)
    # shard 1 is killed mid-run: its written rows are kept, the rest is computed at merge
    proc = subprocess.Popen(cli + ["--out", str(out), "--shard", "1/2"], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = shards.shard_dir(out, 1, 2) / "manifest.json"
    deadline = time.time() + 120
    while time.time() < deadline and _n_done(manifest) < 2:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= _n_done(manifest) < 8, "shard 1 finished before it could be killed"
    assert not (out / "manifest.json").exists()
    r = subprocess.run(cli + ["--out", str(out)], env=fast, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not (out / shards.SHARDS).exists()
    assert _snapshot(out) == _snapshot(ref)


def test_shards_with_other_settings_are_refused(stim_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("SLOW_MODEL_SLEEP", "0")
    out = tmp_path / "st"
    extract(SLOW, stim_copy, out, batch_size=2, shard=(0, 2), progress=False)
    with pytest.raises(StoreError, match="batch_size"):
        extract(SLOW, stim_copy, out, batch_size=4, shard=(0, 2), progress=False)
    # a shard written with other settings is never mixed into the store
    other = tmp_path / "other"
    extract(SLOW, stim_copy, other, batch_size=2, pooling="max", shard=(1, 2), progress=False)
    shards.shard_dir(other, 1, 2).rename(shards.shard_dir(out, 1, 2))
    with pytest.raises(StoreError, match="different settings") as refused:
        extract(SLOW, stim_copy, out, batch_size=2, progress=False)
    # the message names the setting that differs, with both values
    assert "settings.pooling: 'max' vs 'mean'" in str(refused.value)


def test_shard_index_out_of_range(stim_copy, tmp_path, capsys):
    with pytest.raises(InvalidOptionError, match="out of range"):
        extract(SLOW, stim_copy, tmp_path / "a", shard=(2, 2), progress=False)
    rc = main(["extract", "--model", SLOW, "--stimuli", str(stim_copy), "--out",
               str(tmp_path / "b"), "--shard", "3/2", "--quiet"])
    assert rc == 2 and "out of range" in capsys.readouterr().err
    rc = main(["extract", "--model", SLOW, "--stimuli", str(stim_copy), "--out",
               str(tmp_path / "b"), "--shard", "x", "--quiet"])
    assert rc == 2 and "I/N" in capsys.readouterr().err


@pytest.mark.timeout(600)
def test_slurm_array_through_submitit_local_executor(stim_copy, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("SLOW_MODEL_SLEEP", "0")
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    ref = extract(SLOW, stim_copy, tmp_path / "ref", batch_size=2, progress=False)
    rc = main(["extract", "--model", SLOW, "--stimuli", str(stim_copy), "--out",
               str(tmp_path / "slurm"), "--batch-size", "2", "--slurm", "--jobs", "2",
               "--cluster", "local", "--quiet"])
    assert rc == 0
    assert _snapshot(tmp_path / "slurm") == _snapshot(ref.path)
    np.testing.assert_array_equal(np.load(tmp_path / "slurm" / "conv.npy"), ref["conv"])
