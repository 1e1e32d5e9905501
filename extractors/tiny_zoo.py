"""Tiny randomly initialised audio LLMs and neural codecs, saved with ``save_pretrained``.

For tests, the demo and benchmarks (the encoder families are in :mod:`extractors.tiny`):
Qwen2-Audio, Voxtral and Audio Flamingo 3 (audio tower + decoder, with a word-level
tokenizer built offline with the ``tokenizers`` package and the model's processor saved
alongside), and the EnCodec, DAC and Mimi codecs. Hidden sizes 16-32, 1-2 layers: fast on
CPU. Load the result with ``hf:<directory>``; nothing is downloaded.

``size='base'`` gives Qwen2-Audio and EnCodec at sizes worth timing on a GPU (a 12-layer
768-wide decoder and audio tower; the EnCodec 24 kHz architecture).
"""

from __future__ import annotations

from pathlib import Path

from alignjax.errors import InvalidOptionError, check_choice

__all__ = ["LLM_FAMILIES", "CODEC_FAMILIES", "build_tiny_llm", "build_tiny_codec",
           "tiny_tokenizer"]

LLM_FAMILIES = ("qwen2_audio", "voxtral", "audioflamingo3")
CODEC_FAMILIES = ("encodec", "dac", "mimi")

_WORDS = (" ", "describe", "the", "sound", "what", "is", "this", "audio", "listen", "to", "a",
          "you", "are", "helpful", "assistant", "system", "user", "caption", ":", ".", "?",
          "\n")


def tiny_tokenizer(special: list[str], *, late: tuple[str, ...] = (), min_vocab: int = 0):
    """A word-level fast tokenizer over a few English words plus ``special`` tokens.

    The special tokens come first (ids 0..), then ``[PAD_k]`` fillers up to ``min_vocab``,
    then the ``late`` special tokens (models that hard-code a token id, e.g. Voxtral's
    audio token 24), then the words. Unknown words map to ``<unk>``.
    """
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for tok in ["<unk>", "<pad>", *special]:
        vocab.setdefault(tok, len(vocab))
    k = 0
    while len(vocab) < min_vocab:
        vocab[f"[PAD_{k}]"] = len(vocab)
        k += 1
    for tok in late:
        vocab.setdefault(tok, len(vocab))
    for w in _WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\s+|[^\w\s]"), behavior="isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>")
    fast.add_special_tokens({"additional_special_tokens": list(special) + list(late)})
    return fast


def _text_config(T, vocab_size: int, hidden: int, layers: int, cls_name: str):
    cls = getattr(T, cls_name)
    return cls(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
               num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
               max_position_embeddings=2048, head_dim=hidden // 2, pad_token_id=1)


def build_tiny_llm(family: str, root, *, size: str = "tiny", seed: int = 0,
                   chunk_s: int = 2) -> Path:
    """Save a randomly initialised audio LLM of ``family`` with its processor; return the path.

    Parameters
    ----------
    family : {'qwen2_audio', 'voxtral', 'audioflamingo3'}
    root : str or Path
    size : {'tiny', 'base'}
        ``base``: Qwen2-Audio only, 12 layers of width 768 in the audio tower and decoder.
    seed : int
        ``torch.manual_seed`` before initialisation.
    chunk_s : int
        The feature extractor's window (30 s in released checkpoints; 2 s keeps tests fast).
    """
    check_choice(family, "family", LLM_FAMILIES)
    check_choice(size, "size", ("tiny", "base"))
    if size == "base" and family != "qwen2_audio":
        raise InvalidOptionError("size='base' is available for qwen2_audio only")
    import torch
    import transformers as T

    T.utils.logging.disable_progress_bar()
    torch.manual_seed(seed)
    path = Path(root) / (family if size == "tiny" else f"{family}-{size}")
    hidden, layers, mels = (32, 2, 16) if size == "tiny" else (768, 12, 128)
    n_frames = 100 * chunk_s  # mel frames per window (10 ms hop)
    fe = T.WhisperFeatureExtractor(feature_size=mels, chunk_length=chunk_s)
    audio = dict(num_mel_bins=mels, encoder_layers=layers, encoder_attention_heads=2,
                 encoder_ffn_dim=2 * hidden, d_model=hidden, max_source_positions=n_frames // 2)
    if family == "qwen2_audio":
        special = ["<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
        tok = tiny_tokenizer(special)
        text = _text_config(T, len(tok), hidden, layers, "Qwen2Config")
        config = T.Qwen2AudioConfig(audio_config=audio, text_config=text,
                                    audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"))
        proc = T.Qwen2AudioProcessor(feature_extractor=fe, tokenizer=tok)
        model = T.Qwen2AudioForConditionalGeneration(config)
    elif family == "audioflamingo3":
        special = ["<|im_start|>", "<|im_end|>", "<sound>"]
        tok = tiny_tokenizer(special)
        text = _text_config(T, len(tok), hidden, layers, "Qwen2Config")
        config = T.AudioFlamingo3Config(audio_config=audio, text_config=text,
                                        audio_token_id=tok.convert_tokens_to_ids("<sound>"))
        template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
                    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
                    "{% for c in m['content'] %}{% if c['type'] == 'audio' %}<sound>"
                    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
                    "{% endif %}<|im_end|>\n{% endfor %}"
                    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
        proc = T.AudioFlamingo3Processor(feature_extractor=fe, tokenizer=tok,
                                         chat_template=template, max_audio_len=4 * chunk_s)
        model = T.AudioFlamingo3ForConditionalGeneration(config)
    else:  # voxtral
        special = ["<s>", "</s>", "[INST]", "[/INST]", "[BEGIN_AUDIO]"]
        tok = tiny_tokenizer(special, late=("[AUDIO]",), min_vocab=24)
        if tok.convert_tokens_to_ids("[AUDIO]") != 24:
            raise RuntimeError("the tiny Voxtral tokenizer must give [AUDIO] the id 24")
        text = _text_config(T, len(tok), hidden, layers, "LlamaConfig")
        audio = dict(audio, intermediate_size=4 * hidden, encoder_ffn_dim=4 * hidden, hidden_size=hidden,
                     num_hidden_layers=layers, num_attention_heads=2,
                     num_key_value_heads=2, head_dim=hidden // 2, vocab_size=len(tok))
        config = T.VoxtralConfig(audio_config=audio, text_config=text, audio_token_id=24)
        model = T.VoxtralForConditionalGeneration(config)
        proc = None
    model.eval().save_pretrained(path)
    if proc is not None:
        proc.save_pretrained(path)
    else:  # Voxtral's processor needs mistral_common; the parts are saved as they are
        fe.save_pretrained(path)
        tok.save_pretrained(path)
    return path


def build_tiny_codec(family: str, root, *, size: str = "tiny", seed: int = 0) -> Path:
    """Save a randomly initialised neural codec of ``family``; return the path.

    Parameters
    ----------
    family : {'encodec', 'dac', 'mimi'}
    root : str or Path
    size : {'tiny', 'base'}
        ``base``: EnCodec only, the 24 kHz architecture (``EncodecConfig()``).
    seed : int
    """
    check_choice(family, "family", CODEC_FAMILIES)
    check_choice(size, "size", ("tiny", "base"))
    if size == "base" and family != "encodec":
        raise InvalidOptionError("size='base' is available for encodec only")
    import torch
    import transformers as T

    T.utils.logging.disable_progress_bar()
    torch.manual_seed(seed)
    path = Path(root) / (family if size == "tiny" else f"{family}-{size}")
    if family == "encodec":
        if size == "base":
            config = T.EncodecConfig()
        else:
            config = T.EncodecConfig(num_filters=4, hidden_size=16, upsampling_ratios=[4, 4],
                                     codebook_size=32, codebook_dim=16, num_lstm_layers=1,
                                     target_bandwidths=[10.0], sampling_rate=16000)
        fe = T.EncodecFeatureExtractor(sampling_rate=config.sampling_rate, feature_size=1)
        model = T.EncodecModel(config)
    elif family == "dac":
        config = T.DacConfig(encoder_hidden_size=4, downsampling_ratios=[2, 4],
                             decoder_hidden_size=16, n_codebooks=2, codebook_size=32,
                             codebook_dim=4, hidden_size=16, sampling_rate=16000)
        fe = T.DacFeatureExtractor(sampling_rate=16000, hop_length=8)
        model = T.DacModel(config)
    else:  # mimi
        config = T.MimiConfig(hidden_size=16, num_filters=4, upsampling_ratios=[4, 4],
                              num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                              head_dim=8, intermediate_size=32, codebook_size=32,
                              codebook_dim=16, num_quantizers=2, num_semantic_quantizers=1,
                              vector_quantization_hidden_dimension=16, sampling_rate=16000,
                              sliding_window=16, use_streaming=False, upsample_groups=16)
        fe = T.EncodecFeatureExtractor(sampling_rate=16000, feature_size=1)
        model = T.MimiModel(config)
    model.eval().save_pretrained(path)
    fe.save_pretrained(path)
    return path
