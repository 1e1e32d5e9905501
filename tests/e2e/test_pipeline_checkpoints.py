"""Pipelines over a checkpoint series and an audio LLM: steps, fingerprints, report figure."""

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from alignjax.app.pipeline import PipelineError, load_config, run_pipeline  # noqa: E402
from tests.e2e._study import synth_study  # noqa: E402


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from extractors.tiny import build_random_model
    from extractors.tiny_zoo import build_tiny_llm

    root = tmp_path_factory.mktemp("series")
    labels, ids = synth_study(root, n=12, seed=2, duration=0.5, n_voxels=8, reverse=False)
    (root / "run").mkdir()
    for k, step in enumerate((10, 100, 1000)):
        build_random_model("wav2vec2", root / f"b{k}", seed=k).rename(
            root / "run" / f"checkpoint-{step}")
    build_tiny_llm("qwen2_audio", root / "llm")
    return root, labels


def _toml(root, labels, models):
    path = root / "pipeline.toml"
    path.write_text(f"""
[study]
name = "series"
out = "out"

[stimuli]
path = "{labels.relative_to(root).as_posix()}"

{models}

[[data]]
name = "fmri"
path = "brain.npz"
kind = "brain"

[[analyses]]
kind = "rsa"
data = "fmri"
n_perm = 10
""")
    return path


SERIES = """
[[models]]
name = "w2v"
spec = "hf:run"
checkpoints = "checkpoint-*"
layers = ["hidden_states.0", "hidden_states.2"]
"""


def test_checkpoint_series_pipeline_and_report(study):
    from alignjax.app.report.html import build_report
    from alignjax.io import FeatureStore

    root, labels = study
    cfg = load_config(_toml(root, labels, SERIES))
    assert [m["name"] for m in cfg.models] == ["w2v@10", "w2v@100", "w2v@1000"]
    assert cfg.analyses[0].get("models") is None  # all models
    statuses = run_pipeline(cfg.path, progress=False, log=lambda s: None)
    assert [r["status"] for r in statuses] == ["ran"] * 6
    for step in (10, 100, 1000):
        assert FeatureStore(root / "out" / "features" / f"w2v@{step}").training_step == step
        assert (root / "out" / "rsa-fmri" / f"w2v@{step}" / "rsa.json").is_file()
    html = build_report(root / "out").read_text()
    assert "w2v against training step" in html
    bad = SERIES.replace('checkpoint-*', 'ckpt-*')
    with pytest.raises(PipelineError, match="matches no checkpoint"):
        load_config(_toml(root, labels, bad))


def test_changing_the_prompt_reruns_extraction(study):
    root, labels = study
    llm = f"""
[[models]]
name = "llm"
spec = "hf:{(root / 'llm' / 'qwen2_audio').as_posix()}"
prompt = "describe the sound ."
layers = ["language_model.hidden_states.2"]
"""
    path = _toml(root, labels, llm)
    first = run_pipeline(path, progress=False, log=lambda s: None)
    assert [r["status"] for r in first] == ["ran", "ran"]
    assert [r["status"] for r in run_pipeline(path, progress=False, log=lambda s: None)] == [
        "skipped", "skipped"]
    _toml(root, labels, llm.replace("describe the sound .", "what is this audio ?"))
    third = run_pipeline(path, progress=False, log=lambda s: None)
    assert [r["status"] for r in third] == ["ran", "ran"]
    manifest = json.loads((root / "out" / "features" / "llm" / "manifest.json").read_text())
    assert manifest["settings"]["model"]["prompt"] == "what is this audio ?"
