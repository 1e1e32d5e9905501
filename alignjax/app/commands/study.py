"""Subcommands about the whole study: info, demo, run (pipelines), report, launch."""

from __future__ import annotations

import argparse

__all__ = ["add_info", "add_demo", "add_run", "add_report", "add_launch"]


def add_info(sub) -> None:
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


def add_demo(sub) -> None:
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


def add_run(sub) -> None:
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


def add_report(sub) -> None:
    p = sub.add_parser("report", help="write a self-contained HTML report of a run directory")
    p.add_argument("dir", help="run directory (the 'out' of a pipeline or the demo)")
    p.add_argument("--out", default=None, help="HTML file (default DIR/report.html)")
    p.add_argument("--title", default=None)
    p.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:
    from alignjax.app.report.html import build_report

    print(f"report: {build_report(args.dir, args.out, title=args.title)}")
    return 0


def add_launch(sub) -> None:
    p = sub.add_parser(
        "launch", help="run a subcommand in N local processes of one jax.distributed run",
        description="Start N processes on this machine (coordinator on localhost) that run "
                    "the same subcommand, each computing its block of permutations or "
                    "targets; process 0 writes --out (encode: every process writes the "
                    "voxels it owns into --out/.parts, process 0 joins them; a rerun keeps "
                    "the blocks an interrupted run wrote). Results equal a one-process run.")
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
