"""delay_features against voxelwise_tutorials' Delayer (the himalaya tutorials' delayer) and
MNE's receptive-field delaying, plus its run-boundary rule and input errors."""

import numpy as np
import pytest

import alignjax
from alignjax.errors import AlignjaxInputError, InvalidOptionError, ShapeMismatchError
from tests._compat import enable_x64

DELAYS = [-2, 0, 1, 3]


def _mne_delay(X, delays):
    rf = pytest.importorskip("mne.decoding.receptive_field")
    # MNE: (n_times[, n_epochs], n_features, n_delays) from tmin/tmax at sfreq 1
    return rf._delay_time_series(X, float(min(delays)), float(max(delays)), 1.0)


def test_one_run_equals_voxelwise_delayer_and_mne(rng):
    X = rng.standard_normal((17, 3))
    with enable_x64(True):
        out = np.asarray(alignjax.delay_features(X, DELAYS))
    full = list(range(min(DELAYS), max(DELAYS) + 1))
    with enable_x64(True):
        out_full = np.asarray(alignjax.delay_features(X, full))
    mne = _mne_delay(X, full)  # (n, p, n_delays): feature-major columns
    np.testing.assert_array_equal(out_full, mne.transpose(0, 2, 1).reshape(17, -1))
    # voxelwise_tutorials is not a declared extra (its requirements pull pycortex, datalad)
    Delayer = pytest.importorskip("voxelwise_tutorials.delayer").Delayer
    np.testing.assert_array_equal(out, Delayer(delays=DELAYS).fit_transform(X))


def test_runs_equal_mne_epochs_and_per_run_delayer(rng):
    n_run, n_ep, p = 9, 3, 2
    X = rng.standard_normal((n_run * n_ep, p))
    runs = np.repeat(["a", "b", "c"], n_run)
    full = list(range(-2, 4))
    with enable_x64(True):
        out = np.asarray(alignjax.delay_features(X, full, runs=runs))
    # MNE delays each epoch (axis 1) separately, zero at the epoch's edges
    ep = X.reshape(n_ep, n_run, p).transpose(1, 0, 2)  # (n_times, n_epochs, p)
    mne = _mne_delay(ep, full).transpose(1, 0, 3, 2).reshape(n_ep * n_run, -1)
    np.testing.assert_array_equal(out, mne)
    Delayer = pytest.importorskip("voxelwise_tutorials.delayer").Delayer
    ref = np.concatenate([Delayer(delays=full).fit_transform(X[r * n_run:(r + 1) * n_run])
                          for r in range(n_ep)])
    np.testing.assert_array_equal(out, ref)


def test_no_lag_crosses_a_run_boundary():
    X = np.arange(1.0, 11.0)[:, None]
    runs = [0] * 4 + [1] * 6
    out = np.asarray(alignjax.delay_features(X, [2, -1], runs=runs))
    np.testing.assert_array_equal(out[:, 0], [0, 0, 1, 2, 0, 0, 5, 6, 7, 8])
    np.testing.assert_array_equal(out[:, 1], [2, 3, 4, 0, 6, 7, 8, 9, 10, 0])
    assert out.dtype == np.float32


@pytest.mark.parametrize("delays, runs, err, match", [
    ([0, 5], [0] * 5 + [1] * 7, AlignjaxInputError, "run 0"),
    ([0, -7], [0] * 5 + [1] * 7, AlignjaxInputError, "as long as"),
    ([0, 1.5], None, InvalidOptionError, "integers"),
    ([1, 1], None, InvalidOptionError, "repeat"),
    ([], None, InvalidOptionError, "non-empty"),
    ([0, 1], [0] * 11, ShapeMismatchError, r"\(12,\)"),
    ([0, 1], [0] * 3 + [1] * 6 + [0] * 3, AlignjaxInputError, "contiguous"),
])
def test_bad_inputs(delays, runs, err, match):
    with pytest.raises(err, match=match):
        alignjax.delay_features(np.ones((12, 2)), delays, runs=runs)
