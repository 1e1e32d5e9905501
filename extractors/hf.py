"""``hf:<model id or local directory>``: Hugging Face transformers audio models.

Loaded with ``AutoModel`` + ``AutoFeatureExtractor`` and run with
``output_hidden_states=True``; layers are ``hidden_states.0`` (the input of the first
block) to ``hidden_states.L``. Families:

* wav2vec2, HuBERT, WavLM, Data2Vec-audio (and other CTC-style encoders with a
  convolutional front end): raw waveform in, frames at the conv front end's stride.
* AST: fbank patches in; tokens out (CLS and distillation tokens first, so
  ``pooling='first'`` is the CLS token).
* Whisper: only the encoder runs. The input is padded to the feature extractor's chunk
  (30 s for released checkpoints), as Whisper requires, and the output frames are cropped
  back to the clip's length (one frame per ``2 * hop_length`` samples).
* CLAP: only the audio tower runs, at 48 kHz. Clips longer than the feature extractor's
  ``max_length_s`` are cropped to their first ``max_length_s`` seconds before the feature
  extractor sees them, so its random truncation never triggers: extraction is
  deterministic. Shorter clips are repeat-padded by the feature extractor (``repeatpad``).

A local directory works offline. A hub id is passed through unchanged (it needs network
access, or a populated cache with ``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from alignjax._validation import InvalidOptionError

from .spec import Extractor

__all__ = ["HFExtractor", "conv_receptive_field"]

_WAVEFORM_FAMILIES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "wav2vec2-conformer",
                      "unispeech", "unispeech-sat", "sew", "sew-d")


def conv_receptive_field(kernels: Sequence[int], strides: Sequence[int]) -> int:
    """Samples needed for one output frame of a stack of 1-D convolutions (no padding)."""
    n = 1
    for k, s in zip(reversed(list(kernels)), reversed(list(strides))):
        n = (n - 1) * s + k
    return n


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
        self.feature_extractor = AutoFeatureExtractor.from_pretrained(name)
        model = AutoModel.from_pretrained(name)
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
            self.min_samples = int(0.025 * self.sample_rate)  # one 25 ms fbank window
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
        return {"model_type": self.model_type, "transformers": transformers.__version__,
                "name_or_path": str(getattr(cfg, "_name_or_path", self.name)),
                "commit": getattr(cfg, "_commit_hash", None),
                "n_hidden_states": self._n_hidden}

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
            fusion = bool(getattr(self.model.config, "enable_fusion", False))
            enc = fe(batch, sampling_rate=self.sample_rate, return_tensors="pt",
                     truncation="fusion" if fusion else "rand_trunc", padding="repeatpad")
            return {"input_features": enc["input_features"], "is_longer": enc["is_longer"]}
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
