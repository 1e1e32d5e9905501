import csv
import json

import numpy as np

from alignjax import StoreWriter
from alignjax.app.cli import main

from .test_cli_rsa import _make_inputs


def test_similarity_cli_brain(tmp_path, rng):
    _make_inputs(tmp_path, rng)
    out = tmp_path / "out"
    rc = main(["similarity", "--features", str(tmp_path / "store"), "--brain",
               str(tmp_path / "brain.npz"), "--metrics", "cka,dcor,knn,rsa_spearman",
               "--n-perm", "99", "--k", "4", "--out", str(out), "--no-progress"])
    assert rc == 0
    rows = list(csv.DictReader(open(out / "similarity.csv")))
    assert len(rows) == 4 * 2 * 3
    assert list(rows[0])[:9] == ["metric", "layer", "subject", "score", "p", "p_fwe", "null_mean",
                                 "null_std", "calibrated"]
    summary = json.load(open(out / "similarity.json"))
    for metric in ("cka", "dcor", "knn", "rsa_spearman"):
        assert summary["best_layer"][metric]["layer"] == "planted"
        assert summary["best_layer"][metric]["p_fwe"] < 0.05
    assert summary["rank_agreement"]["kendalls_w"] == 1.0
    assert (out / "similarity.png").stat().st_size > 10_000
    assert (out / "similarity_agreement.png").is_file()


def test_similarity_cli_against_and_errors(tmp_path, rng, capsys):
    ids = _make_inputs(tmp_path, rng)
    w = StoreWriter(tmp_path / "other", spec="test:other", stimulus_ids=ids[::-1])
    for i in range(len(ids)):
        w.write(i, {"a": rng.normal(size=5), "b": rng.normal(size=7)})
    w.finish()
    out = tmp_path / "mm"
    rc = main(["similarity", "--features", str(tmp_path / "store"), "--against",
               str(tmp_path / "other"), "--metrics", "cka", "--n-perm", "0", "--out", str(out),
               "--no-progress"])
    assert rc == 0
    assert (out / "similarity_heatmap.png").is_file()
    assert json.load(open(out / "similarity.json"))["subjects"] == ["a", "b"]
    rc = main(["similarity", "--features", str(tmp_path / "store"), "--brain",
               str(tmp_path / "brain.npz"), "--metrics", "cka,nope", "--out", str(out)])
    assert rc == 2 and "unknown metric 'nope'" in capsys.readouterr().err
