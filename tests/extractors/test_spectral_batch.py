"""Batched spectral baselines: same bytes alone or batched; fast modulation = direct 2-D form."""

import numpy as np
import pytest

from extractors.spectral import (HOP, MODULATION_RATES, MODULATION_SCALES, SpectralExtractor,
                                 _log_frequency_spectrogram, _one_sided_gaussian,
                                 modulation_energy, modulation_fft_lengths)

SR = 16000


def _direct_modulation(wave):
    """The filterbank as a 2-D inverse FFT per (scale, rate, direction): the definition."""
    spec = _log_frequency_spectrogram(wave, SR)
    spec = spec - spec.mean()
    n_f, n_t = spec.shape
    pf, pt = modulation_fft_lengths(n_f, n_t)
    assert pf >= 2 * n_f and pt >= 2 * n_t
    big = np.fft.fft2(spec, s=(pf, pt))
    u = np.fft.fftfreq(pf, d=1.0 / 12)
    v = np.fft.fftfreq(pt, d=HOP / SR)
    out = np.empty((len(MODULATION_SCALES), len(MODULATION_RATES), 2, n_f))
    for i, om in enumerate(MODULATION_SCALES):
        for j, rate in enumerate(MODULATION_RATES):
            for d, sign in enumerate((-1.0, 1.0)):
                h = _one_sided_gaussian(u, om)[:, None] * _one_sided_gaussian(sign * v, rate)[None]
                out[i, j, d] = (np.abs(np.fft.ifft2(big * h)[:n_f, :n_t]) ** 2).mean(axis=1)
    return out


def test_separable_modulation_equals_direct_2d_filtering():
    rng = np.random.default_rng(0)
    t = np.arange(SR // 2) / SR
    wave = ((1 + 0.8 * np.sin(2 * np.pi * 4 * t)) * rng.standard_normal(len(t))).astype(np.float32)
    got = modulation_energy(wave)
    want = _direct_modulation(wave)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * want.max())


@pytest.mark.parametrize("kind", SpectralExtractor.KINDS)
def test_batched_forward_gives_the_bytes_of_single_clips(kind):
    rng = np.random.default_rng(1)
    waves = (0.1 * rng.standard_normal((5, 9000))).astype(np.float32)
    waves[2, 3000:] = 0.0  # digital silence (subnormal powers)
    ext = SpectralExtractor(kind)
    names = ext.layer_names()
    batch = ext.forward(waves, names)
    for i in range(len(waves)):
        alone = ext.forward(waves[i:i + 1], names)
        for name in names:
            assert np.array_equal(batch[name][i], alone[name][0]), (kind, name, i)
