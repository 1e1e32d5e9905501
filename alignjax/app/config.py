"""Pipeline configs: the TOML schema, its validation with line numbers, and option defaults.

Schema (see ``pipelines/seed003.toml`` for a full example)::

    [study]        name, out (relative to the TOML file), seed
    [stimuli]      path (folder or CSV with id,path,labels), duration (s, optional)
    [[models]]     name, spec, pooling, layers, batch_size, dtype, device, n_frames, channels, prompt
                   (audio LLMs), frame_rate (Hz, pooling "none"), checkpoints (a glob: one
                   model "name@step" per checkpoint of an hf:DIR training run)
    [[data]]       name, path, kind = "brain" | "judgements" | "epochs"; for NIfTI/GIfTI brain
                   data also mask, stimulus_ids, nan_voxels = "raise" | "exclude"
    [[analyses]]   kind = "rsa" | "encode" | "probe" | "behaviour_rsa" | "similarity" |
                   "temporal_rsa" | "spatial" | "zoo", name, models, + options (similarity:
                   data = brain, or against = a model; spatial: the [stimuli] CSV is
                   alignjax synth-spatial's labels.csv); a zoo compares the models' results of other
                   analyses (``analyses``, default every rsa/encode/probe one) with ``scores``
                   tables and checkpoint ``steps``
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from alignjax.errors import AlignjaxInputError

__all__ = ["PipelineError", "Config", "load_config", "resolve_options"]


class PipelineError(AlignjaxInputError):
    """A pipeline file is invalid: names the line/key and what was expected."""


# allowed keys per section; analyses per kind
_SECTIONS = {
    "study": {"name", "out", "seed"},
    "stimuli": {"path", "duration"},
    "models": {"name", "spec", "pooling", "layers", "batch_size", "dtype", "device", "n_frames",
               "prompt", "frame_rate", "checkpoints", "channels"},
    "data": {"name", "path", "kind", "mask", "stimulus_ids", "nan_voxels"},
}
_ANALYSES = {
    "rsa": {"data", "method", "metric", "brain_metric", "n_perm", "layers", "alternative",
            "n_boot", "control", "control_layer"},
    "encode": {"data", "alphas", "outer_folds", "inner_folds", "stratify", "score",
               "extend_alphas", "standardize", "layers", "n_perm", "rois", "roi_labels"},
    "probe": {"target", "where", "Cs", "folds", "inner_folds", "class_weight", "transfer_train",
              "transfer_test", "n_perm", "layers", "standardize"},
    "behaviour_rsa": {"data", "metric", "method", "n_perm", "layers", "smoothing"},
    "zoo": {"analyses", "scores", "steps", "n_boot", "n_perm"},
    "temporal_rsa": {"data", "window", "step", "n_perm", "correction", "cluster_threshold",
                     "method", "metric", "brain_metric", "layers", "searchlight", "cv_folds",
                     "noise_norm", "picks"},
    "similarity": {"data", "against", "metrics", "n_perm", "n_boot", "k", "rdm_metric", "layers"},
    "spatial": {"factors", "folds", "inner_folds", "n_boot", "n_perm", "layers", "pairs"},
}
_COMMON = {"kind", "name", "models"}
_DATA_KINDS = ("brain", "judgements", "epochs")


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


def _line_of(text: str, key: str) -> int | None:
    m = re.search(rf"^\s*{re.escape(key)}\s*=", text, flags=re.M)
    return text[: m.start()].count("\n") + 1 if m else None


def where(cfg_path: Path, text: str, key: str, section: str) -> str:
    line = _line_of(text, key)
    return f"{cfg_path}{f' line {line}' if line else ''}, {section}"


def _check_keys(entry: dict, allowed: set, section: str, cfg_path: Path, text: str) -> None:
    for key in entry:
        if key not in allowed:
            close = [a for a in sorted(allowed) if a.lower().startswith(key.lower()[:3])]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PipelineError(
                f"{where(cfg_path, text, key, section)}: unknown option {key!r}{hint}; "
                f"expected one of {', '.join(sorted(allowed))}"
            )


def table_lines(text: str, section: str) -> list[int]:
    """Line numbers of the ``[[section]]`` headers, in order."""
    return [text[: m.start()].count("\n") + 1
            for m in re.finditer(rf"^\s*\[\[\s*{section}\s*\]\]", text, flags=re.M)]


def _check_unique(names: list[str], section: str, path: Path, text: str,
                  explicit: list[bool] | None = None) -> None:
    """Refuse a name used by two entries of ``[[section]]``, giving the line of each."""
    lines = table_lines(text, section)
    seen: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        seen.setdefault(name, []).append(i)
    for name, idx in seen.items():
        if len(idx) > 1:
            where = " and ".join(f"#{i + 1}" + (f" (line {lines[i]})" if i < len(lines) else "")
                                 for i in idx)
            default = ("; it is the default name of each, so set name = \"...\" in at least "
                       "one" if explicit is not None and not any(explicit[i] for i in idx) else "")
            raise PipelineError(
                f"{path}: [[{section}]] {where} share the name {name!r}, so their results "
                f"would overwrite each other{default}; give each entry a distinct name")


def _expand_checkpoints(models: list[dict], path: Path) -> tuple[list[dict], dict]:
    """Replace each ``checkpoints = "GLOB"`` model by one model per checkpoint.

    ``spec = "hf:RUN"`` with ``checkpoints = "checkpoint-*"`` becomes the models
    ``<name>@<step>`` (``hf:RUN/<checkpoint>``), in order of training step; an analysis
    that names ``<name>`` runs on all of them. ``RUN`` is relative to the TOML file.
    Returns the models and ``{name: [member names]}``.
    """
    from extractors.checkpoints import list_checkpoints

    out, series = [], {}
    for m in models:
        if "checkpoints" not in m:
            out.append(m)
            continue
        prefix, _, root = str(m["spec"]).partition(":")
        if prefix != "hf":
            raise PipelineError(f"{path}: model {m['name']!r}: checkpoints applies to hf:DIR "
                                f"specs, not {m['spec']!r}")
        root_path = Path(root) if Path(root).is_absolute() else path.parent / root
        try:
            found = list_checkpoints(root_path, str(m["checkpoints"]))
        except AlignjaxInputError as exc:
            raise PipelineError(f"{path}: model {m['name']!r}: {exc}") from None
        members = []
        for _name, ckpt, step in found:
            member = {k: v for k, v in m.items() if k != "checkpoints"}
            member.update(name=f"{m['name']}@{step}", spec=f"hf:{ckpt}")
            out.append(member)
            members.append(member["name"])
        series[m["name"]] = members
    return out, series


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
            raise PipelineError(f"{where(path, text, key, 'top level')}: unknown section "
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
        names.add(m["name"])
    _check_unique([m["name"] for m in models], "models", path, text)
    models, series = _expand_checkpoints(models, path)
    names = {m["name"] for m in models}
    _check_unique([d.get("name") for d in raw.get("data", [])], "data", path, text)
    data = {}
    for i, d in enumerate(raw.get("data", [])):
        _check_keys(d, _SECTIONS["data"], f"[[data]] #{i + 1}", path, text)
        for req in ("name", "path", "kind"):
            if req not in d:
                raise PipelineError(f"{path}: [[data]] #{i + 1} needs {req!r}")
        if d["kind"] not in _DATA_KINDS:
            raise PipelineError(f"{where(path, text, 'kind', f'[[data]] #{i + 1}')}: kind must be "
                                f"one of {_DATA_KINDS}, got {d['kind']!r}")
        data[d["name"]] = dict(d)
    analyses, explicit = [], []
    for i, a in enumerate(raw.get("analyses", [])):
        a = dict(a)
        kind = a.get("kind")
        if kind not in _ANALYSES:
            raise PipelineError(f"{where(path, text, 'kind', f'[[analyses]] #{i + 1}')}: kind must "
                                f"be one of {', '.join(_ANALYSES)}, got {kind!r}")
        _check_keys(a, _ANALYSES[kind] | _COMMON, f"[[analyses]] #{i + 1} (kind {kind!r})",
                    path, text)
        if kind == "similarity" and ("data" in a) == ("against" in a):
            raise PipelineError(
                f"{path}: [[analyses]] #{i + 1} (similarity) needs exactly one of data (brain "
                "responses) or against (a model, for layer x layer similarity)")
        if "data" in _ANALYSES[kind] and kind != "probe" and "against" not in a:
            if a.get("data") not in data:
                raise PipelineError(
                    f"{path}: [[analyses]] #{i + 1} ({kind}) names data {a.get('data')!r}, but the "
                    f"[[data]] entries are {sorted(data) or 'none'}")
        if (kind == "temporal_rsa") != (data.get(a.get("data"), {}).get("kind") == "epochs") \
                and "data" in _ANALYSES[kind] and kind != "probe":
            raise PipelineError(
                f"{path}: [[analyses]] #{i + 1} ({kind}) names data {a.get('data')!r} of kind "
                f"{data[a['data']]['kind']!r}; temporal_rsa reads data of kind 'epochs', the "
                "other analyses never do")
        if "models" in a:
            a["models"] = [n for m in a["models"] for n in series.get(m, [m])]
        for m in (list(a.get("models", [])) + ([a["control"]] if "control" in a else [])
                  + ([a["against"]] if "against" in a else [])):
            if m not in names:
                raise PipelineError(f"{path}: [[analyses]] #{i + 1} names model {m!r}, not among "
                                    f"{sorted(names)}")
        if kind == "probe" and "target" not in a:
            raise PipelineError(f"{path}: [[analyses]] #{i + 1} (probe) needs a 'target' "
                                "label column")
        explicit.append("name" in a)
        a.setdefault("name", f"probe-{a['target']}" if kind == "probe" else kind
                     if kind in ("zoo", "spatial") else
                     f"{kind}-{a.get('data') or a.get('against')}")
        analyses.append(a)
    _check_unique([a["name"] for a in analyses], "analyses", path, text, explicit)
    _check_zoos(path, analyses)
    if "features" in {a["name"] for a in analyses}:
        raise PipelineError(f"{path}: an analysis may not be named 'features' (the folder of the "
                            "feature stores)")
    return Config(path, text, study, stimuli, models, data, analyses)


def zoo_sources(analyses: list[dict], a: dict) -> list[dict]:
    """The analyses a zoo compares: those it names, or every rsa/encode/probe analysis."""
    if a.get("analyses"):
        by = {b["name"]: b for b in analyses}
        return [by[n] for n in a["analyses"]]
    return [b for b in analyses if b["kind"] in ("rsa", "encode", "probe")]


def _check_zoos(path: Path, analyses: list[dict]) -> None:
    names = {b["name"]: b["kind"] for b in analyses}
    for a in analyses:
        if a["kind"] != "zoo":
            continue
        for n in a.get("analyses") or []:
            if names.get(n) not in ("rsa", "encode", "probe"):
                raise PipelineError(f"{path}: zoo {a['name']!r} names analysis {n!r}, which is "
                                    f"not an rsa, encode or probe analysis of this file")
        if not zoo_sources(analyses, a):
            raise PipelineError(f"{path}: zoo {a['name']!r} has no rsa/encode analysis to compare")


# --------------------------------------------------------------------------- options


def _defaults(kind: str) -> dict:
    """Every option of an analysis kind with its default value (resolved, JSON-able)."""
    from alignjax.app.studies.encode import DEFAULT_ALPHAS
    from alignjax.app.studies.probe import DEFAULT_CS

    return {
        "rsa": dict(method="spearman", metric="correlation", brain_metric="correlation",
                    n_perm=1000, layers=None, alternative="greater", n_boot=0, control=None,
                    control_layer=None),
        "behaviour_rsa": dict(metric="symmetric_kl", method="spearman", n_perm=1000,
                              layers=None, smoothing=1e-2),
        "temporal_rsa": dict(window=1, step=1, n_perm=1000, correction="cluster",
                             cluster_threshold=None, method="spearman", metric="correlation",
                             brain_metric="correlation", layers=None, searchlight=False,
                             cv_folds=None, noise_norm=False, picks=None),
        "similarity": dict(against=None, metrics=["cka", "cka_debiased", "dcor", "shape", "knn",
                                                  "rsa_spearman"],
                           n_perm=1000, n_boot=0, k=10, rdm_metric="correlation", layers=None),
        "encode": dict(alphas=DEFAULT_ALPHAS, outer_folds=5, inner_folds=5, stratify=None,
                       score="r2", extend_alphas=False, standardize=True, layers=None, n_perm=0,
                       rois=None, roi_labels=None),
        "probe": dict(target=None, where=None, Cs=list(DEFAULT_CS), folds=5, inner_folds=3,
                      class_weight=None, transfer_train=None, transfer_test=None, n_perm=0,
                      layers=None, standardize=True),
        "zoo": dict(analyses=None, scores=[], steps=None, n_boot=2000, n_perm=10_000),
        "spatial": dict(factors=None, folds=5, inner_folds=3, n_boot=1000, n_perm=0,
                        layers=None, pairs=None),
    }[kind]


_INTS = {"n_perm", "n_boot", "outer_folds", "inner_folds", "folds", "batch_size", "n_frames",
         "window", "step", "cv_folds", "k"}
_LISTS = {"scores", "analyses"}
_BOOLS = {"extend_alphas", "standardize", "searchlight", "noise_norm"}


def resolve_options(a: dict, seed: int) -> dict:
    """An analysis's options with every default filled in and values normalised.

    Spelling out a default gives the same options (and fingerprint) as leaving it out.
    """
    from alignjax.app.studies.encode import parse_alphas

    opts = _defaults(a["kind"])
    opts.update({k: v for k, v in a.items() if k not in _COMMON and k != "data"})
    for k in _INTS & set(opts):
        opts[k] = None if opts[k] is None else int(opts[k])
    for k in _BOOLS & set(opts):
        opts[k] = bool(opts[k])
    if "smoothing" in opts:
        opts["smoothing"] = float(opts["smoothing"])
    if opts.get("cluster_threshold") is not None:
        opts["cluster_threshold"] = float(opts["cluster_threshold"])
    if "alphas" in opts:
        opts["alphas"] = [float(x) for x in parse_alphas(opts["alphas"])]
    if "Cs" in opts:
        opts["Cs"] = [float(x) for x in opts["Cs"]]
    if a["kind"] == "similarity" and isinstance(opts["metrics"], str):
        opts["metrics"] = [m.strip() for m in opts["metrics"].split(",") if m.strip()]
    if opts.get("layers") is not None:
        opts["layers"] = list(opts["layers"])
    for k in _LISTS & set(opts):
        if isinstance(opts[k], str):
            opts[k] = [opts[k]]
    if isinstance(opts.get("picks"), (list, tuple)):
        opts["picks"] = [str(c) for c in opts["picks"]]
    if opts.get("factors") is not None:
        opts["factors"] = list(opts["factors"])
    opts["seed"] = seed
    return opts
