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


def _add_rsa(sub) -> None:
    p = sub.add_parser(
        "rsa", help="RSA of model layers against per-subject brain RDMs, with permutation tests",
        description="Build an RDM per layer and per subject (stimuli matched by id), compare "
                    "them with a stimulus-permutation test (max-statistic FWE correction), "
                    "compute the noise ceiling, and write rsa.csv, rsa.json and rsa.png.")
    p.add_argument("--features", required=True,
                   help="feature store, directory of per-layer .npy (+ stimulus_ids.txt), or .npz")
    p.add_argument("--brain", required=True,
                   help=".npz/.h5/.npy/.csv of per-subject (n_stimuli, n_voxels) responses with stimulus ids")
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
    from .studies.rsa import run_rsa

    control, control_layer = None, None
    if args.control:
        control, _, control_layer = args.control.partition(":")
    summary = run_rsa(args.features, args.brain, args.out, method=args.method,
                      n_boot=args.n_boot, control=control, control_layer=control_layer or None,
                      metric=args.metric, brain_metric=args.brain_metric, n_perm=args.n_perm,
                      seed=args.seed, alternative=args.alternative,
                      layers=args.layers.split(",") if args.layers else None)
    nc = summary["noise_ceiling"]
    print(f"RSA of {len(summary['layers'])} layers x {len(summary['subjects'])} subjects "
          f"({summary['n_stimuli']} stimuli, {summary['n_perm']} permutations) "
          f"in {summary['seconds']:.1f} s")
    print(f"best layer (group RDM): {summary['best_layer_group']}")
    if nc:
        print(f"noise ceiling: [{nc['lower']:.3f}, {nc['upper']:.3f}]")
    print(f"wrote {args.out}/rsa.csv, rsa.json, rsa.png")
    return 0


_COMMANDS = [
    _add_info,
    _add_rsa,
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
