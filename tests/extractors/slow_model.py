"""A small deterministic torch model for ``torch:slow_model:build``; slow on purpose.

Each forward pass sleeps ``SLOW_MODEL_SLEEP`` seconds (default 0.15) so the SIGKILL test
can interrupt an extraction mid-run. With ``SLOW_MODEL_HOLD=PATH``, every forward pass waits
until the file PATH exists (at most 120 s), so a test can hold a writer for as long as it
needs.
"""

import os
import time

import torch
from torch import nn


class SlowNet(nn.Module):
    sample_rate = 16000
    min_samples = 400

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv1d(1, 8, 400, stride=160)
        self.proj = nn.Linear(8, 6)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)

    def forward(self, wave):
        time.sleep(float(os.environ.get("SLOW_MODEL_SLEEP", "0.15")))
        hold = os.environ.get("SLOW_MODEL_HOLD")
        deadline = time.time() + 120
        while hold and not os.path.exists(hold) and time.time() < deadline:
            time.sleep(0.01)
        h = torch.tanh(self.conv(wave[:, None, :]))  # (batch, 8, frames)
        return self.proj(h.transpose(1, 2))


def build():
    return SlowNet()
