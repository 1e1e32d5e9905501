"""The extraction loop and the feature store it writes: resumption, refusal, bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from alignjax import InvalidOptionError, StoreError
from alignjax.app.cli import main
from extractors.audio import AudioError
from extractors.run import extract, plan_batches
from extractors.spec import LayerError

from extract_helpers import SR, write_tone

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SLOW = "torch:slow_model:build"


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    return env


def _cli(*args):
    return [sys.executable, "-m", "alignjax.app.cli", *args]


def _snapshot(path: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_plan_batches_groups_equal_lengths_only():
    lengths = [100, 200, 100, None, 100, 200]
    assert plan_batches(lengths, 2) == [[0, 2], [4], [1, 5], [3]]
    assert plan_batches(lengths, 8) == [[0, 2, 4], [1, 5], [3]]


def test_mel_store_matches_direct_computation(synth_set, tmp_path):
    from extractors.audio import list_stimuli, load_audio
    from extractors.spectral import log_mel

    store = extract("spectral:mel", synth_set, tmp_path / "st", progress=False)
    stims = list_stimuli(synth_set)
    assert store.stimulus_ids == [s.id for s in stims]
    assert store.complete and store.layers == ["logmel"]
    x = store["logmel"]
    assert x.shape == (16, 64) and x.dtype == np.float32
    want = np.stack([log_mel(load_audio(s.path, sample_rate=SR)).mean(0) for s in stims])
    np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-4)
    m = store.manifest
    assert m["settings"]["sample_rate"] == SR and m["settings"]["pooling"] == "mean"
    assert "librosa" in m["versions"]


@pytest.mark.parametrize("pooling", ["max", "first", "stats", "none"])
def test_poolings(stim_copy, tmp_path, pooling):
    from extractors.audio import load_audio
    from extractors.spectral import mfcc

    store = extract("spectral:mfcc", stim_copy, tmp_path / pooling, pooling=pooling,
                    progress=False, duration=0.25 if pooling == "none" else None)
    x = np.asarray(store["mfcc"])
    first = sorted(stim_copy.glob("*.wav"))[0]
    w = load_audio(first, sample_rate=SR, duration=0.25 if pooling == "none" else None)
    f = mfcc(w)
    want = {"max": f.max(0), "first": f[0], "stats": np.concatenate([f.mean(0), f.std(0)]),
            "none": f}[pooling]
    np.testing.assert_allclose(x[0], want, rtol=1e-5, atol=1e-3)
    if pooling == "none":
        assert x.shape == (16, 26, 20)
        s = store.settings
        assert s["n_frames"] == {"mfcc": 26} and s["frame_rate_hz"]["mfcc"] == 100.0


def test_pooling_none_pads_to_longest(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    write_tone(d / "a.wav", seconds=0.3)
    write_tone(d / "b.wav", seconds=0.5)
    store = extract("spectral:mel", d, tmp_path / "st", pooling="none", progress=False)
    x = np.asarray(store["logmel"])
    assert x.shape == (2, 51, 64)
    assert not x[0, 31:].any() and x[0, :31].all()
    # the padding is zeros, not silence (-100 dB): the store says which frames are real
    np.testing.assert_array_equal(store.n_valid_frames("logmel"), [31, 51])
    mask = store.valid_frames("logmel")
    assert mask.shape == (2, 51) and mask[0, :31].all() and not mask[0, 31:].any()
    assert mask[1].all()
    store2 = extract("spectral:mel", d, tmp_path / "st2", pooling="none", n_frames=10,
                     progress=False)
    np.testing.assert_array_equal(store2["logmel"], x[:, :10])
    np.testing.assert_array_equal(store2.n_valid_frames("logmel"), [10, 10])


def test_float16_and_batching_never_pads(stim_copy, tmp_path):
    # different lengths in one folder: batches must hold equal lengths only
    write_tone(stim_copy / "zz_long.wav", seconds=0.8)
    a = extract(SLOW, stim_copy, tmp_path / "a", batch_size=4, progress=False)
    b = extract(SLOW, stim_copy, tmp_path / "b", batch_size=1, progress=False)
    np.testing.assert_allclose(a["proj"], b["proj"], rtol=1e-5, atol=1e-6)
    h = extract(SLOW, stim_copy, tmp_path / "h", batch_size=4, dtype="float16", progress=False)
    assert h["proj"].dtype == np.float16
    np.testing.assert_allclose(h["proj"], a["proj"], rtol=2e-3, atol=2e-3)
    assert h.manifest["layers"]["proj"]["dtype"] == "<f2"


def test_rerun_of_finished_store_does_nothing(synth_set, tmp_path):
    out = tmp_path / "st"
    extract("spectral:mel", synth_set, out, progress=False)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()}
    time.sleep(0.01)
    extract("spectral:mel", synth_set, out, progress=False)
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()}
    assert before == after


def test_refuses_other_model_stimuli_or_settings(synth_set, stim_copy, tmp_path):
    out = tmp_path / "st"
    extract("spectral:mel", synth_set, out, progress=False)
    snap = _snapshot(out)
    with pytest.raises(StoreError, match="different model"):
        extract("spectral:mfcc", synth_set, out, progress=False)
    (stim_copy / sorted(os.listdir(stim_copy))[0]).unlink()
    with pytest.raises(StoreError, match="stimulus set"):
        extract("spectral:mel", stim_copy, out, progress=False)
    with pytest.raises(StoreError, match="other settings"):
        extract("spectral:mel", synth_set, out, pooling="max", progress=False)
    assert _snapshot(out) == snap
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "keep.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty"):
        extract("spectral:mel", synth_set, junk, progress=False)
    assert (junk / "keep.txt").read_text() == "mine"


def test_same_ids_different_files_are_refused(stim_copy, tmp_path):
    out = tmp_path / "st"
    extract("spectral:mel", stim_copy, out, progress=False)
    first = sorted(stim_copy.glob("*.wav"))[0]
    write_tone(first, seconds=0.9)  # same id, other content (size differs)
    with pytest.raises(StoreError, match="other settings"):
        extract("spectral:mel", stim_copy, out, progress=False)


def test_unknown_layer_fails_before_extraction(synth_set, tmp_path):
    with pytest.raises(LayerError, match="available layers.*conv.*proj"):
        extract(SLOW, synth_set, tmp_path / "st", layers=["nope"], progress=False)
    assert not (tmp_path / "st").exists()


def _bad_folder(root: Path) -> Path:
    d = root / "bad"
    d.mkdir()
    write_tone(d / "a_ok.wav", seconds=0.5)
    (d / "b_empty.wav").write_bytes(b"")
    (d / "c_text.wav").write_text("not audio " * 50)
    full = write_tone(d / "d_ok.wav", seconds=0.5).read_bytes()
    (d / "e_trunc.wav").write_bytes(full[:30])
    write_tone(d / "f_short.wav", seconds=0.01)  # 160 samples < 400-sample receptive field
    write_tone(d / "g_stereo.wav", seconds=0.5, channels=2)
    write_tone(d / "h_8k.wav", seconds=0.5, sr=8000)
    sf.write(str(d / "i_silent.wav"), np.zeros(SR // 2), SR)
    return d


def test_on_error_skip_lists_skipped(tmp_path):
    d = _bad_folder(tmp_path)
    with pytest.warns(UserWarning, match="silent"):
        store = extract(SLOW, d, tmp_path / "st", on_error="skip", progress=False)
    assert set(store.skipped) == {"b_empty", "c_text", "e_trunc", "f_short"}
    assert "empty" in store.skipped["b_empty"] and "shorter" in store.skipped["f_short"]
    x = store.load("proj", drop_skipped=True)
    assert store.valid_ids() == ["a_ok", "d_ok", "g_stereo", "h_8k", "i_silent"]
    assert x.shape == (5, 6) and np.isfinite(x).all()
    np.testing.assert_allclose(x[0], x[1])  # a_ok and d_ok are the same tone


def test_on_error_stop_keeps_written_rows(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    for k in range(3):
        write_tone(d / f"ok{k}.wav", freq=300 + 100 * k, seconds=0.5)
    (d / "trunc.wav").write_bytes((d / "ok0.wav").read_bytes()[:30])  # unknown length: last
    out = tmp_path / "st"
    with pytest.raises(AudioError, match="trunc"):
        extract(SLOW, d, out, on_error="stop", batch_size=1, progress=False)
    m = json.loads((out / "manifest.json").read_text())
    assert not m["complete"] and m["layers"]["proj"]["done"] == "e0"  # rows 0-2 done
    written = np.load(out / "proj.npy")[:3].copy()
    # rerun skipping bad files: resumes, keeps what was written, lists the skipped file
    store = extract(SLOW, d, out, on_error="skip", batch_size=1, progress=False)
    assert store.skipped.keys() == {"trunc"} and "cannot be decoded" in store.skipped["trunc"]
    np.testing.assert_array_equal(store.load("proj", drop_skipped=True), written)


def test_bad_options(synth_set, tmp_path):
    for kw, err in [({"pooling": "median"}, InvalidOptionError),
                    ({"dtype": "int8"}, InvalidOptionError),
                    ({"batch_size": 0}, InvalidOptionError),
                    ({"duration": -1.0}, InvalidOptionError),
                    ({"on_error": "ignore"}, InvalidOptionError)]:
        with pytest.raises(err):
            extract("spectral:mel", synth_set, tmp_path / "x", progress=False, **kw)
    with pytest.raises(InvalidOptionError, match="unknown model spec"):
        extract("keras:foo", synth_set, tmp_path / "x", progress=False)
    if not _has_cuda():
        with pytest.raises(InvalidOptionError, match="cuda"):
            extract("spectral:mel", synth_set, tmp_path / "x", device="cuda", progress=False)


def _has_cuda():
    import torch

    return torch.cuda.is_available()


def test_duplicate_ids_through_cli(tmp_path, capsys):
    write_tone(tmp_path / "a.wav")
    write_tone(tmp_path / "b.wav")
    csv = tmp_path / "s.csv"
    csv.write_text("id,path\nx,a.wav\nx,b.wav\n")
    rc = main(["extract", "--model", "spectral:mel", "--stimuli", str(csv), "--out",
               str(tmp_path / "st"), "--quiet"])
    assert rc == 2 and "duplicate" in capsys.readouterr().err


def test_sigkill_resume_is_byte_identical(stim_copy, tmp_path):
    args = ["extract", "--model", SLOW, "--stimuli", str(stim_copy), "--batch-size", "2",
            "--sync-every", "0"]
    ref = tmp_path / "ref"
    subprocess.run(_cli(*args, "--out", str(ref), "--quiet"), env={**_env(), "SLOW_MODEL_SLEEP": "0"},
                   check=True, capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*args, "--out", str(out)), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifest = out / "manifest.json"
    deadline = time.time() + 120
    n_done = 0
    while time.time() < deadline:
        if manifest.is_file():
            try:
                m = json.loads(manifest.read_text())
                n_done = (bin(int(m["layers"]["conv"]["done"], 16)).count("1")
                          if m["layers"] else 0)
            except (json.JSONDecodeError, KeyError):
                n_done = 0
            if n_done >= 4:
                break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    m = json.loads(manifest.read_text())
    assert not m["complete"], "the run finished before it could be killed"
    assert 4 <= n_done < 16
    # resume with the same command (fast now) and compare every byte
    r = subprocess.run(_cli(*args, "--out", str(out)), env={**_env(), "SLOW_MODEL_SLEEP": "0"},
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "clip/s" in r.stderr or "clip" in r.stderr  # the progress bar
    assert _snapshot(out) == _snapshot(ref)


def test_float16_overflow_fails_naming_layer_and_stimulus(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    write_tone(d / "loud.wav", seconds=0.1)
    spec = "torch:layout_models:build_overflow"
    with pytest.raises(StoreError, match="'loud'.*layer 'big'.*float16.*--dtype float32"):
        extract(spec, d, tmp_path / "h", dtype="float16", progress=False)
    m = json.loads((tmp_path / "h" / "manifest.json").read_text())
    assert not m["complete"] and not m["layers"]
    store = extract(spec, d, tmp_path / "h2", dtype="float16", layers=["small"], progress=False)
    assert store.complete and np.isfinite(store["small"]).all()
    assert extract(spec, d, tmp_path / "f", progress=False).complete


def test_resume_with_other_batch_size_or_device_is_refused(stim_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("SLOW_MODEL_SLEEP", "0")
    (stim_copy / "zz_bad.wav").write_bytes(b"not audio")  # unknown length: batched last
    out = tmp_path / "st"
    with pytest.raises(AudioError, match="zz_bad"):
        extract(SLOW, stim_copy, out, batch_size=4, progress=False)
    assert json.loads((out / "manifest.json").read_text())["settings"]["batch_size"] == 4
    with pytest.raises(StoreError, match="batch_size 4, now 2.*--batch-size 4"):
        extract(SLOW, stim_copy, out, batch_size=2, on_error="skip", progress=False)
    store = extract(SLOW, stim_copy, out, batch_size=4, on_error="skip", progress=False)
    assert store.complete and list(store.skipped) == ["zz_bad"]
    # a finished store is left as it is, whatever the batch size
    assert extract(SLOW, stim_copy, out, batch_size=2, on_error="skip", progress=False).complete


def test_rsa_refuses_frames_padded_to_different_lengths(tmp_path):
    from alignjax.app.studies.rsa import run_rsa

    d = tmp_path / "s"
    d.mkdir()
    for k, sec in enumerate((0.3, 0.5, 0.5, 0.4)):
        write_tone(d / f"t{k}.wav", freq=300 + 100 * k, seconds=sec)
    brain = tmp_path / "brain.npz"
    ids = [f"t{k}" for k in range(4)]
    np.savez(brain, stimulus_ids=np.array(ids), s1=np.random.default_rng(0).normal(size=(4, 5)))
    ragged = extract("spectral:mel", d, tmp_path / "ragged", pooling="none", progress=False)
    with pytest.raises(StoreError, match="'logmel'.*padded.*from 31 to 51.*--duration"):
        run_rsa(ragged.path, brain, tmp_path / "out", n_perm=10, progress=False)
    even = extract("spectral:mel", d, tmp_path / "even", pooling="none", duration=0.5,
                   progress=False)
    run_rsa(even.path, brain, tmp_path / "out2", n_perm=10, progress=False)
