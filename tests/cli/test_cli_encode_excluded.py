"""``alignjax encode`` says how many voxels it left out and why (issue 25, item 10): constant
voxels of a float32 NIfTI (non-integer values, which the old 1e-7 rule missed) and voxels
with NaN dropped at loading."""

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")

from alignjax.app.cli import main  # noqa: E402
from alignjax.app.studies.simulate_fmri import simulate_nifti_study  # noqa: E402


def test_encode_log_counts_constant_and_non_finite_voxels(tmp_path, capsys):
    st = simulate_nifti_study(tmp_path / "s", n_stimuli=24, shape=(7, 6, 5), n_nan=3)
    img = nib.load(str(st["brain"]))
    data = np.asarray(img.get_fdata(), np.float32)
    mask = np.asarray(nib.load(str(st["mask"])).get_fdata()) > 0
    finite = mask & np.isfinite(data).all(axis=-1)
    const = np.argwhere(finite)[-4:]  # four voxels of the mask far from the signal cube
    for v, value in zip(const, (1234.567, 0.1, 98.7654, 3.3)):
        data[tuple(v)] = np.float32(value)
    nib.save(nib.Nifti1Image(data, img.affine), str(st["brain"]))
    rc = main(["encode", "--features", str(st["features"]), "--brain", str(st["brain"]),
               "--mask", str(st["mask"]), "--stimulus-ids", str(st["ids"]),
               "--drop-nan-voxels", "--out", str(tmp_path / "o"), "--alphas", "logspace:0:2:3",
               "--outer-folds", "2", "--inner-folds", "2", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    n_fit = int(mask.sum()) - 3 - 4
    assert f"{n_fit} voxels fitted (7 excluded: 4 constant, 3 non-finite)" in out
