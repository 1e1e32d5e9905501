"""Cross-validated logistic probing: the splits of a labelling, their scores, and
:func:`logistic_probe`, every (layer, C, fold) problem of a study in one compiled program.

Package-internal interface (used by transfer, permutation and layer-weighted probes):
:func:`check_score`, :func:`resolve_probe_folds`, :class:`Design`, :func:`cv_design`,
:func:`cv_scores`, :func:`at_choice`, :func:`accuracy`, :func:`warn_convergence`.
"""

from __future__ import annotations

import warnings
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from .._runtime import float32_matmuls
from .._validation import (
    InvalidFoldsError,
    InvalidOptionError,
    ShapeMismatchError,
    check_positive_int,
)
from ..folds import inner_test_masks, resolve_folds
from ..options import renamed
from .labels import check_Cs, class_weights, encode_labels, load_labelled
from .solve import solve_splits

__all__ = ["ProbeResult", "logistic_probe"]

SCORES = ("accuracy", "balanced_accuracy")


def check_score(score: str) -> int:
    """Index of ``score`` in :data:`SCORES` (0 accuracy, 1 balanced); package-internal."""
    if score not in SCORES:
        raise InvalidOptionError(f"score must be 'accuracy' or 'balanced_accuracy', got {score!r}")
    return SCORES.index(score)


def accuracy(pred, codes, mask):
    """Accuracy and balanced accuracy of ``pred`` (..., n) on the rows in ``mask`` (n,).

    Package-internal.
    """
    hit = (pred[..., mask] == codes[mask])
    acc = hit.mean(axis=-1)
    recalls = []
    for c in np.unique(codes[mask]):
        sel = codes[mask] == c
        recalls.append(hit[..., sel].mean(axis=-1))
    return acc, np.mean(recalls, axis=0)


def _confusion(pred, codes, mask, n_classes):
    """Confusion counts (..., true, predicted) on the rows in ``mask``."""
    flat = pred[..., mask].reshape(-1, int(mask.sum()))
    idx = codes[mask][None, :] * n_classes + flat
    out = np.zeros((flat.shape[0], n_classes * n_classes), dtype=np.int64)
    for r in range(flat.shape[0]):
        out[r] = np.bincount(idx[r], minlength=n_classes * n_classes)
    return out.reshape(pred.shape[:-1] + (n_classes, n_classes))


def warn_convergence(conv, what):
    """RuntimeWarning when some problems did not converge; package-internal."""
    if not conv.all():
        warnings.warn(
            f"{int((~conv).sum())} of {conv.size} {what} did not reach tol within max_iter; "
            "they are flagged in the result's convergence arrays (raise max_iter or check the "
            "largest C)", RuntimeWarning, stacklevel=3)


class ProbeResult(NamedTuple):
    """Result of :func:`logistic_probe`.

    Attributes
    ----------
    layers : list of str, (n_layers,)
    Cs : array (n_Cs,)
        The C values, ascending (the order of every C axis below).
    classes : array (n_classes,)
        Class labels; confusion matrices and codes index them.
    accuracy, balanced_accuracy : arrays (n_layers, n_Cs, n_folds)
        Test-fold scores of the model trained on the other folds.
    confusion : int array (n_layers, n_Cs, n_folds, n_classes, n_classes)
        Counts of (true class, predicted class) on each test fold.
    predictions : int array (n_layers, n_Cs, n_stimuli)
        Cross-validated class codes (each stimulus predicted by the model of its test fold).
    converged, n_iter : arrays (n_layers, n_Cs, n_folds)
        Per outer problem: ``max|grad| <= tol`` reached, iterations used.
    inner_converged : bool array (n_layers, n_Cs, n_folds, n_inner)
        Convergence of the inner-CV problems.
    best_C : array (n_layers,)
        The C with the best mean test-fold score (selected on the test folds: optimistic).
    chosen_C : array (n_layers, n_folds)
        The C chosen by inner CV within each outer training set (nested CV).
    nested_accuracy, nested_balanced_accuracy : arrays (n_layers, n_folds)
        Outer test-fold scores at the inner-CV choice of C: unbiased estimates.
    nested_predictions : int array (n_layers, n_stimuli)
        Cross-validated class codes at the inner-CV choice of C.
    chance : float
        Accuracy of always predicting the majority class (Bost et al.).
    folds : bool array (n_folds, n_stimuli)
        Outer test masks.
    """

    layers: list
    Cs: np.ndarray
    classes: np.ndarray
    accuracy: np.ndarray
    balanced_accuracy: np.ndarray
    confusion: np.ndarray
    predictions: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    inner_converged: np.ndarray
    best_C: np.ndarray
    chosen_C: np.ndarray
    nested_accuracy: np.ndarray
    nested_balanced_accuracy: np.ndarray
    nested_predictions: np.ndarray
    chance: float
    folds: np.ndarray


def resolve_probe_folds(folds, codes, classes, seed, groups=None):
    """Outer test masks of a probe: an int gives stratified (or grouped) k-fold.

    Package-internal. Raises when a class has fewer members than the folds.
    """
    n = len(codes)
    if groups is not None and len(groups) != n:
        raise ShapeMismatchError(f"groups has {len(groups)} entries for {n} stimuli")
    if isinstance(folds, (int, np.integer)) and not isinstance(folds, bool):
        k = int(folds)
        if groups is not None:
            return resolve_folds(k, n, groups=groups)
        counts = np.bincount(codes, minlength=len(classes))
        if counts.min() < k:
            small = [str(classes[i]) for i in np.flatnonzero(counts < k)[:5]]
            raise InvalidFoldsError(
                f"classes {small} have fewer members ({int(counts.min())} at least) than the {k} "
                "folds, so some test folds would miss them; use fewer folds or merge small classes")
        return resolve_folds(k, n, seed=seed, stratify=codes)
    return resolve_folds(folds, n, seed=seed)


class Design(NamedTuple):
    """The splits of one labelling (package-internal): outer (F, n) and inner (F, G, n)
    test masks, and the training mask of every split, outer folds first: (F + F * G, n)."""

    outer: np.ndarray
    inner: np.ndarray
    train: np.ndarray


def cv_design(codes, classes, folds, inner_folds: int, seed: int, groups=None) -> Design:
    """Outer and inner folds of a (possibly permuted) labelling; package-internal.

    Folds given as an int are drawn from ``codes`` (stratified), so a permutation test that
    calls this for each permuted labelling redraws them as the procedure does.
    """
    outer = resolve_probe_folds(folds, codes, classes, seed, groups)
    F, n = outer.shape
    inner = (inner_test_masks(codes, outer, inner_folds, seed=seed + 1, groups=groups)
             if inner_folds else np.zeros((F, 0, n), bool))
    train = np.concatenate([~outer, ((~outer)[:, None] & ~inner).reshape(-1, n)])
    return Design(outer, inner, train)


def cv_scores(preds, codes, design: Design, score: str):
    """Scores of one labelling's predictions (n_layers, n_splits, n_Cs, n_stimuli).

    Package-internal. Returns outer accuracy and balanced accuracy (n_layers, n_Cs, F) and
    the inner-CV choice of C per layer and outer fold (n_layers, F; first max = smallest
    C), or None without inner folds.
    """
    F, G = design.inner.shape[:2]
    acc, bacc = zip(*[accuracy(preds[:, f], codes, design.outer[f]) for f in range(F)])
    acc, bacc = np.stack(acc, axis=-1), np.stack(bacc, axis=-1)
    if not G:
        return acc, bacc, None
    k = check_score(score)
    inner = np.stack([np.mean([accuracy(preds[:, F + f * G + g], codes, design.inner[f, g])[k]
                               for g in range(G)], axis=0) for f in range(F)], axis=-1)
    return acc, bacc, np.argmax(inner, axis=1)


def at_choice(score, choice):
    """``score`` (n_layers, n_Cs, F) at the C chosen per layer and fold (n_layers, F).

    Package-internal.
    """
    L, _, F = score.shape
    return score[np.arange(L)[:, None], choice, np.arange(F)[None, :]]


def _cv_predictions(preds, outer):
    """Each stimulus predicted by its test fold's model: (n_layers, n_Cs, n_stimuli)."""
    L, _, nC, n = preds.shape
    cv_pred = np.zeros((L, nC, n), dtype=np.int32)
    for f in range(outer.shape[0]):
        cv_pred[:, :, outer[f]] = preds[:, f][:, :, outer[f]]
    return cv_pred


def _nested(preds, acc, bacc, choice, outer, Cs):
    """Nested-CV outputs at the inner choice: chosen C, accuracies (n_layers, F) and
    predictions (n_layers, n_stimuli); NaN / -1 without inner folds."""
    L, F, n = preds.shape[0], outer.shape[0], outer.shape[1]
    if choice is None:
        return (np.full((L, F), np.nan), np.full((L, F), np.nan), np.full((L, F), np.nan),
                np.full((L, n), -1, dtype=np.int32))
    nested_pred = np.full((L, n), -1, dtype=np.int32)
    for f in range(F):
        nested_pred[:, outer[f]] = preds[np.arange(L), f, choice[:, f]][:, outer[f]]
    return Cs[choice], at_choice(acc, choice), at_choice(bacc, choice), nested_pred


@renamed(scoring="score", layer_batch="layer_chunk_size")
@float32_matmuls
def logistic_probe(X, y, *, Cs: Sequence[float] = tuple(np.logspace(-4, 4, 9)), folds=5,
                   inner_folds: int | None = 3, standardize: bool = True,
                   class_weight: str | Mapping | None = None, score: str = "accuracy",
                   fit_intercept: bool = True, max_iter: int = 1000, tol: float = 1e-4,
                   layers: Sequence[str] | None = None, layer_chunk_size: int | None = None,
                   groups=None, seed: int = 0) -> ProbeResult:
    """Cross-validated L2 logistic probes of every layer, all problems in one compiled program.

    Each (layer, C, fold) problem is :func:`fit_logistic` (sklearn's ``LogisticRegression``
    objective) on the training folds, standardised with training-fold statistics (as a
    ``StandardScaler`` + ``LogisticRegression`` pipeline). Problems are batched with ``vmap``
    over layers (layers of equal width together) and splits, with warm starts along C.

    Parameters
    ----------
    X : array (n_stimuli, n_features), sequence or mapping of such arrays, or a feature store
        One array per layer; widths may differ.
    y : array (n_stimuli,) or mapping stimulus id -> label
        Class labels of any type; a mapping is matched to the features' stimulus ids.
    Cs : sequence of float
        Inverse regularisation strengths.
    folds : int or fold specification
        Outer folds: an int gives shuffled stratified k-fold (every class needs >= k
        members), or grouped k-fold with ``groups``; or anything
        :func:`alignjax.resolve_folds` accepts. Shuffled folds assume exchangeable rows
        (condition-averaged stimuli), not time series.
    inner_folds : int or None
        Inner folds within each outer training set used to choose C (nested CV),
        stratified, or grouped with ``groups``; ``None`` skips nested CV (``chosen_C`` and
        nested scores are then NaN / -1).
    standardize : bool
        Z-score features with training-fold mean and standard deviation.
    class_weight : None, "balanced" or mapping class code -> weight
        As sklearn (balanced weights from each training set's class counts).
    score : {"accuracy", "balanced_accuracy"}
        Score used to choose C (formerly ``scoring``).
    fit_intercept, max_iter, tol
        As :func:`fit_logistic`.
    layers : sequence of str, optional
        Subset of layers of a store or mapping.
    layer_chunk_size : int, optional
        Layers solved together in one ``vmap`` (default: all of a width group); lowers
        memory, never changes results (formerly ``layer_batch``).
    groups : array (n_stimuli,), optional
        Group labels (e.g. recording, speaker, source sound): no group is split across
        outer or inner folds.
    seed : int
        Seed of the fold assignment.

    Returns
    -------
    ProbeResult
    """
    k = check_score(score)
    max_iter = check_positive_int(max_iter, "max_iter")
    Cs = check_Cs(Cs)
    names, arrays, _, y = load_labelled(X, y, layers=layers)
    classes, codes = encode_labels(y)
    K, n = len(classes), len(codes)
    G = 0 if inner_folds is None else check_positive_int(inner_folds, "inner_folds", minimum=2)
    design = cv_design(codes, classes, folds, G, seed, groups)
    outer, F = design.outer, design.outer.shape[0]
    SW = np.stack([class_weights(codes, m, K, class_weight) for m in design.train])
    preds, iters, conv = solve_splits(arrays, np.broadcast_to(codes, SW.shape), SW, Cs,
                                      n_classes=K, fit_intercept=fit_intercept,
                                      max_iter=max_iter, tol=tol, standardize=standardize,
                                      layer_chunk_size=layer_chunk_size)
    L, nC = len(arrays), len(Cs)
    acc, bacc, choice = cv_scores(preds, codes, design, score)
    confusion = np.stack([_confusion(preds[:, f], codes, outer[f], K) for f in range(F)], axis=2)
    best_C = Cs[np.argmax((acc, bacc)[k].mean(axis=2), axis=1)]
    chosen_C, nested_acc, nested_bacc, nested_pred = _nested(preds, acc, bacc, choice, outer, Cs)
    outer_conv = conv[:, :F].transpose(0, 2, 1)
    inner_conv = conv[:, F:].reshape(L, F, G, nC).transpose(0, 3, 1, 2)
    warn_convergence(conv, "probe problems")
    chance = float(np.bincount(codes).max() / n)
    return ProbeResult(names, Cs, classes, acc, bacc, confusion, _cv_predictions(preds, outer),
                       outer_conv, iters[:, :F].transpose(0, 2, 1), inner_conv, best_C,
                       chosen_C, nested_acc, nested_bacc, nested_pred, chance, outer)
