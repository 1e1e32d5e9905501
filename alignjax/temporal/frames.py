"""Frame-wise RSA within one continuous stimulus, with nulls that respect autocorrelation.

The "conditions" are the time frames of one stimulus (e.g. a sentence), as in the
audio-LLM study: an RDM over frames of a model layer against an RDM over the same
frames of the brain response.

.. warning::
   Do not permute frames (or RDM entries) to build the null here. Neighbouring frames
   of a continuous stimulus are strongly autocorrelated in both the model and the brain,
   so they are not exchangeable: shuffled frames destroy the autocorrelation that the
   observed data keep, the null is far too narrow, and false positives are the rule.
   :func:`frame_rsa_permutation_test` compares the brain with phase-randomised
   surrogates of the model features (same autocorrelation, independent of the brain), or
   shifts the model time course circularly, or permutes whole blocks of frames longer
   than the autocorrelation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._runtime import float32_matmuls
from .._validation import InvalidOptionError, ShapeMismatchError, as_float_array, \
    check_choice, check_positive_int
from ..permutation import ALTERNATIVES, device_permutation_test
from ..rdm import METRICS, rdm, rdm_body
from ..rsa import _transform
from ..stats import rankdata_body
from .rsa import TemporalRSAResult, _check_method, compare_rows, permuted_rsa_test, \
    prepare_rows

__all__ = ["frame_rsa_permutation_test", "NULLS"]

NULLS = ("phase", "circular", "block")


@dataclasses.dataclass(frozen=True)
class _PhaseSurrogateRSA:
    """Null statistic: RSA of phase-randomised model features with the brain, (c, L*S).

    Surrogate ``k`` adds the same random phase (drawn from ``fold_in(key, k)``) at each
    frequency to every feature of every layer (Prichard & Theiler 1994): each feature
    keeps its power spectrum (its autocorrelation), features keep their
    cross-correlations, and the time course is independent of the brain's.
    """

    n: int
    metric: str
    method: Any

    def __call__(self, data, ids):
        F, B, key = data                                   # F: rfft of (L, n, f) over frames
        n = self.n

        def one(i):
            k = F.shape[1]
            phi = jax.random.uniform(jax.random.fold_in(key, i), (k,), maxval=2 * jnp.pi)
            phi = phi.at[0].set(0.0)
            Z = jnp.fft.irfft(F * jnp.exp(1j * phi)[None, :, None], n=n, axis=1)
            R = rdm_body(Z, self.metric, triangle=False)   # (L, n_pairs)
            if callable(self.method):
                return self.method(R, B)
            if self.method in ("spearman", "rho_a"):
                R = rankdata_body(R)
            return _transform(R, self.method) @ B.T
        return jax.vmap(one)(ids).reshape(ids.shape[0], -1)


@float32_matmuls
def frame_rsa_permutation_test(model_frames, brain_frames, *, metric: str = "correlation",
                               brain_metric: str = "correlation", method="spearman",
                               n_perm: int = 1000, null: str = "phase",
                               min_shift: int | None = None, block: int | None = None,
                               seed: int = 0, alternative: str = "greater",
                               chunk_size: int = 16, devices: int | None = None
                               ) -> TemporalRSAResult:
    """RSA over the frames of one continuous stimulus, tested against an autocorrelation-
    respecting null; family-wise over layers x subjects (max statistic).

    Parameters
    ----------
    model_frames : array, shape (n_layers, n_frames, n_features)
        Each layer's features per frame (frames aligned with the brain's samples).
    brain_frames : array, shape (n_subjects, n_frames, n_channels)
        Each subject's response per frame.
    metric, brain_metric : str
        RDM distances (:func:`alignjax.rdm`) for the model and the brain.
    method : str or callable
        As :func:`alignjax.temporal_rsa`.
    n_perm : int
    null : {"phase", "circular", "block"}
        ``"phase"`` (default): phase-randomised surrogates of the model features (same
        power spectrum, so the same autocorrelation, and the same cross-feature
        correlations), RDMs recomputed per surrogate. ``"circular"``: the model time
        course shifted circularly by a random number of frames in ``[min_shift,
        n_frames - min_shift]`` (default ``min_shift``: ``n_frames // 10``, at least 1).
        ``"block"``: blocks of ``block`` consecutive frames (default ``n_frames // 10``)
        put in a random order. Shifts and block orders relabel the frames of the model
        RDM, which keeps most of the autocorrelation but not all of it (pairs across the
        wrap-around point or across blocks lose their temporal proximity): with
        autocorrelation long relative to the stimulus they are liberal, and ``"phase"``
        is the one to use.
    seed : int
        Relabelling ``k`` is drawn from ``fold_in(PRNGKey(seed), k)``.
    alternative : {"greater", "less", "two-sided"}

    Returns
    -------
    TemporalRSAResult
        Cells (n_layers, n_subjects, 1).
    """
    method = _check_method(method)
    check_choice(null, "null", NULLS)
    check_choice(alternative, "alternative", ALTERNATIVES)
    check_choice(metric, "metric", METRICS)
    check_choice(brain_metric, "brain_metric", METRICS)
    n_perm = check_positive_int(n_perm, "n_perm")
    Mf = as_float_array(model_frames, "model_frames", ndim=3)
    Bf = as_float_array(brain_frames, "brain_frames", ndim=3)
    n = Mf.shape[1]
    if Bf.shape[1] != n:
        raise ShapeMismatchError(f"model_frames has {n} frames, brain_frames {Bf.shape[1]}; "
                                 "resample them to the same frames")
    if n < 6:
        raise ShapeMismatchError(f"frame-wise RSA needs at least 6 frames, got {n}")
    default = max(1, n // 10)
    param = check_positive_int(min_shift if null == "circular" and min_shift is not None else
                               block if null == "block" and block is not None else default,
                               "min_shift" if null == "circular" else "block")
    if null == "circular" and 2 * param > n:
        raise InvalidOptionError(f"min_shift={param} leaves no shift in {n} frames")
    if null == "block" and -(-n // param) < 3:
        raise InvalidOptionError(f"block={param} gives fewer than 3 blocks in {n} frames")
    A = prepare_rows(np.asarray(rdm(Mf, metric=metric)), method)
    B = prepare_rows(np.asarray(rdm(Bf, metric=brain_metric)), method)
    shape = (Mf.shape[0], Bf.shape[0], 1)
    obs = np.asarray(compare_rows(A, B, method)).reshape(shape)
    if null == "phase":
        dt = jnp.result_type(float)
        spec = jnp.fft.rfft(jnp.asarray(Mf, dt), axis=1)
        res = device_permutation_test(_PhaseSurrogateRSA(n, metric, method),
                                      (spec, B, jax.random.PRNGKey(seed)), obs.reshape(-1),
                                      n_perm=n_perm, alternative=alternative,
                                      chunk_size=chunk_size, devices=devices)
        empty = np.zeros((0,) + shape, bool)
        return TemporalRSAResult(obs, np.asarray(res.p).reshape(shape),
                                 np.asarray(res.p_fwe).reshape(shape), empty, np.zeros(0),
                                 np.zeros(0), None, n_perm, False)
    return permuted_rsa_test(A, B, obs, shape, n=n, method=method, scheme=null, param=param,
                             n_perm=n_perm, seed=seed, alternative=alternative,
                             correction="max", cluster_threshold=None, chunk_size=chunk_size,
                             devices=devices)
