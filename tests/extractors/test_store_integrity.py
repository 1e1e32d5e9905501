"""Store integrity through ``alignjax extract``: the weights a store was extracted with, one
writer per store, durable rows (issue 26, items 1-3)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from alignjax.app.cli import main
from alignjax.io import LOCK_NAME, FeatureStore, StoreWriter, lock_holder
from extractors.spec import HUB_COMMIT, weight_hashes

from extract_helpers import write_tone

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _cli(*args):
    return [sys.executable, "-m", "alignjax.app.cli", "extract", *args]


def _snapshot(path: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def _n_done(manifest: Path) -> int:
    try:
        m = json.loads(manifest.read_text())
        info = next(iter(m["layers"].values()), None)
    except (OSError, ValueError, KeyError):
        return 0
    return 0 if info is None else bin(int(info["done"], 16)).count("1")


def _kill_after(proc, manifest: Path, rows: int) -> int:
    deadline = time.time() + 120
    while time.time() < deadline and _n_done(manifest) < rows and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return _n_done(manifest)


@pytest.fixture
def clips(tmp_path):
    d = tmp_path / "clips"
    d.mkdir()
    for k in range(4):
        write_tone(d / f"t{k}.wav", freq=300.0 + 170 * k, seconds=0.25)
    return d


@pytest.fixture
def slow_copy(tmp_path):
    """A copy of slow_model.py under another module name, whose source a test may change."""
    d = tmp_path / "mods"
    d.mkdir()
    shutil.copy(HERE / "slow_model.py", d / "slowcopy.py")
    return d


def test_replaced_hf_weights_are_refused_then_force_reextracts(tiny_dir, clips, tmp_path,
                                                               capsys):
    """Item 1, complete store: a replaced model.safetensors is named, old and new hash."""
    model = tmp_path / "model"
    shutil.copytree(tiny_dir("wav2vec2"), model)
    other = tiny_dir("wav2vec2", seed=1)
    out = tmp_path / "st"
    args = ["extract", "--model", f"hf:{model}", "--stimuli", str(clips), "--quiet"]
    assert main(args + ["--out", str(out)]) == 0
    old = weight_hashes(f"hf:{model}")["model.safetensors"]
    assert FeatureStore(out).settings["request"]["weights"]["model.safetensors"] == old
    shutil.copy(other / "model.safetensors", model / "model.safetensors")
    new = weight_hashes(f"hf:{model}")["model.safetensors"]
    before = _snapshot(out)
    capsys.readouterr()
    assert main(args + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "complete store" in err and "other weights" in err
    assert f"model.safetensors was {old[:12]}, now {new[:12]}" in err and "--force" in err
    assert _snapshot(out) == before  # refused: nothing touched
    assert main(args + ["--out", str(out), "--force"]) == 0
    ref = tmp_path / "ref"
    assert main(["extract", "--model", f"hf:{other}", "--stimuli", str(clips), "--quiet",
                 "--out", str(ref)]) == 0
    got, want = FeatureStore(out), FeatureStore(ref)
    for layer in want.layers:
        np.testing.assert_array_equal(got[layer], want[layer])
    assert FeatureStore(out).settings["request"]["weights"]["model.safetensors"] == new


def test_killed_then_source_changed_resume_is_refused(stim_copy, slow_copy, tmp_path,
                                                      monkeypatch):
    """Item 1, killed and resumed: a ``torch:`` module whose source changed is refused."""
    monkeypatch.syspath_prepend(str(slow_copy))
    env = _env(PYTHONPATH=os.pathsep.join([str(slow_copy), str(REPO), str(HERE)]))
    args = ["--model", "torch:slowcopy:build", "--stimuli", str(stim_copy), "--batch-size", "2",
            "--sync-every", "0", "--quiet"]
    out = tmp_path / "st"
    proc = subprocess.Popen(_cli(*args, "--out", str(out)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    n = _kill_after(proc, out / "manifest.json", 4)
    assert 4 <= n < 16, "the run finished before it could be killed"
    src = slow_copy / "slowcopy.py"
    old = weight_hashes("torch:slowcopy:build")["slowcopy"]
    src.write_text(src.read_text().replace("* 0.1)", "* 0.2)"))
    fast = {**env, "SLOW_MODEL_SLEEP": "0"}
    r = subprocess.run(_cli(*args, "--out", str(out)), env=fast, capture_output=True, text=True)
    assert r.returncode == 2
    assert "interrupted store" in r.stderr and f"slowcopy was {old[:12]}, now " in r.stderr
    assert _n_done(out / "manifest.json") == n  # nothing written
    r = subprocess.run(_cli(*args, "--out", str(out), "--force"), env=fast, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    ref = tmp_path / "ref"
    subprocess.run(_cli(*args, "--out", str(ref)), env=fast, check=True, capture_output=True)
    assert _snapshot(out) == _snapshot(ref)


def test_second_writer_refused_at_once_and_stale_lock_taken_over(stim_copy, tmp_path):
    """Item 2: two real writer processes; then a SIGKILLed writer's lock is taken over and
    its store resumed to the bytes of an uninterrupted run (item 3)."""
    args = ["--model", "torch:slow_model:build", "--stimuli", str(stim_copy), "--batch-size",
            "2", "--sync-every", "0", "--quiet"]
    out, gate = tmp_path / "st", tmp_path / "go"
    # the first writer holds the store, its model held (slow_model's SLOW_MODEL_HOLD)
    first = subprocess.Popen(_cli(*args, "--out", str(out)),
                             env=_env(SLOW_MODEL_SLEEP="0", SLOW_MODEL_HOLD=str(gate)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and lock_holder(out) is None:
        time.sleep(0.01)
    assert lock_holder(out)["pid"] == first.pid
    second = subprocess.run(_cli(*args, "--out", str(out)), env=_env(SLOW_MODEL_SLEEP="0"),
                            capture_output=True, text=True)
    assert first.poll() is None  # refused at once: it did not wait for the first
    assert second.returncode == 2
    assert (f"store {out} is being written by process {first.pid} on host "
            f"{socket.gethostname()} since ") in second.stderr
    assert "Traceback" not in second.stderr
    assert _n_done(out / "manifest.json") == 0  # the first is still held
    gate.touch()
    assert first.wait(timeout=120) == 0, first.stderr.read()
    ref = FeatureStore(out)
    ref.verify()
    assert ref.complete and not (out / LOCK_NAME).exists()
    ref_bytes = _snapshot(out)
    # a writer killed mid-run leaves its lock record; the next one takes it over
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*args, "--out", str(killed)), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    n = _kill_after(proc, killed / "manifest.json", 4)
    assert 4 <= n < 16, "the run finished before it could be killed"
    assert json.loads((killed / LOCK_NAME).read_text())["pid"] == proc.pid
    r = subprocess.run(_cli(*args, "--out", str(killed)), env=_env(SLOW_MODEL_SLEEP="0"),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"taking over the lock left by process {proc.pid}" in r.stderr
    assert _snapshot(killed) == ref_bytes


def test_kill_with_default_sync_resumes_to_the_same_bytes(stim_copy, tmp_path):
    """Item 3 at the default checkpoint interval (1 s): killed after a checkpoint, the rows
    written after it are recomputed; the store ends with the uninterrupted bytes."""
    args = ["--model", "torch:slow_model:build", "--stimuli", str(stim_copy), "--batch-size",
            "1", "--quiet"]
    ref, out = tmp_path / "ref", tmp_path / "st"
    fast = _env(SLOW_MODEL_SLEEP="0")
    subprocess.run(_cli(*args, "--out", str(ref)), env=fast, check=True, capture_output=True)
    proc = subprocess.Popen(_cli(*args, "--out", str(out)), env=_env(SLOW_MODEL_SLEEP="0.2"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    n = _kill_after(proc, out / "manifest.json", 1)
    assert 1 <= n < 16
    r = subprocess.run(_cli(*args, "--out", str(out)), env=fast, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _snapshot(out) == _snapshot(ref)


def test_checkpoint_order_rows_then_manifest_then_directory(tmp_path, monkeypatch):
    """Item 3: the done-record reaches disk only after the rows it marks done."""
    events = []
    real_fsync, real_replace, real_flush = os.fsync, os.replace, np.memmap.flush

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        events.append(("fsync", Path(target).name))
        return real_fsync(fd)

    def replace(a, b):
        events.append(("rename", Path(b).name))
        return real_replace(a, b)

    def flush(self):
        events.append(("msync", Path(self.filename).name))
        return real_flush(self)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(np.memmap, "flush", flush)
    path = tmp_path / "st"
    w = StoreWriter(path, spec="m", stimulus_ids=["a", "b", "c"], sync_every=0)
    events.clear()
    w.write_rows({0: {"x": np.ones(3, np.float32)}})  # first write: the file is created
    events.clear()
    w.write_rows({1: {"x": np.full(3, 2, np.float32)}})
    assert [e for e in events if e[0] != "fsync" or e[1] != "x.npy"] == [
        ("msync", "x.npy"), ("fsync", events[1][1]), ("rename", "manifest.json"),
        ("fsync", "st")]
    assert events[1][1].startswith("manifest.json.tmp.")
    assert FeatureStore(path).done_mask("x").tolist() == [True, True, False]
    # with a checkpoint interval, rows between checkpoints are not marked done on disk
    w.close()
    w = StoreWriter(path, spec="m", stimulus_ids=["a", "b", "c"], sync_every=3600)
    events.clear()
    w.write_rows({2: {"x": np.full(3, 3, np.float32)}})
    assert events == [] and FeatureStore(path).done_mask("x").tolist() == [True, True, False]
    w.close()  # a checkpoint: rows first, then the manifest
    assert [e[0] for e in events][:1] == ["msync"] and ("rename", "manifest.json") in events
    assert FeatureStore(path).done_mask("x").all()


def test_finish_verifies_the_store_on_disk(tmp_path):
    """Item 2: success only for a complete store whose files match the manifest."""
    path = tmp_path / "st"
    with StoreWriter(path, spec="m", stimulus_ids=["a", "b"]) as w:
        w.write_rows({0: {"x": np.ones(4, np.float32)}, 1: {"x": np.zeros(4, np.float32)}})
        store = w.finish()
    store.verify()
    raw = bytearray((path / "x.npy").read_bytes())
    raw[-1] ^= 0xFF
    (path / "x.npy").write_bytes(bytes(raw))
    with pytest.raises(Exception, match=r"layer 'x' .*x\.npy has SHA-256 .*corrupt"):
        FeatureStore(path).verify()


def test_one_writer_per_store_within_a_process(tmp_path):
    path = tmp_path / "st"
    w = StoreWriter(path, spec="m", stimulus_ids=["a"])
    with pytest.raises(Exception, match="another StoreWriter of this process"):
        StoreWriter(path, spec="m", stimulus_ids=["a"])
    w.close()
    StoreWriter(path, spec="m", stimulus_ids=["a"]).close()
    assert not (path / LOCK_NAME).exists()


def test_hub_id_records_the_cached_commit(tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = tmp_path / "models--someorg--somemodel" / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (tmp_path / "models--someorg--somemodel" / "refs").mkdir()
    (tmp_path / "models--someorg--somemodel" / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert weight_hashes("hf:someorg/somemodel") == {HUB_COMMIT: commit}
    assert weight_hashes("hf:someorg/notcached") == {}
