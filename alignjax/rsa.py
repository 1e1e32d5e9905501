"""Comparing RDMs: correlations, permutation tests, bootstrap CIs, noise ceilings.

Every comparison method except ``tau_a`` is a dot product of transformed condensed
vectors (``spearman``: z-scored average ranks; ``pearson``: z-scored values; ``cosine``:
unit-norm values; ``rho_a``: centred ranks scaled by ``sqrt(12 / (n_pairs^3 - n_pairs))``,
as in rsatoolbox). The transform is applied once; permuting stimuli permutes the entries
of the transformed vector, so the null distribution of a permutation test is a batch of
gathers and matrix products, chunked over permutations and sharded over devices.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import rdm_comparisons
from ._runtime import float32_matmuls
from ._validation import (
    AlignjaxInputError,
    ConstantRDMError,
    InvalidOptionError,
    NonFiniteError,
    ShapeMismatchError,
    as_float_array,
    check_choice,
    check_positive_int,
)
from .folds import resolve_folds
from .options import renamed
from .permutation import device_permutation_test, exact_permutations, fold_in_permutations
from .rdm import n_stimuli_from_pairs
from .stats import check_alternative, rank_rows, rankdata_body, zscore_rows_body

__all__ = [
    "compare",
    "rsa_permutation_test",
    "rsa_bootstrap",
    "noise_ceiling",
    "partial_compare",
    "cv_best_layer",
    "stimulus_permutations",
    "RSAPermutationResult",
    "RSABootstrapResult",
    "NoiseCeiling",
    "CVBestLayerResult",
    "METHODS",
]

METHODS = ("spearman", "pearson", "cosine", "rho_a", "tau_a", "tau_b", "corr_cov", "cosine_cov",
           "neg_riem_dist")
_DOT_METHODS = ("spearman", "pearson", "cosine", "rho_a")
# methods whose pooled RDM (for noise ceilings) is defined; see _pool_transform
_POOLED_METHODS = ("spearman", "pearson", "cosine", "rho_a", "tau_a", "tau_b")


# --------------------------------------------------------------------------- validation


def _as_rdms(x, name: str, *, allow_nan: bool) -> np.ndarray:
    x = as_float_array(x, name, ndim=(1, 2))
    if x.ndim == 1:
        x = x[None, :]
    n_stimuli_from_pairs(x.shape[1])
    if np.isinf(x).any() or (not allow_nan and np.isnan(x).any()):
        rows = np.flatnonzero(~np.isfinite(x).all(axis=1))[:5].tolist()
        raise NonFiniteError(
            f"{name} has {'inf' if allow_nan else 'NaN or inf'} entries (rows {rows}); "
            + ("" if allow_nan else "this function needs complete RDMs: ")
            + "recompute the RDMs from finite features"
        )
    return x


def _check_pair(A: np.ndarray, B: np.ndarray) -> None:
    if A.shape[1] != B.shape[1]:
        raise ShapeMismatchError(
            f"A has {A.shape[1]} pairs ({n_stimuli_from_pairs(A.shape[1])} stimuli) but B has "
            f"{B.shape[1]} ({n_stimuli_from_pairs(B.shape[1])} stimuli); RDMs must be built "
            "over the same stimuli, in the same order"
        )


def _check_not_constant(x: np.ndarray, name: str) -> None:
    const = np.nanmax(x, axis=1) == np.nanmin(x, axis=1)
    if const.any():
        raise ConstantRDMError(
            f"{name} rows {np.flatnonzero(const)[:5].tolist()} are constant RDMs, so a correlation "
            "with them is undefined; check the features of that layer/subject (all stimuli "
            "identical?) or drop it"
        )


def _dtype():
    return jnp.result_type(float)


def _complete_pair(A, B, names=("A", "B")) -> tuple[np.ndarray, np.ndarray]:
    """Validated complete (no NaN), non-constant RDM sets over the same stimuli."""
    A = _as_rdms(A, names[0], allow_nan=False)
    B = _as_rdms(B, names[1], allow_nan=False)
    _check_pair(A, B)
    _check_not_constant(A, names[0])
    _check_not_constant(B, names[1])
    return A, B


# --------------------------------------------------------------------------- transforms


_RANK_METHODS = ("spearman", "rho_a")


def _ranked(V, method: str) -> jax.Array:
    """Concrete RDMs ready for :func:`_transform`: ranked once for the rank methods (on
    CPU with NumPy, see :func:`alignjax.stats.rank_rows`), else as they are."""
    if method in _RANK_METHODS:
        return rank_rows(np.asarray(V, _dtype())).astype(_dtype())
    return jnp.asarray(V, _dtype())


def _transform(V: jax.Array, method: str) -> jax.Array:
    """Rows (ranks for the rank methods, see :func:`_ranked`) mapped so that
    ``T(a) @ T(b).T`` is the comparison statistic."""
    if method in ("spearman", "pearson"):
        return zscore_rows_body(V)
    if method == "cosine":
        return V / jnp.linalg.norm(V, axis=-1, keepdims=True)
    if method == "rho_a":
        m = V.shape[-1]
        return (V - jnp.mean(V, -1, keepdims=True)) * jnp.sqrt(12.0 / (m**3 - m))
    raise ValueError(method)  # pragma: no cover - validated before


def _tau_a(A: jax.Array, B: jax.Array, chunk: int) -> jax.Array:
    """Kendall tau-a (concordant - discordant) / n_pairs(n_pairs-1)/2, ties counting 0."""
    m = A.shape[-1]
    # each unordered pair is counted twice in the ordered-pair sum
    return rdm_comparisons.sign_products(A, B, chunk) / (m * (m - 1))


@partial(jax.jit, static_argnames=("method", "tau_chunk"))
def _compare_jit(A, B, method, tau_chunk=256):
    """The statistic for RDMs passed through :func:`_ranked` (raw RDMs for tau_a)."""
    if method == "tau_a":
        return _tau_a(A, B, tau_chunk)
    return _transform(A, method) @ _transform(B, method).T


def _compare(A, B, method: str) -> jax.Array:
    """compare() on validated concrete RDMs."""
    if method == "tau_b":
        return rdm_comparisons.tau_b(A, B)
    if method in rdm_comparisons.WHITENED_METHODS:
        return rdm_comparisons.whitened_compare(A, B, n_stimuli_from_pairs(A.shape[1]),
                                                method=method)
    if method == "neg_riem_dist":
        return rdm_comparisons.neg_riemannian_distance(A, B, n_stimuli_from_pairs(A.shape[1]))
    if method == "tau_a":
        return _compare_jit(jnp.asarray(A, _dtype()), jnp.asarray(B, _dtype()), method)
    return _compare_jit(_ranked(A, method), _ranked(B, method), method)


@float32_matmuls
def compare(A, B, *, method: str = "spearman") -> jax.Array:
    """Compare every RDM of ``A`` with every RDM of ``B``.

    Parameters
    ----------
    A : array, shape (n_a, n_pairs) or (n_pairs,)
    B : array, shape (n_b, n_pairs) or (n_pairs,)
    method : {"spearman", "pearson", "cosine", "rho_a", "tau_a", "tau_b", "corr_cov", \
"cosine_cov", "neg_riem_dist"}
        ``spearman`` uses average ranks for ties (``scipy.stats.spearmanr``); ``pearson``
        matches ``scipy.stats.pearsonr``; ``tau_b`` matches ``scipy.stats.kendalltau``;
        ``rho_a``, ``tau_a``, ``tau_b``, ``corr_cov``, ``cosine_cov`` and
        ``neg_riem_dist`` match rsatoolbox's ``compare(..., method="rho-a" / "tau-a" /
        "tau-b" / "corr_cov" / "cosine_cov" / "neg_riem_dist")`` (``sigma_k=None``; see
        :mod:`alignjax.rdm_comparisons`); ``cosine`` is the uncentred cosine. Only
        ``neg_riem_dist`` is not a correlation: it is <= 0, and 0 for RDMs equal up to
        scale.

    Returns
    -------
    similarity : array, shape (n_a, n_b)

    Notes
    -----
    NaN entries (e.g. pairs that were not measured) are masked consistently: a pair that
    is NaN in any RDM of ``A`` or ``B`` is left out of every comparison.
    """
    check_choice(method, "method", METHODS)
    A = _as_rdms(A, "A", allow_nan=True)
    B = _as_rdms(B, "B", allow_nan=True)
    _check_pair(A, B)
    keep = ~(np.isnan(A).any(axis=0) | np.isnan(B).any(axis=0))
    if not keep.all():
        if keep.sum() < 3:
            raise NonFiniteError("fewer than 3 pairs are finite in every RDM; nothing to compare")
        A, B = A[:, keep], B[:, keep]
    _check_not_constant(A, "A")
    _check_not_constant(B, "B")
    return _compare(A, B, method)


# --------------------------------------------------------------------------- permutation test


class RSAPermutationResult(NamedTuple):
    """Result of :func:`rsa_permutation_test`.

    Attributes
    ----------
    r : array (n_a, n_b)
        Observed similarity.
    p : array (n_a, n_b)
        Uncorrected permutation p-value.
    p_fwe : array (n_a, n_b)
        Family-wise corrected p-value (max statistic over all n_a x n_b cells).
    null : array (n_perm, n_a, n_b) or None
        The null distribution, when ``return_null=True``.
    n_perm : int
        Number of permutations used (n_stimuli! when enumerated exactly).
    exact : bool
        True when all permutations were enumerated.
    """

    r: jax.Array
    p: jax.Array
    p_fwe: jax.Array
    null: jax.Array | None
    n_perm: int
    exact: bool


def _pair_index(n: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(n, k=1)
    return i.astype(np.int32), j.astype(np.int32)


def _condensed(lo, hi, n):
    return n * lo - (lo * (lo + 1)) // 2 + hi - lo - 1


def stimulus_permutations(n_stimuli: int, n_perm: int, *, seed: int = 0) -> np.ndarray:
    """The stimulus permutations :func:`rsa_permutation_test` uses for ``seed`` -> (n_perm, n_stimuli).

    Permutation ``k`` maps new position ``i`` to old stimulus ``perm[k, i]``: the permuted
    square RDM is ``D[perm[k]][:, perm[k]]``.
    """
    return np.asarray(fold_in_permutations(jax.random.PRNGKey(seed), jnp.arange(n_perm),
                                           n_stimuli))


def _permute_condensed(perm, ii, jj, n):
    """Index map (n_pairs,) taking a condensed RDM to the one of permuted stimuli."""
    pi, pj = perm[ii], perm[jj]
    return _condensed(jnp.minimum(pi, pj), jnp.maximum(pi, pj), n)


@dataclasses.dataclass(frozen=True)
class _PermutedComparison:
    """The null statistic for permutation ids: (c, n_g, n_o) comparisons of permuted ``G``.

    ``data = (G, O, key, table)``: ``G`` (n_g, n_pairs), or its square form (n_g, n*n)
    when ``square``, is gathered by each permutation (``table[id]`` when ``exact``, else
    drawn from ``fold_in(key, id)``; inverted when ``invert``); ``O`` (n_o, n_pairs) stays.
    """

    n: int
    exact: bool
    invert: bool
    square: bool

    def permutations(self, key, table, ids):
        p = table[ids] if self.exact else fold_in_permutations(key, ids, self.n)
        if not self.invert:
            return p
        inverse = jnp.arange(self.n, dtype=p.dtype)  # inverse, no sort
        return jax.vmap(lambda q: jnp.zeros_like(q).at[q].set(inverse))(p)

    def __call__(self, data, ids):
        G, O, key, table = data
        ii, jj = (jnp.asarray(x) for x in _pair_index(self.n))
        perms = self.permutations(key, table, ids)                    # (c, n)
        if self.square:
            idx = perms[:, ii] * self.n + perms[:, jj]               # (c, n_pairs)
        else:
            idx = jax.vmap(lambda p: _permute_condensed(p, ii, jj, self.n))(perms)
        return jnp.einsum("gcm,om->cgo", G[:, idx], O)                # (c, n_g, n_o)


@partial(jax.jit, static_argnames=("n",))
def _square_form(G, n):
    """Condensed rows (n_g, n_pairs) as flattened square RDMs (n_g, n*n)."""
    ii, jj = _pair_index(n)
    S = jnp.zeros((G.shape[0], n, n), G.dtype).at[:, ii, jj].set(G).at[:, jj, ii].set(G)
    return S.reshape(G.shape[0], n * n)


_SQUARE_GATHER_BYTES = 4 << 20   # condensed RDMs to gather beyond the cache
_SQUARE_MAX_BYTES = 2 << 30      # square forms held for the gather at most


def _auto_chunk(n_gather: int, n_pairs: int, budget_bytes: int = 256 * 2**20) -> int:
    """Permutations per step.

    On CPU, two: XLA then fuses the gather into the contraction instead of writing the
    gathered block to memory, which measured 2.3x faster than large chunks (165 stimuli,
    13 x 8 RDMs). On accelerators, as many as fit a 256 MiB budget.
    """
    if jax.default_backend() == "cpu":
        return 2
    per_perm = 4 * (3 * n_gather * n_pairs + n_pairs)
    return int(max(1, min(1024, budget_bytes // max(per_perm, 1))))


def _gather_square(n_gather: int, n: int) -> bool:
    """Gather permuted RDMs from their square form once the condensed ones outgrow the
    cache: reads then stay within one row (n values) per stimulus instead of jumping
    across all n_pairs."""
    condensed = n_gather * n * (n - 1) // 2 * 4
    return _SQUARE_GATHER_BYTES < condensed and 2 * condensed < _SQUARE_MAX_BYTES


@renamed(n_devices="devices")
@float32_matmuls
def rsa_permutation_test(A, B, *, method: str = "spearman", n_perm: int = 10_000, seed: int = 0,
                         alternative: str = "greater", chunk_size: int | None = None,
                         return_null: bool = False, devices: int | None = None
                         ) -> RSAPermutationResult:
    """Stimulus-label permutation test of every A x B RDM comparison, with FWE correction.

    Stimulus labels of the ``A`` RDMs are permuted (rows and columns together), with the
    same permutations for every cell. ``p = (1 + #{null >= r}) / (1 + n_perm)`` for
    ``alternative="greater"`` (``"less"`` and ``"two-sided"`` likewise); ``p_fwe`` uses
    the maximum statistic over all ``n_a x n_b`` cells. When ``n_stimuli! <= n_perm`` all
    permutations are enumerated and ``p = #{null >= r} / n_stimuli!`` (identity included).

    Parameters
    ----------
    A : array, shape (n_a, n_pairs)
        E.g. model-layer RDMs.
    B : array, shape (n_b, n_pairs)
        E.g. subjects' brain RDMs.
    method : {"spearman", "pearson", "cosine", "rho_a"}
    n_perm : int
        Number of random permutations.
    seed : int
        Permutation ``k`` is drawn from ``fold_in(PRNGKey(seed), k)``, so results do not
        depend on ``chunk_size`` or on the number of devices.
    alternative : {"greater", "less", "two-sided"}
    chunk_size : int, optional
        Permutations per step; bounds memory to about ``chunk_size * min(n_a, n_b) *
        n_pairs * 12`` bytes. Default: 2 on CPU (fastest there), else from a 256 MiB budget.
    return_null : bool
        Also return the (n_perm, n_a, n_b) null distribution.
    devices : int, optional
        Shard permutations over this many local devices (default: all). Formerly
        ``n_devices`` (accepted with a DeprecationWarning for one release).

    Returns
    -------
    RSAPermutationResult
    """
    check_choice(method, "method", _DOT_METHODS)
    check_alternative(alternative)
    n_perm = check_positive_int(n_perm, "n_perm")
    A, B = _complete_pair(A, B)
    n = n_stimuli_from_pairs(A.shape[1])
    TA = _transform(_ranked(A, method), method)
    TB = _transform(_ranked(B, method), method)
    obs = TA @ TB.T
    table = exact_permutations(n, n_perm)
    exact = table is not None
    n_perm = table.shape[0] if exact else n_perm
    # gather the side with fewer RDMs; permuting B by the inverse permutation is the same test
    invert = B.shape[0] < A.shape[0]
    G, O = (TB, TA) if invert else (TA, TB)
    square = _gather_square(G.shape[0], n)
    data = (_square_form(G, n) if square else G, O, jax.random.PRNGKey(seed),
            jnp.asarray(table if exact else np.zeros((1, n), np.int32)))
    res = device_permutation_test(
        _PermutedComparison(n, exact, invert, square), data, obs.T if invert else obs,
        n_perm=n_perm, alternative=alternative, return_null=return_null, exact=exact,
        chunk_size=int(chunk_size) if chunk_size else _auto_chunk(G.shape[0], G.shape[1]),
        devices=devices)
    p, p_fwe, null = res.p, res.p_fwe, res.null
    if invert:
        p, p_fwe = p.T, p_fwe.T
        null = jnp.swapaxes(null, 1, 2) if return_null else None
    return RSAPermutationResult(obs, p, p_fwe, null, int(n_perm), bool(exact))


# --------------------------------------------------------------------------- masked comparisons


def _masked_compare(A: jax.Array, B: jax.Array, w: jax.Array, method: str) -> jax.Array:
    """``compare`` restricted to entries where ``w`` (n_pairs,) is true -> (n_a, n_b)."""
    wf = w.astype(A.dtype)
    m = jnp.sum(wf)

    def ranks(V):
        return rankdata_body(jnp.where(w[None, :], V, jnp.inf))

    if method in ("spearman", "rho_a"):
        A, B = ranks(A), ranks(B)
    if method == "cosine":
        num = (A * wf) @ B.T
        den = jnp.sqrt(jnp.sum(A * A * wf, -1))[:, None] * jnp.sqrt(jnp.sum(B * B * wf, -1))[None, :]
        return num / den
    Ac = (A - jnp.sum(jnp.where(w, A, 0.0), -1, keepdims=True) / m) * wf
    Bc = (B - jnp.sum(jnp.where(w, B, 0.0), -1, keepdims=True) / m) * wf
    Ac, Bc = jnp.where(w, Ac, 0.0), jnp.where(w, Bc, 0.0)
    num = Ac @ Bc.T
    if method == "rho_a":
        return 12.0 * num / (m**3 - m)
    den = jnp.linalg.norm(Ac, axis=-1)[:, None] * jnp.linalg.norm(Bc, axis=-1)[None, :]
    return num / den


# --------------------------------------------------------------------------- bootstrap


class RSABootstrapResult(NamedTuple):
    """Result of :func:`rsa_bootstrap`.

    Attributes
    ----------
    r : array (n_a, n_b)
        Similarity on the original stimuli.
    ci : array (2, n_a, n_b)
        Percentile confidence interval (low, high) per cell.
    diff_ci : array (2, n_a, n_a, n_b)
        Percentile CI of ``r[i, b] - r[j, b]`` (row i of A minus row j).
    diff_p : array (n_a, n_a, n_b)
        Two-sided bootstrap p-value that the difference is zero,
        ``min(1, 2 * min((1 + #{d <= 0}), (1 + #{d >= 0})) / (1 + n_boot))``.
    boot : array (n_boot, n_a, n_b)
        Bootstrap distribution.
    """

    r: jax.Array
    ci: jax.Array
    diff_ci: jax.Array
    diff_p: jax.Array
    boot: jax.Array


@partial(jax.jit, static_argnames=("method", "n", "chunk"))
def _bootstrap(A, B, idx, *, method, n, chunk):
    ii, jj = _pair_index(n)

    def one(sample):
        si, sj = sample[ii], sample[jj]
        w = si != sj
        k = _condensed(jnp.minimum(si, sj), jnp.maximum(si, sj), n)
        k = jnp.where(w, k, 0)
        return _masked_compare(A[:, k], B[:, k], w, method)

    return jax.lax.map(one, idx, batch_size=chunk)


@float32_matmuls
def rsa_bootstrap(A, B, *, method: str = "spearman", n_boot: int = 1000, seed: int = 0,
                  ci: float = 0.95, chunk_size: int = 8) -> RSABootstrapResult:
    """Bootstrap over stimuli: percentile CIs per cell and for differences between rows of A.

    Each bootstrap sample draws ``n_stimuli`` stimuli with replacement and rebuilds the
    RDMs from them; pairs of a stimulus with its own copy (zero by construction) are
    dropped. The same samples serve every cell, so differences between layers (rows of
    ``A``) are paired.

    Parameters
    ----------
    A : array, shape (n_a, n_pairs)
    B : array, shape (n_b, n_pairs)
    method : {"spearman", "pearson", "cosine", "rho_a"}
    n_boot : int
    seed : int
    ci : float
        Coverage of the percentile intervals.
    chunk_size : int
        Bootstrap samples evaluated at once (memory only; no effect on the result).
    """
    check_choice(method, "method", _DOT_METHODS)
    n_boot = check_positive_int(n_boot, "n_boot")
    if not 0 < ci < 1:
        raise InvalidOptionError(f"ci must be in (0, 1), got {ci}")
    A, B = _complete_pair(A, B)
    n = n_stimuli_from_pairs(A.shape[1])
    dt = _dtype()
    Aj, Bj = jnp.asarray(A, dt), jnp.asarray(B, dt)
    keys = jax.random.split(jax.random.PRNGKey(seed), n_boot)
    idx = jax.vmap(lambda k: jax.random.randint(k, (n,), 0, n))(keys)
    boot = _bootstrap(Aj, Bj, idx, method=method, n=n, chunk=int(chunk_size))
    r = _compare(A, B, method)
    q = jnp.asarray([(1 - ci) / 2 * 100, (1 + ci) / 2 * 100], dt)
    cis = jnp.nanpercentile(boot, q, axis=0)
    diff = boot[:, :, None, :] - boot[:, None, :, :]
    diff_ci = jnp.nanpercentile(diff, q, axis=0)
    ok = jnp.sum(~jnp.isnan(diff), axis=0)
    le = (1.0 + jnp.sum(diff <= 0, axis=0)) / (1.0 + ok)
    ge = (1.0 + jnp.sum(diff >= 0, axis=0)) / (1.0 + ok)
    diff_p = jnp.minimum(1.0, 2 * jnp.minimum(le, ge)).astype(dt)
    eye = jnp.eye(A.shape[0], dtype=bool)[:, :, None]
    diff_p = jnp.where(eye, 1.0, diff_p)
    return RSABootstrapResult(r, cis, diff_ci, diff_p, boot)


# --------------------------------------------------------------------------- noise ceiling


class NoiseCeiling(NamedTuple):
    """Noise ceiling (Nili et al. 2014).

    Attributes
    ----------
    lower, upper : float arrays, shape ()
        Mean over subjects of each subject's similarity to the pooled RDM of the other
        subjects (lower) or of all subjects (upper).
    lower_per_subject, upper_per_subject : arrays, shape (n_subjects,)
    """

    lower: jax.Array
    upper: jax.Array
    lower_per_subject: jax.Array
    upper_per_subject: jax.Array


def _pool_transform(B: np.ndarray, method: str) -> jax.Array:
    """Per-subject rows transformed so their mean is the pooled RDM for ``method``."""
    if method in ("spearman", "rho_a", "tau_a", "tau_b"):
        return rank_rows(B).astype(_dtype())
    B = jnp.asarray(B, _dtype())
    if method == "pearson":
        return zscore_rows_body(B)
    if method == "cosine":
        return B / jnp.sqrt(jnp.mean(B * B, -1, keepdims=True))
    raise ValueError(method)  # pragma: no cover


def _noise_ceiling(B: np.ndarray, method: str):
    T = _pool_transform(B, method)
    k = B.shape[0]
    total = T.sum(0)
    loo = (total[None, :] - T) / (k - 1)             # (k, n_pairs) pooled others
    allm = (total / k)[None, :]                      # (1, n_pairs) pooled all
    if method not in _DOT_METHODS:
        return (jnp.diagonal(_compare(np.asarray(loo), B, method)),
                _compare(np.asarray(allm), B, method)[0])
    TB = _transform(T, method)  # T is ranks (rank methods) or a rescaled B: same rows

    def sim(x):  # pooled row(s) against each subject
        return jnp.sum(_transform(_ranked(x, method), method) * TB, axis=-1)

    return sim(loo), sim(allm)


@float32_matmuls
def noise_ceiling(B, *, method: str = "spearman") -> NoiseCeiling:
    """Lower and upper bounds on the similarity any model can reach with subjects' RDMs.

    As rsatoolbox's ``boot_noise_ceiling`` (leave-one-subject-out): lower = each subject
    vs the pooled RDM of the others, upper = each subject vs the pooled RDM of all,
    averaged over subjects. Pooling follows the method (mean ranks for rank methods,
    mean z-scored RDMs for ``pearson``, mean RMS-normalised RDMs for ``cosine``). The
    whitened methods and ``neg_riem_dist`` have no noise ceiling here yet.

    Parameters
    ----------
    B : array, shape (n_subjects, n_pairs), n_subjects >= 2
    method : {"spearman", "pearson", "cosine", "rho_a", "tau_a", "tau_b"}
    """
    check_choice(method, "method", _POOLED_METHODS)
    B = _as_rdms(B, "B", allow_nan=False)
    if B.shape[0] < 2:
        raise ShapeMismatchError("a noise ceiling needs RDMs from at least 2 subjects")
    _check_not_constant(B, "B")
    lo, up = _noise_ceiling(B, method)
    return NoiseCeiling(lo.mean(), up.mean(), lo, up)


# --------------------------------------------------------------------------- partial comparison


@jax.jit
def _partial(A, B, C):
    """Semi-partial correlations of (ranked, for spearman) A, B given controls C."""
    design = jnp.concatenate([jnp.ones((A.shape[1], 1), A.dtype), C.T], axis=1)
    coef, *_ = jnp.linalg.lstsq(design, A.T)
    resid = A - (design @ coef).T
    # nothing left after regressing out the control: the partial correlation is undefined
    scale = jnp.linalg.norm(A - A.mean(-1, keepdims=True), axis=-1)
    empty = jnp.linalg.norm(resid, axis=-1) <= 1e-4 * scale
    r = zscore_rows_body(resid) @ zscore_rows_body(B).T
    return jnp.where(empty[:, None], jnp.nan, r)


@float32_matmuls
def partial_compare(A, B, control, *, method: str = "spearman") -> jax.Array:
    """Compare ``A`` with ``B`` after regressing the ``control`` RDMs out of ``A``.

    The control RDMs (e.g. a spectrogram-distance RDM) and an intercept are regressed out
    of each A RDM by least squares on the condensed vectors; the residuals are correlated
    with B (a semi-partial correlation). For ``spearman`` every RDM is rank-transformed
    first (semi-partial rank correlation). Rows of A that the controls explain entirely
    (residual norm below 1e-4 of the centred row's) give NaN: nothing is left to compare.

    Parameters
    ----------
    A : array, shape (n_a, n_pairs)
    B : array, shape (n_b, n_pairs)
    control : array, shape (n_control, n_pairs)
    method : {"spearman", "pearson"}

    Returns
    -------
    array, shape (n_a, n_b)
    """
    check_choice(method, "method", ("spearman", "pearson"))
    A, B = _complete_pair(A, B)
    A, C = _complete_pair(A, control, names=("A", "control"))
    return _partial(_ranked(A, method), _ranked(B, method), _ranked(C, method))


# --------------------------------------------------------------------------- cross-validated layer choice


class CVBestLayerResult(NamedTuple):
    """Result of :func:`cv_best_layer`.

    Attributes
    ----------
    best_layer : int array (n_folds, n_subjects)
        Layer chosen on the training cells of each fold, per subject.
    fold_scores : array (n_folds, n_subjects)
        Similarity of the chosen layer on the held-out cells.
    score : array (n_subjects,)
        Mean of ``fold_scores`` over folds: the cross-validated score per subject.
    """

    best_layer: jax.Array
    fold_scores: jax.Array
    score: jax.Array


@partial(jax.jit, static_argnames=("method", "n"))
def _cv_best_layer(A, B, test_masks, *, method, n):
    ii, jj = _pair_index(n)

    def fold(held):
        train = ~held[ii] & ~held[jj]
        test = held[ii] & held[jj]
        s_train = _masked_compare(A, B, train, method)
        s_test = _masked_compare(A, B, test, method)
        best = jnp.argmax(s_train, axis=0)
        return best, jnp.take_along_axis(s_test, best[None, :], axis=0)[0]

    best, scores = jax.vmap(fold)(test_masks)
    return best, scores, scores.mean(0)


@float32_matmuls
def cv_best_layer(A_layers, B, *, folds=5, method: str = "spearman", seed: int = 0,
                  stratify=None) -> CVBestLayerResult:
    """Cross-validated best-layer selection over stimulus folds.

    For each fold, the layer is chosen on the RDM cells that touch no held-out stimulus
    and scored on the cells among held-out stimuli, so the choice never sees the test
    cells.

    Parameters
    ----------
    A_layers : array, shape (n_layers, n_pairs)
    B : array, shape (n_subjects, n_pairs)
    folds : int or fold specification
        See :func:`alignjax.resolve_folds`; each test fold needs at least 3 stimuli.
    method : {"spearman", "pearson", "cosine", "rho_a"}
    seed : int
        Shuffling seed for integer ``folds``.
    stratify : sequence, optional
        Category per stimulus for stratified folds.
    """
    check_choice(method, "method", _DOT_METHODS)
    A = _as_rdms(A_layers, "A_layers", allow_nan=False)
    B = _as_rdms(B, "B", allow_nan=False)
    _check_pair(A, B)
    n = n_stimuli_from_pairs(A.shape[1])
    masks = resolve_folds(folds, n, seed=seed, stratify=stratify)
    if masks.sum(1).min() < 3:
        raise AlignjaxInputError("every test fold needs at least 3 stimuli (3 held-out pairs)")
    dt = _dtype()
    best, scores, mean = _cv_best_layer(jnp.asarray(A, dt), jnp.asarray(B, dt),
                                        jnp.asarray(masks), method=method, n=n)
    return CVBestLayerResult(best, scores, mean)
