"""Transfer probes: train on one subset of stimuli, test on another, beside the
no-transfer baseline within the test subset, with a permutation test that keeps the
class shift between the subsets."""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np

from .._runtime import float32_matmuls
from .._validation import (
    InvalidFoldsError,
    InvalidOptionError,
    ShapeMismatchError,
    check_positive_int,
)
from ..folds import inner_test_masks
from ..options import renamed
from .cv import Design, at_choice, check_score, cv_scores, logistic_probe, warn_convergence
from .labels import check_Cs, class_weights, encode_labels, load_labelled
from .permutation import labelling_test
from .solve import solve_splits

__all__ = ["TransferResult", "probe_transfer"]


class TransferResult(NamedTuple):
    """Result of :func:`probe_transfer`.

    Attributes
    ----------
    layers : list of str (n_layers,)
    Cs : array (n_Cs,), ascending
    classes : array (n_classes,)
    chosen_C : array (n_layers,)
        C chosen by inner CV within the training subset.
    transfer_accuracy, transfer_balanced_accuracy : arrays (n_layers,)
        Scores on the test subset of the model trained on the whole training subset at
        ``chosen_C``.
    transfer_accuracy_per_C : array (n_layers, n_Cs)
    within_accuracy, within_balanced_accuracy : arrays (n_layers,)
        No-transfer baseline: nested-CV accuracy of probes trained and tested within the
        test subset (mean over its folds); NaN when it cannot run (see ``within_skipped``).
    chance : float
        Accuracy of a probe that ignores the features under the class shift: the share,
        in the test subset, of the training subset's majority class (averaged over tied
        majority classes). Not the test subset's own majority share: with an 80/20
        training subset and a 20/80 test subset a noise probe scores 0.2, not 0.8.
    chance_balanced : float
        Chance of the balanced accuracy: 1 / (number of classes in the test subset).
    p, p_fwe : arrays (n_layers,)
        Permutation p-values of the transfer score (``score``), uncorrected and max-T
        corrected over layers; NaN when ``n_perm=0``.
    converged : bool array (n_layers, n_Cs)
        Convergence of the transfer fits.
    within_skipped : str
        Why the within-subset baseline was not computed ("" when it was).
    """

    layers: list
    Cs: np.ndarray
    classes: np.ndarray
    chosen_C: np.ndarray
    transfer_accuracy: np.ndarray
    transfer_balanced_accuracy: np.ndarray
    transfer_accuracy_per_C: np.ndarray
    within_accuracy: np.ndarray
    within_balanced_accuracy: np.ndarray
    chance: float
    chance_balanced: float
    p: np.ndarray
    p_fwe: np.ndarray
    converged: np.ndarray
    within_skipped: str


def _subset_mask(mask, n, name) -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype != bool:
        if np.issubdtype(m.dtype, np.integer):
            out = np.zeros(n, bool)
            out[m] = True
            m = out
        else:
            raise InvalidOptionError(f"{name} must be a boolean mask or integer indices")
    if m.shape != (n,):
        raise ShapeMismatchError(f"{name} has shape {m.shape}; expected ({n},)")
    if not m.any():
        raise InvalidOptionError(f"{name} selects no stimuli")
    return m


def _shift_chance(codes, tr, te) -> float:
    """Test-subset share of the training subset's majority class(es)."""
    counts = np.bincount(codes[tr], minlength=codes.max() + 1)
    majority = np.flatnonzero(counts == counts.max())
    return float(np.mean([(codes[te] == c).mean() for c in majority]))


def _permuted_within(codes, subsets, n_perm, seed) -> np.ndarray:
    """``n_perm`` labellings, each ``codes`` permuted within each subset (class counts of
    each kept), from one generator seeded by ``seed``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_perm):
        perm = codes.copy()
        for m in subsets:
            idx = np.flatnonzero(m)
            perm[idx] = codes[rng.permutation(idx)]
        out.append(perm)
    return np.stack(out)


def _subsets(codes, classes, train_mask, test_mask, inner_folds, groups):
    """Validated training and test subsets (bool masks (n_stimuli,))."""
    n, K = len(codes), len(classes)
    tr = _subset_mask(train_mask, n, "train_mask")
    te = _subset_mask(test_mask, n, "test_mask")
    if (tr & te).any():
        raise InvalidOptionError(f"train_mask and test_mask overlap in {int((tr & te).sum())} "
                                 "stimuli; transfer needs disjoint subsets")
    if len(np.unique(codes[tr])) < 2:
        raise InvalidOptionError("the training subset holds a single class")
    counts = np.bincount(codes[tr], minlength=K)
    small = [str(classes[c]) for c in np.flatnonzero((counts > 0) & (counts < inner_folds))]
    if small and groups is None:
        raise InvalidFoldsError(f"classes {small[:5]} have fewer training-subset members than "
                                f"inner_folds={inner_folds}; use fewer inner folds")
    return tr, te


def _within_baseline(arrays, y, te, groups, **probe):
    """Nested-CV accuracy and balanced accuracy within the test subset (n_layers,), and why
    it was skipped ("" when it ran)."""
    L = len(arrays)
    try:
        within = logistic_probe([a[te] for a in arrays], np.asarray(y)[te],
                                groups=None if groups is None else np.asarray(groups)[te],
                                **probe)
    except (InvalidFoldsError, InvalidOptionError) as exc:
        why = f"within-test-subset baseline not computed: {exc}"
        return np.full(L, np.nan), np.full(L, np.nan), why
    return (within.nested_accuracy.mean(axis=1), within.nested_balanced_accuracy.mean(axis=1),
            "")


@renamed(scoring="score", perm_batch="chunk_size")
@float32_matmuls
def probe_transfer(X, y, *, train_mask, test_mask, Cs: Sequence[float] = tuple(np.logspace(-4, 4, 9)),
                   folds: int = 5, inner_folds: int = 3, standardize: bool = True,
                   class_weight: str | Mapping | None = None, score: str = "accuracy",
                   n_perm: int = 0, fit_intercept: bool = True, max_iter: int = 1000,
                   tol: float = 1e-4, layers: Sequence[str] | None = None, groups=None,
                   seed: int = 0, chunk_size: int = 16) -> TransferResult:
    """Transfer probes: train on one subset of stimuli, test on another.

    C is chosen by ``inner_folds``-fold CV within the training subset (stratified, or
    grouped by ``groups``), the probe is refitted on the whole training subset and scored
    on the test subset. Beside it, the no-transfer baseline: a nested-CV
    :func:`logistic_probe` (``folds`` outer, ``inner_folds`` inner) within the test subset,
    computed when the test subset allows it. Standardisation uses training-subset
    statistics. With ``n_perm``, labels are permuted within the training subset and
    within the test subset (each keeps its class counts, so the class shift is kept) and
    the whole procedure, C choice included, is rerun for each permutation.

    Parameters
    ----------
    X, y
        As :func:`logistic_probe`.
    train_mask, test_mask : bool arrays (n_stimuli,) or integer indices
        Disjoint subsets (e.g. sounds judged hollow vs. not; 1D+2D vs. 3D objects).
    score : {"accuracy", "balanced_accuracy"}
        Score that chooses C and that the permutation test uses (formerly ``scoring``).
    n_perm : int
        Permutations for the p-values (0: none).
    Cs, folds, inner_folds, standardize, class_weight, fit_intercept, max_iter, tol, layers, groups, seed
        As :func:`logistic_probe`.
    chunk_size : int
        Permutations solved together; never changes results (formerly ``perm_batch``).

    Returns
    -------
    TransferResult
    """
    k = check_score(score)
    max_iter = check_positive_int(max_iter, "max_iter")
    inner_folds = check_positive_int(inner_folds, "inner_folds", minimum=2)
    n_perm = check_positive_int(n_perm, "n_perm", minimum=0)
    Cs = check_Cs(Cs)
    names, arrays, _, y = load_labelled(X, y, layers=layers)
    classes, codes = encode_labels(y)
    K = len(classes)
    tr, te = _subsets(codes, classes, train_mask, test_mask, inner_folds, groups)

    def design_of(c):
        inner = inner_test_masks(c, (~tr)[None, :], inner_folds, seed=seed + 1, groups=groups)
        return Design(te[None, :], inner, np.concatenate([tr[None], tr & ~inner[0]]))

    def statistic(pr, c, d):
        sc = cv_scores(pr, c, d, score)
        return at_choice(sc[k], sc[2])[:, 0]

    solve = dict(fit_intercept=fit_intercept, max_iter=max_iter, tol=tol,
                 standardize=standardize)
    design = design_of(codes)
    SW = np.stack([class_weights(codes, m, K, class_weight) for m in design.train])
    preds, _, conv = solve_splits(arrays, np.broadcast_to(codes, SW.shape), SW, Cs, n_classes=K,
                                  layer_chunk_size=None, **solve)
    warn_convergence(conv, "transfer problems")
    acc, bacc, choice = cv_scores(preds, codes, design, score)  # (L, nC, 1), (L, 1)
    p = p_fwe = np.full(len(arrays), np.nan)
    if n_perm:
        labellings = _permuted_within(codes, (tr, te), n_perm, seed)
        res, _ = labelling_test(arrays, codes, labellings, design_of, statistic, Cs,
                                chunk_size=min(chunk_size, n_perm), K=K,
                                class_weight=class_weight, layer_chunk_size=None, **solve)
        p, p_fwe = np.asarray(res.p, float), np.asarray(res.p_fwe, float)
    within_acc, within_bacc, skipped = _within_baseline(
        arrays, y, te, groups, Cs=Cs, folds=folds, inner_folds=inner_folds,
        standardize=standardize, class_weight=class_weight, fit_intercept=fit_intercept,
        max_iter=max_iter, tol=tol, seed=seed)
    return TransferResult(names, Cs, classes, Cs[choice[:, 0]],
                          at_choice(acc, choice)[:, 0], at_choice(bacc, choice)[:, 0],
                          acc[:, :, 0], within_acc, within_bacc, _shift_chance(codes, tr, te),
                          1.0 / len(np.unique(codes[te])), p, p_fwe, conv[:, 0], skipped)
