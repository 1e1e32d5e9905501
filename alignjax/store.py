"""Compatibility module: the feature store and the loaders live in :mod:`alignjax.io`.

``from alignjax.store import ...`` keeps working with the same names; new code imports
from :mod:`alignjax.io`.
"""

from .io.layers import LayerSet, load_layers
from .io.responses import Responses, load_responses, register_loader
from .io.manifest import FORMAT_VERSION, MANIFEST, LayerInfo, Manifest, read_manifest
from .io.store import FeatureStore, StoreWriter, open_store

__all__ = [
    "FeatureStore",
    "StoreWriter",
    "open_store",
    "load_layers",
    "load_responses",
    "Responses",
    "MANIFEST",
    "FORMAT_VERSION",
    "LayerSet",
    "LayerInfo",
    "Manifest",
    "read_manifest",
    "register_loader",
]
