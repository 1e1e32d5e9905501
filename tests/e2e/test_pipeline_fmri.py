"""``alignjax run`` on a tiny NIfTI study: brain data with mask and ids in [[data]], maps
and ROI summaries in the step folder, the brain section in the report, and a changed mask
(an input fingerprinted by content) rerunning exactly the steps that read it."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("librosa")
nib = pytest.importorskip("nibabel")

from alignjax.app.pipeline import PipelineError, run_pipeline  # noqa: E402
from tests.e2e._study import synth_study  # noqa: E402


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("fmri-pipeline")
    labels, ids = synth_study(root, n=24, seed=3, duration=0.5)
    rng = np.random.default_rng(0)
    aff = np.diag([3.0, 3.0, 3.0, 1.0])
    order = rng.permutation(len(ids))
    nib.save(nib.Nifti1Image(rng.normal(size=(5, 4, 3, len(ids))).astype(np.float32), aff),
             root / "betas.nii.gz")
    (root / "events.tsv").write_text("onset\ttrial_type\n" + "".join(
        f"{2 * k}\t{ids[i]}\n" for k, i in enumerate(order)))
    mask = np.zeros((5, 4, 3), np.uint8)
    mask[1:4, 1:3, :] = 1
    nib.save(nib.Nifti1Image(mask, aff), root / "mask.nii.gz")
    atlas = mask.astype(np.int16)
    atlas[3:] *= 2
    nib.save(nib.Nifti1Image(atlas, aff), root / "atlas.nii.gz")
    (root / "labels.tsv").write_text("index\tname\n1\tfront\n2\tback\n")
    text = f"""
[study]
name = "nifti"
out = "out"

[stimuli]
path = "{labels.relative_to(root).as_posix()}"

[[models]]
name = "mel"
spec = "spectral:mel"

[[data]]
name = "fmri"
path = "betas.nii.gz"
kind = "brain"
mask = "mask.nii.gz"
stimulus_ids = "events.tsv"

[[analyses]]
kind = "encode"
data = "fmri"
alphas = "logspace:0:3:4"
outer_folds = 3
inner_folds = 3
rois = "atlas.nii.gz"
roi_labels = "labels.tsv"

[[analyses]]
kind = "rsa"
data = "fmri"
n_perm = 20
"""
    (root / "pipeline.toml").write_text(text)
    return root


def test_nifti_pipeline_maps_report_and_reruns(study):
    from alignjax.app.report.html import build_report

    cfg = study / "pipeline.toml"
    first = run_pipeline(cfg, progress=False, log=lambda s: None)
    assert [r["status"] for r in first] == ["ran", "ran", "ran"]
    enc = study / "out" / "encode-fmri" / "mel"
    r2 = nib.load(enc / "r2.nii.gz")
    assert r2.shape == (5, 4, 3)
    np.testing.assert_allclose(r2.affine, nib.load(study / "betas.nii.gz").affine)
    assert np.isnan(np.asarray(r2.dataobj)[0]).all()  # outside the mask
    rows = (enc / "roi_summary.csv").read_text().splitlines()
    assert rows[0].startswith("subject,roi") and len(rows) == 3
    record = json.loads((enc / "step.json").read_text())
    assert {"data", "data_mask", "data_stimulus_ids", "rois", "roi_labels"} <= set(record["inputs"])
    assert "r2.nii.gz" in record["outputs"]
    html = build_report(study / "out").read_text()
    assert "Brain maps and regions" in html and "front" in html
    second = run_pipeline(cfg, progress=False, log=lambda s: None)
    assert [r["status"] for r in second] == ["skipped"] * 3
    # a different mask (same file name) is new content: both analyses that read it rerun
    mask = np.asarray(nib.load(study / "mask.nii.gz").dataobj)
    mask[1, 1, 0] = 0
    nib.save(nib.Nifti1Image(mask, nib.load(study / "mask.nii.gz").affine), study / "mask.nii.gz")
    third = run_pipeline(cfg, progress=False, log=lambda s: None)
    assert [r["status"] for r in third] == ["skipped", "ran", "ran"]
    assert "data_mask" in third[1]["reason"]
    assert np.isnan(np.asarray(nib.load(enc / "r2.nii.gz").dataobj)[1, 1, 0])


def test_bad_nifti_data_fails_before_any_step(study):
    text = (study / "pipeline.toml").read_text().replace('out = "out"', 'out = "out-bad"')
    nib.save(nib.Nifti1Image(np.ones((5, 4, 2), np.uint8), np.eye(4)), study / "small.nii.gz")
    (study / "bad.toml").write_text(text.replace('mask = "mask.nii.gz"', 'mask = "small.nii.gz"'))
    with pytest.raises(Exception, match="grid"):
        run_pipeline(study / "bad.toml", progress=False, log=lambda s: None)
    assert not (study / "out-bad" / "features").exists()
    (study / "typo.toml").write_text(text.replace('mask = "mask.nii.gz"', 'masks = "mask.nii.gz"'))
    with pytest.raises(PipelineError, match="unknown option 'masks'"):
        run_pipeline(study / "typo.toml", progress=False, log=lambda s: None)


def test_zoo_pipeline_step_over_three_models(study):
    """A zoo analysis: one step after the models' RSA steps, skipped when they are."""
    from alignjax.app.report.html import build_report

    (study / "hear.csv").write_text("model,hear\nmel,0.7\nmfcc,0.5\nmod,0.6\n")
    text = (study / "pipeline.toml").read_text().replace('out = "out"', 'out = "out-zoo"')
    head, _, _ = text.partition("[[analyses]]")
    head = head.replace('spec = "spectral:mel"\n', 'spec = "spectral:mel"\n\n[[models]]\nname = '
                        '"mfcc"\nspec = "spectral:mfcc"\n\n[[models]]\nname = "mod"\nspec = '
                        '"spectral:modulation"\n')
    cfg = study / "zoo.toml"
    cfg.write_text(head + '[[analyses]]\nkind = "rsa"\ndata = "fmri"\nn_perm = 20\n\n'
                   '[[analyses]]\nkind = "zoo"\nscores = "hear.csv"\nn_boot = 100\n'
                   'n_perm = 200\n')
    first = run_pipeline(cfg, progress=False, log=lambda s: None)
    assert [r["step"] for r in first][-1] == "zoo/all-models"
    assert all(r["status"] == "ran" for r in first)
    zoo = json.loads((study / "out-zoo" / "zoo" / "all-models" / "zoo.json").read_text())
    assert zoo["models"] == ["mel", "mfcc", "mod"] and zoo["measures"] == ["rsa-fmri"]
    assert {r["method"] for r in zoo["correlation"]} == {"pearson", "spearman"}
    assert "Model zoo" in build_report(study / "out-zoo").read_text()
    again = run_pipeline(cfg, progress=False, log=lambda s: None)
    assert all(r["status"] == "skipped" for r in again)
    (study / "hear.csv").write_text("model,hear\nmel,0.7\nmfcc,0.5\nmod,0.65\n")
    third = run_pipeline(cfg, progress=False, log=lambda s: None)
    assert [r["status"] for r in third] == ["skipped"] * 6 + ["ran"]
    (study / "two.toml").write_text(cfg.read_text().replace('out = "out-zoo"', 'out = "out-2"')
                                    .replace('n_perm = 20\n\n[[analyses]]', 'n_perm = 20\n'
                                             'models = ["mel", "mfcc"]\n\n[[analyses]]'))
    with pytest.raises(PipelineError, match="at least 3 models"):
        run_pipeline(study / "two.toml", progress=False, log=lambda s: None)


def test_component_zoo_example_config_is_valid():
    from pathlib import Path

    from alignjax.app.pipeline import load_config, resolve_options

    cfg = load_config(Path(__file__).resolve().parents[2] / "notebooks"
                      / "zoo_components_pipeline.toml")
    zoo = [a for a in cfg.analyses if a["kind"] == "zoo"][0]
    assert resolve_options(zoo, 0)["analyses"] == ["encode-components", "rsa-components"]
    assert cfg.data["components"]["kind"] == "brain"
