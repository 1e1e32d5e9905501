"""The encoding benchmark's I/O path: a NIfTI study through load, nested encoding and maps.

Workload ``io`` of ``bench_ridge.py``: a 4-D NIfTI of 64 x 64 x 40 voxels x 165 stimuli
(gzip-compressed, volumes in shuffled order with an ids file), a 30,000-voxel mask, and 13
layers x 768 features, run end to end by :func:`alignjax.app.studies.encode.run_encode`:
loading (features and image, mask applied), the nested 5 x 5 cross-validated encoding (the
solver), and writing every per-voxel result back as NIfTI maps (plus the tables and
figures ``alignjax encode`` writes). The answers are checked first: the maps hold the
in-memory results on the right voxels, and the encoding of the loaded responses equals
the encoding of the same array passed directly. The row records the time outside the
solver (everything but ``encode``) as a fraction of the total.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import check_close

SIZES = {"io": dict(shape=(64, 64, 40), n=165, n_voxels=30_000, n_layers=13, p=768,
                    n_alphas=8, outer=5, inner=5)}
QUICK = {"io": dict(shape=(16, 16, 10), n=60, n_voxels=800, n_layers=2, p=64,
                    n_alphas=4, outer=3, inner=3)}


def _study(root: Path, size: dict, seed: int = 0) -> dict:
    import nibabel as nib

    rng = np.random.default_rng(seed)
    shape, n, t = size["shape"], size["n"], size["n_voxels"]
    ids = [f"stim{i:03d}" for i in range(n)]
    feats = root / "features"
    feats.mkdir()
    layers = [rng.standard_normal((n, size["p"])).astype(np.float32)
              for _ in range(size["n_layers"])]
    for k, X in enumerate(layers):
        np.save(feats / f"layer{k:02d}.npy", X)
    (feats / "stimulus_ids.txt").write_text("\n".join(ids) + "\n")
    # a blob-shaped mask of exactly t voxels: the t voxels nearest the grid's centre
    grid = np.stack(np.meshgrid(*[np.arange(s) - s / 2 for s in shape], indexing="ij"), -1)
    dist = np.linalg.norm(grid / np.array(shape), axis=-1).ravel()
    mask = np.zeros(int(np.prod(shape)), bool)
    mask[np.argsort(dist, kind="stable")[:t]] = True
    mask = mask.reshape(shape)
    signal = layers[size["n_layers"] // 2][:, :8] @ rng.standard_normal((8, t))
    Y = (signal / signal.std(0) + rng.standard_normal((n, t))).astype(np.float32)
    order = rng.permutation(n)
    data = np.zeros(shape + (n,), np.float32)
    data[mask] = Y[order].T
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-96, -132, -60]
    nib.save(nib.Nifti1Image(data, affine), root / "betas.nii.gz")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), root / "mask.nii.gz")
    (root / "ids.txt").write_text("\n".join(ids[i] for i in order) + "\n")
    return {"features": feats, "betas": root / "betas.nii.gz", "mask": root / "mask.nii.gz",
            "ids": root / "ids.txt", "Y": Y, "mask_array": mask}


def bench_nifti_io(rec, size: dict) -> None:
    """Run the NIfTI encoding path once to compile and check, once timed; add one row."""
    import nibabel as nib

    from alignjax import encode
    from alignjax.app.studies.encode import run_encode
    from alignjax.io import load_layers

    root = Path(tempfile.mkdtemp(prefix="bench-io-"))
    try:
        st = _study(root, size)
        alphas = np.logspace(-1, 6, size["n_alphas"])
        kw = dict(alphas=alphas, outer_folds=size["outer"], inner_folds=size["inner"],
                  extend_alphas=True, progress=False,
                  brain_options={"mask": str(st["mask"]), "stimulus_ids": str(st["ids"])})
        first = run_encode(st["features"], st["betas"], root / "out0", **kw)
        # checks: maps hold the results on their voxels; loading changed nothing
        r2_map = np.asarray(nib.load(root / "out0" / "r2.nii.gz").dataobj)
        subj = next(iter(first["maps"]))
        r2 = np.load(root / "out0" / subj / "r2.npy")
        check_close("io: r2 map at the mask vs the results", r2_map[st["mask_array"]], r2,
                    rtol=1e-6, atol=1e-7)
        direct = encode(load_layers(st["features"]), st["Y"], alphas=alphas,
                        outer_folds=size["outer"], inner_folds=size["inner"],
                        extend_alphas=True)
        check_close("io: encoding of the loaded NIfTI vs the array", r2, direct.r2,
                    rtol=1e-4, atol=1e-5)
        t0 = time.perf_counter()
        summary = run_encode(st["features"], st["betas"], root / "out1", **kw)
        total = time.perf_counter() - t0
        parts = {k: float(v) for k, v in summary["timings"].items()}
        outside = total - parts["encode"]
        shape = "x".join(map(str, size["shape"]))
        workload = (f"io: NIfTI {shape}x{size['n']}, {size['n_voxels']} voxels, "
                    f"{size['n_layers']}x{size['p']}, {size['outer']}x{size['inner']}")
        rec.add(workload, "alignjax.run_encode (NIfTI in, maps out)",
                {"seconds": total, "compile_seconds": None, "repeats": 1},
                seconds_outside_solver=outside, fraction_outside_solver=outside / total,
                seconds_by_part=parts,
                image_bytes=int((root / "betas.nii.gz").stat().st_size))
        print(f"io: total {total:.2f} s, solver {parts['encode']:.2f} s, outside "
              f"{outside:.2f} s ({100 * outside / total:.1f} %): "
              + json.dumps({k: round(v, 3) for k, v in parts.items()}), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
