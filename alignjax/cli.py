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


_COMMANDS = [
    _add_info,
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
