"""alignjax demo --eeg, simulate-eeg and temporal-rsa end to end: the planted window is
recovered, nothing outside it is flagged."""

import json

import numpy as np
import pytest

from alignjax.app.cli import main


def test_eeg_demo_then_temporal_rsa_cli(tmp_path, capsys):
    demo = tmp_path / "demo"
    assert main(["demo", "--eeg", "--quick", "--out", str(demo), "--no-progress"]) == 0
    checks = json.loads((demo / "eeg_checks.json").read_text())["checks"]
    assert len(checks) == 4 and all(c["passed"] for c in checks)
    out = tmp_path / "res"
    assert main(["temporal-rsa", "--features", str(demo / "features"), "--epochs",
                 str(demo / "epochs.npz"), "--out", str(out), "--n-perm", "100",
                 "--window", "3", "--step", "2", "--correction", "max", "--no-progress"]) == 0
    assert "layer3: significant" in capsys.readouterr().out
    s = json.loads((out / "temporal_rsa.json").read_text())
    assert s["n_subjects"] == 2 and s["n_stimuli"] == 60 and s["window"] == 3
    spans = s["significant_spans"]["layer3"]
    assert spans and all(0.2 <= a and b <= 0.55 for a, b in spans)
    assert 0.25 <= s["peak_latency"][s["layers"].index("layer3")] <= 0.5
    for name in ("temporal_rsa.csv", "temporal_rsa_heatmap.png", "temporal_rsa_timecourses.png",
                 "temporal_rsa_peaks.png"):
        assert (out / name).stat().st_size > 0


def test_simulate_eeg_writes_epochs_load_epochs_reads(tmp_path):
    from alignjax import load_epochs

    assert main(["simulate-eeg", "--out", str(tmp_path), "--n-stimuli", "12",
                 "--n-subjects", "2", "--n-channels", "4", "--n-trials", "3"]) == 0
    ep = load_epochs(tmp_path / "epochs.npz", folds=3)
    assert ep.data.shape == (2, 12, 4, 91) and ep.subjects == ["sub01", "sub02"]
    assert (ep.n_trials == 3).all() and ep.folds.shape == (2, 3, 12, 4, 91)
    assert json.loads((tmp_path / "planted.json").read_text())["window_s"] == [0.25, 0.5]


def test_bad_epochs_give_a_clear_cli_error(tmp_path, capsys):
    np.savez(tmp_path / "e.npz", data=np.zeros((4, 2, 5)), times=np.arange(5))
    (tmp_path / "f").mkdir()
    np.save(tmp_path / "f" / "l.npy", np.random.default_rng(0).standard_normal((4, 3)))
    (tmp_path / "f" / "stimulus_ids.txt").write_text("a\nb\nc\nd\n")
    assert main(["temporal-rsa", "--features", str(tmp_path / "f"), "--epochs",
                 str(tmp_path / "e.npz"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "temporal-rsa: error" in err and "without stimulus ids" in err


def test_random_effects_over_subjects_on_the_layer_x_time_family():
    from alignjax.app.studies.temporal import _random_effects

    R = np.random.default_rng(0).standard_normal((3, 8, 20)) * 0.1
    R[1, :, 5:10] += 0.3
    res = _random_effects(R, 256, 0)
    sig = np.asarray(res["significant"])
    assert res["exact"] and res["n_significant_clusters"] == 1
    assert sig[1, 5:10].all() and sig.sum() == 5
    assert "skipped" in _random_effects(R[:, :3], 256, 0)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Montage name:FutureWarning")
def test_searchlight_from_mne_epochs_writes_topomaps(tmp_path):
    mne = pytest.importorskip("mne")
    from alignjax.app.studies.temporal import run_temporal_rsa

    rng = np.random.default_rng(1)
    names = ["Fz", "Cz", "Pz", "C3", "C4", "F3", "F4", "P3", "P4", "Oz"]
    n, T = 14, 12
    feats = rng.standard_normal((n, 4))
    info = mne.create_info(names, 100.0, "eeg")
    info.set_montage(mne.channels.make_standard_montage("standard_1020"))
    X = rng.standard_normal((2 * n, len(names), T))
    X[:, :5, 4:8] += np.tile(feats @ rng.standard_normal((4, 5)), (2, 1))[:, :, None]
    ids = [f"s{i}" for i in range(n)] * 2
    events = np.c_[np.arange(2 * n) * 20, np.zeros(2 * n, int), [i % n + 1 for i in range(2 * n)]]
    ep = mne.EpochsArray(X, info, events=events, tmin=-0.02,
                         event_id={s: k + 1 for k, s in enumerate(ids[:n])}, verbose="error")
    ep.save(tmp_path / "sub-01-epo.fif", verbose="error")
    (tmp_path / "f").mkdir()
    np.save(tmp_path / "f" / "planted.npy", feats)
    (tmp_path / "f" / "stimulus_ids.txt").write_text("\n".join(ids[:n]) + "\n")
    s = run_temporal_rsa(tmp_path / "f", tmp_path / "sub-01-epo.fif", tmp_path / "o",
                         n_perm=50, searchlight=True, progress=False)
    assert s["searchlight"]["layer"] == "planted"
    assert (tmp_path / "o" / "temporal_rsa_topomaps.png").stat().st_size > 0
    assert np.load(tmp_path / "o" / "searchlight_r.npy").shape == (1, 1, len(names), T)
