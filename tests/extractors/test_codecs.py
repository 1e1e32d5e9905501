"""hf: neural codecs (EnCodec, DAC, Mimi) on tiny random checkpoints, layers through hooks."""

import numpy as np
import pytest

from alignjax.app.cli import main
from extractors.run import extract
from extractors.spec import load_extractor
from extractors.tiny_zoo import CODEC_FAMILIES, build_tiny_codec

from extract_helpers import SR, write_tone


@pytest.fixture(scope="module")
def codecs(tmp_path_factory):
    root = tmp_path_factory.mktemp("codec_zoo")
    return {f: build_tiny_codec(f, root) for f in CODEC_FAMILIES}


def _direct(path, family, waves):
    """The encoder's blocks and the quantiser's input, computed without hooks."""
    import torch
    import transformers as T

    model = T.AutoModel.from_pretrained(path).eval()
    x = torch.from_numpy(waves)[:, None, :]
    out = {}
    with torch.no_grad():
        if family == "encodec":
            h = x
            for k, layer in enumerate(model.encoder.layers):
                h = layer(h)
                out[f"encoder.layers.{k}"] = h
            out["quantizer.input"] = model.encoder(x)
        elif family == "dac":
            out["quantizer.input"] = model.encoder(x)
            out["encoder.conv1"] = model.encoder.conv1(x)
        else:
            enc = model.encoder
            h = enc.encoder_seanet(x)
            out["encoder.encoder_seanet.layers.8"] = h
            h = enc.encoder_transformer(h.transpose(1, 2)).last_hidden_state.transpose(1, 2)
            out["quantizer.input"] = enc.downsample(h)
        codes = model.encode(x).audio_codes
    return {k: v.transpose(1, 2).numpy() for k, v in out.items()}, codes


@pytest.mark.parametrize("family", CODEC_FAMILIES)
def test_codec_layers_match_direct_computation(codecs, family):
    ext = load_extractor(f"hf:{codecs[family]}")
    names = ext.layer_names()
    assert names[-1] == "quantizer.input"
    assert not any("codebook" in n or "codes" in n for n in names)
    waves = (0.1 * np.random.default_rng(0).standard_normal((2, 4000))).astype(np.float32)
    ref, codes = _direct(codecs[family], family, waves)
    got = ext.forward(waves, list(ref))
    for name, r in ref.items():
        np.testing.assert_allclose(got[name], r, atol=1e-5, err_msg=name)
    # the latent has the codes' frame count (one code vector per latent frame)
    assert got["quantizer.input"].shape[1] == codes.shape[-1]


def test_codec_store_and_frame_rates(codecs, tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    for k in range(3):
        write_tone(d / f"t{k}.wav", freq=300.0 * (k + 1), seconds=0.25)
    store = extract(f"hf:{codecs['encodec']}", d, tmp_path / "enc", pooling="none",
                    progress=False)
    rates = store.settings["frame_rate_hz"]
    assert rates["encoder.layers.0"] == pytest.approx(SR)
    assert rates["quantizer.input"] == pytest.approx(SR / 16)
    assert store.load("quantizer.input").shape == (3, 250, 16)
    # frame centres from the receptive field (its padded convolutions reach 2.8 ms back)
    offset = store.frame_offset("quantizer.input")
    assert -4e-3 < offset < -2e-3
    np.testing.assert_allclose(store.times("quantizer.input"), offset + np.arange(250) / 1000.0,
                               atol=1e-9)
    mimi = extract(f"hf:{codecs['mimi']}", d, tmp_path / "mimi", progress=False,
                   layers=["encoder.encoder_transformer.layers.0", "quantizer.input"])
    assert mimi.load("quantizer.input").shape == (3, 16)


def test_layers_cli_lists_codec_layers(codecs, capsys):
    assert main(["layers", f"hf:{codecs['dac']}", "--seconds", "0.25"]) == 0
    out = capsys.readouterr().out
    for name in ("encoder.conv1", "encoder.block.1", "quantizer.input"):
        assert name in out
