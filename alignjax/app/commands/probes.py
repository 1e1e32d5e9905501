"""Subcommands decoding labelled factors from layers: probe, spatial."""

from __future__ import annotations

from .common import parse_floats, parse_names

__all__ = ["add_probe", "add_spatial"]


def add_probe(sub) -> None:
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
                        Cs=parse_floats(args.cs),
                        folds=args.folds, inner_folds=args.inner_folds,
                        class_weight=None if args.class_weight == "none" else "balanced",
                        layers=parse_names(args.layers),
                        n_perm=args.n_perm, transfer_train=args.train_where,
                        transfer_test=args.test_where, standardize=not args.no_standardize,
                        seed=args.seed)
    out = args.out
    print(f"probed {summary['target']!r} in {len(summary['layers'])} layers "
          f"({summary['n_stimuli']} stimuli); wrote {out}/probe.csv, probe.json, probe.png")
    return 0


def add_spatial(sub) -> None:
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
                          factors=parse_names(args.factors),
                          folds=args.folds, inner_folds=args.inner_folds, n_boot=args.n_boot,
                          n_perm=args.n_perm,
                          layers=parse_names(args.layers),
                          seed=args.seed, progress=not args.no_progress)
    for model, m in summary["models"].items():
        best = ", ".join(f"{f} {v:.2f}" for f, v in m["best_skill"].items())
        print(f"{model}: best-layer skill (0 chance, 1 perfect): {best}")
    print(f"wrote {args.out}/spatial.csv, spatial.json"
          + (", sensitivity.csv" if summary["sensitivity"] else ""))
    return 0
