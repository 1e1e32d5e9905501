"""Pipeline steps: when a step must run, how it runs atomically, and what it records.

A :class:`Step` names its inputs by description (:mod:`alignjax.app.fingerprint`) and its
options by resolved value. :func:`decide` compares both with the step's ``step.json``
and says whether (and why) the step must run; a step also runs when a step it depends on
runs in the same pipeline run, so that ``--dry-run`` predicts exactly what a run does.
:func:`execute` fingerprints the inputs before the step, runs it into a fresh temporary
folder, checks that no input changed meanwhile, writes ``step.json`` last and swaps the
folder in (:func:`alignjax.app.provenance.install`).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from alignjax.app import provenance
from alignjax.errors import AlignjaxInputError
from alignjax.app.fingerprint import MISSING, fingerprint, text_sha256

__all__ = ["Step", "StepDecision", "decide", "decide_all", "execute", "StepError"]


class StepError(AlignjaxInputError):
    """A step could not be run or recorded (an input changed while it ran, a foreign folder)."""


@dataclass
class Step:
    """One unit of work: its folder, inputs, resolved options and how to run it.

    ``run(folder)`` writes the step's results into ``folder`` (a fresh temporary folder).
    ``upstream`` names the steps whose outputs this one reads.
    """

    name: str
    kind: str
    out: Path
    options: dict
    inputs: dict[str, dict]
    run: Callable[[Path], Any] = field(repr=False)
    upstream: list[str] = field(default_factory=list)

    def fingerprints(self) -> dict[str, str]:
        """Content fingerprint of every input, now."""
        return {label: fingerprint(desc) for label, desc in self.inputs.items()}

    def key(self, fps: dict[str, str]) -> str:
        """One hash of kind, options and input fingerprints."""
        return text_sha256(json.dumps({"kind": self.kind, "options": self.options,
                                       "inputs": fps}, sort_keys=True, default=str))[:20]


@dataclass
class StepDecision:
    step: Step
    run: bool
    reason: str
    fingerprints: dict[str, str]
    record: dict | None


def _read_record(step: Step) -> dict | None:
    try:
        return json.loads((step.out / "step.json").read_text())
    except (OSError, ValueError):
        return None


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def _locate(desc: dict) -> str:
    return desc.get("path") or desc.get("spec") or ""


def _what_changed(step: Step, fps: dict[str, str], record: dict) -> list[str]:
    reasons = []
    if record.get("kind") != step.kind:
        reasons.append(f"kind {record.get('kind')!r} -> {step.kind!r}")
    old_opts, new_opts = record.get("options") or {}, _jsonable(step.options)
    for k in sorted(set(old_opts) | set(new_opts)):
        if old_opts.get(k) != new_opts.get(k):
            old, new = str(old_opts.get(k))[:60], str(new_opts.get(k))[:60]
            reasons.append(f"option {k}: {old} -> {new}")
    old_in = record.get("inputs") or {}
    for label in sorted(set(old_in) | set(fps)):
        old = (old_in.get(label) or {}).get("sha256")
        if old != fps.get(label):
            where = _locate(step.inputs.get(label) or old_in.get(label) or {})
            what = "is missing" if fps.get(label) == MISSING else "changed"
            reasons.append(f"input {label} ({where}) {what}")
    return reasons


def decide(step: Step, running: set[str]) -> StepDecision:
    """Whether ``step`` must run, and why; ``running`` holds the steps that run before it."""
    fps = step.fingerprints()
    record = _read_record(step)
    if record is None or not record.get("finished"):
        why = ("no previous result" if not step.out.exists()
               else "previous result has no complete step.json")
        return StepDecision(step, True, why, fps, record)
    up = [u for u in step.upstream if u in running]
    if up:
        return StepDecision(step, True, f"{', '.join(up)} runs first", fps, record)
    changed = _what_changed(step, fps, record)
    return StepDecision(step, bool(changed), "; ".join(changed) or "up to date", fps, record)


def decide_all(steps: list[Step]) -> list[StepDecision]:
    """:func:`decide` for each step in order, propagating runs to dependent steps."""
    running: set[str] = set()
    out = []
    for step in steps:
        d = decide(step, running)
        if d.run:
            running.add(step.name)
        out.append(d)
    return out


def _temp_folder(step: Step, root: Path, fps: dict[str, str]) -> Path:
    """A fresh folder for an analysis; for an extraction one per request, so it resumes."""
    tmp_root = root / provenance.STATE_DIR / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    slug = step.name.replace("/", "-")
    if step.kind == "extract":
        folder = tmp_root / f"{slug}-{step.key(fps)}"
        for other in tmp_root.glob(f"{slug}-*"):
            if other != folder:
                shutil.rmtree(other, ignore_errors=True)
        return folder
    folder = tmp_root / slug
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


def execute(decision: StepDecision, *, root: Path, config: dict) -> dict:
    """Run one step atomically and return its ``step.json`` record.

    ``config`` holds ``path`` and ``sha256`` of the pipeline file. Raises
    :class:`StepError` if an input changed while the step ran (its results are discarded).
    """
    step, before = decision.step, decision.fingerprints
    tmp = _temp_folder(step, root, before)
    started, t0 = provenance.now(), time.perf_counter()
    step.run(tmp)
    seconds = time.perf_counter() - t0
    after = step.fingerprints()
    changed = [label for label in before if after.get(label) != before[label]]
    if changed:
        shutil.rmtree(tmp, ignore_errors=True)
        where = ", ".join(f"{label} ({_locate(step.inputs[label])})" for label in changed)
        raise StepError(f"step {step.name}: input {where} changed while the step ran, so its "
                        "results were discarded; rerun the pipeline when the inputs are final")
    record = {
        "step": step.name, "kind": step.kind, "fingerprint": step.key(before),
        "inputs": {label: dict(desc, sha256=before[label]) for label, desc in step.inputs.items()},
        "options": _jsonable(step.options), "upstream": step.upstream,
        "versions": provenance.versions(), "alignjax_commit": provenance.alignjax_commit(),
        "config": config["path"], "config_sha256": config["sha256"],
        "started": started, "finished": provenance.now(), "seconds": seconds,
        "outputs": provenance.output_hashes(tmp),
    }
    provenance.write_json(tmp / "step.json", record)
    provenance.install(tmp, step.out, root)
    return record
