"""Probe study: cross-validated logistic probes of a labelled factor in every layer."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from alignjax.errors import InvalidOptionError, StimulusMismatchError, match_ids
from alignjax.probes import logistic_probe, probe_permutation_test, probe_transfer
from alignjax.app.report.probes import plot_probe_accuracy, wilson_interval
from alignjax.io import load_layers

__all__ = ["run_probe", "DEFAULT_CS"]

DEFAULT_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)


def parse_where(expr: str, columns) -> tuple[str, str]:
    """Split ``"COL=VALUE"``, checking that COL is a column of the labels."""
    if "=" not in expr:
        raise InvalidOptionError(f"expected COL=VALUE, got {expr!r}")
    col, val = expr.split("=", 1)
    col = col.strip()
    if col not in columns:
        raise InvalidOptionError(f"column {col!r} is not in the labels file; columns: {list(columns)}")
    return col, val.strip()


def run_probe(features, labels, out: str | os.PathLike, *, target: str,
              id_column: str | None = None, where: str | None = None,
              Cs: Sequence[float] | None = None, folds: int = 5, inner_folds: int = 3,
              class_weight: str | None = None, layers: Sequence[str] | None = None,
              n_perm: int = 0, transfer_train: str | None = None,
              transfer_test: str | None = None, standardize: bool = True, seed: int = 0,
              progress: bool = True, log=print) -> dict:
    """Probe ``target`` (a column of the ``labels`` CSV) in every layer of ``features``.

    Labels are matched to the features by stimulus id (``id_column``; default
    ``stimulus_id`` or ``id``), never by position. ``where="COL=VALUE"`` restricts the
    probe to matching stimuli (e.g. ``category=impact``); stimuli with an empty target are
    left out (and said so). With ``transfer_train``/``transfer_test`` (``COL=VALUE``) the
    probe trains on one subset and tests on the other, beside the within-test-subset
    baseline. ``n_perm > 0`` adds permutation p-values (max-T over layers) of the reported
    statistic: the nested-CV accuracy (C chosen again by inner CV for every permuted
    labelling, folds redrawn from it) or the transfer accuracy (labels permuted within each
    subset). Writes ``probe.csv``, ``probe.json`` and ``probe.png``; returns the summary.
    """
    t0 = time.perf_counter()
    if (transfer_train is None) != (transfer_test is None):
        raise InvalidOptionError("give both transfer_train and transfer_test (--train-where and "
                                 "--test-where) for a transfer probe")
    arrays, y, rows, columns = _labelled_layers(features, labels, target=target,
                                                id_column=id_column, where=where,
                                                layers=layers, progress=progress, log=log)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kw = dict(Cs=[float(c) for c in (Cs if Cs is not None else DEFAULT_CS)], folds=folds,
              inner_folds=inner_folds, class_weight=class_weight, standardize=standardize,
              n_perm=n_perm, seed=seed)
    if transfer_train is not None:
        table, detail = _transfer(arrays, y, rows, columns, transfer_train, transfer_test,
                                  out=out, target=target, log=log, **kw)
    else:
        table, detail = _cross_validated(arrays, y, out=out, target=target, log=log,
                                         progress=progress, **kw)
    summary = {"analysis": "probe", "features": str(features), "labels": str(labels),
               "target": target, "where": where, "n_stimuli": int(len(y)), "layers": table,
               "seed": seed, "folds": folds, "inner_folds": inner_folds, "n_perm": n_perm,
               "class_weight": class_weight, "standardize": standardize, **detail}
    _write_tables(out, table, summary)
    for r in table:
        if not r["converged"]:
            log(f"warning: some fits of layer {r['layer']} did not converge (see probe.json)")
    summary["seconds"] = time.perf_counter() - t0
    return summary


def _labelled_layers(features, labels, *, target, id_column, where, layers, progress, log):
    """Layers restricted to the labelled (and ``where``-selected) stimuli, matched by id.

    Returns ``(arrays name -> (n, n_features), labels (n,), label rows, label columns)``.
    """
    with open(labels, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    columns = list(rows[0].keys()) if rows else []
    for col in ([id_column] if id_column else []) + [target]:
        if col not in columns:
            raise InvalidOptionError(f"{labels} has no column {col!r}; columns: {columns}")
    if id_column is None:
        id_column = "stimulus_id" if "stimulus_id" in columns else "id"
    ls = load_layers(features, layers=layers)
    if ls.stimulus_ids is None:
        raise StimulusMismatchError(
            f"{features} carries no stimulus ids, so labels cannot be matched by id; use a "
            "feature store (or add stimulus_ids)")
    order = match_ids(ls.stimulus_ids, [r[id_column] for r in rows],
                      what=f"the features ({features})", other_what=f"{labels}")
    rows = [rows[i] for i in order]
    keep = np.array([r[target].strip() != "" for r in rows])
    if where is not None:
        wc, wv = parse_where(where, columns)
        keep &= np.array([r[wc].strip() == wv for r in rows])
    if not keep.any():
        raise InvalidOptionError(f"column {target!r} is empty for every stimulus")
    if not keep.all():
        log(f"note: {int((~keep).sum())} stimuli have no {target!r} label and are left out")
    rows = [r for r, k in zip(rows, keep) if k]
    arrays = {n: np.asarray(a)[keep] for n, a in
              tqdm(zip(ls.names, ls.arrays), total=len(ls.names), desc="loading layers",
                   disable=not progress, leave=False)}
    return arrays, np.array([r[target].strip() for r in rows]), rows, columns


def _none_if_nan(v):
    return None if np.isnan(v) else float(v)


def _transfer(arrays, y, rows, columns, transfer_train, transfer_test, *, out, target, log,
              Cs, folds, inner_folds, class_weight, standardize, n_perm, seed):
    """The transfer probe: its table rows, JSON details and figure."""
    names = list(arrays)
    tc, tv = parse_where(transfer_train, columns)
    ec, ev = parse_where(transfer_test, columns)
    train = np.array([r[tc].strip() == tv for r in rows])
    test = np.array([r[ec].strip() == ev for r in rows])
    log(f"transfer probe: training on {int(train.sum())} stimuli ({tc}={tv}), testing on "
        f"{int(test.sum())} ({ec}={ev}), {len(names)} layers")
    res = probe_transfer(arrays, y, train_mask=train, test_mask=test, Cs=Cs, folds=folds,
                         inner_folds=inner_folds, class_weight=class_weight,
                         standardize=standardize, n_perm=n_perm, seed=seed)
    if res.within_skipped:
        log(f"note: {res.within_skipped}")
    n_test = int(test.sum())
    lo, hi = wilson_interval(np.round(res.transfer_accuracy * n_test), n_test)
    table = [{"layer": n, "n_features": arrays[n].shape[1],
              "transfer_accuracy": float(res.transfer_accuracy[i]),
              "transfer_ci_low": float(lo[i]), "transfer_ci_high": float(hi[i]),
              "transfer_balanced_accuracy": float(res.transfer_balanced_accuracy[i]),
              "within_accuracy": float(res.within_accuracy[i]),
              "chosen_C": float(res.chosen_C[i]), "chance": res.chance,
              "chance_balanced": res.chance_balanced, "converged": bool(res.converged[i].all()),
              "p": _none_if_nan(res.p[i]), "p_fwe": _none_if_nan(res.p_fwe[i])}
             for i, n in enumerate(names)]
    detail = {"mode": "transfer", "train_where": transfer_train, "test_where": transfer_test,
              "Cs": res.Cs.tolist(), "classes": [str(c) for c in res.classes],
              "transfer_accuracy_per_C": res.transfer_accuracy_per_C.tolist(),
              "chance_rule": "test-subset share of the training subset's majority class",
              "within_skipped": res.within_skipped,
              "permutation": "labels permuted within each subset" if n_perm else None}
    plot_probe_accuracy(names, res.transfer_accuracy, ci_low=lo, ci_high=hi, chance=res.chance,
                        extra={"within test subset": res.within_accuracy},
                        title=f"{target}: transfer {transfer_train} -> {transfer_test}",
                        path=out / "probe.png")
    return table, detail


def _cross_validated(arrays, y, *, out, target, log, progress, Cs, folds, inner_folds,
                     class_weight, standardize, n_perm, seed):
    """The nested cross-validated probe (and its permutation test): table, details, figure."""
    names = list(arrays)
    log(f"probing {target!r} ({len(set(y))} classes, {len(y)} stimuli) in "
        f"{len(names)} layers x {len(Cs)} C x {folds} folds")
    res = logistic_probe(arrays, y, Cs=Cs, folds=folds, inner_folds=inner_folds,
                         class_weight=class_weight, standardize=standardize, seed=seed)
    codes = np.searchsorted(res.classes, y)
    lo, hi = wilson_interval((res.nested_predictions == codes[None]).sum(axis=1), len(y))
    acc = res.nested_accuracy.mean(axis=1)
    pvals = pfwe = [None] * len(names)
    if n_perm > 0:  # the same nested procedure for every permuted labelling
        perm = probe_permutation_test(arrays, y, Cs=Cs, inner_folds=inner_folds, folds=folds,
                                      n_perm=n_perm, seed=seed, class_weight=class_weight,
                                      standardize=standardize, progress=progress)
        pvals, pfwe = perm.p.tolist(), perm.p_fwe.tolist()
    table = []
    for i, name in enumerate(names):
        v, c = np.unique(res.chosen_C[i], return_counts=True)
        table.append({"layer": name, "n_features": arrays[name].shape[1],
                      "accuracy": float(acc[i]), "ci_low": float(lo[i]), "ci_high": float(hi[i]),
                      "accuracy_fold_sd": float(res.nested_accuracy[i].std(ddof=1)),
                      "balanced_accuracy": float(res.nested_balanced_accuracy[i].mean()),
                      "chosen_C": float(v[np.argmax(c)]), "best_C": float(res.best_C[i]),
                      "best_C_accuracy": float(res.accuracy[i].mean(axis=1).max()),
                      "chance": res.chance, "chance_balanced": 1.0 / len(res.classes),
                      "converged": bool(res.converged[i].all() and res.inner_converged[i].all()),
                      "p": pvals[i], "p_fwe": pfwe[i]})
    detail = {"mode": "cv", "Cs": res.Cs.tolist(), "classes": [str(c) for c in res.classes],
              "permutation": ("nested CV rerun for each permuted labelling (folds "
                              "redrawn, C chosen again)") if n_perm else None,
              "accuracy": res.accuracy.tolist(),
              "balanced_accuracy": res.balanced_accuracy.tolist(),
              "chosen_C": res.chosen_C.tolist(), "nested_accuracy": res.nested_accuracy.tolist(),
              "confusion": res.confusion.tolist(), "converged": res.converged.tolist()}
    plot_probe_accuracy(names, acc, ci_low=lo, ci_high=hi, chance=res.chance,
                        title=f"{target}: nested-CV accuracy per layer", path=out / "probe.png")
    return table, detail


def _write_tables(out: Path, table: list, summary: dict) -> None:
    with open(out / "probe.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(table[0]))
        w.writeheader()
        for r in table:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    with open(out / "probe.json", "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1)
