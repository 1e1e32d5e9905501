"""load_epochs: MNE Epochs (.fif and objects), .npz/.h5 arrays, folds, and bad inputs."""

import numpy as np
import pytest

import alignjax as aj
from alignjax.errors import (InvalidFoldsError, NonFiniteError, ShapeMismatchError,
                             StimulusMismatchError)

IDS = ["a", "b", "c", "d"]


def _trials(seed=0, reps=3, C=3, T=8):
    rng = np.random.default_rng(seed)
    ids = [s for s in IDS for _ in range(reps)]
    return rng.standard_normal((len(ids), C, T)), ids, np.linspace(-0.1, 0.25, T)


def test_npz_and_h5_trials_are_averaged_per_stimulus(tmp_path):
    import h5py

    X, ids, times = _trials()
    np.savez(tmp_path / "s1.npz", data=X, times=times, stimulus_ids=np.array(ids))
    with h5py.File(tmp_path / "s2.h5", "w") as f:
        f["data"], f["times"], f["stimulus_ids"] = X[::-1] * 2, times, np.array(ids[::-1], "S")
    ep = aj.load_epochs(tmp_path, folds=3)
    assert ep.subjects == ["s1", "s2"] and ep.stimulus_ids == IDS
    np.testing.assert_allclose(ep.data[0, 1], X[3:6].mean(0))
    np.testing.assert_allclose(ep.data[1], 2 * ep.data[0])
    assert ep.folds.shape == (2, 3, 4, 3, 8) and (ep.n_trials == 3).all()
    np.testing.assert_allclose(ep.folds[0, :, 1].mean(0), ep.data[0, 1])
    assert ep.noise_cov.shape == (2, 3, 3)
    sub = ep.aligned_to(["d", "a"])
    np.testing.assert_allclose(sub.data[:, 1], ep.data[:, 0])


def test_mne_epochs_object_and_fif(tmp_path):
    mne = pytest.importorskip("mne")
    import pandas as pd

    X, ids, _ = _trials(reps=2)
    info = mne.create_info(["Fz", "Cz", "Pz"], 100.0, "eeg")
    events = np.c_[np.arange(len(ids)) * 20, np.zeros(len(ids), int),
                   [IDS.index(s) + 1 for s in ids]]
    ep = mne.EpochsArray(X, info, events=events, tmin=-0.1,
                         event_id={s: k + 1 for k, s in enumerate(IDS)}, verbose="error")
    by_event = aj.load_epochs(ep)
    assert by_event.stimulus_ids == IDS and by_event.ch_names == ["Fz", "Cz", "Pz"]
    ep.metadata = pd.DataFrame({"stimulus_id": [f"s_{s}" for s in ids]})
    ep.save(tmp_path / "sub-01-epo.fif", verbose="error")
    loaded = aj.load_epochs(tmp_path / "sub-01-epo.fif")
    assert loaded.subjects == ["sub-01"] and loaded.stimulus_ids[0] == "s_a"
    np.testing.assert_allclose(loaded.data, by_event.data, rtol=1e-5, atol=1e-12)
    with pytest.raises(StimulusMismatchError, match="no metadata column 'sound'"):
        aj.load_epochs(ep, stimulus_ids="sound")


def test_bad_inputs(tmp_path):
    X, ids, times = _trials()
    np.savez(tmp_path / "noids.npz", data=X, times=times)
    with pytest.raises(StimulusMismatchError, match="without stimulus ids"):
        aj.load_epochs(tmp_path / "noids.npz")
    d = tmp_path / "subjects"
    d.mkdir()
    np.savez(d / "s1.npz", data=X, times=times, stimulus_ids=np.array(ids))
    np.savez(d / "s2.npz", data=X[3:], times=times, stimulus_ids=np.array(ids[3:]))
    with pytest.raises(StimulusMismatchError, match="'a' has zero trials in subject 's2'"):
        aj.load_epochs(d)
    np.savez(d / "s2.npz", data=X, times=times + 0.01, stimulus_ids=np.array(ids))
    with pytest.raises(ShapeMismatchError, match="times differ between subjects"):
        aj.load_epochs(d)
    bad = X.copy()
    bad[:, 1] = np.nan
    np.savez(d / "s2.npz", data=bad, times=times, stimulus_ids=np.array(ids),
             ch_names=np.array(["Fz", "Cz", "Pz"]))
    with pytest.raises(NonFiniteError, match=r"subject 's2' has NaN or inf in channels \['Cz'\]"):
        aj.load_epochs(d / "s2.npz")
    with pytest.raises(InvalidFoldsError, match="fewer than the 4 folds"):
        aj.load_epochs(d / "s1.npz", folds=4)


def test_the_core_never_imports_mne():
    import subprocess
    import sys

    code = ("import sys, pkgutil, importlib, alignjax\n"
            "for m in pkgutil.walk_packages(alignjax.__path__, 'alignjax.'):\n"
            "    importlib.import_module(m.name)\n"
            "assert 'mne' not in sys.modules and 'mne_rsa' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
