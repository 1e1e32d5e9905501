"""Small torch modules whose hooked outputs are time-major, channels-first or ambiguous.

``torch:layout_models:build`` (and ``build_ambiguous``, ``build_overflow``). Each exposes
``reference(wave, name)``: the layer's output computed directly, as (batch, time, features).
"""

import torch
from torch import nn


class _Front(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 8, 160, stride=80)
        self.norm = nn.GroupNorm(2, 8)
        self.act = nn.GELU()

    def forward(self, wave):
        return self.act(self.norm(self.conv(wave[:, None])))  # (batch, 8, time)


class LayoutNet(nn.Module):
    """A conv block (conv, GroupNorm, GELU) feeding batch_first=False recurrent layers."""

    sample_rate = 16000
    min_samples = 160

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.front = _Front()
        self.lstm = nn.LSTM(8, 6)
        self.gru = nn.GRU(8, 5)
        self.encoder = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)
        self.attention = nn.MultiheadAttention(8, 2)

    def _direct(self, wave):
        c = self.front(wave)
        x = c.permute(2, 0, 1)  # (time, batch, 8)
        return {"front": c, "front.norm": self.front.norm(self.front.conv(wave[:, None])),
                "lstm": self.lstm(x)[0], "gru": self.gru(x)[0], "encoder": self.encoder(x),
                "attention": self.attention(x, x, x)[0]}

    def forward(self, wave):
        return sum(v.sum() for v in self._direct(wave).values())

    def reference(self, wave, name):
        with torch.no_grad():
            out = self._direct(wave)[name]
        return out.transpose(1, 2) if name.startswith("front") else out.transpose(0, 1)


class _Gram(nn.Module):
    def forward(self, x):  # (batch, time, time): two axes follow the clip length
        return x @ x.transpose(1, 2)


class AmbiguousNet(nn.Module):
    sample_rate = 16000

    def __init__(self):
        super().__init__()
        self.front = nn.Conv1d(1, 4, 160, stride=80)
        self.gram = _Gram()

    def forward(self, wave):
        return self.gram(self.front(wave[:, None]).transpose(1, 2))


class OverflowNet(nn.Module):
    """``big`` exceeds float16's range (65504) on any non-silent input; ``small`` does not."""

    sample_rate = 16000

    def __init__(self):
        super().__init__()
        self.small = nn.Identity()
        self.big = nn.Identity()

    def forward(self, wave):
        frames = wave.reshape(wave.shape[0], -1, 160)
        return self.small(frames), self.big(frames.abs() * 1e7 + 1e5)


def build():
    return LayoutNet()


def build_ambiguous():
    return AmbiguousNet()


def build_overflow():
    return OverflowNet()
