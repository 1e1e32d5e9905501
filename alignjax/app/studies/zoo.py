"""Model-zoo study: many models' alignment results compared, and set against external scores.

Input: the result folders of several models' ``rsa`` / ``encode`` / ``probe`` runs (each a
folder, named by its model, or ``NAME=FOLDER``), or one pipeline output folder (every
``<analysis>/<model>`` step in it). Each analysis is a *measure*:

- ``rsa``: per subject, the RSA r of the model's best layer (by the group RDM); the group
  RDM's r; and, from the ``rdms/`` a run writes, bootstrap samples over stimuli;
- ``encode``: per subject, the median cross-validated R² over voxels (or components);
- ``probe`` results are *scores* (best layer's accuracy), like the columns of a score CSV
  (``model`` column plus one numeric column per score, e.g. HEAR task performance).

Outputs (``zoo.json`` holds everything):

- ``zoo_ranking.csv`` / ``zoo_ranking.png``: models ranked by each measure, with the CI of
  the score (a t-interval over subjects; for RSA also a bootstrap over stimuli), bootstrap
  percentiles of the rank and ``frac_boot_best``, the fraction of bootstrap samples in
  which the model ranks first (not the probability that it is best; the column
  ``p_best`` repeats it under its old name and will be removed). With fewer than
  :data:`alignjax.zoo.MIN_BOOT_UNITS` subjects the bootstrap columns over subjects are
  left empty (NaN) and ``notes`` says why;
- ``zoo_pairwise.csv``: every pair of models per measure, paired sign-flip permutation
  test over subjects, p FWE-corrected by max-|t| over the pairs, BH q; for RSA also the
  stimulus-bootstrap CI and p of each difference of group-RDM RSA, Holm-corrected;
- ``zoo_correlation.csv`` / ``zoo_scatter.png``: Pearson and Spearman correlation of each
  measure with each score across models, Fisher-z CI, permutation p over models (at least
  3 models; the CI needs 4);
- ``zoo_checkpoints.csv`` / ``zoo_checkpoint_trend.csv`` / ``zoo_checkpoints.png``: each
  measure against training step per model family, with the Spearman trend over steps.
  The step of a model comes from a ``--steps`` table (``model, step[, family]``) or from its
  feature store's manifest (``checkpoint_step``, top level or under ``settings``; family:
  ``checkpoint_family`` or the model spec).
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from alignjax.errors import InvalidOptionError, StoreError
from alignjax.stats import fdr_bh
from alignjax.zoo import (MIN_BOOT_UNITS, SmallSampleWarning, TooFewModelsError,
                          alignment_score_correlation, bootstrap_ranking, pairwise_comparisons,
                          ranking_from_samples)

__all__ = ["run_zoo", "collect_results", "ZooEntry"]


@dataclass
class ZooEntry:
    """One model's result for one measure."""

    model: str
    measure: str
    kind: str
    folder: Path
    subjects: dict = field(default_factory=dict)   # subject -> value
    group: float | None = None                     # group-RDM r (rsa) / mean over subjects
    features: str | None = None
    method: str = "spearman"

    @property
    def value(self) -> float:
        """The model's score for rankings and correlations: the mean over subjects."""
        if self.subjects:
            return float(np.nanmean(list(self.subjects.values())))
        return float("nan") if self.group is None else float(self.group)


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _entry(model: str, measure: str, folder: Path) -> ZooEntry | None:
    """The zoo entry of one result folder, or None if it holds no rsa/encode result."""
    rsa = _load(folder / "rsa.json")
    if rsa:
        best = rsa["best_layer_group"]
        subjects = {r["subject"]: float(r["r"]) for r in rsa.get("rows", [])
                    if r["layer"] == best and r["subject"] not in ("group", "mean_of_subjects")}
        group = next((float(r["r"]) for r in rsa.get("rows", [])
                      if r["layer"] == best and r["subject"] == "group"), None)
        if group is None and len(subjects) == 1:
            group = next(iter(subjects.values()))
        return ZooEntry(model, measure, "rsa", folder, subjects, group, rsa.get("features"),
                        rsa.get("method", "spearman"))
    enc = _load(folder / "summary.json")
    if enc and enc.get("analysis") == "encode":
        subjects = {s: float(v["median_r2"]) for s, v in enc["subjects"].items()
                    if v.get("median_r2") is not None}
        return ZooEntry(model, measure, "encode", folder, subjects, None, enc.get("features"))
    return None


def _probe_score(folder: Path) -> float | None:
    probe = _load(folder / "probe.json")
    if not probe:
        return None
    key = "accuracy" if probe.get("mode", "cv") == "cv" else "transfer_accuracy"
    vals = [r.get(key) for r in probe.get("layers", []) if r.get(key) is not None]
    return float(max(vals)) if vals else None


def collect_results(results: Sequence[str | os.PathLike]) -> tuple[list[ZooEntry], dict]:
    """Zoo entries and probe scores from result folders or one pipeline output folder.

    ``results`` items are folders, ``NAME=FOLDER`` strings or ``(model, measure, folder)``
    tuples. Returns ``(entries, scores)`` with ``scores[score_name][model]`` from probe
    results.
    """
    entries, scores = [], {}
    for spec in results:
        if isinstance(spec, tuple):  # (model, measure, folder), as a pipeline names them
            model, measure, folder = spec
            e = _entry(model, measure, Path(folder))
            if e is not None:
                entries.append(e)
            elif (p := _probe_score(Path(folder))) is not None:
                scores.setdefault(f"probe:{measure}", {})[model] = p
            continue
        name, sep, path = str(spec).partition("=")
        folder = Path(path if sep else name)
        if not folder.is_dir():
            raise StoreError(f"zoo: result folder {folder} does not exist")
        if (folder / "pipeline.json").is_file():
            for step in sorted(folder.glob("*/*/step.json")):
                analysis, model = step.parent.parent.name, step.parent.name
                if analysis == "features":
                    continue
                e = _entry(model, analysis, step.parent)
                if e is not None:
                    entries.append(e)
                elif (p := _probe_score(step.parent)) is not None:
                    scores.setdefault(f"probe:{analysis}", {})[model] = p
            continue
        model = name if sep else folder.name
        e = _entry(model, "rsa" if (folder / "rsa.json").is_file() else "encode", folder)
        if e is not None:
            entries.append(e)
        elif (p := _probe_score(folder)) is not None:
            scores.setdefault("probe", {})[model] = p
        else:
            raise StoreError(f"zoo: {folder} holds no rsa.json, encode summary.json or probe.json")
    dup = {(e.model, e.measure) for e in entries if
           sum((f.model, f.measure) == (e.model, e.measure) for f in entries) > 1}
    if dup:
        raise InvalidOptionError(f"zoo: several results for the same model and measure {sorted(dup)}; "
                                 "name them NAME=FOLDER")
    return entries, scores


def read_scores(spec: str, models: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per-model scores from ``scores.csv`` (every numeric column) or ``scores.csv:COLUMN``."""
    path, sep, column = spec.rpartition(":") if ":" in spec and not Path(spec).is_file() \
        else (spec, "", "")
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"zoo: score table {path} does not exist")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t" if path.suffix == ".tsv" else ","))
    if not rows or "model" not in rows[0]:
        raise StoreError(f"zoo: {path} needs a 'model' column and one column per score")
    cols = [column] if column else [c for c in rows[0] if c != "model"]
    out = {}
    for c in cols:
        if c not in rows[0]:
            raise InvalidOptionError(f"zoo: {path} has no column {c!r} (columns: {list(rows[0])})")
        vals = {}
        for r in rows:
            try:
                vals[r["model"]] = float(r[c])
            except (TypeError, ValueError):
                if column:
                    raise StoreError(f"zoo: {path} column {c!r}: {r[c]!r} (model {r['model']!r}) "
                                     "is not a number") from None
                break
        else:
            out[c] = vals
    missing = sorted(set(models) - set().union(*[set(v) for v in out.values()] or [set()]))
    if missing:
        raise StoreError(f"zoo: {path} has no score for the models {missing[:10]}; give every "
                         "model a row (model names are the result folders' names)")
    return out


def _manifest_step(features: str | None) -> tuple[float | None, str | None]:
    if not features:
        return None, None
    m = _load(Path(features) / "manifest.json") or {}
    settings = m.get("settings") or {}
    step = m.get("checkpoint_step", settings.get("checkpoint_step"))
    family = m.get("checkpoint_family", settings.get("checkpoint_family")) or m.get("spec")
    return (None if step is None else float(step)), family


def read_steps(entries: list[ZooEntry], steps_table: str | None) -> dict[str, tuple[float, str]]:
    """``{model: (step, family)}`` from a table or the stores' manifests."""
    out = {}
    if steps_table:
        with open(steps_table, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t" if steps_table.endswith(".tsv") else ","))
        if not rows or not {"model", "step"} <= set(rows[0]):
            raise StoreError(f"zoo: {steps_table} needs columns 'model' and 'step' (and "
                             "optionally 'family')")
        for r in rows:
            out[r["model"]] = (float(r["step"]), r.get("family") or "models")
        return out
    for e in entries:
        step, family = _manifest_step(e.features)
        if step is not None:
            out[e.model] = (step, family or "models")
    return out


# --------------------------------------------------------------------------- analyses


def _table(entries: list[ZooEntry], models: list[str]) -> tuple[np.ndarray, list[str]]:
    """(n_models, n_subjects) of one measure, subjects common to every model."""
    subs = [s for s in entries[0].subjects if all(s in e.subjects for e in entries)]
    by = {e.model: e for e in entries}
    return np.array([[by[m].subjects[s] for s in subs] for m in models]), subs


def _stimulus_bootstrap(entries: list[ZooEntry], models: list[str], n_boot: int, seed: int):
    """Ranking over stimuli from the RSA runs' RDMs (same stimuli and brain data), or None."""
    from alignjax.rsa import rsa_bootstrap

    by = {e.model: e for e in entries}
    folders = [by[m].folder / "rdms" for m in models]
    if not all((f / "model.npy").is_file() for f in folders):
        return None
    ids = [(f / "stimulus_ids.txt").read_text().split() for f in folders]
    if any(i != ids[0] for i in ids):
        return None
    A = np.stack([np.load(f / "model.npy") for f in folders])
    brain = np.load(folders[0] / "subjects.npy").mean(0, keepdims=True)
    res = rsa_bootstrap(A, brain, method=by[models[0]].method, n_boot=n_boot, seed=seed)
    return (ranking_from_samples(np.asarray(res.r)[:, 0], np.asarray(res.boot)[:, :, 0]),
            res, len(ids[0]))


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    p = np.asarray(p, float)
    order = np.argsort(p)
    adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    out = np.empty_like(adj)
    out[order] = adj
    return out


def _stimulus_pairs(measure, models, res, n_stimuli, n_boot) -> list[dict]:
    """Pairwise differences of the group-RDM RSA, bootstrap over stimuli, Holm-corrected."""
    a, b = np.triu_indices(len(models), k=1)
    r = np.asarray(res.r)[:, 0]
    p = np.asarray(res.diff_p)[a, b, 0]
    ci = np.asarray(res.diff_ci)[:, a, b, 0]
    holm = _holm(p)
    return [{"measure": measure, "over": "stimuli", "model_a": models[i], "model_b": models[j],
             "diff": float(r[i] - r[j]), "t": None, "ci_low": float(ci[0, k]),
             "ci_high": float(ci[1, k]), "p": float(p[k]), "p_fwe": float(holm[k]),
             "q": float(fdr_bh(p)[k]), "n_units": n_stimuli, "n_perm": n_boot, "exact": False,
             "test": "stimulus bootstrap of the group-RDM RSA difference, Holm over pairs"}
            for k, (i, j) in enumerate(zip(a, b))]


def _rank_rows(measure, over, models, rk, *, boot_valid: bool = True) -> list[dict]:
    """Rows of zoo_ranking.csv; the bootstrap columns are NaN when ``boot_valid`` is False
    (too few units). ``p_best`` is the deprecated name of ``frac_boot_best``."""
    nan = float("nan")
    rows = []
    for i, m in enumerate(models):
        frac = float(rk.frac_boot_best[i]) if boot_valid else nan
        rows.append({"measure": measure, "over": over, "model": m, "score": float(rk.score[i]),
                     "ci_low": float(rk.ci[0, i]), "ci_high": float(rk.ci[1, i]),
                     "ci_method": rk.ci_method, "rank": int(rk.rank[i]),
                     "rank_ci_low": float(rk.rank_ci[0, i]) if boot_valid else nan,
                     "rank_ci_high": float(rk.rank_ci[1, i]) if boot_valid else nan,
                     "frac_boot_best": frac, "p_best": frac})
    return rows


def _measure(measure: str, entries: list[ZooEntry], *, n_boot: int, n_perm: int, seed: int,
             notes: list[str]) -> tuple[list[dict], list[dict]]:
    models = [e.model for e in entries]
    ranks, pairs = [], []
    S, subs = _table(entries, models)
    if S.shape[1] >= 2:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SmallSampleWarning)
            rk = bootstrap_ranking(S, n_boot=n_boot, seed=seed)
        valid = S.shape[1] >= MIN_BOOT_UNITS
        if not valid:
            notes.append(f"{measure}: {S.shape[1]} subjects are too few for bootstrap ranks "
                         f"over subjects (at least {MIN_BOOT_UNITS}); rank CIs and "
                         "frac_boot_best over subjects are left empty, the score CI is a "
                         "t-interval")
        ranks += _rank_rows(measure, "subjects", models, rk, boot_valid=valid)
    else:
        notes.append(f"{measure}: fewer than 2 subjects common to all models, no bootstrap "
                     "over subjects")
    boot = _stimulus_bootstrap(entries, models, n_boot, seed) if entries[0].kind == "rsa" \
        else None
    if boot is not None:
        ranks += _rank_rows(measure, "stimuli", models, boot[0])
    if len(models) >= 2 and S.shape[1] >= 3:
        pw = pairwise_comparisons(S, n_perm=n_perm, seed=seed)
        for k, (a, b) in enumerate(pw.pairs):
            pairs.append({"measure": measure, "over": "subjects", "model_a": models[a],
                          "model_b": models[b], "diff": float(pw.diff[k]), "t": float(pw.t[k]),
                          "ci_low": None, "ci_high": None, "p": float(pw.p[k]),
                          "p_fwe": float(pw.p_fwe[k]), "q": float(pw.q[k]),
                          "n_units": S.shape[1], "n_perm": pw.n_perm, "exact": pw.exact,
                          "test": "paired sign-flip permutation over subjects, max-|t| FWE"})
    if boot is not None and len(models) >= 2:
        pairs += _stimulus_pairs(measure, models, boot[1], boot[2], n_boot)
    elif len(models) >= 2:
        notes.append(f"{measure}: pairwise comparisons need at least 3 subjects scored by "
                     f"every model ({S.shape[1]})")
    return ranks, pairs


def _correlations(measure, entries, scores, *, n_boot, n_perm, seed) -> list[dict]:
    rows = []
    value = {e.model: e.value for e in entries}
    for sname, svals in scores.items():
        models = [m for m in value if m in svals and np.isfinite(value[m])]
        if len(models) < 3:
            raise TooFewModelsError(
                f"zoo: the correlation of {measure!r} with {sname!r} needs at least 3 models "
                f"with both; got {len(models)} ({models})")
        x, y = [value[m] for m in models], [svals[m] for m in models]
        for method in ("pearson", "spearman"):
            c = alignment_score_correlation(x, y, method=method, n_boot=n_boot, n_perm=n_perm,
                                            seed=seed)
            rows.append({"measure": measure, "score": sname, "method": method, "r": c.r,
                         "ci_low": float(c.ci[0]), "ci_high": float(c.ci[1]), "p": c.p,
                         "n_models": c.n_models, "exact": c.exact})
    return rows


def _checkpoints(measure, entries, steps, *, n_boot, n_perm, seed) -> tuple[list, list]:
    rows, trend = [], []
    for e in entries:
        if e.model in steps:
            step, family = steps[e.model]
            rows.append({"family": family, "model": e.model, "step": step, "measure": measure,
                         "value": e.value})
    for family in sorted({r["family"] for r in rows}):
        fam = sorted((r for r in rows if r["family"] == family), key=lambda r: r["step"])
        if len(fam) >= 3 and len({r["step"] for r in fam}) > 1:
            c = alignment_score_correlation([r["value"] for r in fam], [r["step"] for r in fam],
                                            method="spearman", n_boot=n_boot, n_perm=n_perm,
                                            seed=seed)
            trend.append({"family": family, "measure": measure, "n_checkpoints": len(fam),
                          "spearman_r": c.r, "ci_low": float(c.ci[0]), "ci_high": float(c.ci[1]),
                          "p": c.p})
    return rows, trend


def _write_csv(path: Path, rows: list[dict]) -> None:
    if rows:
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


def run_zoo(results: Sequence, out, *, scores: Sequence[str] = (), steps: str | None = None,
            measures: Sequence[str] | None = None, n_boot: int = 2000, n_perm: int = 10_000,
            seed: int = 0, progress: bool = True) -> dict:
    """Compare many models' alignment results; see the module docstring for what is written.

    Parameters
    ----------
    results : sequence of path
        Result folders (``NAME=FOLDER`` to name the model) or one pipeline output folder.
    out : path
    scores : sequence of str
        Score tables ``scores.csv`` (every numeric column) or ``scores.csv:COLUMN``.
    steps : path, optional
        Table ``model, step[, family]`` (default: ``checkpoint_step`` in the manifests).
    measures : sequence of str, optional
        Measures (analysis names) to use (default: all found).
    n_boot, n_perm, seed
        Bootstrap samples, permutations (sign flips / permutations of models), seed.

    Returns
    -------
    dict
        The content of ``zoo.json``.

    Raises
    ------
    TooFewModelsError
        A correlation asked for (a score given) with fewer than 3 models.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    entries, probe_scores = collect_results(results)
    if measures:
        unknown = sorted(set(measures) - {e.measure for e in entries})
        if unknown:
            raise InvalidOptionError(f"zoo: no results for measure(s) {unknown}; found "
                                     f"{sorted({e.measure for e in entries})}")
        entries = [e for e in entries if e.measure in measures]
    if not entries:
        raise StoreError("zoo: no rsa or encode results among the inputs")
    models = sorted({e.model for e in entries})
    all_scores = dict(probe_scores)
    for spec in scores:
        all_scores.update(read_scores(spec, models))
    step_of = read_steps(entries, steps)
    for measure in sorted({e.measure for e in entries}):  # before anything is computed
        n = len({e.model for e in entries if e.measure == measure})
        if all_scores and n < 3:
            raise TooFewModelsError(f"zoo: a correlation of {measure!r} with scores across "
                                    f"models needs at least 3 models; got {n}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    by_measure: dict[str, list[ZooEntry]] = {}
    for e in entries:
        by_measure.setdefault(e.measure, []).append(e)
    ranks, pairs, corrs, ckpts, trends, notes = [], [], [], [], [], []
    for measure, ents in tqdm(by_measure.items(), desc="zoo measures", disable=not progress):
        ents = sorted(ents, key=lambda e: e.model)
        r, p = _measure(measure, ents, n_boot=n_boot, n_perm=n_perm, seed=seed, notes=notes)
        ranks += r
        pairs += p
        corrs += _correlations(measure, ents, all_scores, n_boot=n_boot, n_perm=n_perm, seed=seed)
        c, t = _checkpoints(measure, ents, step_of, n_boot=n_boot, n_perm=n_perm, seed=seed)
        ckpts += c
        trends += t
    for name, rows in (("zoo_ranking", ranks), ("zoo_pairwise", pairs),
                       ("zoo_correlation", corrs), ("zoo_checkpoints", ckpts),
                       ("zoo_checkpoint_trend", trends)):
        _write_csv(out / f"{name}.csv", rows)
    values = {f"{e.measure}|{e.model}": e.value for e in entries}
    summary = {"analysis": "zoo", "results": [str(r) for r in results], "models": models,
               "measures": sorted(by_measure), "scores": {k: v for k, v in all_scores.items()},
               "values": values, "ranking": ranks, "pairwise": pairs, "correlation": corrs,
               "checkpoints": ckpts, "checkpoint_trend": trends, "notes": notes,
               "n_boot": n_boot, "n_perm": n_perm, "seed": seed,
               "steps_from": steps or "checkpoint_step in the feature stores' manifests",
               "pairwise_test": "paired sign-flip permutation over subjects, max-|t| FWE over "
                                "the pairs of a measure, BH q",
               "ranking_ci": "t-interval of the mean over subjects; percentile of the "
                             "stimulus bootstrap for RSA over stimuli",
               "correlation_ci": "Fisher z (Bonett-Wright variance for Spearman)",
               "deprecated": {"p_best": "same as frac_boot_best, the fraction of bootstrap "
                                        "samples in which a model ranks first; it is not the "
                                        "probability that the model is best"},
               "seconds": time.perf_counter() - t0}
    with open(out / "zoo.json", "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1)
    from alignjax.app.report.zoo import write_zoo_figures

    write_zoo_figures(summary, out)
    return summary
