"""Stimulus listing and audio loading.

Stimuli come from a folder of audio files (ids are the paths relative to the folder,
without extension) or from a CSV with an ``id`` and a ``path`` column (paths relative to
the CSV's folder; other columns are labels). Audio is read with soundfile, mixed to mono
(ambisonic audio: its omnidirectional W channel, see :data:`CHANNEL_FORMATS`), resampled
with soxr (through :func:`librosa.resample`) and optionally cropped or zero-padded to a
fixed duration.
"""

from __future__ import annotations

import csv
import hashlib
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alignjax.errors import AlignjaxInputError, InvalidOptionError, StimulusMismatchError

__all__ = [
    "AudioError",
    "Stimulus",
    "AUDIO_EXTENSIONS",
    "list_stimuli",
    "load_audio",
    "expected_length",
    "stimuli_fingerprint",
    "select_channel",
    "n_channels",
    "CHANNELS",
    "CHANNEL_FORMATS",
    "FORMAT_LABELS",
    "channel_map",
    "check_channel_format",
    "downmix_rule",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3")
RESAMPLER = "soxr_hq"


class AudioError(AlignjaxInputError):
    """An audio file is missing, empty, truncated, corrupt, not audio, or unusable."""


@dataclass(frozen=True)
class Stimulus:
    """One stimulus: its id, the audio file, and optional labels from the CSV."""

    id: str
    path: Path
    labels: dict = field(default_factory=dict, compare=False)


def list_stimuli(source) -> list[Stimulus]:
    """List the stimuli of a folder of audio files or of a CSV (``id``, ``path``, labels...).

    Parameters
    ----------
    source : str or Path
        A directory (searched recursively for ``.wav .flac .ogg .aiff .mp3`` files, sorted
        by relative path; id = relative path without extension, ``/``-separated) or a
        ``.csv`` file with columns ``id`` and ``path`` (relative paths are resolved against
        the CSV's folder) and optional label columns.

    Returns
    -------
    list of Stimulus
        In row order of the future feature store.
    """
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*")
                       if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            raise AudioError(
                f"{source} holds no audio files ({', '.join(AUDIO_EXTENSIONS)}); point "
                "--stimuli at a folder of sounds or a CSV with id,path columns"
            )
        stimuli = [Stimulus(p.relative_to(source).with_suffix("").as_posix(), p) for p in files]
    elif source.is_file() and source.suffix.lower() == ".csv":
        with open(source, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            raise AudioError(f"{source} has no rows; it needs a header with 'id' and 'path'")
        missing = [c for c in ("id", "path") if c not in rows[0]]
        if missing:
            raise AudioError(
                f"{source} lacks column(s) {missing}; the stimulus CSV needs 'id' and 'path' "
                f"columns (found {list(rows[0])})"
            )
        stimuli = []
        for r in rows:
            p = Path(r["path"])
            if not p.is_absolute():
                p = source.parent / p
            labels = {k: v for k, v in r.items() if k not in ("id", "path")}
            stimuli.append(Stimulus(str(r["id"]).strip(), p, labels))
        empty = [i for i, s in enumerate(stimuli) if not s.id]
        if empty:
            raise StimulusMismatchError(f"{source}: empty id on data row(s) {empty[:5]}")
    elif source.is_file():
        raise AudioError(f"{source} is a file but not a .csv; pass a folder or a CSV of stimuli")
    else:
        raise AudioError(f"stimulus source {source} does not exist")
    seen, dup = set(), []
    for s in stimuli:
        if s.id in seen:
            dup.append(s.id)
        seen.add(s.id)
    if dup:
        raise StimulusMismatchError(
            f"duplicate stimulus ids in {source}: {sorted(set(dup))[:5]}; every stimulus needs "
            "a unique id (in a folder, files that differ only by extension collide)"
        )
    return stimuli


def stimuli_fingerprint(stimuli: list[Stimulus]) -> str:
    """A hash of (id, content hash of the audio file) of every stimulus.

    Content, not name or size: a clip replaced by another of the same size changes it.
    Hashes are cached by file size and mtime (:func:`alignjax.io.hashing.file_sha256`).
    """
    from alignjax.io.hashing import file_sha256

    h = hashlib.sha256()
    for s in stimuli:
        h.update(f"{s.id}\0{file_sha256(s.path)}\n".encode())
    return h.hexdigest()[:16]


def _read(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioError(
            f"{path}: cannot be decoded as audio ({type(exc).__name__}: {exc}); the file is "
            "truncated, corrupt or not a wav/flac/ogg file"
        ) from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: holds no audio samples (0 frames)")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: holds NaN or inf samples")
    return data, int(sr)


def expected_length(path: Path, *, sample_rate: int, duration: float | None = None) -> int | None:
    """Number of samples :func:`load_audio` will return, from the header only (None if unreadable)."""
    if duration is not None:
        return int(round(duration * sample_rate))
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception:
        return None
    if info.frames <= 0:
        return None
    if info.samplerate == sample_rate:
        return int(info.frames)
    return int(math.ceil(info.frames * sample_rate / info.samplerate))


CHANNELS = ("mix", "left", "right")

#: How the channels of a multichannel file are to be read (``channel_format``).
#: ``plain``: independent signals (stereo, binaural, a microphone array); ``mix`` averages
#: them. ``foa-acn-sn3d`` (AmbiX; what :func:`extractors.spatial.synthesize_spatial` writes
#: for ``fmt="foa"``), ``foa-acn-n3d`` and ``foa-fuma``: first-order ambisonics (B-format,
#: four channels), for which ``mix`` is the omnidirectional channel W: averaging W, Y, Z
#: and X would be a directional (front-left-up) microphone whose level varies with the
#: direction of the source.
CHANNEL_FORMATS = ("plain", "foa-acn-sn3d", "foa-acn-n3d", "foa-fuma")
#: The ``format`` values of a stimulus CSV (the spatial scenes' ``labels.csv``) and the
#: channel format each one means.
FORMAT_LABELS = {"foa": "foa-acn-sn3d", "binaural": "plain", "stereo": "plain",
                 "mono": "plain", **{f: f for f in CHANNEL_FORMATS}}
_CHANNEL_MAPS = {"foa-acn-sn3d": ("W", "Y", "Z", "X"), "foa-acn-n3d": ("W", "Y", "Z", "X"),
                 "foa-fuma": ("W", "X", "Y", "Z")}
# the gain that makes each format's W the omnidirectional pressure signal (FuMa W is -3 dB)
_W_GAIN = {"foa-acn-sn3d": 1.0, "foa-acn-n3d": 1.0, "foa-fuma": math.sqrt(2.0)}


def channel_map(channel_format: str) -> list[str] | None:
    """Names of the channels in file order (``["W", "Y", "Z", "X"]`` for ACN), or None for
    ``plain`` (channels are numbered only)."""
    names = _CHANNEL_MAPS.get(check_channel_format(channel_format))
    return None if names is None else list(names)


def downmix_rule(channel_format: str) -> str:
    """How ``channels="mix"`` forms the mono signal under ``channel_format`` (in words)."""
    fmt = check_channel_format(channel_format)
    if fmt == "plain":
        return "mean of the channels"
    return "W (omnidirectional)" + (" x sqrt(2) (FuMa W is -3 dB)" if fmt == "foa-fuma" else "")


def check_channel_format(channel_format) -> str:
    """The canonical name of a channel format (``foa`` is ``foa-acn-sn3d``), or raise."""
    fmt = FORMAT_LABELS.get(channel_format) if isinstance(channel_format, str) else None
    if fmt is None:
        raise InvalidOptionError(
            f"channel format must be one of {', '.join(CHANNEL_FORMATS)} (or foa = "
            f"foa-acn-sn3d), got {channel_format!r}")
    return fmt


def select_channel(data: np.ndarray, channels, path, *, channel_format: str = "plain") -> np.ndarray:
    """One waveform from (n_samples, n_channels) data.

    ``"mix"`` averages the channels of ``plain`` audio and takes the omnidirectional W of
    ambisonic audio (:data:`CHANNEL_FORMATS`; a FuMa W is scaled by sqrt(2) to the
    pressure signal); ``"left"``/``"right"`` take channel 0/1 of ``plain`` audio (ambisonic
    audio has no left or right channel: refused); an int takes that channel as stored. A
    mono file gives its only channel for any choice (ambisonic formats need four channels).
    """
    fmt = check_channel_format(channel_format)
    if fmt != "plain":
        return _select_ambisonic(data, channels, path, fmt)
    if channels == "mix" or data.shape[1] == 1:
        if data.shape[1] == 4 and channels == "mix":
            warnings.warn("four-channel audio is averaged to mono (--channels mix with "
                          "channel format 'plain'); if it is first-order ambisonics, declare "
                          "it (--channel-format foa-acn-sn3d|foa-acn-n3d|foa-fuma, or a "
                          "'format' column in the stimulus CSV) so that mix is the "
                          "omnidirectional W", stacklevel=3)
        return data.mean(axis=1, dtype=np.float64).astype(np.float32)
    k = {"left": 0, "right": 1}.get(channels, channels)
    if isinstance(k, str) or not 0 <= int(k) < data.shape[1]:
        raise AudioError(f"{path}: channel {channels!r} is not available (the file has "
                         f"{data.shape[1]} channels; use mix, left, right or 0..{data.shape[1] - 1})")
    return np.ascontiguousarray(data[:, int(k)], dtype=np.float32)


def _select_ambisonic(data: np.ndarray, channels, path, fmt: str) -> np.ndarray:
    names = _CHANNEL_MAPS[fmt]
    if data.shape[1] != len(names):
        raise AudioError(f"{path}: has {data.shape[1]} channel(s), but channel format {fmt} "
                         f"is first-order ambisonics ({len(names)} channels: "
                         f"{', '.join(names)}); declare the file's real format")
    if channels == "mix":
        w = data[:, 0].astype(np.float64) * _W_GAIN[fmt]
        return w.astype(np.float32)
    if isinstance(channels, str) or not 0 <= int(channels) < data.shape[1]:
        raise AudioError(f"{path}: channel {channels!r} is not available in {fmt} audio "
                         f"(channels {', '.join(f'{k}={n}' for k, n in enumerate(names))}; "
                         "use mix for the omnidirectional W or a channel index)")
    return np.ascontiguousarray(data[:, int(channels)], dtype=np.float32)


def n_channels(path) -> int:
    """Number of channels of an audio file (from its header)."""
    import soundfile as sf

    return int(sf.info(str(path)).channels)


def load_audio(path, *, sample_rate: int, duration: float | None = None,
               channels="mix", channel_format: str = "plain") -> np.ndarray:
    """Read an audio file as a mono float32 waveform at ``sample_rate``.

    Parameters
    ----------
    path : str or Path
        wav, flac, ogg (anything libsndfile reads).
    sample_rate : int
        Target rate; other rates are resampled with soxr (high quality).
    duration : float, optional
        Seconds: crop the end, or zero-pad the end, to exactly this length.
    channels : {"mix", "left", "right"} or int
        Multichannel files: the mono downmix (default), or one channel
        (:func:`select_channel`).
    channel_format : {"plain", "foa-acn-sn3d", "foa-acn-n3d", "foa-fuma"}
        What the channels are (:data:`CHANNEL_FORMATS`): for ambisonic audio ``mix`` is the
        omnidirectional W, for ``plain`` audio the mean of the channels.

    Returns
    -------
    ndarray, shape (n_samples,)

    Raises
    ------
    AudioError
        Missing, empty, truncated, corrupt or non-audio files, or NaN samples.
    """
    path = Path(path)
    data, sr = _read(path)
    wave = select_channel(data, channels, path, channel_format=channel_format)
    if sr != sample_rate:
        import librosa

        wave = librosa.resample(wave, orig_sr=sr, target_sr=sample_rate, res_type=RESAMPLER)
        wave = np.ascontiguousarray(wave, dtype=np.float32)
    if duration is not None:
        n = int(round(duration * sample_rate))
        if n <= 0:
            raise AudioError(f"duration must be positive, got {duration}")
        wave = wave[:n] if wave.shape[0] >= n else np.pad(wave, (0, n - wave.shape[0]))
    return wave
