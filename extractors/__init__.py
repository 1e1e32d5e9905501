"""alignjax extractors: run audio models over sounds and write a feature store.

The torch half of alignjax. ``alignjax`` (the JAX core) never imports this package; it
reads what this package writes through :mod:`alignjax.io`.
"""

from .audio import AudioError, Stimulus, list_stimuli, load_audio
from .pooling import POOLINGS, pool
from .spec import Extractor, LayerError, load_extractor, parse_spec

__all__ = [
    "AudioError",
    "Stimulus",
    "list_stimuli",
    "load_audio",
    "POOLINGS",
    "pool",
    "Extractor",
    "LayerError",
    "load_extractor",
    "parse_spec",
    "extract",
    "extract_checkpoints",
    "layer_table",
    "synthesize",
]


def __getattr__(name):  # lazy: importing the package does not import torch
    if name in ("extract", "layer_table"):
        from . import run

        return getattr(run, name)
    if name == "extract_checkpoints":
        from .checkpoints import extract_checkpoints

        return extract_checkpoints
    if name == "synthesize":
        from .synth import synthesize

        return synthesize
    raise AttributeError(name)
