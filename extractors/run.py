"""The extraction loop: stimuli -> extractor -> pooling -> feature store.

Resumable and deterministic. The batches are planned from the whole stimulus list (sorted
by length, equal lengths only, never zero-padded together), so a resumed run feeds the
model exactly the batches an uninterrupted run would and the store ends with the same
bytes; a batch that still has pending rows is recomputed whole and its rows rewritten with
identical values. A finished store is recognised from its manifest and left untouched.
The batch size and device are recorded; an interrupted store is resumed only with the
ones it was started with (another device, or another batch size, can change the last bits
of a model's output).
"""

from __future__ import annotations

import functools
import math
import sys
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from alignjax.errors import (InvalidOptionError, StoreError, check_choice, check_positive_int,
                             check_unique_ids)
from alignjax.io import LOCK_NAME, MANIFEST, FeatureStore, StoreLock, StoreWriter

from .audio import (CHANNELS, FORMAT_LABELS, AudioError, Stimulus, channel_map,
                    check_channel_format, downmix_rule, expected_length, list_stimuli,
                    load_audio, n_channels, stimuli_fingerprint)
from . import shards
from .pooling import POOLINGS, pool
from .spec import HUB_COMMIT, Extractor, load_extractor, weight_hashes

__all__ = ["extract", "layer_table", "plan_batches", "weights_change", "discard_store",
           "DTYPES"]

DTYPES = ("float32", "float16", "bfloat16")
ON_ERROR = ("skip", "stop")


@functools.lru_cache(maxsize=1)
def _versions_cached() -> tuple:
    return tuple(_read_versions().items())


def _versions() -> dict:
    """Versions of the packages that determine the features (read once per process)."""
    return dict(_versions_cached())


def _read_versions() -> dict:
    out = {}
    for pkg in ("alignjax", "torch", "transformers", "librosa", "soundfile", "soxr", "numpy",
                "torchcrepe", "silero-vad"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def plan_batches(lengths: Sequence[int | None], batch_size: int) -> list[list[int]]:
    """Group stimulus indices into batches of equal length (deterministic).

    Indices are sorted by (length, index); consecutive equal lengths are chunked into
    batches of at most ``batch_size``. Unknown lengths (unreadable headers) get their own
    batch of one.
    """
    known = sorted((n, i) for i, n in enumerate(lengths) if n is not None)
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_len = None
    for n, i in known:
        if cur and (n != cur_len or len(cur) == batch_size):
            batches.append(cur)
            cur = []
        cur.append(i)
        cur_len = n
    if cur:
        batches.append(cur)
    batches += [[i] for i, n in enumerate(lengths) if n is None]
    return batches


def _request(spec, layers, pooling, duration, dtype, n_frames, fingerprint, *,
             prompt=None, frame_rate=None, channels="mix", weights=None,
             channel_format="plain") -> dict:
    req = {"spec": spec, "layers": list(layers) if layers else None, "pooling": pooling,
           "duration": duration, "dtype": dtype, "n_frames": n_frames,
           "stimuli_fingerprint": fingerprint}
    # keys added later are present only when set, so older stores still match their request
    if prompt is not None:
        req["prompt"] = prompt
    if frame_rate is not None:
        req["frame_rate"] = frame_rate
    if channels != "mix":
        req["channels"] = channels
    if channel_format != "plain":
        req["channel_format"] = channel_format
    if weights:
        req["weights"] = dict(weights)
    return req


def _finished(out: Path, spec: str, ids: list[str], request: dict) -> bool:
    """True when ``out`` holds a complete store made by this very request."""
    if not (out / MANIFEST).is_file():
        return False
    try:
        store = FeatureStore(out)
    except StoreError:
        return False
    m = store.manifest
    if m.get("spec") != spec or m.get("stimulus_ids") != ids:
        return False
    return bool(m.get("complete")) and m.get("settings", {}).get("request") == request


def _frames_for(extractor: Extractor, layers: list[str], n_samples: int) -> dict[str, int]:
    """Frames each layer gives for an input of ``n_samples`` (one dry run on silence)."""
    n_samples = max(n_samples, extractor.min_samples)
    if extractor.max_samples is not None:
        n_samples = min(n_samples, extractor.max_samples)
    out = extractor.forward(np.zeros((1, n_samples), np.float32), layers)
    return {k: int(v.shape[1]) for k, v in out.items()}


def extract(spec: str, stimuli, out, *, layers: Sequence[str] | None = None,
            pooling: str = "mean", batch_size: int = 8, device: str = "cpu",
            dtype: str = "float32", duration: float | None = None, n_frames: int | None = None,
            on_error: str = "stop", channels="mix", progress: bool = True,
            prompt: str | None = None, frame_rate: float | None = None,
            shard: tuple[int, int] | None = None, force: bool = False,
            sync_every: float = 1.0, channel_format: str | None = None) -> FeatureStore:
    """Extract every layer's activations for every stimulus into a feature store.

    Parameters
    ----------
    spec : str
        Model spec (``hf:DIR``, ``torch:module:factory``, ``crepe:tiny``, ``silero``,
        ``spectral:mel`` ...).
    stimuli : str, Path or list of Stimulus
        A folder of audio files or a CSV (``id``, ``path``, labels...).
    out : str or Path
        Store directory. An interrupted store of the same request is resumed; a finished
        one is checked (:meth:`~alignjax.io.FeatureStore.verify`) and left as is; a store
        of another model, other weights (see below), stimulus set or settings is refused,
        naming what changed. The store is locked for the whole run: a second process
        extracting into the same ``out`` fails at once, naming this one.
    layers : sequence of str, optional
        Layers to keep (default: all). Unknown names fail before any extraction.
    pooling : {'mean', 'max', 'first', 'stats', 'none'}
        ``none`` keeps frames, cropped/zero-padded at the end to a common count per layer
        (``n_frames`` if given, else the frames of the longest clip), and records the frame
        rate and, per layer and stimulus, the number of frames that are not padding
        (``n_valid_frames``; see :meth:`alignjax.io.FeatureStore.valid_frames`).
        ``mean``/``max``/``stats`` pool over the frames the extractor declares for the clip
        (:meth:`~extractors.spec.Extractor.frame_mask`; AST: the patch tokens covering it).
    batch_size : int
        Clips per forward pass. Only clips of equal length share a batch.
    device : {'cpu', 'cuda'}
    dtype : {'float32', 'float16', 'bfloat16'}
        Storage dtype (the model is loaded and run in float32). A value that float16
        cannot hold (beyond +-65504) stops the extraction with an error naming the layer
        and the stimulus; nothing is written for it. ``bfloat16`` (audio LLMs, for memory):
        the model is loaded and run in bfloat16 and its activations stored as float32
        (NumPy has no bfloat16; every bfloat16 value is exact in float32).
    duration : float, optional
        Crop or zero-pad every clip to this many seconds (recorded).
    n_frames : int, optional
        Common frame count for ``pooling='none'``.
    on_error : {'stop', 'skip'}
        What to do with unreadable or unusable clips: stop with an error (rows already
        written are kept), or skip them and list them, with the reason, in the manifest.
    channels : {'mix', 'left', 'right', 'each'} or int
        How multichannel clips reach a mono model (recorded in the manifest's settings):
        average the channels, take one, or ``each``: extract every channel (of the first
        clip's channel count) separately and store layer ``L`` of channel ``k`` as layer
        ``L@ch<k>`` and all channels' features concatenated as ``L@chans`` (per-channel
        stores are kept under ``out/.channels/``).
    progress : bool
        Show a tqdm progress bar (clips/s).
    prompt : str, optional
        Audio LLMs only: the text prompt, placed before the audio (default: empty; recorded in the
        manifest as ``settings.model.prompt``).
    frame_rate : float, optional
        ``pooling='none'`` only: resample every layer's frames to this many per second
        (:mod:`extractors.timegrid`; anti-aliased polyphase) from the true centre times of
        its frames, so stored frame ``k`` of every layer of every model is the audio at
        ``k / frame_rate`` s. The centre of each layer's native frame 0 is recorded in
        ``settings.native_frame_offset_s``; a rate above a layer's native rate is refused.
        Without ``frame_rate`` the frames stay native, centred at
        ``settings.frame_offset_s[layer] + k / rate`` (the frame centres the adapter derives
        from its receptive field and strides: :meth:`extractors.spec.Extractor.frame_offset`).
        Either way ``settings.times`` holds every stored frame's centre
        (:meth:`alignjax.io.FeatureStore.times`).
    shard : (int, int), optional
        ``(i, n)``: compute only the i-th of n shares of the batches, into
        ``out/.shards/shard-i-of-n`` (see :mod:`extractors.shards`); the returned store is
        that shard's (unfinished) one. A later call without ``shard`` merges the shards
        and computes the rows still missing.
    force : bool
        Discard a feature store already at ``out`` (its manifest, layer files and shards),
        whatever request made it, and extract anew.
    sync_every : float
        Seconds between durable checkpoints of the rows written
        (:class:`~alignjax.io.StoreWriter`): a crash or kill loses at most the rows of the
        last ``sync_every`` seconds, which a resumed run recomputes. 0: after every batch.
    channel_format : {'plain', 'foa-acn-sn3d', 'foa-acn-n3d', 'foa-fuma', 'foa'}, optional
        What the channels of the clips are (:data:`extractors.audio.CHANNEL_FORMATS`). For
        first-order ambisonics ``channels='mix'`` is the omnidirectional W (the mean of W,
        Y, Z and X would be a directional microphone) and ``left``/``right`` are refused.
        Default: the stimulus CSV's ``format`` column when every stimulus has one (the
        spatial scenes' ``labels.csv``: ``foa`` is ``foa-acn-sn3d``; ``binaural``,
        ``stereo``, ``mono`` are ``plain``), else ``plain``. Recorded in the manifest's
        settings with the channel map and the downmix rule (``channel_format``,
        ``channel_map``, ``downmix``).

    Notes
    -----
    The model's weights are identified by content (:func:`extractors.spec.weight_hashes`:
    the SHA-256 of every file of a local ``hf:DIR``, of a ``torch:`` module's source and of
    the weights CREPE and Silero ship; the cached commit of a hub id) and recorded in the
    store's request, so a store is never resumed or reused with other weights.

    Returns
    -------
    alignjax.io.FeatureStore
    """
    batch_size, n_frames = _check_options(pooling=pooling, dtype=dtype, on_error=on_error,
                                          batch_size=batch_size, duration=duration,
                                          n_frames=n_frames, frame_rate=frame_rate)
    if not (isinstance(sync_every, (int, float)) and sync_every >= 0):
        raise InvalidOptionError(f"sync_every must be a number of seconds >= 0, got "
                                 f"{sync_every!r}")
    out = Path(out)
    stims = _stimulus_list(stimuli)
    ids = [s.id for s in stims]
    channel_format = _channel_format(stims, channel_format)
    if channels == "each":
        if shard is not None:
            raise InvalidOptionError("--channels each extracts one store per channel; shard "
                                     "with --channels 0, 1, ... instead")
        with StoreLock(out):
            return _extract_each_channel(spec, stims, out, layers=layers, pooling=pooling,
                                         batch_size=batch_size, device=device, dtype=dtype,
                                         duration=duration, n_frames=n_frames,
                                         on_error=on_error, progress=progress, prompt=prompt,
                                         frame_rate=frame_rate, force=force,
                                         sync_every=sync_every, channel_format=channel_format)
    if not (channels in CHANNELS or (isinstance(channels, int) and channels >= 0)):
        raise InvalidOptionError(f"channels must be mix, left, right, each or a channel index, "
                                 f"got {channels!r}")
    request = _request(spec, layers, pooling, duration, dtype, n_frames, stimuli_fingerprint(stims),
                       prompt=prompt, frame_rate=None if frame_rate is None else float(frame_rate),
                       channels=channels, weights=weight_hashes(spec),
                       channel_format=channel_format)
    target = out if shard is None else shards.shard_dir(out, *shards.check_shard(shard))
    with StoreLock(target):  # before anything is read: a second writer fails at once
        if force:
            discard_store(target)
            if shard is None:
                shards.remove_shards(out)
        if _finished(out, spec, ids, request):
            FeatureStore(out).verify()
            if progress:
                print(f"{out}: the feature store is already complete; nothing to do",
                      file=sys.stderr)
            return FeatureStore(out)
        _check_out_dir(out, spec, ids, request, batch_size=batch_size, device=device)
        if shard is not None:
            _check_out_dir(target, spec, ids, request, batch_size=batch_size, device=device)
        return _extract_into(spec, stims, out, target, request, layers=layers,
                             pooling=pooling, batch_size=batch_size, device=device,
                             dtype=dtype, duration=duration, n_frames=n_frames,
                             on_error=on_error, channels=channels, progress=progress,
                             prompt=prompt, frame_rate=frame_rate, shard=shard,
                             sync_every=sync_every)


def _extract_into(spec, stims, out: Path, target: Path, request: dict, *, layers, pooling,
                  batch_size, device, dtype, duration, n_frames, on_error, channels, progress,
                  prompt, frame_rate, shard, sync_every) -> FeatureStore:
    """Load the model and fill the store ``target`` (``out`` or a shard of it); locked."""
    ids = [s.id for s in stims]

    ext = load_extractor(spec, device=device, prompt=prompt,
                         run_dtype="bfloat16" if dtype == "bfloat16" else "float32")
    names = ext.resolve_layers(layers)
    lengths = [expected_length(s.path, sample_rate=ext.sample_rate, duration=duration)
               for s in stims]
    if on_error == "stop":
        _refuse_too_long(ext, stims, lengths)
    grid = _time_grid(ext, names, pooling, frame_rate)
    frames = _common_frames(ext, names, lengths, pooling, n_frames, grid)
    settings = _settings(ext, names, request, lengths, frames, grid, batch_size=batch_size,
                         device=device)
    batches = plan_batches(lengths, batch_size)
    with StoreWriter(target, spec=spec, stimulus_ids=ids, settings=settings,
                     versions=_versions(), sync_every=sync_every) as writer:
        run = _Run(spec=spec, ext=ext, names=names, stims=stims, writer=writer,
                   pooling=pooling, frames=frames, dtype=np.dtype(_storage_dtype(dtype)),
                   duration=duration, on_error=on_error, grid=grid, channels=channels,
                   channel_format=request.get("channel_format", "plain"))
        if shard is not None:
            _run_batches(run, shards.shard_batches(batches, *shard), progress=progress)
            writer.close()
            return FeatureStore(target)
        shards.merge_shards(out, writer, batches, names)
        _run_batches(run, batches, progress=progress)
        store = writer.finish()
    shards.remove_shards(out)
    return store


def _storage_dtype(dtype: str) -> str:
    """The dtype rows are stored in (a bfloat16 run is stored as float32)."""
    return "float32" if dtype == "bfloat16" else dtype


def _channel_format(stims: list[Stimulus], channel_format) -> str:
    """The declared channel format: given, else the stimuli's ``format`` labels, else plain."""
    if channel_format is not None:
        return check_channel_format(channel_format)
    labels = [s.labels.get("format") for s in stims]
    declared = {v for v in labels if v not in (None, "")}
    if not declared:
        return "plain"
    unknown = sorted(v for v in declared if v not in FORMAT_LABELS)
    formats = {FORMAT_LABELS.get(v) for v in declared}
    missing = [s.id for s, v in zip(stims, labels) if v in (None, "")]
    if unknown or missing or len(formats) > 1:
        raise InvalidOptionError(
            "the stimulus CSV's 'format' column does not declare one channel format for "
            "every stimulus ("
            + (f"unknown value(s) {unknown}; " if unknown else "")
            + (f"values {sorted(declared)}; " if len(formats) > 1 else "")
            + (f"empty for {missing[:3]}{' and more' if len(missing) > 3 else ''}; "
               if missing else "")
            + f"known: {', '.join(sorted(FORMAT_LABELS))}); fix the column or pass "
            "--channel-format explicitly")
    return formats.pop()


def _common_channel_count(stims) -> int:
    """The channel count every stimulus shares; ``channels='each'`` refuses a mixture."""
    by_count: dict[int, list[str]] = {}
    for s in stims:
        by_count.setdefault(n_channels(s.path), []).append(str(s.path))
    if len(by_count) > 1:
        listing = "; ".join(f"{k} channel(s): {', '.join(v[:3])}" + (f" and {len(v) - 3} more"
                                                                     if len(v) > 3 else "")
                            for k, v in sorted(by_count.items()))
        raise InvalidOptionError(
            f"--channels each needs stimuli with the same number of channels, but they differ "
            f"({listing}); convert them to one layout, or use --channels mix/left/right or a "
            "channel number")
    return next(iter(by_count))


def _extract_each_channel(spec, stims, out: Path, *, progress, force, sync_every,
                          **kw) -> FeatureStore:
    """``channels='each'``: one store per channel, merged into ``out`` as ``L@ch<k>`` layers."""
    n_ch = _common_channel_count(stims)
    if force:
        discard_store(out)
    parts = [extract(spec, stims, out / ".channels" / f"ch{k}", channels=k, progress=progress,
                     force=force, sync_every=sync_every, **kw) for k in range(n_ch)]
    ids = [s.id for s in stims]
    layer_map = {f"{name}@ch{k}": [name, k] for k in range(n_ch) for name in parts[0].layers}
    layer_map.update({f"{name}@chans": [name, "concatenated"] for name in parts[0].layers})
    settings = dict(parts[0].settings, channels="each", n_channels=n_ch,
                    channel_layers=layer_map)
    if (out / MANIFEST).is_file():
        old = FeatureStore(out)
        if old.complete and old.settings == settings and old.stimulus_ids == ids:
            old.verify()
            return old
    with StoreWriter(out, spec=spec, stimulus_ids=ids, settings=settings,
                     versions=_versions(), sync_every=sync_every) as writer:
        for i in writer.pending():
            rows = {f"{name}@ch{k}": np.asarray(p.load(name)[i])
                    for k, p in enumerate(parts) for name in p.layers}
            rows.update({f"{name}@chans": np.concatenate(
                [rows[f"{name}@ch{k}"] for k in range(n_ch)], axis=-1)
                for name in parts[0].layers})
            writer.write(i, rows)
        return writer.finish()


def _check_options(*, pooling: str, dtype: str, on_error: str, batch_size: int,
                   duration: float | None, n_frames: int | None,
                   frame_rate: float | None = None) -> tuple[int, int | None]:
    """Refuse invalid options before anything is read; -> (batch_size, n_frames) as ints."""
    check_choice(pooling, "pooling", POOLINGS)
    check_choice(dtype, "dtype", DTYPES)
    check_choice(on_error, "on_error", ON_ERROR)
    batch_size = check_positive_int(batch_size, "batch_size")
    if duration is not None and not (duration > 0 and math.isfinite(duration)):
        raise InvalidOptionError(f"duration must be a positive number of seconds, got {duration}")
    if n_frames is not None:
        n_frames = check_positive_int(n_frames, "n_frames")
        if pooling != "none":
            raise InvalidOptionError("n_frames only applies to pooling='none'")
    if frame_rate is not None:
        if pooling != "none":
            raise InvalidOptionError("frame_rate only applies to pooling='none' (time-resolved "
                                     "features); add --pooling none")
        if not (isinstance(frame_rate, (int, float)) and frame_rate > 0
                and math.isfinite(frame_rate)):
            raise InvalidOptionError(f"frame_rate must be a positive number of Hz, got "
                                     f"{frame_rate!r}")
    return batch_size, n_frames


def _refuse_too_long(ext: Extractor, stims: list[Stimulus], lengths) -> None:
    """Clips longer than the model takes (from their headers): refused before any write."""
    if ext.max_samples is None:
        return
    long = [(s, n) for s, n in zip(stims, lengths) if n is not None and n > ext.max_samples]
    if long:
        s, n = long[0]
        sr = ext.sample_rate
        more = f" and {len(long) - 1} more clips are" if len(long) > 1 else " is"
        raise AudioError(
            f"stimulus {s.id!r} ({n / sr:.2f} s){more} longer than the "
            f"{ext.max_samples / sr:.2f} s {ext.spec} accepts; nothing was written. Crop "
            "every clip with --duration SECONDS (or skip them with --on-error skip)")


def _stimulus_list(stimuli) -> list[Stimulus]:
    """The stimuli of a folder or CSV (or a given list); their ids must be unique."""
    stims = list(stimuli) if isinstance(stimuli, (list, tuple)) else list_stimuli(stimuli)
    source = "the stimulus list" if isinstance(stimuli, (list, tuple)) else f"the stimuli of {stimuli}"
    check_unique_ids([s.id for s in stims], source)
    return stims


def _check_out_dir(out: Path, spec: str, ids: list[str], request: dict, *, batch_size: int,
                   device: str) -> None:
    """Refuse, before any model is loaded, an output directory this run must not write into.

    A store of another model, stimulus set or request; an interrupted store of this request
    started with another batch size or device; a non-empty directory that is no store.
    """
    if (out / MANIFEST).is_file():
        m = FeatureStore(out).manifest
        _refuse_foreign_store(out, m, spec, ids, request)
        _check_resume_run(out, m.get("settings", {}), batch_size, device)
    elif out.exists() and any(not p.name.startswith(MANIFEST + ".tmp")
                              and p.name not in (LOCK_NAME, shards.SHARDS)
                              for p in out.iterdir()):
        # (a lone temporary manifest is what a kill during the very first write leaves)
        raise StoreError(f"{out} exists, is not empty and holds no feature store; refusing to "
                         "write into it (choose an empty or new directory)")


def _refuse_foreign_store(out: Path, m: dict, spec: str, ids: list[str], request: dict) -> None:
    """Refuse the store at ``out`` (manifest ``m``) unless this very request made it."""
    for key, new in (("spec", spec), ("stimulus_ids", ids)):
        if m.get(key) != new:
            raise StoreError(
                f"{out} already holds a feature store with a different "
                f"{'model' if key == 'spec' else 'stimulus set'} ({str(m.get(key))[:120]!r}); "
                "choose another --out directory or delete the old store"
            )
    old = m.get("settings", {}).get("request") or {}
    if old != request:
        keys = list(request) + [k for k in old if k not in request]
        diff = {k: (old.get(k), request.get(k)) for k in keys if old.get(k) != request.get(k)}
        state = "a complete" if m.get("complete") else "an interrupted"
        weights = diff.pop("weights", None)
        if weights is not None:
            raise StoreError(
                f"{out} holds {state} store of {spec} extracted with other weights: "
                + weights_change(*weights)
                + (f" (and {', '.join(diff)} changed too)" if diff else "")
                + "; extract into another --out directory, or add --force to discard the "
                "old store and extract anew")
        hint = (" (the content of the stimulus files changed since that run)"
                if "stimuli_fingerprint" in diff else "")
        raise StoreError(
            f"{out} holds a store of {spec} made with other settings{hint}: "
            + ", ".join(f"{k} was {a!r}, now {b!r}" for k, (a, b) in diff.items())
            + "; choose another --out directory, delete the old store, or add --force to "
            "discard it and extract anew"
        )


def weights_change(old: dict | None, new: dict | None) -> str:
    """What changed between two records of :func:`extractors.spec.weight_hashes`, in words."""
    if not old:
        return ("the store records no hash of its model's weights (written by an older "
                "alignjax), so they cannot be checked against the current ones")
    old, new = old or {}, new or {}
    parts = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if a is None:
            parts.append(f"{name} is new (sha256 {b[:12]})")
        elif b is None:
            parts.append(f"{name} is gone (was sha256 {a[:12]})")
        else:
            what = "was" if name != HUB_COMMIT else "was commit"
            parts.append(f"{name} {what} {a[:12]}, now {b[:12]}")
    return "; ".join(parts)


def discard_store(path: Path) -> None:
    """``force``: delete the feature store at ``path`` (its manifest and layer files).

    Only what a readable manifest names is deleted. Call while holding the store's lock.
    """
    if not (path / MANIFEST).is_file():
        return
    try:
        meta = FeatureStore(path).meta
    except StoreError as exc:
        raise StoreError(f"{exc}; --force deletes only what a readable manifest names: delete "
                         f"{path} yourself") from None
    for info in meta.layers.values():
        (path / info.file).unlink(missing_ok=True)
    (path / MANIFEST).unlink()


@dataclass(frozen=True)
class _Grid:
    """Time-resolved layers: native frame rates, the centre of each layer's frame 0, and the
    common rate asked for (if any)."""

    native: dict[str, float]
    target: float | None
    offsets: dict[str, float] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()

    def rate(self, name: str) -> float:
        return self.native[name] if self.target is None else self.target

    def offset(self, name: str) -> float:
        """Centre of stored frame 0: the layer's own, or 0.0 on the common grid."""
        return self.offsets.get(name, 0.0) if self.target is None else 0.0


def _time_grid(ext: Extractor, names: list[str], pooling: str,
               frame_rate: float | None) -> _Grid | None:
    """Frame rates of every layer for ``pooling='none'``; check ``frame_rate`` against them."""
    if pooling != "none":
        return None
    native = _frame_rates(ext, names, ext.sample_rate)
    if frame_rate is not None:
        from .timegrid import check_frame_rate

        check_frame_rate(float(frame_rate), native)
    offsets, unknown = {}, []
    for k in names:
        if native[k] > 0:
            off = ext.frame_offset(k, native[k])
            if off is None:
                unknown.append(k)
            offsets[k] = 0.0 if off is None else float(off)
    return _Grid(native, None if frame_rate is None else float(frame_rate), offsets,
                 tuple(unknown))


def _common_frames(ext: Extractor, names: list[str], lengths: Sequence[int | None],
                   pooling: str, n_frames: int | None,
                   grid: _Grid | None = None) -> dict[str, int] | None:
    """With ``pooling='none'``, the frame count per layer every row is cropped/padded to."""
    if pooling != "none":
        return None
    longest = max((n for n in lengths if n is not None), default=ext.sample_rate)
    frames = _frames_for(ext, names, longest)
    if grid is not None and grid.target is not None:
        from .timegrid import resampled_length

        frames = {k: resampled_length(v, grid.native[k], grid.target) for k, v in frames.items()}
    return frames if n_frames is None else {k: n_frames for k in frames}


def _settings(ext: Extractor, names: list[str], request: dict, lengths: Sequence[int | None],
              frames: dict[str, int] | None, grid: _Grid | None = None, *, batch_size: int,
              device: str) -> dict:
    """The store's ``settings``: the request plus what the model and the run add to it."""
    sr = ext.sample_rate
    settings = {
        "request": request,
        "sample_rate": sr,
        "pooling": request["pooling"],
        "duration": request["duration"],
        "dtype": _storage_dtype(request["dtype"]),
        "layers": names,
        "resampler": "soxr_hq (librosa.resample)",
        "model": ext.describe(),
        "batch_size": batch_size,
        "device": device,
        "channels": request.get("channels", "mix"),
        "channel_format": request.get("channel_format", "plain"),
        "channel_map": channel_map(request.get("channel_format", "plain")),
        "downmix": downmix_rule(request.get("channel_format", "plain")),
    }
    from .checkpoints import checkpoint_info

    ckpt = checkpoint_info(ext.spec or request["spec"])
    if ckpt is not None:
        settings["checkpoint"] = ckpt
    if frames is not None:
        known = [n for n in lengths if n is not None]
        settings["n_frames"] = frames
        settings["frame_rate_hz"] = {k: grid.rate(k) for k in names}
        settings["longest_clip_s"] = (max(known) if known else sr) / sr
        settings["times"] = _times(names, frames, grid)
        settings["frame_offset_s"] = {k: grid.offset(k) for k in names if grid.rate(k) > 0}
        if grid.unknown:
            settings["frame_offset_note"] = (
                f"the adapter declares no frame centres for {list(grid.unknown)}; their frame "
                "0 is taken to be centred at the clip onset")
        if grid.target is not None:
            settings["native_frame_rate_hz"] = dict(grid.native)
            settings["native_frame_offset_s"] = dict(grid.offsets)
            settings["frame_resampler"] = (
                "scipy.signal.resample_poly's Kaiser low-pass (anti-aliased), from each "
                "layer's frame centres (native_frame_offset_s) onto k / frame_rate")
    return settings


@dataclass
class _Run:
    """One extraction while it runs over its batches (the loop's shared state)."""

    spec: str
    ext: Extractor
    names: list[str]
    stims: list[Stimulus]
    writer: StoreWriter
    pooling: str
    frames: dict[str, int] | None
    dtype: np.dtype
    duration: float | None
    on_error: str
    grid: _Grid | None = None
    channels: Any = "mix"
    channel_format: str = "plain"
    pending: set[int] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)
    bar: Any = None

    def advance(self, indices: Sequence[int]) -> None:
        """Move the progress bar by the pending rows among ``indices``."""
        if self.bar is not None:
            self.bar.update(sum(i in self.pending for i in indices))


def _run_batches(run: _Run, batches: list[list[int]], *, progress: bool) -> None:
    """Extract and write every planned batch that still has pending rows."""
    run.pending = set(run.writer.pending())
    run.skipped = set(run.writer.meta.skipped)
    todo = [b for b in batches if any(i in run.pending for i in b)]
    if progress:
        from tqdm.auto import tqdm

        run.bar = tqdm(total=len(run.pending), unit="clip", desc=f"extract {run.spec}",
                       file=sys.stderr, dynamic_ncols=True)
    try:
        for batch in todo:
            _write_waves(run, _load_waves(run, batch))
    finally:
        if run.bar is not None:
            run.bar.close()


def _load_waves(run: _Run, batch: list[int]) -> dict[int, np.ndarray]:
    """Audio of the batch's stimuli not skipped (unusable ones skipped or stopped on)."""
    waves: dict[int, np.ndarray] = {}
    for i in batch:
        stim = run.stims[i]
        if stim.id in run.skipped:
            continue
        try:
            w = load_audio(stim.path, sample_rate=run.ext.sample_rate, duration=run.duration,
                           channels=run.channels, channel_format=run.channel_format)
            run.ext.check_length(w.shape[0], what=f"stimulus {stim.id!r} ({stim.path})")
        except AudioError as exc:
            _skip_or_stop(run, i, exc)
            continue
        if not np.any(w):
            # stacklevel: _load_waves < _run_batches < extract < its caller
            warnings.warn(f"stimulus {stim.id!r} is silent (all samples are zero)",
                          stacklevel=4)
        waves[i] = w
    return waves


def _skip_or_stop(run: _Run, i: int, exc: AudioError) -> None:
    """``on_error='stop'``: raise, saying how to go on; ``'skip'``: list it in the manifest."""
    if run.on_error == "stop":
        raise AudioError(
            f"{exc}\n(rows already written are kept; rerun with --on-error skip "
            "to skip such files, or fix the file and rerun to resume)"
        ) from None
    run.writer.skip(i, str(exc))
    run.skipped.add(run.stims[i].id)
    run.advance([i])


def _write_waves(run: _Run, waves: dict[int, np.ndarray]) -> None:
    """Forward clips of equal length together, pool, and write their rows (one write each)."""
    # equal lengths only: sub-batch by actual length (header lengths may be off)
    by_len: dict[int, list[int]] = {}
    for i, w in waves.items():
        by_len.setdefault(w.shape[0], []).append(i)
    for n, idx in sorted(by_len.items()):
        acts = run.ext.forward(np.stack([waves[i] for i in idx]), run.names)
        rows, n_valid = {}, {}
        for row, i in enumerate(idx):
            where = f"{run.spec}, stimulus {run.stims[i].id!r}"
            clip = {name: _on_grid(acts[name][row], name, run.grid) for name in run.names}
            rows[i] = {name: _pooled(run.ext, clip[name], n, name, run.pooling, run.frames,
                                     run.dtype, where) for name in run.names}
            if run.frames is not None:
                n_valid[i] = {name: min(clip[name].shape[0], run.frames[name])
                              for name in run.names}
        run.writer.write_rows(rows, n_valid_frames=n_valid)
        run.advance(idx)


def _on_grid(a: np.ndarray, name: str, grid: _Grid | None) -> np.ndarray:
    """One clip's frames of ``name``, resampled to the common rate when one is asked for."""
    if grid is None or grid.target is None:
        return a
    from .timegrid import resample_frames

    if not np.isfinite(a).all():
        return a  # reported, with its place, by _pooled
    return resample_frames(a, grid.native[name], grid.target,
                           offset=grid.offsets.get(name, 0.0))


def _times(names: list[str], frames: dict[str, int], grid: _Grid) -> dict[str, list[float]]:
    """Seconds from clip onset of the centre of every stored frame of each layer with a
    frame rate (``offset + k / rate``; on the common grid ``k / frame_rate``)."""
    from .timegrid import frame_times

    return {k: frame_times(frames[k], grid.rate(k), grid.offset(k))
            for k in names if grid.rate(k) > 0}


def _pooled(ext: Extractor, a: np.ndarray, n_samples: int, name: str, pooling: str,
            frames: dict[str, int] | None, dtype: np.dtype, where: str) -> np.ndarray:
    """One clip's activations of one layer, pooled and cast; raise on NaN/inf or overflow."""
    if not np.isfinite(a).all():
        raise StoreError(f"{where}: the model produced NaN/inf in layer {name!r}; nothing "
                         "was written for it")
    mask = ext.frame_mask(n_samples, name) if pooling in ("mean", "max", "stats") else None
    p = pool(a, pooling, n_frames=None if frames is None else frames[name], mask=mask)
    with np.errstate(over="ignore"):  # an overflow is reported below, with its place
        cast = p.astype(dtype)
    if not np.isfinite(cast).all():
        raise StoreError(
            f"{where}: layer {name!r} holds values up to {float(np.abs(p).max()):.4g}, beyond "
            f"what {dtype.name} can store (they would become inf); nothing was written for it. "
            "Extract with --dtype float32 (or leave that layer out with --layers)"
        )
    return cast


def _check_resume_run(out: Path, old: dict, batch_size: int, device: str) -> None:
    """Refuse to resume an interrupted store with another batch size or device."""
    for key, new in (("batch_size", batch_size), ("device", device)):
        if key in old and old[key] != new:
            flag = "--" + key.replace("_", "-")
            raise StoreError(
                f"{out} is an interrupted extraction started with {key} {old[key]!r}, now "
                f"{new!r}; another {key.replace('_', ' ')} can change the last bits of the "
                f"activations, so resume it with {flag} {old[key]} (or start a new --out)"
            )


def _frame_rates(ext: Extractor, layers: list[str], sr: int) -> dict[str, float]:
    """Frames per second of each layer: declared by the extractor, else measured.

    Measured from two dry runs (1 s and 2 s of silence) for extractors that declare none;
    0.0 for layers whose frame count does not follow the clip length (e.g. AST tokens).
    """
    declared = {k: ext.frame_rate(k) for k in layers}
    if all(v is not None for v in declared.values()):
        return {k: float(v) for k, v in declared.items()}
    n1 = max(sr, ext.min_samples)
    n2 = 2 * n1
    if ext.max_samples is not None and n2 > ext.max_samples:
        n1, n2 = ext.max_samples // 2, ext.max_samples
    a1 = ext.forward(np.zeros((1, n1), np.float32), layers)
    a2 = ext.forward(np.zeros((1, n2), np.float32), layers)
    return {k: float(declared[k] if declared[k] is not None
                     else (a2[k].shape[1] - a1[k].shape[1]) / ((n2 - n1) / sr)) for k in layers}


def layer_table(spec: str, *, device: str = "cpu", seconds: float = 1.0) -> list[tuple[str, tuple]]:
    """Layer names of a model and their output shapes (n_frames, n_features) for a clip.

    Parameters
    ----------
    spec : str
    seconds : float
        Length of the probe clip (low-level noise).
    """
    ext = load_extractor(spec, device=device)
    names = ext.layer_names()
    n = max(int(round(seconds * ext.sample_rate)), ext.min_samples)
    if ext.max_samples is not None:
        n = min(n, ext.max_samples)
    wave = (np.random.default_rng(0).standard_normal((1, n)) * 0.01).astype(np.float32)
    acts = ext.forward(wave, names)
    return [(name, tuple(acts[name].shape[1:])) for name in names]
