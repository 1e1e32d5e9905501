"""folds.nested_folds: the inner folds of each outer training set, as encode draws them."""

import numpy as np
import pytest

from alignjax import InvalidFoldsError, kfold, resolve_folds
from alignjax.folds import nested_folds, validate_folds


def test_inner_folds_cover_each_outer_training_set_with_seed_plus_one_plus_o():
    outer = kfold(23, 4, seed=7)
    inner = nested_folds(outer, 3, seed=7)
    assert len(inner) == 4
    for o, masks in enumerate(inner):
        n_train = int((~outer[o]).sum())
        assert masks.shape == (3, n_train)
        validate_folds(masks, n_train)
        np.testing.assert_array_equal(masks, resolve_folds(3, n_train, seed=7 + 1 + o))


def test_inner_folds_are_stratified_like_the_outer_ones():
    labels = np.repeat(np.arange(3), 12)
    outer = resolve_folds(3, 36, seed=0, stratify=labels)
    for o, masks in enumerate(nested_folds(outer, 4, seed=0, stratify=labels)):
        sub = labels[~outer[o]]
        for f in range(4):  # 8 of each category in the outer-training set: 2 per inner fold
            assert np.bincount(sub[masks[f]], minlength=3).tolist() == [2, 2, 2]


def test_inner_folds_never_split_a_group():
    groups = np.repeat(np.arange(10), 3)
    outer = resolve_folds(5, 30, groups=groups)
    for o, masks in enumerate(nested_folds(outer, 4, groups=groups)):
        sub = groups[~outer[o]]
        fold_of = np.argmax(masks, axis=0)
        for g in np.unique(sub):
            assert len(np.unique(fold_of[sub == g])) == 1


def test_too_many_inner_folds_names_the_outer_fold():
    outer = kfold(6, 3, seed=0)
    with pytest.raises(InvalidFoldsError, match="outer fold 0"):
        nested_folds(outer, 5)
