"""``alignjax encode`` end to end on a small directory of layers and an .npz of responses."""

import csv
import json

import numpy as np
import pytest

from alignjax.app.cli import main


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    ids = [f"snd{i:03d}" for i in range(n)]
    feat = tmp_path / "features"
    feat.mkdir()
    layers = {"conv": rng.standard_normal((n, 12)), "block1": rng.standard_normal((n, 20))}
    for name, X in layers.items():
        np.save(feat / f"{name}.npy", X)
    (feat / "stimulus_ids.txt").write_text("\n".join(ids) + "\n")
    perm = rng.permutation(n)  # responses stored in another order: matched by id
    Y1 = layers["block1"] @ rng.standard_normal((20, 6)) + rng.standard_normal((n, 6))
    Y2 = layers["conv"] @ rng.standard_normal((12, 4)) + rng.standard_normal((n, 4))
    Y2[:, 3] = 1.0  # zero-variance voxel
    np.savez(tmp_path / "brain.npz", stimulus_ids=np.array(ids)[perm], sub01=Y1[perm],
             sub02=Y2[perm])
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["stimulus_id", "category"])
        for i in perm:
            w.writerow([ids[i], f"cat{i % 4}"])
    return tmp_path


def test_encode_writes_results_summary_and_figures(inputs, capsys):
    out = inputs / "out"
    rc = main(["encode", "--features", str(inputs / "features"), "--brain",
               str(inputs / "brain.npz"), "--out", str(out), "--alphas", "logspace:-1:4:6",
               "--outer-folds", "4", "--inner-folds", "3", "--stratify",
               f"{inputs / 'labels.csv'}:category", "--no-progress"])
    assert rc == 0
    assert "median R²" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["subjects"]) == {"sub01", "sub02"}
    assert summary["subjects"]["sub02"]["n_excluded"] == 1 and summary["n_excluded"] == 1
    assert summary["subjects"]["sub01"]["median_r2"] > 0.3
    assert summary["across_subjects"]["median_r2"]["sem"] is not None
    r2 = np.load(out / "sub01" / "r2.npy")
    assert r2.shape == (6,) and np.load(out / "sub01" / "best_layer.npy").shape == (4, 6)
    rows = list(csv.DictReader(open(out / "voxels.csv")))
    assert len(rows) == 10
    assert sum(r["best_layer"] == "block1" for r in rows if r["subject"] == "sub01") >= 5
    for png in ("median_r2_per_layer.png", "best_layer_histogram.png", "r2_per_subject.png"):
        assert (out / png).stat().st_size > 1000


def test_encode_layers_subset_and_clear_errors(inputs, capsys):
    out = inputs / "out2"
    rc = main(["encode", "--features", str(inputs / "features"), "--brain",
               str(inputs / "brain.npz"), "--out", str(out), "--layers", "conv",
               "--alphas", "1,10,100", "--outer-folds", "3", "--inner-folds", "3",
               "--no-progress"])
    assert rc == 0
    assert json.loads((out / "summary.json").read_text())["layer_names"] == ["conv"]
    rc = main(["encode", "--features", str(inputs / "features"), "--brain",
               str(inputs / "brain.npz"), "--out", str(out), "--alphas", "0,1"])
    assert rc == 2 and "positive" in capsys.readouterr().err
    ids = [f"other{i}" for i in range(40)]
    np.savez(inputs / "bad.npz", stimulus_ids=np.array(ids), sub=np.ones((40, 2)))
    rc = main(["encode", "--features", str(inputs / "features"), "--brain",
               str(inputs / "bad.npz"), "--out", str(out)])
    assert rc == 2 and "missing" in capsys.readouterr().err
