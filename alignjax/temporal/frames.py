"""Frame-wise RSA within one continuous stimulus, with nulls that respect autocorrelation.

The "conditions" are the time frames of one stimulus (e.g. a sentence), as in the
audio-LLM study: an RDM over frames of a model layer against an RDM over the same
frames of the brain response.

.. warning::
   Do not permute frames (or RDM entries) to build the null here. Neighbouring frames
   of a continuous stimulus are strongly autocorrelated in both the model and the brain,
   so they are not exchangeable: shuffled frames destroy the autocorrelation that the
   observed data keep, the null is far too narrow, and false positives are the rule.
   :func:`frame_rsa_permutation_test` shifts the model time course circularly (every
   relabelling keeps the order of the frames, so their autocorrelation, up to the one
   wrap-around point) or permutes whole blocks of frames longer than the
   autocorrelation.
"""

from __future__ import annotations

import numpy as np

from .._runtime import float32_matmuls
from .._validation import InvalidOptionError, ShapeMismatchError, as_float_array, \
    check_choice, check_positive_int
from ..permutation import ALTERNATIVES
from ..rdm import METRICS, rdm
from .rsa import TemporalRSAResult, _check_method, compare_rows, permuted_rsa_test, \
    prepare_rows

__all__ = ["frame_rsa_permutation_test"]


@float32_matmuls
def frame_rsa_permutation_test(model_frames, brain_frames, *, metric: str = "correlation",
                               brain_metric: str = "correlation", method="spearman",
                               n_perm: int = 1000, null: str = "circular",
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
    null : {"circular", "block"}
        ``"circular"``: the model time course shifted circularly by a random number of
        frames in ``[min_shift, n_frames - min_shift]`` (default ``min_shift``:
        ``n_frames // 10``, at least 1). ``"block"``: blocks of ``block`` consecutive
        frames (default ``n_frames // 10``) put in a random order.
    seed : int
        Relabelling ``k`` is drawn from ``fold_in(PRNGKey(seed), k)``.
    alternative : {"greater", "less", "two-sided"}

    Returns
    -------
    TemporalRSAResult
        Cells (n_layers, n_subjects, 1).
    """
    method = _check_method(method)
    check_choice(null, "null", ("circular", "block"))
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
    return permuted_rsa_test(A, B, obs, shape, n=n, method=method, scheme=null, param=param,
                             n_perm=n_perm, seed=seed, alternative=alternative,
                             correction="max", cluster_threshold=None, chunk_size=chunk_size,
                             devices=devices)
