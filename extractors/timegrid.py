"""Time-resolved features on a common time grid (``--frame-rate HZ`` with ``--pooling none``).

Every model has its own frame rate (wav2vec2 50 Hz, an audio LLM's tokens 25 Hz, a mel
spectrogram 100 Hz, a codec's latent 75 Hz ...). To set model time courses against EEG
sampled at some rate, each layer's frames are resampled onto that rate with scipy's
polyphase resampler (:func:`scipy.signal.resample_poly`: an anti-aliasing Kaiser-windowed
FIR low-pass at the lower of the two Nyquist rates, zero phase, so a feature sine keeps its
phase and amplitude).

Time axis. Every layer's frames have true centre times: frame ``j`` of a layer is centred
``offset + j / rate`` seconds after the clip onset, where ``offset`` (the layer's
``frame_offset_s``, declared by its adapter from the receptive field and stride:
:meth:`extractors.spec.Extractor.frame_offset`) is the centre of frame 0. Centred STFT front
ends (log-mel, MFCC, CREPE, Whisper and the audio-LLM towers) have ``offset = 0``; an
unpadded conv front end whose frame ``j`` covers samples ``[S j, S j + R)`` has
``offset = R / 2`` samples (wav2vec2-base: 12.5 ms); pooling ``p`` frames into one adds
``(p - 1) / 2`` frame periods (Qwen2-Audio tokens: 10 ms). The common grid
(``--frame-rate HZ``) is ``times[k] = k / HZ`` for every model: its values are resampled
from the layer's frames at their true times (a fractional delay of ``offset`` taken in the
same Kaiser-windowed sinc filter :func:`scipy.signal.resample_poly` designs; with
``offset = 0`` exactly that function), so two models' frames at grid sample ``k`` describe
the same moment of the audio.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from alignjax.errors import InvalidOptionError

__all__ = ["check_frame_rate", "resample_frames", "frame_times", "resampled_length",
           "fractional_resample"]


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


def resample_frames(x: np.ndarray, native: float, target: float, *,
                    offset: float = 0.0) -> np.ndarray:
    """Resample frames (axis -2) centred at ``offset + j / native`` onto ``k / target``.

    Parameters
    ----------
    x : ndarray, shape (n_frames, n_features)
    native, target : float
        Frame rates in Hz; ``target`` <= ``native``.
    offset : float
        Seconds from the clip onset to the centre of frame 0 of ``x`` (the layer's
        ``frame_offset_s``).

    Returns
    -------
    ndarray, shape (resampled_length(n_frames), n_features), float32
        Row ``k`` is the layer at ``k / target`` seconds from the clip onset:
        :func:`scipy.signal.resample_poly` along the frame axis when ``offset`` is 0, else
        :func:`fractional_resample` (the same filter, delayed by ``offset``).
    """
    from scipy.signal import resample_poly

    up, down = _ratio(native, target)
    if offset == 0.0:
        if up == down:
            return np.asarray(x, np.float32)
        y = resample_poly(np.asarray(x, np.float64), up, down, axis=-2)
        return y.astype(np.float32)
    n_out = resampled_length(x.shape[-2], native, target)
    # output frame k sits at input-frame position (k / target - offset) * native
    pos = (np.arange(n_out) * down / up) - offset * native
    return fractional_resample(x, pos, up=up, down=down).astype(np.float32)


def fractional_resample(x: np.ndarray, positions: np.ndarray, *, up: int,
                        down: int) -> np.ndarray:
    """Values of ``x`` (axis -2) at fractional frame ``positions``, band-limited.

    The low-pass :func:`scipy.signal.resample_poly` applies for ``up / down`` (a
    ``firwin`` Kaiser(5.0) windowed sinc, cut off at the lower Nyquist rate, 10 zero
    crossings each side, unit DC gain), evaluated at any phase instead of the ``up`` phases
    of its polyphase bank: at ``positions = k * down / up`` it gives resample_poly's output
    (to rounding). Frames beyond either end count as zeros, as in resample_poly.

    Parameters
    ----------
    x : ndarray, shape (n_frames, n_features)
    positions : ndarray, shape (n_out,)
        Output positions in units of input frames (0: the centre of frame 0).
    up, down : int
        The rational rate change (``target / native = up / down``).

    Returns
    -------
    ndarray, shape (n_out, n_features), float64
    """
    from scipy.special import i0

    x = np.asarray(x, np.float64)
    g = np.gcd(up, down)
    up, down = up // g, down // g
    max_rate = max(up, down)
    f_c = 1.0 / max_rate
    half_len = 10 * max_rate  # taps each side at the upsampled rate (as resample_poly)
    beta = 5.0

    def taps(m):  # the filter at upsampled-rate offsets m (|m| <= half_len), unscaled
        m = np.asarray(m, np.float64)
        inside = np.abs(m) <= half_len
        arg = np.sqrt(np.clip(1.0 - (m / half_len) ** 2, 0.0, None))
        return np.where(inside, f_c * np.sinc(f_c * m) * i0(beta * arg) / i0(beta), 0.0)

    scale = up / taps(np.arange(-half_len, half_len + 1)).sum()  # resample_poly's gain
    positions = np.asarray(positions, np.float64)
    n_in = x.shape[-2]
    reach = int(np.ceil(half_len / up)) + 1
    base = np.floor(positions).astype(np.int64)
    out = np.zeros(positions.shape + x.shape[-1:], np.float64)
    for d in range(-reach, reach + 1):
        j = base + d
        w = scale * taps(up * (positions - j))
        ok = (j >= 0) & (j < n_in) & (w != 0.0)
        if ok.any():
            out[ok] += w[ok, None] * x[j[ok]]
    return out


def frame_times(n_frames: int, rate: float, offset: float = 0.0) -> list[float]:
    """Seconds from the clip onset of the centres of ``n_frames`` frames at ``rate`` Hz.

    Frame ``k`` is centred at ``offset + k / rate`` (``offset``: the centre of frame 0).
    """
    return [round(offset + k / rate, 9) for k in range(n_frames)]
