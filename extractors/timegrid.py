"""Time-resolved features on a common time grid (``--frame-rate HZ`` with ``--pooling none``).

Every model has its own frame rate (wav2vec2 50 Hz, an audio LLM's tokens 25 Hz, a mel
spectrogram 100 Hz, a codec's latent 75 Hz ...). To set model time courses against EEG
sampled at some rate, each layer's frames are resampled onto that rate with scipy's
polyphase resampler (:func:`scipy.signal.resample_poly`: an anti-aliasing Kaiser-windowed
FIR low-pass at the lower of the two Nyquist rates, zero phase, so a feature sine keeps its
phase and amplitude). Frame ``k`` of a stored layer is at ``times[k] = k / rate`` seconds
from the clip onset (frame ``j`` of a native layer is taken at ``j / native_rate``).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from alignjax.errors import InvalidOptionError

__all__ = ["check_frame_rate", "resample_frames", "frame_times", "resampled_length"]


def _ratio(native: float, target: float) -> tuple[int, int]:
    r = Fraction(target / native).limit_denominator(1000)
    return r.numerator, r.denominator


def check_frame_rate(target: float, native: dict[str, float]) -> None:
    """Refuse a target rate above a layer's native rate, or a layer whose frames are not time.

    Parameters
    ----------
    target : float
        Frames per second asked for.
    native : dict layer -> float
        Native frame rate of each layer (0.0: frames are tokens, not time).
    """
    if not (target > 0 and np.isfinite(target)):
        raise InvalidOptionError(f"frame_rate must be a positive number of Hz, got {target}")
    untimed = [k for k, r in native.items() if not r > 0]
    if untimed:
        raise InvalidOptionError(
            f"--frame-rate: layer(s) {untimed[:5]} have frames that are not time (no frame "
            "rate); leave them out with --layers")
    above = {k: r for k, r in native.items() if target > r * (1 + 1e-9)}
    if above:
        k, r = next(iter(above.items()))
        raise InvalidOptionError(
            f"--frame-rate {target:g} Hz is above the native rate of {len(above)} layer(s), "
            f"e.g. {k!r} at {r:g} Hz; resampling up would invent detail the model never "
            f"computed. Use a rate <= {min(above.values()):g} Hz or leave those layers out")


def resampled_length(n_frames: int, native: float, target: float) -> int:
    """Frames of ``n_frames`` native frames after resampling (``ceil(n * up / down)``)."""
    up, down = _ratio(native, target)
    return -(-n_frames * up // down)


def resample_frames(x: np.ndarray, native: float, target: float) -> np.ndarray:
    """Resample frames (axis -2) from ``native`` to ``target`` frames per second.

    Parameters
    ----------
    x : ndarray, shape (n_frames, n_features)
    native, target : float
        Frame rates in Hz; ``target`` <= ``native``.

    Returns
    -------
    ndarray, shape (resampled_length(n_frames), n_features), float32
        :func:`scipy.signal.resample_poly` along the frame axis.
    """
    from scipy.signal import resample_poly

    up, down = _ratio(native, target)
    if up == down:
        return np.asarray(x, np.float32)
    y = resample_poly(np.asarray(x, np.float64), up, down, axis=-2)
    return y.astype(np.float32)


def frame_times(n_frames: int, rate: float) -> list[float]:
    """Seconds from the clip onset of each of ``n_frames`` frames at ``rate`` Hz."""
    return [round(k / rate, 9) for k in range(n_frames)]
