"""Pipeline kind temporal_rsa: runs, skips when unchanged, reruns when the epochs change,
and the report shows its section."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("librosa")

from alignjax.app.pipeline import run_pipeline  # noqa: E402


def test_temporal_rsa_pipeline_step(tmp_path):
    from extractors.synth import synthesize

    from alignjax.app.report.html import build_report
    from alignjax.app.studies.simulate_eeg import simulate_eeg

    labels = synthesize(tmp_path / "stimuli", n=20, seed=1, duration=0.5, speech=False)
    ids = [line.split(",")[0] for line in labels.read_text().splitlines()[1:]]
    feats = np.random.default_rng(0).standard_normal((len(ids), 6))
    simulate_eeg(feats, ids, tmp_path / "eeg" / "epochs.npz", n_subjects=2, n_channels=6,
                 n_trials=1, tmax=0.3, window=(0.1, 0.2))
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(f"""
[study]
name = "eeg"
out = "out"

[stimuli]
path = "{labels.relative_to(tmp_path).as_posix()}"

[[models]]
name = "mel"
spec = "spectral:mel"

[[data]]
name = "eeg"
path = "eeg/epochs.npz"
kind = "epochs"

[[analyses]]
kind = "temporal_rsa"
data = "eeg"
n_perm = 20
window = 3
""")
    first = run_pipeline(cfg, progress=False, log=lambda s: None)
    assert [r["status"] for r in first] == ["ran", "ran"]
    s = json.loads((tmp_path / "out" / "temporal_rsa-eeg" / "mel" / "temporal_rsa.json").read_text())
    assert s["window"] == 3 and s["n_subjects"] == 2 and s["n_stimuli"] == 20
    assert [r["status"] for r in run_pipeline(cfg, progress=False, log=lambda s: None)] == \
        ["skipped", "skipped"]
    simulate_eeg(feats, ids, tmp_path / "eeg" / "epochs.npz", n_subjects=2, n_channels=6,
                 n_trials=1, tmax=0.3, window=(0.1, 0.2), seed=1)
    assert [r["status"] for r in run_pipeline(cfg, progress=False, log=lambda s: None)] == \
        ["skipped", "ran"]
    html = build_report(tmp_path / "out").read_text()
    assert "Time-resolved RSA with EEG/MEG" in html and "temporal_rsa_heatmap" in html
