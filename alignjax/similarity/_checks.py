"""Host-side input checks shared by the similarity kernels (package-internal)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from alignjax.errors import (AlignjaxInputError, ShapeMismatchError, ZeroVarianceError,
                             as_float_array, check_choice, check_finite)

KERNELS = ("linear", "rbf")


def dtype_of(x=None):
    """float32, or float64 with ``jax_enable_x64``."""
    return jnp.result_type(float)


def check_kernel(kernel: str) -> str:
    return check_choice(kernel, "kernel", KERNELS)


def check_min_stimuli(n: int, minimum: int, what: str, name: str = "the inputs") -> None:
    if n < minimum:
        raise ShapeMismatchError(
            f"{what} needs at least {minimum} stimuli, but {name} have {n}; "
            f"use more stimuli (or the biased estimator)")


def check_features(X, name: str, *, min_stimuli: int = 2, what: str = "this metric",
                   stimulus_ids=None) -> np.ndarray:
    """A finite, non-constant (..., n_stimuli, n_features) array.

    Constant means every stimulus has the same features (no variance across stimuli),
    checked per matrix of the leading axes.
    """
    X = as_float_array(X, name, min_ndim=2)
    check_finite(X.reshape(-1, X.shape[-1]) if stimulus_ids is None else
                 np.moveaxis(X, -2, 0).reshape(X.shape[-2], -1), name,
                 labels=stimulus_ids, axis_name="stimulus")
    check_min_stimuli(X.shape[-2], min_stimuli, what, name)
    spread = np.ptp(X, axis=-2).max(axis=-1)
    if np.any(spread == 0):
        where = np.argwhere(np.atleast_1d(spread == 0))[:5].tolist()
        at = f" (batch index {where})" if X.ndim > 2 else ""
        raise ZeroVarianceError(
            f"{name}{at} is constant across stimuli (every stimulus has the same features), so "
            "its similarity to anything is undefined; check that layer/subject or drop it")
    return X


def check_pair(X, Y, *, min_stimuli: int = 2, what: str = "this metric"):
    """Validated ``X``, ``Y`` as arrays of the working dtype with matching stimuli/batch axes."""
    X = check_features(X, "X", min_stimuli=min_stimuli, what=what)
    Y = check_features(Y, "Y", min_stimuli=min_stimuli, what=what)
    if X.shape[-2] != Y.shape[-2]:
        raise ShapeMismatchError(
            f"X has {X.shape[-2]} stimuli (rows) but Y has {Y.shape[-2]}; rows must be the same "
            "stimuli in the same order")
    if X.shape[:-2] != Y.shape[:-2]:
        raise ShapeMismatchError(
            f"leading (batch) axes of X {X.shape[:-2]} and Y {Y.shape[:-2]} differ; vmapped "
            "inputs need the same batch shape (use alignjax.similarity for all pairs)")
    dt = dtype_of()
    return jnp.asarray(X, dt), jnp.asarray(Y, dt)


def check_gram_pair(Kx, Ky, *, min_stimuli: int, what: str):
    Kx = as_float_array(Kx, "Kx", min_ndim=2)
    Ky = as_float_array(Ky, "Ky", min_ndim=2)
    for K, name in ((Kx, "Kx"), (Ky, "Ky")):
        if K.shape[-1] != K.shape[-2]:
            raise ShapeMismatchError(f"{name} must be square (n_stimuli, n_stimuli), got {K.shape}")
        check_finite(K.reshape(-1, K.shape[-1]), name)
    if Kx.shape != Ky.shape:
        raise ShapeMismatchError(f"Kx {Kx.shape} and Ky {Ky.shape} differ in shape")
    check_min_stimuli(Kx.shape[-1], min_stimuli, what, "the Gram matrices")
    dt = dtype_of()
    return jnp.asarray(Kx, dt), jnp.asarray(Ky, dt)


def check_k(k, n: int) -> int:
    from alignjax.errors import check_positive_int

    k = check_positive_int(k, "k")
    if k > n - 2:
        raise AlignjaxInputError(
            f"k={k} nearest neighbours (self excluded) need at least k + 2 = {k + 2} stimuli so "
            f"that some stimulus is not a neighbour, but there are {n}; choose k <= "
            f"{max(n - 2, 1)}")
    return k
