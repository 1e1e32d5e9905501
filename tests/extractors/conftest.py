"""Fixtures for the extractor tests: tiny random HF models, a small synthetic stimulus set."""

import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

try:  # the [extract] extra (torch, transformers, librosa, soundfile) is optional
    import librosa  # noqa: F401
    import soundfile  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
except ImportError:
    collect_ignore_glob = ["test_*.py"]
else:
    import extract_helpers as tiny_models



@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """Directory of tiny models, one sub-directory per family (built lazily)."""
    root = tmp_path_factory.mktemp("tiny_models")
    built = {}

    def get(family: str, **kw) -> Path:
        key = (family, tuple(sorted(kw.items())))
        if key not in built:
            sub = root / f"{family}-{len(built)}"
            built[key] = tiny_models.build(family, sub, **kw)
        return built[key]

    return get


@pytest.fixture(scope="session")
def synth_set(tmp_path_factory):
    """16 synthetic 0.5 s stimuli (no speech, so the set is the same on every machine)."""
    from extractors.synth import synthesize

    out = tmp_path_factory.mktemp("synth")
    csv_path = synthesize(out, n=16, seed=3, duration=0.5,
                          categories=["impact", "harmonic", "noise", "chirp", "am", "fm", "clicks"])
    return csv_path


@pytest.fixture
def stim_copy(synth_set, tmp_path):
    """A writable copy of the synthetic set (as a folder)."""
    dst = tmp_path / "stim"
    shutil.copytree(synth_set.parent, dst)
    (dst / "labels.csv").unlink()
    return dst
