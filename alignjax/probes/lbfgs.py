"""A compact L-BFGS written with ``lax.while_loop``, so that it batches under ``vmap``.

Two-loop recursion over a circular memory (with an optional diagonal preconditioner as
the initial inverse Hessian) and a backtracking (Armijo) line search whose
first trial is the quasi-Newton step: an iteration costs one function-and-gradient
evaluation in the common case (optax's zoom line search was measured to cost several,
which matters when thousands of problems run in lockstep).

Package-internal: :func:`minimize_lbfgs` is used by :mod:`alignjax.probes.logistic`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__: list[str] = []  # package-internal: minimize_lbfgs


def _two_loop(g, S, Yh, rho, k, h0):
    """L-BFGS two-loop recursion: ``H g`` from the circular memory (newest at ``k``), with
    the diagonal initial inverse Hessian ``h0`` (a vector).

    Unused slots have ``rho == 0`` and are no-ops.
    """
    m = S.shape[0]

    def first(i, carry):
        q, alphas = carry
        j = (k - i) % m
        a = rho[j] * jnp.dot(S[j], q)
        return q - a * Yh[j], alphas.at[j].set(a)

    q, alphas = jax.lax.fori_loop(0, m, first, (g, jnp.zeros((m,), g.dtype)))

    def second(i, r):
        j = (k + 1 + i) % m
        b = rho[j] * jnp.dot(Yh[j], r)
        return r + S[j] * (alphas[j] - b)

    return jax.lax.fori_loop(0, m, second, h0 * q)


def _line_search(vg, x, f, gd, d, step0, slack, max_linesearch):
    """Halve ``step0`` until the Armijo condition holds; returns ``(step, f, g, ok)``."""

    def armijo(step, fn):
        return (fn <= f + 1e-4 * step * gd + slack) & jnp.isfinite(fn)

    def ls_cond(l):
        step, fn, _, n = l
        return ~armijo(step, fn) & (n < max_linesearch)

    def ls_body(l):
        step, _, _, n = l
        step = step * 0.5
        fn, gn = vg(x + step * d)
        return step, fn, gn, n + 1

    f1, g1 = vg(x + step0 * d)
    step, fn, gn, _ = jax.lax.while_loop(ls_cond, ls_body, (step0.astype(x.dtype), f1, g1, 0))
    return step, fn, gn, armijo(step, fn)


def _update_memory(c, s_vec, y_vec, ok, eps, precond):
    """Store the curvature pair ``(s, y)`` when it is usable; returns (k, S, Y, rho, gamma).

    ``gamma`` scales the diagonal preconditioner to the newest pair (Shanno-Phua scaling:
    ``s'y / y'Py``).
    """
    m = c["S"].shape[0]
    sy = jnp.dot(s_vec, y_vec)
    yy = jnp.dot(y_vec, precond * y_vec)
    upd = ok & (sy > eps * yy) & (yy > 0)
    k = jnp.where(upd, (c["k"] + 1) % m, c["k"])
    S = jnp.where(upd, c["S"].at[k].set(s_vec), c["S"])
    Yh = jnp.where(upd, c["Y"].at[k].set(y_vec), c["Y"])
    rho = jnp.where(upd, c["rho"].at[k].set(1.0 / jnp.where(upd, sy, 1.0)), c["rho"])
    gamma = jnp.where(upd, sy / jnp.where(upd, yy, 1.0), c["gamma"])
    return k, S, Yh, rho, gamma


def minimize_lbfgs(fun, x0, tol, max_iter: int, *, precond=None, memory: int = 10,
                   max_linesearch: int = 30):
    """Minimise ``fun`` from ``x0`` by L-BFGS with a backtracking (Armijo) line search.

    Package-internal. The first trial step of every iteration is the quasi-Newton step
    (length 1; without a preconditioner the first iteration scales it to ``1 / ||g||``),
    which is almost always accepted, so an iteration costs one function-and-gradient
    evaluation. Stops when ``max|grad| <= tol``, after ``max_iter`` iterations, or when
    the line search cannot decrease ``fun`` any more. Composes under ``vmap``.

    Parameters
    ----------
    fun : callable
        Scalar objective of a pytree of arrays.
    x0 : pytree
        Starting point.
    tol : float
        Gradient tolerance (max-norm).
    max_iter : int
    precond : pytree like ``x0``, optional
        Positive diagonal of the initial inverse Hessian (an estimate of the inverse
        curvature per coordinate), rescaled each iteration by ``s'y / y'Py``; a good one
        removes most of the iterations an ill-conditioned problem needs.
    memory : int
        Curvature pairs kept.
    max_linesearch : int
        Step halvings tried per iteration.

    Returns
    -------
    x, n_iter, max_abs_grad
    """
    from jax.flatten_util import ravel_pytree

    flat0, unravel = ravel_pytree(x0)
    dtype = flat0.dtype
    vg = jax.value_and_grad(lambda v: fun(unravel(v)))
    f0, g0 = vg(flat0)
    eps = jnp.finfo(dtype).eps
    P = jnp.ones_like(flat0) if precond is None else ravel_pytree(precond)[0].astype(dtype)

    def cond(c):
        return (c["it"] < max_iter) & (jnp.max(jnp.abs(c["g"])) > tol) & ~c["stalled"]

    def body(c):
        x, f, g = c["x"], c["f"], c["g"]
        d = -_two_loop(g, c["S"], c["Y"], c["rho"], c["k"], c["gamma"] * P)
        gd = jnp.dot(g, d)
        descent = gd < 0
        d = jnp.where(descent, d, -g)
        gd = jnp.where(descent, gd, -jnp.dot(g, g))
        first = jnp.minimum(1.0, 1.0 / jnp.linalg.norm(g)) if precond is None else 1.0
        step0 = jnp.where(c["it"] == 0, first, 1.0)
        step, fn, gn, ok = _line_search(vg, x, f, gd, d, step0, 4 * eps * jnp.abs(f),
                                        max_linesearch)
        x_new = jnp.where(ok, x + step * d, x)
        g_new = jnp.where(ok, gn, g)
        k, S, Yh, rho, gamma = _update_memory(c, x_new - x, g_new - g, ok, eps, P)
        return dict(x=x_new, f=jnp.where(ok, fn, f), g=g_new, S=S, Y=Yh, rho=rho, k=k,
                    gamma=gamma, it=c["it"] + 1, stalled=~ok)

    D, m = flat0.shape[0], memory
    init = dict(x=flat0, f=f0, g=g0, S=jnp.zeros((m, D), dtype), Y=jnp.zeros((m, D), dtype),
                rho=jnp.zeros((m,), dtype), k=jnp.asarray(m - 1, jnp.int32),
                gamma=jnp.asarray(1.0, dtype), it=jnp.asarray(0, jnp.int32),
                stalled=jnp.asarray(False))
    out = jax.lax.while_loop(cond, body, init)
    return unravel(out["x"]), out["it"], jnp.max(jnp.abs(out["g"]))
