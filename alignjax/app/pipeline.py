"""Config-driven pipelines: ``alignjax run pipeline.toml``.

A TOML file names the stimuli, the models (spec strings), the brain/behaviour files and
the analyses. The pipeline is planned into steps (one extraction per model, then one
step per analysis x model); each step writes into its own folder under the study's
``out`` directory, atomically, with a ``step.json`` holding the content fingerprints of
its inputs, its resolved options and its provenance (:mod:`alignjax.app.steps`). A step is
skipped on a rerun only when its inputs' contents and options are unchanged and no step
it depends on runs. An output folder belongs to one config (:mod:`alignjax.app.ownership`).
Everything that can be checked cheaply (files exist, specs parse, option names, unique
names, stimulus ids of the data files, fold counts against stimulus and class counts) is
checked before the first step starts.

The TOML schema and option defaults are in :mod:`alignjax.app.config`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from alignjax.app import ownership
# the config's schema, and the helpers it shares with planning (its internal interface)
from alignjax.app.config import (Config, PipelineError, load_config, resolve_options,
                                 table_lines, where, zoo_sources)
from alignjax.errors import AlignjaxInputError, StimulusMismatchError
from alignjax.app.provenance import STATE_DIR
from alignjax.app.steps import Step

__all__ = ["PipelineError", "load_config", "plan", "run_pipeline", "pipeline_status",
           "resolve_options", "Step"]


def _validate_inputs(cfg: Config) -> list:
    """Cheap checks before any long step: files, specs, stimulus ids and label columns."""
    from extractors.audio import list_stimuli
    from extractors.spec import parse_spec

    from alignjax.io import load_responses

    src = cfg.resolve(cfg.stimuli["path"])
    if not src.exists():
        raise PipelineError(f"{where(cfg.path, cfg.text, 'path', '[stimuli]')}: {src} does not exist")
    stimuli = list_stimuli(src)
    ids = [s.id for s in stimuli]
    for m in cfg.models:
        try:
            parse_spec(m["spec"])
        except AlignjaxInputError as exc:
            raise PipelineError(f"{where(cfg.path, cfg.text, 'spec', 'model ' + repr(m['name']))}: "
                                f"{exc}") from None
    for name, d in cfg.data.items():
        p = cfg.resolve(d["path"])
        if not p.exists():
            raise PipelineError(f"{cfg.path}: data {name!r}: {p} does not exist")
        if d["kind"] == "epochs":
            from alignjax.io import load_epochs

            if not p.is_file():
                raise PipelineError(f"{cfg.path}: data {name!r}: epochs must be one file, "
                                    f"got {p}")
            try:   # ids do not depend on the channels; picks are an analysis option
                load_epochs(p, picks="all").resolve_ids(ids, what="the features")
            except StimulusMismatchError as exc:
                raise PipelineError(f"{cfg.path}: epochs {name!r} ({p}): {exc}; every "
                                    "stimulus needs trials") from None
        elif d["kind"] == "brain":
            resp = load_responses(p, **_brain_options(cfg, d))
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
                    f"{where(cfg.path, cfg.text, key, 'analysis ' + repr(a['name']))}: label column "
                    f"{col!r} is not in the stimulus CSV (columns: {sorted(labels)})")
    for a in cfg.analyses:
        _check_analysis(cfg, a, stimuli)
    return stimuli


def _brain_options(cfg: Config, d: dict) -> dict:
    """Loader options of a [[data]] entry (NIfTI/GIfTI: mask, stimulus ids, NaN voxels)."""
    opts = {k: str(cfg.resolve(d[k])) for k in ("mask", "stimulus_ids") if d.get(k)}
    if d.get("nan_voxels"):
        opts["nan_voxels"] = d["nan_voxels"]
    return opts


def _data_inputs(cfg: Config, a: dict, opts: dict) -> dict:
    """Fingerprinted inputs of an analysis's data: the file and its mask, ids, atlas."""
    from alignjax.app import fingerprint as fp

    d = cfg.data[a["data"]]
    inputs = {"data": fp.describe_file(cfg.resolve(d["path"]))}
    for key in ("mask", "stimulus_ids"):
        if d.get(key):
            inputs[f"data_{key}"] = fp.describe_file(cfg.resolve(d[key]))
    for key in ("rois", "roi_labels"):
        if opts.get(key):
            inputs[key] = fp.describe_file(cfg.resolve(opts[key]))
    return inputs


def _analysis_where(cfg: Config, a: dict, key: str) -> str:
    """``file line N, analysis 'name'`` for ``key`` inside that analysis's table."""
    starts = table_lines(cfg.text, "analyses") + [cfg.text.count("\n") + 2]
    i = cfg.analyses.index(a)
    lines = cfg.text.splitlines()[starts[i] - 1: starts[i + 1] - 1]
    hit = next((starts[i] + k for k, line in enumerate(lines)
                if re.match(rf"\s*{re.escape(key)}\s*=", line)), starts[i])
    return f"{cfg.path} line {hit}, analysis {a['name']!r}"


def _check_analysis(cfg: Config, a: dict, stimuli: list) -> None:
    """Fold counts against stimulus and class counts, and options a study cannot honour.

    Done before the first step, so a run never fails late on what the config already says.
    """
    import numpy as np

    from alignjax.errors import InvalidFoldsError
    from alignjax.folds import resolve_folds

    o = resolve_options(a, int(cfg.study.get("seed", 0)))
    key = "folds"
    try:
        if a["kind"] == "encode":
            strat = (np.array([s.labels.get(o["stratify"], "") for s in stimuli])
                     if o["stratify"] else None)
            key = "outer_folds"
            outer = resolve_folds(o["outer_folds"], len(stimuli), seed=o["seed"], stratify=strat)
            key = "inner_folds"
            for f, test in enumerate(outer):
                tr = np.flatnonzero(~test)
                resolve_folds(o["inner_folds"], len(tr), seed=o["seed"] + 1 + f,
                              stratify=None if strat is None else strat[tr])
        elif a["kind"] == "probe":
            _check_probe(o, [s.labels for s in stimuli])
        elif a["kind"] == "zoo":
            _check_zoo(cfg, a, o)
        elif a["kind"] == "similarity":
            _check_similarity(cfg, a, o, len(stimuli))
        elif a["kind"] == "spatial":
            from alignjax.spatial.targets import check_factors

            key = "factors"
            check_factors(o["factors"], stimuli[0].labels if stimuli else {})
    except InvalidFoldsError as exc:
        raise PipelineError(f"{_analysis_where(cfg, a, key)}: {exc} ([stimuli] holds "
                            f"{len(stimuli)} stimuli); set {key} lower") from None
    except AlignjaxInputError as exc:
        key = next((k for k in ("n_perm", "standardize") if str(exc).startswith(k)), "kind")
        raise PipelineError(f"{_analysis_where(cfg, a, key)}: {exc}") from None


def _check_zoo(cfg: Config, a: dict, o: dict) -> None:
    for key, paths in (("scores", o["scores"]), ("steps", [o["steps"]] if o["steps"] else [])):
        for path in paths:
            f = cfg.resolve(str(path).split(":")[0])
            if not f.is_file():
                raise PipelineError(f"{_analysis_where(cfg, a, key)}: {f} does not exist")
    models = {m for b in zoo_sources(cfg.analyses, a)
              for m in (b.get("models") or [m["name"] for m in cfg.models])}
    if o["scores"] and len(models) < 3:
        raise PipelineError(f"{_analysis_where(cfg, a, 'scores')}: a correlation of alignment "
                            f"with scores across models needs at least 3 models; the zoo has "
                            f"{len(models)} ({sorted(models)})")


def _check_similarity(cfg: Config, a: dict, o: dict, n: int) -> None:
    """Metric names, their stimulus minimum and k, before any step runs."""
    from alignjax.similarity.inference import resolve_metrics

    key = "k" if any(m.startswith(("knn", "cknna")) for m in o["metrics"]) else "metrics"
    try:
        resolve_metrics(o["metrics"], o["k"], o["rdm_metric"], n)
    except AlignjaxInputError as exc:
        where = _analysis_where(cfg, a, "metrics" if "metric" in str(exc) else key)
        raise PipelineError(f"{where}: {exc} ([stimuli] holds {n} stimuli)") from None


def _check_probe(o: dict, labels: list[dict]) -> None:
    import numpy as np

    from alignjax.errors import InvalidFoldsError

    def subset(expr):
        col, _, val = str(expr).partition("=")
        return np.array([lab.get(col.strip(), "").strip() == val.strip() for lab in labels])

    y = np.array([lab.get(o["target"], "").strip() for lab in labels])
    keep = (y != "") & (subset(o["where"]) if o["where"] else True)

    def need(mask, k, what):
        _, counts = np.unique(y[mask], return_counts=True)
        if counts.size and counts.min() < k:
            raise InvalidFoldsError(f"a class of {o['target']!r} has only {int(counts.min())} "
                                    f"stimuli in {what}, fewer than the {k} folds")

    if o["transfer_train"] is None:
        need(keep, o["folds"], "the probed stimuli")
        return
    # the test subset needs no folds: its within-subset baseline is skipped (and said so)
    # when it cannot run, the transfer score is still computed
    need(keep & subset(o["transfer_train"]), o["inner_folds"], "the transfer training subset")


def _load_judgements(path: Path, ids: list[str], name: str):
    """Judgement counts of the stimuli in ``ids`` that were judged, in ``ids`` order.

    Returns ``(judged_ids, counts)``; every judged stimulus must be among ``ids``.
    """
    import numpy as np

    from alignjax.errors import StimulusMismatchError

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


def _extract_options(cfg: Config, m: dict) -> dict:
    opts = _base_extract_options(cfg, m)
    # options added later appear only when set, so older studies keep their fingerprints
    if m.get("prompt") is not None:
        opts["prompt"] = str(m["prompt"])
    if m.get("frame_rate") is not None:
        opts["frame_rate"] = float(m["frame_rate"])
    return opts


def _base_extract_options(cfg: Config, m: dict) -> dict:
    return {"spec": m["spec"], "pooling": m.get("pooling", "mean"), "layers": m.get("layers"),
            "batch_size": int(m.get("batch_size", 8)), "dtype": m.get("dtype", "float32"),
            "n_frames": None if m.get("n_frames") is None else int(m["n_frames"]),
            "duration": None if cfg.stimuli.get("duration") is None
            else float(cfg.stimuli["duration"]),
            "device": m.get("device", "cpu"),
            # only when set: configs without it keep their fingerprints
            **({"channels": m["channels"]} if m.get("channels", "mix") != "mix" else {})}


_SPATIAL_COLUMNS = ("azimuth", "elevation", "distance", "class", "rt60", "volume", "shape",
                    "source_group", "room_group", "set", "format")


def _label_columns(opts: dict) -> list[str]:
    if "pairs" in opts:  # spatial: every factor column and the groups
        return list(_SPATIAL_COLUMNS)
    cols = [opts.get("target"), opts.get("stratify")]
    for key in ("where", "transfer_train", "transfer_test"):
        if opts.get(key):
            cols.append(str(opts[key]).split("=", 1)[0].strip())
    return [c for c in cols if c]


# --------------------------------------------------------------------------- planning


def plan(cfg: Config, *, progress: bool = True) -> list[Step]:
    """The ordered steps of a pipeline (nothing runs)."""
    from alignjax.app import fingerprint as fp

    out = cfg.out
    seed = int(cfg.study.get("seed", 0))
    src = cfg.resolve(cfg.stimuli["path"])
    steps: list[Step] = []
    stores = {m["name"]: out / "features" / m["name"] for m in cfg.models}
    for m in cfg.models:
        opts = _extract_options(cfg, m)

        def run_extract(folder, opts=opts):
            from extractors.run import extract

            kw = {k: v for k, v in opts.items() if k not in ("spec", "device") and v is not None}
            return extract(opts["spec"], src, folder, device=opts["device"], progress=progress,
                           **kw)

        steps.append(Step(f"extract/{m['name']}", "extract", stores[m["name"]], opts,
                          {"stimuli": fp.describe_stimuli(src),
                           "model": fp.describe_model(m["spec"])},
                          run_extract))
    for a in cfg.analyses:
        opts = resolve_options(a, seed)
        if a["kind"] == "zoo":
            steps.append(_zoo_step(cfg, a, opts, progress))
            continue
        for mname in a.get("models") or [m["name"] for m in cfg.models]:
            inputs = {"features": fp.describe_store(stores[mname])}
            upstream = [f"extract/{mname}"]
            if "data" in a:
                inputs.update(_data_inputs(cfg, a, opts))
            if _label_columns(opts):
                inputs["labels"] = fp.describe_labels(src, _label_columns(opts))
            if a["kind"] == "spatial":
                pairs = _spatial_pairs(cfg, opts)
                if pairs:
                    inputs["pairs"] = fp.describe_file(pairs)
            if opts.get("control"):
                inputs["control"] = fp.describe_store(stores[opts["control"]])
                upstream.append(f"extract/{opts['control']}")
            if opts.get("against"):
                inputs["against"] = fp.describe_store(stores[opts["against"]])
                upstream.append(f"extract/{opts['against']}")
            runner = _runner(cfg, a, opts, stores[mname], progress, stores)
            steps.append(Step(f"{a['name']}/{mname}", a["kind"], out / a["name"] / mname,
                              dict(opts, **({"data": a["data"]} if "data" in a else {})),
                              inputs, runner, upstream))
    return steps


def _zoo_step(cfg: Config, a: dict, opts: dict, progress: bool) -> Step:
    """One step comparing every model's results of the zoo's source analyses."""
    from alignjax.app import fingerprint as fp

    sources, inputs, upstream = [], {}, []
    for b in zoo_sources(cfg.analyses, a):
        for mname in b.get("models") or [m["name"] for m in cfg.models]:
            folder = cfg.out / b["name"] / mname
            sources.append((mname, b["name"], folder))
            inputs[f"{b['name']}/{mname}"] = fp.describe_folder(folder)
            upstream.append(f"{b['name']}/{mname}")
    for k, path in enumerate(opts["scores"]):
        inputs[f"scores{k}"] = fp.describe_file(cfg.resolve(str(path).split(":")[0]))
    if opts["steps"]:
        inputs["steps"] = fp.describe_file(cfg.resolve(opts["steps"]))

    def run(out):
        from alignjax.app.studies.zoo import run_zoo

        scores = [str(cfg.resolve(s)) for s in opts["scores"]]
        return run_zoo(sources, out, scores=scores,
                       steps=str(cfg.resolve(opts["steps"])) if opts["steps"] else None,
                       n_boot=opts["n_boot"], n_perm=opts["n_perm"], seed=opts["seed"],
                       progress=progress)

    return Step(f"{a['name']}/all-models", "zoo", cfg.out / a["name"] / "all-models", opts,
                inputs, run, upstream)


def _spatial_pairs(cfg: Config, opts: dict):
    """The perturbation pairs of a spatial analysis: given, or pairs.csv beside the labels."""
    if opts.get("pairs"):
        return cfg.resolve(opts["pairs"])
    beside = cfg.resolve(cfg.stimuli["path"]).parent / "pairs.csv"
    return beside if beside.is_file() else None


def _labels_for(cfg: Config, column: str, ids: list[str]):
    from extractors.audio import list_stimuli

    stimuli = {s.id: s.labels for s in list_stimuli(cfg.resolve(cfg.stimuli["path"]))}
    return [stimuli[i].get(column, "") for i in ids]


def _runner(cfg: Config, a: dict, o: dict, store: Path, progress: bool,
            stores_all: dict[str, Path]) -> Callable[[Path], Any]:
    """``run(folder)`` for one analysis of one model, with the resolved options ``o``."""
    kind = a["kind"]
    data = cfg.resolve(cfg.data[a["data"]]["path"]) if "data" in a else None
    brain_opts = _brain_options(cfg, cfg.data[a["data"]]) if "data" in a else {}

    def rsa(out):
        from alignjax.app.studies.rsa import run_rsa

        return run_rsa(store, data, out, method=o["method"], metric=o["metric"],
                       brain_metric=o["brain_metric"], n_perm=o["n_perm"], seed=o["seed"],
                       alternative=o["alternative"], layers=o["layers"], n_boot=o["n_boot"],
                       control=stores_all[o["control"]] if o["control"] else None,
                       control_layer=o["control_layer"], progress=progress,
                       brain_options=brain_opts)

    def behaviour(out):
        from alignjax.io import open_store
        from alignjax.app.studies.rsa import run_behaviour_rsa

        ids = open_store(store).valid_ids()
        judged, counts = _load_judgements(data, ids, a["data"])
        return run_behaviour_rsa(store, counts, out, stimulus_ids=judged, judgement_name=a["data"],
                                 metric=o["metric"], method=o["method"], n_perm=o["n_perm"],
                                 seed=o["seed"], layers=o["layers"], smoothing=o["smoothing"],
                                 progress=progress)

    def encode(out):
        from alignjax.io import open_store
        from alignjax.app.studies.encode import run_encode

        stratify = None
        if o["stratify"]:
            stratify = _labels_for(cfg, o["stratify"], open_store(store).valid_ids())
        return run_encode(store, data, out, alphas=o["alphas"], outer_folds=o["outer_folds"],
                          inner_folds=o["inner_folds"], stratify=stratify, score=o["score"],
                          extend_alphas=o["extend_alphas"], standardize=o["standardize"],
                          layers=o["layers"], seed=o["seed"], n_perm=o["n_perm"],
                          progress=progress, brain_options=brain_opts,
                          rois=cfg.resolve(o["rois"]) if o["rois"] else None,
                          roi_labels=cfg.resolve(o["roi_labels"]) if o["roi_labels"] else None)

    def probe(out):
        from alignjax.app.studies.probe import run_probe

        return run_probe(store, cfg.resolve(cfg.stimuli["path"]), out, target=o["target"],
                         log=lambda msg: None, where=o["where"], Cs=o["Cs"], folds=o["folds"],
                         inner_folds=o["inner_folds"], class_weight=o["class_weight"],
                         transfer_train=o["transfer_train"], transfer_test=o["transfer_test"],
                         n_perm=o["n_perm"], layers=o["layers"], seed=o["seed"],
                         standardize=o["standardize"], progress=progress)

    def temporal(out):
        from alignjax.app.studies.temporal import run_temporal_rsa

        return run_temporal_rsa(store, data, out, window=o["window"], step=o["step"],
                                n_perm=o["n_perm"], correction=o["correction"],
                                cluster_threshold=o["cluster_threshold"], method=o["method"],
                                metric=o["metric"], brain_metric=o["brain_metric"],
                                layers=o["layers"], searchlight=o["searchlight"],
                                cv_folds=o["cv_folds"], noise_norm=o["noise_norm"],
                                picks=o["picks"], seed=o["seed"], progress=progress)

    def similarity(out):
        from alignjax.app.studies.similarity import run_similarity

        return run_similarity(store, out, brain=data,
                              against=stores_all[o["against"]] if o["against"] else None,
                              metrics=o["metrics"], n_perm=o["n_perm"], n_boot=o["n_boot"],
                              seed=o["seed"], k=o["k"], rdm_metric=o["rdm_metric"],
                              layers=o["layers"], progress=progress,
                              brain_options=brain_opts if data is not None else None)

    def spatial(out):
        from alignjax.app.studies.spatial import run_spatial

        return run_spatial({Path(store).name: store}, cfg.resolve(cfg.stimuli["path"]), out,
                           pairs=_spatial_pairs(cfg, o), factors=o["factors"], folds=o["folds"],
                           inner_folds=o["inner_folds"], n_boot=o["n_boot"], n_perm=o["n_perm"],
                           layers=o["layers"], seed=o["seed"], progress=progress,
                           log=lambda msg: None)

    return {"rsa": rsa, "behaviour_rsa": behaviour, "encode": encode, "probe": probe,
            "similarity": similarity, "temporal_rsa": temporal, "spatial": spatial}[kind]


# --------------------------------------------------------------------------- running


def run_pipeline(path, *, dry_run: bool = False, force: bool = False, progress: bool = True,
                 log: Callable[[str], None] = print) -> list[dict]:
    """Validate, plan and run a pipeline; returns one record per step.

    Each record has ``step``, ``status`` (``"ran"``, ``"skipped"``, ``"would run"`` or
    ``"up to date"``; the last two with ``dry_run``), ``reason``, ``seconds`` and ``out``.
    A dry run writes nothing and lists exactly the steps a run would run, with the reason.
    ``force`` lets this config take over an output folder another config wrote (deleting
    that config's results).

    Raises
    ------
    PipelineError
        Invalid config or inputs (before any step runs), or the output folder belongs to
        another config.
    """
    from alignjax.app.steps import decide, execute
    from alignjax.io import hashing

    cfg = load_config(path)
    _validate_inputs(cfg)
    steps = plan(cfg, progress=progress)
    orphans = ownership.check(cfg, steps, force=force)
    if dry_run:
        for p in orphans:
            log(f"would remove {p} (written by the config being taken over)")
    else:
        ownership.claim(cfg, steps, orphans)
        hashing.load_cache(cfg.out / STATE_DIR / "hash-cache.json")
    state = ownership.RunState(cfg, steps, dry_run=dry_run)
    running: set[str] = set()
    for k, step in enumerate(steps, 1):
        tag = f"[{k}/{len(steps)}] {step.name}"
        d = decide(step, running)
        if d.run:
            running.add(step.name)
        if dry_run:
            log(f"{tag}: " + (f"would run ({d.reason})" if d.run else "up to date")
                + f" -> {step.out}")
            state.record(step, "would run" if d.run else "up to date", d.reason)
            continue
        if not d.run:
            log(f"{tag}: up to date, skipped")
            state.record(step, "skipped", d.reason)
            continue
        log(f"{tag} ({d.reason}) ...")
        try:
            rec = execute(d, root=cfg.out, config=ownership.config_id(cfg))
        except BaseException:
            state.record(step, "failed", d.reason)
            state.save(finished=False)
            hashing.save_cache(cfg.out / STATE_DIR / "hash-cache.json")
            raise
        log(f"{tag}: done in {rec['seconds']:.1f} s")
        state.record(step, "ran", d.reason, rec["seconds"])
        state.save(finished=False)
    if not dry_run:
        state.save(finished=True)
        hashing.save_cache(cfg.out / STATE_DIR / "hash-cache.json")
    return state.records


def pipeline_status(path) -> list[dict]:
    """Per step of a pipeline: whether its results are current, and if not, why.

    What a dry run would say, without logging: ``[{"step", "stale", "reason", "out"}]``.
    """
    from alignjax.app.steps import decide_all

    cfg = load_config(path)
    return [{"step": d.step.name, "stale": d.run, "reason": d.reason, "out": str(d.step.out)}
            for d in decide_all(plan(cfg, progress=False))]
