"""alignjax.io: the manifest dataclasses, stores written by older code, the loader
registry, and StoreWriter as a context manager."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import alignjax.io.responses as responses_module
from alignjax import store as store_compat
from alignjax.errors import InvalidOptionError, StimulusMismatchError, StoreError
from alignjax.io.hashing import file_sha256
from alignjax.io import (FeatureStore, LayerInfo, Manifest, Responses, StoreWriter, load_layers,
                         load_responses, read_manifest, register_loader, response_formats)

FIXTURE = Path(__file__).parent / "fixtures" / "manifest_dbfd7b3.json"


def _fixture_layers():
    """The arrays of the store whose manifest is the fixture (written by the dbfd7b3 code:
    rows 0, 1 and 3 written, row 2 skipped, 't' time-resolved with n_valid_frames)."""
    t = np.zeros((4, 3, 2), np.float32)
    p = np.zeros((4, 2), np.float16)
    for i in (0, 1):
        t[i] = np.arange(6, dtype=np.float32).reshape(3, 2) * (i + 1)
        p[i] = i
    t[3], p[3] = 1.0, 1.0
    return {"t": t, "p": p}


@pytest.fixture
def old_store(tmp_path):
    path = tmp_path / "old"
    path.mkdir()
    (path / "manifest.json").write_text(FIXTURE.read_text())
    for name, arr in _fixture_layers().items():
        np.save(path / f"{name}.npy", arr)
    return path


def test_manifest_json_round_trip_is_byte_identical():
    text = FIXTURE.read_text()
    m = Manifest.from_json(json.loads(text))
    assert m.to_text() == text
    assert Manifest.from_json(m.to_json()) == m
    assert m.stimulus_ids == ("b", "a", "c", "d") and m.layer_order == ("t", "p")
    assert m.settings["batch_size"] == 2 and m.settings["device"] == "cpu"
    assert m.settings["model"] == {"hidden": 8, "revision": None}
    t = m.layers["t"]
    assert isinstance(t, LayerInfo) and t.shape == (4, 3, 2) and t.n_valid_frames == (3, 2, 0, 1)
    assert m.layers["p"].n_valid_frames is None and len(m.layers["p"].sha256) == 64
    assert m.skipped == {"c": "unreadable"} and m.complete
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.complete = False


def test_unknown_manifest_keys_are_kept():
    obj = json.loads(FIXTURE.read_text())
    obj["future_field"] = {"x": [1, 2]}
    obj["layers"]["t"]["future_layer_field"] = "y"
    m = Manifest.from_json(obj)
    assert m.to_json() == obj


def test_store_written_by_older_code_opens_unchanged(old_store):
    before = {p.name: p.read_bytes() for p in old_store.iterdir()}
    store = FeatureStore(old_store)
    layers = _fixture_layers()
    assert store.complete and store.layers == ["t", "p"] and store.skipped == {"c": "unreadable"}
    assert store.manifest == json.loads(FIXTURE.read_text())
    for name in ("t", "p"):
        assert store.meta.layers[name].sha256 == file_sha256(old_store / f"{name}.npy")
        np.testing.assert_array_equal(store.load(name), layers[name])
    np.testing.assert_array_equal(store.n_valid_frames("t"), [3, 2, 0, 1])
    ls = load_layers(old_store)
    assert ls.stimulus_ids == ["b", "a", "d"] and ls.arrays[1].shape == (3, 2)
    # a writer of the same request finds it complete and rewrites nothing
    m = read_manifest(old_store)
    with StoreWriter(old_store, spec=m.spec, stimulus_ids=m.stimulus_ids,
                     settings=m.settings) as w:
        assert w.pending() == [] and w.complete
        w.finish()
    assert {p.name: p.read_bytes() for p in old_store.iterdir()} == before


def test_compat_module_reexports_the_same_objects():
    import alignjax
    import alignjax.io as io

    for name in ("FeatureStore", "StoreWriter", "open_store", "load_layers", "load_responses",
                 "Responses", "LayerSet", "MANIFEST"):
        assert getattr(store_compat, name) is getattr(io, name)
    assert alignjax.FeatureStore is io.FeatureStore and alignjax.load_responses is io.load_responses


# --------------------------------------------------------------------------- loaders


@pytest.fixture
def registry(monkeypatch):
    """An isolated copy of the loader registry (restored after the test)."""
    monkeypatch.setattr(responses_module, "_LOADERS", dict(responses_module._LOADERS))


def _read_tsv(path):
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    return Responses([r[0] for r in lines], {"s1": np.array([[float(r[1])] for r in lines])})


def test_builtin_loaders_are_registered():
    assert set(response_formats()) >= {".npz", ".npy", ".h5", ".hdf5", ".csv"}


def test_registered_loader_is_used_and_checked(tmp_path, registry):
    register_loader(".resp.tsv", _read_tsv)
    f = tmp_path / "x.RESP.tsv"
    f.write_text("a\t1\nb\t2\nc\t3\n")
    resp = load_responses(f)
    assert resp.stimulus_ids == ["a", "b", "c"] and resp.subjects["s1"].shape == (3, 1)
    # the common checks apply to every loader's result
    f.write_text("a\t1\na\t2\n")
    with pytest.raises(StimulusMismatchError, match="not unique"):
        load_responses(f)


def test_longest_suffix_wins(tmp_path, registry):
    register_loader(".gz", lambda p: Responses(["x"], {"gz": np.zeros(1)}))
    register_loader(".nii.gz", lambda p: Responses(["x"], {"nifti": np.zeros(1)}), replace=True)
    f = tmp_path / "bold.nii.gz"
    f.write_bytes(b"")
    g = tmp_path / "table.gz"
    g.write_bytes(b"")
    assert list(load_responses(f).subjects) == ["nifti"]
    assert list(load_responses(g).subjects) == ["gz"]


def test_registry_refuses_silent_replacement_and_bad_suffixes(tmp_path, registry):
    with pytest.raises(InvalidOptionError, match="already registered"):
        register_loader(".npz", _read_tsv)
    register_loader(".npz", _read_tsv, replace=True)
    with pytest.raises(InvalidOptionError, match="dot"):
        register_loader("tsv", _read_tsv)
    f = tmp_path / "x.mat"
    f.write_bytes(b"")
    with pytest.raises(StoreError, match=r"unsupported response format '\.mat'.*\.npz.*\.csv"):
        load_responses(f)


# --------------------------------------------------------------------------- writer as context


def _rows(i):
    x = np.arange(6, dtype=np.float32).reshape(3, 2) * (i + 1)
    return {"frames": x, "pooled": x.mean(0)}


def test_exception_inside_with_block_leaves_a_resumable_store(tmp_path):
    ids = [f"s{i}" for i in range(9)]
    with StoreWriter(tmp_path / "full", spec="m", stimulus_ids=ids, settings={"k": 1}) as w:
        for i in w.pending():
            w.write(i, _rows(i))
        w.finish()
    with pytest.raises(RuntimeError, match="boom"):
        with StoreWriter(tmp_path / "part", spec="m", stimulus_ids=ids, settings={"k": 1}) as w:
            for i in w.pending():
                if i == 5:
                    raise RuntimeError("boom")
                w.write(i, _rows(i))
    part = FeatureStore(tmp_path / "part")
    assert not part.complete and part.done_mask("pooled").tolist() == [True] * 5 + [False] * 4
    with StoreWriter(tmp_path / "part", spec="m", stimulus_ids=ids, settings={"k": 1}) as w:
        assert w.pending() == [5, 6, 7, 8]
        for i in w.pending():
            w.write(i, _rows(i))
        w.finish()
    for name in sorted(p.name for p in (tmp_path / "full").iterdir()):
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "part" / name).read_bytes()


def test_leaving_the_block_does_not_finish(tmp_path):
    with StoreWriter(tmp_path / "s", spec="m", stimulus_ids=["a", "b"]) as w:
        w.write(0, {"x": np.ones(2)})
    assert not FeatureStore(tmp_path / "s").complete
    with StoreWriter(tmp_path / "s", spec="m", stimulus_ids=["a", "b"]) as w:
        assert w.pending() == [1]
        w.write(1, {"x": np.ones(2)})
        store = w.finish()
    assert store.complete and w.meta.complete
