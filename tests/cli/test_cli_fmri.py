"""``alignjax encode`` / ``rsa`` on a tiny synthetic NIfTI study: --brain/--mask/--stimulus-ids,
maps written back on the right voxels, ROI summaries, and clear errors."""

import csv
import json

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")

from alignjax.app.cli import main  # noqa: E402
from alignjax.app.studies.simulate_fmri import simulate_nifti_study  # noqa: E402


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return simulate_nifti_study(tmp_path_factory.mktemp("fmri"), n_stimuli=60,
                                shape=(9, 8, 6), n_subjects=2, cube=3, noise=0.4)


@pytest.fixture(scope="module")
def encoded(study, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc") / "out"
    rc = main(["encode", "--features", str(study["features"]), "--brain", str(study["brain"]),
               "--mask", str(study["mask"]), "--stimulus-ids", str(study["ids"]),
               "--out", str(out), "--alphas", "logspace:-1:3:5", "--outer-folds", "3",
               "--inner-folds", "3", "--rois", str(study["atlas"]),
               "--roi-labels", str(study["labels"]), "--no-progress"])
    assert rc == 0
    return out


def test_encode_maps_put_the_planted_cube_back_on_its_voxels(study, encoded):
    mask = np.asarray(nib.load(study["mask"]).dataobj) > 0
    cube = np.zeros_like(mask)
    cube[tuple(np.array(study["cube"]).T)] = True
    src = nib.load(study["brain"].parent.parent / "sub-01" / "betas.nii.gz")
    layers = [line.split("\t")[1].strip() for line in
              (encoded / "sub-01" / "best_layer_labels.tsv").read_text().splitlines()[1:]]
    for subj in ("sub-01", "sub-02"):
        img = nib.load(encoded / subj / "r2.nii.gz")
        np.testing.assert_allclose(img.affine, src.affine)
        assert img.header["descrip"] == src.header["descrip"] and img.shape == mask.shape
        r2 = np.asarray(img.dataobj)
        assert np.isnan(r2[~mask]).all() and np.isfinite(r2[mask]).all()
        # the planted cube is where the R² is: the top voxels of the map are its voxels
        top = np.argsort(r2[mask])[::-1][: int(cube.sum())]
        assert cube[mask][top].mean() >= 0.9
        assert np.median(r2[cube]) > 0.3 > np.median(r2[mask & ~cube])
        # the voxel-wise .npy results, written back, are the map's values in mask order
        np.testing.assert_allclose(r2[mask], np.load(encoded / subj / "r2.npy"), rtol=1e-6)
        best = np.asarray(nib.load(encoded / subj / "best_layer.nii.gz").dataobj)
        assert (best[cube] == layers.index(study["layer"])).mean() >= 0.9
        assert (best[~mask] == -1).all()
        assert nib.load(encoded / subj / "layer_r2.nii.gz").shape == mask.shape + (2,)
        for name in ("r", "cod", "best_alpha", "valid"):
            assert (encoded / subj / f"{name}.nii.gz").is_file()
    summary = json.loads((encoded / "summary.json").read_text())
    assert summary["spaces"]["sub-01"]["n_targets"] == int(mask.sum())
    assert "sub-01/r2.nii.gz" in summary["maps"]["sub-01"]["r2"]
    for png in ("brain_r2_sub-01.png", "brain_best_layer_sub-02.png", "roi_summary.png"):
        assert (encoded / png).stat().st_size > 2000


def test_roi_summary_csv_finds_the_cube_region(encoded):
    rows = list(csv.DictReader(open(encoded / "roi_summary.csv")))
    assert {(r["subject"], r["roi"]) for r in rows} == {
        (s, roi) for s in ("sub-01", "sub-02") for roi in ("anterior", "posterior")}
    by = {(r["subject"], r["roi"]): r for r in rows}
    for s in ("sub-01", "sub-02"):  # the cube lies in the anterior half
        assert by[(s, "anterior")]["mode_best_layer"] == "late"
    layer_rows = list(csv.DictReader(open(encoded / "roi_best_layer.csv")))
    assert len(layer_rows) == 2 * 2 * 2


def test_rsa_with_a_mask_compares_the_roi_rdm(study, tmp_path):
    import nibabel as nib

    aff = nib.load(study["mask"]).affine
    roi = np.zeros(nib.load(study["mask"]).shape, np.uint8)
    roi[tuple(np.array(study["cube"]).T)] = 1
    nib.save(nib.Nifti1Image(roi, aff), tmp_path / "roi.nii.gz")
    noise = np.zeros_like(roi)
    noise[-4:-1, -4:-1, -4:-1] = 1  # the opposite corner of the mask: noise voxels only
    nib.save(nib.Nifti1Image(noise, aff), tmp_path / "noise.nii.gz")
    res = {}
    for name, mask in (("cube", tmp_path / "roi.nii.gz"), ("noise", tmp_path / "noise.nii.gz")):
        rc = main(["rsa", "--features", str(study["features"]), "--brain", str(study["brain"]),
                   "--mask", str(mask), "--stimulus-ids", str(study["ids"]), "--out",
                   str(tmp_path / name), "--n-perm", "50"])
        assert rc == 0
        res[name] = json.loads((tmp_path / name / "rsa.json").read_text())
    late = res["cube"]["layers"].index("late")
    assert res["cube"]["group_r"][late] > 0.2 > abs(res["noise"]["group_r"][late])
    assert res["cube"]["group_p_fwe"][late] < 0.05
    assert res["cube"]["brain_options"]["mask"].endswith("roi.nii.gz")


def test_clear_errors_for_bad_brain_input(study, tmp_path, capsys):
    base = ["encode", "--features", str(study["features"]), "--out", str(tmp_path / "o"),
            "--outer-folds", "3", "--inner-folds", "3", "--no-progress"]
    empty = np.zeros(nib.load(study["mask"]).shape, np.uint8)
    nib.save(nib.Nifti1Image(empty, nib.load(study["mask"]).affine), tmp_path / "empty.nii.gz")
    assert main(base + ["--brain", str(study["brain"]), "--mask", str(tmp_path / "empty.nii.gz"),
                        "--stimulus-ids", str(study["ids"])]) == 2
    assert "holds no voxels" in capsys.readouterr().err
    assert main(base + ["--brain", str(study["brain"]), "--mask", str(study["mask"])]) == 2
    assert "no stimulus ids" in capsys.readouterr().err
    np.savez(tmp_path / "b.npz", stimulus_ids=np.array([f"stim{i:03d}" for i in range(60)]),
             s=np.random.default_rng(0).normal(size=(60, 5)))
    assert main(base + ["--brain", str(tmp_path / "b.npz"), "--rois", str(study["atlas"]),
                        "--roi-labels", str(study["labels"])]) == 2
    assert "NIfTI/GIfTI" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_nan_voxels_refused_with_counts_or_dropped_on_request(tmp_path, capsys):
    st = simulate_nifti_study(tmp_path / "nan", n_stimuli=24, shape=(7, 6, 5), n_nan=3)
    base = ["rsa", "--features", str(st["features"]), "--brain", str(st["brain"]), "--mask",
            str(st["mask"]), "--stimulus-ids", str(st["ids"]), "--n-perm", "10"]
    assert main(base + ["--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "3 of 60 voxels inside the mask hold NaN or inf (in 1 of 24 stimuli" in err
    assert "--drop-nan-voxels" in err and not (tmp_path / "a").exists()
    with pytest.warns(UserWarning, match="3 of 60 voxels .* excluded"):
        assert main(base + ["--out", str(tmp_path / "b"), "--drop-nan-voxels"]) == 0
    assert json.loads((tmp_path / "b" / "rsa.json").read_text())["brain_options"] == {
        "mask": str(st["mask"]), "stimulus_ids": str(st["ids"]), "nan_voxels": "exclude"}


def test_similarity_with_a_mask_compares_the_roi(study, tmp_path):
    import nibabel as nib

    aff = nib.load(study["mask"]).affine
    roi = np.zeros(nib.load(study["mask"]).shape, np.uint8)
    roi[tuple(np.array(study["cube"]).T)] = 1
    nib.save(nib.Nifti1Image(roi, aff), tmp_path / "roi.nii.gz")
    rc = main(["similarity", "--features", str(study["features"]), "--brain",
               str(study["brain"]), "--mask", str(tmp_path / "roi.nii.gz"), "--stimulus-ids",
               str(study["ids"]), "--metrics", "cka,rsa_spearman", "--n-perm", "50",
               "--out", str(tmp_path / "sim"), "--no-progress"])
    assert rc == 0
    s = json.loads((tmp_path / "sim" / "similarity.json").read_text())
    assert s["brain_options"]["mask"].endswith("roi.nii.gz")
    late = [r for r in s["rows"] if r["metric"] == "cka" and r["layer"].endswith("late")]
    assert late and all(r["p_fwe"] < 0.05 for r in late)
