"""What the report may show, and how each result was made.

The report is built from the ``step.json`` files: a step without one (never run, or
interrupted) is listed but not shown; a step whose inputs or options no longer match its
``step.json`` is shown marked stale, with the reason, and a banner at the top says so.
Only files a step's ``step.json`` lists among its outputs are embedded.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

__all__ = ["StepInfo", "collect_steps", "banner", "provenance_section"]


class StepInfo(dict):
    """One step of a run: ``step``, ``kind``, ``out``, ``record`` (step.json or None),
    ``stale`` (bool), ``reason`` (str)."""

    @property
    def files(self) -> list[Path]:
        """The files the step wrote (from its step.json), existing ones only."""
        rec = self.get("record") or {}
        out = Path(self["out"])
        return [out / rel for rel in sorted(rec.get("outputs", {})) if (out / rel).is_file()]


def _load(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _status_from_config(pipeline: dict) -> tuple[dict | None, str]:
    """Per-step staleness from the config the run used, or None when it is unavailable."""
    from alignjax.app.pipeline import pipeline_status

    cfg = Path(pipeline.get("config") or "")
    if not cfg.is_file():
        return None, f"the config {cfg} is gone, so only input contents were checked"
    try:
        return {s["step"]: s for s in pipeline_status(cfg)}, ""
    except ValueError as exc:
        return None, f"the config {cfg} no longer loads ({exc}); only input contents were checked"


def _status_from_record(record: dict) -> tuple[bool, str]:
    """Stale when an input recorded in ``step.json`` now has another fingerprint."""
    from alignjax.app.fingerprint import fingerprint

    changed = [label for label, desc in (record.get("inputs") or {}).items()
               if fingerprint(desc) != desc.get("sha256")]
    return bool(changed), ("inputs changed: " + ", ".join(changed)) if changed else "up to date"


def collect_steps(run_dir: Path, pipeline: dict | None) -> tuple[list[StepInfo], str]:
    """The steps of a run with their records and staleness; plus a note on how it was checked."""
    run_dir = Path(run_dir)
    if pipeline:
        listed = [(s["step"], s.get("kind"), s["out"]) for s in pipeline.get("steps", [])]
        status, note = _status_from_config(pipeline)
    else:  # a plain directory of step folders
        listed = [(str(p.parent.relative_to(run_dir)), None, str(p.parent))
                  for p in sorted(run_dir.rglob("step.json"))
                  if ".alignjax" not in p.relative_to(run_dir).parts]
        status, note = None, "no pipeline.json: only input contents were checked"
    steps = []
    for name, kind, out in listed:
        record = _load(Path(out) / "step.json")
        info = StepInfo(step=name, kind=(record or {}).get("kind") or kind or name.split("/")[0],
                        out=out, record=record)
        if record is None or not record.get("finished"):
            info.update(stale=True, reason="not run (no complete result)")
        elif status is not None and name in status:
            info.update(stale=status[name]["stale"], reason=status[name]["reason"])
        else:
            stale, reason = _status_from_record(record)
            info.update(stale=stale, reason=reason)
        steps.append(info)
    return steps, note


def banner(steps: list[StepInfo], note: str) -> str:
    """A warning at the top of the report when any result is stale or missing."""
    stale = [s for s in steps if s["stale"]]
    extra = f" ({html.escape(note)})" if note else ""
    if not stale:
        return ("<p class=meta>Every result below matches its current inputs and "
                f"options{extra}.</p>")
    items = "".join(f"<li>{html.escape(s['step'])}: {html.escape(s['reason'])}</li>" for s in stale)
    return (f"<div class=stale><b>{len(stale)} of {len(steps)} steps are stale or missing</b>: "
            "their results (marked below) do not match the current inputs or options; rerun "
            f"<code>alignjax run</code> to update them{extra}.<ul>{items}</ul></div>")


def provenance_section(steps: list[StepInfo], pipeline: dict | None, table) -> str:
    """Per step: status, date, versions and commit that made it; then the config text."""
    rows = []
    for s in steps:
        rec = s.get("record") or {}
        vers = rec.get("versions") or {}
        rows.append({"step": s["step"], "status": ("stale: " if s["stale"] else "current: ")
                     + s["reason"], "finished": rec.get("finished"),
                     "seconds": rec.get("seconds"),
                     "alignjax": vers.get("alignjax"),
                     "commit": (rec.get("alignjax_commit") or "")[:12],
                     "jax": vers.get("jax"), "numpy": vers.get("numpy"), "torch": vers.get("torch"),
                     "config sha256": (rec.get("config_sha256") or "")[:12]})
    out = "<h2>Provenance of each result</h2>" + table(
        rows, ["step", "status", "finished", "seconds", "alignjax", "commit", "jax", "numpy",
               "torch", "config sha256"], {"seconds": "{:.2f}"})
    details = []
    for s in steps:
        rec = s.get("record")
        if rec:
            keep = {k: rec.get(k) for k in ("options", "inputs", "versions", "alignjax_commit",
                                              "started", "finished")}
            details.append(f"<h4>{html.escape(s['step'])}</h4><pre>"
                           f"{html.escape(json.dumps(keep, indent=1, sort_keys=True))}</pre>")
    if details:
        out += ("<details><summary>options, input fingerprints and versions of each step"
                "</summary>" + "".join(details) + "</details>")
    if pipeline and pipeline.get("config_text"):
        out += (f"<details><summary>config {html.escape(str(pipeline.get('config')))} (sha256 "
                f"{html.escape(str(pipeline.get('config_sha256', ''))[:12])})</summary><pre>"
                f"{html.escape(pipeline['config_text'])}</pre></details>")
    return out
