"""Blocks of a multi-process encode, each written by its process and joined by process 0
(here the processes are simulated in one: the block each would own, one after the other)."""

import numpy as np
import pytest

import alignjax as aj
from alignjax import distributed
from alignjax.app.studies import encode_blocks
from alignjax.app.studies.encode_blocks import OwnedBlocks
from alignjax.encoding import TARGET_FIELDS
from alignjax.errors import ShapeMismatchError
from alignjax.io import load_layers


@pytest.fixture
def problem():
    rng = np.random.default_rng(4)
    n = 30
    ls = load_layers({"conv": rng.standard_normal((n, 6)), "fc": rng.standard_normal((n, 9))})
    Y = ls.arrays[1] @ rng.standard_normal((9, 7)) + rng.standard_normal((n, 7))
    Y[:, 2] = 1.0  # excluded (zero variance), inside process 0's block
    return ls, {"sub01": Y[:, :3], "sub02": Y[:, 3:]}


def _as_process(monkeypatch, rank, size):
    monkeypatch.setattr(distributed, "process_count", lambda: size)
    monkeypatch.setattr(distributed, "process_index", lambda: rank)


def _assert_equal(a, b):
    for f in TARGET_FIELDS:  # float32 solves: to rounding; choices and masks exactly
        x, y = getattr(a, f), getattr(b, f)
        if x.dtype.kind in "biu":
            np.testing.assert_array_equal(x, y, err_msg=f)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5, err_msg=f)
    assert a.summary["subjects"].keys() == b.summary["subjects"].keys()
    for s in a.summary["subjects"]:
        assert a.summary["subjects"][s]["median_r2"] == pytest.approx(
            b.summary["subjects"][s]["median_r2"], rel=1e-5)
        assert a.summary["subjects"][s]["best_layer_counts"] == \
            b.summary["subjects"][s]["best_layer_counts"]
    assert a.summary["n_excluded"] == b.summary["n_excluded"] == 1


def test_blocks_written_by_their_processes_join_into_one_fit(problem, monkeypatch, tmp_path):
    ls, Y = problem
    kw = dict(alphas=np.logspace(-1, 3, 5), outer_folds=3, inner_folds=3)
    whole = aj.encode(ls, Y, **kw)
    settings = {"alphas": [0.1, 1.0], "seed": 0}
    for rank in range(3):  # 7 voxels over 3 processes: blocks of 3, 2, 2 across subjects
        _as_process(monkeypatch, rank, 3)
        part = aj.encode(ls, Y, gather=False, **kw)
        assert part.r.shape == (len(range(7)[distributed.block(7)]),)
        assert part.subjects == ("sub01", "sub02")
        blocks = OwnedBlocks(tmp_path, ls, Y, settings)
        blocks.folder.mkdir(exist_ok=True)
        path, key = blocks._where(rank)
        encode_blocks._save(path, part, key)
    _as_process(monkeypatch, 0, 3)
    _assert_equal(OwnedBlocks(tmp_path, ls, Y, settings).join(), whole)
    _assert_equal(aj.concat_targets([whole]), whole)
    # blocks of another run (other settings, data or number of processes) are not joined
    for other in (OwnedBlocks(tmp_path, ls, Y, {"alphas": [0.1], "seed": 0}),
                  OwnedBlocks(tmp_path, ls, {"sub01": Y["sub01"], "sub02": Y["sub02"] + 1},
                              settings)):
        with pytest.raises(distributed.DistributedError, match="process 0"):
            other.join()
    _as_process(monkeypatch, 0, 2)
    with pytest.raises(distributed.DistributedError, match="another run"):
        OwnedBlocks(tmp_path, ls, Y, settings).join()
    encode_blocks.remove_blocks(tmp_path)
    assert not (tmp_path / encode_blocks.PARTS).exists()


def test_a_damaged_block_is_fitted_again(problem, tmp_path):
    ls, Y = problem
    blocks = OwnedBlocks(tmp_path, ls, Y, {})
    blocks.folder.mkdir()
    path, key = blocks._where(0)
    path.write_bytes(b"not a zip")  # a process killed while writing would leave its .tmp
    assert encode_blocks._load(path, key) is None


def test_concat_targets_refuses_blocks_of_different_fits(problem):
    ls, Y = problem
    kw = dict(alphas=np.logspace(-1, 3, 5), inner_folds=3)
    a = aj.encode(ls, Y, outer_folds=3, **kw)
    with pytest.raises(ShapeMismatchError, match="other layers, subjects or folds"):
        aj.concat_targets([a, aj.encode(ls, Y, outer_folds=4, **kw)])
