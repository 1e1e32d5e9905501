"""hf: adapter on tiny random models of every family, saved and loaded back offline."""

import math
import os
import textwrap

import numpy as np
import pytest

from alignjax.app.cli import main
from extractors.audio import AudioError
from extractors.run import extract
from extractors.spec import load_extractor

from extract_helpers import FAMILIES, SR, write_tone

RNG = np.random.default_rng(0)


def _waves(n, seconds, sr):
    return (0.1 * RNG.standard_normal((n, int(seconds * sr)))).astype(np.float32)


def _reference(path, family, waves, sr):
    """Hidden states computed directly with transformers."""
    import torch
    import transformers as T

    fe = T.AutoFeatureExtractor.from_pretrained(path)
    model = T.AutoModel.from_pretrained(path).eval()
    with torch.no_grad():
        if family == "whisper":
            enc = fe(list(waves), sampling_rate=sr, return_tensors="pt")
            return model.encoder(enc["input_features"], output_hidden_states=True).hidden_states
        if family == "clap":
            enc = fe(list(waves), sampling_rate=sr, return_tensors="pt", truncation="rand_trunc")
            return model.audio_model(input_features=enc["input_features"],
                                     output_hidden_states=True).hidden_states
        enc = fe(waves, sampling_rate=sr, return_tensors="pt")
        key = "input_values" if "input_values" in enc else "input_features"
        return model(**{key: enc[key]}, output_hidden_states=True).hidden_states


@pytest.mark.parametrize("family", FAMILIES)
def test_family_loads_offline_and_matches_transformers(tiny_dir, family):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    path = tiny_dir(family)
    ext = load_extractor(f"hf:{path}")
    sr = 48000 if family == "clap" else SR
    assert ext.sample_rate == sr
    assert ext.layer_names() == ["hidden_states.0", "hidden_states.1", "hidden_states.2"]
    waves = _waves(2, 0.5, sr)
    got = ext.forward(waves, ext.layer_names())
    ref = _reference(path, family, waves, sr)
    assert len(ref) == len(ext.layer_names())
    for i, name in enumerate(ext.layer_names()):
        r = ref[i].numpy()
        if r.ndim == 4:
            r = r.reshape(r.shape[0], r.shape[1], -1).transpose(0, 2, 1)
        if family == "whisper":
            n_frames = math.ceil(waves.shape[1] / 320)
            assert got[name].shape[1] == n_frames < r.shape[1]
            r = r[:, :n_frames]
        assert got[name].shape == r.shape
        np.testing.assert_allclose(got[name], r, rtol=1e-4, atol=1e-5)
        assert np.isfinite(got[name]).all()


def test_whisper_is_padded_to_its_chunk_and_rejects_longer(tiny_dir, tmp_path):
    ext = load_extractor(f"hf:{tiny_dir('whisper')}")
    assert ext.max_samples == 2 * SR  # the tiny feature extractor's chunk_length is 2 s
    w = _waves(1, 1.0, SR)
    short = ext.forward(w[:, :8000], ["hidden_states.2"])["hidden_states.2"]
    assert short.shape == (1, 25, 32)
    with pytest.raises(AudioError, match="longer"):
        ext.check_length(3 * SR)


def test_clap_truncation_is_deterministic(tiny_dir):
    ext = load_extractor(f"hf:{tiny_dir('clap')}")
    long = _waves(1, 2.5, 48000)  # longer than max_length_s = 1: would be randomly cropped
    a = ext.forward(long, ["hidden_states.1"])["hidden_states.1"]
    b = ext.forward(long, ["hidden_states.1"])["hidden_states.1"]
    np.testing.assert_array_equal(a, b)
    first = ext.forward(long[:, :48000], ["hidden_states.1"])["hidden_states.1"]
    np.testing.assert_array_equal(a, first)  # cropped to the first max_length_s seconds


def test_hf_store_first_pooling_is_cls_token(tiny_dir, synth_set, tmp_path):
    path = tiny_dir("ast")
    store = extract(f"hf:{path}", synth_set, tmp_path / "st", pooling="first",
                    layers=["hidden_states.2"], progress=False)
    ext = load_extractor(f"hf:{path}")
    from extractors.audio import list_stimuli, load_audio

    s0 = list_stimuli(synth_set)[0]
    want = ext.forward(load_audio(s0.path, sample_rate=SR)[None], ["hidden_states.2"])
    np.testing.assert_allclose(store["hidden_states.2"][0], want["hidden_states.2"][0, 0],
                               rtol=1e-5, atol=1e-6)


def test_clip_shorter_than_receptive_field(tiny_dir, tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    write_tone(d / "ok.wav", seconds=0.2)
    write_tone(d / "tiny.wav", seconds=10 / SR)  # 10 samples < 20-sample conv receptive field
    spec = f"hf:{tiny_dir('wav2vec2')}"
    with pytest.raises(AudioError, match="shorter than the 20 samples"):
        extract(spec, d, tmp_path / "a", progress=False)
    store = extract(spec, d, tmp_path / "b", on_error="skip", progress=False)
    assert list(store.skipped) == ["tiny"]
    store = extract(spec, d, tmp_path / "c", duration=0.2, progress=False)  # padding fixes it
    assert not store.skipped


def test_hooks_agree_with_hidden_states(tiny_dir, tmp_path, monkeypatch):
    path = tiny_dir("wav2vec2", do_normalize=False)
    modname = "factory_w2v_for_test"
    (tmp_path / f"{modname}.py").write_text(textwrap.dedent(f"""
        from transformers import AutoModel

        def build():
            return AutoModel.from_pretrained({str(path)!r})
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    hooked = load_extractor(f"torch:{modname}:build")
    assert "encoder.layers.0" in hooked.layer_names()
    hf = load_extractor(f"hf:{path}")
    w = _waves(2, 0.5, SR)
    a = hooked.forward(w, ["encoder.layers.0", "encoder.layers.1",
                           "feature_extractor.conv_layers.1.conv"])
    b = hf.forward(w, ["hidden_states.1", "hidden_states.2"])
    np.testing.assert_allclose(a["encoder.layers.0"], b["hidden_states.1"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a["encoder.layers.1"], b["hidden_states.2"], rtol=1e-5, atol=1e-6)
    # a Conv1d output is channels-first: read as (batch, n_frames, channels)
    assert a["feature_extractor.conv_layers.1.conv"].shape == (2, 799, 16)


def test_layers_cli(tiny_dir, capsys):
    assert main(["layers", f"hf:{tiny_dir('hubert')}", "--seconds", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "hidden_states.0" in out and "hidden_states.2" in out and "(799, 32)" in out


def test_hf_missing_directory_config(tmp_path):
    (tmp_path / "empty_model").mkdir()
    from alignjax import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="config.json"):
        load_extractor(f"hf:{tmp_path / 'empty_model'}")


def test_fused_clap_is_deterministic_and_batch_invariant(tiny_dir):
    """Fusion checkpoints: transformers marks one random clip per batch as longer."""
    ext = load_extractor(f"hf:{tiny_dir('clap', fusion=True)}")
    assert ext.describe()["enable_fusion"] is True and ext.describe()["is_longer"] is False
    w = _waves(4, 1.0, 48000)
    name = ext.layer_names()[-1]
    runs = [ext.forward(w, [name])[name] for _ in range(4)]
    for r in runs[1:]:
        np.testing.assert_array_equal(r, runs[0])
    one = np.concatenate([ext.forward(w[i:i + 1], [name])[name] for i in range(4)])
    np.testing.assert_allclose(one, runs[0], rtol=1e-5, atol=1e-6)


def test_ast_refuses_clips_past_its_window(tiny_dir, tmp_path):
    ext = load_extractor(f"hf:{tiny_dir('ast')}")
    # tiny AST: max_length = 64 fbank frames (25 ms windows, 10 ms hop) -> 63*160 + 400
    assert ext.max_samples == 10480
    with pytest.raises(AudioError, match=r"longer than the 0\.66 s .*--duration"):
        ext.check_length(10481)
    d = tmp_path / "s"
    d.mkdir()
    write_tone(d / "a.wav", seconds=0.5)
    write_tone(d / "b.wav", seconds=1.0)
    with pytest.raises(AudioError, match="'b'.*longer than"):
        extract(f"hf:{tiny_dir('ast')}", d, tmp_path / "st", progress=False)
    store = extract(f"hf:{tiny_dir('ast')}", d, tmp_path / "ok", duration=0.6, progress=False)
    assert store.complete


def test_ast_pools_only_tokens_covering_the_clip(tiny_dir):
    ext = load_extractor(f"hf:{tiny_dir('ast')}")
    name = "hidden_states.2"
    # 0.2 s -> 18 fbank frames; patches start every 16 frames: time columns 0 and 1 of 4
    n = int(0.2 * SR)
    mask = ext.frame_mask(n, name)
    assert mask.shape == (10,) and not mask[:2].any()  # CLS and distillation tokens
    np.testing.assert_array_equal(mask[2:], [1, 1, 0, 0] * 2)
    from extractors.pooling import pool

    w = _waves(1, 0.2, SR)
    a = ext.forward(w, [name])[name][0]
    np.testing.assert_allclose(pool(a, "mean", mask=mask), a[[2, 3, 6, 7]].mean(0), rtol=1e-6)
    full = int(0.6 * SR)  # 58 frames: every time column starts inside the clip
    assert ext.frame_mask(full, name)[2:].all()


def test_float16_checkpoint_loads_in_float32(tiny_dir, tmp_path):
    import shutil

    import torch
    import transformers as T

    src = tiny_dir("wav2vec2")
    half = tmp_path / "half"
    T.AutoModel.from_pretrained(src).to(torch.float16).save_pretrained(half)
    shutil.copy(src / "preprocessor_config.json", half)
    assert "float16" in (half / "config.json").read_text()
    ext = load_extractor(f"hf:{half}")
    assert ext.model.dtype == torch.float32
    out = ext.forward(_waves(1, 0.5, SR), ["hidden_states.2"])["hidden_states.2"]
    assert out.dtype == np.float32 and np.isfinite(out).all()


def test_declared_frame_rates(tiny_dir):
    assert load_extractor(f"hf:{tiny_dir('wav2vec2')}").frame_rate("hidden_states.1") == 1600.0
    assert load_extractor(f"hf:{tiny_dir('whisper')}").frame_rate("hidden_states.1") == 50.0
    assert load_extractor(f"hf:{tiny_dir('ast')}").frame_rate("hidden_states.1") == 0.0
