"""Reading and writing what alignjax analyses: the feature store, model layers, responses.

- :mod:`alignjax.io.store`: the feature store (:func:`open_store`, :class:`FeatureStore`,
  :class:`StoreWriter`); :mod:`alignjax.io.manifest`: its manifest (:class:`Manifest`,
  :class:`LayerInfo`).
- :mod:`alignjax.io.layers`: :func:`load_layers` from a store, ``.npy``/``.npz`` files or arrays.
- :mod:`alignjax.io.responses`: :func:`load_responses`, with a loader per file type
  (:func:`register_loader`).
- :mod:`alignjax.io.epochs`: :func:`load_epochs` (MNE ``Epochs``, ``.npz``/``.h5`` arrays).

NumPy only: nothing here imports jax or torch.
"""

from .layers import LayerSet, load_layers
from .responses import Responses, load_responses, register_loader, response_formats
from .manifest import (FORMAT_VERSION, MANIFEST, LayerInfo, Manifest, read_manifest,
                       write_manifest)
from .store import FeatureStore, StoreWriter, open_store
from .epochs import EPOCH_FORMATS, EpochsData, load_epochs

from . import (epochs as _epochs, layers as _layers, manifest as _manifest,
               responses as _responses, store as _store)

__all__ = (_store.__all__ + _manifest.__all__ + _layers.__all__ + _responses.__all__
           + _epochs.__all__)
