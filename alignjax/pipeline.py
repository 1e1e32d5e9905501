"""Config-driven pipelines: ``alignjax run pipeline.toml``.

A TOML file names the stimuli, the models (spec strings), the brain/behaviour files and
the analyses. The pipeline is planned into steps (one extraction per model, then one
step per analysis x model); each step writes into its own folder under the study's
``out`` directory with a ``step.json`` holding a hash of its inputs and options, and is
skipped on a rerun when that hash is unchanged. Everything that can be checked cheaply
(files exist, specs parse, option names, stimulus ids of the data files) is checked
before the first step starts.

Schema (see ``pipelines/seed003.toml`` for a full example)::

    [study]        name, out (relative to the TOML file), seed
    [stimuli]      path (folder or CSV with id,path,labels), duration (s, optional)
    [[models]]     name, spec, pooling, layers, batch_size, dtype, device
    [[data]]       name, path, kind = "brain" | "judgements"
    [[analyses]]   kind = "rsa" | "encode" | "probe" | "behaviour_rsa", name, models, + options
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ._validation import AlignjaxInputError

__all__ = ["PipelineError", "load_config", "plan", "run_pipeline", "Step"]


class PipelineError(AlignjaxInputError):
    """A pipeline file is invalid: names the line/key and what was expected."""


# allowed keys per section; analyses per kind
_SECTIONS = {
    "study": {"name", "out", "seed"},
    "stimuli": {"path", "duration"},
    "models": {"name", "spec", "pooling", "layers", "batch_size", "dtype", "device", "n_frames"},
    "data": {"name", "path", "kind"},
}
_ANALYSES = {
    "rsa": {"data", "method", "metric", "brain_metric", "n_perm", "layers", "alternative",
            "n_boot", "control", "control_layer"},
    "encode": {"data", "alphas", "outer_folds", "inner_folds", "stratify", "score",
               "extend_alphas", "standardize", "layers", "n_perm"},
    "probe": {"target", "where", "Cs", "folds", "transfer_train", "transfer_test", "n_perm",
              "layers", "standardize"},
    "behaviour_rsa": {"data", "metric", "method", "n_perm", "layers", "smoothing"},
}
_COMMON = {"kind", "name", "models"}
_DATA_KINDS = ("brain", "judgements")


@dataclass
class Config:
    path: Path
    text: str
    study: dict
    stimuli: dict
    models: list[dict]
    data: dict[str, dict]
    analyses: list[dict]

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def out(self) -> Path:
        return (self.root / self.study.get("out", "results")).resolve()

    def resolve(self, p: str) -> Path:
        p = Path(p)
        return p if p.is_absolute() else (self.root / p)


@dataclass
class Step:
    """One unit of work: its folder, what it depends on, and how to run it."""

    name: str
    kind: str
    out: Path
    options: dict
    inputs: list[Path]
    run: Callable[[], Any] = field(repr=False)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps({"kind": self.kind, "options": self.options}, sort_keys=True,
                            default=str).encode())
        for p in self.inputs:
            h.update(_fingerprint_path(p).encode())
        return h.hexdigest()[:20]


def _fingerprint_path(p: Path) -> str:
    """Content hash of a file, or of a feature store's manifest, or of a folder listing."""
    p = Path(p)
    if (p / "manifest.json").is_file():
        return hashlib.sha256((p / "manifest.json").read_bytes()).hexdigest()
    if p.is_file():
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    if p.is_dir():
        entries = sorted((str(q.relative_to(p)), q.stat().st_size) for q in p.rglob("*") if q.is_file())
        return hashlib.sha256(json.dumps(entries).encode()).hexdigest()
    return "missing"


def _line_of(text: str, key: str) -> int | None:
    m = re.search(rf"^\s*{re.escape(key)}\s*=", text, flags=re.M)
    return text[: m.start()].count("\n") + 1 if m else None


def _where(cfg_path: Path, text: str, key: str, section: str) -> str:
    line = _line_of(text, key)
    return f"{cfg_path}{f' line {line}' if line else ''}, {section}"


def _check_keys(entry: dict, allowed: set, section: str, cfg_path: Path, text: str) -> None:
    for key in entry:
        if key not in allowed:
            close = [a for a in sorted(allowed) if a.lower().startswith(key.lower()[:3])]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PipelineError(
                f"{_where(cfg_path, text, key, section)}: unknown option {key!r}{hint}; "
                f"expected one of {', '.join(sorted(allowed))}"
            )


def load_config(path) -> Config:
    """Read and validate a pipeline TOML file (structure and option names)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise PipelineError(f"pipeline file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PipelineError(f"{path}: not valid TOML ({exc})") from exc
    top = {"study", "stimuli", "models", "data", "analyses"}
    for key in raw:
        if key not in top:
            raise PipelineError(f"{_where(path, text, key, 'top level')}: unknown section "
                                f"{key!r}; expected {', '.join(sorted(top))}")
    for sec in ("stimuli", "models"):
        if sec not in raw:
            raise PipelineError(f"{path}: missing required section [{sec}]"
                                if sec == "stimuli" else f"{path}: no [[models]] given")
    study = dict(raw.get("study", {}))
    _check_keys(study, _SECTIONS["study"], "[study]", path, text)
    stimuli = dict(raw["stimuli"])
    _check_keys(stimuli, _SECTIONS["stimuli"], "[stimuli]", path, text)
    if "path" not in stimuli:
        raise PipelineError(f"{path}: [stimuli] needs a 'path' (folder of sounds or CSV)")
    models = [dict(m) for m in raw["models"]]
    names = set()
    for i, m in enumerate(models):
        _check_keys(m, _SECTIONS["models"], f"[[models]] #{i + 1}", path, text)
        for req in ("name", "spec"):
            if req not in m:
                raise PipelineError(f"{path}: [[models]] #{i + 1} needs {req!r}")
        if m["name"] in names:
            raise PipelineError(f"{path}: model name {m['name']!r} is used twice")
        names.add(m["name"])
    data = {}
    for i, d in enumerate(raw.get("data", [])):
        _check_keys(d, _SECTIONS["data"], f"[[data]] #{i + 1}", path, text)
        for req in ("name", "path", "kind"):
            if req not in d:
                raise PipelineError(f"{path}: [[data]] #{i + 1} needs {req!r}")
        if d["kind"] not in _DATA_KINDS:
            raise PipelineError(f"{_where(path, text, 'kind', f'[[data]] #{i + 1}')}: kind must be "
                                f"one of {_DATA_KINDS}, got {d['kind']!r}")
        data[d["name"]] = dict(d)
    analyses = []
    for i, a in enumerate(raw.get("analyses", [])):
        a = dict(a)
        kind = a.get("kind")
        if kind not in _ANALYSES:
            raise PipelineError(f"{_where(path, text, 'kind', f'[[analyses]] #{i + 1}')}: kind must "
                                f"be one of {', '.join(_ANALYSES)}, got {kind!r}")
        _check_keys(a, _ANALYSES[kind] | _COMMON, f"[[analyses]] #{i + 1} (kind {kind!r})",
                    path, text)
        if "data" in _ANALYSES[kind] and kind != "probe":
            if a.get("data") not in data:
                raise PipelineError(
                    f"{path}: [[analyses]] #{i + 1} ({kind}) names data {a.get('data')!r}, but the "
                    f"[[data]] entries are {sorted(data) or 'none'}")
        for m in list(a.get("models", [])) + ([a["control"]] if "control" in a else []):
            if m not in names:
                raise PipelineError(f"{path}: [[analyses]] #{i + 1} names model {m!r}, not among "
                                    f"{sorted(names)}")
        if kind == "probe" and "target" not in a:
            raise PipelineError(f"{path}: [[analyses]] #{i + 1} (probe) needs a 'target' "
                                "label column")
        a.setdefault("name", f"probe-{a['target']}" if kind == "probe" else f"{kind}-{a['data']}")
        analyses.append(a)
    return Config(path, text, study, stimuli, models, data, analyses)


def _validate_inputs(cfg: Config) -> list:
    """Cheap checks before any long step: files, specs, stimulus ids and label columns."""
    from extractors.audio import list_stimuli
    from extractors.spec import parse_spec

    from .store import load_responses

    src = cfg.resolve(cfg.stimuli["path"])
    if not src.exists():
        raise PipelineError(f"{_where(cfg.path, cfg.text, 'path', '[stimuli]')}: {src} does not exist")
    stimuli = list_stimuli(src)
    ids = [s.id for s in stimuli]
    for m in cfg.models:
        try:
            parse_spec(m["spec"])
        except AlignjaxInputError as exc:
            raise PipelineError(f"{_where(cfg.path, cfg.text, 'spec', 'model ' + repr(m['name']))}: "
                                f"{exc}") from None
    for name, d in cfg.data.items():
        p = cfg.resolve(d["path"])
        if not p.is_file():
            raise PipelineError(f"{cfg.path}: data {name!r}: file {p} does not exist")
        if d["kind"] == "brain":
            resp = load_responses(p)
            missing = [i for i in ids if i not in set(resp.stimulus_ids)]
            if missing:
                raise PipelineError(
                    f"{cfg.path}: data {name!r} ({p}) lacks {len(missing)} of the {len(ids)} "
                    f"stimulus ids (first: {missing[:5]}); its stimulus_ids must cover the stimuli")
        else:
            _load_judgements(p, ids, name)
    labels = stimuli[0].labels if stimuli else {}
    for a in cfg.analyses:
        for key in ("target", "stratify"):
            col = a.get(key)
            if col is not None and col not in labels:
                raise PipelineError(
                    f"{_where(cfg.path, cfg.text, key, 'analysis ' + repr(a['name']))}: label column "
                    f"{col!r} is not in the stimulus CSV (columns: {sorted(labels)})")
    return stimuli


def _load_judgements(path: Path, ids: list[str], name: str):
    """Judgement counts of the stimuli in ``ids`` that were judged, in ``ids`` order.

    Returns ``(judged_ids, counts)``; every judged stimulus must be among ``ids``.
    """
    import numpy as np

    from ._validation import StimulusMismatchError

    with np.load(path, allow_pickle=False) as z:
        if "stimulus_ids" not in z.files or "counts" not in z.files:
            raise PipelineError(f"judgement data {name!r} ({path}) needs arrays 'stimulus_ids' and "
                                "'counts' (n_stimuli, n_categories)")
        judged = [str(s) for s in z["stimulus_ids"]]
        counts = np.asarray(z["counts"], float)
    known = set(ids)
    unknown = [s for s in judged if s not in known]
    if unknown:
        raise StimulusMismatchError(
            f"judgement data {name!r} ({path}) has {len(unknown)} stimulus ids that are not among "
            f"the stimuli (first: {unknown[:5]})")
    pos = {s: k for k, s in enumerate(judged)}
    order = [s for s in ids if s in pos]
    return order, counts[[pos[s] for s in order]]


# --------------------------------------------------------------------------- planning


def plan(cfg: Config, *, progress: bool = True) -> list[Step]:
    """The ordered steps of a pipeline (nothing runs)."""
    out = cfg.out
    seed = int(cfg.study.get("seed", 0))
    src = cfg.resolve(cfg.stimuli["path"])
    steps: list[Step] = []
    stores = {}
    for m in cfg.models:
        store = out / "features" / m["name"]
        stores[m["name"]] = store
        opts = {k: m[k] for k in ("spec", "pooling", "layers", "batch_size", "dtype", "n_frames")
                if k in m}
        opts["duration"] = cfg.stimuli.get("duration")

        def run_extract(m=m, store=store, opts=opts):
            from extractors.run import extract

            kw = {k: v for k, v in opts.items() if k != "spec" and v is not None}
            return extract(m["spec"], src, store, device=m.get("device", "cpu"),
                           progress=progress, **kw)

        steps.append(Step(f"extract/{m['name']}", "extract", store, opts, [src], run_extract))
    for a in cfg.analyses:
        models = a.get("models") or [m["name"] for m in cfg.models]
        opts = {k: v for k, v in a.items() if k not in _COMMON}
        for mname in models:
            step_out = out / a["name"] / mname
            inputs = [stores[mname]]
            if "data" in a and a["kind"] != "probe":
                inputs.append(cfg.resolve(cfg.data[a["data"]]["path"]))
            if a["kind"] in ("probe", "encode"):
                inputs.append(src)
            if a.get("control"):
                inputs.append(stores[a["control"]])
            runner = _runner(cfg, a, stores[mname], step_out, seed, progress, stores)
            steps.append(Step(f"{a['name']}/{mname}", a["kind"], step_out,
                              dict(opts, seed=seed), inputs, runner))
    return steps


def _labels_for(cfg: Config, column: str, ids: list[str]):
    from extractors.audio import list_stimuli

    stimuli = {s.id: s.labels for s in list_stimuli(cfg.resolve(cfg.stimuli["path"]))}
    return [stimuli[i].get(column, "") for i in ids]


def _runner(cfg: Config, a: dict, store: Path, out: Path, seed: int, progress: bool,
            stores_all: dict[str, Path]):
    kind = a["kind"]
    layers = a.get("layers")

    def rsa():
        from .studies.rsa import run_rsa

        return run_rsa(store, cfg.resolve(cfg.data[a["data"]]["path"]), out,
                       method=a.get("method", "spearman"), metric=a.get("metric", "correlation"),
                       brain_metric=a.get("brain_metric", "correlation"),
                       n_perm=int(a.get("n_perm", 1000)), seed=seed,
                       alternative=a.get("alternative", "greater"), layers=layers,
                       n_boot=int(a.get("n_boot", 0)),
                       control=stores_all[a["control"]] if a.get("control") else None,
                       control_layer=a.get("control_layer"), progress=progress)

    def behaviour():
        from .studies.rsa import run_behaviour_rsa
        from .store import open_store

        ids = open_store(store).valid_ids()
        judged, counts = _load_judgements(cfg.resolve(cfg.data[a["data"]]["path"]), ids, a["data"])
        return run_behaviour_rsa(store, counts, out, stimulus_ids=judged, judgement_name=a["data"],
                                 metric=a.get("metric", "symmetric_kl"),
                                 method=a.get("method", "spearman"),
                                 n_perm=int(a.get("n_perm", 1000)), seed=seed, layers=layers,
                                 smoothing=float(a.get("smoothing", 1e-2)), progress=progress)

    def encode():
        from .studies.encode import run_encode
        from .store import open_store

        stratify = None
        if a.get("stratify"):
            stratify = _labels_for(cfg, a["stratify"], open_store(store).valid_ids())
        return run_encode(store, cfg.resolve(cfg.data[a["data"]]["path"]), out,
                          alphas=a.get("alphas"), outer_folds=int(a.get("outer_folds", 5)),
                          inner_folds=int(a.get("inner_folds", 5)), stratify=stratify,
                          score=a.get("score", "r2"), extend_alphas=bool(a.get("extend_alphas", False)),
                          standardize=bool(a.get("standardize", True)), layers=layers, seed=seed,
                          n_perm=int(a.get("n_perm", 0)), progress=progress)

    def probe():
        from .studies.probe import run_probe

        return run_probe(store, cfg.resolve(cfg.stimuli["path"]), out, target=a["target"],
                         log=lambda msg: None,
                         where=a.get("where"), Cs=a.get("Cs"), folds=int(a.get("folds", 5)),
                         transfer_train=a.get("transfer_train"),
                         transfer_test=a.get("transfer_test"), n_perm=int(a.get("n_perm", 0)),
                         layers=layers, seed=seed, progress=progress)

    return {"rsa": rsa, "behaviour_rsa": behaviour, "encode": encode, "probe": probe}[kind]


# --------------------------------------------------------------------------- running


def _done(step: Step, fp: str) -> bool:
    meta = step.out / "step.json"
    if not meta.is_file():
        return False
    try:
        info = json.loads(meta.read_text())
    except json.JSONDecodeError:
        return False
    return info.get("fingerprint") == fp and info.get("finished", False)


def run_pipeline(path, *, dry_run: bool = False, progress: bool = True,
                 log: Callable[[str], None] = print) -> list[dict]:
    """Validate, plan and run a pipeline; returns one record per step.

    Each record has ``step``, ``status`` (``"ran"``, ``"skipped"`` or ``"planned"``),
    ``seconds`` and ``out``.
    """
    cfg = load_config(path)
    _validate_inputs(cfg)
    steps = plan(cfg, progress=progress)
    records = []
    cfg.out.mkdir(parents=True, exist_ok=True)
    for k, step in enumerate(steps, 1):
        # extraction fingerprints depend only on options + stimuli; analyses on the store
        # manifest, which exists once the extraction step has run
        fp = step.fingerprint()
        if dry_run:
            state = "up to date" if _done(step, fp) else "would run"
            log(f"[{k}/{len(steps)}] {step.name:<40s} {state:<11s} -> {step.out}")
            records.append({"step": step.name, "status": "planned", "out": str(step.out),
                            "up_to_date": state == "up to date"})
            continue
        if _done(step, fp):
            log(f"[{k}/{len(steps)}] {step.name}: up to date, skipped")
            records.append({"step": step.name, "status": "skipped", "seconds": 0.0,
                            "out": str(step.out)})
            continue
        log(f"[{k}/{len(steps)}] {step.name} ...")
        t0 = time.perf_counter()
        step.out.mkdir(parents=True, exist_ok=True)
        step.run()
        secs = time.perf_counter() - t0
        info = {"step": step.name, "kind": step.kind, "fingerprint": step.fingerprint(),
                "options": step.options, "inputs": [str(p) for p in step.inputs],
                "seconds": secs, "finished": True}
        tmp = step.out / "step.json.tmp"
        tmp.write_text(json.dumps(info, indent=1, default=str))
        tmp.replace(step.out / "step.json")
        log(f"[{k}/{len(steps)}] {step.name}: done in {secs:.1f} s")
        records.append({"step": step.name, "status": "ran", "seconds": secs, "out": str(step.out)})
    if not dry_run:
        (cfg.out / "pipeline.json").write_text(json.dumps(
            {"config": str(cfg.path), "study": cfg.study,
             "stimuli": str(cfg.resolve(cfg.stimuli["path"]).resolve()), "steps": records},
            indent=1))
    return records
