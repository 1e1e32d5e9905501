"""The 'similarity' analysis kind: runs, is fingerprinted like the others, reports, and
explains bad options before any step."""

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("librosa")

from alignjax.app.pipeline import PipelineError, run_pipeline  # noqa: E402
from tests.e2e._study import synth_study  # noqa: E402


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("simstudy")
    labels, ids = synth_study(root, n=20, seed=2, duration=0.4, n_voxels=9)
    return root, labels


def _toml(root, labels, analyses):
    text = f"""
[study]
name = "simtiny"
out = "out"

[stimuli]
path = "{labels.relative_to(root).as_posix()}"

[[models]]
name = "mel"
spec = "spectral:mel"

[[models]]
name = "mfcc"
spec = "spectral:mfcc"

[[data]]
name = "fmri"
path = "brain.npz"
kind = "brain"
{analyses}
"""
    path = root / "pipeline.toml"
    path.write_text(text)
    return path


GOOD = """
[[analyses]]
kind = "similarity"
data = "fmri"
models = ["mel"]
metrics = ["cka", "knn"]
k = 3
n_perm = 19

[[analyses]]
kind = "similarity"
against = "mfcc"
models = ["mel"]
metrics = "cka"
n_perm = 0
"""


@pytest.mark.slow
def test_similarity_pipeline_runs_skips_and_reports(study):
    from alignjax.app.report.html import build_report

    root, labels = study
    cfg = _toml(root, labels, GOOD)
    first = run_pipeline(cfg, progress=False, log=lambda s: None)
    assert [r["status"] for r in first].count("ran") == 4
    summary = json.loads((root / "out" / "similarity-fmri" / "mel" / "similarity.json").read_text())
    assert summary["metrics"] == ["cka", "knn"] and summary["n_perm"] == 19
    mm = root / "out" / "similarity-mfcc" / "mel"
    assert (mm / "similarity_heatmap.png").is_file()
    again = run_pipeline(cfg, progress=False, log=lambda s: None)
    assert all(r["status"] == "skipped" for r in again)
    # a changed option reruns only that step
    cfg = _toml(root, labels, GOOD.replace("n_perm = 19", "n_perm = 29"))
    third = run_pipeline(cfg, progress=False, log=lambda s: None)
    assert [r["step"] for r in third if r["status"] == "ran"] == ["similarity-fmri/mel"]
    html = build_report(root / "out").read_text()
    assert "Similarity metrics" in html and "best layer (calibrated)" in html
    assert "similarity-fmri/mel" in html and "similarity-mfcc/mel" in html


def test_bad_similarity_options_fail_before_any_step(study):
    root, labels = study
    bad = GOOD.replace('metrics = ["cka", "knn"]', 'metrics = ["cka", "kknn"]')
    with pytest.raises(PipelineError, match=r"line \d+, analysis 'similarity-fmri'.*kknn"):
        run_pipeline(_toml(root, labels, bad), progress=False, log=lambda s: None)
    bad = GOOD.replace("k = 3", "k = 40")
    with pytest.raises(PipelineError, match="k=40"):
        run_pipeline(_toml(root, labels, bad), progress=False, log=lambda s: None)
    bad = GOOD.replace('against = "mfcc"', 'against = "mfcc"\ndata = "fmri"')
    with pytest.raises(PipelineError, match="exactly one of data"):
        run_pipeline(_toml(root, labels, bad), progress=False, log=lambda s: None)
