"""The ``alignjax`` command line.

Each subcommand is one ``_add_<name>(subparsers)`` function that registers its parser and
sets ``func``; heavy imports happen inside the handlers so ``alignjax --help`` is fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

__all__ = ["main"]


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


def _parse_alphas(text: str):
    """``"0.1,1,10"`` or ``"logspace:START:STOP:NUM"`` (powers of ten)."""
    import numpy as np

    from ._validation import InvalidOptionError

    try:
        if text.startswith("logspace:"):
            a, b, k = text.split(":")[1:]
            return np.logspace(float(a), float(b), int(k))
        return np.array([float(v) for v in text.split(",") if v.strip()])
    except ValueError as exc:
        raise InvalidOptionError(f"--alphas {text!r}: expected comma-separated numbers or "
                                 f"logspace:START:STOP:NUM ({exc})") from None


def _read_labels(spec: str, stimulus_ids):
    """Read ``labels.csv:column`` and return the labels in the order of ``stimulus_ids``."""
    import csv
    from pathlib import Path

    from ._validation import InvalidOptionError, StoreError, match_ids

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
    p.add_argument("--brain", required=True,
                   help="responses with stimulus ids (.npz, .h5, .npy + .ids.txt, .csv)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--alphas", default="logspace:-2:8:11",
                   help="comma-separated alphas or logspace:START:STOP:NUM (default %(default)s)")
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
    p.add_argument("--target-chunk", type=int, default=None, help="voxels per chunk")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_encode)


def _cmd_encode(args) -> int:
    import csv
    import json
    from pathlib import Path

    import numpy as np

    from .encoding import encode, split_subjects
    from .report.encoding import write_figures
    from .store import load_layers, load_responses

    layers = None if args.layers is None else [s.strip() for s in args.layers.split(",") if s.strip()]
    ls = load_layers(args.features, layers=layers)
    resp = load_responses(args.brain)
    if ls.stimulus_ids is not None:
        resp = resp.aligned_to(ls.stimulus_ids)
    stratify = None if args.stratify is None else _read_labels(args.stratify, ls.stimulus_ids)
    alphas = _parse_alphas(args.alphas)
    res = encode(ls, resp if ls.stimulus_ids is not None else resp.subjects, alphas=alphas,
                 outer_folds=args.outer_folds, inner_folds=args.inner_folds, stratify=stratify,
                 standardize=not args.no_standardize, target_chunk=args.target_chunk,
                 extend_alphas=args.extend_alphas, score=args.score, seed=args.seed,
                 progress=not args.no_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = split_subjects(res)
    names = list(res.layer_names)
    with open(out / "voxels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject", "voxel", "valid", "r", "r2", "cod", "best_layer",
                    "best_alpha"])
        for subj, d in parts.items():
            sdir = out / subj
            sdir.mkdir(exist_ok=True)
            for key in ("r", "r2", "cod", "best_layer", "best_alpha", "layer_r2", "valid"):
                np.save(sdir / f"{key}.npy", d[key])
            for v in range(d["r"].shape[0]):
                bl = d["best_layer"][:, v]
                if d["valid"][v] and (bl >= 0).all():
                    mode = int(np.bincount(bl).argmax())
                    layer, alpha = names[mode], float(np.exp(np.median(np.log(d["best_alpha"][:, v]))))
                else:
                    layer, alpha = "", float("nan")
                w.writerow([subj, v, bool(d["valid"][v]), f"{d['r'][v]:.6g}", f"{d['r2'][v]:.6g}",
                            f"{d['cod'][v]:.6g}", layer, f"{alpha:.6g}"])
    summary = dict(res.summary)
    summary.update({"features": str(args.features), "brain": str(args.brain),
                    "alphas": [float(a) for a in alphas], "outer_folds": args.outer_folds,
                    "inner_folds": args.inner_folds, "score": args.score, "seed": args.seed,
                    "n_stimuli": int(res.prediction.shape[0])})
    with open(out / "summary.json", "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1)
    write_figures(res, out)
    acc = summary["across_subjects"]["median_r2"]
    sem = "" if acc["sem"] is None else f" ± {acc['sem']:.4f}"
    mean = "n/a" if acc["mean"] is None else f"{acc['mean']:.4f}"
    print(f"encode: {len(res.subjects)} subject(s), {res.valid.sum()} voxels "
          f"({summary['n_excluded']} excluded, zero variance); median R² {mean}{sem}; "
          f"results in {out}")
    return 0


_COMMANDS = [
    _add_info,
    _add_encode,
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ._validation import AlignjaxInputError

    try:
        return int(args.func(args) or 0)
    except AlignjaxInputError as exc:
        print(f"alignjax {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
