"""Self-contained HTML report of a pipeline run directory (``alignjax report DIR``).

The report is built from the ``step.json`` files (:mod:`.provenance`): it shows each
step's results (the ``*.json`` summaries and ``*.png`` figures its ``step.json`` lists,
embedded as base64 data URIs), marks results whose inputs or options changed since as
stale (with a banner at the top), and adds RDMs ordered by stimulus category, the planted
ground truth next to the findings when the run is the demo (recomputed from the current
results), and the provenance of every result (date, versions, commit, options, config
text). It is written atomically.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import platform
from pathlib import Path

import numpy as np

from alignjax.app import provenance

__all__ = ["build_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
     padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
h3{margin-bottom:.3em} .meta{color:#666;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
figure{display:inline-block;margin:.4em;vertical-align:top} figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.8em;color:#555;text-align:center} .ok{color:#1a7f37;font-weight:600} .bad{color:#b42318;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:.4em}
.stale{background:#fff4e5;border:1px solid #f0b429;padding:.5em 1em;margin:1em 0}
.stalemark{color:#b42318;font-size:.8em;font-weight:600} pre{font-size:.75em;overflow-x:auto}
"""


def _png(fig_or_path) -> str:
    if isinstance(fig_or_path, (str, Path)):
        data = Path(fig_or_path).read_bytes()
    else:
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig_or_path.savefig(buf, format="png")
        plt.close(fig_or_path)
        data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure(src: str, caption: str, width: int | None = None) -> str:
    w = f' style="width:{width}px"' if width else ""
    return (f'<figure><img src="{src}" alt="{html.escape(caption)}"{w}>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _table(rows: list[dict], cols: list[str], fmt: dict | None = None) -> str:
    fmt = fmt or {}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            if isinstance(v, float):
                v = fmt.get(c, "{:.3g}").format(v)
            cells.append(f"<td>{html.escape('' if v is None else str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _figures(pngs: list[Path]) -> str:
    return "".join(_figure(_png(p), p.stem) for p in pngs)


def _section_rsa(pngs: list[Path], summary: dict, title: str) -> str:
    layers = summary["layers"]
    r, p = summary.get("group_r", []), summary.get("group_p_fwe", [])
    mean_r = summary.get("mean_subject_r") or []
    rows = [{"layer": layer, "group-RDM r": r[i] if i < len(r) else None,
             "group-RDM p_FWE": p[i] if i < len(p) else None} for i, layer in enumerate(layers)]
    for i, row in enumerate(rows):
        if i < len(mean_r):
            row["mean of subjects' r"] = mean_r[i]
    if summary.get("rows") and any(x.get("ci_low") is not None for x in summary["rows"]):
        ci = {x["layer"]: (x["ci_low"], x["ci_high"]) for x in summary["rows"]
              if x.get("ci_low") is not None}
        for row in rows:
            lo, hi = ci.get(row["layer"], (None, None))
            row["95% CI"] = None if lo is None else f"[{lo:.3f}, {hi:.3f}]"
    if summary.get("control"):
        part = {x["layer"]: x["r_partial"] for x in summary["rows"] if x.get("r_partial") is not None}
        for row in rows:
            row["r after regress-out"] = part.get(row["layer"])
    cols = list(rows[0]) if rows else ["layer"]
    nc = summary.get("noise_ceiling")
    nc_txt = (f"; noise ceiling of the mean of subjects' r [{nc['lower']:.3f}, {nc['upper']:.3f}]"
              if nc else "")
    if summary.get("group_test"):
        nc_txt += "; group-RDM test: fixed effects over stimuli (not a test across subjects)"
    ctrl = f"; control regressed out: {html.escape(summary['control'])}" if summary.get("control") else ""
    figs = _figures(pngs)
    return (f"<h3>{title}</h3><p class=meta>{summary.get('n_perm')} permutations, "
            f"method {summary.get('method')}{nc_txt}{ctrl}; best layer "
            f"<b>{html.escape(str(summary.get('best_layer_group')))}</b></p>"
            f"<div class=grid>{figs}</div>{_table(rows, cols)}")


def _section_generic(pngs: list[Path], summary: dict | None, title: str) -> str:
    figs = _figures(pngs)
    text = ""
    if summary:
        keep = {k: v for k, v in summary.items()
                if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
        keep.update({k: v for k, v in summary.items() if isinstance(v, bool)})
        text = _table([{"key": k, "value": v} for k, v in list(keep.items())[:25]], ["key", "value"])
    return f"<h3>{title}</h3><div class=grid>{figs}</div>{text}"


def _category_of(labels_csv) -> dict | None:
    if not labels_csv or not Path(labels_csv).is_file() or Path(labels_csv).suffix != ".csv":
        return None
    import csv

    with open(labels_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "category" not in rows[0]:
        return None
    key = "id" if "id" in rows[0] else "stimulus_id"
    return {r[key]: r["category"] for r in rows}


def _rdm_section(steps: list[dict], labels_csv) -> str:
    """RDMs of each model's best RSA layer and of the brain, ordered by stimulus category."""
    from alignjax.rdm import rdm, squareform
    from alignjax.io import FeatureStore, load_responses
    from alignjax.app.report.rsa import plot_rdm

    cat_of = _category_of(labels_csv)
    figs, brain, brain_options = [], None, {}
    for st in steps:
        summary = _load_json(Path(st["out"]) / "rsa.json")
        if not summary:
            continue
        store_dir = Path(summary["features"])
        if not (store_dir / "manifest.json").is_file():
            continue
        if brain is None:
            brain, brain_options = summary.get("brain"), summary.get("brain_options") or {}
        store = FeatureStore(store_dir)
        layer = summary["best_layer_group"]
        X = np.asarray(store.load(layer, drop_skipped=True), np.float32)
        ids = store.valid_ids()
        cats = [cat_of.get(i, "") for i in ids] if cat_of else None
        sq = np.asarray(squareform(rdm(X.reshape(len(ids), -1))))
        figs.append(_figure(_png(plot_rdm(sq, categories=cats, title=f"{store_dir.name}: {layer}")),
                            f"{store_dir.name} {layer}", 330))
        if len(figs) >= 6:
            break
    if brain and Path(brain).exists() and figs:
        resp = load_responses(brain, **brain_options)
        cats = [cat_of.get(i, "") for i in resp.stimulus_ids] if cat_of else None
        mean = np.mean([np.asarray(rdm(y)) for y in resp.subjects.values()], axis=0)
        figs.append(_figure(_png(plot_rdm(np.asarray(squareform(mean)), categories=cats,
                                          title="brain (mean over subjects)")), "brain RDM", 330))
    if not figs:
        return ""
    return "<h2>RDMs by stimulus category</h2><div class=grid>" + "".join(figs) + "</div>"


def _ground_truth(run_dir: Path, pipeline: dict | None) -> str:
    """The demo's planted truth beside what the current results find (recomputed here)."""
    from alignjax.app.studies.demo import DEMO_NAME, ground_truth_checks

    if ((pipeline or {}).get("study") or {}).get("name") != DEMO_NAME:
        return ""
    gt = ground_truth_checks(run_dir)
    rows = []
    for check in gt.get("checks", []):
        ok = check.get("passed")
        rows.append({"what": check["what"], "planted / expected": check["expected"],
                     "found": check["found"],
                     "agrees": "yes" if ok else "no"})
    table = _table(rows, ["what", "planted / expected", "found", "agrees"])
    table = table.replace("<td>yes</td>", "<td class=ok>yes</td>").replace("<td>no</td>",
                                                                          "<td class=bad>no</td>")
    return (f"<h2>Planted ground truth vs findings</h2><p>{html.escape(gt.get('description', ''))}"
            f"</p>{table}")


def _metadata() -> str:
    """Where the report itself was written (the versions of each result are in its provenance)."""
    import jax

    vers = [{"package": k, "version": v} for k, v in provenance.versions().items()]
    devices = ", ".join(f"{d.platform}:{d.device_kind}" for d in jax.devices())
    info = [{"key": "python", "value": platform.python_version()},
            {"key": "machine", "value": f"{platform.machine()} {platform.system()}"},
            {"key": "JAX devices", "value": devices},
            {"key": "x64", "value": str(bool(jax.config.jax_enable_x64))},
            {"key": "alignjax commit",
             "value": provenance.alignjax_commit() or "not a git checkout (installed "
                      f"alignjax {provenance.alignjax_source()['version']})"},
            {"key": "written", "value": provenance.now()}]
    return ("<h2>This report was written with</h2>" + _table(info, ["key", "value"])
            + _table(vers, ["package", "version"]))


_SUMMARY_FILES = {"rsa": "rsa.json", "behaviour_rsa": "behaviour_rsa.json",
                  "similarity": "similarity.json", "encode": "summary.json",
                  "probe": "probe.json", "zoo": "zoo.json", "temporal_rsa": "temporal_rsa.json",
                  "spatial": "spatial.json"}


def _summary_of(st) -> dict | None:
    """The step's JSON summary, if its step.json lists it among the step's outputs."""
    name = _SUMMARY_FILES.get(st["kind"])
    if not name or Path(st["out"], name) not in st.files:
        return None
    return _load_json(Path(st["out"]) / name)


def _groups_of(steps, kind: str) -> list[tuple[str, dict[str, dict]]]:
    """Steps of one kind grouped by analysis name -> [(name, {model: summary})]."""
    groups: dict[str, dict[str, dict]] = {}
    for st in steps:
        summary = _summary_of(st) if st["kind"] == kind else None
        if summary:
            name, _, model = st["step"].partition("/")
            groups.setdefault(name, {})[model or name] = summary
    return list(groups.items())


def _spatial_overview(group: tuple[str, dict[str, dict]]) -> str:
    """Source-vs-room summary of a spatial analysis over all its models."""
    from alignjax.app.report.spatial import plot_source_room
    from alignjax.spatial import ROOM_FACTORS, SOURCE_FACTORS

    name, summaries = group
    skills = {m: v["best_skill"] for s in summaries.values() for m, v in s["models"].items()}
    fig = plot_source_room(skills, source=SOURCE_FACTORS, room=ROOM_FACTORS)
    rows = [{"model": m, **{f: round(v, 3) for f, v in sk.items()}} for m, sk in skills.items()]
    cols = ["model"] + list(dict.fromkeys(f for sk in skills.values() for f in sk))
    notes = {f: t for s in summaries.values() for v in s["models"].values()
             for f, t in (v.get("notes") or {}).items()}
    chance = ("<p class=meta>chance: what a probe without information scores under the same "
              "folds (each test fold predicted by its training set's mean or majority class; "
              "the permutation null's mean where a test ran), see the chance_kind column</p>")
    return (f"<h3>{html.escape(name)}: source vs room factors, all models</h3>"
            + _figure(_png(fig), "best-layer skill: 0 = chance, 1 = perfect")
            + _table(rows, cols) + chance
            + (_table([{"factor": f, "how it is tested": t} for f, t in notes.items()],
                      ["factor", "how it is tested"]) if notes else ""))


def _overview(kind: str, group: tuple[str, dict[str, dict]]) -> str:
    from alignjax.app.report.overview import plot_overview

    if kind == "spatial":
        return _spatial_overview(group)
    name, summaries = group
    try:
        fig = plot_overview(kind, summaries)
    except (KeyError, IndexError, ValueError, TypeError):
        return ""
    return f"<h3>{html.escape(name)}: all models</h3>" + _figure(_png(fig), f"{name}: all models")


def _training_steps(steps) -> dict[str, int]:
    """Model name -> training step, for the extraction steps whose store records one."""
    from alignjax.errors import StoreError
    from alignjax.io import FeatureStore

    out = {}
    for st in steps:
        if st["kind"] != "extract":
            continue
        try:
            step = FeatureStore(st["out"]).training_step
        except (StoreError, OSError):
            continue
        if step is not None:
            out[st["step"].partition("/")[2]] = step
    return out


def _training_section(kind: str, group: tuple[str, dict[str, dict]], steps: dict[str, int]) -> str:
    """Each checkpoint series of an analysis group: the scores against training step."""
    from alignjax.app.report.training import plot_score_vs_step

    name, summaries = group
    series: dict[str, dict[int, dict]] = {}
    for model, summary in summaries.items():
        if model in steps:
            series.setdefault(model.split("@")[0], {})[steps[model]] = summary
    figs = []
    for run, by_step in series.items():
        if len(by_step) < 2:
            continue
        try:
            fig = plot_score_vs_step(kind, by_step, title=f"{name}: {run} over training")
        except (KeyError, IndexError, ValueError, TypeError):
            continue
        figs.append(_figure(_png(fig), f"{name}: {run} against training step"))
    return (f"<h3>{html.escape(name)}: against training step</h3>" + "".join(figs)) if figs else ""


_TITLES = {"rsa": "RSA with brain data", "behaviour_rsa": "RSA with behaviour",
           "similarity": "Similarity metrics (CKA, dCor, shape, kNN, RSA)",
           "encode": "Voxel-wise encoding", "probe": "Linear probes", "extract": "Features",
           "zoo": "Model zoo: rankings, comparisons, alignment vs scores",
           "temporal_rsa": "Time-resolved RSA with EEG/MEG",
           "spatial": "Spatial probes and sensitivity"}


def build_report(run_dir, out=None, *, title: str | None = None) -> Path:
    """Write ``report.html`` for a pipeline or demo run directory (atomically); return its path."""
    from alignjax.app.report.provenance import banner, collect_steps, provenance_section

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        from alignjax.errors import AlignjaxInputError

        raise AlignjaxInputError(f"{run_dir} is not a directory of results")
    pipeline = _load_json(run_dir / "pipeline.json")
    steps, note = collect_steps(run_dir, pipeline)
    shown = [st for st in steps if st.get("record")]
    by_kind: dict[str, list[str]] = {}
    for st in shown:
        if st["kind"] == "extract":
            continue
        summary = _summary_of(st)
        pngs = [p for p in st.files if p.suffix == ".png"]
        label = html.escape(st["step"])
        if st["stale"]:
            label += f" <span class=stalemark>stale: {html.escape(st['reason'])}</span>"
        finished = (st["record"] or {}).get("finished")
        label += f" <span class=meta>({html.escape(str(finished))})</span>" if finished else ""
        if st["kind"] in ("rsa", "behaviour_rsa") and summary:
            sec = _section_rsa(pngs, summary, label)
        elif st["kind"] == "zoo" and summary:
            from alignjax.app.report.zoo import zoo_section

            sec = zoo_section(pngs, summary, label, _table)
        elif st["kind"] == "temporal_rsa" and summary:
            from alignjax.app.report.temporal import section_temporal

            sec = section_temporal(pngs, summary, label, _figure, _table)
        elif st["kind"] == "similarity" and summary:
            from alignjax.app.report.similarity import section_similarity

            sec = section_similarity(_figures(pngs), summary, label, _table)
        else:
            sec = _section_generic(pngs, summary, label)
        by_kind.setdefault(st["kind"], []).append(sec)
    parts = [f"<h1>{html.escape(title or 'alignjax report')}</h1>",
             f"<p class=meta>{html.escape(str(run_dir.resolve()))}</p>", banner(steps, note),
             _ground_truth(run_dir, pipeline)]
    parts.append(_rdm_section([s for s in shown if _summary_of(s) and s["kind"] == "rsa"],
                              (pipeline or {}).get("stimuli")))
    from alignjax.app.report.brain import brain_section

    parts.append(brain_section([s for s in shown if s["kind"] == "encode"], _table, _figure, _png))
    train_steps = _training_steps(shown)
    for kind in ("rsa", "behaviour_rsa", "encode", "probe", "spatial"):
        if kind in by_kind:
            over = "".join(_overview(kind, group) + _training_section(kind, group, train_steps)
                           for group in _groups_of(shown, kind))
            details = ("<details><summary>per model: figures and tables</summary>"
                       + "".join(by_kind.pop(kind)) + "</details>")
            parts.append(f"<h2>{_TITLES[kind]}</h2>{over}{details}")
    for kind, secs in by_kind.items():
        parts.append(f"<h2>{html.escape(_TITLES.get(kind, kind))}</h2>" + "".join(secs))
    parts.append(provenance_section(steps, pipeline, _table))
    parts.append(_metadata())
    doc = ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
           f"<title>{html.escape(title or 'alignjax report')}</title><style>{_CSS}</style></head>"
           f"<body>{''.join(parts)}</body></html>")
    out = Path(out) if out else run_dir / "report.html"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(doc, encoding="utf-8")
    os.replace(tmp, out)
    return out
