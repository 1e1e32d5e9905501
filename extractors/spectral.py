"""Classical baselines: log-mel spectrogram, MFCCs, spectro-temporal modulation energy.

``spectral:modulation`` follows the cortical model of Chi, Ru & Shamma (2005, JASA 118:887):
a log-frequency (constant-Q) spectrogram is filtered with 2-D Gabor-like filters tuned to
spectral scales (cycles/octave) and temporal rates (Hz), separately for upward and downward
sweeps (the two signs of the rate), and the squared filter outputs are averaged over time.
The filtering is done in the 2-D Fourier domain with one-quadrant Gaussian transfer
functions, so each output is an analytic (complex) signal whose squared magnitude is the
local modulation energy. Pepino et al. use this representation as a baseline.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from alignjax.errors import InvalidOptionError

from .spec import Extractor

__all__ = ["SpectralExtractor", "log_mel", "mfcc", "modulation_energy", "MODULATION_SCALES",
           "MODULATION_RATES"]

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 160  # 10 ms
N_MELS = 64
N_MFCC = 20
# modulation filterbank
CQT_FMIN = 100.0
CQT_BINS_PER_OCTAVE = 12
CQT_N_BINS = 72  # 6 octaves: 100 Hz .. 6.4 kHz
MODULATION_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)  # cycles / octave
MODULATION_RATES = (2.0, 4.0, 8.0, 16.0, 32.0)  # Hz
_REL_BANDWIDTH = 1.0 / 3.0  # Gaussian sd as a fraction of the centre modulation frequency
# every parameter of the baselines, passed explicitly (not librosa's defaults) and recorded
MEL_PARAMS = dict(n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, window="hann", center=True,
                  pad_mode="constant", power=2.0, n_mels=N_MELS, fmin=0.0, htk=False,
                  norm="slaney")  # fmax: sample_rate / 2
DB_PARAMS = dict(ref=1.0, amin=1e-10, top_db=None)  # power_to_db
MFCC_PARAMS = dict(n_mfcc=N_MFCC, dct_type=2, norm="ortho", lifter=0)
CQT_PARAMS = dict(hop_length=HOP, fmin=CQT_FMIN, n_bins=CQT_N_BINS,
                  bins_per_octave=CQT_BINS_PER_OCTAVE, tuning=0.0, filter_scale=1, norm=1,
                  sparsity=0.01, window="hann", scale=True, pad_mode="constant",
                  res_type="soxr_hq")
CQT_DB_PARAMS = dict(ref=1.0, amin=1e-5, top_db=None)  # amplitude_to_db


@functools.lru_cache(maxsize=8)
def _mel_basis(sample_rate: int) -> np.ndarray:
    import librosa

    p = MEL_PARAMS
    return librosa.filters.mel(sr=sample_rate, n_fft=p["n_fft"], n_mels=p["n_mels"],
                               fmin=p["fmin"], fmax=sample_rate / 2, htk=p["htk"],
                               norm=p["norm"])


def log_mel(wave: np.ndarray, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Log-mel spectrogram in dB, shape (n_frames, 64); 25 ms-ish windows, 10 ms hop.

    ``librosa.feature.melspectrogram`` with :data:`MEL_PARAMS`, then ``power_to_db``: the
    power STFT (``librosa.stft``) times librosa's mel filterbank, as a matrix product per
    clip (librosa's ``einsum`` takes a slow path on STFT outputs). ``wave`` may hold a batch
    of equal-length clips, shape (batch, n_samples) -> (batch, n_frames, 64); every clip
    gives the same bytes alone or in a batch.
    """
    import librosa

    p = MEL_PARAMS
    stft = librosa.stft(np.asarray(wave, np.float32), n_fft=p["n_fft"],
                        hop_length=p["hop_length"], win_length=p["win_length"],
                        window=p["window"], center=p["center"], pad_mode=p["pad_mode"])
    power = np.abs(stft) ** p["power"]
    # subnormal powers (digital silence) make the matrix product crawl; they are far
    # below amin = 1e-10 of power_to_db and below one ulp of any mel value above it, so
    # zeroing them leaves every output byte unchanged
    power[power < 1e-30] = 0.0
    basis = _mel_basis(sample_rate)
    if power.ndim == 2:
        mel = basis @ np.ascontiguousarray(power)
    else:
        mel = np.stack([basis @ np.ascontiguousarray(x) for x in power])
    return np.swapaxes(librosa.power_to_db(mel, **DB_PARAMS), -1, -2).astype(np.float32)


def mfcc(wave: np.ndarray, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """MFCCs (DCT-II of the log-mel spectrogram), shape (n_frames, 20) (batch: leading axis)."""
    import librosa

    db = log_mel(wave, sample_rate=sample_rate)
    if db.ndim == 2:
        return librosa.feature.mfcc(S=db.T, **MFCC_PARAMS).T.astype(np.float32)
    return np.stack([librosa.feature.mfcc(S=np.ascontiguousarray(d.T), **MFCC_PARAMS).T
                     for d in db]).astype(np.float32)


def _log_frequency_spectrogram(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """CQT in dB, (n_bins, n_frames); a batch (batch, n_samples) gives (batch, n_bins, n_frames)
    with the same bytes per clip as alone (librosa's CQT runs over the leading axes)."""
    import librosa

    c = np.abs(librosa.cqt(wave, sr=sample_rate, **CQT_PARAMS))
    return librosa.amplitude_to_db(c, **CQT_DB_PARAMS)


def _one_sided_gaussian(freqs: np.ndarray, centre: float) -> np.ndarray:
    g = np.exp(-0.5 * ((freqs - centre) / (_REL_BANDWIDTH * centre)) ** 2)
    return np.where(freqs > 0, g, 0.0)


def modulation_energy(wave: np.ndarray, *, sample_rate: int = SAMPLE_RATE,
                      scales: Sequence[float] = MODULATION_SCALES,
                      rates: Sequence[float] = MODULATION_RATES) -> np.ndarray:
    """Spectro-temporal modulation energy averaged over time.

    Returns
    -------
    ndarray, shape (n_scales, n_rates, 2, n_freq_bins)
        Axis 2: upward (index 0) and downward (index 1) sweeps.
    """
    spec = _log_frequency_spectrogram(wave, sample_rate)
    return _modulation_of(spec, sample_rate=sample_rate, scales=scales, rates=rates)


def modulation_fft_lengths(n_f: int, n_t: int) -> tuple[int, int]:
    """Zero-padded FFT lengths of a (n_f, n_t) spectrogram for the modulation filters.

    At least twice each axis (no circular wrap-around of the filters; 64 frames at least),
    rounded up to a length the FFT computes fast (:func:`scipy.fft.next_fast_len`).
    """
    from scipy.fft import next_fast_len

    return next_fast_len(2 * n_f), next_fast_len(max(2 * n_t, 64))


def _modulation_of(spec: np.ndarray, *, sample_rate: int, scales: Sequence[float],
                   rates: Sequence[float]) -> np.ndarray:
    """Modulation energy of one log-frequency spectrogram (n_bins, n_frames).

    The transfer functions are separable (``hu(scale) * hv(rate)``), so the inverse 2-D
    FFT is done as an inverse FFT over time per rate and direction (cropped to the clip's
    frames) and then one over frequency per scale: the same result as ``ifft2`` of the
    filtered spectrum, in a fraction of the operations. FFTs in complex64 (the output is
    float32), over lengths that are fast for the FFT (:func:`modulation_fft_lengths`).
    """
    from scipy import fft

    spec = spec - spec.mean()  # the DC term carries no modulation
    n_f, n_t = spec.shape
    pf, pt = modulation_fft_lengths(n_f, n_t)
    big = fft.fft2(spec.astype(np.float32), s=(pf, pt))
    u = np.fft.fftfreq(pf, d=1.0 / CQT_BINS_PER_OCTAVE)  # cycles / octave
    v = np.fft.fftfreq(pt, d=HOP / sample_rate)  # Hz
    hus = np.stack([_one_sided_gaussian(u, omega) for omega in scales])[:, :, None]
    hus = hus.astype(np.float32)
    out = np.empty((len(scales), len(rates), 2, n_f), dtype=np.float64)
    for j, rate in enumerate(rates):
        for d, sign in enumerate((-1.0, 1.0)):
            # spectral and temporal frequency of opposite sign: energy moving up in
            # frequency over time (upward sweep); same sign: downward
            hv = _one_sided_gaussian(sign * v, rate)[None, :].astype(np.float32)
            over_time = fft.ifft(big * hv, axis=1)[:, :n_t]  # (pf, n_t)
            resp = fft.ifft(hus * over_time[None], axis=1)[:, :n_f]  # (n_scales, n_f, n_t)
            out[:, j, d] = (np.abs(resp) ** 2).mean(axis=2)
    return out.astype(np.float32)


class SpectralExtractor(Extractor):
    """``spectral:mel``, ``spectral:mfcc``, ``spectral:modulation`` (16 kHz input).

    Layers: ``logmel`` (n_frames, 64), ``mfcc`` (n_frames, 20), and for modulation
    ``modulation`` (1, n_scales * n_rates * 2 * 72) plus ``modulation_scale_rate``
    (1, n_scales * n_rates * 2, averaged over frequency). Modulation features are already
    averaged over time, so they have a single frame, and need at least one period of the
    slowest rate (0.5 s at 2 Hz): shorter clips are refused. Log-mel and MFCC frames come
    at exactly 100 per second, frame ``m`` centred at ``m / 100`` s (centred STFT).
    """

    KINDS = ("mel", "mfcc", "modulation")

    def __init__(self, kind: str):
        if kind not in self.KINDS:
            raise InvalidOptionError(
                f"unknown spectral baseline {kind!r}; use spectral:mel, spectral:mfcc or "
                "spectral:modulation"
            )
        self.kind = kind
        self.spec = f"spectral:{kind}"
        self.sample_rate = SAMPLE_RATE
        self.min_samples = (N_FFT if kind != "modulation"
                            else int(np.ceil(SAMPLE_RATE / min(MODULATION_RATES))))
        self.max_samples = None

    def layer_names(self) -> list[str]:
        return {"mel": ["logmel"], "mfcc": ["mfcc"],
                "modulation": ["modulation", "modulation_scale_rate"]}[self.kind]

    def describe(self) -> dict:
        import librosa

        d = {"librosa": librosa.__version__, "n_fft": N_FFT, "hop": HOP}
        if self.kind in ("mel", "mfcc"):
            d.update(melspectrogram={**MEL_PARAMS, "fmax": self.sample_rate / 2},
                     power_to_db=DB_PARAMS, n_mels=N_MELS)
        if self.kind == "mfcc":
            d.update(mfcc=MFCC_PARAMS, n_mfcc=N_MFCC)
        if self.kind == "modulation":
            d.update(fmin=CQT_FMIN, bins_per_octave=CQT_BINS_PER_OCTAVE, n_bins=CQT_N_BINS,
                     cqt=CQT_PARAMS, amplitude_to_db=CQT_DB_PARAMS,
                     scales=list(MODULATION_SCALES), rates=list(MODULATION_RATES),
                     relative_bandwidth=_REL_BANDWIDTH, min_samples=self.min_samples,
                     modulation_fft="complex64, each axis zero-padded to next_fast_len(2 n)")
        return d

    def frame_rate(self, layer: str) -> float:
        return 0.0 if self.kind == "modulation" else self.sample_rate / HOP

    def frame_offset(self, layer: str, rate: float) -> float:
        """0.0: frame ``m`` is the STFT window centred on sample ``m * HOP`` (``center=True``)."""
        return 0.0

    def forward(self, waves: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
        waves = np.asarray(waves, dtype=np.float32)
        if self.kind == "mel":  # the whole batch at once (same bytes per clip as alone)
            return {"logmel": log_mel(waves, sample_rate=self.sample_rate)}
        if self.kind == "mfcc":
            return {"mfcc": mfcc(waves, sample_rate=self.sample_rate)}
        out: dict[str, list] = {name: [] for name in layers}
        # the CQTs of the whole batch at once (same bytes per clip), the filtering per clip
        specs = _log_frequency_spectrogram(waves, self.sample_rate)
        for spec in specs:
            e = _modulation_of(spec, sample_rate=self.sample_rate, scales=MODULATION_SCALES,
                               rates=MODULATION_RATES)
            if "modulation" in out:
                out["modulation"].append(e.reshape(1, -1))
            if "modulation_scale_rate" in out:
                out["modulation_scale_rate"].append(e.mean(axis=-1).reshape(1, -1))
        return {k: np.stack(v).astype(np.float32) for k, v in out.items()}
