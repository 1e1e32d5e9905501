"""--frame-rate: time-resolved features resampled onto a common grid, with their times."""

import numpy as np
import pytest
import soundfile as sf

from alignjax import InvalidOptionError
from alignjax.app.cli import main
from extractors.run import extract
from extractors.timegrid import resample_frames, resampled_length

from extract_helpers import SR

GRID = "torch:grid_models:build"
F0, AMP, PHASE = 3.0, 0.5, 0.7


def _sines(folder, seconds=(2.0, 1.5)):
    folder.mkdir()
    for k, s in enumerate(seconds):
        t = np.arange(int(s * SR)) / SR
        sf.write(str(folder / f"s{k}.wav"), AMP * np.sin(2 * np.pi * F0 * t + PHASE), SR,
                 subtype="FLOAT")
    return folder


def test_resample_keeps_phase_and_amplitude_of_a_feature_sine():
    native, target = 100.0, 20.0
    t = np.arange(300) / native
    x = np.stack([np.sin(2 * np.pi * 2.0 * t + 0.3), 3 * np.cos(2 * np.pi * 5.0 * t)], 1)
    y = resample_frames(x, native, target)
    assert y.shape == (resampled_length(300, native, target), 2) == (60, 2)
    tk = np.arange(60) / target
    ref = np.stack([np.sin(2 * np.pi * 2.0 * tk + 0.3), 3 * np.cos(2 * np.pi * 5.0 * tk)], 1)
    # within 1.5 % of each sine's amplitude (the low-pass ripple at half the new Nyquist)
    np.testing.assert_allclose(y[5:-5, 0], ref[5:-5, 0], atol=0.015)
    np.testing.assert_allclose(y[5:-5, 1], ref[5:-5, 1], atol=0.045)
    # a component above the new Nyquist rate (10 Hz) is removed, not aliased
    z = resample_frames(np.sin(2 * np.pi * 30.0 * t)[:, None], native, target)
    assert np.abs(z[5:-5]).max() < 0.05


def test_extract_frame_rate_stores_times_and_resampled_sine(tmp_path):
    stim = _sines(tmp_path / "stim")
    store = extract(GRID, stim, tmp_path / "out", pooling="none", frame_rate=20.0,
                    progress=False)
    x = store.load("frames")
    times = store.times("frames")
    assert x.shape == (2, 40, 2)
    np.testing.assert_allclose(times, np.arange(40) / 20.0)
    assert store.settings["frame_rate_hz"] == {"frames": 20.0}
    assert store.settings["native_frame_rate_hz"] == {"frames": 100.0}
    assert store.n_valid_frames("frames").tolist() == [40, 30]
    ref = AMP * np.sin(2 * np.pi * F0 * times + PHASE)
    np.testing.assert_allclose(x[0, 3:-3, 0], ref[3:-3], atol=0.01)
    np.testing.assert_allclose(x[0, 3:-3, 1], -2 * ref[3:-3], atol=0.02)
    # amplitude and phase from a least-squares fit over the interior frames
    tt = times[3:-3]
    design = np.stack([np.sin(2 * np.pi * F0 * tt), np.cos(2 * np.pi * F0 * tt)], 1)
    (a, b), *_ = np.linalg.lstsq(design, x[0, 3:-3, 0], rcond=None)
    assert np.hypot(a, b) == pytest.approx(AMP, abs=0.01)
    assert np.arctan2(b, a) == pytest.approx(PHASE, abs=0.02)


def test_native_times_and_frame_rate_errors(tmp_path, capsys):
    stim = _sines(tmp_path / "stim")
    native = extract(GRID, stim, tmp_path / "native", pooling="none", progress=False)
    np.testing.assert_allclose(native.times("frames"), np.arange(200) / 100.0)
    with pytest.raises(InvalidOptionError, match="above the native rate"):
        extract(GRID, stim, tmp_path / "up", pooling="none", frame_rate=200.0, progress=False)
    assert not (tmp_path / "up").exists()
    with pytest.raises(InvalidOptionError, match="pooling='none'"):
        extract(GRID, stim, tmp_path / "mean", frame_rate=20.0, progress=False)
    assert main(["extract", "--model", GRID, "--stimuli", str(stim), "--out",
                 str(tmp_path / "cli"), "--pooling", "none", "--frame-rate", "50", "--quiet"]) == 0
    assert "2 stimuli x 1 layers" in capsys.readouterr().out
