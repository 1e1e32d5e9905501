"""`alignjax probe` end to end on a small feature store."""

import csv
import json

import numpy as np
import pytest

pytest.importorskip("optax")
from alignjax.app.cli import main  # noqa: E402
from alignjax.store import StoreWriter  # noqa: E402

N = 48


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    rng = np.random.default_rng(0)
    ids = [f"clip{i:03d}" for i in range(N)]
    material = np.array(["wood", "metal", "glass"])[np.arange(N) % 3]
    hollow = np.where(np.arange(N) < N // 2, "yes", "no")
    code = rng.standard_normal((3, 6)) * 2
    onehot = (material[:, None] == np.array(["wood", "metal", "glass"])).astype(float)
    layers = {"conv": rng.standard_normal((N, 6)),
              "block1": onehot @ code + 0.5 * rng.standard_normal((N, 6))}
    w = StoreWriter(root / "store", spec="test:tiny", stimulus_ids=ids)
    for i in range(N):
        w.write(i, {k: v[i].astype(np.float32) for k, v in layers.items()})
    w.finish()
    # labels in a different row order than the store, with an extra column
    order = rng.permutation(N)
    with open(root / "labels.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["stimulus_id", "material", "hollow"])
        for i in order:
            wr.writerow([ids[i], material[i], hollow[i]])
    return root


def test_cli_probe_cv(store, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["probe", "--features", str(store / "store"), "--labels", str(store / "labels.csv"),
               "--target", "material", "--out", str(out), "--cs", "0.1,1", "--folds", "4",
               "--inner-folds", "2", "--n-perm", "9"])
    assert rc == 0
    with open(out / "probe.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["layer"] for r in rows] == ["conv", "block1"]
    acc = {r["layer"]: float(r["accuracy"]) for r in rows}
    assert acc["block1"] > 0.9 and acc["conv"] < 0.7
    assert float(rows[0]["chance"]) == pytest.approx(1 / 3)
    for r in rows:
        assert float(r["ci_low"]) <= float(r["accuracy"]) <= float(r["ci_high"])
        assert 0.1 - 1e-9 <= float(r["p"]) <= 1
    assert float(rows[1]["p_fwe"]) == pytest.approx(0.1)
    detail = json.loads((out / "probe.json").read_text())
    assert np.array(detail["accuracy"]).shape == (2, 2, 4)
    assert (out / "probe.png").stat().st_size > 1000


def test_cli_probe_transfer(store, tmp_path):
    out = tmp_path / "out"
    rc = main(["probe", "--features", str(store / "store"), "--labels", str(store / "labels.csv"),
               "--target", "material", "--out", str(out), "--cs", "0.1,1", "--folds", "3",
               "--inner-folds", "2", "--train-where", "hollow=yes", "--test-where", "hollow=no"])
    assert rc == 0
    rows = list(csv.DictReader(open(out / "probe.csv")))
    assert float(rows[1]["transfer_accuracy"]) > 0.9
    assert "within_accuracy" in rows[0]
    assert (out / "probe.png").exists()


def test_cli_probe_label_mismatch(store, tmp_path, capsys):
    bad = tmp_path / "labels.csv"
    lines = (store / "labels.csv").read_text().splitlines()
    bad.write_text("\n".join(lines[:-3]) + "\n")  # three stimuli have no row
    rc = main(["probe", "--features", str(store / "store"), "--labels", str(bad),
               "--target", "material", "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "missing from" in capsys.readouterr().err
    rc = main(["probe", "--features", str(store / "store"), "--labels", str(store / "labels.csv"),
               "--target", "colour", "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "no column 'colour'" in capsys.readouterr().err
