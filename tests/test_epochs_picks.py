"""load_epochs channel picks (MNE conventions) and hierarchical event names (issue 25 item 12).

Real ``mne.EpochsArray`` objects with a bad EEG channel and an EOG channel: by default
both are left out (and recorded), ``picks=`` follows ``Epochs.pick``, several data channel
types without picks are refused, and ``"sound/sound000"`` event names resolve by tag.
"""

import numpy as np
import pytest

import alignjax as aj
from alignjax.errors import InvalidOptionError, ShapeMismatchError, StimulusMismatchError

mne = pytest.importorskip("mne")

IDS = ["sound000", "sound001", "sound002", "sound003"]


def _epochs(*, types=("eeg",) * 4 + ("eog",), bads=("E3",), names=None, seed=0, reps=3,
            event_names=None):
    rng = np.random.default_rng(seed)
    names = names or [f"E{i}" for i in range(len(types) - 1)] + ["EOG1"]
    codes = np.repeat(np.arange(len(IDS)), reps)
    X = rng.standard_normal((len(codes), len(types), 10)) * 1e-6
    X[:, names.index("E3") if "E3" in names else 0] *= 1e3       # the bad channel: huge noise
    info = mne.create_info(names, 100.0, list(types))
    info["bads"] = list(bads)
    events = np.c_[np.arange(len(codes)) * 20, np.zeros(len(codes), int), codes + 1]
    ev = {n: k + 1 for k, n in enumerate(event_names or IDS)}
    return mne.EpochsArray(X, info, events=events, tmin=-0.02, event_id=ev, verbose="error"), X


def test_default_picks_leave_out_bads_and_eog_and_record_them():
    ep, X = _epochs()
    d = aj.load_epochs(ep)
    assert d.ch_names == ["E0", "E1", "E2"] and d.ch_types == ["eeg"] * 3
    assert d.excluded_channels == {"E3": "bad", "EOG1": "eog"}
    np.testing.assert_allclose(d.data[0, 1], X[3:6, :3].mean(0))
    assert d.noise_cov.shape == (1, 3, 3) and d.info["nchan"] == 3
    every = aj.load_epochs(ep, picks="all")                  # MNE: "all" still drops bads
    assert every.ch_names == ["E0", "E1", "E2", "EOG1"]
    named = aj.load_epochs(ep, picks=["E3", "E0"])           # named channels are kept
    assert named.ch_names == ["E3", "E0"]
    np.testing.assert_allclose(named.data[0, 0], X[:3, [3, 0]].mean(0))
    assert aj.load_epochs(ep, picks="eog").ch_names == ["EOG1"]
    with pytest.raises(InvalidOptionError, match="picks='ecg'"):
        aj.load_epochs(ep, picks="ecg")


def test_several_data_channel_types_need_picks():
    ep, _ = _epochs(types=("eeg", "eeg", "mag", "grad", "eog"), bads=(),
                    names=["E0", "E1", "M0", "G0", "EOG1"])
    with pytest.raises(InvalidOptionError, match=r"several types \(eeg: 2, grad: 1, mag: 1\)"
                                                 r".*picks='eeg'"):
        aj.load_epochs(ep)
    assert aj.load_epochs(ep, picks="eeg").ch_names == ["E0", "E1"]
    assert aj.load_epochs(ep, picks="data").ch_names == ["E0", "E1", "M0", "G0"]
    assert aj.load_epochs(ep, picks="eeg").excluded_channels == {
        "M0": "not picked", "G0": "not picked", "EOG1": "eog"}


def test_subjects_with_different_bads_are_refused_naming_them(tmp_path):
    _epochs(bads=("E3",))[0].save(tmp_path / "sub-01-epo.fif", verbose="error")
    _epochs(bads=("E1",), seed=1)[0].save(tmp_path / "sub-02-epo.fif", verbose="error")
    with pytest.raises(ShapeMismatchError, match=r"in one only: \['E1', 'E3'\].*'sub-01' "
                                                 r"\['E3', 'EOG1'\].*interpolate_bads"):
        aj.load_epochs(tmp_path)
    # both subjects' good channels: channels named in picks are kept as named
    both = aj.load_epochs(tmp_path, picks=["E0", "E2"])
    assert both.ch_names == ["E0", "E2"] and both.data.shape[:3] == (2, 4, 2)


def test_hierarchical_event_names_resolve_by_tag():
    ep, X = _epochs(event_names=[f"sound/{s}" for s in IDS])
    d = aj.load_epochs(ep)
    assert d.stimulus_ids == [f"sound/{s}" for s in IDS]
    sub = d.aligned_to(["sound002", "sound000"])
    assert sub.stimulus_ids == ["sound002", "sound000"]
    np.testing.assert_allclose(sub.data[0, 0], X[6:9, :3].mean(0))
    with pytest.raises(StimulusMismatchError, match="MNE's hierarchical event tags.*"
                                                    "'sound000' matches 'sound/sound000'"):
        d.aligned_to(["s000"])
    with pytest.raises(StimulusMismatchError, match="matches both 'sound' and 'sound000'"):
        d.aligned_to(["sound", "sound000"])


def test_event_names_sharing_a_tag_pool_their_trials():
    names = ["left/s0", "right/s0", "left/s1", "right/s1"]
    ep, X = _epochs(event_names=names)
    d = aj.load_epochs(ep)
    pooled = d.aligned_to(["s1", "s0"])
    np.testing.assert_allclose(pooled.data[0, 1], X[:6, :3].mean(0))      # 6 trials of s0
    assert (pooled.n_trials == 6).all()
    with pytest.raises(StimulusMismatchError, match="not available with folds="):
        aj.load_epochs(ep, folds=3).aligned_to(["s0", "s1"])


def test_array_files_take_bads_and_picks_by_name(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 3, 6))
    np.savez(tmp_path / "s.npz", data=X, times=np.linspace(-0.1, 0.4, 6),
             stimulus_ids=np.repeat(["a", "b"], 4), ch_names=np.array(["Fz", "Cz", "Pz"]),
             bads=np.array(["Cz"]))
    d = aj.load_epochs(tmp_path / "s.npz")
    assert d.ch_names == ["Fz", "Pz"] and d.excluded_channels == {"Cz": "bad"}
    assert aj.load_epochs(tmp_path / "s.npz", picks=["Pz", 0]).ch_names == ["Pz", "Fz"]
    with pytest.raises(InvalidOptionError, match="no channel 'eeg'.*by name or index"):
        aj.load_epochs(tmp_path / "s.npz", picks="eeg")
