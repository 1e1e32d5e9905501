"""Classical baselines and the stimulus generator."""

import csv

import numpy as np
import pytest
import soundfile as sf

from alignjax import InvalidOptionError
from alignjax.app.cli import main
from extractors.spectral import (MODULATION_RATES, MODULATION_SCALES, SpectralExtractor,
                                 log_mel, mfcc, modulation_energy)

from extract_helpers import SR

T = np.arange(SR) / SR


def test_log_mel_and_mfcc_match_librosa():
    import librosa
    import scipy.fft

    w = (0.3 * np.sin(2 * np.pi * 1000 * T)).astype(np.float32)
    lm = log_mel(w)
    assert lm.shape == (101, 64)
    ref = 10 * np.log10(np.maximum(
        librosa.feature.melspectrogram(y=w, sr=SR, n_fft=512, hop_length=160, n_mels=64), 1e-10))
    np.testing.assert_allclose(lm, ref.T, rtol=1e-4, atol=1e-3)
    # the 1 kHz tone lands in the mel band whose centre is nearest 1 kHz
    centres = librosa.mel_frequencies(n_mels=66, fmax=SR / 2)[1:-1]
    assert abs(centres[lm[50].argmax()] - 1000) < 100
    mf = mfcc(w)
    want = scipy.fft.dct(lm, type=2, norm="ortho", axis=1)[:, :20]
    np.testing.assert_allclose(mf, want, rtol=1e-4, atol=1e-2)


def test_silent_clip_gives_finite_features():
    z = np.zeros(SR // 2, np.float32)
    for kind in ("mel", "mfcc", "modulation"):
        ext = SpectralExtractor(kind)
        out = ext.forward(z[None], ext.layer_names())
        assert all(np.isfinite(v).all() for v in out.values())


def _sweep(up: bool):
    f_a, f_b = (300.0, 3000.0) if up else (3000.0, 300.0)
    k = np.log(f_b / f_a) / 0.25  # a sweep every 250 ms, repeated
    tt = T % 0.25
    return np.sin(2 * np.pi * f_a * (np.exp(k * tt) - 1) / k).astype(np.float32)


def test_modulation_direction_and_rate():
    up = modulation_energy(_sweep(True))
    down = modulation_energy(_sweep(False))
    assert up.shape == (len(MODULATION_SCALES), len(MODULATION_RATES), 2, 72)
    # axis 2: 0 = upward, 1 = downward
    assert up[:, :, 0].sum() > 1.5 * up[:, :, 1].sum()
    assert down[:, :, 1].sum() > 1.5 * down[:, :, 0].sum()
    # 8 Hz amplitude modulation of noise adds energy mostly at the 8 Hz rate filter
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(SR)
    am = ((1 + 0.8 * np.sin(2 * np.pi * 8 * T)) * noise).astype(np.float32)
    gain = (modulation_energy(am).sum(axis=(0, 2, 3))
            / modulation_energy(noise.astype(np.float32)).sum(axis=(0, 2, 3)))
    assert MODULATION_RATES[int(gain.argmax())] == 8.0


def test_unknown_spectral_kind():
    with pytest.raises(InvalidOptionError, match="spectral:mel"):
        SpectralExtractor("chroma")


def test_synth_is_deterministic_and_labelled(tmp_path):
    from extractors.synth import MATERIALS, synthesize

    cats = ["impact"]
    a = synthesize(tmp_path / "a", n=14, seed=1, duration=0.3, categories=cats)
    b = synthesize(tmp_path / "b", n=3, seed=1, duration=0.3, categories=cats)
    c = synthesize(tmp_path / "c", n=3, seed=2, duration=0.3, categories=cats)
    for name in ("0000_impact.wav", "0002_impact.wav"):
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes()
        assert (a.parent / name).read_bytes() != (c.parent / name).read_bytes()
    rows = list(csv.DictReader(open(a)))
    assert [r["material"] for r in rows[:7]] == list(MATERIALS)
    assert {r["hollow"] for r in rows} == {"0", "1"}
    x, sr = sf.read(str(a.parent / rows[0]["path"]))
    assert sr == 16000 and x.shape == (4800,) and 0.45 < np.abs(x).max() <= 0.5


def test_impact_damping_follows_material():
    from extractors.synth import impact_sound

    def ring_time(material):
        x, _ = impact_sound(material, hollow=False, extension=1, duration=1.0, seed=0)
        env = np.abs(x)
        return (env[SR // 2:] ** 2).sum() / (env ** 2).sum()  # energy left after 0.5 s

    assert ring_time("metal") > ring_time("glass") > ring_time("wood") > ring_time("cardboard")


def test_synth_cli_all_categories(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--n", "7", "--duration", "0.2",
                 "--categories", "impact,harmonic,noise,chirp,am,fm,clicks"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "labels.csv")))
    assert [r["category"] for r in rows] == ["impact", "harmonic", "noise", "chirp", "am",
                                             "fm", "clicks"]
    assert rows[3]["direction"] in ("up", "down") and float(rows[6]["rate_hz"]) > 0
    assert main(["synth", "--out", str(tmp_path / "x"), "--categories", "laser"]) == 2


def test_modulation_refuses_clips_shorter_than_its_slowest_rate():
    from extractors.audio import AudioError

    ext = SpectralExtractor("modulation")
    assert ext.min_samples == SR // 2  # one period of 2 Hz
    with pytest.raises(AudioError, match="shorter than the 8000 samples"):
        ext.check_length(int(0.02 * SR))
    ext.check_length(SR // 2)


def test_spectral_parameters_are_recorded_in_full():
    d = SpectralExtractor("mfcc").describe()
    mel = d["melspectrogram"]
    for key in ("fmin", "fmax", "norm", "power", "window", "center", "htk", "n_fft"):
        assert key in mel, key
    assert mel["fmax"] == SR / 2 and mel["norm"] == "slaney" and d["mfcc"]["dct_type"] == 2
    m = SpectralExtractor("modulation").describe()
    assert m["cqt"]["window"] == "hann" and m["amplitude_to_db"]["amin"] == 1e-5
    assert SpectralExtractor("mel").frame_rate("logmel") == 100.0
    assert SpectralExtractor("modulation").frame_rate("modulation") == 0.0
