"""hf: audio LLMs (Qwen2-Audio, Voxtral, Audio Flamingo 3) on tiny random checkpoints.

Each model is built from its transformers config with a word-level tokenizer made offline,
saved with its processor, and loaded back through ``hf:DIR`` with ``HF_HUB_OFFLINE=1``.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from alignjax import InvalidOptionError, StoreError
from alignjax.app.cli import main
from extractors.audio import AudioError
from extractors.run import extract
from extractors.spec import load_extractor
from extractors.tiny_zoo import LLM_FAMILIES, build_tiny_llm

from extract_helpers import SR, write_tone

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROMPT = "describe the sound ."


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm_zoo")
    built = {}

    def get(family):
        if family not in built:
            built[family] = build_tiny_llm(family, root)
        return built[family]

    return get


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Six clips: four of 1 s, two of 0.5 s."""
    d = tmp_path_factory.mktemp("llm_clips")
    for k in range(6):
        write_tone(d / f"c{k}.wav", freq=220.0 * (k + 1), seconds=1.0 if k < 4 else 0.5)
    return d


def _waves(n, seconds):
    return (0.1 * np.random.default_rng(1).standard_normal((n, int(seconds * SR)))).astype(
        np.float32)


def _reference_decoder(path, family, waves, prompt):
    """Decoder hidden states straight from transformers, and the input ids."""
    import torch
    import transformers as T

    cfg = T.AutoConfig.from_pretrained(path)
    model = getattr(T, cfg.architectures[0]).from_pretrained(path).eval()
    if family == "voxtral":
        fe = T.AutoFeatureExtractor.from_pretrained(path)
        tok = T.AutoTokenizer.from_pretrained(path)
        feats = fe(list(waves_padded(waves, fe.n_samples)), sampling_rate=SR,
                   return_tensors="pt")["input_features"]
        n_tok = fe.n_samples // fe.hop_length // 2 // 4
        ids = (tok.convert_tokens_to_ids(["<s>", "[INST]"])
               + tok(prompt, add_special_tokens=False)["input_ids"]
               + tok.convert_tokens_to_ids(["[BEGIN_AUDIO]"]) + [24] * n_tok
               + [tok.convert_tokens_to_ids("[/INST]")])
        enc = {"input_ids": torch.tensor([ids] * len(waves)), "input_features": feats}
    else:
        proc = T.AutoProcessor.from_pretrained(path)
        conv = [{"role": "user", "content": [{"type": "text", "text": prompt}, {"type": "audio"}]}]
        text = proc.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        enc = dict(proc(text=[text] * len(waves), audio=list(waves), sampling_rate=SR,
                        return_tensors="pt"))
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    return out.hidden_states, enc["input_ids"].numpy(), cfg.audio_token_id


def waves_padded(waves, window):
    n_win = max(1, math.ceil(waves.shape[1] / window))
    out = np.zeros((len(waves), n_win * window), np.float32)
    out[:, : waves.shape[1]] = waves
    return out.reshape(-1, window)


@pytest.mark.parametrize("family", LLM_FAMILIES)
def test_decoder_states_at_audio_positions_match_transformers(zoo, family):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    path = zoo(family)
    ext = load_extractor(f"hf:{path}", prompt=PROMPT)
    names = ext.layer_names()
    assert [n for n in names if n.startswith("language_model.")] == [
        f"language_model.hidden_states.{k}" for k in range(3)]
    assert [n for n in names if n.startswith("audio_encoder.")] == [
        f"audio_encoder.hidden_states.{k}" for k in range(3)]
    waves = _waves(2, 1.0)
    got = ext.forward(waves, names)
    ref, ids, audio_id = _reference_decoder(path, family, waves, PROMPT)
    positions = ids == audio_id
    # the positions the adapter keeps are exactly those the processor expanded
    np.testing.assert_array_equal(ext.audio_positions(waves), positions)
    n_audio = int(positions[0].sum())
    assert 0 < n_audio < positions.shape[1]  # the prompt's positions exist and are left out
    spt = ext.seconds_per_token
    assert spt == pytest.approx(0.08 if family == "voxtral" else 0.04)
    n_keep = math.ceil(1.0 / spt) if family == "voxtral" else n_audio
    assert n_audio == (n_keep if family != "voxtral" else 2.0 / spt)  # Voxtral: whole window
    for k in range(3):
        r = ref[k].numpy()
        r = r[positions].reshape(2, n_audio, -1)[:, :n_keep]
        np.testing.assert_allclose(got[f"language_model.hidden_states.{k}"], r, atol=1e-5)
    # audio tower: frames at twice the token rate, covering the clip only
    for k in range(3):
        assert got[f"audio_encoder.hidden_states.{k}"].shape == (2, 50, 32)


def test_encoder_states_match_tower_output(zoo):
    """The last audio-tower state, average-pooled and normed, is what the tower returns."""
    import torch
    import transformers as T

    path = zoo("qwen2_audio")
    ext = load_extractor(f"hf:{path}")
    waves = _waves(2, 1.0)
    got = ext.forward(waves, ["audio_encoder.hidden_states.2"])["audio_encoder.hidden_states.2"]
    model = T.Qwen2AudioForConditionalGeneration.from_pretrained(path).eval()
    proc = T.AutoProcessor.from_pretrained(path)
    enc = proc(text=[proc.audio_token] * 2, audio=list(waves), sampling_rate=SR,
               return_tensors="pt")
    tower, seen = model.model.audio_tower, {}
    handle = tower.register_forward_hook(lambda _m, _i, out: seen.update(h=out.last_hidden_state))
    with torch.no_grad():
        model(**enc)
        handle.remove()
        last = seen["h"][:, :25].numpy()
        mine = tower.layer_norm(tower.avg_pooler(torch.from_numpy(got).transpose(1, 2))
                                .transpose(1, 2)).numpy()
    np.testing.assert_allclose(mine, last, atol=1e-5)


@pytest.mark.parametrize("family", ["qwen2_audio", "audioflamingo3"])
def test_extract_pooled_and_time_resolved(zoo, clips, tmp_path, family):
    spec = f"hf:{zoo(family)}"
    pooled = extract(spec, clips, tmp_path / "mean", prompt=PROMPT, batch_size=4,
                     progress=False)
    assert pooled.load("language_model.hidden_states.2").shape == (6, 32)
    assert pooled.settings["model"]["prompt"] == PROMPT
    assert pooled.settings["request"]["prompt"] == PROMPT
    assert pooled.settings["model"]["seconds_per_token"] == pytest.approx(0.04)
    frames = extract(spec, clips, tmp_path / "none", pooling="none", prompt=PROMPT,
                     batch_size=4, progress=False)
    lm = "language_model.hidden_states.1"
    assert frames.load(lm).shape == (6, 25, 32)
    # the processor's count: mel frames n -> ((n - 1) // 2 + 1 - 2) // 2 + 1 tokens
    # (1 s: 100 mel frames -> 25 tokens; 0.5 s: 50 -> 12)
    assert frames.n_valid_frames(lm).tolist() == [25, 25, 25, 25, 12, 12]
    assert frames.n_valid_frames("audio_encoder.hidden_states.0").tolist() == [50] * 4 + [25] * 2
    # token j averages encoder frames 2j and 2j + 1: centred 10 ms after 2j's centre
    np.testing.assert_allclose(frames.times(lm), np.arange(25) * 0.04 + 0.01, atol=1e-9)
    np.testing.assert_allclose(frames.times("audio_encoder.hidden_states.0"),
                               np.arange(50) * 0.02, atol=1e-9)
    # mean pooling = mean over the valid frames
    x = frames.load(lm)
    mean = np.stack([x[i, : n].mean(0) for i, n in enumerate(frames.n_valid_frames(lm))])
    np.testing.assert_allclose(pooled.load(lm), mean, atol=1e-5)


def test_prompt_changes_decoder_not_tower_and_refuses_old_store(zoo, clips, tmp_path):
    spec = f"hf:{zoo('qwen2_audio')}"
    a = extract(spec, clips, tmp_path / "a", prompt=PROMPT, progress=False)
    b = extract(spec, clips, tmp_path / "b", prompt="what is this audio ?", progress=False)
    np.testing.assert_array_equal(a.load("audio_encoder.hidden_states.2"),
                                  b.load("audio_encoder.hidden_states.2"))
    assert not np.allclose(a.load("language_model.hidden_states.2"),
                           b.load("language_model.hidden_states.2"))
    with pytest.raises(StoreError, match="prompt"):
        extract(spec, clips, tmp_path / "a", prompt="what is this audio ?", progress=False)
    # the pipeline step's options carry the prompt, so its fingerprint changes with it
    from alignjax.app.pipeline import _extract_options

    class Cfg:
        stimuli = {}

    o1 = _extract_options(Cfg, {"spec": spec, "prompt": PROMPT})
    o2 = _extract_options(Cfg, {"spec": spec, "prompt": "what is this audio ?"})
    assert o1 != o2 and o1["prompt"] == PROMPT


def test_bfloat16_run_is_stored_as_float32_close_to_float32(zoo, clips, tmp_path):
    spec = f"hf:{zoo('audioflamingo3')}"
    ref = extract(spec, clips, tmp_path / "f32", progress=False)
    bf = extract(spec, clips, tmp_path / "bf16", dtype="bfloat16", progress=False)
    assert bf.settings["model"]["run_dtype"] == "bfloat16"
    x = bf.load("language_model.hidden_states.2")
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, ref.load("language_model.hidden_states.2"), atol=0.1)


def test_bad_input(zoo, clips, tmp_path):
    spec = f"hf:{zoo('qwen2_audio')}"
    # a prompt beyond the decoder's context (2048 positions)
    with pytest.raises(InvalidOptionError, match="context"):
        extract(spec, clips, tmp_path / "long", prompt=" ".join(["sound"] * 1100),
                progress=False)
    assert not (tmp_path / "long").exists()
    # audio longer than the model's window (2 s here): stated, crop only with --duration
    long_dir = tmp_path / "longclip"
    long_dir.mkdir()
    write_tone(long_dir / "x.wav", seconds=3.0)
    with pytest.raises(AudioError, match=r"'x' \(3\.00 s\) is longer than the 2\.00 s.*--duration"):
        extract(spec, long_dir, tmp_path / "o1", progress=False)
    assert not (tmp_path / "o1").exists()
    store = extract(spec, long_dir, tmp_path / "o2", duration=2.0, progress=False)
    assert store.complete
    # --prompt for a model that is no audio LLM; a model without audio input
    from extractors.tiny import build_random_model

    w2v = build_random_model("wav2vec2", tmp_path / "m")
    with pytest.raises(InvalidOptionError, match="not an audio LLM"):
        extract(f"hf:{w2v}", clips, tmp_path / "o3", prompt="hi", progress=False)
    assert not (tmp_path / "o3").exists()
    import transformers as T

    from extractors.tiny_zoo import tiny_tokenizer

    lm = tmp_path / "textonly"
    tok = tiny_tokenizer([])
    T.Qwen2ForCausalLM(T.Qwen2Config(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                     num_hidden_layers=1, num_attention_heads=2,
                                     num_key_value_heads=1)).save_pretrained(lm)
    tok.save_pretrained(lm)
    with pytest.raises(InvalidOptionError, match="no audio input"):
        extract(f"hf:{lm}", clips, tmp_path / "o4", progress=False)
    assert not (tmp_path / "o4").exists()


def test_layers_cli_lists_decoder_layers(zoo, capsys):
    assert main(["layers", f"hf:{zoo('voxtral')}"]) == 0
    out = capsys.readouterr().out
    assert "language_model.hidden_states.2" in out and "audio_encoder.hidden_states.0" in out
    assert "(13, 32)" in out  # 1 s: 13 tokens of 80 ms that start inside the clip


_SLOW_CLI = """
import os, sys, time
import extractors.audio_llm as m
_f = m.AudioLLMExtractor.forward
def slow(self, *a, **k):
    time.sleep(float(os.environ.get("LLM_SLEEP", "0")))
    return _f(self, *a, **k)
m.AudioLLMExtractor.forward = slow
from alignjax.app.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # three CLI processes that import torch and transformers (~30 s)
def test_sigkill_resume_is_byte_identical(zoo, clips, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    args = ["extract", "--model", f"hf:{zoo('qwen2_audio')}", "--stimuli", str(clips),
            "--batch-size", "1", "--pooling", "none", "--prompt", PROMPT, "--sync-every", "0"]
    cmd = [sys.executable, "-c", _SLOW_CLI]
    ref = tmp_path / "ref"
    subprocess.run(cmd + args + ["--out", str(ref), "--quiet"], env=env, check=True,
                   capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(cmd + args + ["--out", str(out)], env={**env, "LLM_SLEEP": "0.4"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.json"
    deadline, n_done = time.time() + 120, 0
    while time.time() < deadline and proc.poll() is None:
        try:
            m = json.loads(manifest.read_text())
            done = m["layers"]["language_model.hidden_states.2"]["done"]
            n_done = bin(int(done, 16)).count("1")
        except (OSError, json.JSONDecodeError, KeyError):
            n_done = 0
        if n_done >= 2:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not json.loads(manifest.read_text())["complete"]
    assert 2 <= n_done < 6
    r = subprocess.run(cmd + args + ["--out", str(out), "--quiet"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    snap = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert snap == {p.name: p.read_bytes() for p in sorted(ref.iterdir())}


def test_memory_check_names_the_gib_needed(zoo, monkeypatch):
    import torch

    from extractors import audio_llm

    path = zoo("qwen2_audio")
    model = __import__("transformers").Qwen2AudioForConditionalGeneration.from_pretrained(path)
    n_params = sum(p.numel() for p in model.parameters())
    assert audio_llm.weights_bytes(str(path), torch.float32) == 4 * n_params
    assert audio_llm.weights_bytes(str(path), torch.bfloat16) == 2 * n_params
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (1024, 2048))
    with pytest.raises(InvalidOptionError, match=r"needs 0\.\d GiB .* 0\.0 GiB free"):
        audio_llm._check_fits(str(path), torch.float32, "cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (2**40, 2**40))
    audio_llm._check_fits(str(path), torch.float32, "cuda")  # fits: no error
