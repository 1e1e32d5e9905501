"""The ``alignjax`` command line.

Each subcommand is one ``add_<name>(subparsers)`` function in :mod:`alignjax.app.commands`
(grouped by theme) that registers its parser and sets ``func``; heavy imports happen inside
the handlers so ``alignjax --help`` is fast.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from alignjax.app.commands import COMMANDS

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alignjax",
        description="Align audio models' representations with brains, behaviour and each other.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in COMMANDS:
        add(sub)
    return parser


def _join_distributed_run() -> None:
    """Join the jax.distributed run this process was started in (by ``alignjax launch``
    or with ALIGNJAX_* variables), if any."""
    import os

    from alignjax import distributed

    if os.environ.get(distributed.ENV_NUM_PROCESSES):
        from alignjax.app.launch import ENV_TIMEOUT

        distributed.initialize(timeout=int(os.environ.get(ENV_TIMEOUT, "300")))


#: A folder for compiled kernels kept across commands, or 0/off to compile anew each run
#: (default: ``$XDG_CACHE_HOME/alignjax/jax``).
ENV_COMPILATION_CACHE = "ALIGNJAX_COMPILATION_CACHE"


def _compilation_cache() -> None:
    """Keep compiled kernels across commands (see :data:`ENV_COMPILATION_CACHE`)."""
    import os

    from alignjax import use_compilation_cache

    setting = os.environ.get(ENV_COMPILATION_CACHE, "").strip()
    if setting.lower() in ("0", "off", "false", "no"):
        return
    use_compilation_cache(setting or None)


@contextlib.contextmanager
def _output_of_this_process(args):
    """Process 0 of a multi-process run writes ``--out``; the others write into a scratch
    folder removed afterwards, unless the command writes its own part of the output in
    every process (``writes_per_process``, e.g. ``encode``)."""
    from alignjax import distributed

    if getattr(args, "out", None) is None or distributed.is_main() \
            or getattr(args, "writes_per_process", False):
        yield
        return
    with tempfile.TemporaryDirectory(prefix=f"alignjax-rank{distributed.process_index()}-") as d:
        args.out = str(Path(d) / "out")
        yield


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from alignjax.distributed import DistributedError
    from alignjax.errors import AlignjaxInputError

    try:
        if args.command == "launch":
            return int(args.func(args) or 0)
        _compilation_cache()
        _join_distributed_run()
        with _output_of_this_process(args):
            return int(args.func(args) or 0)
    except (AlignjaxInputError, DistributedError) as exc:
        print(f"alignjax {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
