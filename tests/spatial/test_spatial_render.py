"""Spatial scene rendering: conventions, acoustics, design balance and bad input."""


import numpy as np
import pytest

pytest.importorskip("pyroomacoustics")
pytest.importorskip("soundfile")

from alignjax.errors import InvalidOptionError  # noqa: E402
from extractors import spatial as sp  # noqa: E402

FS = 16000


def _scene(az=90.0, el=0.0, d=1.5, room=("shoebox", "small", 0.6)):
    return sp.Scene("t", sp.Room(*room), az, el, d, "noise", "src", 3, noise_seed=5)


def test_azimuth_convention_positions():
    _, _, lis = sp.room_geometry("shoebox", "small")
    front = sp.source_position(_scene(az=0.0, d=1.0)) - lis
    left = sp.source_position(_scene(az=90.0, d=1.0)) - lis
    up = sp.source_position(_scene(az=0.0, el=20.0, d=1.0)) - lis
    np.testing.assert_allclose(front, [1, 0, 0], atol=1e-12)   # 0 = front (+x)
    np.testing.assert_allclose(left, [0, 1, 0], atol=1e-12)    # +90 = left (+y)
    assert up[2] > 0                                          # elevation + = up


def test_binaural_source_on_the_left_is_louder_and_earlier_in_the_left_ear():
    pytest.importorskip("slab")
    rir, omni = sp.scene_rir(_scene(az=90.0), fmt="binaural", sample_rate=FS)
    onset = int(np.argmax(np.abs(omni)))
    win = slice(max(0, onset - 40), onset + 40)  # the direct sound
    left, right = rir[0, win], rir[1, win]
    assert np.sum(left ** 2) > 2 * np.sum(right ** 2)
    first = [int(np.argmax(np.abs(c) > 0.2 * np.abs(c).max())) for c in (left, right)]
    assert first[0] < first[1]
    # mirrored source: the other way round
    rir_r, _ = sp.scene_rir(_scene(az=270.0), fmt="binaural", sample_rate=FS)
    assert np.sum(rir_r[1, win] ** 2) > 2 * np.sum(rir_r[0, win] ** 2)


def test_foa_encodes_direction_in_acn_sn3d():
    rir, omni = sp.scene_rir(_scene(az=90.0), fmt="foa", sample_rate=FS)
    onset = int(np.argmax(np.abs(rir[0])))
    W, Y, Z, X = rir[:, onset]
    assert Y == pytest.approx(W, rel=0.05) and abs(X) < 0.1 * abs(W) and abs(Z) < 0.1 * abs(W)


@pytest.mark.parametrize("room", [("shoebox", "small", 0.3), ("lshape", "large", 0.9),
                                  ("lshape", "small", 0.6)])
def test_measured_rt60_within_20_percent_of_target(room):
    _, omni = sp.scene_rir(_scene(az=45.0, d=2.0, room=room), fmt="mono", sample_rate=FS)
    assert sp.measured_rt60(omni, FS) == pytest.approx(room[2], rel=0.2)


def test_rendering_is_deterministic():
    dry = np.random.default_rng(0).normal(size=FS // 4)
    a = sp.render_scene(_scene(), dry, fmt="stereo", sample_rate=FS)
    b = sp.render_scene(_scene(), dry, fmt="stereo", sample_rate=FS)
    np.testing.assert_array_equal(a[0], b[0])


def test_design_is_balanced_nested_and_crossed():
    scenes = sp.spatial_design(96, seed=3)
    rooms = {s.room for s in scenes}
    assert len(rooms) == 12
    for room in rooms:
        mine = [s for s in scenes if s.room == room]
        for attr in ("azimuth", "elevation", "distance", "cls"):
            _, counts = np.unique([getattr(s, attr) for s in mine], return_counts=True)
            assert counts.max() - counts.min() <= 1
    # every dry source lives in one room only
    room_of = {}
    for s in scenes:
        assert room_of.setdefault(s.source, s.room) == s.room
    # fully crossed when the scenes per room are a multiple of the crossing
    sc = sp.spatial_design(2 * 2 * 2 * 2 * 2 * 2, seed=0, azimuths=[0, 90], elevations=[0, 10],
                           distances=[1, 1.5], classes=["noise", "chirp"], rt60s=[0.5],
                           volumes=["small", "large"], shapes=["shoebox"])
    for room in {s.room for s in sc}:
        cells = {(s.azimuth, s.elevation, s.distance, s.cls) for s in sc if s.room == room}
        assert len(cells) == 16


def test_bad_designs_raise_clear_errors():
    with pytest.raises(InvalidOptionError, match="distance.*level"):
        sp.spatial_design(24, distances=[1.0])
    with pytest.raises(sp.SceneError, match="does not fit"):
        sp.spatial_design(24, distances=[1.0, 4.5])
    with pytest.raises(sp.SceneError, match="unreachable"):
        sp.spatial_design(24, rt60s=[0.05, 0.3])
    with pytest.raises(InvalidOptionError, match=r"\[-180, 360\)"):
        sp.spatial_design(24, azimuths=[0, 400])
    with pytest.raises(InvalidOptionError, match="format"):
        sp.scene_rir(_scene(), fmt="5.1", sample_rate=FS)


def test_channel_selection_for_mono_encoders(tmp_path):
    import soundfile as sf

    from extractors.audio import AudioError, load_audio

    x = np.stack([np.full(800, 0.5), np.full(800, -0.25)], axis=1)
    sf.write(tmp_path / "st.wav", x, FS, subtype="FLOAT")
    get = lambda ch: load_audio(tmp_path / "st.wav", sample_rate=FS, channels=ch)  # noqa: E731
    np.testing.assert_allclose(get("left"), 0.5)
    np.testing.assert_allclose(get("right"), -0.25)
    np.testing.assert_allclose(get(1), -0.25)
    np.testing.assert_allclose(get("mix"), 0.125)
    with pytest.raises(AudioError, match="channel 3"):
        get(3)
