"""alignjax run never reports stale or mixed results as up to date (tiny spectral:mel studies).

One regression test per way a rerun used to hand back old numbers: replaced audio, a
re-extracted store, an edited ``.ids.txt``, an input edited during a step, a killed step,
duplicate names, two configs in one folder, a stale report, a dry run that mispredicts,
and two from-scratch runs that differ.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
sf = pytest.importorskip("soundfile")

from alignjax.app.pipeline import PipelineError, run_pipeline  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
QUIET = dict(progress=False, log=lambda s: None)

RSA = """
[[analyses]]
kind = "rsa"
data = "fmri"
n_perm = 10
"""
PROBE = """
[[analyses]]
kind = "probe"
target = "category"
folds = 2
Cs = [1.0]
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    from extractors.synth import synthesize

    root = tmp_path_factory.mktemp("template")
    labels = synthesize(root / "stimuli", n=14, seed=1, duration=0.25, speech=False,
                        categories=["impact", "harmonic", "noise", "chirp"])
    ids = [line.split(",")[0] for line in labels.read_text().splitlines()[1:]]
    rng = np.random.default_rng(0)
    np.savez(root / "brain.npz", stimulus_ids=np.array(ids[::-1]),
             s1=rng.normal(size=(len(ids), 8)), s2=rng.normal(size=(len(ids), 8)))
    return root


@pytest.fixture
def study(template, tmp_path):
    root = tmp_path / "study"
    shutil.copytree(template, root)
    return root


def _config(root, analyses=RSA, *, name="pipeline.toml", models="", out="out", stimuli="stimuli"):
    text = f"""
[study]
name = "tiny"
out = "{out}"

[stimuli]
path = "{stimuli}/labels.csv"

[[models]]
name = "mel"
spec = "spectral:mel"
{models}
[[data]]
name = "fmri"
path = "brain.npz"
kind = "brain"
{analyses}"""
    path = root / name
    path.write_text(text)
    return path


def _run(cfg, **kw):
    return {r["step"]: r["status"] for r in run_pipeline(cfg, **QUIET, **kw)}


def _ran(statuses):
    return {k for k, v in statuses.items() if v in ("ran", "would run")}


def _rewrite_clip(path: Path, gain: float = 0.5):
    """Replace a clip by other samples of the same length and format (same file size)."""
    data, sr = sf.read(str(path), dtype="int16")
    size = path.stat().st_size
    sf.write(str(path), (data * gain).astype(np.int16), sr, subtype="PCM_16")
    assert path.stat().st_size == size


def test_replaced_audio_of_the_same_size_reextracts(study, tmp_path):
    from extractors.run import extract

    from alignjax.errors import StoreError

    cfg = _config(study)
    _run(cfg)
    before = np.load(study / "out" / "features" / "mel" / "logmel.npy")
    clip = sorted((study / "stimuli").glob("*.wav"))[3]
    extract("spectral:mel", study / "stimuli" / "labels.csv", tmp_path / "store", progress=False)
    _rewrite_clip(clip)
    assert _ran(_run(cfg)) == {"extract/mel", "rsa-fmri/mel"}
    after = np.load(study / "out" / "features" / "mel" / "logmel.npy")
    assert not np.array_equal(before, after)
    # the extractor's own resume check sees the new content too
    with pytest.raises(StoreError, match="content of the stimulus files changed"):
        extract("spectral:mel", study / "stimuli" / "labels.csv", tmp_path / "store",
                progress=False)


def test_a_changed_store_reruns_its_analyses(study):
    from alignjax.io.hashing import file_sha256

    cfg = _config(study)
    _run(cfg)
    store = study / "out" / "features" / "mel"
    shutil.rmtree(store)  # deleted and re-extracted: the analyses rerun on the new store
    assert _ran(_run(cfg)) == {"extract/mel", "rsa-fmri/mel"}
    # the store's content changed behind the pipeline's back (a store written elsewhere)
    arr = np.load(store / "logmel.npy")
    np.save(store / "logmel.npy", arr[::-1].copy())
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["layers"]["logmel"]["sha256"] = file_sha256(store / "logmel.npy")
    (store / "manifest.json").write_text(json.dumps(manifest))
    lines = []
    run_pipeline(cfg, dry_run=True, log=lines.append)
    assert "rsa-fmri/mel: would run (input features" in "\n".join(lines)
    assert _ran(_run(cfg)) == {"rsa-fmri/mel"}


def test_edited_ids_txt_reruns(study):
    z = np.load(study / "brain.npz")
    np.save(study / "brain.npy", z["s1"])
    (study / "brain.ids.txt").write_text("\n".join(z["stimulus_ids"]) + "\n")
    cfg = _config(study)
    cfg.write_text(cfg.read_text().replace("brain.npz", "brain.npy"))
    _run(cfg)
    (study / "brain.ids.txt").write_text("\n".join(z["stimulus_ids"][::-1]) + "\n")
    assert _ran(_run(cfg)) == {"rsa-fmri/mel"}


def test_an_input_replaced_during_a_step_is_caught(study, monkeypatch):
    import alignjax.app.studies.rsa as rsa_study
    from alignjax.app.steps import StepError

    cfg = _config(study)
    _run(cfg)
    cfg.write_text(cfg.read_text().replace("n_perm = 10", "n_perm = 12"))
    original = rsa_study.run_rsa

    def edit_then_run(features, brain, out, **kw):
        z = dict(np.load(brain))
        z["s1"] = z["s1"] + 1.0
        np.savez(brain, **z)
        return original(features, brain, out, **kw)

    monkeypatch.setattr(rsa_study, "run_rsa", edit_then_run)
    with pytest.raises(StepError, match="input data .*brain.npz.* changed while the step ran"):
        _run(cfg)
    step = json.loads((study / "out" / "rsa-fmri" / "mel" / "step.json").read_text())
    assert step["options"]["n_perm"] == 10  # the old, complete result is left in place
    monkeypatch.setattr(rsa_study, "run_rsa", original)
    assert _ran(_run(cfg)) == {"rsa-fmri/mel"}


_KILLER = """
import os, signal, sys
from alignjax.app import pipeline, provenance
import alignjax.app.studies.rsa as rsa_study

def die(*args, **kw):
    os.kill(os.getpid(), signal.SIGKILL)

point = sys.argv[2]
if point == "in-step":              # rsa.json written, rsa.png not yet
    rsa_study._save_figure = die
elif point == "before-install":     # step.json written into the temporary folder
    provenance.install = die
elif point == "mid-install":        # the old folder moved aside, the new one not yet in place
    retire = provenance._retire
    provenance._retire = lambda *a: (retire(*a), die())
elif point == "after-install":      # the new folder in place, pipeline.json not yet updated
    install = provenance.install
    provenance.install = lambda *a: (install(*a), die())
pipeline.run_pipeline(sys.argv[1], progress=False, log=lambda s: None)
"""


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _consistent(folder: Path) -> dict:
    """A step folder whose files are exactly those its step.json lists, with those hashes."""
    from alignjax.app.provenance import output_hashes

    step = json.loads((folder / "step.json").read_text())
    assert output_hashes(folder) == step["outputs"]
    return step


@pytest.mark.parametrize("point", ["in-step", "before-install", "mid-install", "after-install"])
def test_sigkill_leaves_the_old_result_or_nothing(study, point):
    cfg = _config(study)
    _run(cfg)
    folder = study / "out" / "rsa-fmri" / "mel"
    old = _snapshot(folder)
    cfg.write_text(cfg.read_text().replace("n_perm = 10", "n_perm = 12"))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(cfg), point], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    if point == "mid-install":
        assert not folder.exists()
    elif point == "after-install":
        assert _consistent(folder)["options"]["n_perm"] == 12
    else:
        assert _snapshot(folder) == old
    lines = []
    run_pipeline(cfg, dry_run=True, log=lines.append)
    expect = "up to date" if point == "after-install" else "would run"
    assert f"rsa-fmri/mel: {expect}" in "\n".join(lines)
    _run(cfg)
    assert _consistent(folder)["options"]["n_perm"] == 12
    assert not list((study / "out" / ".alignjax").glob("trash/*"))
    assert not list((study / "out" / ".alignjax" / "tmp").glob("rsa*"))


def test_duplicate_names_are_refused_with_their_lines(study):
    cfg = _config(study, RSA + RSA.replace("n_perm = 10", "n_perm = 20"))
    with pytest.raises(PipelineError, match=r"\[\[analyses\]\] #1 \(line \d+\) and #2 \(line \d+\) "
                                            r"share the name 'rsa-fmri'.*default name"):
        run_pipeline(cfg, **QUIET)
    text = _config(study).read_text()
    cfg.write_text(text + '\n[[data]]\nname = "fmri"\npath = "brain.npz"\nkind = "brain"\n')
    with pytest.raises(PipelineError, match=r"\[\[data\]\] #1 \(line \d+\) and #2 \(line \d+\)"):
        run_pipeline(cfg, **QUIET)
    assert not (study / "out").exists()


def test_a_second_config_is_refused_unless_forced(study):
    from alignjax.app.report.html import build_report

    first = _config(study, RSA.replace('kind = "rsa"', 'kind = "rsa"\nname = "rsa-first"'))
    _run(first)
    second = _config(study, RSA, name="other.toml")
    for dry in (True, False):
        with pytest.raises(ValueError, match=r"results of another pipeline config.*--force"):
            run_pipeline(second, dry_run=dry, **QUIET)
    assert _ran(_run(second, force=True)) == {"extract/mel", "rsa-fmri/mel"}
    assert not (study / "out" / "rsa-first").exists()
    html = build_report(study / "out").read_text()
    assert "rsa-fmri/mel" in html and "rsa-first" not in html
    with pytest.raises(ValueError, match="another pipeline config"):
        run_pipeline(first, **QUIET)


def test_the_report_flags_a_stale_step_and_embeds_only_recorded_files(study):
    from alignjax.app.report.html import build_report

    cfg = _config(study)
    _run(cfg)
    html = build_report(study / "out").read_text()
    n_images = html.count("data:image/png")
    assert "steps are stale" not in html and "Every result below matches" in html
    shutil.copy(study / "out" / "rsa-fmri" / "mel" / "rsa.png",
                study / "out" / "rsa-fmri" / "mel" / "leftover.png")
    z = dict(np.load(study / "brain.npz"))
    z["s2"] = z["s2"][::-1].copy()
    np.savez(study / "brain.npz", **z)
    html = build_report(study / "out").read_text()
    assert "1 of 2 steps are stale" in html
    assert "stale: input data" in html and "leftover" not in html
    assert html.count("data:image/png") == n_images
    assert "config_text" not in html and 'n_perm = 10' in html  # the config itself


def _tree(root: Path) -> dict:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob("*"))}


def test_dry_run_predicts_exactly_what_the_run_does(study):
    cfg = _config(study, RSA + PROBE)
    clips = sorted((study / "stimuli").glob("*.wav"))

    def swap_categories(root):
        lines = (root / "stimuli" / "labels.csv").read_text().splitlines()
        a, b = lines[1].split(","), lines[2].split(",")
        a[2], b[2] = b[2], a[2]
        lines[1], lines[2] = ",".join(a), ",".join(b)
        (root / "stimuli" / "labels.csv").write_text("\n".join(lines) + "\n")

    def edit_unused_column(root):
        text = (root / "stimuli" / "labels.csv").read_text().splitlines()
        cols = text[1].split(",")
        cols[-1] = "some words"
        text[1] = ",".join(cols)
        (root / "stimuli" / "labels.csv").write_text("\n".join(text) + "\n")

    def edit_brain(root):
        z = dict(np.load(root / "brain.npz"))
        z["s1"] = z["s1"] * 2.0 + 1.0
        np.savez(root / "brain.npz", **z)

    def copy_stimuli(root):
        shutil.copytree(root / "stimuli", root / "stimuli-copy")
        cfg.write_text(cfg.read_text().replace('"stimuli/labels.csv"', '"stimuli-copy/labels.csv"'))

    edits = [
        ("nothing", lambda r: None, set()),
        ("n_perm", lambda r: cfg.write_text(cfg.read_text().replace("n_perm = 10", "n_perm = 11")),
         {"rsa-fmri/mel"}),
        ("explicit default", lambda r: cfg.write_text(cfg.read_text().replace(
            "n_perm = 11", 'n_perm = 11\nmethod = "spearman"')), set()),
        ("unused label column", edit_unused_column, set()),
        ("used label column", swap_categories, {"probe-category/mel"}),
        ("brain data", edit_brain, {"rsa-fmri/mel"}),
        ("touched audio", lambda r: os.utime(clips[0], ns=(1, 1)), set()),
        ("replaced audio", lambda r: _rewrite_clip(clips[1], 0.7),
         {"extract/mel", "rsa-fmri/mel", "probe-category/mel"}),
        ("extraction option", lambda r: cfg.write_text(cfg.read_text().replace(
            'spec = "spectral:mel"', 'spec = "spectral:mel"\nbatch_size = 4')),
         {"extract/mel", "rsa-fmri/mel", "probe-category/mel"}),
        ("deleted result", lambda r: shutil.rmtree(r / "out" / "rsa-fmri"), {"rsa-fmri/mel"}),
        ("interrupted result",
         lambda r: (r / "out" / "probe-category" / "mel" / "step.json").unlink(),
         {"probe-category/mel"}),
        ("new analysis", lambda r: cfg.write_text(cfg.read_text() + RSA.replace(
            'kind = "rsa"', 'kind = "rsa"\nname = "rsa-b"')), {"rsa-b/mel"}),
        ("stimuli copied elsewhere", copy_stimuli, set()),
    ]
    assert _ran(_run(cfg, dry_run=True)) == {"extract/mel", "rsa-fmri/mel", "probe-category/mel"}
    assert not (study / "out").exists()  # a dry run writes nothing
    _run(cfg)
    for what, edit, expected in edits:
        edit(study)
        tree = _tree(study)
        predicted = _ran(_run(cfg, dry_run=True))
        assert _tree(study) == tree, f"{what}: the dry run wrote files"
        assert predicted == _ran(_run(cfg)) == expected, what


def test_fold_counts_and_unsupported_options_fail_before_any_step(study):
    enc = '[[analyses]]\nkind = "encode"\ndata = "fmri"\n\nouter_folds = 30\n'
    cfg = _config(study, enc)
    line = cfg.read_text().splitlines().index("outer_folds = 30") + 1
    with pytest.raises(PipelineError, match=rf"line {line}, analysis 'encode-fmri': cannot make "
                                            r"30 folds from 14 stimuli.*set outer_folds lower"):
        run_pipeline(cfg, **QUIET)
    assert not (study / "out").exists()


def test_probe_options_are_passed_on(study):
    """standardize and a transfer probe's n_perm reach the probe, and are recorded."""
    probe = PROBE.replace("folds = 2", "folds = 2\nstandardize = false\nn_perm = 5")
    _run(_config(study, probe))
    [summary] = (study / "out").glob("probe-category/*/probe.json")
    s = json.loads(summary.read_text())
    assert s["standardize"] is False and s["n_perm"] == 5
    assert all(r["p"] is not None for r in s["layers"])


_TIMING = {"seconds", "started", "finished"}


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in _TIMING}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def test_two_from_scratch_runs_are_identical_apart_from_timing(study):
    cfg = _config(study, RSA + PROBE)
    _run(cfg)
    first = _snapshot(study / "out")
    shutil.rmtree(study / "out")
    _run(cfg)
    second = _snapshot(study / "out")
    assert set(first) == set(second)
    for name in first:
        if name.startswith(".alignjax/hash-cache"):
            continue  # file identities (inode, mtime), not results
        if name.endswith(".json"):
            a, b = json.loads(first[name]), json.loads(second[name])
            for rec in (a, b):  # hashes of JSON results with timing fields (compared below)
                for out in [k for k in rec.get("outputs", {}) if k.endswith(".json")]:
                    rec["outputs"].pop(out)
            assert _strip(a) == _strip(b), name
        else:
            assert first[name] == second[name], name
    step = json.loads(second["probe-category/mel/step.json"])
    assert {"inputs", "options", "versions", "alignjax_commit", "config_sha256", "started",
            "finished"} <= set(step)
    assert {"jax", "numpy", "torch"} <= set(step["versions"])
    probe = json.loads(second["probe-category/mel/probe.json"])
    assert {"seed", "folds", "inner_folds", "n_perm", "class_weight"} <= set(probe)
    assert "n_perm = 10" in json.loads(second["pipeline.json"])["config_text"]


def test_model_weights_are_fingerprinted_by_content(tmp_path):
    from alignjax.app.fingerprint import describe_model, fingerprint

    model = tmp_path / "checkpoint"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"\0" * 64)
    desc = describe_model(f"hf:{model}")
    before = fingerprint(desc)
    (model / "model.safetensors").write_bytes(b"\1" * 64)  # retrained, same size
    assert fingerprint(desc) != before
    assert fingerprint(describe_model("crepe:tiny")) != fingerprint(describe_model("crepe:full"))


def test_the_demo_ground_truth_is_recomputed_not_read_from_an_old_file(tmp_path):
    from alignjax.app.report.html import build_report
    from alignjax.app.studies.demo import DEMO_NAME

    (tmp_path / "pipeline.json").write_text(json.dumps({"study": {"name": DEMO_NAME},
                                                        "steps": []}))
    (tmp_path / "ground_truth.json").write_text(json.dumps({"checks": [
        {"what": "old check", "expected": "x", "found": "OLD-FINDING", "passed": True}]}))
    html = build_report(tmp_path).read_text()
    assert "Planted ground truth" in html and "OLD-FINDING" not in html
    assert "RSA: best layer over all models" in html  # recomputed: nothing found now
