"""Reading and writing what alignjax analyses: the feature store, model layers, responses.

- :mod:`alignjax.io.store`: the feature store (:func:`open_store`, :class:`FeatureStore`,
  :class:`StoreWriter`); :mod:`alignjax.io.manifest`: its manifest (:class:`Manifest`,
  :class:`LayerInfo`); :mod:`alignjax.io.lock`: one writer per store (:class:`StoreLock`).
- :mod:`alignjax.io.layers`: :func:`load_layers` from a store, ``.npy``/``.npz`` files or arrays.
- :mod:`alignjax.io.responses`: :func:`load_responses`, with a loader per file type
  (:func:`register_loader`).
- :mod:`alignjax.io.neuro`: NIfTI/GIfTI responses (4-D images, folders of beta images,
  surfaces, subject tables) with their space; :mod:`alignjax.io.maps`: :func:`write_maps`
  puts per-target results back in that space; :mod:`alignjax.io.rois`: ROI summaries over
  an atlas. nibabel (the ``[fmri]`` extra) is imported only when such files are read.
- :mod:`alignjax.io.epochs`: :func:`load_epochs` (MNE ``Epochs``, ``.npz``/``.h5`` arrays).

NumPy only: nothing here imports jax or torch.
"""

from .layers import LayerSet, load_layers
from .responses import Responses, load_responses, register_loader, response_formats
from .manifest import (FORMAT_VERSION, MANIFEST, LayerInfo, Manifest, fsync_dir, read_manifest,
                       remove_temporary_manifests, write_manifest)
from .lock import LOCK_NAME, StoreLock, lock_holder, store_lock
from .store import FeatureStore, StoreWriter, open_store
from .neuro import (NAN_VOXELS, SurfaceSpace, VolumeSpace, companion_files, load_gifti_responses,
                    load_nifti_folder, load_nifti_responses, load_subject_table,
                    read_stimulus_ids)
from .maps import map_paths, write_maps
from .rois import RoiSummary, read_roi_labels, roi_summary
from .epochs import EPOCH_FORMATS, EpochsData, load_epochs

from . import (epochs as _epochs, layers as _layers, lock as _lock, manifest as _manifest,
               maps as _maps, neuro as _neuro, responses as _responses, rois as _rois,
               store as _store)

__all__ = (_store.__all__ + _manifest.__all__ + _lock.__all__ + _layers.__all__
           + _responses.__all__ + _neuro.__all__ + _maps.__all__ + _rois.__all__ + _epochs.__all__)
