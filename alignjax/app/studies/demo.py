"""The embedded demo: ``alignjax demo``.

Synthesises a labelled stimulus set, extracts features from several models (spectral
baselines, CREPE with its real weights, a randomly initialised wav2vec2 as a control),
plants simulated brain responses in one layer of one model, simulates human judgements of
material and hollowness, runs the whole pipeline (RSA with permutations, noise ceilings
and spectral regress-out; nested-CV encoding; material probes with a transfer split) and
writes an HTML report that sets the planted ground truth beside what the analyses found.
It is ``alignjax run`` on a generated ``pipeline.toml``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

__all__ = ["run_demo", "ground_truth_checks", "PLANTED", "DEMO_NAME"]

# the planted layer: CREPE's real-weight network, a middle convolution
PLANTED = ("crepe", "conv3")
# the [study] name of the demo's pipeline; the report sets the planted truth beside it
DEMO_NAME = "alignjax demo"

# half the stimuli are impact sounds, so material x hollowness has enough members
_CATEGORIES = ("impact", "harmonic", "impact", "noise", "impact", "chirp", "impact", "am",
               "impact", "fm", "impact", "clicks")


def _models_toml(model_dir: Path) -> str:
    return f"""
[[models]]
name = "mel"
spec = "spectral:mel"

[[models]]
name = "mfcc"
spec = "spectral:mfcc"

[[models]]
name = "modulation"
spec = "spectral:modulation"

[[models]]
name = "crepe"
spec = "crepe:tiny"

[[models]]
name = "random_w2v"
spec = "hf:{model_dir.as_posix()}"
"""


def _write(path: Path, text: str) -> None:
    path.write_text(text.lstrip(), encoding="utf-8")


_ANALYSES_TOML = """
[[data]]
name = "fmri"
path = "data/brain.npz"
kind = "brain"

[[data]]
name = "material_judgements"
path = "data/judgements_material.npz"
kind = "judgements"

[[data]]
name = "hollowness_judgements"
path = "data/judgements_hollow.npz"
kind = "judgements"

[[analyses]]
kind = "rsa"
data = "fmri"
n_perm = {n_perm}
n_boot = {n_boot}
control = "mel"

[[analyses]]
kind = "behaviour_rsa"
data = "material_judgements"
n_perm = {n_perm}

[[analyses]]
kind = "behaviour_rsa"
data = "hollowness_judgements"
n_perm = {n_perm}

[[analyses]]
kind = "encode"
data = "fmri"
outer_folds = {outer_folds}
inner_folds = {inner_folds}
stratify = "category"

[[analyses]]
kind = "probe"
name = "probe-material"
target = "material"
where = "category=impact"
folds = {probe_folds}

[[analyses]]
kind = "probe"
name = "probe-material-transfer"
target = "material"
where = "category=impact"
transfer_train = "hollow=1"
transfer_test = "hollow=0"
folds = {probe_folds}
"""


def run_demo(out="demo-out", *, n_stimuli: int = 165, n_subjects: int = 4, n_voxels: int = 200,
             n_perm: int = 1000, n_boot: int = 200, outer_folds: int = 5, inner_folds: int = 5,
             probe_folds: int = 5, duration: float = 1.0, seed: int = 0, progress: bool = True,
             log=print) -> dict:
    """Run the demo end to end into ``out``; return the ground-truth checks.

    Half of the stimuli are impact sounds; material x hollowness is balanced from
    ``n_stimuli >= 165`` on (the transfer probe needs every material on both sides).
    """
    from extractors.synth import espeak_available, synthesize
    from extractors.tiny import build_random_model

    from alignjax.app.pipeline import run_pipeline

    t_start = time.perf_counter()
    timings = {}
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    speech = espeak_available()
    cats = _CATEGORIES + (("speech",) if speech else ())
    log(f"1/5 synthesising {n_stimuli} sounds ({', '.join(sorted(set(cats)))})"
        + ("" if speech else "; espeak-ng not installed, so no speech"))
    t = time.perf_counter()
    labels_csv = synthesize(out / "stimuli", n=n_stimuli, seed=seed, categories=cats,
                            duration=duration)
    model_dir = build_random_model("wav2vec2", out / "models", size="tiny", seed=seed)
    timings["synthesis"] = time.perf_counter() - t

    log("2/5 extracting features (spectral baselines, CREPE tiny, random wav2vec2)")
    t = time.perf_counter()
    header = f'[study]\nname = "{DEMO_NAME}"\nout = "."\nseed = {seed}\n\n' \
             f'[stimuli]\npath = "stimuli/{labels_csv.name}"\n'
    _write(out / "pipeline.toml", header + _models_toml(model_dir))
    run_pipeline(out / "pipeline.toml", progress=progress, log=log)
    timings["extraction"] = time.perf_counter() - t

    log(f"3/5 simulating brain data planted in {PLANTED[0]}:{PLANTED[1]} and human judgements")
    _simulate_data(out, labels_csv, n_subjects=n_subjects, n_voxels=n_voxels, seed=seed)
    analyses = _ANALYSES_TOML.format(n_perm=n_perm, n_boot=n_boot, outer_folds=outer_folds,
                                     inner_folds=inner_folds, probe_folds=probe_folds)
    _write(out / "pipeline.toml", header + _models_toml(model_dir) + analyses)
    log("4/5 running the analyses (RSA, behaviour RSA, encoding, probes)")
    t = time.perf_counter()
    run_pipeline(out / "pipeline.toml", progress=progress, log=log)
    timings["analyses"] = time.perf_counter() - t

    timings["total"] = time.perf_counter() - t_start
    return _report(out, timings, log)


def _simulate_data(out: Path, labels_csv: Path, *, n_subjects: int, n_voxels: int,
                   seed: int) -> None:
    """Brain responses planted in the planted layer, and judgements of the impact sounds."""
    import csv

    from alignjax.app.studies.simulate import simulate_brain, simulate_judgements
    from alignjax.io import open_store

    store = open_store(out / "features" / PLANTED[0])
    ids = store.valid_ids()
    planted = np.asarray(store.load(PLANTED[1], drop_skipped=True))
    simulate_brain(planted, ids, out / "data" / "brain.npz", n_subjects=n_subjects,
                   n_voxels=n_voxels, seed=seed)
    with open(labels_csv, newline="") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    impacts = [i for i in ids if rows[i]["category"] == "impact"]
    for factor, cats_ in (("material", None), ("hollow", ["0", "1"])):
        labels = [rows[i][factor] for i in impacts]
        counts = simulate_judgements(labels, categories=cats_, n_raters=20,
                                     accuracy=0.6 if factor == "material" else 0.8, seed=seed)
        np.savez(out / "data" / f"judgements_{factor}.npz", stimulus_ids=np.array(impacts),
                 counts=counts)



def _report(out: Path, timings: dict, log) -> dict:
    """Ground-truth checks from the current results, the report, and a summary in the log."""
    from alignjax.app.report.html import build_report

    checks = ground_truth_checks(out)
    (out / "ground_truth.json").write_text(json.dumps(checks, indent=1))
    (out / "timings.json").write_text(json.dumps(timings, indent=1))
    log("5/5 writing the report")
    report = build_report(out, title="alignjax demo")
    for c in checks["checks"]:
        log(f"  [{'ok' if c['passed'] else '!!'}] {c['what']}: expected {c['expected']}, "
            f"found {c['found']}")
    log(f"report: {report}  ({timings['total']:.0f} s in all)")
    checks["report"] = str(report)
    return checks


def ground_truth_checks(out: Path) -> dict:
    """Compare what the analyses in ``out`` found with what was planted (from their results)."""
    planted = f"{PLANTED[0]}:{PLANTED[1]}"
    checks = []
    best, best_r = None, -np.inf
    for f in sorted((out / "rsa-fmri").glob("*/rsa.json")):
        s = json.loads(f.read_text())
        r = np.asarray(s["group_r"])
        i = int(np.argmax(r))
        if r[i] > best_r:
            best, best_r = f"{f.parent.name}:{s['layers'][i]}", float(r[i])
    checks.append({"what": "RSA: best layer over all models (group RDM)", "expected": planted,
                   "found": f"{best} (r = {best_r:.3f})", "passed": best == planted})
    enc = out / "encode-fmri"
    per_model = {}
    for f in sorted(enc.glob("*/summary.json")):
        s = json.loads(f.read_text())
        per_model[f.parent.name] = s
    if per_model:
        med = {m: _median_r2(s) for m, s in per_model.items()}
        best_model = max(med, key=med.get)
        checks.append({"what": "encoding: model with the highest median R²", "expected": PLANTED[0],
                       "found": f"{best_model} ({med[best_model]:.3f})",
                       "passed": best_model == PLANTED[0]})
        s = per_model.get(PLANTED[0])
        if s is not None:
            layer = _modal_best_layer(s)
            checks.append({"what": f"encoding: most frequent best layer of {PLANTED[0]} (signal voxels)",
                           "expected": PLANTED[1], "found": layer, "passed": layer == PLANTED[1]})
    probe = out / "probe-material"
    accs = []
    for f in sorted(probe.glob("*/probe.json")):
        s = json.loads(f.read_text())
        for row in s["layers"]:
            accs.append((row["accuracy"], f"{f.parent.name}:{row['layer']}", row["chance"],
                         row["ci_low"]))
    if accs:
        acc, where, chance, low = max(accs)
        checks.append({"what": "probe: material decodable above chance (best layer)",
                       "expected": f"> chance ({chance:.2f}), 95% CI above it",
                       "found": f"{acc:.2f} at {where} (CI low {low:.2f})",
                       "passed": bool(low > chance)})
    return {"description": (
        f"Simulated voxels are noisy linear read-outs of {planted} (75% of voxels; the rest are "
        "noise). The planted layer should win RSA and encoding; material should be decodable "
        "from impact sounds above chance."), "planted": planted, "checks": checks}


def _median_r2(summary: dict) -> float:
    acc = summary.get("across_subjects", {}).get("median_r2", {})
    return float(acc.get("mean") or 0.0)


def _modal_best_layer(summary: dict) -> str:
    counts = summary.get("best_layer_counts") or {}
    return max(counts, key=counts.get) if counts else "?"
