"""A small synthetic NIfTI study with a planted cube of signal voxels (tests, README, bench).

:func:`simulate_nifti_study` writes, into one folder, what a lab would have: layer
features (``features/<layer>.npy`` + ``stimulus_ids.txt``), per-subject 4-D beta images
(``betas.nii.gz``, or ``sub-XX/betas.nii.gz`` for several subjects) in an oblique
voxel-to-world affine, the stimulus id of each volume (``ids.txt``, volumes in shuffled
order so that matching by position would be wrong), a brain mask, an atlas with its
label table, and ``truth.json`` (the cube's voxels and the layer that drives them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from alignjax.errors import check_positive_int

__all__ = ["simulate_nifti_study"]

_AFFINE = np.array([[2.0, 0.1, 0.0, -40.0], [0.0, 2.0, 0.0, -50.0], [0.0, 0.0, 2.5, -20.0],
                    [0.0, 0.0, 0.0, 1.0]])


def simulate_nifti_study(out: str | os.PathLike, *, n_stimuli: int = 48,
                         shape: tuple = (12, 10, 8), n_subjects: int = 1, cube: int = 3,
                         noise: float = 0.5, n_nan: int = 0, seed: int = 0) -> dict:
    """Write a synthetic NIfTI study; return the paths and the planted truth.

    Parameters
    ----------
    out : path
    n_stimuli : int
    shape : (x, y, z)
        The voxel grid; the mask is the grid without a one-voxel border.
    n_subjects : int
    cube : int
        Side of the cube of signal voxels (at one corner of the mask), each a random
        combination of four features of layer ``late``; every other voxel of the mask is
        noise.
    noise : float
        Noise standard deviation (the signal has unit variance).
    n_nan : int
        Voxels inside the mask (outside the cube) set to NaN in one volume (bad-input tests).
    seed : int

    Returns
    -------
    dict
        ``features``, ``brain`` (file or pattern), ``mask``, ``ids``, ``atlas``,
        ``labels``, ``truth`` paths, ``cube`` (list of (i, j, k)) and ``layer``.
    """
    import nibabel as nib

    n = check_positive_int(n_stimuli, "n_stimuli", minimum=6)
    rng = np.random.default_rng(seed)
    out = Path(out)
    (out / "features").mkdir(parents=True, exist_ok=True)
    ids = [f"stim{i:03d}" for i in range(n)]
    layers = {"early": rng.standard_normal((n, 16)), "late": rng.standard_normal((n, 24))}
    for name, X in layers.items():
        np.save(out / "features" / f"{name}.npy", X.astype(np.float32))
    (out / "features" / "stimulus_ids.txt").write_text("\n".join(ids) + "\n")
    mask = np.zeros(shape, np.uint8)
    mask[1:-1, 1:-1, 1:-1] = 1
    in_cube = np.zeros(shape, bool)
    in_cube[1:1 + cube, 1:1 + cube, 1:1 + cube] = True
    order = rng.permutation(n)  # volumes stored in another order than the features
    (out / "ids.txt").write_text("\n".join(ids[i] for i in order) + "\n")
    header = nib.Nifti1Header()
    header.set_xyzt_units("mm", "sec")
    header["descrip"] = b"alignjax synthetic betas"
    subjects = [f"sub-{s + 1:02d}" for s in range(n_subjects)]
    for s, subj in enumerate(subjects):
        data = noise * rng.standard_normal(shape + (n,))
        w = rng.standard_normal((4, int(in_cube.sum())))
        sig = layers["late"][:, :4] @ w  # a few directions of the layer, as voxels pool units
        sig = (sig - sig.mean(0)) / sig.std(0)
        data[in_cube] += sig.T
        data = data[..., order].astype(np.float32)
        data[mask == 0] = 0.0
        if n_nan:
            cand = np.argwhere((mask > 0) & ~in_cube)[:n_nan]
            data[tuple(cand.T) + (0,)] = np.nan
        path = out / (f"{subj}/betas.nii.gz" if n_subjects > 1 else "betas.nii.gz")
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data, _AFFINE, header=header.copy()), path)
    nib.save(nib.Nifti1Image(mask, _AFFINE), out / "mask.nii.gz")
    atlas = np.zeros(shape, np.int16)
    atlas[mask > 0] = 2
    atlas[: shape[0] // 2][mask[: shape[0] // 2] > 0] = 1
    nib.save(nib.Nifti1Image(atlas, _AFFINE), out / "atlas.nii.gz")
    (out / "atlas_labels.tsv").write_text("index\tname\n1\tanterior\n2\tposterior\n")
    truth = {"cube": np.argwhere(in_cube).tolist(), "layer": "late", "subjects": subjects}
    (out / "truth.json").write_text(json.dumps(truth))
    return {"features": out / "features",
            "brain": out / ("sub-*/betas.nii.gz" if n_subjects > 1 else "betas.nii.gz"),
            "mask": out / "mask.nii.gz", "ids": out / "ids.txt", "atlas": out / "atlas.nii.gz",
            "labels": out / "atlas_labels.tsv", "truth": out / "truth.json",
            "cube": truth["cube"], "layer": "late"}
