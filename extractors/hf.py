"""``hf:<model id or local directory>``: Hugging Face transformers audio models.

Loaded with ``AutoModel`` + ``AutoFeatureExtractor`` and run with
``output_hidden_states=True``; layers are ``hidden_states.0`` (the input of the first
block) to ``hidden_states.L``. Families:

* wav2vec2, HuBERT, WavLM, Data2Vec-audio (and other CTC-style encoders with a
  convolutional front end): raw waveform in, frames at the conv front end's stride, frame
  ``k`` centred at ``k / rate`` plus half the front end's receptive field (wav2vec2-base:
  12.5 ms; :meth:`HFExtractor.frame_offset`).
* AST: fbank patches in; tokens out (CLS and distillation tokens first, so
  ``pooling='first'`` is the CLS token, then the patches in (frequency, time) order).
  The feature extractor pads every clip's fbank (25 ms windows, 10 ms hop) with zeros to
  its ``max_length`` frames and would silently drop everything after them: clips longer
  than that window are refused (crop them with ``--duration``). ``mean``/``max``/``stats``
  pooling uses only the patch tokens whose time span starts inside the clip's fbank
  frames (not the CLS/distillation tokens, not the patches of zero padding); see
  :meth:`HFExtractor.frame_mask`.
* Whisper: only the encoder runs. The input is padded to the feature extractor's chunk
  (30 s for released checkpoints), as Whisper requires, and the output frames are cropped
  back to the clip's length (one frame per ``2 * hop_length`` samples, frame ``j``
  centred at ``2 j * hop_length`` samples).
* CLAP: only the audio tower runs, at 48 kHz. Clips longer than the feature extractor's
  ``max_length_s`` are cropped to their first ``max_length_s`` seconds before the feature
  extractor sees them, so its random truncation never triggers. Checkpoints with fusion
  (``enable_fusion=True``) take an ``is_longer`` flag per clip; transformers' feature
  extractor sets it for one *random* clip per batch when none is longer than the window,
  which would make activations random and batch-dependent. Every clip reaching the model
  is at most the window long, so ``is_longer`` is set to False for all of them here (and
  recorded as ``is_longer: false`` in the model description): extraction is deterministic
  and batch-invariant. Shorter clips are repeat-padded by the feature extractor
  (``repeatpad``).

Checkpoints are loaded in float32 whatever dtype they were saved in (transformers 5
otherwise keeps a float16 checkpoint in float16); the storage dtype is chosen separately
(``--dtype``).

A local directory works offline. A hub id is passed through unchanged (it needs network
access, or a populated cache with ``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from alignjax.errors import InvalidOptionError

from .spec import Extractor

__all__ = ["HFExtractor", "conv_receptive_field"]

_AST_WIN, _AST_HOP = 25, 10  # AST's kaldi fbank: window and hop in ms
_WAVEFORM_FAMILIES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "wav2vec2-conformer",
                      "unispeech", "unispeech-sat", "sew", "sew-d")


def conv_receptive_field(kernels: Sequence[int], strides: Sequence[int]) -> int:
    """Samples needed for one output frame of a stack of 1-D convolutions (no padding)."""
    n = 1
    for k, s in zip(reversed(list(kernels)), reversed(list(strides))):
        n = (n - 1) * s + k
    return n


def _float32_kwarg(version: str) -> dict:
    """``from_pretrained`` keyword that loads in float32 (``dtype`` since 4.56)."""
    import torch

    major, minor = (int(v) for v in version.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": torch.float32}


def hf_extractor(name: str, *, device: str = "cpu", prompt: str | None = None,
                 run_dtype: str = "float32") -> Extractor:
    """The adapter for an ``hf:`` checkpoint, chosen from its configuration.

    Audio-text models (an ``audio_config`` and a ``text_config``) get
    :class:`~extractors.audio_llm.AudioLLMExtractor`, the EnCodec, DAC and Mimi codecs
    :class:`~extractors.codecs.CodecExtractor`, every other model :class:`HFExtractor`.
    """
    import transformers
    from transformers import AutoConfig

    from .audio_llm import AudioLLMExtractor, RUN_DTYPES, is_audio_llm

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    from .codecs import CODEC_TYPES, CodecExtractor

    if not name:
        raise InvalidOptionError("hf: spec needs a model id or a local directory, e.g. hf:DIR")
    local = Path(name)
    if local.exists() and not (local / "config.json").is_file():
        raise InvalidOptionError(
            f"{local} exists but holds no config.json; save a model there with "
            "save_pretrained, or give a hub id"
        )
    if run_dtype not in RUN_DTYPES:
        raise InvalidOptionError(f"run dtype must be one of {RUN_DTYPES}, got {run_dtype!r}")
    config = AutoConfig.from_pretrained(name)
    if is_audio_llm(config):
        return AudioLLMExtractor(name, config, device=device, prompt=prompt or "",
                                 run_dtype=run_dtype)
    if prompt is not None or run_dtype != "float32":
        raise InvalidOptionError(
            f"hf:{name} ({config.model_type}) is not an audio LLM; --prompt and a bfloat16 run "
            "apply only to audio-text models (Qwen2-Audio, Voxtral, Audio Flamingo 3)")
    if config.model_type in CODEC_TYPES:
        return CodecExtractor(name, config, device=device)
    return HFExtractor(name, device=device)


class HFExtractor(Extractor):
    """Adapter for transformers audio models (see the module docstring)."""

    def __init__(self, name: str, *, device: str = "cpu"):
        if not name:
            raise InvalidOptionError("hf: spec needs a model id or a local directory, e.g. hf:DIR")
        import torch
        import transformers
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        self.spec = f"hf:{name}"
        self.name = name
        self.device = device
        local = Path(name)
        if local.exists() and not (local / "config.json").is_file():
            raise InvalidOptionError(
                f"{local} exists but holds no config.json; save a model there with "
                "save_pretrained, or give a hub id"
            )
        config = AutoConfig.from_pretrained(name)
        self.model_type = config.model_type
        try:
            self.feature_extractor = AutoFeatureExtractor.from_pretrained(name)
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidOptionError(
                f"hf:{name} ({self.model_type}) takes no audio input: it has no feature "
                f"extractor ({type(exc).__name__}); give an audio model, an audio LLM or a codec"
            ) from None
        model = AutoModel.from_pretrained(name, **_float32_kwarg(transformers.__version__))
        if self.model_type == "whisper":
            model = model.get_encoder()
        elif self.model_type == "clap":
            model = model.audio_model
        self.model = model.eval().to(device)
        self._torch = torch
        fe = self.feature_extractor
        self.sample_rate = int(getattr(fe, "sampling_rate", 16000))
        self.max_samples = None
        if self.model_type in _WAVEFORM_FAMILIES or hasattr(config, "conv_kernel"):
            self.min_samples = conv_receptive_field(config.conv_kernel, config.conv_stride)
        elif self.model_type == "whisper":
            self.max_samples = int(fe.n_samples)
            self.min_samples = int(fe.hop_length)
        elif self.model_type == "clap":
            self.min_samples = int(fe.hop_length)
        elif self.model_type == "audio-spectrogram-transformer":
            self.min_samples = _AST_WIN * self.sample_rate // 1000  # one 25 ms fbank window
            self.max_samples = self._ast_frames_to_samples(int(fe.max_length))
        else:
            self.min_samples = int(getattr(fe, "hop_length", 160) or 160) * 2
        # number of hidden states: one probe run on silence
        with torch.no_grad():
            out = self._run(np.zeros((1, max(self.min_samples, self.sample_rate // 2)), np.float32))
        self._n_hidden = len(out)

    def layer_names(self) -> list[str]:
        return [f"hidden_states.{i}" for i in range(self._n_hidden)]

    def describe(self) -> dict:
        import transformers

        cfg = self.model.config
        d = {"model_type": self.model_type, "transformers": transformers.__version__,
             "name_or_path": str(getattr(cfg, "_name_or_path", self.name)),
             "commit": getattr(cfg, "_commit_hash", None),
             "n_hidden_states": self._n_hidden, "load_dtype": "float32"}
        if self.max_samples is not None:
            d["max_samples"] = int(self.max_samples)
        if self.model_type == "clap":
            d.update(window_samples=int(self.feature_extractor.nb_max_samples),
                     enable_fusion=self._clap_fusion(), is_longer=False,
                     longer_clips="cropped to their first window")
        if self.model_type == "audio-spectrogram-transformer":
            d["pooled_tokens"] = ("patch tokens whose time span starts inside the clip's fbank "
                                  "frames (mean/max/stats); 'first' is the CLS token")
        return d

    def frame_rate(self, layer: str) -> float:
        """Output frames per second of ``layer`` (0.0 when frames are tokens, not time)."""
        if self.model_type == "whisper":
            return self.sample_rate / (2 * self.feature_extractor.hop_length)
        strides = getattr(self.model.config, "conv_stride", None)
        if strides and self.model_type != "clap":
            return self.sample_rate / math.prod(strides)
        return 0.0

    def frame_offset(self, layer: str, rate: float) -> float | None:
        """Seconds from the clip onset to the centre of frame 0 of ``layer``.

        Conv front ends without padding (wav2vec2, HuBERT, WavLM, ...): frame ``k`` covers
        samples ``[S k, S k + R)`` (``S``: the product of ``conv_stride``, ``R``: the
        receptive field of ``conv_kernel``/``conv_stride``), so ``R / 2`` samples
        (wav2vec2-base: 400 / 2 / 16000 = 12.5 ms); the transformer blocks above keep their
        input frames' times. Whisper: 0.0 (frame ``j`` is centred on the centred-STFT mel
        frame ``2 j``: two convolutions of kernel 3, padding 1, strides 1 and 2). Frames
        that are tokens (AST, CLAP): 0.0, unused (no frame rate).
        """
        cfg = self.model.config
        if self.model_type == "whisper" or not rate > 0:
            return 0.0
        kernels, strides = getattr(cfg, "conv_kernel", None), getattr(cfg, "conv_stride", None)
        if kernels and strides and self.model_type != "clap":
            return conv_receptive_field(kernels, strides) / 2 / self.sample_rate
        return None

    def frame_mask(self, n_samples: int, layer: str) -> np.ndarray | None:
        """Frames of ``layer`` that pooling averages over for a clip of ``n_samples``.

        None (every frame) except for AST: only the patch tokens whose time span starts
        inside the clip's fbank frames; the CLS/distillation tokens and the patches that
        cover only zero padding are left out.
        """
        if self.model_type != "audio-spectrogram-transformer":
            return None
        cfg = self.model.config
        n_freq = (cfg.num_mel_bins - cfg.patch_size) // cfg.frequency_stride + 1
        n_time = (cfg.max_length - cfg.patch_size) // cfg.time_stride + 1
        hop = _AST_HOP * self.sample_rate // 1000
        n_valid = 1 + (n_samples - self.min_samples) // hop  # fbank frames of the clip
        covers = np.arange(n_time) * cfg.time_stride < n_valid
        mask = np.zeros(2 + n_freq * n_time, bool)
        mask[2:] = np.tile(covers, n_freq)
        return mask

    def _ast_frames_to_samples(self, n_frames: int) -> int:
        return (n_frames - 1) * (_AST_HOP * self.sample_rate // 1000) + self.min_samples

    def _clap_fusion(self) -> bool:
        return bool(getattr(self.model.config, "enable_fusion", False))

    def _inputs(self, waves: np.ndarray) -> dict:
        fe = self.feature_extractor
        batch = [w for w in waves]
        if self.model_type == "whisper":
            enc = fe(batch, sampling_rate=self.sample_rate, return_tensors="pt",
                     padding="max_length")
            return {"input_features": enc["input_features"]}
        if self.model_type == "clap":
            max_len = int(fe.nb_max_samples)
            batch = [w[:max_len] for w in batch]
            enc = fe(batch, sampling_rate=self.sample_rate, return_tensors="pt",
                     truncation="fusion" if self._clap_fusion() else "rand_trunc",
                     padding="repeatpad")
            # no clip is longer than the window (cropped above): never the fusion branch
            is_longer = self._torch.zeros_like(enc["is_longer"], dtype=self._torch.bool)
            return {"input_features": enc["input_features"], "is_longer": is_longer}
        enc = fe(np.stack(batch), sampling_rate=self.sample_rate, return_tensors="pt")
        keys = ("input_values", "input_features")
        return {k: v for k, v in enc.items() if k in keys}

    def _run(self, waves: np.ndarray):
        torch = self._torch
        inputs = {k: v.to(self.device) for k, v in self._inputs(waves).items()}
        out = self.model(**inputs, output_hidden_states=True)
        hs = out.hidden_states
        if self.model_type == "clap":
            hs = tuple(h if h.dim() == 3 else h.flatten(2).transpose(1, 2) for h in hs)
        return hs

    def _whisper_frames(self, n_samples: int) -> int:
        return int(math.ceil(n_samples / (2 * self.feature_extractor.hop_length)))

    def forward(self, waves: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
        torch = self._torch
        waves = np.asarray(waves, dtype=np.float32)
        with torch.no_grad():
            hs = self._run(waves)
        out = {}
        for name in layers:
            h = hs[int(name.split(".")[1])]
            if self.model_type == "whisper":
                h = h[:, : self._whisper_frames(waves.shape[1])]
            out[name] = h.detach().float().cpu().numpy()
        return out
