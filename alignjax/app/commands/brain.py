"""Subcommands comparing layers with brain responses or other models: rsa, encode, similarity, zoo."""

from __future__ import annotations

from .common import add_brain_arguments, brain_options, parse_names, read_labels

__all__ = ["add_rsa", "add_encode", "add_similarity", "add_zoo"]


def add_rsa(sub) -> None:
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
                      layers=parse_names(args.layers),
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


def add_encode(sub) -> None:
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
    # under several processes every process writes its own voxels into --out
    p.set_defaults(func=_cmd_encode, writes_per_process=True)


def _cmd_encode(args) -> int:
    from alignjax.io import load_layers
    from alignjax.app.studies.encode import run_encode

    layers = parse_names(args.layers)
    stratify = None
    if args.stratify is not None:
        stratify = read_labels(args.stratify, load_layers(args.features, layers=layers).stimulus_ids)
    summary = run_encode(args.features, args.brain, args.out, alphas=args.alphas,
                         outer_folds=args.outer_folds, inner_folds=args.inner_folds,
                         stratify=stratify, score=args.score, extend_alphas=args.extend_alphas,
                         standardize=not args.no_standardize, layers=layers,
                         chunk_size=args.chunk_size, seed=args.seed, n_perm=args.n_perm,
                         progress=not args.no_progress, brain_options=brain_options(args),
                         rois=args.rois, roi_labels=args.roi_labels)
    if summary is None:  # another process of a multi-process run: its block is written
        return 0
    acc = summary["across_subjects"]["median_r2"]
    sem = "" if acc["sem"] is None else f" ± {acc['sem']:.4f}"
    mean = "n/a" if acc["mean"] is None else f"{acc['mean']:.4f}"
    print(f"encode: {summary['n_subjects']} subject(s), {summary['n_valid']} voxels fitted "
          f"({summary['excluded']}); median R² {mean}{sem}; results in {args.out}")
    if summary.get("maps"):
        print(f"maps in the input's space: {', '.join(next(iter(summary['maps'].values())))}"
              + ("; ROI summary in roi_summary.csv" if summary.get("rois") else ""))
    return 0


def add_similarity(sub) -> None:
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

    layers = parse_names(args.layers)
    summary = run_similarity(args.features, args.out, brain=args.brain, against=args.against,
                             metrics=args.metrics, n_perm=args.n_perm, n_boot=args.n_boot,
                             seed=args.seed, k=args.k, rdm_metric=args.rdm_metric, layers=layers,
                             progress=not args.no_progress, brain_options=brain_options(args))
    best = ", ".join(f"{m}: {b['layer']}" for m, b in summary["best_layer"].items())
    print(f"similarity: {len(summary['metrics'])} metrics x {len(summary['layers'])} layers x "
          f"{len(summary['subjects'])} {'layers' if args.against else 'subjects'}; best layer "
          f"{best}; results in {args.out}")
    return 0


def add_zoo(sub) -> None:
    p = sub.add_parser(
        "zoo", help="compare many models: rankings with CIs, pairwise tests, alignment vs "
                    "task scores, checkpoint curves",
        description="Read the rsa/encode (and probe) results of several models, rank the models "
                    "by each measure with CIs (t over subjects; bootstrap over stimuli for RSA), "
                    "compare every pair with a sign-flip permutation test over subjects "
                    "(max-|t| FWE), correlate alignment with external scores across models "
                    "(Fisher-z CI, permutation p) and plot alignment against training step.")
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


def _zoo_best(row: dict) -> str:
    """One ranking row's best model: score, CI, and the bootstrap fraction when valid."""
    import math

    text = (f"{row['model']} ({row['score']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
            f", {row.get('ci_method', 'CI')}")
    frac = row.get("frac_boot_best", row.get("p_best"))
    if frac is None or math.isnan(frac):
        return text + "; too few subjects for bootstrap ranks, see notes)"
    return (text + f"; ranks first in {100 * frac:.0f}% of bootstrap samples, which is not the "
            "probability that it is best)")


def _cmd_zoo(args) -> int:
    from alignjax.app.studies.zoo import run_zoo

    s = run_zoo(args.results, args.out, scores=args.scores, steps=args.steps,
                measures=parse_names(args.measures),
                n_boot=args.n_boot, n_perm=args.n_perm, seed=args.seed,
                progress=not args.no_progress)
    print(f"zoo: {len(s['models'])} models, measures {', '.join(s['measures'])}")
    for m in s["measures"]:
        top = [r for r in s["ranking"] if r["measure"] == m and r["rank"] == 1]
        for t in top:
            print(f"  {m}: best over {t['over']}: {_zoo_best(t)}")
    for r in s["correlation"]:
        print(f"  {r['measure']} vs {r['score']}: {r['method']} r = {r['r']:.3f} "
              f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}], p = {r['p']:.3g} ({r['n_models']} models)")
    for note in s.get("notes", []):
        print(f"  note: {note}")
    print(f"wrote {args.out}/zoo.json, zoo_ranking.csv, zoo_pairwise.csv, zoo_correlation.csv")
    return 0
