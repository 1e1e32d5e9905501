"""Label-permutation test of cross-validated probe accuracy, max-T corrected over layers.

Every permuted labelling reruns the whole procedure (folds and C choice included); the
splits of a chunk of labellings are solved together by the batched solver.

Package-internal: :func:`labelling_test` (also used by :mod:`alignjax.probes.transfer`).
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np

from .._runtime import float32_matmuls
from .._validation import InvalidOptionError, check_positive_int
from ..options import renamed
from ..permutation import permutation_test
from .cv import at_choice, check_score, cv_design, cv_scores, warn_convergence
from .labels import check_Cs, class_weights, encode_labels, load_labelled
from .solve import solve_splits

__all__ = ["PermutationResult", "probe_permutation_test", "permutation_level",
           "labelling_permutations", "n_group_labellings", "PERMUTE_LEVELS"]

PERMUTE_LEVELS = ("auto", "stimuli", "groups", "within_groups")


class PermutationResult(NamedTuple):
    """Result of :func:`probe_permutation_test`.

    Attributes
    ----------
    layers : list of str (n_layers,)
    C : array (n_layers,)
        The fixed C per layer, or NaN when C is chosen by inner CV (``inner_folds``).
    observed : array (n_layers,)
        Cross-validated score (mean over outer folds) with the true labels: at ``C``, or
        the nested-CV score (``logistic_probe(...).nested_accuracy.mean(1)`` with the same
        arguments).
    null : array (n_perm, n_layers)
        The same statistic, by the same procedure (folds and C choice included), for
        permuted labels (the same permutations for every layer).
    p : array (n_layers,)
        ``(1 + #{null >= observed}) / (1 + n_perm)``.
    p_fwe : array (n_layers,)
        Family-wise corrected over layers by the maximum statistic.
    converged : bool
        Whether every fit (observed and permuted) converged.
    statistic : str
        ``"nested_<score>"`` or ``"<score>_at_fixed_C"``.
    permuted : str
        What was permuted: ``"stimuli"``, ``"groups"`` (labels of whole groups) or
        ``"within_groups"`` (see :func:`permutation_level`).
    """

    layers: list
    C: np.ndarray
    observed: np.ndarray
    null: np.ndarray
    p: np.ndarray
    p_fwe: np.ndarray
    converged: bool
    statistic: str
    permuted: str = "stimuli"


def _group_index(groups, n):
    if groups is None:
        raise InvalidOptionError("group-level or within-group permutation needs groups")
    g = np.unique(np.asarray(groups).astype(str), return_inverse=True)[1].ravel()
    if g.shape != (n,):
        from .._validation import ShapeMismatchError

        raise ShapeMismatchError(f"groups has {g.shape[0]} entries for {n} stimuli")
    return g


def _constant_within(y, g) -> bool:
    y = np.asarray(y).reshape(len(g), -1)
    order = np.argsort(g, kind="stable")
    ys, gs = y[order], g[order]
    same = gs[1:] == gs[:-1]
    return bool(np.all(np.all(ys[1:] == ys[:-1], axis=1) | ~same))


def permutation_level(y, groups=None) -> str:
    """The level at which labels ``y`` (n[, k]) vary, and so what a label-permutation test
    permutes: ``"stimuli"`` without groups, ``"groups"`` when the labels are constant
    within every group (a property of the group: the groups, not the stimuli, are the
    exchangeable units), else ``"within_groups"`` (labels are shuffled among the stimuli
    of each group, assuming stimuli within a group are exchangeable under the null; the
    group composition of the labels is kept)."""
    if groups is None:
        return "stimuli"
    return "groups" if _constant_within(y, _group_index(groups, len(y))) else "within_groups"


def _members(g):
    """Stimulus indices of each group (in stimulus order) and the groups of each size."""
    members = [np.flatnonzero(g == k) for k in range(g.max() + 1)]
    sizes = np.array([len(m) for m in members])
    return members, {int(s): np.flatnonzero(sizes == s) for s in np.unique(sizes)}


def labelling_permutations(n_perm: int, n: int, *, groups=None, level: str = "stimuli",
                           seed=0) -> np.ndarray:
    """Index permutations (n_perm, n): the permuted labelling is ``y[perm]``.

    ``"stimuli"``: any permutation of the n stimuli. ``"within_groups"``: stimuli are
    shuffled within their group. ``"groups"``: whole groups are permuted among groups of
    the same size (stimuli matched by their position within the group), so every
    permutation maps each group's labels onto another group as a block; with groups of
    several sizes only groups of equal size trade labels (a subgroup of the group
    permutations, still exact).
    """
    rng = np.random.default_rng(seed)
    if level == "stimuli":
        return np.stack([rng.permutation(n) for _ in range(n_perm)])
    g = _group_index(groups, n)
    members, by_size = _members(g)
    out = np.empty((n_perm, n), dtype=np.int64)
    for b in range(n_perm):
        perm = np.arange(n)
        if level == "within_groups":
            for m in members:
                perm[m] = m[rng.permutation(len(m))]
        elif level == "groups":
            for ks in by_size.values():
                for k, k2 in zip(ks, ks[rng.permutation(len(ks))]):
                    perm[members[k]] = members[k2]
        else:
            raise InvalidOptionError(f"permutation level {level!r}; choose from "
                                     f"{PERMUTE_LEVELS[1:]}")
        out[b] = perm
    return out


def n_group_labellings(y, groups) -> int:
    """How many distinct labellings the group-level permutations of ``labelling_permutations``
    reach: per size class, the multinomial number of arrangements of the groups' label
    blocks (identical blocks are indistinguishable). A test whose count is below 1 / alpha
    cannot reject at level alpha."""
    from math import factorial

    y = np.asarray(y)
    g = _group_index(groups, len(y))
    members, by_size = _members(g)
    total = 1
    for ks in by_size.values():
        blocks = {}
        for k in ks:
            key = np.asarray(y[members[k]]).tobytes()
            blocks[key] = blocks.get(key, 0) + 1
        c = factorial(len(ks))
        for v in blocks.values():
            c //= factorial(v)
        total *= c
    return total


def _level(permute, codes, groups):
    if permute not in PERMUTE_LEVELS:
        raise InvalidOptionError(f"permute={permute!r}; choose from {PERMUTE_LEVELS}")
    if permute == "auto":
        return permutation_level(codes, groups)
    if permute != "stimuli":
        _group_index(groups, len(codes))
    return permute


def _padded(batch: list, size: int) -> list:
    """Pad a batch with copies of its first item so every chunk compiles to one shape."""
    return batch + [batch[0]] * (size - len(batch))


def labelling_stats(arrays, labellings, design_of, statistic, Cs, *, K, class_weight,
                    pad_to, **solve):
    """The statistic of a procedure for a batch of labellings: (n_labellings, n_layers).

    Package-internal. ``design_of(codes)`` gives a labelling's splits
    (:class:`~alignjax.probes.cv.Design`); every split of the batch (padded to ``pad_to``
    labellings, so the solver compiles once) is solved in one
    :func:`~alignjax.probes.solve.solve_splits`; ``statistic(preds, codes, design)`` maps
    one labelling's predictions (n_layers, n_splits, n_Cs, n) to (n_layers,). Returns the
    statistics and whether every fit converged.
    """
    m = len(labellings)
    chunk = _padded(list(labellings), max(pad_to, m))
    designs = [design_of(c) for c in chunk]
    B = designs[0].train.shape[0]
    codes_splits = np.repeat(np.stack(chunk), B, axis=0)
    SW = np.stack([class_weights(c, t, K, class_weight)
                   for c, d in zip(chunk, designs) for t in d.train])
    preds, _, conv = solve_splits(arrays, codes_splits, SW, Cs, n_classes=K, **solve)
    preds = preds.reshape(len(arrays), len(chunk), B, len(Cs), -1)
    ok = bool(conv.reshape(len(arrays), len(chunk), -1)[:, :m].all())
    return np.stack([statistic(preds[:, j], chunk[j], designs[j]) for j in range(m)]), ok


def labelling_test(arrays, codes, labellings, design_of, statistic, Cs, *, chunk_size,
                   progress=False, return_null=False, **kw):
    """Permutation test of a probe procedure over permuted labellings (package-internal).

    The observed statistic (labels ``codes``) and the null (``labellings``, (n_perm, n))
    come from :func:`labelling_stats` with the same arguments ``kw``; counting, max-T and
    chunking are :func:`alignjax.permutation.permutation_test`'s. Returns the test result
    and whether every fit converged.
    """
    conv = []

    def stats_of(batch):
        out, ok = labelling_stats(arrays, list(batch), design_of, statistic, Cs,
                                  pad_to=chunk_size, **kw)
        conv.append(ok)
        return out

    observed = stats_of(codes[None])[0]
    res = permutation_test(stats_of, observed, n_perm=len(labellings),
                           permutations=labellings.__getitem__, chunk_size=chunk_size,
                           return_null=return_null, progress=progress)
    return res, all(conv)


def _procedure(L, C, Cs, inner_folds, score):
    """The tested procedure: ``(n_inner, C per layer, C grid, statistic)``.

    With ``inner_folds`` the statistic is the nested-CV score (C chosen by inner CV);
    otherwise the cross-validated score at a fixed C per layer.
    """
    k = check_score(score)
    if inner_folds is not None:
        if C is not None:
            raise InvalidOptionError("give either a fixed C or inner_folds (C chosen by nested "
                                     "CV), not both")
        G = check_positive_int(inner_folds, "inner_folds", minimum=2)
        Cs = check_Cs(tuple(np.logspace(-4, 4, 9)) if Cs is None else Cs)

        def statistic(preds, lab, design):
            sc = cv_scores(preds, lab, design, score)
            return at_choice(sc[k], sc[2]).mean(axis=1)

        return G, np.full(L, np.nan), Cs, statistic
    if Cs is not None:
        raise InvalidOptionError("Cs is the grid of the nested CV: give it with inner_folds")
    Cl = np.broadcast_to(np.asarray(1.0 if C is None else C, dtype=float), (L,)).copy()
    Cs = check_Cs(np.unique(Cl))
    cidx = np.searchsorted(Cs, Cl)

    def statistic(preds, lab, design):
        sc = cv_scores(preds, lab, design, score)[k]
        return sc[np.arange(L), cidx].mean(axis=1)

    return 0, Cl, Cs, statistic


@renamed(scoring="score", perm_batch="chunk_size", layer_batch="layer_chunk_size")
@float32_matmuls
def probe_permutation_test(X, y, *, C=None, Cs: Sequence[float] | None = None,
                           inner_folds: int | None = None, folds=5, n_perm: int = 1000,
                           seed: int = 0, groups=None, standardize: bool = True,
                           class_weight: str | Mapping | None = None, score: str = "accuracy",
                           fit_intercept: bool = True, max_iter: int = 1000, tol: float = 1e-4,
                           layers: Sequence[str] | None = None, chunk_size: int = 32,
                           layer_chunk_size: int | None = 1, permute: str = "auto",
                           progress: bool = False) -> PermutationResult:
    """Label-permutation test of cross-validated probe accuracy, max-T corrected over layers.

    For each of ``n_perm`` permutations of the labels over stimuli (the same permutations
    for every layer) the whole procedure is rerun on the permuted labels: folds given as
    an int are redrawn, stratified on the permuted labels (as they were drawn from the
    true ones), and, with ``inner_folds``, C is chosen again by nested CV, so the p-value
    is for the statistic :func:`logistic_probe` reports (``nested_accuracy.mean(1)``).
    With a fixed ``C`` instead, the test is conditional on that C: valid when C was fixed
    before seeing these labels, not when it was chosen on them. Without ``groups`` labels
    are exchangeable across stimuli under the null, which assumes condition-averaged
    stimuli, not time series.

    With ``groups`` the permutations respect them (``permute="auto"``): labels constant
    within every group (a property of the group, e.g. a room's RT60 with folds grouped by
    room) are permuted as whole groups, since the groups are then the exchangeable
    units: permuting over stimuli would mix labels within groups and, with grouped folds,
    give a null far below the observed score of a probe without information (p-values
    piled near 1 and an inflated family-wise rate). Labels that vary within groups are
    permuted within each group, which assumes the stimuli of a group are exchangeable
    under the null. A warning says when the groups allow fewer than 20 distinct
    labellings (no p below 0.05 is then reachable).

    Parameters
    ----------
    X, y
        As :func:`logistic_probe`.
    C : float or array (n_layers,), optional
        Fixed C per layer (default 1.0 without ``inner_folds``).
    Cs : sequence of float, optional
        With ``inner_folds``: the C grid of the nested CV (default that of
        :func:`logistic_probe`).
    inner_folds : int, optional
        Choose C by this many inner folds within each outer training set, as
        :func:`logistic_probe` does.
    folds : int or fold specification
        Outer folds; explicit folds (or ``groups``) do not depend on the labels and are kept.
    n_perm : int
    seed : int
        Seed of the permutations and of the folds (as :func:`logistic_probe`).
    groups : array (n_stimuli,), optional
        Grouped outer and inner folds (see :func:`logistic_probe`).
    score : {"accuracy", "balanced_accuracy"}
        Formerly ``scoring``.
    chunk_size : int
        Permutations solved together; bounds memory, never changes results (formerly
        ``perm_batch``).
    layer_chunk_size : int or None
        Layers solved together per permutation chunk; never changes results (formerly
        ``layer_batch``).
    permute : {"auto", "stimuli", "groups", "within_groups"}
        What is permuted (see above and :func:`permutation_level`); ``"auto"`` is
        ``"stimuli"`` without ``groups``.
    progress : bool
        Show a progress bar over permutation chunks.

    Returns
    -------
    PermutationResult
    """
    check_score(score)
    n_perm = check_positive_int(n_perm, "n_perm")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    names, arrays, _, y = load_labelled(X, y, layers=layers)
    classes, codes = encode_labels(y)
    G, Cl, Cs, statistic = _procedure(len(arrays), C, Cs, inner_folds, score)
    level = _level(permute, codes, groups)
    if level == "stimuli":  # the permutations drawn before levels existed: same p-values
        rng = np.random.default_rng(seed)
        labellings = np.stack([rng.permutation(codes) for _ in range(n_perm)])
    else:
        idx = labelling_permutations(n_perm, len(codes), groups=groups, level=level,
                                     seed=[seed, 13])
        labellings = codes[idx]
        if level == "groups" and n_group_labellings(codes, groups) < 20:
            import warnings

            warnings.warn(f"the {len(np.unique(np.asarray(groups).astype(str)))} groups allow "
                          f"only {n_group_labellings(codes, groups)} distinct group labellings, "
                          "so no p-value below 0.05 is reachable; use more groups",
                          stacklevel=2)
    res, conv = labelling_test(
        arrays, codes, labellings, lambda c: cv_design(c, classes, folds, G, seed, groups),
        statistic, Cs, chunk_size=min(chunk_size, n_perm), progress=progress,
        return_null=True, K=len(classes), class_weight=class_weight,
        fit_intercept=fit_intercept, max_iter=max_iter, tol=tol, standardize=standardize,
        layer_chunk_size=layer_chunk_size)
    if not conv:
        warn_convergence(np.array([False]), "permutation-test runs")
    stat = f"nested_{score}" if G else f"{score}_at_fixed_C"
    return PermutationResult(names, Cl, res.observed, res.null, np.asarray(res.p, float),
                             np.asarray(res.p_fwe, float), conv, stat, level)
