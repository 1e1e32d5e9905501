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

import math
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import Sequence

import numpy as np

from alignjax.errors import InvalidOptionError, StoreError, check_choice, check_positive_int
from alignjax.io import MANIFEST, FeatureStore, StoreWriter

from .audio import AudioError, Stimulus, expected_length, list_stimuli, load_audio, stimuli_fingerprint
from .pooling import POOLINGS, pool
from .spec import Extractor, load_extractor

__all__ = ["extract", "layer_table", "plan_batches", "DTYPES"]

DTYPES = ("float32", "float16")
ON_ERROR = ("skip", "stop")


def _versions() -> dict:
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


def _request(spec, layers, pooling, duration, dtype, n_frames, fingerprint) -> dict:
    return {"spec": spec, "layers": list(layers) if layers else None, "pooling": pooling,
            "duration": duration, "dtype": dtype, "n_frames": n_frames,
            "stimuli_fingerprint": fingerprint}


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
            on_error: str = "stop", progress: bool = True) -> FeatureStore:
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
        one is left as is; a store of another model, stimulus set or settings is refused.
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
    dtype : {'float32', 'float16'}
        Storage dtype (the model is loaded and run in float32). A value that float16
        cannot hold (beyond +-65504) stops the extraction with an error naming the layer
        and the stimulus; nothing is written for it.
    duration : float, optional
        Crop or zero-pad every clip to this many seconds (recorded).
    n_frames : int, optional
        Common frame count for ``pooling='none'``.
    on_error : {'stop', 'skip'}
        What to do with unreadable or unusable clips: stop with an error (rows already
        written are kept), or skip them and list them, with the reason, in the manifest.
    progress : bool
        Show a tqdm progress bar (clips/s).

    Returns
    -------
    alignjax.io.FeatureStore
    """
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
    out = Path(out)
    stims: list[Stimulus] = (list(stimuli) if isinstance(stimuli, (list, tuple))
                             else list_stimuli(stimuli))
    ids = [s.id for s in stims]
    if len(set(ids)) != len(ids):
        from alignjax.errors import StimulusMismatchError

        raise StimulusMismatchError("stimulus ids must be unique")
    request = _request(spec, layers, pooling, duration, dtype, n_frames, stimuli_fingerprint(stims))
    if _finished(out, spec, ids, request):
        if progress:
            print(f"{out}: the feature store is already complete; nothing to do", file=sys.stderr)
        return FeatureStore(out)
    if (out / MANIFEST).is_file():  # refuse a foreign store before loading any model
        m = FeatureStore(out).manifest
        for key, new in (("spec", spec), ("stimulus_ids", ids)):
            if m.get(key) != new:
                raise StoreError(
                    f"{out} already holds a feature store with a different "
                    f"{'model' if key == 'spec' else 'stimulus set'} ({str(m.get(key))[:120]!r}); "
                    "choose another --out directory or delete the old store"
                )
        old = m.get("settings", {}).get("request") or {}
        if old != request:
            diff = {k: (old.get(k), request[k]) for k in request if old.get(k) != request[k]}
            hint = (" (the content of the stimulus files changed since that run)"
                    if "stimuli_fingerprint" in diff else "")
            raise StoreError(
                f"{out} holds a store of {spec} made with other settings{hint}: "
                + ", ".join(f"{k} was {a!r}, now {b!r}" for k, a, b in
                            ((k, *v) for k, v in diff.items()))
                + "; choose another --out directory or delete the old store"
            )
        _check_resume_run(out, m.get("settings", {}), batch_size, device)
    elif out.exists() and any(p.name != MANIFEST + ".tmp" for p in out.iterdir()):
        # (a lone manifest.json.tmp is what a kill during the very first write leaves)
        raise StoreError(f"{out} exists, is not empty and holds no feature store; refusing to "
                         "write into it (choose an empty or new directory)")

    ext = load_extractor(spec, device=device)
    names = ext.resolve_layers(layers)
    sr = ext.sample_rate
    lengths = [expected_length(s.path, sample_rate=sr, duration=duration) for s in stims]

    frames = None
    if pooling == "none":
        longest = max((n for n in lengths if n is not None), default=sr)
        frames = _frames_for(ext, names, longest)
        if n_frames is not None:
            frames = {k: n_frames for k in frames}
    settings = {
        "request": request,
        "sample_rate": sr,
        "pooling": pooling,
        "duration": duration,
        "dtype": dtype,
        "layers": names,
        "resampler": "soxr_hq (librosa.resample)",
        "model": ext.describe(),
        "batch_size": batch_size,
        "device": device,
    }
    if frames is not None:
        dur = (max(n for n in lengths if n is not None) if any(n is not None for n in lengths)
               else sr) / sr
        settings["n_frames"] = frames
        settings["frame_rate_hz"] = _frame_rates(ext, names, sr)
        settings["longest_clip_s"] = dur
    writer = StoreWriter(out, spec=spec, stimulus_ids=ids, settings=settings,
                         versions=_versions())
    pending = set(writer.pending())
    skipped = set(writer.manifest["skipped"])
    batches = [b for b in plan_batches(lengths, batch_size) if any(i in pending for i in b)]
    np_dtype = np.dtype(dtype)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pending), unit="clip", desc=f"extract {spec}", file=sys.stderr,
                   dynamic_ncols=True)
    try:
        for batch in batches:
            waves: dict[int, np.ndarray] = {}
            for i in batch:
                if stims[i].id in skipped:
                    continue
                try:
                    w = load_audio(stims[i].path, sample_rate=sr, duration=duration)
                    ext.check_length(w.shape[0], what=f"stimulus {stims[i].id!r} ({stims[i].path})")
                except AudioError as exc:
                    if on_error == "stop":
                        raise AudioError(
                            f"{exc}\n(rows already written are kept; rerun with --on-error skip "
                            "to skip such files, or fix the file and rerun to resume)"
                        ) from None
                    writer.skip(i, str(exc))
                    skipped.add(stims[i].id)
                    if bar is not None and i in pending:
                        bar.update(1)
                    continue
                if not np.any(w):
                    warnings.warn(f"stimulus {stims[i].id!r} is silent (all samples are zero)",
                                  stacklevel=2)
                waves[i] = w
            # equal lengths only: sub-batch by actual length (header lengths may be off)
            by_len: dict[int, list[int]] = {}
            for i, w in waves.items():
                by_len.setdefault(w.shape[0], []).append(i)
            for n, idx in sorted(by_len.items()):
                acts = ext.forward(np.stack([waves[i] for i in idx]), names)
                rows, n_valid = {}, {}
                for row, i in enumerate(idx):
                    rows[i] = {name: _pooled(ext, acts[name][row], n, name, pooling, frames,
                                             np_dtype, f"{spec}, stimulus {stims[i].id!r}")
                               for name in names}
                    if frames is not None:
                        n_valid[i] = {name: min(acts[name].shape[1], frames[name])
                                      for name in names}
                writer.write_rows(rows, n_valid_frames=n_valid)
                if bar is not None:
                    bar.update(sum(i in pending for i in idx))
    finally:
        if bar is not None:
            bar.close()
    return writer.finish()


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
