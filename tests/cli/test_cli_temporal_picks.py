"""temporal-rsa --picks: bad and EOG channels are left out by default and recorded in
temporal_rsa.json; --picks selects channels as MNE's picks do (issue 25 item 12)."""

import json

import numpy as np
import pytest

from alignjax.app.cli import main

mne = pytest.importorskip("mne")


def test_temporal_rsa_records_channels_and_takes_picks(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n, reps = 10, 2
    feats = tmp_path / "f"
    feats.mkdir()
    np.save(feats / "l.npy", rng.standard_normal((n, 4)))
    (feats / "stimulus_ids.txt").write_text("".join(f"s{k}\n" for k in range(n)))
    codes = np.repeat(np.arange(n), reps)
    info = mne.create_info(["E0", "E1", "E2", "Ebad", "EOG1"], 100.0, ["eeg"] * 4 + ["eog"])
    info["bads"] = ["Ebad"]
    ep = mne.EpochsArray(rng.standard_normal((len(codes), 5, 8)) * 1e-6, info,
                         events=np.c_[np.arange(len(codes)) * 20, 0 * codes, codes + 1],
                         tmin=-0.02, event_id={f"cond/s{k}": k + 1 for k in range(n)},
                         verbose="error")
    ep.save(tmp_path / "sub-01-epo.fif", verbose="error")
    args = ["temporal-rsa", "--features", str(feats), "--epochs", str(tmp_path / "sub-01-epo.fif"),
            "--n-perm", "19", "--correction", "max", "--no-progress"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert "3 channels (eeg); left out: Ebad (bad), EOG1 (eog)" in capsys.readouterr().out
    s = json.loads((tmp_path / "a" / "temporal_rsa.json").read_text())
    assert s["channels"] == ["E0", "E1", "E2"] and s["n_channels"] == 3
    assert s["excluded_channels"] == {"Ebad": "bad", "EOG1": "eog"} and s["picks"] is None
    assert main(args + ["--out", str(tmp_path / "b"), "--picks", "E2,E0"]) == 0
    s = json.loads((tmp_path / "b" / "temporal_rsa.json").read_text())
    assert s["channels"] == ["E2", "E0"] and s["picks"] == ["E2", "E0"]
    assert main(args + ["--out", str(tmp_path / "c"), "--picks", "ecg"]) == 2
    assert "picks='ecg'" in capsys.readouterr().err
