"""alignjax simulate-eeg + temporal-rsa end to end: the planted window is recovered."""

import json

from alignjax.app.cli import main


def test_simulate_then_temporal_rsa_recovers_the_planted_window(tmp_path, capsys):
    assert main(["simulate-eeg", "--out", str(tmp_path), "--n-subjects", "2",
                 "--n-channels", "16", "--n-trials", "1", "--snr", "0.8",
                 "--n-stimuli", "40"]) == 0
    out = tmp_path / "res"
    assert main(["temporal-rsa", "--features", str(tmp_path / "features"), "--epochs",
                 str(tmp_path / "epochs.npz"), "--out", str(out), "--n-perm", "100",
                 "--window", "3", "--step", "2", "--no-progress"]) == 0
    assert "layer3: significant" in capsys.readouterr().out
    s = json.loads((out / "temporal_rsa.json").read_text())
    assert s["n_subjects"] == 2 and s["n_stimuli"] == 40
    spans = s["significant_spans"]["layer3"]
    assert spans and all(0.2 <= a and b <= 0.55 for a, b in spans)
    assert 0.25 <= s["peak_latency"][s["layers"].index("layer3")] <= 0.5
    for name in ("temporal_rsa.csv", "temporal_rsa_heatmap.png", "temporal_rsa_timecourses.png",
                 "temporal_rsa_peaks.png"):
        assert (out / name).stat().st_size > 0


def test_bad_epochs_give_a_clear_cli_error(tmp_path, capsys):
    import numpy as np

    np.savez(tmp_path / "e.npz", data=np.zeros((4, 2, 5)), times=np.arange(5))
    (tmp_path / "f").mkdir()
    np.save(tmp_path / "f" / "l.npy", np.zeros((4, 3)))
    assert main(["temporal-rsa", "--features", str(tmp_path / "f"), "--epochs",
                 str(tmp_path / "e.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "error" in capsys.readouterr().err
