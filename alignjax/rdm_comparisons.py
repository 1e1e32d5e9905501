"""RDM comparisons beyond dot products of transformed vectors: Kendall's tau-b, the
whitened comparisons (``corr_cov``, ``cosine_cov``) and the negative Riemannian distance.

These are the rsatoolbox methods of the same names (``compare(..., method="tau-b" /
"corr_cov" / "cosine_cov" / "neg_riem_dist")``, with ``sigma_k=None``: independent,
equal-variance pattern estimates). :func:`alignjax.compare` dispatches to them; they are
public so that other analyses (time-resolved RSA, noise ceilings) can use the same
kernels.

- **tau-b**: ``(n_c - n_d) / sqrt((n0 - t_a) (n0 - t_b))`` with ``t`` the pairs tied in
  one RDM, as :func:`scipy.stats.kendalltau`. Written as ``S_ab / sqrt(S_aa S_bb)`` with
  ``S_xy = sum_{k,l} sign(x_k - x_l) sign(y_k - y_l)``, computed in chunks of entries.
- **whitened comparisons**: the covariance of distance estimates between pairs that
  share a stimulus is undone by double-centring: an RDM ``d`` becomes
  ``G = -1/2 H D H`` (``D`` its square form, ``H`` the centring matrix), and
  ``cosine_cov`` is the Frobenius cosine of the two ``G`` (rsatoolbox computes the same
  through the whitened distance covariance ``V``; it notes the equivalence with linear
  CKA). ``corr_cov`` subtracts each RDM's mean distance first (the diagonal stays 0).
- **neg_riem_dist**: minus the affine-invariant Riemannian distance between the
  second-moment matrices ``G_a``, ``G_b`` of the two RDMs (relative to stimulus 0,
  ``(n-1) x (n-1)``), after the best scaling and added identity-like noise term:
  ``-min_theta sqrt(sum_i log(lambda_i)^2)``, ``lambda`` the generalised eigenvalues
  of ``(exp(theta_0) G_a + exp(theta_1) P P^T, G_b)``. rsatoolbox minimises over theta
  with Nelder-Mead from ``(0, 0)``; here the common scale is profiled out exactly (it
  centres the log eigenvalues) and the remaining log weight is found by a grid over
  [-16, 16] then golden-section search, so values agree with rsatoolbox to its
  optimiser's tolerance (and are never larger than its value by more than rounding).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["tau_b", "sign_products", "whitened_rdms", "whitened_compare", "second_moments", "whitened_norms",
           "neg_riemannian_distance", "WHITENED_METHODS"]

WHITENED_METHODS = ("corr_cov", "cosine_cov")


# --------------------------------------------------------------------------- tau-b


def sign_products(A, B, chunk: int):
    """``sum_{k,l} sign(A_k - A_l) sign(B_k - B_l)`` for every row pair -> (n_a, n_b).

    Traceable (call it inside ``jit``): the ordered-pair sums behind Kendall's tau-a and
    tau-b, O(n_pairs^2) per row pair, in chunks of ``chunk`` entries against all entries.
    """
    m = A.shape[-1]
    n_chunks = -(-m // chunk)
    idx = jnp.arange(n_chunks * chunk).reshape(n_chunks, chunk)

    def body(acc, rows):
        valid = rows < m
        r = jnp.minimum(rows, m - 1)
        sa = jnp.sign(A[:, r, None] - A[:, None, :]) * valid[None, :, None]
        sb = jnp.sign(B[:, r, None] - B[:, None, :])
        return acc + jnp.einsum("aij,bij->ab", sa, sb), None

    total, _ = jax.lax.scan(body, jnp.zeros((A.shape[0], B.shape[0]), A.dtype), idx)
    return total


def _untied_pairs(V: np.ndarray) -> np.ndarray:
    """``sum_{k,l} sign(V_k - V_l)^2`` per row: ordered pairs of entries not tied."""
    m = V.shape[-1]
    out = np.empty(V.shape[0])
    for i, row in enumerate(V):
        _, counts = np.unique(row, return_counts=True)
        out[i] = m * (m - 1) - np.sum(counts * (counts - 1.0))
    return out


@partial(jax.jit, static_argnames=("chunk",))
def _tau_b(A, B, untied_a, untied_b, chunk):
    s = sign_products(A, B, chunk)
    return s / jnp.sqrt(untied_a[:, None] * untied_b[None, :])


def tau_b(A, B, *, chunk: int = 256) -> jax.Array:
    """Kendall's tau-b between every row of ``A`` and every row of ``B``.

    JAX implementation of :func:`scipy.stats.kendalltau` (``variant="b"``) for all row
    pairs; rsatoolbox's ``compare(..., method="tau-b")``.

    Parameters
    ----------
    A : array, shape (n_a, n_pairs)
    B : array, shape (n_b, n_pairs)
        Complete (no NaN), non-constant condensed RDMs.
    chunk : int
        Entries compared against all others per step (memory ``chunk * n_pairs`` per row).

    Returns
    -------
    tau : array, shape (n_a, n_b)
    """
    A, B = np.asarray(A), np.asarray(B)
    dt = jnp.result_type(float)
    return _tau_b(jnp.asarray(A, dt), jnp.asarray(B, dt), jnp.asarray(_untied_pairs(A), dt),
                  jnp.asarray(_untied_pairs(B), dt), int(chunk))


# --------------------------------------------------------------------------- whitened


def whitened_rdms(V, n_stimuli: int, *, centre: bool) -> jax.Array:
    """Double-centred square forms of condensed RDMs, unit Frobenius norm.

    Parameters
    ----------
    V : array, shape (n_rdms, n_pairs)
    n_stimuli : int
    centre : bool
        Subtract each RDM's mean distance before double-centring (``corr_cov``).

    Returns
    -------
    W : array, shape (n_rdms, n_stimuli * n_stimuli)
        ``W[r] @ W[s]`` is the ``cosine_cov`` (``centre=False``) or ``corr_cov``
        (``centre=True``) comparison of RDMs ``r`` and ``s``.
    """
    return _whitened(jnp.asarray(V, jnp.result_type(float)), int(n_stimuli), bool(centre))


def whitened_norms(V, n_stimuli: int, *, centre: bool) -> jax.Array:
    """Frobenius norms of the double-centred square forms (before :func:`whitened_rdms`
    scales them to 1) -> (n_rdms,). ``V / norms[:, None]`` averaged over subjects is the
    pooled RDM that the whitened comparisons' noise ceilings use (as rsatoolbox's
    ``pool_rdm``)."""
    flat = _double_centred(jnp.asarray(V, jnp.result_type(float)), int(n_stimuli), bool(centre))
    return jnp.linalg.norm(flat, axis=-1)


@partial(jax.jit, static_argnames=("n", "centre"))
def _double_centred(V, n, centre):
    if centre:
        V = V - jnp.mean(V, axis=-1, keepdims=True)
    i, j = np.triu_indices(n, k=1)
    D = jnp.zeros((V.shape[0], n, n), V.dtype).at[:, i, j].set(V).at[:, j, i].set(V)
    D = D - D.mean(axis=1, keepdims=True)
    D = D - D.mean(axis=2, keepdims=True)
    return D.reshape(V.shape[0], n * n)


@partial(jax.jit, static_argnames=("n", "centre"))
def _whitened(V, n, centre):
    flat = _double_centred(V, n, centre)
    return flat / jnp.linalg.norm(flat, axis=-1, keepdims=True)


def whitened_compare(A, B, n_stimuli: int, *, method: str) -> jax.Array:
    """``corr_cov`` or ``cosine_cov`` between every row of ``A`` and of ``B`` -> (n_a, n_b).

    Matches rsatoolbox's ``compare(..., method=method)`` with ``sigma_k=None``.
    """
    centre = method == "corr_cov"
    return whitened_rdms(A, n_stimuli, centre=centre) @ whitened_rdms(B, n_stimuli,
                                                                      centre=centre).T


# --------------------------------------------------------------------------- Riemannian


def second_moments(V, n_stimuli: int) -> jax.Array:
    """Second-moment matrices relative to stimulus 0 implied by condensed RDMs.

    ``G[k, l] = (d_0k + d_0l - d_kl) / 2`` for ``k, l = 1..n-1`` (so ``G[k, k] = d_0k``),
    exact for squared Euclidean distances: (n_rdms, n_stimuli - 1, n_stimuli - 1).
    """
    return _second_moments(jnp.asarray(V, jnp.result_type(float)), int(n_stimuli))


@partial(jax.jit, static_argnames=("n",))
def _second_moments(V, n):
    i, j = np.triu_indices(n, k=1)
    D = jnp.zeros((V.shape[0], n, n), V.dtype).at[:, i, j].set(V).at[:, j, i].set(V)
    d0 = D[:, 0, 1:]
    return 0.5 * (d0[:, :, None] + d0[:, None, :] - D[:, 1:, 1:])


def _log_eig_spread(u, Ga, Lb_inv, S):
    """``sum (log mu_i - mean log mu)^2`` for the generalised eigenvalues ``mu`` of
    ``(e^u Ga + S, Gb)``: the objective with the common scale ``theta_1`` profiled out
    (``theta = (u + t, t)`` shifts every ``log lambda`` by ``t``; the best ``t`` centres
    them)."""
    W = Lb_inv @ (jnp.exp(u) * Ga + S) @ Lb_inv.T
    lm = jnp.log(jnp.linalg.eigvalsh(0.5 * (W + W.T)))
    return jnp.sum((lm - jnp.mean(lm)) ** 2)


_GRID = np.arange(-16.0, 16.5, 1.0)     # log relative weight of G_a against the noise term
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


def _minimise_1d(f, n_iter: int, dtype):
    """Grid over :data:`_GRID`, then golden-section search around the best grid point."""
    grid = jnp.asarray(_GRID, dtype)
    vals = jax.vmap(f)(grid)
    vals = jnp.where(jnp.isfinite(vals), vals, jnp.inf)
    best = grid[jnp.argmin(vals)]
    lo, hi = best - 1.0, best + 1.0

    def step(_, bounds):
        a, b = bounds
        c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
        left = f(c) <= f(d)
        return jnp.where(left, a, c), jnp.where(left, d, b)

    a, b = jax.lax.fori_loop(0, n_iter, step, (lo, hi))
    u = 0.5 * (a + b)
    return jnp.minimum(f(u), jnp.min(vals))


@partial(jax.jit, static_argnames=("n_iter",))
def _neg_riemann(GA, GB, S, n_iter):
    Lb_inv = jax.vmap(lambda G: jnp.linalg.inv(jnp.linalg.cholesky(G)))(GB)

    def one(Ga, Li):
        return -jnp.sqrt(_minimise_1d(partial(_log_eig_spread, Ga=Ga, Lb_inv=Li, S=S), n_iter,
                                        Ga.dtype))

    return jax.vmap(lambda Ga: jax.lax.map(lambda Li: one(Ga, Li), Lb_inv))(GA)


def neg_riemannian_distance(A, B, n_stimuli: int, *, n_iter: int = 40) -> jax.Array:
    """Negative Riemannian distance between every row of ``A`` and of ``B`` -> (n_a, n_b).

    rsatoolbox's ``compare(..., method="neg_riem_dist")`` with ``sigma_k=None``; see the
    module docstring for the objective. The second moments of ``B`` must be positive
    definite (RDMs of squared-Euclidean-like distances between distinct patterns).

    Parameters
    ----------
    A : array, shape (n_a, n_pairs)
    B : array, shape (n_b, n_pairs)
    n_stimuli : int
    n_iter : int
        Golden-section steps after the grid (the bracket of width 2 shrinks to
        ``2 * 0.618**n_iter``).
    """
    n = int(n_stimuli)
    P = np.concatenate([-np.ones((n - 1, 1)), np.eye(n - 1)], axis=1)
    S = jnp.asarray(P @ P.T, jnp.result_type(float))
    return _neg_riemann(second_moments(A, n), second_moments(B, n), S, int(n_iter))
