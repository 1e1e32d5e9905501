"""torch: adapter: the layout of every hooked output is inferred or declared, never guessed."""

import numpy as np
import pytest
import torch

from extractors.hooks import LayoutError, infer_layout
from extractors.spec import load_extractor

from extract_helpers import SR

W = (0.1 * np.random.default_rng(1).standard_normal((3, 1600))).astype(np.float32)
LAYERS = ["front", "front.conv", "front.norm", "front.act", "lstm", "gru", "encoder",
          "attention"]


def test_hooked_rows_match_a_direct_forward_pass():
    ext = load_extractor("torch:layout_models:build")
    got = ext.forward(W, LAYERS)
    ref = ext.model
    for name in ("front", "front.norm", "lstm", "gru", "encoder", "attention"):
        want = np.stack([ref.reference(torch.from_numpy(W[i:i + 1]), name)[0].numpy()
                         for i in range(3)])
        assert got[name].shape == want.shape == (3, 19, want.shape[-1]), name
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6, err_msg=name)
    assert ext.layouts(LAYERS) == {"front": "BFT", "front.conv": "BFT", "front.norm": "BFT",
                                   "front.act": "BFT", "lstm": "TBF", "gru": "TBF",
                                   "encoder": "TBF", "attention": "TBF"}


def test_wav2vec2_conv_blocks_are_read_channels_first(tiny_dir, tmp_path, monkeypatch):
    path = tiny_dir("wav2vec2")
    (tmp_path / "w2v_factory.py").write_text(
        "from transformers import AutoModel\n"
        f"def build():\n    return AutoModel.from_pretrained({str(path)!r})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ext = load_extractor("torch:w2v_factory:build")
    names = ["feature_extractor", "feature_extractor.conv_layers.0",
             "feature_extractor.conv_layers.0.layer_norm",
             "feature_extractor.conv_layers.0.activation", "feature_extractor.conv_layers.1.conv"]
    out = ext.forward((0.1 * np.random.default_rng(0).standard_normal((2, SR // 2)))
                      .astype(np.float32), names)
    assert out["feature_extractor"].shape == (2, 799, 16)
    assert out["feature_extractor.conv_layers.0.layer_norm"].shape == (2, 1599, 16)
    assert out["feature_extractor.conv_layers.0.activation"].shape == (2, 1599, 16)
    assert out["feature_extractor.conv_layers.1.conv"].shape == (2, 799, 16)


def test_ambiguous_output_fails_with_the_module_name_unless_declared():
    ext = load_extractor("torch:layout_models:build_ambiguous")
    with pytest.raises(LayoutError, match="'gram'.*several axes.*alignjax_layout"):
        ext.forward(W, ["gram"])
    assert isinstance(LayoutError("x"), ValueError)
    ext.model.gram.alignjax_layout = "BTF"  # declared: (batch, time, features)
    out = ext.forward(W, ["gram"])["gram"]
    assert out.shape == (3, 19, 19)
    ext.model.gram.alignjax_layout = "BT"
    with pytest.raises(LayoutError, match="does not describe its 3-D output"):
        ext.forward(W, ["gram"])


def test_infer_layout_rules():
    assert infer_layout("m", [(2, 8, 10), (3, 8, 10), (2, 8, 20)]) == "BFT"
    assert infer_layout("m", [(10, 2, 8), (10, 3, 8), (20, 2, 8)]) == "TBF"
    assert infer_layout("m", [(2, 4, 3, 10), (3, 4, 3, 10), (2, 4, 3, 20)]) == "BFFT"
    assert infer_layout("m", [(2, 101, 8), (3, 101, 8), (2, 101, 8)]) == "BTF"  # tokens
    assert infer_layout("m", [(2, 8), (3, 8), (2, 8)]) == "BF"
    with pytest.raises(LayoutError, match="batch"):
        infer_layout("m", [(20, 8), (30, 8), (40, 8)])  # batch x time flattened together


def test_declared_frame_rate_is_recorded(tmp_path, monkeypatch):
    from extractors.run import _frame_rates

    ext = load_extractor("torch:layout_models:build")
    ext.model.lstm.alignjax_frame_rate_hz = 200
    rates = _frame_rates(ext, ["lstm", "front"], SR)
    assert rates["lstm"] == 200.0 and abs(rates["front"] - 200.0) < 1.0  # measured
