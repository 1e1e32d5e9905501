"""The ``alignjax`` command line.

Each subcommand is one ``_add_<name>(subparsers)`` function that registers its parser and
sets ``func``; heavy imports happen inside the handlers so ``alignjax --help`` is fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

__all__ = ["main"]


def add_brain_arguments(p, *, required: bool = True, rois: bool = False,
                        mask_help: str | None = None, brain_group=None) -> None:
    """Register ``--brain``, ``--mask``, ``--stimulus-ids``, ``--drop-nan-voxels`` (and,
    with ``rois``, ``--rois``/``--roi-labels``) on a subcommand; read them back with
    :func:`brain_options`. ``brain_group``: a (mutually exclusive) group of ``p`` to hold
    ``--brain`` itself."""
    (brain_group or p).add_argument("--brain", required=required, metavar="PATH",
                   help="responses with stimulus ids: .npz, .h5, .npy + .ids.txt, .csv; a 4-D "
                        "NIfTI, a folder of 3-D beta images named <stimulus id>.nii.gz, a "
                        ".func.gii surface (both hemispheres when named hemi-L/hemi-R), a "
                        "pattern ('sub-*/betas.nii.gz', one subject per file) or a "
                        ".subjects.tsv table (subject, path, mask)")
    p.add_argument("--mask", default=None, metavar="NIFTI",
                   help=mask_help or "NIfTI/GIfTI mask on the data's grid: its voxels become "
                                     "the targets (default: voxels finite and not all zero)")
    p.add_argument("--stimulus-ids", default=None, metavar="FILE",
                   help="stimulus id of each volume: a text file (one per line) or a BIDS-style "
                        "events/labels table (default: <brain>.ids.txt or <brain>_events.tsv)")
    p.add_argument("--drop-nan-voxels", action="store_true",
                   help="leave out voxels of the mask holding NaN/inf (default: refuse, with counts)")
    if rois:
        p.add_argument("--rois", default=None, metavar="ATLAS",
                       help="atlas label image on the data's grid: median R² and best-layer "
                            "distribution per region and subject (roi_summary.csv, .png)")
        p.add_argument("--roi-labels", default=None, metavar="TSV",
                       help="names of the atlas labels (index<TAB>name, BIDS dseg.tsv style)")


def brain_options(args) -> dict:
    """The loader options of :func:`add_brain_arguments`' flags, for ``load_responses``."""
    opts = {"mask": args.mask, "stimulus_ids": args.stimulus_ids,
            "nan_voxels": "exclude" if args.drop_nan_voxels else None}
    return {k: v for k, v in opts.items() if v is not None}


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="print versions, JAX devices and whether x64 is on")
    p.set_defaults(func=_cmd_info)


def _cmd_info(args) -> int:
    import platform
    from importlib import metadata

    import jax

    print(f"alignjax {metadata.version('alignjax')}")
    print(f"python {platform.python_version()} ({platform.machine()})")
    for pkg in ("jax", "jaxlib", "numpy", "scipy", "torch", "transformers", "librosa",
                "scikit-learn", "himalaya", "rsatoolbox"):
        try:
            print(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            print(f"{pkg} (not installed)")
    print(f"jax backend: {jax.default_backend()}")
    for d in jax.devices():
        print(f"  device {d.id}: {d.device_kind} ({d.platform})")
    print(f"x64 enabled: {bool(jax.config.jax_enable_x64)}")
    return 0


def _add_rsa(sub) -> None:
    p = sub.add_parser(
        "rsa", help="RSA of model layers against per-subject brain RDMs, with permutation tests",
        description="Build an RDM per layer and per subject (stimuli matched by id), compare "
                    "them with a stimulus-permutation test (max-statistic FWE correction), "
                    "compute the noise ceiling, and write rsa.csv, rsa.json and rsa.png.")
    p.add_argument("--features", required=True,
                   help="feature store, directory of per-layer .npy (+ stimulus_ids.txt), or .npz")
    add_brain_arguments(p, mask_help="voxels of the ROI whose RDM is compared (NIfTI/GIfTI)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--method", default="spearman", choices=["spearman", "pearson", "cosine", "rho_a"])
    p.add_argument("--metric", default="correlation",
                   choices=["correlation", "cosine", "euclidean", "sqeuclidean"],
                   help="distance for the model RDMs")
    p.add_argument("--brain-metric", default="correlation",
                   choices=["correlation", "cosine", "euclidean", "sqeuclidean"])
    p.add_argument("--n-perm", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--alternative", default="greater", choices=["greater", "less", "two-sided"])
    p.add_argument("--layers", default=None, help="comma-separated layer names (default: all)")
    p.add_argument("--n-boot", type=int, default=0,
                   help="stimulus-bootstrap samples for 95%% CIs of the group RSA (0: none)")
    p.add_argument("--control", default=None, metavar="FEATURES[:LAYER]",
                   help="regress this RDM (e.g. a spectrogram store) out of each layer's RDM "
                        "and report the partial group RSA too")
    p.set_defaults(func=_cmd_rsa)


def _cmd_rsa(args) -> int:
    from alignjax.app.studies.rsa import run_rsa

    control, control_layer = None, None
    if args.control:
        control, _, control_layer = args.control.partition(":")
    summary = run_rsa(args.features, args.brain, args.out, method=args.method,
                      n_boot=args.n_boot, control=control, control_layer=control_layer or None,
                      metric=args.metric, brain_metric=args.brain_metric, n_perm=args.n_perm,
                      seed=args.seed, alternative=args.alternative,
                      layers=args.layers.split(",") if args.layers else None,
                      brain_options=brain_options(args))
    nc = summary["noise_ceiling"]
    print(f"RSA of {len(summary['layers'])} layers x {len(summary['subjects'])} subjects "
          f"({summary['n_stimuli']} stimuli, {summary['n_perm']} permutations) "
          f"in {summary['seconds']:.1f} s")
    print(f"best layer (group RDM, fixed effects over stimuli): {summary['best_layer_group']}")
    if nc:
        best = max(summary["mean_subject_r"])
        print(f"mean of subjects' r: best {best:.3f}; its noise ceiling "
              f"[{nc['lower']:.3f}, {nc['upper']:.3f}]")
    print(f"wrote {args.out}/rsa.csv, rsa.json, rsa.png")
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo", help="run the embedded demo end to end (offline) and write an HTML report",
        description="Synthesise labelled sounds, extract features from several models, plant "
                    "simulated brain responses in one layer, run RSA, encoding and probes, and "
                    "write report.html comparing the findings with the planted ground truth.")
    p.add_argument("--out", default="demo-out", help="output directory (default %(default)s)")
    p.add_argument("--n-stimuli", type=int, default=165)
    p.add_argument("--n-subjects", type=int, default=4)
    p.add_argument("--n-voxels", type=int, default=200, help="voxels per subject")
    p.add_argument("--n-perm", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="a smaller, faster run (0.5 s clips, 2 subjects x 60 voxels, 200 "
                        "permutations, 3 folds)")
    p.add_argument("--eeg", action="store_true",
                   help="the EEG demo instead: simulated epochs with a layer planted at "
                        "250-500 ms, time-resolved RSA, checks against the planted truth")
    p.add_argument("--spatial", action="store_true",
                   help="the spatial demo instead: binaural scenes, a spectral baseline and "
                        "CREPE per ear vs the mono downmix (needs alignjax[spatial])")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args) -> int:
    if args.eeg:
        from alignjax.app.studies.simulate_eeg import run_eeg_demo

        kw = dict(n_subjects=2, n_channels=16, n_stimuli=60, n_perm=200) if args.quick else {}
        res = run_eeg_demo(args.out, seed=args.seed, progress=not args.no_progress,
                           **({"n_perm": args.n_perm} | kw))
        return 0 if all(c["passed"] for c in res["checks"]) else 1
    from alignjax.app.studies.demo import run_demo

    if args.spatial:
        from alignjax.app.studies.demo_spatial import run_spatial_demo

        out = args.out if args.out != "demo-out" else "demo-spatial"
        # 96 scenes in both: with 48 (12 per room) azimuth is not decodable across rooms
        res = run_spatial_demo(out, n_scenes=96, n_boot=50 if args.quick else 200,
                               seed=args.seed,
                               progress=not args.no_progress)
        return 0 if all(c["passed"] for c in res["checks"] if c.get("required", True)) else 1

    kw = dict(n_stimuli=args.n_stimuli, n_subjects=args.n_subjects, n_voxels=args.n_voxels,
              n_perm=args.n_perm, seed=args.seed, progress=not args.no_progress)
    if args.quick:
        kw.update(n_subjects=2, n_voxels=60, n_perm=200, n_boot=50, outer_folds=3,
                  inner_folds=3, probe_folds=3, duration=0.5)
    res = run_demo(args.out, **kw)
    return 0 if all(c["passed"] for c in res["checks"]) else 1


def _add_run(sub) -> None:
    p = sub.add_parser(
        "run", help="run a pipeline described by a TOML file (steps skipped when unchanged)",
        description="Validate the pipeline file and its inputs, then run each step (extraction "
                    "per model, then each analysis per model) into its own folder; a step whose "
                    "inputs (by content) and options are unchanged since its last run, and whose "
                    "upstream steps do not run, is skipped.")
    p.add_argument("pipeline", help="pipeline TOML file")
    p.add_argument("--dry-run", action="store_true",
                   help="print the steps a run would run, and why, then exit (writes nothing)")
    p.add_argument("--force", action="store_true",
                   help="take over an output folder that another config wrote (deletes its results)")
    p.add_argument("--report", action="store_true", help="write report.html after the run")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args) -> int:
    from alignjax.app.pipeline import load_config, run_pipeline

    run_pipeline(args.pipeline, dry_run=args.dry_run, force=args.force,
                 progress=not args.no_progress)
    if args.report and not args.dry_run:
        from alignjax.app.report.html import build_report

        print(f"report: {build_report(load_config(args.pipeline).out)}")
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="write a self-contained HTML report of a run directory")
    p.add_argument("dir", help="run directory (the 'out' of a pipeline or the demo)")
    p.add_argument("--out", default=None, help="HTML file (default DIR/report.html)")
    p.add_argument("--title", default=None)
    p.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:
    from alignjax.app.report.html import build_report

    print(f"report: {build_report(args.dir, args.out, title=args.title)}")
    return 0


def _add_extract(sub) -> None:
    p = sub.add_parser("extract", help="extract model activations into a feature store (torch)")
    p.add_argument("--model", required=True, metavar="SPEC",
                   help="hf:DIR_OR_ID, torch:module:factory, crepe:tiny|full, silero, "
                        "spectral:mel|mfcc|modulation")
    p.add_argument("--stimuli", required=True, metavar="DIR_OR_CSV",
                   help="folder of audio files, or a CSV with id,path columns")
    p.add_argument("--out", required=True, metavar="DIR", help="feature store directory")
    p.add_argument("--layers", nargs="+", default=None, help="layer names (default: all)")
    p.add_argument("--pooling", default="mean", choices=["mean", "max", "first", "stats", "none"])
    p.add_argument("--batch-size", type=int, default=8, help="clips per forward pass (equal lengths only)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="storage dtype; bfloat16 runs an audio LLM in bfloat16 (stored as float32)")
    p.add_argument("--duration", type=float, default=None, help="crop/pad every clip to SECONDS")
    p.add_argument("--n-frames", type=int, default=None, help="common frame count for --pooling none")
    p.add_argument("--prompt", default=None,
                   help="audio LLMs: text prompt after the audio (default: empty; recorded)")
    p.add_argument("--frame-rate", type=float, default=None, metavar="HZ",
                   help="--pooling none: resample every layer's frames to HZ (times recorded)")
    p.add_argument("--checkpoints", default=None, metavar="GLOB",
                   help="with --model hf:DIR: extract every checkpoint DIR/GLOB into "
                        "OUT/<checkpoint> (training step recorded)")
    p.add_argument("--on-error", default="stop", choices=["stop", "skip"],
                   help="unreadable/unusable clips: stop, or skip and list them in the manifest")
    p.add_argument("--channels", default="mix",
                   help="multichannel clips: mix (average), left, right, a channel index, or "
                        "each (every channel extracted; layer L of channel k stored as L@chk, "
                        "all channels concatenated as L@chans)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("sharded extraction")
    g.add_argument("--shard", default=None, metavar="I/N",
                   help="compute only shard I of N (0 <= I < N), for any scheduler; rerun "
                        "without --shard to merge the shards and fill what is missing")
    g.add_argument("--slurm", action="store_true",
                   help="submit --jobs shards as a SLURM job array (submitit), wait, merge")
    g.add_argument("--jobs", type=int, default=None, help="number of shards with --slurm")
    g.add_argument("--partition", default=None, help="SLURM partition with --slurm")
    g.add_argument("--gpus-per-job", type=int, default=0, help="GPUs per array task")
    g.add_argument("--slurm-timeout", type=int, default=240, metavar="MIN",
                   help="minutes per array task (default %(default)s)")
    g.add_argument("--cluster", default=None, choices=["slurm", "local"],
                   help="submitit executor for --slurm (default: SLURM when available)")
    p.set_defaults(func=_cmd_extract)


def _cmd_extract(args) -> int:
    from alignjax.errors import InvalidOptionError
    from extractors.run import extract
    from extractors.shards import extract_on_slurm, parse_shard

    kw = dict(layers=args.layers, pooling=args.pooling, batch_size=args.batch_size,
              device=args.device, dtype=args.dtype, duration=args.duration,
              n_frames=args.n_frames, on_error=args.on_error, progress=not args.quiet,
              prompt=args.prompt, frame_rate=args.frame_rate,
              channels=int(args.channels) if args.channels.isdigit() else args.channels)
    if (args.slurm or args.shard is not None) and args.checkpoints is not None:
        raise InvalidOptionError("--checkpoints runs one extraction per checkpoint; shard "
                                 "each checkpoint's store with its own --model hf:DIR")
    if args.slurm:
        if args.shard is not None or not args.jobs:
            raise InvalidOptionError("--slurm needs --jobs N (and no --shard)")
        stores = [extract_on_slurm(jobs=args.jobs, cluster=args.cluster,
                                   partition=args.partition, gpus_per_job=args.gpus_per_job,
                                   timeout_min=args.slurm_timeout, spec=args.model,
                                   stimuli=args.stimuli, out=args.out, **kw)]
    elif args.shard is not None:
        store = extract(args.model, args.stimuli, args.out, **kw, shard=parse_shard(args.shard))
        print(f"{store.path}: shard {args.shard} written; run the same command without "
              "--shard to merge the shards")
        return 0
    elif args.checkpoints is not None:
        from extractors.checkpoints import extract_checkpoints

        stores = extract_checkpoints(args.model, args.checkpoints, args.stimuli, args.out, **kw)
    else:
        stores = [extract(args.model, args.stimuli, args.out, **kw)]
    for store in stores:
        n_skip = len(store.skipped)
        step = "" if store.training_step is None else f" (step {store.training_step})"
        print(f"{store.path}{step}: {len(store.stimulus_ids) - n_skip} stimuli x "
              f"{len(store.layers)} layers"
              + (f" ({n_skip} skipped, listed in manifest.json)" if n_skip else ""))
    return 0


def _add_synth(sub) -> None:
    p = sub.add_parser("synth", help="synthesise a labelled stimulus set (impacts, tones, ...)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--n", type=int, default=56, help="number of stimuli")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=1.0, help="seconds per stimulus")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--categories", default=None,
                   help="comma-separated subset of impact,harmonic,noise,chirp,am,fm,clicks,speech")
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(args) -> int:
    from extractors.synth import synthesize

    cats = args.categories.split(",") if args.categories else None
    csv_path = synthesize(args.out, n=args.n, seed=args.seed, duration=args.duration,
                          sample_rate=args.sample_rate, categories=cats)
    print(f"{args.n} stimuli written to {args.out}; labels in {csv_path}")
    return 0


def _add_layers(sub) -> None:
    p = sub.add_parser("layers", help="list a model's layer names and output shapes")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seconds", type=float, default=1.0, help="probe clip length")
    p.set_defaults(func=_cmd_layers)


def _cmd_layers(args) -> int:
    from extractors.run import layer_table

    rows = layer_table(args.spec, device=args.device, seconds=args.seconds)
    width = max(len(n) for n, _ in rows)
    print(f"{'layer':<{width}}  shape (n_frames, n_features) for {args.seconds:g} s")
    for name, shape in rows:
        print(f"{name:<{width}}  {shape}")
    return 0


def _read_labels(spec: str, stimulus_ids):
    """Read ``labels.csv:column`` and return the labels in the order of ``stimulus_ids``."""
    import csv
    from pathlib import Path

    from alignjax.errors import InvalidOptionError, StoreError, match_ids

    path, sep, column = spec.rpartition(":")
    if not sep or not path:
        raise InvalidOptionError(f"--stratify {spec!r}: expected labels.csv:column")
    if not Path(path).is_file():
        raise StoreError(f"--stratify: {path} does not exist")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or column not in rows[0]:
        raise InvalidOptionError(f"--stratify: {path} has no column {column!r}"
                                 + (f" (columns: {list(rows[0])})" if rows else ""))
    id_col = "stimulus_id" if "stimulus_id" in rows[0] else "id" if "id" in rows[0] else None
    if id_col is None or stimulus_ids is None:
        if len(rows) != (len(stimulus_ids) if stimulus_ids is not None else len(rows)):
            raise InvalidOptionError("--stratify: row count differs from the stimuli")
        return [r[column] for r in rows]
    order = match_ids(stimulus_ids, [r[id_col] for r in rows], what="the features",
                      other_what=path)
    return [rows[i][column] for i in order]


def _add_encode(sub) -> None:
    p = sub.add_parser(
        "encode", help="nested cross-validated voxel-wise ridge encoding (layer x alpha per voxel)",
        description="Fit voxel-wise ridge encoding models from model layers to brain responses "
                    "with nested cross-validation; writes per-voxel results, a summary JSON "
                    "and figures.")
    p.add_argument("--features", required=True,
                   help="feature store directory (or directory of <layer>.npy / .npz)")
    add_brain_arguments(p, rois=True)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--alphas", default=None,
                   help="comma-separated alphas or logspace:START:STOP:NUM (default logspace:-2:8:11)")
    p.add_argument("--outer-folds", type=int, default=5)
    p.add_argument("--inner-folds", type=int, default=5)
    p.add_argument("--stratify", default=None, metavar="LABELS.CSV:COLUMN",
                   help="balance folds across the categories in this CSV column "
                        "(rows matched by a stimulus_id column)")
    p.add_argument("--layers", default=None, help="comma-separated layer names (default: all)")
    p.add_argument("--score", default="r2", choices=["r2", "pearson", "neg_mse"],
                   help="inner-CV selection score")
    p.add_argument("--extend-alphas", action="store_true",
                   help="halve/double edge-selected alphas while the inner CV score improves")
    p.add_argument("--no-standardize", action="store_true",
                   help="do not z-score features (with training statistics)")
    p.add_argument("--chunk-size", "--target-chunk", dest="chunk_size", type=int, default=None,
                   help="voxels per chunk (--target-chunk: its former name)")
    p.add_argument("--n-perm", type=int, default=0,
                   help="permutations (refits) for per-voxel p-values, max-T and FDR per "
                        "subject (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_encode)


def _cmd_encode(args) -> int:
    from alignjax.io import load_layers
    from alignjax.app.studies.encode import run_encode

    layers = None if args.layers is None else [s.strip() for s in args.layers.split(",") if s.strip()]
    stratify = None
    if args.stratify is not None:
        stratify = _read_labels(args.stratify, load_layers(args.features, layers=layers).stimulus_ids)
    summary = run_encode(args.features, args.brain, args.out, alphas=args.alphas,
                         outer_folds=args.outer_folds, inner_folds=args.inner_folds,
                         stratify=stratify, score=args.score, extend_alphas=args.extend_alphas,
                         standardize=not args.no_standardize, layers=layers,
                         chunk_size=args.chunk_size, seed=args.seed, n_perm=args.n_perm,
                         progress=not args.no_progress, brain_options=brain_options(args),
                         rois=args.rois, roi_labels=args.roi_labels)
    acc = summary["across_subjects"]["median_r2"]
    sem = "" if acc["sem"] is None else f" ± {acc['sem']:.4f}"
    mean = "n/a" if acc["mean"] is None else f"{acc['mean']:.4f}"
    print(f"encode: {summary['n_subjects']} subject(s), {summary['n_valid']} voxels "
          f"({summary['n_excluded']} excluded, zero variance); median R² {mean}{sem}; "
          f"results in {args.out}")
    if summary.get("maps"):
        print(f"maps in the input's space: {', '.join(next(iter(summary['maps'].values())))}"
              + ("; ROI summary in roi_summary.csv" if summary.get("rois") else ""))
    return 0


def _add_probe(sub) -> None:
    p = sub.add_parser(
        "probe", help="linear (logistic) probes of a labelled factor in every layer",
        description="Cross-validated L2 logistic probes of every layer of a feature store. "
                    "Labels come from a CSV matched to the store's stimulus ids by an id "
                    "column (never by row position). Writes probe.csv, probe.json and "
                    "probe.png (accuracy per layer with the chance line and 95%% CIs).")
    p.add_argument("--features", required=True, help="feature store directory (or .npz/.npy)")
    p.add_argument("--labels", required=True, help="CSV with an id column and the target column")
    p.add_argument("--target", required=True, help="column of --labels holding the class labels")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--id-column", default=None,
                   help="column of --labels holding stimulus ids (default: stimulus_id, else id)")
    p.add_argument("--cs", default=None,
                   help="comma-separated C values (inverse L2 strength; default 1e-4 ... 1e4, 9 values)")
    p.add_argument("--folds", type=int, default=5, help="outer stratified folds (default 5)")
    p.add_argument("--inner-folds", type=int, default=3, help="inner folds choosing C (default 3)")
    p.add_argument("--class-weight", choices=["none", "balanced"], default="none")
    p.add_argument("--layers", default=None, help="comma-separated subset of layers")
    p.add_argument("--n-perm", type=int, default=0,
                   help="label permutations for p-values per layer, max-T over layers (0: none); "
                        "each reruns the nested CV (or the transfer fit) on permuted labels")
    p.add_argument("--no-standardize", action="store_true",
                   help="do not z-score features with training-fold statistics")
    p.add_argument("--train-where", default=None, metavar="COL=VALUE",
                   help="transfer: train on the stimuli whose COL equals VALUE")
    p.add_argument("--test-where", default=None, metavar="COL=VALUE",
                   help="transfer: test on the stimuli whose COL equals VALUE")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_probe)


def _cmd_probe(args) -> int:
    from alignjax.app.studies.probe import run_probe

    summary = run_probe(args.features, args.labels, args.out, target=args.target,
                        id_column=args.id_column,
                        Cs=[float(c) for c in args.cs.split(",") if c.strip()] if args.cs else None,
                        folds=args.folds, inner_folds=args.inner_folds,
                        class_weight=None if args.class_weight == "none" else "balanced",
                        layers=args.layers.split(",") if args.layers else None,
                        n_perm=args.n_perm, transfer_train=args.train_where,
                        transfer_test=args.test_where, standardize=not args.no_standardize,
                        seed=args.seed)
    out = args.out
    print(f"probed {summary['target']!r} in {len(summary['layers'])} layers "
          f"({summary['n_stimuli']} stimuli); wrote {out}/probe.csv, probe.json, probe.png")
    return 0


def _add_zoo(sub) -> None:
    p = sub.add_parser(
        "zoo", help="compare many models: rankings with CIs, pairwise tests, alignment vs "
                    "task scores, checkpoint curves",
        description="Read the rsa/encode (and probe) results of several models, rank the models "
                    "by each measure with bootstrap CIs (over subjects; over stimuli for RSA), "
                    "compare every pair with a sign-flip permutation test over subjects "
                    "(max-|t| FWE), correlate alignment with external scores across models "
                    "(bootstrap CI, permutation p) and plot alignment against training step.")
    p.add_argument("--results", nargs="+", required=True, metavar="DIR",
                   help="result folders, one per model (NAME=DIR to name it; default the folder "
                        "name), or one pipeline output folder")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--scores", nargs="*", default=[], metavar="CSV[:COLUMN]",
                   help="per-model scores (a 'model' column, one column per score, e.g. HEAR)")
    p.add_argument("--steps", default=None, metavar="CSV",
                   help="model,step[,family] table for checkpoint curves (default: "
                        "checkpoint_step in each feature store's manifest)")
    p.add_argument("--measures", default=None, help="comma-separated measures (analysis names)")
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--n-perm", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_zoo)


def _cmd_zoo(args) -> int:
    from alignjax.app.studies.zoo import run_zoo

    s = run_zoo(args.results, args.out, scores=args.scores, steps=args.steps,
                measures=args.measures.split(",") if args.measures else None,
                n_boot=args.n_boot, n_perm=args.n_perm, seed=args.seed,
                progress=not args.no_progress)
    print(f"zoo: {len(s['models'])} models, measures {', '.join(s['measures'])}")
    for m in s["measures"]:
        top = [r for r in s["ranking"] if r["measure"] == m and r["rank"] == 1]
        if top:
            print(f"  {m}: best {top[0]['model']} ({top[0]['score']:.3f}, first in "
                  f"{100 * top[0]['p_best']:.0f}% of bootstrap samples over {top[0]['over']})")
    for r in s["correlation"]:
        print(f"  {r['measure']} vs {r['score']}: {r['method']} r = {r['r']:.3f} "
              f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}], p = {r['p']:.3g} ({r['n_models']} models)")
    print(f"wrote {args.out}/zoo.json, zoo_ranking.csv, zoo_pairwise.csv, zoo_correlation.csv")
    return 0


def _add_temporal_rsa(sub) -> None:
    p = sub.add_parser(
        "temporal-rsa", help="time-resolved RSA of model layers against EEG/MEG epochs",
        description="Build an RDM per subject and time window from the epochs (trials averaged "
                    "per stimulus, matched to the features by stimulus id), compare every layer "
                    "with them, test with stimulus-label permutations (cluster-mass or max-"
                    "statistic FWE over layers x time) and, from 6 subjects, a sign-flip cluster "
                    "test over subjects; writes temporal_rsa.csv, temporal_rsa.json and figures.")
    p.add_argument("--features", required=True,
                   help="feature store, directory of per-layer .npy (+ stimulus_ids.txt), or .npz")
    p.add_argument("--epochs", required=True, metavar="FILE_OR_DIR",
                   help="MNE -epo.fif, .npz/.h5 (data, times, stimulus_ids[, subject]), or a "
                        "folder of them (one subject per file)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--window", type=int, default=1, help="samples per RDM window (default 1)")
    p.add_argument("--step", type=int, default=1, help="samples between windows (default 1)")
    p.add_argument("--n-perm", type=int, default=1000)
    p.add_argument("--correction", default="cluster", choices=["cluster", "max"])
    p.add_argument("--cluster-threshold", type=float, default=None,
                   help="cluster-forming r (default: 95th percentile of pilot permutations)")
    p.add_argument("--method", default="spearman", choices=["spearman", "pearson", "cosine", "rho_a"])
    p.add_argument("--metric", default="correlation",
                   choices=["correlation", "cosine", "euclidean", "sqeuclidean"],
                   help="distance for the model RDMs")
    p.add_argument("--brain-metric", default="correlation",
                   choices=["correlation", "cosine", "euclidean", "sqeuclidean"])
    p.add_argument("--cv-folds", type=int, default=None,
                   help="cross-validated brain RDMs over this many folds of repeated trials")
    p.add_argument("--noise-norm", action="store_true",
                   help="multivariate noise normalisation with the baseline covariance")
    p.add_argument("--searchlight", action="store_true",
                   help="also a channel searchlight (needs MNE epochs with a montage)")
    p.add_argument("--layers", default=None, help="comma-separated layer names (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_temporal_rsa)


def _cmd_temporal_rsa(args) -> int:
    from alignjax.app.studies.temporal import run_temporal_rsa

    s = run_temporal_rsa(args.features, args.epochs, args.out, window=args.window,
                         step=args.step, n_perm=args.n_perm, correction=args.correction,
                         cluster_threshold=args.cluster_threshold, method=args.method,
                         metric=args.metric, brain_metric=args.brain_metric,
                         cv_folds=args.cv_folds, noise_norm=args.noise_norm,
                         searchlight=args.searchlight,
                         layers=args.layers.split(",") if args.layers else None,
                         seed=args.seed, progress=not args.no_progress)
    print(f"temporal RSA of {len(s['layers'])} layers x {s['n_subjects']} subjects "
          f"({s['n_stimuli']} stimuli, {len(s['times'])} windows, {s['n_perm']} permutations, "
          f"{s['correction']} FWE) in {s['seconds']:.1f} s")
    for layer, sp in s["significant_spans"].items():
        if sp:
            txt = ", ".join(f"{1000 * a:.0f}-{1000 * b:.0f} ms" for a, b in sp)
            print(f"  {layer}: significant {txt}")
    print(f"wrote {args.out}/temporal_rsa.csv, temporal_rsa.json and figures")
    return 0


def _add_simulate_eeg(sub) -> None:
    p = sub.add_parser(
        "simulate-eeg", help="simulated EEG epochs with a layer planted in a known time window",
        description="Write simulated epochs (64 channels, 100 Hz, -100..800 ms, autocorrelated "
                    "noise) whose channels express one layer between 250 and 500 ms. Without "
                    "--features a synthetic feature directory (165 stimuli x 6 layers) is "
                    "written too, with layer3 planted.")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--features", default=None, help="feature store or layer directory to plant")
    p.add_argument("--layer", default=None, help="layer to plant (default layer3 / the middle one)")
    p.add_argument("--n-stimuli", type=int, default=165,
                   help="stimuli of the synthetic features (without --features)")
    p.add_argument("--n-subjects", type=int, default=8)
    p.add_argument("--n-channels", type=int, default=64)
    p.add_argument("--n-trials", type=int, default=2)
    p.add_argument("--snr", type=float, default=0.6)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_simulate_eeg)


def _cmd_simulate_eeg(args) -> int:
    from pathlib import Path

    import numpy as np

    from alignjax.io import load_layers
    from alignjax.app.studies.simulate_eeg import (PLANTED_LAYER, PLANTED_WINDOW, simulate_eeg,
                                                   synthetic_layers)

    out = Path(args.out)
    features = args.features or synthetic_layers(out / "features", n_stimuli=args.n_stimuli,
                                                 seed=args.seed)
    ls = load_layers(features)
    layer = args.layer or (PLANTED_LAYER if PLANTED_LAYER in ls.names
                           else ls.names[len(ls.names) // 2])
    X = np.asarray(ls.arrays[ls.names.index(layer)], float)
    path = simulate_eeg(X.reshape(X.shape[0], -1), ls.stimulus_ids, out / "epochs.npz",
                        n_subjects=args.n_subjects, n_channels=args.n_channels,
                        n_trials=args.n_trials, snr=args.snr, seed=args.seed)
    print(f"{path}: {args.n_subjects} subjects x {len(ls.stimulus_ids)} stimuli x "
          f"{args.n_trials} trials; {layer!r} of {features} planted at "
          f"{1000 * PLANTED_WINDOW[0]:.0f}-{1000 * PLANTED_WINDOW[1]:.0f} ms")


def _add_similarity(sub) -> None:
    from alignjax.similarity.registry import METRICS_DOC

    p = sub.add_parser(
        "similarity", help="CKA, dCor, shape, CCA, kNN and RSA similarity with permutation tests",
        description="Compare every layer of one or more feature stores with every subject's "
                    "brain responses (--brain) or with every layer of another store (--against) "
                    "under several similarity metrics at once, with one stimulus-permutation "
                    "null (the same permutations for every metric and layer; FWE over layers) "
                    "and optional bootstrap CIs. Writes similarity.csv, similarity.json and "
                    "figures. Metrics: " + "; ".join(f"{k}: {v}" for k, v in METRICS_DOC.items()))
    p.add_argument("--features", required=True, action="append",
                   help="feature store (repeat for several models)")
    src = p.add_mutually_exclusive_group(required=True)
    add_brain_arguments(p, required=False, brain_group=src,
                        mask_help="NIfTI/GIfTI mask on the data's grid: its voxels are the "
                                  "ROI whose responses are compared")
    src.add_argument("--against", help="another feature store: layer x layer similarity")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--metrics", default="cka,cka_debiased,dcor,shape,knn,rsa_spearman",
                   help="comma-separated metric names (default: %(default)s)")
    p.add_argument("--n-perm", type=int, default=1000, help="stimulus permutations (0: none)")
    p.add_argument("--n-boot", type=int, default=0, help="bootstrap samples for CIs (0: none)")
    p.add_argument("--k", type=int, default=10, help="neighbours of the kNN metrics")
    p.add_argument("--rdm-metric", default="correlation",
                   choices=["correlation", "cosine", "euclidean", "sqeuclidean"],
                   help="RDM distance of the rsa_* metrics")
    p.add_argument("--layers", default=None, help="comma-separated layer names (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_similarity)


def _cmd_similarity(args) -> int:
    from alignjax.app.studies.similarity import run_similarity

    layers = None if args.layers is None else [s.strip() for s in args.layers.split(",") if s.strip()]
    summary = run_similarity(args.features, args.out, brain=args.brain, against=args.against,
                             metrics=args.metrics, n_perm=args.n_perm, n_boot=args.n_boot,
                             seed=args.seed, k=args.k, rdm_metric=args.rdm_metric, layers=layers,
                             progress=not args.no_progress, brain_options=brain_options(args))
    best = ", ".join(f"{m}: {b['layer']}" for m, b in summary["best_layer"].items())
    print(f"similarity: {len(summary['metrics'])} metrics x {len(summary['layers'])} layers x "
          f"{len(summary['subjects'])} {'layers' if args.against else 'subjects'}; best layer "
          f"{best}; results in {args.out}")
    return 0


def _floats(text):
    return None if text is None else [float(v) for v in text.split(",") if v.strip()]


def _add_synth_spatial(sub) -> None:
    p = sub.add_parser(
        "synth-spatial", help="render a balanced set of spatial scenes (rooms, directions, "
                              "distances; binaural, FOA, stereo or mono)",
        description="Render dry sources in shoebox and L-shaped rooms with pyroomacoustics "
                    "(needs alignjax[spatial]). Writes one WAV per scene, labels.csv (azimuth: "
                    "0 = front, +90 = left; elevation +90 = up; measured RT60, DRR, group ids) "
                    "and pairs.csv (one-factor perturbation pairs for the sensitivity analysis).")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--n", type=int, default=240, help="scenes of the balanced design")
    p.add_argument("--format", default="binaural", choices=["binaural", "foa", "stereo", "mono"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=2.0, help="seconds per clip")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--sources", default=None, metavar="DIR",
                   help="folder of dry sounds (one class per sub-folder) instead of the synthesiser")
    p.add_argument("--azimuths", default=None, help="comma-separated degrees (default 0,45,...,315)")
    p.add_argument("--elevations", default=None, help="comma-separated degrees (default -20,0,20)")
    p.add_argument("--distances", default=None, help="comma-separated metres (default 1,1.5,2)")
    p.add_argument("--rt60s", default=None, help="comma-separated seconds (default 0.3,0.6,0.9)")
    p.add_argument("--classes", default=None, help="comma-separated synthesiser categories")
    p.add_argument("--volumes", default=None, help="comma-separated of small,large (default both)")
    p.add_argument("--shapes", default=None, help="comma-separated of shoebox,lshape (default both)")
    p.add_argument("--n-anchors", type=int, default=4, help="anchor scenes of the perturbation sets")
    p.add_argument("--no-perturb", action="store_true", help="no perturbation sets")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_synth_spatial)


def _cmd_synth_spatial(args) -> int:
    from extractors.spatial import synthesize_spatial

    design = {k: v for k, v in dict(
        azimuths=_floats(args.azimuths), elevations=_floats(args.elevations),
        distances=_floats(args.distances), rt60s=_floats(args.rt60s),
        classes=args.classes.split(",") if args.classes else None,
        volumes=args.volumes.split(",") if args.volumes else None,
        shapes=args.shapes.split(",") if args.shapes else None).items() if v is not None}
    path = synthesize_spatial(args.out, n=args.n, fmt=args.format, seed=args.seed,
                              duration=args.duration, sample_rate=args.sample_rate,
                              sources=args.sources, n_anchors=args.n_anchors,
                              perturb=not args.no_perturb, progress=not args.quiet, **design)
    print(f"{args.format} scenes written to {args.out}; labels in {path}")
    return 0


def _add_spatial(sub) -> None:
    p = sub.add_parser(
        "spatial", help="probe source and room factors in every layer, and sensitivity to "
                        "one-factor perturbations",
        description="Nested cross-validated probes of azimuth, elevation, direction, distance, "
                    "class, RT60, volume and shape in every layer of each feature store "
                    "(grouped folds: no dry source or room on both sides), with chance levels, "
                    "bootstrap CIs and permutation p-values (max-T over layers); sensitivity "
                    "S_f when pairs.csv is beside the labels. Writes spatial.csv, spatial.json, "
                    "figures, and sensitivity.csv.")
    p.add_argument("--features", required=True, nargs="+", metavar="STORE",
                   help="one feature store per model")
    p.add_argument("--labels", required=True, help="labels.csv of alignjax synth-spatial")
    p.add_argument("--out", required=True)
    p.add_argument("--pairs", default=None, help="perturbation pairs (default: pairs.csv beside "
                                                 "the labels, when present)")
    p.add_argument("--factors", default=None, help="comma-separated subset of factors")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--inner-folds", type=int, default=3)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--n-perm", type=int, default=0,
                   help="label permutations for p-values (each reruns the nested CV)")
    p.add_argument("--layers", default=None, help="comma-separated subset of layers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_spatial)


def _cmd_spatial(args) -> int:
    from alignjax.app.studies.spatial import run_spatial

    summary = run_spatial(args.features, args.labels, args.out, pairs=args.pairs,
                          factors=args.factors.split(",") if args.factors else None,
                          folds=args.folds, inner_folds=args.inner_folds, n_boot=args.n_boot,
                          n_perm=args.n_perm,
                          layers=args.layers.split(",") if args.layers else None,
                          seed=args.seed, progress=not args.no_progress)
    for model, m in summary["models"].items():
        best = ", ".join(f"{f} {v:.2f}" for f, v in m["best_skill"].items())
        print(f"{model}: best-layer skill (0 chance, 1 perfect): {best}")
    print(f"wrote {args.out}/spatial.csv, spatial.json"
          + (", sensitivity.csv" if summary["sensitivity"] else ""))
    return 0


_COMMANDS = [
    _add_info,
    _add_rsa,
    _add_run,
    _add_report,
    _add_demo,
    _add_extract, _add_synth, _add_layers,
    _add_encode,
    _add_probe,
    _add_zoo,
    _add_temporal_rsa, _add_simulate_eeg,
    _add_similarity,
    _add_synth_spatial, _add_spatial,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alignjax",
        description="Align audio models' representations with brains, behaviour and each other.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _COMMANDS:
        add(sub)
    return parser


def _add_launch(sub) -> None:
    p = sub.add_parser(
        "launch", help="run a subcommand in N local processes of one jax.distributed run",
        description="Start N processes on this machine (coordinator on localhost) that run "
                    "the same subcommand, each computing its block of permutations or "
                    "targets; process 0 writes --out. Results equal a one-process run.")
    p.add_argument("-n", type=int, required=True, metavar="N", help="number of processes")
    p.add_argument("--timeout", type=float, default=None,
                   help="stop every process after this many seconds (default: none)")
    p.add_argument("--join-timeout", type=int, default=120,
                   help="seconds for every process to join (default %(default)s)")
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="-- SUBCOMMAND ...")

    def run(args):
        from alignjax.app.launch import launch

        rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
        return launch(args.n, rest, timeout=args.timeout, join_timeout=args.join_timeout)

    p.set_defaults(func=run)


_COMMANDS.append(_add_launch)


def _join_distributed_run() -> None:
    """Join the jax.distributed run this process was started in (by ``alignjax launch``
    or with ALIGNJAX_* variables), if any."""
    import os

    from alignjax import distributed

    if os.environ.get(distributed.ENV_NUM_PROCESSES):
        from alignjax.app.launch import ENV_TIMEOUT

        distributed.initialize(timeout=int(os.environ.get(ENV_TIMEOUT, "300")))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from alignjax.distributed import DistributedError
    from alignjax.errors import AlignjaxInputError

    try:
        if args.command != "launch":
            _join_distributed_run()
        return int(args.func(args) or 0)
    except (AlignjaxInputError, DistributedError) as exc:
        print(f"alignjax {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
