import numpy as np
import pytest
from sklearn.model_selection import GroupKFold, KFold

from alignjax import InvalidFoldsError, group_kfold, kfold, resolve_folds, stratified_kfold


def test_kfold_matches_sklearn_blocks():
    masks = kfold(23, 5, shuffle=False)
    for m, (_, test) in zip(masks, KFold(5).split(np.zeros(23))):
        np.testing.assert_array_equal(np.flatnonzero(m), test)


def test_stratified_is_balanced():
    labels = np.repeat(np.arange(11), 15)  # 165 sounds, 11 categories
    masks = stratified_kfold(labels, 5, seed=3)
    for m in masks:
        counts = np.bincount(labels[m], minlength=11)
        assert counts.min() == 3 and counts.max() == 3
    assert masks.sum(0).tolist() == [1] * 165


def test_group_kfold_keeps_groups_together():
    groups = np.repeat(np.arange(10), np.arange(1, 11))
    masks = group_kfold(groups, 3)
    for g in np.unique(groups):
        assert len({int(np.argmax(masks[:, groups == g], axis=0)[k]) for k in range(int((groups == g).sum()))}) == 1
    sk = sorted(len(t) for _, t in GroupKFold(3).split(groups, groups=groups))
    assert sorted(masks.sum(1).tolist()) == sk


@pytest.mark.parametrize("bad, msg", [
    ([[0, 1], [1, 2], [3]], "twice|disjoint"),
    ([[0, 1], [2]], "cover"),
    ([[0, 1, 2, 3], []], "no test"),
])
def test_invalid_user_folds(bad, msg):
    with pytest.raises(InvalidFoldsError, match=msg):
        resolve_folds(bad, 4)


def test_resolve_accepts_sklearn_pairs_and_ids():
    pairs = list(KFold(4).split(np.zeros(8)))
    a = resolve_folds(pairs, 8)
    b = resolve_folds(np.repeat(np.arange(4), 2), 8)
    np.testing.assert_array_equal(a, b)


def test_stratified_too_small_category():
    with pytest.raises(InvalidFoldsError, match="fewer members"):
        stratified_kfold([0, 0, 0, 1, 1], 3)
