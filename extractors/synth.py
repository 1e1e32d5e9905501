"""A deterministic, labelled stimulus generator for the demo and the tests.

Categories (cycled in this order, so any ``n >= 7`` covers every one):

``impact``
    Modal synthesis of struck objects in the spirit of the PRISM set: a sum of exponentially
    decaying sinusoids whose frequency ratios follow the object's spatial extension (1D
    free bar, 2D plate, 3D block), whose decay rates follow the material's loss factor
    (decay rate = pi * f * eta, so damping grows with frequency as in real solids), and
    whose spectrum is lowered, densified and made to ring longer by hollowness (plus a
    low cavity resonance). Materials: wood, metal, glass, stone, plastic, ceramic,
    cardboard.
``harmonic``
    Harmonic complex tones, f0 log-uniform over 110-880 Hz.
``noise``
    White, pink or brown noise bursts.
``chirp``
    Exponential sweeps up or down between 200 Hz and 4 kHz.
``am`` / ``fm``
    Amplitude- (2-32 Hz) and frequency-modulated (2-16 Hz) tones.
``clicks``
    Click trains at 5-100 Hz.
``speech``
    Spoken words from espeak-ng, only when the ``espeak-ng`` program is installed.

Item ``i`` draws its parameters from ``numpy.random.default_rng([seed, i])``, so the set
is reproducible and item ``i`` does not depend on ``n``. Output: ``<id>.wav`` files
(16-bit PCM) and ``labels.csv`` with columns ``id, path, category`` and the labels below
(empty where they do not apply), directly usable as ``--stimuli``.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from alignjax.errors import check_positive_int

__all__ = ["synthesize", "synth_item", "impact_sound", "CATEGORIES", "MATERIALS",
           "LABEL_COLUMNS", "espeak_available"]

# material: (fundamental range Hz, loss factor eta, spectral tilt exponent)
MATERIALS = {
    "wood": ((250.0, 900.0), 0.012, 1.4),
    "metal": ((300.0, 1500.0), 0.0006, 0.6),
    "glass": ((700.0, 2500.0), 0.0012, 0.8),
    "stone": ((400.0, 1600.0), 0.006, 1.0),
    "plastic": ((250.0, 1000.0), 0.02, 1.2),
    "ceramic": ((500.0, 2000.0), 0.002, 0.9),
    "cardboard": ((150.0, 600.0), 0.06, 1.6),
}
EXTENSIONS = (1, 2, 3)
CATEGORIES_BASE = ("impact", "harmonic", "noise", "chirp", "am", "fm", "clicks")
LABEL_COLUMNS = ("id", "path", "category", "material", "hollow", "extension", "f0_hz",
                 "rate_hz", "direction", "color", "text")
_WORDS = ("water", "seven", "morning", "yellow", "garden", "music", "river", "window",
          "paper", "silver", "thunder", "happy")
_VOICES = ("en", "en+f3", "en+m3", "en-us")


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


CATEGORIES = CATEGORIES_BASE + (("speech",) if espeak_available() else ())


def _mode_ratios(extension: int, n_modes: int, rng) -> np.ndarray:
    if extension == 1:  # free-free Euler-Bernoulli bar: beta_k L = (2k+1) pi / 2 (approx.)
        beta = np.array([4.7300, 7.8532, 10.9956] +
                        [(2 * k + 1) * np.pi / 2 for k in range(4, n_modes + 1)])
        r = (beta[:n_modes] / beta[0]) ** 2
    elif extension == 2:  # rectangular plate: f ~ (m/a)^2 + (n/b)^2
        aspect = rng.uniform(1.0, 1.6)
        mn = [(m, n) for m in range(1, 8) for n in range(1, 8)]
        r = np.sort([m ** 2 + (n * aspect) ** 2 for m, n in mn])[:n_modes]
        r = r / r[0]
    else:  # 3-D block: f ~ sqrt((l/a)^2 + (m/b)^2 + (n/c)^2)
        a, b = rng.uniform(1.0, 1.5, size=2)
        lmn = [(l, m, n) for l in range(4) for m in range(4) for n in range(4) if l + m + n > 0]
        r = np.sort([np.sqrt(l ** 2 + (m * a) ** 2 + (n * b) ** 2) for l, m, n in lmn])[:n_modes]
        r = r / r[0]
    return np.asarray(r, float)


def impact_sound(material: str, *, hollow: bool, extension: int, sample_rate: int = 16000,
                 duration: float = 1.0, seed: int = 0) -> tuple[np.ndarray, float]:
    """One modal impact sound; returns (waveform, fundamental in Hz)."""
    rng = np.random.default_rng(seed)
    (f_lo, f_hi), eta, tilt = MATERIALS[material]
    f0 = float(np.exp(rng.uniform(np.log(f_lo), np.log(f_hi))))
    n_modes = 12
    ratios = _mode_ratios(extension, n_modes, rng)
    if hollow:  # thin walls: lower, denser spectrum that rings longer, plus a cavity mode
        f0 *= 0.6
        ratios = np.sort(np.concatenate([ratios, ratios[:-1] * rng.uniform(1.05, 1.2, n_modes - 1)]))
        eta = eta * 0.5
    ratios = ratios * (1 + rng.normal(0, 0.01, ratios.shape))  # small mistuning
    freqs = f0 * ratios
    freqs = freqs[freqs < 0.45 * sample_rate]
    t = np.arange(int(round(duration * sample_rate))) / sample_rate
    amps = rng.uniform(0.5, 1.0, freqs.shape) / np.arange(1, freqs.size + 1) ** tilt
    decay = np.pi * freqs * eta + 3.0  # + radiation/support losses
    phases = rng.uniform(0, 2 * np.pi, freqs.shape)
    x = (amps[:, None] * np.exp(-decay[:, None] * t) *
         np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])).sum(axis=0)
    if hollow:
        fc = f0 * 0.35
        x += 0.4 * amps[0] * np.exp(-(np.pi * fc * eta * 4 + 8.0) * t) * np.sin(2 * np.pi * fc * t)
    # contact transient: a few ms of decaying noise
    n_click = int(0.004 * sample_rate)
    x[:n_click] += 0.3 * rng.standard_normal(n_click) * np.exp(-np.arange(n_click) / (n_click / 4))
    x *= np.minimum(1.0, t / 0.001 + 1e-3)  # 1 ms onset ramp
    return x, f0


def _envelope(n: int, sample_rate: int, attack: float = 0.01, release: float = 0.05) -> np.ndarray:
    t = np.arange(n) / sample_rate
    return np.minimum(1.0, np.minimum(t / attack, (t[-1] - t) / release + 1e-9)).clip(0, 1)


def _coloured_noise(n: int, colour: str, rng) -> np.ndarray:
    white = rng.standard_normal(n)
    if colour == "white":
        return white
    spec = np.fft.rfft(white)
    f = np.arange(spec.size, dtype=float)
    f[0] = 1.0
    spec /= np.sqrt(f) if colour == "pink" else f
    return np.fft.irfft(spec, n)


def _espeak(word: str, voice: str, sample_rate: int, n: int) -> np.ndarray:
    from .audio import load_audio

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), word],
                       check=True, capture_output=True)
        w = load_audio(path, sample_rate=sample_rate).astype(float)
    return w[:n] if w.size >= n else np.pad(w, (0, n - w.size))


def _item(i: int, seed: int, sample_rate: int, duration: float, categories) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng([seed, i])
    cat = categories[i % len(categories)]
    n = int(round(duration * sample_rate))
    t = np.arange(n) / sample_rate
    lab = {"category": cat}
    if cat == "impact":
        k = i // len(categories)
        material = list(MATERIALS)[k % len(MATERIALS)]
        hollow = bool((k // len(MATERIALS)) % 2)
        extension = EXTENSIONS[(k // (2 * len(MATERIALS))) % 3]
        x, f0 = impact_sound(material, hollow=hollow, extension=extension,
                             sample_rate=sample_rate, duration=duration,
                             seed=int(rng.integers(2**31)))
        lab.update(material=material, hollow=int(hollow), extension=extension, f0_hz=round(f0, 3))
    elif cat == "harmonic":
        f0 = float(np.exp(rng.uniform(np.log(110), np.log(880))))
        ks = np.arange(1, int(0.45 * sample_rate / f0) + 1)
        x = (np.sin(2 * np.pi * f0 * ks[:, None] * t) / ks[:, None]).sum(0) * _envelope(n, sample_rate)
        lab.update(f0_hz=round(f0, 3))
    elif cat == "noise":
        colour = ("white", "pink", "brown")[int(rng.integers(3))]
        x = _coloured_noise(n, colour, rng) * _envelope(n, sample_rate)
        lab.update(color=colour)
    elif cat == "chirp":
        up = bool(rng.integers(2))
        f_a, f_b = (200.0, 4000.0) if up else (4000.0, 200.0)
        k = np.log(f_b / f_a) / duration
        phase = 2 * np.pi * f_a * (np.exp(k * t) - 1) / k
        x = np.sin(phase) * _envelope(n, sample_rate)
        lab.update(direction="up" if up else "down")
    elif cat == "am":
        rate = float(np.exp(rng.uniform(np.log(2), np.log(32))))
        fc = float(rng.uniform(400, 2000))
        x = (1 + np.sin(2 * np.pi * rate * t)) / 2 * np.sin(2 * np.pi * fc * t) * _envelope(n, sample_rate)
        lab.update(rate_hz=round(rate, 3), f0_hz=round(fc, 3))
    elif cat == "fm":
        rate = float(np.exp(rng.uniform(np.log(2), np.log(16))))
        fc = float(rng.uniform(500, 2000))
        depth = 0.2 * fc
        x = np.sin(2 * np.pi * fc * t - depth / rate * np.cos(2 * np.pi * rate * t)) * _envelope(n, sample_rate)
        lab.update(rate_hz=round(rate, 3), f0_hz=round(fc, 3))
    elif cat == "clicks":
        rate = float(np.exp(rng.uniform(np.log(5), np.log(100))))
        x = np.zeros(n)
        x[(np.arange(0, duration, 1 / rate) * sample_rate).astype(int)] = 1.0
        lab.update(rate_hz=round(rate, 3))
    else:  # speech
        word = _WORDS[int(rng.integers(len(_WORDS)))]
        voice = _VOICES[int(rng.integers(len(_VOICES)))]
        x = _espeak(word, voice, sample_rate, n)
        lab.update(text=word)
    peak = np.max(np.abs(x))
    x = 0.5 * x / peak if peak > 0 else x
    return x.astype(np.float32), lab


def synth_item(i: int, *, seed: int, sample_rate: int, duration: float,
               category: str) -> tuple[np.ndarray, dict]:
    """Item ``i`` of one category as :func:`synthesize` draws it: ``(waveform, labels)``.

    Used as the dry sources of the spatial scenes (:mod:`extractors.spatial`).
    """
    if category not in CATEGORIES_BASE + ("speech",):
        from alignjax.errors import InvalidOptionError

        raise InvalidOptionError(f"unknown category {category!r}; choose from "
                                 f"{', '.join(CATEGORIES_BASE + ('speech',))}")
    return _item(i, seed, sample_rate, duration, (category,))


def synthesize(out, *, n: int = 56, seed: int = 0, sample_rate: int = 16000,
               duration: float = 1.0, speech: bool | None = None,
               categories=None) -> Path:
    """Write ``n`` labelled stimuli and ``labels.csv`` to ``out``; return the CSV path.

    Parameters
    ----------
    out : str or Path
        Output folder (created).
    n : int
        Number of stimuli; categories are cycled, impact sounds step through
        material x hollowness x extension.
    seed : int
        Item ``i`` uses ``default_rng([seed, i])``.
    sample_rate : int
    duration : float
        Seconds per stimulus.
    speech : bool, optional
        Include espeak-ng speech (default: when espeak-ng is installed).
    categories : sequence of str, optional
        Only these categories (cycled in the given order); overrides ``speech``.
    """
    import soundfile as sf

    n = check_positive_int(n, "n")
    check_positive_int(sample_rate, "sample_rate", minimum=8000)
    if speech is None:
        speech = espeak_available()
    if speech and not espeak_available() and categories is None:
        from alignjax.errors import InvalidOptionError

        raise InvalidOptionError("speech stimuli need the espeak-ng program (apt-get install espeak-ng)")
    cats = CATEGORIES_BASE + (("speech",) if speech else ())
    if categories is not None:
        from alignjax.errors import InvalidOptionError

        cats = tuple(categories)
        bad = [c for c in cats if c not in CATEGORIES_BASE + ("speech",)]
        if bad or not cats:
            raise InvalidOptionError(
                f"unknown categories {bad}; choose from {', '.join(CATEGORIES_BASE + ('speech',))}")
        if "speech" in cats and not espeak_available():
            raise InvalidOptionError("speech stimuli need the espeak-ng program (apt-get install espeak-ng)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        x, lab = _item(i, seed, sample_rate, duration, cats)
        sid = f"{i:04d}_{lab['category']}"
        sf.write(str(out / f"{sid}.wav"), x, sample_rate, subtype="PCM_16")
        rows.append({"id": sid, "path": f"{sid}.wav", **lab})
    csv_path = out / "labels.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(LABEL_COLUMNS), restval="")
        w.writeheader()
        w.writerows(rows)
    return csv_path
