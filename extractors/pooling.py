"""Pooling of time-resolved activations (a separate, recorded step of an extraction)."""

from __future__ import annotations

import numpy as np

from alignjax.errors import check_choice

__all__ = ["POOLINGS", "pool", "fit_frames"]

POOLINGS = ("mean", "max", "first", "stats", "none")


def fit_frames(x: np.ndarray, n_frames: int) -> np.ndarray:
    """Crop the end of, or zero-pad at the end, the frame axis (axis -2) to ``n_frames``."""
    t = x.shape[-2]
    if t >= n_frames:
        return x[..., :n_frames, :]
    pad = [(0, 0)] * x.ndim
    pad[-2] = (0, n_frames - t)
    return np.pad(x, pad)


def pool(x: np.ndarray, method: str = "mean", *, n_frames: int | None = None,
         mask: np.ndarray | None = None) -> np.ndarray:
    """Pool activations over frames.

    Parameters
    ----------
    x : ndarray, shape (..., n_frames_in, n_features)
        Activations of one layer (a leading batch axis is allowed).
    method : {'mean', 'max', 'first', 'stats', 'none'}
        ``mean``/``max`` over frames; ``first`` keeps frame 0 (the CLS token of AST-like
        models); ``stats`` concatenates the mean and the (population) standard deviation,
        giving ``2 * n_features``; ``none`` keeps the frames, cropped or zero-padded at the
        end to ``n_frames``.
    n_frames : int, optional
        Required for ``none``.
    mask : ndarray of bool, shape (n_frames_in,), optional
        Frames that ``mean``, ``max`` and ``stats`` pool over (default: all); ignored by
        ``first`` and ``none``.

    Returns
    -------
    ndarray, shape (..., n_features) or (..., n_frames, n_features)
    """
    check_choice(method, "pooling", POOLINGS)
    x = np.asarray(x)
    if mask is not None and method in ("mean", "max", "stats"):
        mask = np.asarray(mask, bool)
        if mask.shape != x.shape[-2:-1] or not mask.any():
            raise ValueError(f"mask of shape {mask.shape} selects no frame of {x.shape[-2]}")
        x = x[..., mask, :]
    if method == "mean":
        return x.mean(axis=-2)
    if method == "max":
        return x.max(axis=-2)
    if method == "first":
        return x[..., 0, :]
    if method == "stats":
        return np.concatenate([x.mean(axis=-2), x.std(axis=-2)], axis=-1)
    if n_frames is None:
        raise ValueError("pooling 'none' needs n_frames")
    return fit_frames(x, n_frames)
