"""alignjax run on a tiny config: runs, skips unchanged steps, explains bad input early."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("librosa")

from alignjax.app.pipeline import PipelineError, load_config, run_pipeline  # noqa: E402
from tests.e2e._study import synth_study  # noqa: E402


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    labels, ids = synth_study(root, n=28, seed=1, duration=0.5, n_voxels=12)
    return root, labels


def _toml(root, labels, extra=""):
    text = f"""
[study]
name = "tiny"
out = "out"

[stimuli]
path = "{labels.relative_to(root).as_posix()}"

[[models]]
name = "mel"
spec = "spectral:mel"

[[data]]
name = "fmri"
path = "brain.npz"
kind = "brain"

[[analyses]]
kind = "rsa"
data = "fmri"
n_perm = 20
{extra}
"""
    path = root / "pipeline.toml"
    path.write_text(text)
    return path


def test_run_twice_skips_every_step(study):
    root, labels = study
    cfg = _toml(root, labels)
    first = run_pipeline(cfg, progress=False, log=lambda s: None)
    assert [r["status"] for r in first] == ["ran", "ran"]
    second = run_pipeline(cfg, progress=False, log=lambda s: None)
    assert [r["status"] for r in second] == ["skipped", "skipped"]
    summary = json.loads((root / "out" / "rsa-fmri" / "mel" / "rsa.json").read_text())
    assert summary["n_stimuli"] == 28 and summary["subjects"] == ["s1", "s2"]
    lines = []
    run_pipeline(cfg, dry_run=True, log=lines.append)
    assert all("up to date" in line for line in lines)
    # changing an analysis option reruns only that step
    cfg = _toml(root, labels).read_text().replace("n_perm = 20", "n_perm = 30")
    (root / "pipeline.toml").write_text(cfg)
    third = run_pipeline(root / "pipeline.toml", progress=False, log=lambda s: None)
    assert [r["status"] for r in third] == ["skipped", "ran"]


def test_typo_in_option_names_the_line(study):
    root, labels = study
    cfg = _toml(root, labels, extra="n_perms = 5")
    with pytest.raises(PipelineError, match=r"line \d+.*unknown option 'n_perms'.*did you mean 'n_perm'"):
        load_config(cfg)


def test_unknown_spec_fails_before_any_step(study, tmp_path):
    root, labels = study
    text = _toml(root, labels).read_text().replace('spec = "spectral:mel"', 'spec = "nosuch:model"')
    cfg = root / "bad.toml"
    cfg.write_text(text.replace('out = "out"', 'out = "out-bad"'))
    with pytest.raises(PipelineError, match=r"line \d+, model 'mel': unknown model spec"):
        run_pipeline(cfg, progress=False, log=lambda s: None)
    assert not (root / "out-bad" / "features").exists()


def test_missing_file_and_mismatched_ids(study):
    root, labels = study
    text = _toml(root, labels).read_text()
    (root / "missing.toml").write_text(text.replace("brain.npz", "nothere.npz"))
    with pytest.raises(PipelineError, match="does not exist"):
        run_pipeline(root / "missing.toml", progress=False, log=lambda s: None)
    np.savez(root / "other.npz", stimulus_ids=np.array(["a", "b"]), s1=np.zeros((2, 3)))
    (root / "ids.toml").write_text(text.replace("brain.npz", "other.npz"))
    with pytest.raises(PipelineError, match="lacks 28 of the 28 stimulus ids"):
        run_pipeline(root / "ids.toml", progress=False, log=lambda s: None)


def test_example_pipeline_is_valid():
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[2] / "notebooks" / "seed003_pipeline.toml")
    assert [m["name"] for m in cfg.models][:2] == ["mel", "modulation"]
    assert {a["kind"] for a in cfg.analyses} == {"rsa", "encode"}
