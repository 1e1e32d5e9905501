"""Frame-wise RSA within one continuous stimulus, with nulls that respect autocorrelation.

The "conditions" are the time frames of one stimulus (e.g. a sentence), as in the
audio-LLM study: an RDM over frames of a model layer against an RDM over the same
frames of the brain response.

.. warning::
   Do not permute frames (or RDM entries) to build the null here. Neighbouring frames
   of a continuous stimulus are strongly autocorrelated in both the model and the brain,
   so they are not exchangeable: shuffled frames destroy the autocorrelation that the
   observed data keep, the null is far too narrow, and false positives are the rule.
   Circular shifts, reordered blocks of one series and phase-randomised (periodic)
   surrogates fail in the same way once the autocorrelation is long relative to the
   stimulus (false-positive rates 0.34-1.0 at AR(1) 0.9, 60 frames), so they are refused.
   :func:`frame_rsa_permutation_test` compares the brain with surrogates of the model
   features drawn from the same autocorrelated distribution (``null="ar"``), or, when
   the frames are several independent stimuli or runs one after another, permutes those
   units (``null="block"``).
"""

from __future__ import annotations

import dataclasses
import math
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

__all__ = ["frame_rsa_permutation_test", "NULLS", "ar_surrogate_basis"]

NULLS = ("ar", "block")

#: Nulls that were offered and are refused, with the reason (measured: 60 frames, AR(1)
#: 0.9 in 20 model features and 16 channels, 200 null data sets, n_perm 200).
_REFUSED = {
    "phase": "phase-randomised surrogates are periodic, so frames across the wrap-around "
             "point look alike in the surrogate and not in the data (rate of p < 0.05 of "
             "0.34 at AR(1) 0.9 and 0.68 at 0.95, 60 frames)",
    "circular": "circular shifts relabel the frames of the model RDM and break the lag "
                "structure that both RDMs share (rate of p < 0.05 of 0.45 at AR(1) 0.9 and "
                "0.82 at 0.95, 60 frames)",
}

#: Largest lag-1 autocorrelation the surrogates are built for.
_PHI_MAX = 0.995


def _lag1(M: np.ndarray) -> float:
    """Lag-1 autocorrelation pooled over the features of M (n, f), bias-corrected
    (Kendall 1954: E[r] ~ phi - (1 + 3 phi) / n), clipped to [0, _PHI_MAX]."""
    n = M.shape[0]
    X = M - M.mean(axis=0)
    den = float((X * X).sum())
    r = float((X[1:] * X[:-1]).sum()) / den if den > 0 else 0.0
    return float(np.clip(r + (1 + 3 * r) / n, 0.0, _PHI_MAX))


def ar_surrogate_basis(M, phi: float | None = None):
    """The basis of the ``null="ar"`` surrogates of one layer's frames M (n, f).

    Under a stationary AR(1) model with coefficient ``phi`` (default: the pooled, bias-
    corrected lag-1 autocorrelation of M) the frames have covariance ``S = toeplitz(
    phi ** k)``. M splits into its GLS mean ``m = w' M`` (``w = S^-1 1 / 1' S^-1 1``)
    and a residual whose covariance ``S - 1 1' / (1' S^-1 1)`` has eigenvectors ``V``
    (n - 1 of them); the coordinates ``C = V' (M - m)`` are then independent across
    eigenvectors with a distribution symmetric about 0, so flipping their signs (the
    same flips for every feature) draws a new series from the same distribution: the
    same autocorrelation, the same cross-feature correlations and no periodicity.

    Returns ``(m, V, C, phi)``: m (f,), V (n, n - 1), C (n - 1, f), all float64.
    """
    M = np.asarray(M, np.float64)
    n = M.shape[0]
    if phi is None:
        phi = _lag1(M)
    from scipy.linalg import eigh, toeplitz

    S = toeplitz(phi ** np.arange(n))
    s1 = np.linalg.solve(S, np.ones(n))
    w = s1 / s1.sum()
    ev, V = eigh(S - 1.0 / s1.sum())
    V = V[:, np.argsort(ev)[::-1][:n - 1]]
    m = w @ M
    return m, V, V.T @ (M - m), float(phi)


@dataclasses.dataclass(frozen=True)
class _ARSurrogateRSA:
    """Null statistic: RSA of AR-matched surrogates of the model features with the brain,
    (c, L*S). Surrogate ``k`` flips the signs of every layer's basis coordinates
    (:func:`ar_surrogate_basis`) with the same Rademacher draws from ``fold_in(key, k)``.
    """

    metric: str
    method: Any

    def __call__(self, data, ids):
        m, V, C, B, key = data          # m (L, f), V (L, n, n-1), C (L, n-1, f)

        def one(i):
            s = jax.random.rademacher(jax.random.fold_in(key, i), (C.shape[1],), C.dtype)
            Z = m[:, None, :] + jnp.einsum("lnk,lkf->lnf", V, s[None, :, None] * C)
            R = rdm_body(Z, self.metric, triangle=False)   # (L, n_pairs)
            if callable(self.method):
                return self.method(R, B)
            if self.method in ("spearman", "rho_a"):
                R = rankdata_body(R)
            return _transform(R, self.method) @ B.T
        return jax.vmap(one)(ids).reshape(ids.shape[0], -1)


def _check_null(null: str, n: int, block) -> int:
    """The block length (frames per independent unit) for ``null="block"``, else 0;
    refused nulls and settings raise with the reason."""
    if null in _REFUSED:
        raise InvalidOptionError(
            f"null={null!r} is not a valid null for frames of one continuous stimulus: "
            f"{_REFUSED[null]}. Use null='ar' (surrogates with the model's own "
            "autocorrelation), or, with several independent stimuli or runs, null='block' "
            "with block= the frames of each")
    check_choice(null, "null", NULLS)
    if null != "block":
        if block is not None:
            raise InvalidOptionError("block= is the frames per independent unit of "
                                     "null='block'; it means nothing for null='ar'")
        return 0
    if block is None:
        raise InvalidOptionError(
            "null='block' permutes independent units (stimuli, runs) of the frames: pass "
            "block= the number of frames of each unit. Blocks cut from one continuous "
            "series are not independent (rate of p < 0.05 of 0.99 at AR(1) 0.9, 60 "
            "frames); for one series use null='ar'")
    block = check_positive_int(block, "block")
    if n % block:
        raise InvalidOptionError(f"block={block} does not divide the {n} frames into units "
                                 "of equal length; pass the frames of one unit")
    if n // block < 4:
        raise InvalidOptionError(
            f"block={block} gives {n // block} units in {n} frames: permuting fewer than 4 "
            "independent units cannot reach p < 0.05 (4! = 24 orders); use null='ar' or "
            "more stimuli/runs")
    return block


def _unit_orders(n: int, block: int) -> np.ndarray:
    """Every order of the ``n // block`` units as frame permutations (u!, n), identity
    first."""
    import itertools

    u = n // block
    inner = np.arange(block)
    return np.asarray([np.concatenate([o * block + inner for o in order])
                       for order in itertools.permutations(range(u))], np.int32)


@float32_matmuls
def frame_rsa_permutation_test(model_frames, brain_frames, *, metric: str = "correlation",
                               brain_metric: str = "correlation", method="spearman",
                               n_perm: int = 1000, null: str = "ar", block: int | None = None,
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
    null : {"ar", "block"}
        ``"ar"`` (default): surrogates of each layer's features drawn from a stationary
        AR(1) model with the layer's own lag-1 autocorrelation (pooled over features,
        bias-corrected), the same cross-feature correlations and the same mean
        (:func:`ar_surrogate_basis`; sign flips of its basis coordinates, shared by all
        features and layers), RDMs recomputed per surrogate. Calibrated up to AR(1) 0.95
        at 60 frames; autocorrelation much longer than AR(1) (slow drifts, trends) should
        be removed first (detrend or high-pass both series). ``"block"``: the frames are
        ``n_frames // block`` independent units (stimuli, runs) of ``block`` frames each,
        one after another in the same order in the model and the brain; the model's
        units are permuted (every order when there are at most ``n_perm``). The nulls
        ``"phase"`` and ``"circular"`` and blocks cut from one series are refused: they
        are liberal under autocorrelation.
    block : int
        Frames per independent unit, for ``null="block"`` (required there).
    seed : int
        Surrogate / order ``k`` is drawn from ``fold_in(PRNGKey(seed), k)``.
    alternative : {"greater", "less", "two-sided"}

    Returns
    -------
    TemporalRSAResult
        Cells (n_layers, n_subjects, 1).
    """
    method = _check_method(method)
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
    block = _check_null(null, n, block)
    A = prepare_rows(np.asarray(rdm(Mf, metric=metric)), method)
    B = prepare_rows(np.asarray(rdm(Bf, metric=brain_metric)), method)
    shape = (Mf.shape[0], Bf.shape[0], 1)
    obs = np.asarray(compare_rows(A, B, method)).reshape(shape)
    if null == "ar":
        dt = jnp.result_type(float)
        parts = [ar_surrogate_basis(layer) for layer in np.asarray(Mf, np.float64)]
        m, V, C = (jnp.asarray(np.stack([p[i] for p in parts]), dt) for i in range(3))
        res = device_permutation_test(_ARSurrogateRSA(metric, method),
                                      (m, V, C, B, jax.random.PRNGKey(seed)),
                                      obs.reshape(-1), n_perm=n_perm, alternative=alternative,
                                      chunk_size=chunk_size, devices=devices)
        empty = np.zeros((0,) + shape, bool)
        return TemporalRSAResult(obs, np.asarray(res.p).reshape(shape),
                                 np.asarray(res.p_fwe).reshape(shape), empty, np.zeros(0),
                                 np.zeros(0), None, n_perm, False)
    table = None
    if math.factorial(n // block) <= n_perm:
        table = _unit_orders(n, block)
        n_perm = len(table)
    return permuted_rsa_test(A, B, obs, shape, n=n, method=method, scheme="block", param=block,
                             n_perm=n_perm, seed=seed, alternative=alternative,
                             correction="max", cluster_threshold=None, chunk_size=chunk_size,
                             devices=devices, table=table)
