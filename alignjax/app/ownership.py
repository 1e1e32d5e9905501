"""Who writes an output folder, and the run record (``pipeline.json``) it keeps.

An output folder belongs to one pipeline config: ``.alignjax/owner.json`` records the
config's path, content hash and the step folders it wrote. Another config is refused
unless it is forced to take the folder over, which deletes the old config's results.
Step folders of analyses the owning config no longer plans are kept (commenting an
analysis out does not delete its results) but no longer reported.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from alignjax.app import provenance
from alignjax.errors import AlignjaxInputError
from alignjax.app.fingerprint import text_sha256

__all__ = ["OwnershipError", "check", "claim", "config_id", "RunState"]

OWNER = "owner.json"


class OwnershipError(AlignjaxInputError):
    """The output folder holds the results of another pipeline config."""


def config_id(cfg) -> dict:
    """Path and SHA-256 of a loaded config's text."""
    return {"path": str(cfg.path), "sha256": text_sha256(cfg.text)}


def _owner(out: Path) -> dict | None:
    try:
        return json.loads((out / provenance.STATE_DIR / OWNER).read_text())
    except (OSError, ValueError):
        pass
    try:  # a folder written before owners were recorded
        old = json.loads((out / "pipeline.json").read_text())
        return {"config": old["config"], "steps": [s["out"] for s in old.get("steps", [])]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def check(cfg, steps, *, force: bool = False) -> list[Path]:
    """Refuse a folder another config owns (unless ``force``); return what to remove.

    When a foreign owner is forced out: every step folder it wrote, its ``pipeline.json``
    and its report. Nothing otherwise.
    """
    out = cfg.out
    owner = _owner(out)
    if owner is None:
        return []
    foreign = owner.get("config") != str(cfg.path)
    if foreign and not force:
        raise OwnershipError(
            f"{out} holds the results of another pipeline config ({owner.get('config')}); "
            f"{cfg.path} would overwrite them. Give this config its own output folder "
            "([study] out = \"...\"), or run it with --force to take the folder over (this "
            "deletes the results the other config wrote there)")
    if not foreign:
        return []
    gone = [Path(p) for p in owner.get("steps", []) if Path(p).exists() and _inside(Path(p), out)]
    gone += [p for p in (out / "pipeline.json", out / "report.html") if p.exists()]
    return sorted(set(gone))


def claim(cfg, steps, remove: list[Path]) -> None:
    """Delete ``remove`` and record ``cfg`` as the owner of its output folder."""
    for p in remove:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
        parent = p.parent  # an analysis folder left empty goes too
        while parent != cfg.out and _inside(parent, cfg.out) and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    owner = _owner(cfg.out)
    kept = owner.get("steps", []) if owner and owner.get("config") == str(cfg.path) else []
    state = cfg.out / provenance.STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    provenance.sweep(cfg.out)
    provenance.write_json(state / OWNER, {
        "config": str(cfg.path), "config_sha256": text_sha256(cfg.text),
        "steps": sorted(set(kept) | {str(s.out) for s in steps})})


class RunState:
    """The records of one run, saved as ``pipeline.json`` after each step (not in a dry run).

    ``pipeline.json`` carries the config text, the versions and the status of every planned
    step; a run that stops early says so (``finished`` null, steps ``"pending"``).
    """

    def __init__(self, cfg, steps, *, dry_run: bool):
        self.cfg, self.dry_run = cfg, dry_run
        self.started = provenance.now()
        self._by_name = {s.name: {"step": s.name, "kind": s.kind, "status": "pending",
                                  "reason": "", "seconds": 0.0, "out": str(s.out)} for s in steps}
        if not dry_run:
            self.save(finished=False)

    @property
    def records(self) -> list[dict]:
        return list(self._by_name.values())

    def record(self, step, status: str, reason: str, seconds: float = 0.0) -> None:
        self._by_name[step.name].update(status=status, reason=reason, seconds=seconds)

    def save(self, *, finished: bool) -> None:
        cfg = self.cfg
        provenance.write_json(cfg.out / "pipeline.json", {
            "config": str(cfg.path), "config_sha256": text_sha256(cfg.text),
            "config_text": cfg.text, "study": cfg.study,
            "stimuli": str(cfg.resolve(cfg.stimuli["path"]).resolve()),
            "started": self.started, "finished": provenance.now() if finished else None,
            "versions": provenance.versions(), "alignjax_commit": provenance.alignjax_commit(),
            "steps": self.records})
