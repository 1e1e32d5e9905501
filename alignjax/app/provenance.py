"""Provenance and atomic output folders for pipeline steps.

A step writes into a fresh temporary folder; :func:`install` swaps it in for the step's
output folder only once the step has finished and its ``step.json`` is written (last).
A process killed at any point leaves the previous complete folder or nothing at the
output path (never a mix); leftovers of interrupted swaps are removed by :func:`sweep`.

:func:`versions`, :func:`alignjax_commit` and :func:`alignjax_source` say what computed a
result; an output folder's owner (the config that writes it) is kept in
``.alignjax/owner.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path

__all__ = ["versions", "alignjax_commit", "alignjax_source", "now", "write_json", "install", "sweep",
           "output_hashes", "STATE_DIR", "VERSIONED_PACKAGES"]

STATE_DIR = ".alignjax"
# every package whose version can change a number, a figure or a file read
VERSIONED_PACKAGES = ("alignjax", "jax", "jaxlib", "numpy", "scipy", "torch", "transformers",
                      "librosa", "soundfile", "soxr", "torchcrepe", "silero-vad", "h5py",
                      "matplotlib")


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Installed versions of :data:`VERSIONED_PACKAGES` (absent packages left out)."""
    out = {}
    for pkg in VERSIONED_PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          timeout=10, check=True).stdout.strip()


def _package_dir() -> Path:
    """The ``alignjax`` package folder this module was imported from."""
    return Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def alignjax_source() -> dict:
    """Where the alignjax in use comes from: ``{"commit", "dirty", "version"}``.

    From a git checkout (the repository found by walking up from the package folder, and
    only if it tracks this package's files): the ``HEAD`` commit and whether ``alignjax/``
    or ``extractors/`` have uncommitted changes (untracked files included). Otherwise
    (an installed wheel, a copied tree, git missing) ``commit`` and ``dirty`` are None.
    ``version`` is the imported package's ``__version__``.
    """
    from alignjax import __version__

    package = _package_dir()
    out = {"commit": None, "dirty": None, "version": __version__}
    try:
        root = Path(_git(package, "rev-parse", "--show-toplevel")).resolve()
        # a package copied into some other repository's folder (a venv inside a checkout)
        # is not that repository's code: the package's own files must be tracked there
        rel = (package / "__init__.py").relative_to(root).as_posix()
        _git(root, "ls-files", "--error-unmatch", "--", rel)
        head = _git(root, "rev-parse", "HEAD")
        pkg_rel = package.relative_to(root).as_posix()
        dirty = _git(root, "status", "--porcelain", "--", pkg_rel, "extractors")
    except (OSError, ValueError, subprocess.SubprocessError):
        return out
    return dict(out, commit=head, dirty=bool(dirty))


def alignjax_commit() -> str | None:
    """Git commit of the alignjax checkout in use (``+dirty`` if it has local changes).

    None when alignjax is not imported from a git checkout or git is unavailable (the
    installed version is in :func:`versions` and :func:`alignjax_source`).
    """
    src = alignjax_source()
    if src["commit"] is None:
        return None
    return src["commit"] + ("+dirty" if src["dirty"] else "")


def now() -> str:
    """The current UTC time, ISO 8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, obj) -> None:
    """Write JSON atomically (temporary file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def output_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file a step wrote, by path relative to its folder (step.json excluded)."""
    from alignjax.app.fingerprint import file_sha256

    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "step.json"}


def _trash(root: Path) -> Path:
    return Path(root) / STATE_DIR / "trash"


def _retire(dest: Path, root: Path) -> Path | None:
    """Move the old output folder aside (into the trash); None if there was none."""
    if not dest.exists():
        return None
    trash = _trash(root)
    trash.mkdir(parents=True, exist_ok=True)
    old = trash / f"{dest.name}-{uuid.uuid4().hex[:8]}"
    os.replace(dest, old)
    return old


def _discard(old: Path | None) -> None:
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def install(tmp: Path, dest: Path, root: Path) -> None:
    """Replace ``dest`` by the finished folder ``tmp`` (same file system).

    Two renames: the old folder into ``root/.alignjax/trash``, then ``tmp`` to ``dest``.
    Between them ``dest`` is absent, never half-written.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = _retire(dest, root)
    os.replace(tmp, dest)
    _discard(old)


def sweep(root: Path) -> None:
    """Remove what interrupted runs left in ``root/.alignjax`` (trash, analysis temp folders).

    Partial extractions (``tmp/extract-*``) are kept so that they resume.
    """
    _discard(_trash(root))
    tmp = Path(root) / STATE_DIR / "tmp"
    if tmp.is_dir():
        for p in tmp.iterdir():
            if not p.name.startswith("extract-"):
                _discard(p)
