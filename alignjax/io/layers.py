"""Model layers from anything: a feature store, a folder of ``.npy`` files, one file, arrays."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import StimulusMismatchError, StoreError
from .manifest import MANIFEST
from .store import FeatureStore

__all__ = ["LayerSet", "load_layers"]


@dataclass(frozen=True)
class LayerSet:
    """Named layers with the stimulus ids of their rows (ids may be None if unknown)."""

    names: list[str]
    arrays: list[np.ndarray]
    stimulus_ids: list[str] | None


def load_layers(source, *, layers: Sequence[str] | None = None) -> LayerSet:
    """Load layers from a store, a directory of ``.npy`` files, one ``.npy``/``.npz``, or arrays.

    Parameters
    ----------
    source : path, FeatureStore, mapping name -> array, sequence of arrays, or array
        A feature-store directory (``manifest.json``); a directory of ``<layer>.npy`` files
        (with optional ``stimulus_ids.txt``, one id per line); a ``.npy`` file (one layer,
        or a stacked ``(n_layers, n_stimuli, n_features)`` array); an ``.npz`` with one
        array per layer (and optional ``stimulus_ids``); or in-memory arrays.
    layers : sequence of str, optional
        Keep only these layers, in this order.
    """
    if isinstance(source, FeatureStore) or (
        isinstance(source, (str, os.PathLike)) and (Path(source) / MANIFEST).is_file()
    ):
        store = source if isinstance(source, FeatureStore) else FeatureStore(source)
        return _from_store(store, layers)
    if isinstance(source, (str, os.PathLike)):
        named, ids = _from_path(Path(source))
    else:
        named, ids = _from_arrays(source), None
    if layers is not None:
        missing = [n for n in layers if n not in named]
        if missing:
            raise StoreError(f"layers {missing} not found; available: {list(named)[:20]}")
        named = {n: named[n] for n in layers}
    if ids is not None:
        for name, arr in named.items():
            if arr.shape[0] != len(ids):
                raise StimulusMismatchError(
                    f"layer {name!r} has {arr.shape[0]} rows but there are {len(ids)} stimulus ids"
                )
    return LayerSet(list(named), list(named.values()), ids)


def _from_store(store: FeatureStore, layers: Sequence[str] | None) -> LayerSet:
    names = list(store.layers)
    if layers is not None:
        for name in layers:
            store.layer_info(name)  # an unknown layer is named with the store's layers
        names = list(layers)
    arrays = [store.load(n, drop_skipped=True) for n in names]
    return LayerSet(names, arrays, store.valid_ids())


def _from_path(path: Path) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """Layers by name and their stimulus ids (None if the files hold none)."""
    ids = None
    if path.is_dir():
        files = sorted(path.glob("*.npy"), key=lambda p: _natural_key(p.stem))
        if not files:
            raise StoreError(f"{path} holds neither a {MANIFEST} nor any .npy layer files")
        named = {p.stem: np.load(p, mmap_mode="r") for p in files}
        id_file = path / "stimulus_ids.txt"
        if id_file.is_file():
            ids = [line.strip() for line in id_file.read_text().splitlines() if line.strip()]
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            named = {k: z[k] for k in z.files if k != "stimulus_ids"}
            if "stimulus_ids" in z.files:
                ids = [str(s) for s in z["stimulus_ids"]]
    elif path.suffix == ".npy":
        arr = np.load(path, mmap_mode="r")
        named = ({f"layer{i}": arr[i] for i in range(arr.shape[0])} if arr.ndim == 3
                 else {path.stem: arr})
    else:
        raise StoreError(f"{path}: not found, or not a store, directory, .npy or .npz file")
    return named, ids


def _from_arrays(source) -> dict[str, np.ndarray]:
    if isinstance(source, Mapping):
        return {str(k): np.asarray(v) for k, v in source.items()}
    if isinstance(source, np.ndarray) and source.ndim == 2:
        return {"layer0": source}
    return {f"layer{i}": np.asarray(a) for i, a in enumerate(source)}


def _natural_key(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]
