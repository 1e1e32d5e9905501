"""Calibration of :func:`alignjax.frame_rsa_permutation_test` in its hard regime.

Independent model and brain frames of one stimulus, 60 frames, AR(1) up to 0.95 in every
model feature and brain channel (started from the stationary distribution). Before this
null, the rate of p < 0.05 was 0.34 / 0.68 (``"phase"``), 0.45 / 0.82 (``"circular"``) and
0.99 / 1.0 (``"block"`` over one series) at AR 0.9 / 0.95; the bounds below fail those by
far. Counts are held to an exact binomial bound at the attainable size of p < 0.05
(:mod:`tests.calibration._binomial`): 150 sets in CI (a true rate of 0.2 passes with
probability < 0.001, the old nulls' 0.34 with < 1e-10), 1,000 sets per setting in the
slow variant (a true rate of 0.085 passes with probability < 0.002).
"""

import math

import numpy as np
import pytest

import alignjax as aj
from tests.calibration._binomial import attainable_size, false_pass, fwer_ok

N_PERM = 99
SIZE = attainable_size(N_PERM + 1)


def _ar1(rng, shape, phi):
    e = rng.standard_normal(shape)
    out = np.empty(shape)
    out[..., 0, :] = e[..., 0, :] / np.sqrt(1 - phi ** 2)
    for t in range(1, shape[-2]):
        out[..., t, :] = phi * out[..., t - 1, :] + e[..., t, :]
    return out


def _ar_rejections(phi, n_sets, *, seed, layers=1, subjects=1, frames=60):
    rng = np.random.default_rng(seed)
    hits = []
    for ds in range(n_sets):
        mf = _ar1(rng, (layers, frames, 20), phi)
        bf = _ar1(rng, (subjects, frames, 16), phi)
        res = aj.frame_rsa_permutation_test(mf, bf, n_perm=N_PERM, seed=ds)
        hits.append(bool((res.p_fwe < 0.05).any()))
    return np.asarray(hits)


def test_the_bounds_fail_the_old_nulls():
    """150 sets at the attainable size: the old nulls' rates (0.34 and up) would pass
    with probability < 1e-10, a rate of 0.2 with < 0.001."""
    assert false_pass(150, SIZE, 0.34) < 1e-10
    assert false_pass(150, SIZE, 0.2) < 0.001


@pytest.mark.parametrize("phi", [0.9, 0.95])
def test_ar_null_holds_its_level_at_strong_autocorrelation(phi):
    fwer_ok(_ar_rejections(phi, 150, seed=int(phi * 100)), SIZE)


def test_ar_null_family_wise_over_layers_and_subjects():
    """Max-statistic FWE over 3 layers (different autocorrelations) x 2 subjects."""
    rng = np.random.default_rng(5)
    hits = []
    for ds in range(150):
        mf = np.concatenate([_ar1(rng, (1, 60, 20), phi) for phi in (0.3, 0.8, 0.95)])
        bf = _ar1(rng, (2, 60, 16), 0.9)
        hits.append(bool((aj.frame_rsa_permutation_test(mf, bf, n_perm=N_PERM, seed=ds)
                          .p_fwe < 0.05).any()))
    fwer_ok(hits, SIZE)


def test_ar_null_detects_a_shared_signal():
    """Power: brain channels are a noisy mixture of the model's features (AR 0.9)."""
    rng = np.random.default_rng(8)
    ps = []
    for ds in range(20):
        mf = _ar1(rng, (1, 60, 20), 0.9)
        bf = mf[:, :, :16] @ rng.standard_normal((16, 16)) + 2 * _ar1(rng, (1, 60, 16), 0.9)
        ps.append(aj.frame_rsa_permutation_test(mf, bf, n_perm=N_PERM, seed=ds).p[0, 0, 0])
    assert np.mean(np.asarray(ps) < 0.05) >= 0.8


def _units(rng, units, length, width, phi):
    return np.concatenate([_ar1(rng, (1, length, width), phi) for _ in range(units)], axis=1)


@pytest.mark.parametrize("units,length", [(4, 15), (6, 10)])
def test_block_null_over_independent_units_holds_its_level(units, length):
    """Independent stimuli one after another, AR 0.95 within each: every order of 4 units
    (exact, 24 orders) or 99 random orders of 6."""
    rng = np.random.default_rng(units)
    hits = []
    for ds in range(150):
        mf, bf = _units(rng, units, length, 20, 0.95), _units(rng, units, length, 16, 0.95)
        res = aj.frame_rsa_permutation_test(mf, bf, n_perm=N_PERM, seed=ds, null="block",
                                            block=length)
        hits.append(bool(res.p[0, 0, 0] < 0.05))
    m = math.factorial(units) if math.factorial(units) <= N_PERM else N_PERM + 1
    fwer_ok(hits, attainable_size(m))


@pytest.mark.slow
@pytest.mark.parametrize("phi", [0.5, 0.9, 0.95])
def test_ar_null_holds_its_level_slow(phi):
    assert false_pass(1000, SIZE, 0.085) < 0.002
    fwer_ok(_ar_rejections(phi, 1000, seed=1000 + int(phi * 100)), SIZE)
