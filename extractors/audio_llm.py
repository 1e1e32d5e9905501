"""``hf:DIR`` for audio LLMs: audio tower and decoder states at the audio-token positions.

Qwen2-Audio, Audio Flamingo 3 and Voxtral (``*ForConditionalGeneration`` models of
transformers whose configuration holds an ``audio_config`` and a ``text_config``). The
class named in the checkpoint's ``config.json`` (``architectures``) is loaded. One
deterministic forward pass per batch (no sampling, no generation):

* the audio goes through the model's own processor together with a text prompt
  (``prompt``; default the empty prompt, recorded in the manifest). The prompt comes
  *before* the audio: the decoder is causal, so the states at the audio positions can only
  be conditioned by text that precedes them (a prompt after the audio would change no
  feature). With a chat template the user turn is ``[prompt, audio]`` and the generation
  prompt is added; without one the text is the prompt followed by the audio placeholder.
  Voxtral's processor needs ``mistral_common``; Voxtral inputs are therefore built from
  its feature extractor (audio zero-padded to whole windows, split into windows) and its
  tokenizer in the Mistral instruct format:
  ``<s>[INST]prompt[BEGIN_AUDIO][AUDIO]...[AUDIO][/INST]``;
* ``language_model.hidden_states.K`` (K = 0: the embeddings, K = L: the last decoder
  layer, before the final norm as transformers returns them) keeps the positions whose
  input id is the audio token, i.e. exactly the positions the processor expanded the
  audio placeholder into; text-prompt positions are left out. Voxtral feeds the tokens of
  the zero padding up to a whole window to the decoder as well; only the tokens that
  start inside the clip are kept;
* ``audio_encoder.hidden_states.K`` (K = 0: the input of the first block, after the
  convolutional front end and the position embeddings; K: the output of block K) are the
  audio tower's frames that cover the clip (the padding of the window is cropped; clips
  over several windows, Audio Flamingo 3 and Voxtral, have their windows concatenated).

Time: encoder frames are ``2 * hop_length`` samples apart; audio tokens
``2 * 2 * hop_length`` (Qwen2-Audio, Audio Flamingo 3: an average pool of 2 after the
tower) or ``2 * k * hop_length`` (Voxtral: ``k`` frames stacked per token). Encoder frame
``j`` is centred at ``j * 2 * hop_length`` samples (the tower's mel frames are centred STFT
frames; its second convolution has stride 2, padding 1); token ``j`` at
``j * seconds_per_token + token_offset_s``, the mean centre of the frames it pools
(Qwen2-Audio, Audio Flamingo 3: 10 ms; ``seconds_per_token`` and ``token_offset_s`` are
in the model description of the manifest).

Audio longer than the model takes (Qwen2-Audio: one window; Audio Flamingo 3: the
processor's ``max_audio_len``; Voxtral: the decoder's context) and prompts that leave
no room in the decoder's context are refused before any extraction.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from alignjax.errors import InvalidOptionError

from .spec import Extractor

__all__ = ["AudioLLMExtractor", "is_audio_llm", "AUDIO_LLM_TYPES", "RUN_DTYPES"]

AUDIO_LLM_TYPES = ("qwen2_audio", "audioflamingo3", "voxtral")
RUN_DTYPES = ("float32", "bfloat16", "float16")
_ENC, _DEC = "audio_encoder.hidden_states.", "language_model.hidden_states."


def is_audio_llm(config) -> bool:
    """True for a configuration of an audio-text ``*ForConditionalGeneration`` model.

    (CLAP also has an audio and a text configuration but is a contrastive ``ClapModel``.)
    """
    archs = getattr(config, "architectures", None) or []
    return (getattr(config, "audio_config", None) is not None
            and getattr(config, "text_config", None) is not None
            and (config.model_type in AUDIO_LLM_TYPES
                 or any(a.endswith("ForConditionalGeneration") for a in archs)))


def _run_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


class AudioLLMExtractor(Extractor):
    """Adapter for audio LLMs (see the module docstring).

    Parameters
    ----------
    name : str
        Local directory (or hub id) of the checkpoint.
    device : str
    prompt : str
        Text of the user turn, placed before the audio (the decoder is causal: text after
        the audio could not change the states at the audio positions).
    run_dtype : {'float32', 'bfloat16', 'float16'}
        dtype the model is loaded and run in.
    """

    def __init__(self, name: str, config, *, device: str = "cpu", prompt: str = "",
                 run_dtype: str = "float32"):
        import torch
        import transformers as T

        self.spec, self.name, self.device = f"hf:{name}", name, device
        self.model_type = config.model_type
        if self.model_type not in AUDIO_LLM_TYPES:
            raise InvalidOptionError(
                f"hf:{name} is a {self.model_type!r} audio-text model; the audio LLM adapter "
                f"supports {', '.join(AUDIO_LLM_TYPES)}")
        self.prompt, self.run_dtype = str(prompt), run_dtype
        self._torch = torch
        self.model = _load_model(T, name, config, device, _run_dtype(run_dtype))
        self.config = self.model.config
        self.audio_token_id = int(self.config.audio_token_id)
        if self.model_type == "voxtral":
            self.processor = None
            self.feature_extractor = T.AutoFeatureExtractor.from_pretrained(name)
            self.tokenizer = T.AutoTokenizer.from_pretrained(name)
        else:
            self.processor = T.AutoProcessor.from_pretrained(name)
            self.feature_extractor = self.processor.feature_extractor
            self.tokenizer = self.processor.tokenizer
        fe = self.feature_extractor
        self.sample_rate = int(fe.sampling_rate)
        self.hop = int(fe.hop_length)
        self.window = int(fe.n_samples)  # samples per window of the audio tower
        self.min_samples = 2 * self.hop
        self.tower = self.model.model.audio_tower if hasattr(self.model, "model") else \
            self.model.audio_tower
        self.n_enc = len(self.tower.layers)
        self.n_dec = int(self.config.text_config.num_hidden_layers)
        self.context = int(self.config.text_config.max_position_embeddings)
        self.text = self._text()
        self.max_samples = self._max_samples()
        self._check_context(self.max_samples)

    # ------------------------------------------------------------------ description
    def layer_names(self) -> list[str]:
        return ([f"{_ENC}{k}" for k in range(self.n_enc + 1)]
                + [f"{_DEC}{k}" for k in range(self.n_dec + 1)])

    @property
    def frames_per_token(self) -> int:
        """Audio-tower frames per audio token (2, or Voxtral's stacking factor)."""
        if self.model_type == "voxtral":
            return int(self.config.audio_config.intermediate_size
                       // self.config.audio_config.hidden_size)
        return 2

    @property
    def seconds_per_token(self) -> float:
        return 2 * self.frames_per_token * self.hop / self.sample_rate

    def describe(self) -> dict:
        import transformers

        return {"model_type": self.model_type, "class": type(self.model).__name__,
                "transformers": transformers.__version__,
                "name_or_path": str(getattr(self.config, "_name_or_path", self.name)),
                "commit": getattr(self.config, "_commit_hash", None),
                "prompt": self.prompt, "prompt_text": self.text,
                "audio_token_id": self.audio_token_id, "run_dtype": self.run_dtype,
                "seconds_per_token": self.seconds_per_token,
                "token_offset_s": self.token_offset_s,
                "seconds_per_encoder_frame": 2 * self.hop / self.sample_rate,
                "max_samples": int(self.max_samples), "window_samples": self.window,
                "forward": "one pass, output_hidden_states=True, no generation"}

    def frame_rate(self, layer: str) -> float:
        if layer.startswith(_ENC):
            return self.sample_rate / (2 * self.hop)
        return 1.0 / self.seconds_per_token

    @property
    def token_offset_s(self) -> float:
        """Centre of audio token 0: the mean of the centres of the frames it pools/stacks."""
        return (self.frames_per_token - 1) / 2 * 2 * self.hop / self.sample_rate

    def frame_offset(self, layer: str, rate: float) -> float:
        """Encoder frames: 0.0 (frame ``j`` is centred on the centred-STFT mel frame ``2 j``).
        Audio tokens: :attr:`token_offset_s` (Qwen2-Audio, Audio Flamingo 3: 10 ms, the
        average pool of 2 frames; Voxtral: ``(k - 1) / 2`` frames for ``k`` stacked)."""
        return 0.0 if layer.startswith(_ENC) else self.token_offset_s

    # ------------------------------------------------------------------ limits
    def _text(self) -> str:
        """The prompt text with one audio placeholder (Voxtral: ids are built directly)."""
        if self.processor is None:
            return f"<s>[INST]{self.prompt}[BEGIN_AUDIO][AUDIO][/INST]"
        proc = self.processor
        if getattr(proc, "chat_template", None):
            content = ([{"type": "text", "text": self.prompt}] if self.prompt else []) + [
                {"type": "audio"}]
            return proc.apply_chat_template([{"role": "user", "content": content}],
                                            tokenize=False, add_generation_prompt=True)
        return self.prompt + proc.audio_token

    def _max_samples(self) -> int:
        if self.model_type == "qwen2_audio":
            return self.window
        if self.model_type == "audioflamingo3":
            return int(self.processor.max_audio_len * self.sample_rate)
        per_window = self.window // self.hop // 2 // self.frames_per_token
        n_text = len(self._voxtral_ids(0))
        n_windows = max(1, (self.context - n_text) // per_window)
        return n_windows * self.window

    def n_audio_tokens(self, n_samples: int) -> int:
        """Audio tokens the processor inserts for a clip of ``n_samples``."""
        if self.model_type == "voxtral":
            n_win = max(1, math.ceil(n_samples / self.window))
            return n_win * (self.window // self.hop // 2 // self.frames_per_token)
        n_mel = _mel_frames(n_samples, self.hop, self.window)
        return ((n_mel - 1) // 2 + 1 - 2) // 2 + 1

    def _check_context(self, n_samples: int) -> None:
        n_text = len(self._token_ids(1)) - 1
        n = n_text + self.n_audio_tokens(n_samples)
        if n_text >= self.context or n > self.context:
            raise InvalidOptionError(
                f"{self.spec}: the prompt takes {n_text} tokens and the longest audio "
                f"{self.n_audio_tokens(n_samples)}, {n} in all, beyond the decoder's context of "
                f"{self.context} positions; shorten --prompt")

    def _token_ids(self, n_audio: int) -> list[int]:
        if self.processor is None:
            return self._voxtral_ids(n_audio)
        return self.tokenizer(self.text.replace(self.processor.audio_token,
                                                self.processor.audio_token * n_audio),
                              add_special_tokens=False)["input_ids"]

    def _voxtral_ids(self, n_audio: int) -> list[int]:
        tok = self.tokenizer
        ids = tok.convert_tokens_to_ids(["<s>", "[INST]"])
        ids += tok(self.prompt, add_special_tokens=False)["input_ids"] if self.prompt else []
        ids += [tok.convert_tokens_to_ids("[BEGIN_AUDIO]")] + [self.audio_token_id] * n_audio
        return ids + [tok.convert_tokens_to_ids("[/INST]")]

    # ------------------------------------------------------------------ inputs
    def _inputs(self, waves: np.ndarray) -> tuple[dict, list[int]]:
        """Model inputs for a batch of equal-length clips; valid encoder frames per window."""
        torch = self._torch
        n = waves.shape[1]
        if self.model_type == "voxtral":
            n_win = max(1, math.ceil(n / self.window))
            padded = np.zeros((len(waves), n_win * self.window), np.float32)
            padded[:, :n] = waves
            feats = self.feature_extractor(list(padded.reshape(-1, self.window)),
                                           sampling_rate=self.sample_rate, return_tensors="pt")
            ids = torch.tensor([self._voxtral_ids(self.n_audio_tokens(n))] * len(waves))
            inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                      "input_features": feats["input_features"]}
            valid = [self.window // self.hop // 2] * (len(waves) * n_win)
            return inputs, valid
        enc = self.processor(text=[self.text] * len(waves), audio=list(waves),
                             sampling_rate=self.sample_rate, return_tensors="pt")
        inputs = {k: v for k, v in enc.items() if k != "num_audio_tokens"}
        mask = inputs.get("feature_attention_mask", inputs.get("input_features_mask"))
        valid = [(int(m) - 1) // 2 + 1 for m in mask.sum(-1)]
        return inputs, valid

    # ------------------------------------------------------------------ forward
    def forward(self, waves: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
        torch = self._torch
        waves = np.asarray(waves, dtype=np.float32)
        self.check_length(waves.shape[1], what="the clip")
        inputs, valid = self._inputs(waves)
        enc_k = sorted({int(n[len(_ENC):]) for n in layers if n.startswith(_ENC)})
        with torch.no_grad(), _tower_hooks(self.tower, enc_k) as captured:
            dtype = _run_dtype(self.run_dtype)
            inputs = {k: (v.to(self.device, dtype) if v.is_floating_point() else v.to(self.device))
                      for k, v in inputs.items()}
            out = self.model(**inputs, output_hidden_states=True, use_cache=False)
        positions = (inputs["input_ids"] == self.audio_token_id).cpu()
        n_keep = self._kept_tokens(waves.shape[1], positions)
        result = {}
        for name in layers:
            k = int(name.rsplit(".", 1)[1])
            if name.startswith(_DEC):
                h = out.hidden_states[k].float().cpu()
                h = h[positions].reshape(len(waves), -1, h.shape[-1])[:, :n_keep]
            else:
                h = _concat_windows(captured[k].float().cpu(), valid, len(waves))
                h = h[:, : self._kept_frames(waves.shape[1], h.shape[1])]
            result[name] = h.numpy()
        return result

    def audio_positions(self, waves: np.ndarray) -> np.ndarray:
        """Boolean mask (batch, sequence) of the audio-token positions the processor made."""
        inputs, _ = self._inputs(np.asarray(waves, np.float32))
        return (inputs["input_ids"] == self.audio_token_id).numpy()

    def _kept_tokens(self, n_samples: int, positions) -> int:
        counts = positions.sum(1)
        if not bool((counts == counts[0]).all()):
            raise RuntimeError(f"{self.spec}: clips of one length got different audio-token "
                               f"counts {counts.tolist()}")
        if self.model_type != "voxtral":
            return int(counts[0])
        return min(int(counts[0]), math.ceil(n_samples / (self.seconds_per_token
                                                          * self.sample_rate)))

    def _kept_frames(self, n_samples: int, n_frames: int) -> int:
        if self.model_type != "voxtral":
            return n_frames
        return min(n_frames, math.ceil(n_samples / (2 * self.hop)))


def _mel_frames(n_samples: int, hop: int, window: int) -> int:
    """Mel frames the Whisper feature extractor's attention masks count for one clip.

    The clip is cut into windows of ``window`` samples; each window's mask counts
    ``ceil(len / hop)`` frames.
    """
    n_win = max(1, math.ceil(n_samples / window))
    return sum(math.ceil(min(window, n_samples - w * window) / hop) for w in range(n_win))


def _concat_windows(h, valid: list[int], batch: int):
    """(batch * n_win, frames, d) -> (batch, sum of the valid frames of each window, d)."""
    import torch

    n_win = h.shape[0] // batch
    rows = []
    for b in range(batch):
        rows.append(torch.cat([h[b * n_win + w, : valid[b * n_win + w]] for w in range(n_win)]))
    return torch.stack(rows)


class _tower_hooks:
    """Capture the audio tower's block inputs/outputs: hidden state K for each K asked."""

    def __init__(self, tower, ks: list[int]):
        self.tower, self.ks, self.handles, self.captured = tower, ks, [], {}

    def __enter__(self) -> dict:
        from .hooks import _first_tensor

        layers = self.tower.layers
        if 0 in self.ks:
            def pre(_m, args, kwargs):
                x = args[0] if args else kwargs.get("hidden_states")
                self.captured[0] = x.detach()
            self.handles.append(layers[0].register_forward_pre_hook(pre, with_kwargs=True))
        for k in self.ks:
            if k == 0:
                continue

            def post(_m, _i, out, k=k):
                self.captured[k] = _first_tensor(out).detach()
            self.handles.append(layers[k - 1].register_forward_hook(post))
        return self.captured

    def __exit__(self, *exc) -> bool:
        for h in self.handles:
            h.remove()
        return False


def _load_model(T, name: str, config, device: str, dtype):
    """The class named in the checkpoint (``architectures``), loaded in ``dtype``."""
    arch = (getattr(config, "architectures", None) or [None])[0]
    cls = getattr(T, arch, None) if arch else None
    if cls is None:
        raise InvalidOptionError(f"hf:{name}: config.json names no transformers class "
                                 f"(architectures={getattr(config, 'architectures', None)})")
    kw = {"dtype": dtype}
    if device.startswith("cuda"):
        import importlib.util

        _check_fits(name, dtype, device)
        if importlib.util.find_spec("accelerate") is not None:
            kw["device_map"] = "auto"
    import torch

    try:
        model = cls.from_pretrained(name, **kw).eval()
        return model if "device_map" in kw else model.to(device)
    except torch.OutOfMemoryError:
        need = weights_bytes(name, dtype)
        raise InvalidOptionError(
            f"hf:{name} does not fit on {device}"
            + (f": its weights alone need {need / 2**30:.1f} GiB in {dtype}" if need else "")
            + "; use --dtype bfloat16, a larger GPU, or install accelerate") from None


def weights_bytes(name: str, dtype) -> int | None:
    """Bytes the weights of a local checkpoint take in ``dtype`` (None if unknown)."""
    import json

    root = Path(name)
    files = sorted(root.glob("*.safetensors")) if root.is_dir() else []
    if not files:
        return None
    n_params, size = 0, {"F32": 4, "BF16": 2, "F16": 2, "F64": 8}
    for f in files:
        with open(f, "rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        for k, v in header.items():
            if k != "__metadata__":
                n_params += math.prod(v["shape"])
    return n_params * (2 if str(dtype).endswith("16") else 4)


def _check_fits(name: str, dtype, device: str) -> None:
    """Refuse a model whose weights alone exceed the free memory of every visible GPU."""
    import torch

    need = weights_bytes(name, dtype)
    if need is None:
        return
    free = sum(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count()))
    if need > free:
        raise InvalidOptionError(
            f"hf:{name} needs {need / 2**30:.1f} GiB for its weights in {dtype} but the GPUs "
            f"have {free / 2**30:.1f} GiB free; use --dtype bfloat16, a larger GPU, or "
            "install accelerate to spread it over several")
