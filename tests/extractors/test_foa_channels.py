"""First-order ambisonic input: ``--channels mix`` is the omnidirectional W, declared and recorded.

A noise source is encoded into B-format by hand (ACN/SN3D gains 1, sin a cos e, sin e,
cos a cos e; FuMa W at -3 dB) at 12 azimuths and 2 elevations. The mean of the four
channels is a directional microphone (a null behind and to the right); W is flat.
"""

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from alignjax import InvalidOptionError
from alignjax.app.cli import main
from extractors.audio import AudioError, load_audio

FS = 16000
DIRECTIONS = [(az, el) for az in range(0, 360, 30) for el in (0, 30)]


def _encode(src, az, el, fmt):
    a, e = np.radians(az), np.radians(el)
    y, z, x = np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)
    gains = {"sn3d": [1, y, z, x], "n3d": [1, np.sqrt(3) * y, np.sqrt(3) * z, np.sqrt(3) * x],
             "fuma": [1 / np.sqrt(2), x, y, z]}[fmt]
    return (src[:, None] * np.asarray(gains)[None]).astype(np.float32)


def _scenes(folder, fmt="sn3d", n=FS // 2):
    folder.mkdir(parents=True, exist_ok=True)
    src = np.random.default_rng(0).standard_normal(n).astype(np.float32) * 0.1
    paths = []
    for az, el in DIRECTIONS:
        p = folder / f"az{az:03d}_el{el:02d}.wav"
        sf.write(str(p), _encode(src, az, el, fmt), FS, subtype="FLOAT")
        paths.append(p)
    return paths


def _level_db(w):
    return 20 * np.log10(np.sqrt(np.mean(np.asarray(w, np.float64) ** 2)))


@pytest.mark.parametrize("fmt,declared", [("sn3d", "foa-acn-sn3d"), ("n3d", "foa-acn-n3d"),
                                          ("fuma", "foa-fuma")])
def test_mix_of_ambisonic_audio_is_w_and_flat_over_directions(tmp_path, fmt, declared):
    paths = _scenes(tmp_path, fmt)
    levels = [_level_db(load_audio(p, sample_rate=FS, channel_format=declared)) for p in paths]
    assert max(levels) - min(levels) < 0.1
    # the omni pressure signal, whatever the normalisation (FuMa's W is -3 dB)
    ref = _level_db(load_audio(paths[0], sample_rate=FS, channels=0, channel_format="foa-acn-sn3d"))
    if fmt != "fuma":
        assert np.mean(levels) == pytest.approx(ref, abs=0.01)
    else:
        assert np.mean(levels) == pytest.approx(ref + 10 * np.log10(2), abs=0.01)


def test_undeclared_ambisonic_mix_is_directional_and_warned(tmp_path):
    paths = _scenes(tmp_path)
    with pytest.warns(UserWarning, match="declare it"):
        levels = [_level_db(load_audio(p, sample_rate=FS)) for p in paths]
    assert max(levels) - min(levels) > 6.0  # what 'mix' did to FOA before it was declared


def test_left_right_and_wrong_channel_counts_are_refused_for_foa(tmp_path):
    p = _scenes(tmp_path)[0]
    with pytest.raises(AudioError, match="no left|not available in foa-acn-sn3d"):
        load_audio(p, sample_rate=FS, channels="left", channel_format="foa")
    stereo = tmp_path / "stereo.wav"
    sf.write(str(stereo), np.zeros((FS // 10, 2), np.float32), FS)
    with pytest.raises(AudioError, match=r"stereo\.wav.*2 channel\(s\).*first-order ambisonics"):
        load_audio(stereo, sample_rate=FS, channel_format="foa-acn-sn3d")
    with pytest.raises(InvalidOptionError, match="channel format must be one of"):
        load_audio(p, sample_rate=FS, channel_format="hoa")


def _labels_csv(folder, paths, fmt_value):
    path = folder / "labels.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "path", "azimuth", "format"])
        for p, (az, _) in zip(paths, DIRECTIONS):
            w.writerow([p.stem, p.name, az, fmt_value(p)])
    return path


def test_extract_reads_the_format_column_and_records_format_and_map(tmp_path):
    """`alignjax extract` on a spatial scenes' labels.csv (format=foa): the mel features of
    the mono downmix do not depend on the azimuth, and the manifest says why."""
    paths = _scenes(tmp_path / "wav")
    labels = _labels_csv(tmp_path / "wav", paths, lambda p: "foa")
    out = tmp_path / "mel"
    assert main(["extract", "--model", "spectral:mel", "--stimuli", str(labels),
                 "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    s = m["settings"]
    assert (s["channel_format"], s["channel_map"]) == ("foa-acn-sn3d", ["W", "Y", "Z", "X"])
    assert s["downmix"].startswith("W") and s["request"]["channel_format"] == "foa-acn-sn3d"
    from alignjax.io import FeatureStore

    store = FeatureStore(out)
    X = np.asarray(store.load(store.layers[0]))
    np.testing.assert_allclose(X, X[:1].repeat(len(X), 0), rtol=1e-5, atol=1e-6)


def test_extract_plain_store_records_the_plain_format_and_explicit_flag_wins(tmp_path):
    paths = _scenes(tmp_path / "wav", "fuma")
    out = tmp_path / "mel"
    assert main(["extract", "--model", "spectral:mel", "--stimuli", str(tmp_path / "wav"),
                 "--out", str(out), "--quiet", "--channel-format", "foa-fuma"]) == 0
    s = json.loads((out / "manifest.json").read_text())["settings"]
    assert s["channel_map"] == ["W", "X", "Y", "Z"] and "sqrt(2)" in s["downmix"]
    assert len(paths) == len(json.loads((out / "manifest.json").read_text())["stimulus_ids"])
    mono = tmp_path / "mono"
    mono.mkdir()
    sf.write(str(mono / "a.wav"), np.random.default_rng(1).standard_normal(FS // 4) * 0.1, FS)
    assert main(["extract", "--model", "spectral:mel", "--stimuli", str(mono),
                 "--out", str(tmp_path / "m"), "--quiet"]) == 0
    s = json.loads((tmp_path / "m" / "manifest.json").read_text())["settings"]
    assert (s["channel_format"], s["channel_map"], s["downmix"]) == ("plain", None,
                                                                     "mean of the channels")
    assert "channel_format" not in s["request"]  # older plain stores keep matching


def test_extract_refuses_a_format_column_that_declares_no_single_format(tmp_path, capsys):
    paths = _scenes(tmp_path / "wav")
    labels = _labels_csv(tmp_path / "wav", paths,
                         lambda p: "foa" if p.stem.startswith("az0") else "binaural")
    assert main(["extract", "--model", "spectral:mel", "--stimuli", str(labels),
                 "--out", str(tmp_path / "x"), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "'format' column" in err and "'binaural', 'foa'" in err and "--channel-format" in err
    assert not (tmp_path / "x" / "manifest.json").exists()
