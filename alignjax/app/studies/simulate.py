"""Simulated brain and behaviour data with a known ground truth (for the demo and tests).

Brain data: each subject's voxels are either a noisy linear read-out of one chosen layer
(the planted layer) or pure noise. Behaviour: per-stimulus distributions of categorical
judgements made by simulated raters whose confusions follow the true label.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from alignjax.errors import check_positive_int

__all__ = ["simulate_brain", "simulate_judgements"]


def simulate_brain(features: np.ndarray, stimulus_ids: Sequence[str], out: str | os.PathLike, *,
                   n_subjects: int = 4, n_voxels: int = 200, signal_fraction: float = 0.75,
                   noise: float = 1.0, n_components: int = 20, seed: int = 0) -> Path:
    """Write an ``.npz`` of per-subject responses driven by ``features``.

    Each signal voxel is ``z(features) @ w + noise`` with ``w`` a random combination of the
    top ``n_components`` principal directions of the standardised features (so voxels
    depend on the layer's dominant structure, as real voxels pool many units), scaled so
    the signal has unit variance; ``noise`` is the noise standard deviation. The remaining
    voxels are noise only.

    Returns
    -------
    Path of the ``.npz`` (``stimulus_ids`` + one (n_stimuli, n_voxels) array per subject,
    plus ``signal_mask_<subject>`` boolean arrays saying which voxels carry signal).
    """
    n_subjects = check_positive_int(n_subjects, "n_subjects")
    n_voxels = check_positive_int(n_voxels, "n_voxels")
    rng = np.random.default_rng(seed)
    X = np.asarray(features, dtype=np.float64).reshape(len(stimulus_ids), -1)
    sd = X.std(0)
    X = (X[:, sd > 0] - X[:, sd > 0].mean(0)) / sd[sd > 0]
    U, S, _ = np.linalg.svd(X, full_matrices=False)
    k = min(n_components, U.shape[1])
    basis = U[:, :k] * S[:k] / S[0]
    arrays: dict[str, np.ndarray] = {}
    for s in range(n_subjects):
        name = f"sub{s + 1:02d}"
        sig = rng.random(n_voxels) < signal_fraction
        w = rng.normal(size=(k, n_voxels))
        signal = basis @ w
        signal = (signal - signal.mean(0)) / signal.std(0)
        Y = noise * rng.normal(size=(len(stimulus_ids), n_voxels))
        Y[:, sig] += signal[:, sig]
        arrays[name] = Y.astype(np.float32)
        arrays[f"signal_mask_{name}"] = sig
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    subjects = {k: v for k, v in arrays.items() if not k.startswith("signal_mask_")}
    np.savez(out, stimulus_ids=np.asarray(stimulus_ids), **subjects)
    np.savez(out.with_name(out.stem + "_truth.npz"),
             **{k: v for k, v in arrays.items() if k.startswith("signal_mask_")})
    return out


def simulate_judgements(labels: Sequence[str], *, categories: Sequence[str] | None = None,
                        n_raters: int = 20, accuracy: float = 0.7, seed: int = 0) -> np.ndarray:
    """Counts of categorical judgements per stimulus -> (n_stimuli, n_categories).

    Each rater picks the true category with probability ``accuracy`` and otherwise a
    category drawn uniformly from the rest (so confusions carry no structure beyond the
    label).
    """
    labels = np.asarray([str(x) for x in labels])
    cats = np.asarray(categories if categories is not None else sorted(set(labels)))
    index = {c: i for i, c in enumerate(cats)}
    rng = np.random.default_rng(seed)
    counts = np.zeros((len(labels), len(cats)), dtype=np.int64)
    for i, lab in enumerate(labels):
        true = index[lab]
        p = np.full(len(cats), (1 - accuracy) / max(len(cats) - 1, 1))
        p[true] = accuracy
        counts[i] = rng.multinomial(n_raters, p)
    return counts
