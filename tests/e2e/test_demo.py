"""The embedded demo end to end at a reduced size: the planted layer is recovered."""

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("librosa")

from alignjax.app.cli import main  # noqa: E402


def test_quick_demo_recovers_the_planted_layer(tmp_path):
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--quick", "--no-progress"])
    checks = json.loads((out / "ground_truth.json").read_text())["checks"]
    by_what = {c["what"]: c for c in checks}
    assert by_what["RSA: best layer over all models (group RDM)"]["passed"], by_what
    assert by_what["encoding: model with the highest median R²"]["passed"], by_what
    assert by_what["encoding: most frequent best layer of crepe (signal voxels)"]["passed"], by_what
    assert by_what["probe: material decodable above chance (best layer)"]["passed"], by_what
    assert rc == 0
    html = (out / "report.html").read_text()
    assert "Planted ground truth" in html and html.count("data:image/png;base64,") >= 8
    # a rerun skips every step of the pipeline
    from alignjax.app.pipeline import run_pipeline

    records = run_pipeline(out / "pipeline.toml", progress=False, log=lambda s: None)
    assert {r["status"] for r in records} == {"skipped"}
