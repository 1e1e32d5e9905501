import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from alignjax import (FeatureStore, StimulusMismatchError, StoreError, StoreWriter,
                      load_layers, load_responses)


def _write_all(path, ids, rows, settings=None):
    w = StoreWriter(path, spec="test:model", stimulus_ids=ids, settings=settings or {"sr": 16000})
    for i in w.pending():
        w.write(i, {"a": rows[i], "b.x": rows[i][:2] * 2})
    return w.finish()


def test_roundtrip_and_memmap(tmp_path, rng):
    ids = [f"s{i}" for i in range(7)]
    rows = rng.normal(size=(7, 5)).astype(np.float32)
    store = _write_all(tmp_path / "st", ids, rows)
    assert store.complete and store.layers == ["a", "b.x"]
    a = store.load("a")
    assert isinstance(a, np.memmap)
    np.testing.assert_array_equal(a, rows)
    np.testing.assert_array_equal(store["b.x"], rows[:, :2] * 2)
    assert store.stimulus_ids == ids
    ls = load_layers(tmp_path / "st")
    assert ls.names == ["a", "b.x"] and ls.stimulus_ids == ids


def test_resume_after_sigkill_is_byte_identical(tmp_path):
    script = textwrap.dedent("""
        import os, signal, sys, numpy as np
        from alignjax.store import StoreWriter
        path, kill_at = sys.argv[1], int(sys.argv[2])
        ids = [f"s{i}" for i in range(20)]
        w = StoreWriter(path, spec="m", stimulus_ids=ids, settings={"k": 1}, sync_every=0)
        for i in w.pending():
            if i == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            x = np.arange(12, dtype=np.float32).reshape(3, 4) * (i + 1)
            w.write(i, {"frames": x, "pooled": x.mean(0)})
        w.finish()
    """)
    env = dict(os.environ)
    full, part = tmp_path / "full", tmp_path / "part"
    subprocess.run([sys.executable, "-c", script, str(full), "-1"], check=True, env=env)
    r = subprocess.run([sys.executable, "-c", script, str(part), "11"], env=env)
    assert r.returncode == -signal.SIGKILL
    assert not FeatureStore(part).complete
    assert FeatureStore(part).done_mask("pooled").sum() == 11  # every row before the kill
    with pytest.raises(StoreError, match="incomplete"):
        FeatureStore(part).load("pooled")
    subprocess.run([sys.executable, "-c", script, str(part), "-1"], check=True, env=env)
    for name in sorted(os.listdir(full)):
        assert (full / name).read_bytes() == (part / name).read_bytes(), name
    assert sorted(os.listdir(full)) == sorted(os.listdir(part))


def test_rerun_of_finished_store_does_nothing(tmp_path, rng):
    ids = ["a", "b", "c"]
    rows = rng.normal(size=(3, 4))
    _write_all(tmp_path / "st", ids, rows)
    w = StoreWriter(tmp_path / "st", spec="test:model", stimulus_ids=ids, settings={"sr": 16000})
    assert w.pending() == [] and w.complete


def test_resume_with_other_settings_fails(tmp_path, rng):
    _write_all(tmp_path / "st", ["a", "b"], rng.normal(size=(2, 3)))
    with pytest.raises(StoreError, match="settings"):
        StoreWriter(tmp_path / "st", spec="test:model", stimulus_ids=["a", "b"], settings={"sr": 8000})


def test_skipped_are_listed_and_dropped(tmp_path, rng):
    w = StoreWriter(tmp_path / "st", spec="m", stimulus_ids=["a", "b", "c"])
    w.write(0, {"l": np.ones(2)})
    w.skip(1, "unreadable file")
    w.write(2, {"l": np.zeros(2)})
    st = w.finish()
    assert st.skipped == {"b": "unreadable file"}
    assert st.valid_ids() == ["a", "c"]
    assert st.load("l", drop_skipped=True).shape == (2, 2)


def test_row_shape_mismatch_is_explained(tmp_path):
    w = StoreWriter(tmp_path / "st", spec="m", stimulus_ids=["a", "b"])
    w.write(0, {"l": np.ones((3, 2))})
    with pytest.raises(StoreError, match="fixed duration"):
        w.write(1, {"l": np.ones((4, 2))})


def test_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="not a feature store"):
        FeatureStore(tmp_path)


def test_load_responses_formats(tmp_path, rng):
    ids = np.array(["x", "y", "z"])
    y1, y2 = rng.normal(size=(3, 4)), rng.normal(size=(3, 2))
    np.savez(tmp_path / "r.npz", stimulus_ids=ids, sub1=y1, sub2=y2)
    r = load_responses(tmp_path / "r.npz")
    assert r.stimulus_ids == ["x", "y", "z"] and set(r.subjects) == {"sub1", "sub2"}
    al = r.aligned_to(["z", "x"])
    np.testing.assert_allclose(al.subjects["sub1"], y1[[2, 0]])
    with pytest.raises(StimulusMismatchError, match="missing"):
        r.aligned_to(["x", "w"])
    import h5py
    with h5py.File(tmp_path / "r.h5", "w") as f:
        f["stimulus_ids"] = ids.astype("S")
        f["sub1"] = y1
    np.testing.assert_allclose(load_responses(tmp_path / "r.h5").subjects["sub1"], y1)
    (tmp_path / "r.csv").write_text("stimulus_id,v1,v2\nx,1,2\ny,3,4\nz,5,6\n")
    np.testing.assert_allclose(load_responses(tmp_path / "r.csv").subjects["r"], [[1, 2], [3, 4], [5, 6]])
    np.savez(tmp_path / "noids.npz", sub1=y1)
    with pytest.raises(StimulusMismatchError, match="stimulus_ids"):
        load_responses(tmp_path / "noids.npz")


def test_write_rows_equals_row_by_row(tmp_path, rng):
    ids = [f"s{i}" for i in range(6)]
    rows = rng.normal(size=(6, 3)).astype(np.float32)
    one = _write_all(tmp_path / "one", ids, rows)
    w = StoreWriter(tmp_path / "many", spec="test:model", stimulus_ids=ids, settings={"sr": 16000})
    w.write_rows({i: {"a": rows[i], "b.x": rows[i][:2] * 2} for i in (0, 1, 2)})
    assert w.pending() == [3, 4, 5]
    w.write_rows({i: {"a": rows[i], "b.x": rows[i][:2] * 2} for i in (3, 4, 5)})
    many = w.finish()
    for name in ("manifest.json", "a.npy", "b.x.npy"):
        assert (one.path / name).read_bytes() == (many.path / name).read_bytes()


def test_valid_frames_mask(tmp_path, rng):
    ids = ["a", "b", "c"]
    w = StoreWriter(tmp_path / "st", spec="test:model", stimulus_ids=ids)
    x = rng.normal(size=(3, 5, 2)).astype(np.float32)
    w.write_rows({0: {"t": x[0], "p": x[0, 0]}, 2: {"t": x[2], "p": x[2, 0]}},
                 n_valid_frames={0: {"t": 5}, 2: {"t": 2}})
    w.skip(1, "unreadable")
    store = w.finish()
    np.testing.assert_array_equal(store.n_valid_frames("t"), [5, 0, 2])
    mask = store.valid_frames("t")
    assert mask.shape == (3, 5) and mask.dtype == bool
    np.testing.assert_array_equal(mask.sum(1), [5, 0, 2])
    assert mask[2, :2].all() and not mask[2, 2:].any()
    with pytest.raises(StoreError, match="pooled over frames"):
        store.valid_frames("p")
    w2 = StoreWriter(tmp_path / "old", spec="test:model", stimulus_ids=ids)
    w2.write_rows({i: {"t": x[i]} for i in range(3)})
    with pytest.raises(StoreError, match="no n_valid_frames"):
        w2.finish().valid_frames("t")
