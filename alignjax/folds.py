"""Cross-validation folds over stimuli.

Folds are represented as a boolean array of test masks, shape (n_folds, n_stimuli): fold
``f`` tests on ``masks[f]`` and trains on ``~masks[f]``. Masks have a fixed shape, so every
fold of a problem runs in one ``vmap``. All helpers validate that folds are disjoint,
cover every stimulus and leave no fold (train or test) empty.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ._validation import InvalidFoldsError, check_positive_int

__all__ = ["kfold", "stratified_kfold", "group_kfold", "resolve_folds", "validate_folds",
           "fold_ids", "stratified_fold_ids", "inner_test_masks", "stratified_holdout",
           "nested_folds"]


def validate_folds(masks: np.ndarray, n_stimuli: int | None = None, *,
                   require_cover: bool = True) -> np.ndarray:
    """Check test masks (n_folds, n_stimuli) and return them as a bool array.

    Raises :class:`InvalidFoldsError` if folds overlap, leave stimuli untested, or have an
    empty train or test side.
    """
    masks = np.asarray(masks)
    if masks.ndim != 2 or masks.dtype != bool:
        raise InvalidFoldsError(
            f"folds must be boolean test masks of shape (n_folds, n_stimuli), got "
            f"{masks.dtype} array of shape {masks.shape}"
        )
    if n_stimuli is not None and masks.shape[1] != n_stimuli:
        raise InvalidFoldsError(
            f"folds cover {masks.shape[1]} stimuli but the data have {n_stimuli}"
        )
    if masks.shape[0] < 2:
        raise InvalidFoldsError(f"need at least 2 folds, got {masks.shape[0]}")
    counts = masks.sum(axis=0)
    if (counts > 1).any():
        bad = np.flatnonzero(counts > 1)[:5].tolist()
        raise InvalidFoldsError(f"folds are not disjoint: stimuli {bad} are tested in several folds")
    if require_cover and (counts == 0).any():
        bad = np.flatnonzero(counts == 0)[:5].tolist()
        raise InvalidFoldsError(f"folds do not cover every stimulus: stimuli {bad} are never tested")
    sizes = masks.sum(axis=1)
    if (sizes == 0).any():
        raise InvalidFoldsError(f"fold {int(np.flatnonzero(sizes == 0)[0])} has no test stimuli")
    if (sizes == masks.shape[1]).any():
        raise InvalidFoldsError(f"fold {int(np.flatnonzero(sizes == masks.shape[1])[0])} has no "
                                "training stimuli")
    return masks


def _from_ids(fold_of: np.ndarray, n_folds: int) -> np.ndarray:
    return fold_of[None, :] == np.arange(n_folds)[:, None]


def kfold(n_stimuli: int, n_folds: int = 5, *, shuffle: bool = True, seed: int = 0) -> np.ndarray:
    """K-fold test masks (n_folds, n_stimuli), sizes differing by at most one.

    Matches :class:`sklearn.model_selection.KFold` fold sizes; with ``shuffle=False`` the
    folds are the same contiguous blocks as ``KFold(n_folds)``.
    """
    n_stimuli = check_positive_int(n_stimuli, "n_stimuli", minimum=2)
    n_folds = check_positive_int(n_folds, "n_folds", minimum=2)
    if n_folds > n_stimuli:
        raise InvalidFoldsError(f"cannot make {n_folds} folds from {n_stimuli} stimuli")
    sizes = np.full(n_folds, n_stimuli // n_folds)
    sizes[: n_stimuli % n_folds] += 1
    fold_of = np.repeat(np.arange(n_folds), sizes)
    order = np.random.default_rng(seed).permutation(n_stimuli) if shuffle else np.arange(n_stimuli)
    out = np.empty(n_stimuli, dtype=int)
    out[order] = fold_of
    return validate_folds(_from_ids(out, n_folds), n_stimuli)


def stratified_kfold(labels: Sequence, n_folds: int = 5, *, seed: int = 0) -> np.ndarray:
    """K-fold test masks balanced across categories (e.g. the 11 categories of 165 sounds).

    Each category's stimuli are shuffled and dealt to folds in turn, continuing where the
    previous category stopped, so fold sizes differ by at most one and each fold holds
    each category in proportion.
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    n_folds = check_positive_int(n_folds, "n_folds", minimum=2)
    cats, counts = np.unique(labels, return_counts=True)
    if counts.min() < n_folds:
        small = cats[counts < n_folds][:5].tolist()
        raise InvalidFoldsError(
            f"categories {small} have fewer members than the {n_folds} folds; use fewer folds "
            "or merge small categories"
        )
    fold_of = stratified_fold_ids(labels, n_folds, np.random.default_rng(seed))
    return validate_folds(_from_ids(fold_of, n_folds), n)


def stratified_fold_ids(labels: Sequence, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Stratified fold ids (n_stimuli,): each category shuffled and dealt to folds in turn.

    Categories are taken in sorted order; each one's members are permuted by ``rng`` and
    dealt to folds ``0 .. n_folds - 1`` in turn, continuing where the previous category
    stopped, so fold sizes differ by at most one. The generator is advanced once per
    category, so callers that deal several sets from one generator get reproducible folds.

    Parameters
    ----------
    labels : array (n_stimuli,)
        Category of each stimulus (any sortable values).
    n_folds : int
    rng : numpy.random.Generator

    Returns
    -------
    int array (n_stimuli,)
        The fold of each stimulus.
    """
    _, inv = np.unique(np.asarray(labels), return_inverse=True)
    inv = inv.reshape(-1)
    fold_of = np.empty(len(inv), dtype=int)
    start = 0
    for c in range(inv.max(initial=-1) + 1):
        pos = rng.permutation(np.flatnonzero(inv == c))
        fold_of[pos] = (start + np.arange(len(pos))) % n_folds
        start = (start + len(pos)) % n_folds
    return fold_of


def inner_test_masks(labels: Sequence, outer_test: np.ndarray, n_inner: int, *, seed: int,
                     groups: Sequence | None = None) -> np.ndarray:
    """Inner test masks within each outer training set, for nested cross-validation.

    Within each outer fold's training stimuli, ``n_inner`` folds stratified by ``labels``
    (dealt by :func:`stratified_fold_ids`, one generator seeded by ``seed`` for all outer
    folds in turn), or grouped by ``groups`` (no group split across inner folds, as
    :func:`group_kfold`).

    Parameters
    ----------
    labels : array (n_stimuli,)
    outer_test : bool array (n_folds, n_stimuli)
        Outer test masks.
    n_inner : int
        Inner folds per outer training set.
    seed : int
    groups : array (n_stimuli,), optional

    Returns
    -------
    bool array (n_folds, n_inner, n_stimuli)
        Inner test masks; each is a subset of the outer training set.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    F, n = outer_test.shape
    out = np.zeros((F, n_inner, n), dtype=bool)
    for f in range(F):
        members = np.flatnonzero(~outer_test[f])
        if len(members) < n_inner:
            raise InvalidFoldsError(f"outer fold {f} has {len(members)} training stimuli, fewer "
                                    f"than inner_folds={n_inner}")
        if groups is None:
            fid = stratified_fold_ids(labels[members], n_inner, rng)
        else:
            fid = fold_ids(group_kfold(np.asarray(groups)[members], n_inner))
        for g in range(n_inner):
            out[f, g, members[fid == g]] = True
    return out


def stratified_holdout(labels: Sequence, members: np.ndarray, fraction: float,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Stratified validation split of ``members`` (indices into ``labels``).

    Holds out ``round(fraction * n_c)`` of each category's ``n_c`` members (at least one,
    and at least one left for training), drawn by ``rng`` category by category.

    Returns
    -------
    val, train : int arrays
        Sorted indices of the held-out and the remaining members.
    """
    labels = np.asarray(labels)
    val = []
    for c in np.unique(labels[members]):
        pos = rng.permutation(members[labels[members] == c])
        k = min(max(1, int(round(fraction * len(pos)))), len(pos) - 1)
        val.append(pos[:k])
    val = np.sort(np.concatenate(val))
    return val, np.setdiff1d(members, val)


def group_kfold(groups: Sequence, n_folds: int = 5) -> np.ndarray:
    """K-fold test masks in which no group is split across folds.

    Groups are assigned largest first to the currently smallest fold, as in
    :class:`sklearn.model_selection.GroupKFold`.
    """
    groups = np.asarray(groups)
    n_folds = check_positive_int(n_folds, "n_folds", minimum=2)
    uniq, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if len(uniq) < n_folds:
        raise InvalidFoldsError(f"cannot make {n_folds} folds from {len(uniq)} groups")
    fold_size = np.zeros(n_folds, dtype=int)
    group_fold = np.empty(len(uniq), dtype=int)
    for g in np.argsort(-counts, kind="stable"):
        f = int(np.argmin(fold_size))
        group_fold[g] = f
        fold_size[f] += counts[g]
    return validate_folds(_from_ids(group_fold[inv], n_folds), groups.shape[0])


def resolve_folds(folds, n_stimuli: int, *, seed: int = 0, stratify=None,
                  groups=None) -> np.ndarray:
    """Turn any accepted fold specification into validated test masks.

    Parameters
    ----------
    folds : int, array or sequence
        An int (k folds: stratified by ``stratify`` when given, grouped by ``groups`` when
        given, else shuffled K-fold); boolean test masks (n_folds, n_stimuli); a fold id per
        stimulus (n_stimuli,) of ints; a sequence of test-index arrays; or a sequence of
        ``(train_index, test_index)`` pairs as produced by sklearn splitters.
    """
    if isinstance(folds, (int, np.integer)) and not isinstance(folds, bool):
        if stratify is not None and groups is not None:
            raise InvalidFoldsError("give either stratify or groups, not both")
        if stratify is not None:
            if len(stratify) != n_stimuli:
                raise InvalidFoldsError(f"stratify has {len(stratify)} labels for {n_stimuli} stimuli")
            return stratified_kfold(stratify, int(folds), seed=seed)
        if groups is not None:
            if len(groups) != n_stimuli:
                raise InvalidFoldsError(f"groups has {len(groups)} entries for {n_stimuli} stimuli")
            return group_kfold(groups, int(folds))
        return kfold(n_stimuli, int(folds), seed=seed)
    if isinstance(folds, np.ndarray) and folds.dtype == bool:
        return validate_folds(folds, n_stimuli)
    if isinstance(folds, np.ndarray) and folds.ndim == 1 and np.issubdtype(folds.dtype, np.integer) \
            and folds.shape[0] == n_stimuli:
        ids = np.unique(folds)
        return validate_folds(folds[None, :] == ids[:, None], n_stimuli)
    folds = list(folds)
    masks = np.zeros((len(folds), n_stimuli), dtype=bool)
    pairs = all(isinstance(f, (tuple, list)) and len(f) == 2 for f in folds)
    for k, f in enumerate(folds):
        test = np.asarray(f[1] if pairs else f)
        if test.size == 0:
            raise InvalidFoldsError(f"fold {k} has no test stimuli")
        if test.dtype == bool:
            test = np.flatnonzero(test)
        test = test.astype(np.int64)
        if (test.min() < 0 or test.max() >= n_stimuli):
            raise InvalidFoldsError(f"fold {k} indexes stimuli outside 0..{n_stimuli - 1}")
        if len(np.unique(test)) != len(test):
            raise InvalidFoldsError(f"fold {k} lists a stimulus twice")
        masks[k, test] = True
        if pairs:
            train = np.asarray(f[0])
            if np.intersect1d(train, test).size:
                raise InvalidFoldsError(f"fold {k}: train and test indices overlap")
    return validate_folds(masks, n_stimuli)


def fold_ids(masks: np.ndarray) -> np.ndarray:
    """The fold index of each stimulus (n_stimuli,), from covering test masks."""
    masks = validate_folds(np.asarray(masks))
    return np.argmax(masks, axis=0)


# --------------------------------------------------------------------------- nested folds


def nested_folds(outer: np.ndarray, n_inner: int, *, seed: int = 0, stratify=None,
                 groups=None) -> list[np.ndarray]:
    """Inner folds inside the training stimuli of each outer fold.

    Parameters
    ----------
    outer : ndarray (n_outer, n_stimuli) of bool
        Outer test masks.
    n_inner : int
        Inner folds per outer-training set.
    seed : int
        The inner folds of outer fold ``o`` are drawn with seed ``seed + 1 + o``.
    stratify, groups : array (n_stimuli,), optional
        Category or group labels of all stimuli: inner folds are stratified or grouped
        like the outer ones (see :func:`resolve_folds`).

    Returns
    -------
    list of ndarray (n_inner, n_train_o) of bool
        Test masks over the outer-training stimuli ``np.flatnonzero(~outer[o])``.
    """
    inner = []
    for o, test in enumerate(np.asarray(outer)):
        tr = np.flatnonzero(~test)
        if n_inner > len(tr):
            raise InvalidFoldsError(f"cannot make {n_inner} inner folds from the {len(tr)} "
                                    f"training stimuli of outer fold {o}")
        inner.append(resolve_folds(
            n_inner, len(tr), seed=seed + 1 + o,
            stratify=None if stratify is None else np.asarray(stratify)[tr],
            groups=None if groups is None else np.asarray(groups)[tr]))
    return inner
