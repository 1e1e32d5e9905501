"""Randomly initialised transformers audio models, saved with ``save_pretrained``.

For tests, the demo and benchmarks: every family the ``hf:`` adapter supports at a tiny
size (hidden size 32, 2 layers: fast on CPU), and wav2vec2 at the base size (the
wav2vec2-base architecture, 95M parameters). Load the result with ``hf:<directory>``;
nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from alignjax.errors import check_choice

__all__ = ["FAMILIES", "build_random_model"]

FAMILIES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "ast", "whisper", "clap")

_SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
_CONV = dict(conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3),
             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)


def build_random_model(family: str, root, *, size: str = "tiny", seed: int = 0,
                       do_normalize: bool = True, fusion: bool = False) -> Path:
    """Save a randomly initialised model of ``family`` to ``root/family``; return that path.

    Parameters
    ----------
    family : {'wav2vec2', 'hubert', 'wavlm', 'data2vec-audio', 'ast', 'whisper', 'clap'}
    root : str or Path
    size : {'tiny', 'base'}
        ``base`` is available for wav2vec2 only (the wav2vec2-base configuration).
    seed : int
        ``torch.manual_seed`` before initialisation.
    do_normalize : bool
        The waveform feature extractor's per-clip normalisation (wav2vec2-like families).
    fusion : bool
        CLAP only: ``enable_fusion=True`` (as the fused LAION CLAP checkpoints).
    """
    check_choice(family, "family", FAMILIES)
    check_choice(size, "size", ("tiny", "base"))
    if size == "base" and family != "wav2vec2":
        from alignjax.errors import InvalidOptionError

        raise InvalidOptionError("size='base' is available for wav2vec2 only")
    import torch
    import transformers as T

    T.utils.logging.disable_progress_bar()
    torch.manual_seed(seed)
    path = Path(root) / (family if size == "tiny" else f"{family}-{size}")
    if fusion:
        check_choice(family, "family (fusion)", ("clap",))
        path = path.with_name(f"{path.name}-fusion")
    if size == "base":
        config = T.Wav2Vec2Config()
        fe = T.Wav2Vec2FeatureExtractor(do_normalize=do_normalize, return_attention_mask=False)
    elif family in ("wav2vec2", "hubert", "wavlm", "data2vec-audio"):
        cfg_cls = {"wav2vec2": T.Wav2Vec2Config, "hubert": T.HubertConfig,
                   "wavlm": T.WavLMConfig, "data2vec-audio": T.Data2VecAudioConfig}[family]
        extra = {"num_buckets": 16, "max_bucket_distance": 64} if family == "wavlm" else {}
        if family == "data2vec-audio":
            extra = {"conv_pos_kernel_size": 5, "num_conv_pos_embeddings": 5}
        kw = {**_SMALL, **_CONV, **extra}
        config = cfg_cls(**kw)
        fe = T.Wav2Vec2FeatureExtractor(do_normalize=do_normalize, return_attention_mask=False)
    elif family == "ast":
        config = T.ASTConfig(**_SMALL, num_mel_bins=32, max_length=64, patch_size=16,
                             frequency_stride=16, time_stride=16)
        fe = T.ASTFeatureExtractor(num_mel_bins=32, max_length=64)
    elif family == "whisper":
        config = T.WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1,
                                 encoder_attention_heads=2, decoder_attention_heads=2,
                                 encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=16,
                                 max_source_positions=100, max_target_positions=16,
                                 vocab_size=64, pad_token_id=0, bos_token_id=1,
                                 eos_token_id=2, decoder_start_token_id=1)
        fe = T.WhisperFeatureExtractor(feature_size=16, chunk_length=2)
    elif family == "clap":
        audio = dict(hidden_size=32, patch_embeds_hidden_size=16, depths=[1, 1],
                     num_attention_heads=[2, 2], window_size=4, spec_size=64, num_mel_bins=16,
                     patch_size=4, patch_stride=(4, 4), projection_dim=16, enable_fusion=fusion)
        text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=64, vocab_size=64, max_position_embeddings=32,
                    projection_dim=16)
        config = T.ClapConfig(audio_config=audio, text_config=text, projection_dim=16)
        fe = T.ClapFeatureExtractor(feature_size=16, max_length_s=1, hop_length=480)
    else:
        raise ValueError(family)
    model = T.AutoModel.from_config(config)
    model.save_pretrained(path)
    fe.save_pretrained(path)
    return path
