"""Benchmark: spatial scene rendering, the spatial probe + sensitivity study, and the
small-problem logistic probe path.

Workloads (issue 17):

``render_binaural`` / ``render_foa``
    Clips per second of 2 s scenes (pyroomacoustics hybrid rooms; KEMAR HRIRs / ACN-SN3D).
``study``
    :func:`alignjax.spatial_probe` (7 factors: azimuth, elevation, distance, class, RT60,
    volume, shape; grouped 5-fold outer x 3-fold inner CV) + :func:`alignjax.sensitivity`
    on 2,000 scenes x 13 layers x 768 features, against a scikit-learn loop
    (``StandardScaler`` + ``Ridge`` / ``LogisticRegression`` in ``GridSearchCV`` on the
    same folds), timed on one layer and extrapolated to 13.
``small_probe``
    :func:`alignjax.logistic_probe` on 500 stimuli x 128 features, 5 classes, 13 layers x
    8 C x 5 folds (520 fits, no nested CV) against a ``StandardScaler`` +
    ``LogisticRegression(lbfgs)`` loop; first call (compile included), first call of a new
    process with the persistent compilation cache warm (``alignjax.use_compilation_cache``,
    on by default on the command line), and steady state.

Usage::

    python benchmarks/bench_spatial.py [--quick] [--only render_binaural,study,small_probe]
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import Recorder, parse_args, time_call, time_jax  # noqa: E402

FACTORS = ("azimuth", "elevation", "distance", "class", "rt60", "volume", "shape")


def bench_render(rec, fmt, n_clips):
    from extractors import spatial as sp
    from extractors.synth import synth_item

    scenes = sp.spatial_design(max(24, n_clips), seed=0)[:n_clips]
    dry = {s.source_index: synth_item(s.source_index, seed=0, sample_rate=16000, duration=2.0,
                                      category=s.cls)[0] for s in scenes}
    sp.render_scene(scenes[0], dry[scenes[0].source_index], fmt=fmt, sample_rate=16000)
    # the rooms' absorption calibration is cached per room: warm it outside the timing
    for s in scenes:
        sp.calibrated_absorption(s.room, 16000)
    t0 = time.perf_counter()
    for s in scenes:
        sp.render_scene(s, dry[s.source_index], fmt=fmt, sample_rate=16000)
    secs = time.perf_counter() - t0
    print(f"[render_{fmt}] {n_clips} clips of 2 s in {secs:.1f} s: {n_clips / secs:.2f} clips/s")
    rec.add(f"render_{fmt}", "extractors.spatial", {"seconds": secs, "repeats": 1},
            clips=n_clips, clips_per_s=n_clips / secs)


def make_study(n, n_layers, p, seed=0):
    """Scenes with a balanced design and layers that code factors with varying strength."""
    rng = np.random.default_rng(seed)
    az = rng.choice(np.arange(0.0, 360.0, 45.0), n)
    lab = {"azimuth": az, "elevation": rng.choice([-20.0, 0.0, 20.0], n),
           "distance": rng.choice([1.0, 1.5, 2.0], n),
           "class": rng.choice(["a", "b", "c", "d", "e", "f"], n),
           "rt60": rng.choice([0.3, 0.6, 0.9], n) + rng.normal(0, 0.03, n),
           "volume": rng.choice(["90", "300"], n), "shape": rng.choice(["shoebox", "lshape"], n),
           "room_group": rng.integers(0, 24, n)}
    r = np.deg2rad(az)
    code = np.c_[np.cos(r), np.sin(r), lab["elevation"] / 20, np.log(lab["distance"]),
                 lab["rt60"] * 3, lab["class"] == "a", lab["class"] == "b",
                 lab["volume"] == "90", lab["shape"] == "lshape"].astype(float)
    layers = []
    for li in range(n_layers):
        mix = rng.normal(size=(code.shape[1], p)) * (0.3 + np.sin(np.pi * (li + 0.5) / n_layers))
        layers.append((code @ mix + rng.normal(size=(n, p))).astype(np.float32))
    return layers, lab


def sklearn_study(X, lab, outer, inner, max_outer=None):
    """Nested CV per factor with sklearn on the same folds; returns each factor's predictions
    (on the first ``max_outer`` outer folds only, when given)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import GridSearchCV, PredefinedSplit
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from alignjax.folds import fold_ids

    alphas = np.logspace(-2, 6, 9)
    Cs = np.logspace(-4, 4, 9)
    r = np.deg2rad(lab["azimuth"])
    targets = {"azimuth": np.c_[np.cos(r), np.sin(r)], "elevation": lab["elevation"][:, None],
               "distance": np.log(lab["distance"])[:, None], "rt60": lab["rt60"][:, None]}
    out = {}
    for f in FACTORS:
        pred = np.zeros(targets[f].shape) if f in targets else np.empty(len(X), object)
        for o, test in enumerate(outer[:max_outer]):
            tr = ~test
            cv = PredefinedSplit(fold_ids(inner[o][:, tr]))
            if f in targets:
                for k in range(targets[f].shape[1]):
                    gs = GridSearchCV(make_pipeline(StandardScaler(), Ridge()),
                                      {"ridge__alpha": alphas}, cv=cv,
                                      scoring="neg_mean_squared_error")
                    pred[test, k] = gs.fit(X[tr], targets[f][tr, k]).predict(X[test])
            else:
                gs = GridSearchCV(make_pipeline(StandardScaler(),
                                                LogisticRegression(max_iter=1000, tol=1e-4)),
                                  {"logisticregression__C": Cs}, cv=cv)
                pred[test] = gs.fit(X[tr], lab[f][tr]).predict(X[test])
        out[f] = pred
    return out


def bench_study(rec, *, n, n_layers, p, n_boot, sub_layers, max_outer=None, repeat=True):
    import alignjax as aj
    from alignjax.folds import inner_test_masks

    layers, lab = make_study(n, n_layers, p)
    ids = [f"s{i}" for i in range(n)]
    rng = np.random.default_rng(1)
    pairs = {"a": [], "b": [], "factor": [], "delta": [], "kind": []}
    for kind, factor in (("random", "random"), ("noise", "noise"), ("factor", "azimuth")):
        for _ in range(500):
            i, j = rng.choice(n, 2, replace=False)
            for k, v in zip(pairs, (ids[i], ids[j], factor, 0.0, kind)):
                pairs[k].append(v)

    def ours():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = aj.spatial_probe(layers, lab, factors=FACTORS, n_boot=n_boot, folds=5,
                                   inner_folds=3)
        sens = aj.sensitivity(layers, pairs, stimulus_ids=ids, n_boot=n_boot)
        return res, sens

    t0 = time.perf_counter()
    res, _ = ours()
    first = time.perf_counter() - t0
    inner = inner_test_masks(np.zeros(n), res.folds, 3, seed=1, groups=res.groups)
    t0 = time.perf_counter()
    ref = [sklearn_study(X, lab, res.folds, inner, max_outer) for X in layers[:sub_layers]]
    F = res.folds.shape[0]
    k = F if max_outer is None else min(max_outer, F)
    base = (time.perf_counter() - t0) * n_layers / sub_layers * F / k
    rows = res.folds[:k].any(axis=0)   # the stimuli sklearn predicted
    # agreement: azimuth predictions (degrees) and class predictions on the timed layers
    err = max(float(np.max(aj.angular_error(
        res.predictions["azimuth"][li][rows],
        np.rad2deg(np.arctan2(ref[li]["azimuth"][rows, 1],
                              ref[li]["azimuth"][rows, 0])) % 360)))
        for li in range(sub_layers))
    agree = min(float(np.mean(res.predictions["class"][li][rows] == ref[li]["class"][rows]))
                for li in range(sub_layers))
    if err > 1.0 or agree < 0.97:
        raise AssertionError(f"study: azimuth predictions differ by up to {err:.2f} deg, class "
                             f"predictions agree on {agree:.1%}")
    print(f"[study] agreement on {sub_layers} layer(s): max azimuth difference {err:.3f} deg, "
          f"class predictions identical {agree:.1%}")
    if repeat:
        steady = time_call(lambda: ours(), repeats=1)
        steady.pop("output")
    else:  # full size: the first call (compile included) is the timing
        steady = {"seconds": first, "repeats": 1}
    print(f"[study] alignjax first call {first:.1f} s, timed {steady['seconds']:.1f} s; "
          f"sklearn loop {base:.1f} s (extrapolated from {sub_layers} of {n_layers} layers, "
          f"{k} of {F} outer folds)")
    rec.add("study", "sklearn-gridsearch-loop", {"seconds": base, "repeats": 1},
            extrapolated_from_layers=sub_layers, extrapolated_from_outer_folds=k)
    rec.add("study", "alignjax-spatial_probe+sensitivity", steady,
            baseline_seconds={"sklearn": base}, first_call_seconds=first,
            max_azimuth_diff_deg=err, class_agreement=agree)


SMALL_CS = np.logspace(-4, 2, 8)


def small_probe_problem(n_layers):
    """The small-problem workload: 500 x 128 features per layer, 5 classes."""
    from benchmarks.bench_probe import make_problem

    return make_problem(500, n_layers, 128, 5, seed=0)


def run_small_probe(layers, y):
    """``logistic_probe`` over 8 C x 5 folds, no nested CV (the timed call)."""
    from alignjax.probes import logistic_probe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return logistic_probe(layers, y, Cs=SMALL_CS, folds=5, inner_folds=None, tol=1e-4,
                              max_iter=1000)


def bench_small_probe(rec, *, repeats, sub_layers, n_layers=13):
    from benchmarks.bench_probe import sklearn_loop

    layers, y = small_probe_problem(n_layers)
    t0 = time.perf_counter()
    res = run_small_probe(layers, y)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    base_acc = sklearn_loop(layers[:sub_layers], y, SMALL_CS, res.folds)
    base = (time.perf_counter() - t0) * n_layers / sub_layers
    diff = float(np.abs(res.accuracy[:sub_layers].mean(2).max(1)
                        - base_acc.mean(2).max(1)).max())
    if diff > 0.005:
        raise AssertionError(f"small_probe: best mean CV accuracy differs by {diff:.4f}")
    steady = time_jax(lambda: run_small_probe(layers, y).accuracy, repeats=repeats)
    steady.pop("output")
    cached = _first_call_with_cache(n_layers)
    print(f"[small_probe] first call {first:.2f} s ({cached:.2f} s in a new process with the "
          f"compilation cache warm), steady {steady['seconds']:.2f} s, sklearn {base:.1f} s: "
          f"{base / first:.1f}x incl. compile, {base / cached:.1f}x cached, "
          f"{base / steady['seconds']:.1f}x steady; best-accuracy difference {diff:.4f}")
    rec.add("small_probe", "sklearn-lbfgs-loop", {"seconds": base, "repeats": 1},
            problems=n_layers * 40, extrapolated_from_layers=sub_layers)
    rec.add("small_probe", "alignjax-logistic_probe", steady, baseline_seconds={"sklearn": base},
            first_call_seconds=first, first_call_cached_seconds=cached,
            problems=n_layers * 40, max_best_acc_diff=diff)


_FIRST_CALL = """
import sys, time
sys.path.insert(0, {repo!r})
import alignjax
alignjax.use_compilation_cache({cache!r})
from benchmarks.bench_spatial import run_small_probe, small_probe_problem
layers, y = small_probe_problem({n_layers})
t0 = time.perf_counter()
run_small_probe(layers, y)
print(time.perf_counter() - t0)
"""


def _first_call_with_cache(n_layers):
    """First call in a fresh process whose compiled kernels an earlier process left in the
    persistent compilation cache (what the second command of a study pays)."""
    import subprocess
    import tempfile

    repo = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory() as cache:
        code = _FIRST_CALL.format(repo=repo, cache=cache, n_layers=n_layers)
        runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                     text=True, check=True).stdout.split()[-1])
                for _ in range(2)]
    return runs[1]


def main():
    args = parse_args(__doc__.splitlines()[0])
    rec = Recorder("spatial", args.out, quick=args.quick)
    only = set(args.only.split(",")) if args.only else None

    def want(name):
        return only is None or name in only

    for fmt in ("binaural", "foa"):
        if want(f"render_{fmt}"):
            bench_render(rec, fmt, 3 if args.quick else 12)
    if want("study"):
        if args.quick:
            bench_study(rec, n=120, n_layers=2, p=16, n_boot=50, sub_layers=1, max_outer=1)
        else:
            bench_study(rec, n=2000, n_layers=13, p=768, n_boot=200, sub_layers=1,
                        max_outer=1, repeat=False)
    if want("small_probe"):
        if args.quick:
            bench_small_probe(rec, repeats=2, sub_layers=1, n_layers=2)
        else:
            bench_small_probe(rec, repeats=args.repeats, sub_layers=3)
    rec.save()


if __name__ == "__main__":
    main()
