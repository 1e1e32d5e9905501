"""The feature store: the on-disk contract between the extractors (torch) and the JAX core.

One directory per (model, extraction settings)::

    store/
      manifest.json          spec, settings, versions, stimulus ids, per-layer file/shape/dtype/done
                             (and n_valid_frames for time-resolved layers)
      <layer>.npy            (n_stimuli, n_features) or (n_stimuli, n_frames, n_features)

Rows are written in place into pre-allocated ``.npy`` files opened as memory maps, and a
row is marked done in the manifest only after it has been flushed; the manifest is
replaced atomically (temporary file + ``os.replace``). A process killed at any point
therefore leaves a store that :class:`StoreWriter` resumes, rewriting at most the rows
not yet marked done, and the finished store is byte-identical to one written without
interruption (the manifest holds no timestamps).

This module needs only NumPy, so the JAX side reads what the torch side wrote without
importing torch. Brain and behaviour responses are loaded here too
(:func:`load_responses`), always with their stimulus ids.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ._validation import StimulusMismatchError, StoreError, match_ids

__all__ = [
    "FeatureStore",
    "StoreWriter",
    "open_store",
    "load_layers",
    "load_responses",
    "Responses",
    "MANIFEST",
]

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- helpers


def _pack_mask(mask: np.ndarray) -> str:
    return np.packbits(mask.astype(bool)).tobytes().hex()


def _unpack_mask(hexstr: str, n: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(hexstr), dtype=np.uint8))
    return bits[:n].astype(bool)


def _layer_filename(name: str, taken: Iterable[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "layer"
    fname, k = f"{base}.npy", 1
    taken = set(taken)
    while fname in taken or fname == MANIFEST:
        k += 1
        fname = f"{base}-{k}.npy"
    return fname


def _atomic_write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    data = json.dumps(obj, indent=1, sort_keys=True) + "\n"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_manifest(path: Path) -> dict:
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise StoreError(
            f"{path} is not a feature store (no {MANIFEST}); run the extractor first, "
            "or pass a directory of per-layer .npy files"
        )
    try:
        with open(mpath, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except json.JSONDecodeError as exc:
        raise StoreError(f"{mpath} is not valid JSON ({exc}); the store is corrupt") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StoreError(
            f"{mpath}: unsupported format_version {manifest.get('format_version')!r} "
            f"(this alignjax reads {FORMAT_VERSION})"
        )
    return manifest


# --------------------------------------------------------------------------- reader


class FeatureStore:
    """Read-only view of a feature store directory.

    Parameters
    ----------
    path : str or Path
        The store directory (holding ``manifest.json``).

    Attributes
    ----------
    manifest : dict
        The parsed manifest.
    stimulus_ids : list of str
        Row order of every layer file.
    layers : list of str
        Layer names in extraction order.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.manifest = _read_manifest(self.path)
        self.stimulus_ids: list[str] = [str(s) for s in self.manifest["stimulus_ids"]]
        self.layers: list[str] = list(self.manifest["layer_order"])

    def __repr__(self) -> str:
        return (f"FeatureStore({str(self.path)!r}, spec={self.spec!r}, "
                f"n_stimuli={len(self.stimulus_ids)}, n_layers={len(self.layers)})")

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __contains__(self, layer: str) -> bool:
        return layer in self.manifest["layers"]

    @property
    def spec(self) -> str:
        return self.manifest.get("spec", "")

    @property
    def settings(self) -> dict:
        return dict(self.manifest.get("settings", {}))

    @property
    def skipped(self) -> dict[str, str]:
        """Stimulus ids that could not be processed, with the reason."""
        return dict(self.manifest.get("skipped", {}))

    def done_mask(self, layer: str) -> np.ndarray:
        info = self._info(layer)
        return _unpack_mask(info["done"], len(self.stimulus_ids))

    @property
    def complete(self) -> bool:
        """True when every layer has every non-skipped stimulus written."""
        return bool(self.manifest.get("complete", False))

    def _info(self, layer: str) -> dict:
        try:
            return self.manifest["layers"][layer]
        except KeyError:
            raise StoreError(
                f"layer {layer!r} is not in the store {self.path}; available layers: "
                f"{', '.join(self.layers[:20])}{' ...' if len(self.layers) > 20 else ''}"
            ) from None

    def shape(self, layer: str) -> tuple[int, ...]:
        return tuple(self._info(layer)["shape"])

    def n_valid_frames(self, layer: str) -> np.ndarray:
        """Frames of each stimulus row that hold activations (the rest is padding).

        Returns
        -------
        ndarray of int, shape (n_stimuli,)
            0 for skipped or unwritten rows.
        """
        info = self._info(layer)
        if len(info["shape"]) != 3:
            raise StoreError(f"layer {layer!r} of {self.path} is pooled over frames "
                             f"(shape {tuple(info['shape'])}); it has no frames to mask")
        if "n_valid_frames" not in info:
            raise StoreError(f"layer {layer!r} of {self.path} records no n_valid_frames (written "
                             "by an older alignjax); extract it again to know which frames "
                             "are padding")
        return np.asarray(info["n_valid_frames"], dtype=np.int64)

    def valid_frames(self, layer: str) -> np.ndarray:
        """Boolean mask of the frames that hold activations, not end padding.

        With ``pooling='none'`` every row is cropped or padded at the end to a common frame
        count; the padded frames hold zeros that are not silence (e.g. 0 dB of log-mel,
        where silence is -100 dB). Analyses over time must use only the masked frames.

        Returns
        -------
        ndarray of bool, shape (n_stimuli, n_frames)
        """
        n_frames = self.shape(layer)[1]
        return np.arange(n_frames)[None, :] < self.n_valid_frames(layer)[:, None]

    def load(self, layer: str, *, mmap: bool = True, require_complete: bool = True,
             drop_skipped: bool = False) -> np.ndarray:
        """Return one layer's array, memory-mapped by default.

        Parameters
        ----------
        layer : str
            Layer name.
        mmap : bool
            Memory-map the file (read-only) instead of reading it into memory.
        require_complete : bool
            Raise :class:`StoreError` if some non-skipped rows are not written yet.
        drop_skipped : bool
            Return only the rows of stimuli that were not skipped (see
            :meth:`valid_ids`); otherwise skipped rows are present and hold zeros.
        """
        info = self._info(layer)
        if require_complete:
            done = _unpack_mask(info["done"], len(self.stimulus_ids))
            expected = ~self._skipped_mask()
            if not done[expected].all():
                missing = [self.stimulus_ids[i] for i in np.flatnonzero(expected & ~done)[:5]]
                raise StoreError(
                    f"layer {layer!r} of {self.path} is incomplete ({int((expected & ~done).sum())} "
                    f"stimuli not written, e.g. {missing}); rerun the extraction to resume it"
                )
        arr = np.load(self.path / info["file"], mmap_mode="r" if mmap else None)
        if drop_skipped:
            keep = ~self._skipped_mask()
            if not keep.all():
                arr = np.asarray(arr[keep])
        return arr

    def __getitem__(self, layer: str) -> np.ndarray:
        return self.load(layer)

    def _skipped_mask(self) -> np.ndarray:
        skipped = set(self.manifest.get("skipped", {}))
        return np.array([s in skipped for s in self.stimulus_ids], dtype=bool)

    def valid_ids(self) -> list[str]:
        """Stimulus ids that were not skipped, in row order."""
        skipped = set(self.manifest.get("skipped", {}))
        return [s for s in self.stimulus_ids if s not in skipped]


def open_store(path: str | os.PathLike) -> FeatureStore:
    """Open a feature store for reading."""
    return FeatureStore(path)


# --------------------------------------------------------------------------- writer


class StoreWriter:
    """Create a feature store, or resume an interrupted one.

    Parameters
    ----------
    path : str or Path
        The store directory; created if missing.
    spec : str
        Model spec string (e.g. ``"hf:facebook/wav2vec2-base"``).
    stimulus_ids : sequence of str
        Row order for every layer.
    settings : dict
        Everything that determines the features (sample rate, pooling, duration, dtype,
        revision, ...). A resume with different settings raises :class:`StoreError`.
    versions : dict
        Package versions, recorded in the manifest.

    Notes
    -----
    Layers are created lazily on their first :meth:`write`, which fixes their per-row shape
    and dtype. Call :meth:`finish` at the end; it marks the store complete.
    """

    def __init__(self, path: str | os.PathLike, *, spec: str, stimulus_ids: Sequence[str],
                 settings: Mapping[str, Any] | None = None,
                 versions: Mapping[str, str] | None = None):
        self.path = Path(path)
        ids = [str(s) for s in stimulus_ids]
        if len(set(ids)) != len(ids):
            raise StimulusMismatchError("stimulus ids must be unique to build a feature store")
        settings = json.loads(json.dumps(dict(settings or {})))  # normalise to JSON types
        if (self.path / MANIFEST).is_file():
            manifest = _read_manifest(self.path)
            for key, new in (("spec", spec), ("stimulus_ids", ids), ("settings", settings)):
                if manifest.get(key) != new:
                    raise StoreError(
                        f"{self.path} already holds a store with a different {key} "
                        f"({manifest.get(key)!r:.200} vs {new!r:.200}); choose another output "
                        "directory or delete the old store"
                    )
            self.manifest = manifest
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self.manifest = {
                "format_version": FORMAT_VERSION,
                "spec": spec,
                "settings": settings,
                "versions": dict(versions or {}),
                "stimulus_ids": ids,
                "layer_order": [],
                "layers": {},
                "skipped": {},
                "complete": False,
            }
            _atomic_write_json(self.path / MANIFEST, self.manifest)
        self.n = len(ids)
        self._maps: dict[str, np.memmap] = {}
        self._done = {name: _unpack_mask(info["done"], self.n)
                      for name, info in self.manifest["layers"].items()}

    # -- state
    @property
    def stimulus_ids(self) -> list[str]:
        return list(self.manifest["stimulus_ids"])

    def pending(self) -> list[int]:
        """Row indices still to be processed (not done in every layer, not skipped).

        Before the first write (no layers known yet) every non-skipped row is pending.
        """
        skipped = set(self.manifest["skipped"])
        if not self._done:
            return [i for i, s in enumerate(self.manifest["stimulus_ids"]) if s not in skipped]
        all_done = np.logical_and.reduce(list(self._done.values()))
        return [i for i, s in enumerate(self.manifest["stimulus_ids"])
                if s not in skipped and not all_done[i]]

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    # -- writing
    def _open_layer(self, name: str, row: np.ndarray) -> np.memmap:
        if name in self._maps:
            return self._maps[name]
        layers = self.manifest["layers"]
        if name not in layers:
            fname = _layer_filename(name, [v["file"] for v in layers.values()])
            shape = (self.n,) + tuple(int(s) for s in row.shape)
            arr = np.lib.format.open_memmap(self.path / fname, mode="w+", dtype=row.dtype,
                                            shape=shape)
            arr.flush()
            layers[name] = {"file": fname, "shape": list(shape), "dtype": row.dtype.str,
                            "done": _pack_mask(np.zeros(self.n, bool))}
            self.manifest["layer_order"].append(name)
            self._done[name] = np.zeros(self.n, bool)
        else:
            arr = np.lib.format.open_memmap(self.path / layers[name]["file"], mode="r+")
        self._maps[name] = arr
        return arr

    def write(self, index: int, layers: Mapping[str, np.ndarray]) -> None:
        """Write row ``index`` of every given layer, then mark it done.

        The per-row shape and dtype of a layer must match its first write.
        """
        self.write_rows({index: layers})

    def write_rows(self, rows: Mapping[int, Mapping[str, np.ndarray]],
                   n_valid_frames: Mapping[int, Mapping[str, int]] | None = None) -> None:
        """Write several rows (index -> {layer: row}), then mark them all done at once.

        One flush and one manifest update for the whole batch: the rows become visible
        together, and a process killed before the manifest is replaced leaves all of them
        pending (they are rewritten, with the same bytes, on resume).

        ``n_valid_frames`` (index -> {layer: int}), for time-resolved layers, records how
        many leading frames of each row hold activations (the rest is padding); it is kept
        in the layer's manifest entry (see :meth:`FeatureStore.valid_frames`).
        """
        touched: set[str] = set()
        for index, layers in rows.items():
            if not 0 <= index < self.n:
                raise IndexError(f"row {index} out of range for {self.n} stimuli")
            for name, value in layers.items():
                value = np.asarray(value)
                arr = self._open_layer(name, value)
                if value.shape != arr.shape[1:]:
                    raise StoreError(
                        f"layer {name!r}: stimulus {self.manifest['stimulus_ids'][index]!r} gave "
                        f"shape {value.shape}, but the layer holds rows of shape {arr.shape[1:]}; "
                        "use a fixed duration or pooling so every stimulus has the same shape"
                    )
                arr[index] = value.astype(arr.dtype, copy=False)
                touched.add(name)
        for name in touched:
            self._maps[name].flush()
        for index, layers in rows.items():
            for name in layers:
                self._done[name][index] = True
        for index, counts in (n_valid_frames or {}).items():
            for name, count in counts.items():
                info = self.manifest["layers"][name]
                info.setdefault("n_valid_frames", [0] * self.n)[index] = int(count)
        for name in touched:
            self.manifest["layers"][name]["done"] = _pack_mask(self._done[name])
            self.manifest["layers"][name].pop("sha256", None)
        self._hash_completed()
        if rows:
            _atomic_write_json(self.path / MANIFEST, self.manifest)

    def _hash_completed(self) -> None:
        """Record ``sha256`` (of the ``.npy`` file) for each layer whose rows are all written.

        Readers fingerprint a store by these hashes (:func:`alignjax.fingerprint.store_fingerprint`)
        instead of reading every layer; a later write to a layer drops its hash until the
        layer is complete again.
        """
        from .fingerprint import file_sha256

        skipped = set(self.manifest["skipped"])
        expected = np.array([s not in skipped for s in self.manifest["stimulus_ids"]], bool)
        for name, done in self._done.items():
            info = self.manifest["layers"][name]
            if "sha256" not in info and done[expected].all():
                if name in self._maps:
                    self._maps[name].flush()
                info["sha256"] = file_sha256(self.path / info["file"])

    def skip(self, index: int, reason: str) -> None:
        """Record that stimulus ``index`` could not be processed (listed in the manifest)."""
        self.manifest["skipped"][self.manifest["stimulus_ids"][index]] = str(reason)
        _atomic_write_json(self.path / MANIFEST, self.manifest)

    def finish(self) -> FeatureStore:
        """Check every non-skipped row is written, mark the store complete, return a reader."""
        missing = self.pending()
        if missing or not self.manifest["layers"]:
            raise StoreError(
                f"cannot finish {self.path}: {len(missing)} stimuli not written"
                + ("" if self.manifest["layers"] else " and no layer was written")
            )
        for arr in self._maps.values():
            arr.flush()
        self._maps.clear()
        if not self.manifest["complete"] or not all(
                "sha256" in info for info in self.manifest["layers"].values()):
            self._hash_completed()
            self.manifest["complete"] = True
            _atomic_write_json(self.path / MANIFEST, self.manifest)
        return FeatureStore(self.path)


# --------------------------------------------------------------------------- layers from anything


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
    ids = None
    if isinstance(source, FeatureStore) or (
        isinstance(source, (str, os.PathLike)) and (Path(source) / MANIFEST).is_file()
    ):
        store = source if isinstance(source, FeatureStore) else FeatureStore(source)
        names = list(store.layers)
        if layers is not None:
            for name in layers:
                store._info(name)
            names = list(layers)
        arrays = [store.load(n, drop_skipped=True) for n in names]
        return LayerSet(names, arrays, store.valid_ids())
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
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
    elif isinstance(source, Mapping):
        named = {str(k): np.asarray(v) for k, v in source.items()}
    elif isinstance(source, np.ndarray) and source.ndim == 2:
        named = {"layer0": source}
    else:
        named = {f"layer{i}": np.asarray(a) for i, a in enumerate(source)}
    if layers is not None:
        missing = [n for n in layers if n not in named]
        if missing:
            raise StoreError(f"layers {missing} not found; available: {list(named)[:20]}")
        named = {n: named[n] for n in layers}
    arrays = list(named.values())
    if ids is not None:
        for name, arr in named.items():
            if arr.shape[0] != len(ids):
                raise StimulusMismatchError(
                    f"layer {name!r} has {arr.shape[0]} rows but there are {len(ids)} stimulus ids"
                )
    return LayerSet(list(named), arrays, ids)


def _natural_key(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


# --------------------------------------------------------------------------- responses


@dataclass(frozen=True)
class Responses:
    """Brain or behaviour responses: per subject an (n_stimuli, n_targets) array, by id."""

    stimulus_ids: list[str]
    subjects: dict[str, np.ndarray]

    def aligned_to(self, stimulus_ids: Sequence[str], *, what: str = "the features") -> "Responses":
        """Reorder (and subset) rows to ``stimulus_ids``; every id must be present."""
        idx = match_ids(stimulus_ids, self.stimulus_ids, what=what, other_what="the responses")
        return Responses([str(s) for s in stimulus_ids],
                         {k: np.asarray(v)[idx] for k, v in self.subjects.items()})


def load_responses(path: str | os.PathLike) -> Responses:
    """Load per-subject responses with their stimulus ids.

    Formats
    -------
    ``.npz``
        ``stimulus_ids`` (n_stimuli,) plus one (n_stimuli, n_targets) array per subject,
        keyed by subject name.
    ``.h5`` / ``.hdf5``
        Dataset ``stimulus_ids`` plus one dataset per subject (at the root or in a group
        ``subjects``).
    ``.npy``
        One (n_stimuli, n_targets) array (one subject) or (n_subjects, n_stimuli, n_targets);
        stimulus ids from a sibling ``<name>.ids.txt`` (one per line), else ``0..n-1``.
    ``.csv``
        Column ``stimulus_id`` (or ``id``) then numeric columns; a ``subject`` column, if
        present, splits rows by subject (long format).
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"response file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "stimulus_ids" not in z.files:
                raise StimulusMismatchError(
                    f"{path} has no 'stimulus_ids' array; save one so responses can be matched "
                    "to stimuli by id (np.savez(..., stimulus_ids=ids, subj01=Y))"
                )
            ids = [str(s) for s in z["stimulus_ids"]]
            subjects = {k: np.asarray(z[k], dtype=float) for k in z.files if k != "stimulus_ids"}
    elif suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            if "stimulus_ids" not in f:
                raise StimulusMismatchError(f"{path} has no 'stimulus_ids' dataset")
            ids = [s.decode() if isinstance(s, bytes) else str(s) for s in f["stimulus_ids"][()]]
            group = f["subjects"] if "subjects" in f else f
            subjects = {k: np.asarray(group[k][()], dtype=float) for k in group
                        if k != "stimulus_ids" and hasattr(group[k], "shape")}
    elif suffix == ".npy":
        arr = np.load(path).astype(float)
        id_file = path.with_suffix(".ids.txt")
        n = arr.shape[-2] if arr.ndim == 3 else arr.shape[0]
        ids = ([l.strip() for l in id_file.read_text().splitlines() if l.strip()]
               if id_file.is_file() else [str(i) for i in range(n)])
        subjects = ({f"sub{i:02d}": arr[i] for i in range(arr.shape[0])} if arr.ndim == 3
                    else {path.stem: arr.reshape(arr.shape[0], -1)})
    elif suffix == ".csv":
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            raise StoreError(f"{path} is empty")
        id_col = "stimulus_id" if "stimulus_id" in rows[0] else "id" if "id" in rows[0] else None
        if id_col is None:
            raise StimulusMismatchError(f"{path} needs a 'stimulus_id' (or 'id') column")
        value_cols = [c for c in rows[0] if c not in (id_col, "subject")]
        by_subject: dict[str, list[dict]] = {}
        for r in rows:
            by_subject.setdefault(r.get("subject", path.stem), []).append(r)
        ids = [r[id_col] for r in next(iter(by_subject.values()))]
        subjects = {}
        for subj, rs in by_subject.items():
            sids = [r[id_col] for r in rs]
            order = match_ids(ids, sids, what="the first subject", other_what=f"subject {subj}")
            subjects[subj] = np.array([[float(rs[i][c]) for c in value_cols] for i in order])
    else:
        raise StoreError(f"{path}: unsupported response format {suffix!r} (use .npz, .h5, .npy, .csv)")
    for name, arr in subjects.items():
        if arr.ndim == 1:
            subjects[name] = arr = arr[:, None]
        if arr.shape[0] != len(ids):
            raise StimulusMismatchError(
                f"{path}: subject {name!r} has {arr.shape[0]} rows but there are {len(ids)} stimulus ids"
            )
    if len(set(ids)) != len(ids):
        raise StimulusMismatchError(f"{path}: stimulus ids are not unique")
    return Responses(ids, subjects)
