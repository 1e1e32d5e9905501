"""Test helpers: tone files, and tiny random transformers models (see extractors.tiny).

Every family the ``hf:`` adapter supports, at hidden size 32 with 2 layers, so tests are
fast. Loaded back through ``hf:<dir>`` with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 16000

from extractors.tiny import FAMILIES, build_random_model  # noqa: E402


def build(family: str, root, **kw) -> Path:
    return build_random_model(family, root, **kw)


def write_tone(path, freq=440.0, seconds=0.5, sr=SR, channels=1, amp=0.5, subtype="PCM_16"):
    import soundfile as sf

    t = np.arange(int(round(seconds * sr))) / sr
    x = amp * np.sin(2 * np.pi * freq * t)
    if channels > 1:
        x = np.stack([x * (k + 1) / channels for k in range(channels)], axis=1)
    sf.write(str(path), x, sr, subtype=subtype)
    return path
