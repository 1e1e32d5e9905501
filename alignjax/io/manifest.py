"""The feature store's manifest (``manifest.json``) as typed, frozen dataclasses.

:class:`Manifest` (the store) and :class:`LayerInfo` (one layer) are read from and written
to JSON explicitly (``from_json``/``to_json``); the text written is the one alignjax always
wrote (``json.dumps(..., indent=1, sort_keys=True)`` and a newline), so a store written
before opens unchanged and a resumed one ends byte-identical. Keys this version does not
know are kept (``extra``). NumPy only.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import StoreError

__all__ = ["Manifest", "LayerInfo", "read_manifest", "write_manifest", "MANIFEST",
           "FORMAT_VERSION", "fsync_dir", "remove_temporary_manifests"]

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- manifest


def _pack_mask(mask: np.ndarray) -> str:
    return np.packbits(mask.astype(bool)).tobytes().hex()


def _unpack_mask(hexstr: str, n: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(hexstr), dtype=np.uint8))
    return bits[:n].astype(bool)


_LAYER_KEYS = ("file", "shape", "dtype", "done", "n_valid_frames", "sha256")


@dataclass(frozen=True)
class LayerInfo:
    """One layer's entry of the manifest.

    Attributes
    ----------
    file : str
        The layer's ``.npy`` file, relative to the store directory.
    shape : tuple of int
        ``(n_stimuli, n_features)`` or ``(n_stimuli, n_frames, n_features)``.
    dtype : str
        NumPy dtype string (``"<f4"``).
    done : str
        Hex of the packed bit mask of rows written (see :meth:`done_mask`).
    n_valid_frames : tuple of int, optional
        Time-resolved layers: frames of each row that are not end padding.
    sha256 : str, optional
        Hash of the ``.npy`` file, recorded once every row is written.
    extra : mapping
        Keys this version does not know, kept as they are.
    """

    file: str
    shape: tuple[int, ...]
    dtype: str
    done: str
    n_valid_frames: tuple[int, ...] | None = None
    sha256: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "LayerInfo":
        """Build from the layer's JSON object in ``manifest.json``."""
        nvf = obj.get("n_valid_frames")
        return cls(file=str(obj["file"]), shape=tuple(int(s) for s in obj["shape"]),
                   dtype=str(obj["dtype"]), done=str(obj["done"]),
                   n_valid_frames=None if nvf is None else tuple(int(v) for v in nvf),
                   sha256=obj.get("sha256"),
                   extra={k: v for k, v in obj.items() if k not in _LAYER_KEYS})

    def to_json(self) -> dict[str, Any]:
        """The layer's JSON object, as ``manifest.json`` holds it."""
        out = dict(self.extra)
        out.update(file=self.file, shape=list(self.shape), dtype=self.dtype, done=self.done)
        if self.n_valid_frames is not None:
            out["n_valid_frames"] = list(self.n_valid_frames)
        if self.sha256 is not None:
            out["sha256"] = self.sha256
        return out

    def done_mask(self, n_stimuli: int) -> np.ndarray:
        """Rows written, as a bool array of shape (n_stimuli,)."""
        return _unpack_mask(self.done, n_stimuli)

    @classmethod
    def new(cls, file: str, shape: tuple[int, ...], dtype: str) -> "LayerInfo":
        """The entry of a layer just created: no row written yet."""
        return cls(file=file, shape=tuple(shape), dtype=dtype,
                   done=_pack_mask(np.zeros(shape[0], bool)))

    def with_done(self, mask: np.ndarray) -> "LayerInfo":
        """A copy with the rows written set to ``mask`` (its file changed: no sha256)."""
        return replace(self, done=_pack_mask(mask), sha256=None)


_MANIFEST_KEYS = ("format_version", "spec", "settings", "versions", "stimulus_ids",
                  "layer_order", "layers", "skipped", "complete")


@dataclass(frozen=True)
class Manifest:
    """The content of a store's ``manifest.json``.

    Attributes
    ----------
    spec : str
        Model spec string.
    stimulus_ids : tuple of str
        Row order of every layer file.
    settings : mapping
        Everything that determines the features (request, sample rate, pooling, model
        settings, batch size, device, frame counts...), as JSON types.
    versions : mapping
        Package versions.
    layer_order : tuple of str
        Layer names in extraction order.
    layers : mapping of str to LayerInfo
    skipped : mapping of str to str
        Stimulus ids that could not be processed, with the reason.
    complete : bool
    format_version : int
    extra : mapping
        Top-level keys this version does not know, kept as they are.
    """

    spec: str
    stimulus_ids: tuple[str, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    layer_order: tuple[str, ...] = ()
    layers: Mapping[str, LayerInfo] = field(default_factory=dict)
    skipped: Mapping[str, str] = field(default_factory=dict)
    complete: bool = False
    format_version: int = FORMAT_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "Manifest":
        """Build from the parsed ``manifest.json`` object."""
        return cls(spec=obj.get("spec", ""),
                   stimulus_ids=tuple(str(s) for s in obj["stimulus_ids"]),
                   settings=dict(obj.get("settings", {})), versions=dict(obj.get("versions", {})),
                   layer_order=tuple(obj.get("layer_order", ())),
                   layers={k: LayerInfo.from_json(v) for k, v in obj.get("layers", {}).items()},
                   skipped=dict(obj.get("skipped", {})), complete=bool(obj.get("complete", False)),
                   format_version=obj.get("format_version"),
                   extra={k: v for k, v in obj.items() if k not in _MANIFEST_KEYS})

    def to_json(self) -> dict[str, Any]:
        """The ``manifest.json`` object (fresh containers; JSON types only)."""
        out = json.loads(json.dumps(dict(self.extra)))
        out.update(format_version=self.format_version, spec=self.spec,
                   settings=json.loads(json.dumps(dict(self.settings))),
                   versions=dict(self.versions), stimulus_ids=list(self.stimulus_ids),
                   layer_order=list(self.layer_order),
                   layers={k: v.to_json() for k, v in self.layers.items()},
                   skipped=dict(self.skipped), complete=self.complete)
        return out

    def to_text(self) -> str:
        """``manifest.json`` as written: sorted keys, indent 1, a final newline."""
        return json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n"

    def with_layer(self, name: str, info: LayerInfo) -> "Manifest":
        """A copy with ``name``'s entry set (appended to ``layer_order`` if new)."""
        order = self.layer_order if name in self.layers else self.layer_order + (name,)
        return replace(self, layers={**self.layers, name: info}, layer_order=order)

    def skipped_mask(self) -> np.ndarray:
        """Rows of skipped stimuli, as a bool array of shape (n_stimuli,)."""
        return np.array([s in self.skipped for s in self.stimulus_ids], dtype=bool)


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read and check the manifest of the store directory ``path``.

    Raises
    ------
    StoreError
        No manifest, invalid JSON, missing fields or an unsupported format version.
    """
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise StoreError(
            f"{path} is not a feature store (no {MANIFEST}); run the extractor first, "
            "or pass a directory of per-layer .npy files"
        )
    try:
        with open(mpath, encoding="utf-8") as fh:
            obj = json.load(fh)
    except json.JSONDecodeError as exc:
        raise StoreError(f"{mpath} is not valid JSON ({exc}); the store is corrupt") from exc
    if obj.get("format_version") != FORMAT_VERSION:
        raise StoreError(
            f"{mpath}: unsupported format_version {obj.get('format_version')!r} "
            f"(this alignjax reads {FORMAT_VERSION})"
        )
    try:
        return Manifest.from_json(obj)
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{mpath} lacks or garbles the field {exc}; the store is corrupt") from exc


def write_manifest(path: str | os.PathLike, manifest: Manifest, *, sync: bool = True) -> None:
    """Replace ``path/manifest.json`` atomically (temporary file, rename).

    The temporary file has a name of its own (``manifest.json.tmp.<pid>.<random>``), so two
    processes never write into one temporary file. ``sync=True`` makes the new manifest
    durable across an OS crash or power loss: the file is fsynced before the rename and
    the directory after it; the rename alone is atomic for every reader and against a
    killed process.
    """
    target = Path(path) / MANIFEST
    tmp = target.with_name(f"{target.name}.tmp.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(manifest.to_text())
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync:
        fsync_dir(target.parent)


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory, so the renames and new entries in it survive a power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_temporary_manifests(path: str | os.PathLike) -> None:
    """Delete the temporary manifests killed writers left in the store ``path``.

    Call only while holding the store's writer lock (:mod:`alignjax.io.lock`).
    """
    for tmp in Path(path).glob(MANIFEST + ".tmp*"):
        tmp.unlink(missing_ok=True)
