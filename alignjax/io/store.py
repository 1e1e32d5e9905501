"""The feature store: the on-disk contract between the extractors (torch) and the JAX core.

One directory per (model, extraction settings)::

    store/
      manifest.json          spec, settings, versions, stimulus ids, per-layer file/shape/dtype/done
                             (sha256 once complete; n_valid_frames for time-resolved layers)
      <layer>.npy            (n_stimuli, n_features) or (n_stimuli, n_frames, n_features)

The manifest is read and written as typed, frozen dataclasses (:mod:`alignjax.io.manifest`);
the JSON on disk is the one alignjax always wrote, so stores written before still open.

Rows are written in place into pre-allocated ``.npy`` files opened as memory maps, and a
row is marked done in the manifest only after its bytes are on disk: at durable checkpoints
(every ``sync_every`` seconds, default 1 s, and when the writer closes) the new rows are
flushed (``msync``), then the manifest is written to a temporary file of its own, fsynced,
renamed into place and the directory fsynced, in that order. A process killed, or an OS
that crashes, at any point therefore leaves a store that :class:`StoreWriter` resumes,
rewriting at most the rows written since the last checkpoint, and the finished store is
byte-identical to one written without interruption (the manifest holds no timestamps).

One writer per store: a :class:`StoreWriter` holds an exclusive lock on the store
(:mod:`alignjax.io.lock`) from its creation to :meth:`~StoreWriter.close`; a second writer
fails at once with a message naming the process, host and start time of the first.
:meth:`StoreWriter.finish` reads the store back from disk and checks it
(:meth:`FeatureStore.verify`) before it reports success.

This module needs only NumPy, so the JAX side reads what the torch side wrote without
importing torch.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import StoreError, check_unique_ids
from .lock import StoreLock
from .manifest import (MANIFEST, LayerInfo, Manifest, read_manifest,
                       remove_temporary_manifests, write_manifest)

__all__ = ["FeatureStore", "StoreWriter", "open_store"]


def _layer_filename(name: str, taken: Iterable[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "layer"
    fname, k = f"{base}.npy", 1
    taken = set(taken)
    while fname in taken or fname == MANIFEST:
        k += 1
        fname = f"{base}-{k}.npy"
    return fname


# --------------------------------------------------------------------------- reader


class FeatureStore:
    """Read-only view of a feature store directory.

    Parameters
    ----------
    path : str or Path
        The store directory (holding ``manifest.json``).

    Attributes
    ----------
    meta : Manifest
        The manifest, typed.
    manifest : dict
        The manifest as its JSON object (``meta.to_json()``).
    stimulus_ids : list of str
        Row order of every layer file.
    layers : list of str
        Layer names in extraction order.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.meta = read_manifest(self.path)
        self.manifest = self.meta.to_json()
        self.stimulus_ids: list[str] = list(self.meta.stimulus_ids)
        self.layers: list[str] = list(self.meta.layer_order)

    def __repr__(self) -> str:
        return (f"FeatureStore({str(self.path)!r}, spec={self.spec!r}, "
                f"n_stimuli={len(self.stimulus_ids)}, n_layers={len(self.layers)})")

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __contains__(self, layer: str) -> bool:
        return layer in self.meta.layers

    @property
    def spec(self) -> str:
        return self.meta.spec

    @property
    def settings(self) -> dict:
        return dict(self.meta.settings)

    @property
    def skipped(self) -> dict[str, str]:
        """Stimulus ids that could not be processed, with the reason."""
        return dict(self.meta.skipped)

    @property
    def complete(self) -> bool:
        """True when every layer has every non-skipped stimulus written."""
        return self.meta.complete

    def layer_info(self, layer: str) -> LayerInfo:
        """The manifest entry of ``layer``; :class:`StoreError` naming the store if unknown."""
        try:
            return self.meta.layers[layer]
        except KeyError:
            raise StoreError(
                f"layer {layer!r} is not in the store {self.path}; available layers: "
                f"{', '.join(self.layers[:20])}{' ...' if len(self.layers) > 20 else ''}"
            ) from None

    def done_mask(self, layer: str) -> np.ndarray:
        """Rows of ``layer`` written so far, as a bool array of shape (n_stimuli,)."""
        return self.layer_info(layer).done_mask(len(self.stimulus_ids))

    def shape(self, layer: str) -> tuple[int, ...]:
        return self.layer_info(layer).shape

    def n_valid_frames(self, layer: str) -> np.ndarray:
        """Frames of each stimulus row that hold activations (the rest is padding).

        Returns
        -------
        ndarray of int, shape (n_stimuli,)
            0 for skipped or unwritten rows.
        """
        info = self.layer_info(layer)
        if len(info.shape) != 3:
            raise StoreError(f"layer {layer!r} of {self.path} is pooled over frames "
                             f"(shape {info.shape}); it has no frames to mask")
        if info.n_valid_frames is None:
            raise StoreError(f"layer {layer!r} of {self.path} records no n_valid_frames (written "
                             "by an older alignjax); extract it again to know which frames "
                             "are padding")
        return np.asarray(info.n_valid_frames, dtype=np.int64)

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

    def times(self, layer: str) -> np.ndarray:
        """Seconds from the clip onset to the centre of each stored frame of ``layer``.

        Recorded by the extractor (``settings.times``) for layers with a frame rate:
        ``k / frame_rate`` on the common ``--frame-rate`` grid when one was asked for (the
        same instants for every model), else ``frame_offset(layer) + k / rate`` at the
        layer's native rate, from the centre of its frame 0 (:meth:`frame_offset`). Stores
        written before frame centres were recorded hold ``k / rate`` (frame 0 taken at the
        clip onset, which for conv front ends is the start of its window, not its centre):
        they load as they are, with a :class:`UserWarning` saying so.

        Returns
        -------
        ndarray of float64, shape (n_frames,)
        """
        info = self.layer_info(layer)
        times = (self.meta.settings.get("times") or {}).get(layer)
        if len(info.shape) != 3 or times is None:
            raise StoreError(
                f"layer {layer!r} of {self.path} records no frame times (pooled features, "
                "frames that are not time, or a store written by an older alignjax); extract "
                "it with --pooling none")
        self.frame_offset(layer)  # the note on stores without frame centres
        return np.asarray(times, dtype=np.float64)

    def frame_offset(self, layer: str) -> float:
        """Seconds from the clip onset to the centre of stored frame 0 of ``layer``.

        ``settings.frame_offset_s`` (0.0 on the common ``--frame-rate`` grid; the native
        offset is ``settings.native_frame_offset_s``). A store written before frame centres
        were recorded has no such key: 0.0, with a :class:`UserWarning` that its frame times
        are window starts for models whose frames are not centred (re-extract to fix).
        """
        offsets = self.meta.settings.get("frame_offset_s")
        if offsets is None:
            import warnings

            warnings.warn(
                f"{self.path} records no frame centres (written by an older alignjax): frame 0 "
                f"of {layer!r} is taken to be at the clip onset (offset 0). For models whose "
                "frames are not centred STFT frames (conv front ends such as wav2vec2, audio-"
                "LLM tokens, Silero) that is the start of the window, 10-17 ms before its "
                "centre; extract again to record true centres", UserWarning, stacklevel=3)
            return 0.0
        if layer not in offsets:
            self.layer_info(layer)  # an unknown layer names the layers there are
            raise StoreError(f"layer {layer!r} of {self.path} has frames that are not time "
                             "(no frame rate), so no frame centre")
        return float(offsets[layer])

    @property
    def training_step(self) -> int | None:
        """The training step of the checkpoint the features come from, if recorded."""
        step = (self.meta.settings.get("checkpoint") or {}).get("step")
        return None if step is None else int(step)

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
        info = self.layer_info(layer)
        if require_complete:
            self._require_complete(layer, info)
        arr = np.load(self.path / info.file, mmap_mode="r" if mmap else None)
        if drop_skipped:
            keep = ~self.meta.skipped_mask()
            if not keep.all():
                arr = np.asarray(arr[keep])
        return arr

    def _require_complete(self, layer: str, info: LayerInfo, meta: Manifest | None = None) -> None:
        meta = self.meta if meta is None else meta
        missing = ~info.done_mask(len(meta.stimulus_ids)) & ~meta.skipped_mask()
        if missing.any():
            first = [meta.stimulus_ids[i] for i in np.flatnonzero(missing)[:5]]
            raise StoreError(
                f"layer {layer!r} of {self.path} is incomplete ({int(missing.sum())} "
                f"stimuli not written, e.g. {first}); rerun the extraction to resume it"
            )

    def verify(self) -> None:
        """Check that the store on disk is complete and holds what its manifest says.

        The manifest is read again from disk; it must be marked complete, every layer must
        have every non-skipped row done, and every layer file must have the recorded shape,
        dtype and SHA-256 (the file is read whole once).

        Raises
        ------
        StoreError
            Naming the store, the layer or file, and what differs.
        """
        from .hashing import file_sha256

        meta = read_manifest(self.path)
        if not meta.complete:
            raise StoreError(f"the store {self.path} on disk is not marked complete; rerun the "
                             "extraction to resume it")
        if not meta.layers:
            raise StoreError(f"the store {self.path} holds no layer")
        n = len(meta.stimulus_ids)
        for name in meta.layer_order:
            info = meta.layers[name]
            self._require_complete(name, info, meta)
            fpath = self.path / info.file
            try:
                arr = np.load(fpath, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise StoreError(f"layer {name!r} of {self.path}: cannot read {fpath} ({exc}); "
                                 "the store is corrupt, extract it again") from exc
            if arr.shape != info.shape or arr.shape[:1] != (n,) or arr.dtype.str != info.dtype:
                raise StoreError(f"layer {name!r} of {self.path}: {fpath.name} holds "
                                 f"{arr.shape} {arr.dtype.str}, the manifest says {info.shape} "
                                 f"{info.dtype}; the store is corrupt, extract it again")
            del arr
            digest = file_sha256(fpath)
            if info.sha256 is None or digest != info.sha256:
                raise StoreError(f"layer {name!r} of {self.path}: {fpath.name} has SHA-256 "
                                 f"{digest[:16]}..., the manifest records "
                                 f"{str(info.sha256)[:16]}...; the store is corrupt, extract it "
                                 "again")

    def __getitem__(self, layer: str) -> np.ndarray:
        return self.load(layer)

    def valid_ids(self) -> list[str]:
        """Stimulus ids that were not skipped, in row order."""
        return [s for s in self.stimulus_ids if s not in self.meta.skipped]


def open_store(path: str | os.PathLike) -> FeatureStore:
    """Open a feature store for reading."""
    return FeatureStore(path)


# --------------------------------------------------------------------------- writer


_OPEN_WRITERS: set[str] = set()  # stores with an open StoreWriter in this process


class StoreWriter:
    """Create a feature store, or resume an interrupted one; the store's only writer.

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
    sync_every : float
        Seconds between durable checkpoints of the rows written (see Notes); 0 makes every
        :meth:`write_rows` durable before it returns.

    Raises
    ------
    StoreError
        At once when another process is writing the store (see :mod:`alignjax.io.lock`).

    Notes
    -----
    Layers are created lazily on their first :meth:`write`, which fixes their per-row shape
    and dtype. Call :meth:`finish` at the end; it marks the store complete and checks the
    store on disk (:meth:`FeatureStore.verify`) before it returns.

    The writer holds the store's exclusive lock from construction to :meth:`close`.

    Durability: the done-record on disk never covers a row whose bytes are not on disk.
    At most every ``sync_every`` seconds (and at :meth:`close`, :meth:`skip` and
    :meth:`finish`) the rows written since the last checkpoint are flushed to disk
    (``msync``), then the manifest that marks them done is written, fsynced, renamed into
    place and the directory fsynced, in that order. Rows written after the last checkpoint
    are pending for a process that resumes after a kill or a crash, and are recomputed
    (with the same bytes).

    A writer is a context manager: leaving the ``with`` block records the rows written so
    far and closes the layer files (:meth:`close`) but never finishes the store, so an
    exception inside the block leaves a store that a new writer resumes::

        with StoreWriter(path, spec=spec, stimulus_ids=ids) as writer:
            for i in writer.pending():
                writer.write(i, layers_of(i))
            store = writer.finish()
    """

    def __init__(self, path: str | os.PathLike, *, spec: str, stimulus_ids: Sequence[str],
                 settings: Mapping[str, Any] | None = None,
                 versions: Mapping[str, str] | None = None, sync_every: float = 1.0):
        self.path = Path(path)
        ids = check_unique_ids(stimulus_ids, f"the stimulus list of the feature store {self.path}")
        settings = json.loads(json.dumps(dict(settings or {})))  # normalise to JSON types
        if not sync_every >= 0:
            raise StoreError(f"sync_every must be a number of seconds >= 0, got {sync_every!r}")
        self.sync_every = float(sync_every)
        self._lock = StoreLock(self.path).acquire()
        self._key = str(self.path.resolve())
        if self._key in _OPEN_WRITERS:
            self._lock.release()
            raise StoreError(f"store {self.path} is being written by another StoreWriter of "
                             f"this process ({os.getpid()}); close that one first")
        _OPEN_WRITERS.add(self._key)
        try:
            remove_temporary_manifests(self.path)
            if (self.path / MANIFEST).is_file():
                self._meta = self._resumed(spec, ids, settings)
            else:
                self._meta = Manifest(spec=spec, stimulus_ids=tuple(ids), settings=settings,
                                      versions=dict(versions or {}))
                write_manifest(self.path, self._meta)
        except BaseException:
            _OPEN_WRITERS.discard(self._key)
            self._lock.release()
            raise
        self.n = len(ids)
        self._maps: dict[str, np.memmap] = {}
        self._done = {name: info.done_mask(self.n) for name, info in self._meta.layers.items()}
        self._unsynced: set[str] = set()  # layers with rows written since the last checkpoint
        self._dirty = False  # the manifest in memory differs from the one on disk
        self._last_sync = time.monotonic()

    def _resumed(self, spec: str, ids: list[str], settings: dict) -> Manifest:
        """The manifest of the store already at ``path``; refuse one of another request."""
        old = read_manifest(self.path)
        old_json = old.to_json()
        for key, new in (("spec", spec), ("stimulus_ids", ids), ("settings", settings)):
            if old_json.get(key) != new:
                raise StoreError(
                    f"{self.path} already holds a store with a different {key} "
                    f"({old_json.get(key)!r:.200} vs {new!r:.200}); choose another output "
                    "directory or delete the old store"
                )
        return old

    # -- context manager
    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False

    def __del__(self):  # a writer dropped without close(): record its rows, free the store
        try:
            if getattr(self, "_lock", None) is not None and self._lock.held:
                self.close()
        except Exception:  # noqa: BLE001 - nothing can be reported from a finaliser
            pass

    def close(self) -> None:
        """Record the rows written so far (durably), release the layer files and the lock.

        Rows not marked done stay pending; a closed writer writes nothing more.
        """
        if not self._lock.held:
            return
        try:
            self.sync()
        finally:
            self._maps.clear()
            _OPEN_WRITERS.discard(self._key)
            self._lock.release()

    def sync(self) -> None:
        """Make the rows written so far durable, then the manifest that marks them done.

        Order: the layer files' new rows (``msync``), the manifest (written to a temporary
        file, fsynced, renamed), the directory (fsynced).
        """
        self._check_open()
        for name in sorted(self._unsynced):
            if name in self._maps:
                self._maps[name].flush()  # msync(MS_SYNC): the rows are on disk
        self._unsynced.clear()
        self._hash_completed()
        if self._dirty:
            write_manifest(self.path, self._meta, sync=True)
            self._dirty = False
        self._last_sync = time.monotonic()

    def _check_open(self) -> None:
        if not self._lock.held:
            raise StoreError(f"the writer of {self.path} is closed; open a new StoreWriter to "
                             "resume the store")

    # -- state
    @property
    def meta(self) -> Manifest:
        """The manifest (typed), with every row written so far (see :meth:`sync`)."""
        return self._meta

    @property
    def manifest(self) -> dict:
        """The manifest as its JSON object (a copy; see :attr:`meta`)."""
        return self._meta.to_json()

    @property
    def stimulus_ids(self) -> list[str]:
        return list(self._meta.stimulus_ids)

    def pending(self) -> list[int]:
        """Row indices still to be processed (not done in every layer, not skipped).

        Before the first write (no layers known yet) every non-skipped row is pending.
        """
        todo = ~self._meta.skipped_mask()
        if self._done:
            todo &= ~np.logical_and.reduce(list(self._done.values()))
        return [int(i) for i in np.flatnonzero(todo)]

    @property
    def complete(self) -> bool:
        return self._meta.complete

    # -- writing
    def _open_layer(self, name: str, row: np.ndarray) -> np.memmap:
        if name in self._maps:
            return self._maps[name]
        info = self._meta.layers.get(name)
        if info is None:
            fname = _layer_filename(name, [v.file for v in self._meta.layers.values()])
            shape = (self.n,) + tuple(int(s) for s in row.shape)
            arr = np.lib.format.open_memmap(self.path / fname, mode="w+", dtype=row.dtype,
                                            shape=shape)
            arr.flush()
            _fsync_file(self.path / fname)  # its header and size, before a manifest names it
            self._meta = self._meta.with_layer(name, LayerInfo.new(fname, shape, row.dtype.str))
            self._done[name] = np.zeros(self.n, bool)
        else:
            arr = np.lib.format.open_memmap(self.path / info.file, mode="r+")
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

        The rows are marked done in memory (:meth:`pending`) at once, and on disk at the
        next durable checkpoint (:meth:`sync`; every ``sync_every`` seconds): the rows of
        a checkpoint become visible together, after their bytes are on disk, and a process
        killed before it leaves them pending (they are rewritten, with the same bytes, on
        resume).

        ``n_valid_frames`` (index -> {layer: int}), for time-resolved layers, records how
        many leading frames of each row hold activations (the rest is padding); it is kept
        in the layer's manifest entry (see :meth:`FeatureStore.valid_frames`).
        """
        self._check_open()
        touched = self._put_rows(rows)
        for index, layers in rows.items():
            for name in layers:
                self._done[name][index] = True
        self._record_frames(n_valid_frames or {})
        for name in touched:
            self._meta = self._meta.with_layer(name, self._meta.layers[name].with_done(
                self._done[name]))
        if rows:
            self._unsynced |= touched
            self._dirty = True
            if time.monotonic() - self._last_sync >= self.sync_every:
                self.sync()

    def _put_rows(self, rows: Mapping[int, Mapping[str, np.ndarray]]) -> set[str]:
        """Copy rows into the layer memory maps; the names of the layers written."""
        touched: set[str] = set()
        for index, layers in rows.items():
            if not 0 <= index < self.n:
                raise IndexError(f"row {index} out of range for {self.n} stimuli")
            for name, value in layers.items():
                value = np.asarray(value)
                arr = self._open_layer(name, value)
                if value.shape != arr.shape[1:]:
                    raise StoreError(
                        f"layer {name!r}: stimulus {self._meta.stimulus_ids[index]!r} gave "
                        f"shape {value.shape}, but the layer holds rows of shape {arr.shape[1:]}; "
                        "use a fixed duration or pooling so every stimulus has the same shape"
                    )
                arr[index] = value.astype(arr.dtype, copy=False)
                touched.add(name)
        return touched

    def _record_frames(self, n_valid_frames: Mapping[int, Mapping[str, int]]) -> None:
        """Set the valid-frame counts of some rows (index -> {layer: count})."""
        by_layer: dict[str, dict[int, int]] = {}
        for index, counts in n_valid_frames.items():
            for name, count in counts.items():
                by_layer.setdefault(name, {})[index] = int(count)
        for name, counts in by_layer.items():
            info = self._meta.layers[name]
            frames = list(info.n_valid_frames or [0] * self.n)
            for index, count in counts.items():
                frames[index] = count
            self._meta = self._meta.with_layer(name, replace(info, n_valid_frames=tuple(frames)))

    def _hash_completed(self) -> None:
        """Record ``sha256`` (of the ``.npy`` file) for each layer whose rows are all written.

        Readers fingerprint a store by these hashes (:func:`alignjax.io.hashing.store_fingerprint`)
        instead of reading every layer; a later write to a layer drops its hash until the
        layer is complete again.
        """
        from .hashing import file_sha256

        expected = ~self._meta.skipped_mask()
        for name, done in self._done.items():
            info = self._meta.layers[name]
            if info.sha256 is None and done[expected].all():
                if name in self._maps:
                    self._maps[name].flush()
                self._meta = self._meta.with_layer(
                    name, replace(info, sha256=file_sha256(self.path / info.file)))
                self._dirty = True

    def skip(self, index: int, reason: str) -> None:
        """Record that stimulus ``index`` could not be processed (listed in the manifest)."""
        self._check_open()
        skipped = {**self._meta.skipped, self._meta.stimulus_ids[index]: str(reason)}
        self._meta = replace(self._meta, skipped=skipped)
        self._dirty = True
        self.sync()

    def finish(self) -> FeatureStore:
        """Mark the store complete, check it on disk, close the writer, return a reader.

        Raises
        ------
        StoreError
            Some non-skipped rows are not written, or the store on disk is not the one
            this writer wrote (:meth:`FeatureStore.verify`).
        """
        self._check_open()
        missing = self.pending()
        if missing or not self._meta.layers:
            raise StoreError(
                f"cannot finish {self.path}: {len(missing)} stimuli not written"
                + ("" if self._meta.layers else " and no layer was written")
            )
        self.sync()
        if not self._meta.complete:
            self._meta = replace(self._meta, complete=True)
            self._dirty = True
            self.sync()
        store = FeatureStore(self.path)
        store.verify()
        if store.meta.to_json() != self._meta.to_json():
            raise StoreError(f"the manifest of {self.path} on disk is not the one this writer "
                             "wrote; another process wrote into the store")
        self.close()
        return store


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
