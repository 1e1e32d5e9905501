"""``silero``: the Silero voice-activity detector (v5, 16 kHz) as a hookable torch network.

The weights are those ``silero_vad.load_silero_vad()`` runs: the 16 kHz branch of the
TorchScript model the package ships, ``silero_vad/data/silero_vad.jit`` (its ONNX files
hold the same weights), read offline with ``torch.jit.load`` and loaded into a port of the
network written for this package, so every stage is a layer (install the package with
``pip install --no-deps silero-vad``; it is never imported here). The package's
``silero_vad_16k.safetensors`` is *not* used: it holds other weights (shipped for a
tinygrad example), whose speech probabilities differ from the package's model by up to
0.78.

The detector is streaming: audio is cut into 512-sample chunks (32 ms; the last one
zero-padded), each prefixed with the last 64 samples of the previous chunk (zeros for the
first), reflect-padded by 64 samples on the right, and turned into a 129-bin magnitude
spectrum (a learned STFT as a strided convolution, 4 frames per chunk). Four conv blocks
reduce it to one 128-d vector per chunk, an LSTM cell carries state across chunks, and a
1x1 conv + sigmoid gives the speech probability.

Layers, one frame per chunk (31.25 frames/s): ``stft`` (129 x 4, flattened), ``conv1`` (128 x 4), ``conv2``
(64 x 2), ``conv3`` (64), ``conv4`` (128), ``lstm`` (128, the hidden state) and ``prob``
(1, the speech probability). Frame ``t`` is centred at ``t / 31.25 + 0.014`` s, the
centre of the 576 samples chunk ``t`` sees (:meth:`SileroExtractor.frame_offset`).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from alignjax.errors import InvalidOptionError

from .spec import Extractor

__all__ = ["SileroExtractor", "silero_weights_path", "silero_state_dict", "SileroNet", "CHUNK",
           "CONTEXT"]

SAMPLE_RATE = 16000
CHUNK = 512
CONTEXT = 64
N_FFT = 256
STFT_HOP = 128
LAYERS = ("stft", "conv1", "conv2", "conv3", "conv4", "lstm", "prob")


def silero_weights_path() -> Path:
    """Locate ``silero_vad/data/silero_vad.jit`` without importing silero_vad."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise InvalidOptionError(
            "silero: needs the silero-vad package for its weights; install it with "
            "`pip install --no-deps silero-vad`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad.jit"
    if not path.is_file():
        raise InvalidOptionError(f"silero weights {path} not found in the silero-vad package")
    return path


def silero_state_dict(path: Path | None = None) -> dict:
    """The 16 kHz weights of silero-vad's TorchScript model, named as :func:`SileroNet`'s.

    Parameters
    ----------
    path : Path, optional
        The ``silero_vad.jit`` file (default: the installed package's).
    """
    import torch

    jit = torch.jit.load(str(path or silero_weights_path()), map_location="cpu")
    renames = [("stft.forward_basis_buffer", "stft_conv.weight"), ("decoder.rnn.", "lstm_cell."),
               ("decoder.decoder.2.", "final_conv.")]
    renames += [(f"encoder.{i}.reparam_conv.", f"conv{i + 1}.") for i in range(4)]
    state = {}
    for key, value in jit._model.state_dict().items():
        for old, new in renames:
            key = key.replace(old, new)
        state[key] = value.detach().clone()
    return state


def _build_net():
    import torch
    from torch import nn

    class _SileroNet(nn.Module):
        """Silero VAD v5 (16 kHz); see :func:`silero_state_dict` for its weights."""

        def __init__(self):
            super().__init__()
            self.stft_conv = nn.Conv1d(1, 2 * (N_FFT // 2 + 1), N_FFT, stride=STFT_HOP, bias=False)
            self.conv1 = nn.Conv1d(N_FFT // 2 + 1, 128, 3, padding=1)
            self.conv2 = nn.Conv1d(128, 64, 3, stride=2, padding=1)
            self.conv3 = nn.Conv1d(64, 64, 3, stride=2, padding=1)
            self.conv4 = nn.Conv1d(64, 128, 3, padding=1)
            self.lstm_cell = nn.LSTMCell(128, 128)
            self.final_conv = nn.Conv1d(128, 1, 1)

        def encode(self, windows: torch.Tensor) -> dict:
            """(n, CONTEXT + CHUNK) windows -> per-window encoder stages."""
            x = nn.functional.pad(windows[:, None, :], (0, CONTEXT), mode="reflect")
            spec = self.stft_conv(x)
            half = spec.shape[1] // 2
            mag = torch.sqrt(spec[:, :half] ** 2 + spec[:, half:] ** 2)
            c1 = torch.relu(self.conv1(mag))
            c2 = torch.relu(self.conv2(c1))
            c3 = torch.relu(self.conv3(c2))
            c4 = torch.relu(self.conv4(c3))
            return {"stft": mag, "conv1": c1, "conv2": c2, "conv3": c3, "conv4": c4}

        def forward(self, wave: torch.Tensor) -> dict:
            """(batch, n_samples) -> dict layer -> (batch, n_chunks, features)."""
            b, n = wave.shape
            n_chunks = -(-n // CHUNK)
            wave = nn.functional.pad(wave, (CONTEXT, n_chunks * CHUNK - n))
            idx = (torch.arange(CONTEXT + CHUNK)[None, :]
                   + CHUNK * torch.arange(n_chunks)[:, None])
            windows = wave[:, idx].reshape(b * n_chunks, CONTEXT + CHUNK)
            enc = self.encode(windows)
            feats = enc["conv4"].squeeze(-1).reshape(b, n_chunks, -1)
            h = feats.new_zeros(b, 128)
            c = feats.new_zeros(b, 128)
            hs = []
            for t in range(n_chunks):  # the recurrence is sequential over chunks
                h, c = self.lstm_cell(feats[:, t], (h, c))
                hs.append(h)
            hidden = torch.stack(hs, dim=1)  # (b, n_chunks, 128)
            prob = torch.sigmoid(self.final_conv(torch.relu(hidden).transpose(1, 2)))
            out = {k: v.reshape(b, n_chunks, -1) for k, v in enc.items()}
            out["lstm"] = hidden
            out["prob"] = prob.transpose(1, 2)
            return out

    return _SileroNet


def SileroNet():  # noqa: N802 - factory returning the module
    """Build the Silero VAD network (random weights)."""
    return _build_net()()


class SileroExtractor(Extractor):
    """Silero VAD with its shipped weights (see the module docstring)."""

    def __init__(self, *, device: str = "cpu"):
        import torch

        self.spec = "silero"
        self.sample_rate = SAMPLE_RATE
        self.min_samples = 1
        self.max_samples = None
        self.device = device
        self._torch = torch
        path = silero_weights_path()
        self._sha = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        net = SileroNet()
        net.load_state_dict(silero_state_dict(path))
        self.net = net.eval().to(device)

    def layer_names(self) -> list[str]:
        return list(LAYERS)

    def describe(self) -> dict:
        return {"weights": "silero_vad.jit (16 kHz branch, as load_silero_vad() runs)",
                "weights_sha256": self._sha, "chunk": CHUNK, "context": CONTEXT,
                "frame_rate_hz": SAMPLE_RATE / CHUNK}

    def frame_rate(self, layer: str) -> float:
        return SAMPLE_RATE / CHUNK  # 31.25

    def frame_offset(self, layer: str, rate: float) -> float:
        """0.014 s: chunk ``t`` sees samples ``[512 t - 64, 512 t + 512)``, centred at
        ``512 t + 224`` (the LSTM and the probability: the chunk they take in)."""
        return (-CONTEXT + (CONTEXT + CHUNK) / 2) / SAMPLE_RATE

    def forward(self, waves: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
        """Run each clip on its own (the LSTM cell's matmul gives other last bits for other
        batch sizes), so the activations do not depend on the batch size."""
        torch = self._torch
        waves = torch.from_numpy(np.asarray(waves, np.float32)).to(self.device)
        parts: dict[str, list] = {name: [] for name in layers}
        with torch.no_grad():
            for wave in waves:
                out = self.net(wave[None])
                for name in layers:
                    parts[name].append(out[name].float().cpu().numpy())
        return {name: np.concatenate(v) for name, v in parts.items()}

    def speech_probability(self, wave: np.ndarray) -> np.ndarray:
        """Per-chunk speech probability (n_chunks,) of one waveform."""
        return self.forward(wave[None], ["prob"])["prob"][0, :, 0]
