"""NIfTI / GIfTI responses: loading with masks and ids, write-back in the input's space,
ROI summaries, and the bad inputs the issue lists."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")

from alignjax.errors import (InvalidOptionError, NonFiniteError, ShapeMismatchError,  # noqa: E402
                             StimulusMismatchError, StoreError)
from alignjax.io import (SurfaceSpace, VolumeSpace, load_responses, roi_summary,  # noqa: E402
                         write_maps)

SHAPE = (7, 6, 5)
N = 9


def _affine():
    a = np.array([[0.0, -2.0, 0.0, 30.0], [2.0, 0.0, 0.0, -40.0], [0.0, 0.0, 2.5, -12.0],
                  [0, 0, 0, 1.0]])
    return a


def _header():
    h = nib.Nifti1Header()
    h.set_xyzt_units("mm", "sec")
    h["descrip"] = b"planted"
    h.set_qform(_affine(), 1)
    h.set_sform(_affine(), 2)
    return h


def _coded(shape=SHAPE, n=N):
    """4-D data whose value at voxel (i, j, k), stimulus s is 1000 i + 100 j + 10 k + s."""
    i, j, k, s = np.meshgrid(*[np.arange(d) for d in shape + (n,)], indexing="ij")
    return (1000 * i + 100 * j + 10 * k + s).astype(np.float32)


@pytest.fixture
def study(tmp_path):
    data = _coded()
    nib.save(nib.Nifti1Image(data, _affine(), header=_header()), tmp_path / "betas.nii.gz")
    mask = np.zeros(SHAPE, np.uint8)
    mask[2:5, 1:4, 1:4] = 1  # a planted 3x3x3 cube
    mask[0, 0, 0] = 1
    nib.save(nib.Nifti1Image(mask, _affine()), tmp_path / "mask.nii.gz")
    ids = [f"s{i}" for i in range(N)]
    (tmp_path / "ids.txt").write_text("\n".join(ids))
    return tmp_path, data, mask.astype(bool), ids


def test_nifti_round_trip_puts_each_value_on_its_voxel(study, tmp_path):
    d, data, mask, ids = study
    resp = load_responses(d / "betas.nii.gz", mask=d / "mask.nii.gz", stimulus_ids=d / "ids.txt")
    (subj, Y), = resp.subjects.items()
    space = resp.spaces[subj]
    assert isinstance(space, VolumeSpace) and space.n_targets == mask.sum() == Y.shape[1]
    np.testing.assert_array_equal(space.coords, np.argwhere(mask))
    np.testing.assert_array_equal(Y, data[mask].T)
    world = space.world
    np.testing.assert_allclose(world[0], _affine()[:3, :3] @ space.coords[0] + _affine()[:3, 3])
    # a reordering by id keeps the voxels: stimulus s3 first
    aligned = resp.aligned_to(["s3", "s0"])
    assert aligned.spaces[subj] is space
    written = write_maps({"code": Y[0], "per_stim": Y[:4], "count": np.arange(Y.shape[1]),
                          "flag": Y[1] > 3000}, space, tmp_path / "maps")
    img = nib.load(written["code"][0])
    vol = np.asarray(img.dataobj)
    np.testing.assert_array_equal(vol[mask], data[..., 0][mask])
    assert np.isnan(vol[~mask]).all()
    assert nib.load(written["per_stim"][0]).shape == SHAPE + (4,)
    np.testing.assert_array_equal(np.asarray(nib.load(written["per_stim"][0]).dataobj)[mask],
                                  data[..., :4][mask])
    count = np.asarray(nib.load(written["count"][0]).dataobj)
    assert count.dtype.kind == "i" and (count[~mask] == -1).all()
    np.testing.assert_array_equal(np.argwhere(mask)[count[mask]], np.argwhere(mask))
    # affine and header preserved
    src = nib.load(d / "betas.nii.gz").header
    for f in written.values():
        h = nib.load(f[0]).header
        np.testing.assert_allclose(nib.load(f[0]).affine, _affine(), atol=1e-6)
        assert h["descrip"] == src["descrip"] and h.get_xyzt_units() == ("mm", "sec")
        assert int(h["qform_code"]) == 1 and int(h["sform_code"]) == 2
        np.testing.assert_allclose(h["pixdim"][1:4], src["pixdim"][1:4])


def test_folder_of_3d_betas_matches_the_4d_image(study, tmp_path):
    d, data, mask, ids = study
    folder = tmp_path / "betas"
    folder.mkdir()
    for s, sid in enumerate(ids):
        nib.save(nib.Nifti1Image(data[..., s], _affine(), header=_header()),
                 folder / f"{sid}.nii.gz")
    four = load_responses(d / "betas.nii.gz", mask=d / "mask.nii.gz", stimulus_ids=d / "ids.txt")
    three = load_responses(folder, mask=d / "mask.nii.gz", stimulus_ids=ids[::-1])
    np.testing.assert_array_equal(three.aligned_to(ids).subjects["betas"],
                                  next(iter(four.subjects.values())))
    (folder / "s4.nii.gz").unlink()
    with pytest.raises(StimulusMismatchError, match=r"no beta image for 1 of 9.*'s4'"):
        load_responses(folder, mask=d / "mask.nii.gz", stimulus_ids=ids)


def test_stimulus_ids_from_events_table_and_sidecar(study):
    d, data, mask, ids = study
    rows = "".join(f"{2.0 * i}\t1.0\t{s}\n" for i, s in enumerate(ids))
    (d / "events.tsv").write_text("onset\tduration\ttrial_type\n" + rows)
    resp = load_responses(d / "betas.nii.gz", mask=d / "mask.nii.gz", stimulus_ids=d / "events.tsv")
    assert resp.stimulus_ids == ids
    with pytest.raises(StimulusMismatchError, match="no stimulus ids"):
        load_responses(d / "betas.nii.gz", mask=d / "mask.nii.gz")
    (d / "betas_events.tsv").write_text("stim_file\n" + "".join(f"sounds/{s}.wav\n" for s in ids))
    assert load_responses(d / "betas.nii.gz", mask=d / "mask.nii.gz").stimulus_ids == ids
    with pytest.raises(StimulusMismatchError, match="9 volumes but 8 stimulus ids"):
        load_responses(d / "betas.nii.gz", stimulus_ids=ids[:8])
    with pytest.raises(InvalidOptionError, match="do not apply"):
        np.savez(d / "x.npz", stimulus_ids=np.array(ids), a=np.zeros((N, 2)))
        load_responses(d / "x.npz", mask=d / "mask.nii.gz")


def test_bad_masks_are_refused(study):
    d, data, mask, ids = study
    kw = dict(stimulus_ids=ids)
    nib.save(nib.Nifti1Image(np.ones((7, 6, 4), np.uint8), _affine()), d / "small.nii.gz")
    with pytest.raises(ShapeMismatchError, match=r"grid \(7, 6, 4\).*\(7, 6, 5\)"):
        load_responses(d / "betas.nii.gz", mask=d / "small.nii.gz", **kw)
    shifted = _affine().copy()
    shifted[0, 3] += 2
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), shifted), d / "shifted.nii.gz")
    with pytest.raises(ShapeMismatchError, match="different affines"):
        load_responses(d / "betas.nii.gz", mask=d / "shifted.nii.gz", **kw)
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.uint8), _affine()), d / "empty.nii.gz")
    with pytest.raises(InvalidOptionError, match="holds no voxels"):
        load_responses(d / "betas.nii.gz", mask=d / "empty.nii.gz", **kw)


def test_nan_voxels_reported_with_counts_and_excluded_on_request(study, tmp_path):
    d, data, mask, ids = study
    bad = data.copy()
    bad[3, 2, 2, [1, 4]] = np.nan  # one voxel of the cube, two stimuli
    bad[2, 1, 1, 0] = np.inf
    nib.save(nib.Nifti1Image(bad, _affine(), header=_header()), d / "nan.nii.gz")
    with pytest.raises(NonFiniteError, match=r"2 of 28 voxels .*\(in 3 of 9 stimuli; first at voxel \(2, 1, 1\)"):
        load_responses(d / "nan.nii.gz", mask=d / "mask.nii.gz", stimulus_ids=ids)
    with pytest.warns(UserWarning, match="excluded"):
        resp = load_responses(d / "nan.nii.gz", mask=d / "mask.nii.gz", stimulus_ids=ids,
                              nan_voxels="exclude")
    (subj, Y), = resp.subjects.items()
    space = resp.spaces[subj]
    assert Y.shape[1] == 26 and space.n_excluded_nan == 2 and not space.mask[3, 2, 2]
    out = write_maps({"v": Y[5]}, space, tmp_path / "m")["v"][0]
    vol = np.asarray(nib.load(out).dataobj)
    assert np.isnan(vol[3, 2, 2]) and vol[2, 2, 2] == data[2, 2, 2, 5]


def test_write_maps_refuses_the_wrong_space_and_writes_nothing(study, tmp_path):
    d, data, mask, ids = study
    resp = load_responses(d / "betas.nii.gz", mask=d / "mask.nii.gz", stimulus_ids=ids)
    space = next(iter(resp.spaces.values()))
    with pytest.raises(ShapeMismatchError, match="not from these responses"):
        write_maps({"ok": np.zeros(space.n_targets), "bad": np.zeros(space.n_targets + 1)},
                   space, tmp_path / "never")
    assert not (tmp_path / "never").exists()


def _gifti(path, rows, meta=None):
    darrays = [nib.gifti.GiftiDataArray(np.asarray(r, np.float32)) for r in rows]
    nib.save(nib.gifti.GiftiImage(darrays=darrays,
                                  meta=nib.gifti.GiftiMetaData(meta or {})), path)


def test_gifti_both_hemispheres_round_trip(tmp_path):
    n_l, n_r = 12, 10
    ids = [f"s{i}" for i in range(N)]
    left = np.arange(N)[:, None] * 100 + np.arange(n_l)[None]
    right = -(np.arange(N)[:, None] * 100 + np.arange(n_r)[None]) - 1
    _gifti(tmp_path / "sub-01_hemi-L.func.gii", left, {"AnatomicalStructurePrimary": "CortexLeft"})
    _gifti(tmp_path / "sub-01_hemi-R.func.gii", right)
    (tmp_path / "sub-01.ids.txt").write_text("\n".join(ids))
    ml, mr = np.zeros(n_l), np.zeros(n_r)
    ml[[1, 4, 5]] = 1
    mr[[0, 9]] = 1
    _gifti(tmp_path / "mask_hemi-L.func.gii", [ml])
    _gifti(tmp_path / "mask_hemi-R.func.gii", [mr])
    resp = load_responses(tmp_path / "sub-01_hemi-L.func.gii",
                          mask=tmp_path / "mask_hemi-L.func.gii")
    assert resp.stimulus_ids == ids and list(resp.subjects) == ["sub-01"]
    Y, space = resp.subjects["sub-01"], resp.spaces["sub-01"]
    assert isinstance(space, SurfaceSpace) and space.hemispheres == ("L", "R")
    np.testing.assert_array_equal(Y, np.concatenate([left[:, [1, 4, 5]], right[:, [0, 9]]], 1))
    out = write_maps({"r2": Y[2], "layers": Y[:3]}, space, tmp_path / "maps")
    assert [p.name for p in out["r2"]] == ["r2_hemi-L.func.gii", "r2_hemi-R.func.gii"]
    got_l = nib.load(out["r2"][0])
    vals = got_l.darrays[0].data
    np.testing.assert_array_equal(vals[[1, 4, 5]], left[2, [1, 4, 5]])
    assert np.isnan(vals[[0, 2, 3]]).all() and vals.shape == (n_l,)
    assert got_l.meta["AnatomicalStructurePrimary"] == "CortexLeft"
    np.testing.assert_array_equal(nib.load(out["r2"][1]).darrays[0].data[[0, 9]],
                                  right[2, [0, 9]])
    assert len(nib.load(out["layers"][1]).darrays) == 3
    _gifti(tmp_path / "short_hemi-L.func.gii", [np.ones(5)])
    _gifti(tmp_path / "short_hemi-R.func.gii", [np.ones(5)])
    with pytest.raises(ShapeMismatchError, match="5 vertices"):
        load_responses(tmp_path / "sub-01_hemi-L.func.gii",
                       mask=tmp_path / "short_hemi-L.func.gii")


def test_several_subjects_by_pattern_and_by_table(study, tmp_path):
    d, data, mask, ids = study
    for k, sub in enumerate(["sub-01", "sub-02"]):
        (tmp_path / sub).mkdir()
        nib.save(nib.Nifti1Image(data + k, _affine(), header=_header()),
                 tmp_path / sub / "betas.nii.gz")
        (tmp_path / sub / "betas.ids.txt").write_text("\n".join(ids if k == 0 else ids[::-1]))
    resp = load_responses(str(tmp_path / "sub-*" / "betas.nii.gz"), mask=d / "mask.nii.gz")
    assert list(resp.subjects) == ["sub-01", "sub-02"] and set(resp.spaces) == set(resp.subjects)
    # sub-02 lists its volumes in reverse order: matched by id, not by position
    np.testing.assert_array_equal(resp.subjects["sub-02"], resp.subjects["sub-01"][::-1] + 1)
    (tmp_path / "study.subjects.tsv").write_text(
        "subject\tpath\tmask\nA\tsub-01/betas.nii.gz\t" + str(d / "mask.nii.gz")
        + "\nB\tsub-02/betas.nii.gz\t" + str(d / "mask.nii.gz") + "\n")
    table = load_responses(tmp_path / "study.subjects.tsv")
    assert list(table.subjects) == ["A", "B"]
    np.testing.assert_array_equal(table.subjects["B"], resp.subjects["sub-02"])


def test_roi_summary_matches_numpy(study):
    d, data, mask, ids = study
    resp = load_responses(d / "betas.nii.gz", mask=d / "mask.nii.gz", stimulus_ids=ids)
    subj = next(iter(resp.subjects))
    space = resp.spaces[subj]
    rng = np.random.default_rng(1)
    r2 = rng.random(space.n_targets)
    r2[3] = np.nan
    best = rng.integers(0, 3, space.n_targets)
    best[5] = -1
    atlas = np.zeros(SHAPE, np.int16)
    atlas[:4] = 1
    atlas[4:] = 7
    nib.save(nib.Nifti1Image(atlas, _affine()), d / "atlas.nii.gz")
    (d / "labels.tsv").write_text("index\tname\n1\tHG\n7\tSTG\n")
    res = roi_summary({subj: r2}, {subj: best}, resp.spaces, d / "atlas.nii.gz",
                      d / "labels.tsv", layer_names=["a", "b", "c"])
    lab = atlas[mask]
    for row in res.rows:
        inside = lab == row["label"]
        ok = inside & np.isfinite(r2) & (best >= 0)
        assert row["n_voxels"] == inside.sum() and row["n_valid"] == ok.sum()
        np.testing.assert_allclose(row["median_r2"], np.median(r2[ok]))
        assert row["mode_best_layer"] == "abc"[np.bincount(best[ok], minlength=3).argmax()]
    fr = {(r["roi"], r["layer"]): r["fraction"] for r in res.best_layer_rows}
    ok = (lab == 7) & np.isfinite(r2) & (best >= 0)
    np.testing.assert_allclose(fr[("STG", "b")], np.mean(best[ok] == 1))
    (d / "labels.tsv").write_text("index\tname\n1\tHG\n")
    with pytest.raises(StoreError, match=r"label\(s\) missing from the label table.*\[7\]"):
        roi_summary({subj: r2}, {subj: best}, resp.spaces, d / "atlas.nii.gz", d / "labels.tsv",
                    layer_names=["a", "b", "c"])


def test_brain_figures_montage_and_nilearn(study, tmp_path):
    from alignjax.app.report.brain import plot_brain_montage, write_brain_figures

    d, data, mask, ids = study
    resp = load_responses(d / "betas.nii.gz", mask=d / "mask.nii.gz", stimulus_ids=ids)
    space = next(iter(resp.spaces.values()))
    n = space.n_targets
    written = write_maps({"r2": np.linspace(0, 0.5, n), "best_layer": np.arange(n) % 3},
                         space, tmp_path)
    pngs = write_brain_figures(written, ["a", "b", "c"], tmp_path, plot=plot_brain_montage)
    assert [p.name for p in pngs] == ["brain_r2.png", "brain_best_layer.png"]
    assert all(p.stat().st_size > 2000 for p in pngs)
    if pytest.importorskip("nilearn"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pngs = write_brain_figures(written, ["a", "b", "c"], tmp_path, suffix="_nl")
        assert all(p.stat().st_size > 2000 for p in pngs)


def test_core_imports_without_nibabel():
    code = ("import sys; import alignjax, alignjax.io; "
            "assert 'nibabel' not in sys.modules and 'nilearn' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_roi_summary_on_surfaces(tmp_path):
    ids = [f"s{i}" for i in range(N)]
    rng = np.random.default_rng(3)
    _gifti(tmp_path / "lh.sub-02.func.gii", rng.normal(size=(N, 8)))
    _gifti(tmp_path / "rh.sub-02.func.gii", rng.normal(size=(N, 6)))
    resp = load_responses(tmp_path / "lh.sub-02.func.gii", stimulus_ids=ids)
    space = resp.spaces["sub-02"]
    assert space.hemispheres == ("L", "R") and space.n_targets == 14
    lab_l, lab_r = np.array([1, 1, 2, 2, 2, 0, 1, 2]), np.array([2, 2, 1, 0, 0, 1])
    for name, lab in (("lh.atlas.label.gii", lab_l), ("rh.atlas.label.gii", lab_r)):
        nib.save(nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(lab.astype(np.int32))]),
                 tmp_path / name)
    r2 = rng.random(14)
    res = roi_summary({"sub-02": r2}, {"sub-02": np.zeros(14, int)}, resp.spaces,
                      tmp_path / "lh.atlas.label.gii", {1: "A1", 2: "belt"}, layer_names=["x"])
    lab = np.concatenate([lab_l, lab_r])
    for row in res.rows:
        np.testing.assert_allclose(row["median_r2"], np.median(r2[lab == row["label"]]))
