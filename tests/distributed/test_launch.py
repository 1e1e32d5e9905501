"""``alignjax launch -n 2 -- encode ...`` writes the files of ``alignjax encode ...``."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alignjax.app.cli import main
from alignjax.distributed import DistributedError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    n = 30
    ids = [f"snd{i:03d}" for i in range(n)]
    feat = tmp_path / "features"
    feat.mkdir()
    layers = {"conv": rng.standard_normal((n, 8)), "block1": rng.standard_normal((n, 12))}
    for name, X in layers.items():
        np.save(feat / f"{name}.npy", X)
    (feat / "stimulus_ids.txt").write_text("\n".join(ids) + "\n")
    Y = layers["block1"] @ rng.standard_normal((12, 7)) + rng.standard_normal((n, 7))
    np.savez(tmp_path / "brain.npz", stimulus_ids=np.array(ids), sub01=Y[:, :4], sub02=Y[:, 4:])
    return tmp_path


def _cli(args, **env):
    env = dict({k: v for k, v in os.environ.items()
                if k != "XLA_FLAGS" and not k.startswith("ALIGNJAX_")},
               JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **env)
    return subprocess.run([sys.executable, "-m", "alignjax.app.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # 30 s; tests/distributed/test_two_processes.py covers the library in CI
@pytest.mark.timeout(900)
def test_launch_two_processes_writes_the_same_files(inputs):
    args = ["encode", "--features", str(inputs / "features"), "--brain",
            str(inputs / "brain.npz"), "--alphas", "logspace:-1:3:5", "--outer-folds", "3",
            "--inner-folds", "3", "--n-perm", "9", "--no-progress"]
    one = _cli(args + ["--out", str(inputs / "one")])
    assert one.returncode == 0, one.stderr
    two = _cli(["launch", "-n", "2", "--timeout", "600", "--", *args,
                "--out", str(inputs / "two")])
    assert two.returncode == 0, two.stderr
    files = sorted(p.relative_to(inputs / "one") for p in (inputs / "one").rglob("*")
                   if p.is_file())
    assert files == sorted(p.relative_to(inputs / "two") for p in (inputs / "two").rglob("*")
                           if p.is_file())
    assert any(f.suffix == ".npy" for f in files)
    for f in files:
        if f.suffix == ".npy":
            np.testing.assert_allclose(np.load(inputs / "two" / f), np.load(inputs / "one" / f),
                                       rtol=1e-5, atol=1e-6, err_msg=str(f))
    s1, s2 = (json.loads((inputs / d / "summary.json").read_text()) for d in ("one", "two"))
    assert s1["subjects"].keys() == s2["subjects"].keys()
    for sub in s1["subjects"]:
        assert s2["subjects"][sub]["median_r2"] == pytest.approx(s1["subjects"][sub]["median_r2"],
                                                                 rel=1e-5)


def _voxels(out):
    import csv

    with open(out / "voxels.csv") as fh:
        return [(row["subject"], row["voxel"], float(row["r"])) for row in csv.DictReader(fh)]


@pytest.mark.slow  # 3 two-process runs, about 40 s
@pytest.mark.timeout(900)
def test_launch_rerun_keeps_the_blocks_an_interrupted_run_wrote(inputs):
    args = ["encode", "--features", str(inputs / "features"), "--brain",
            str(inputs / "brain.npz"), "--alphas", "logspace:-1:3:5", "--outer-folds", "3",
            "--inner-folds", "3", "--no-progress"]
    one = _cli(args + ["--out", str(inputs / "one")])
    assert one.returncode == 0, one.stderr
    out = inputs / "two"
    (out / "voxels.csv").mkdir(parents=True)  # process 0 fails after every block is written
    run = ["launch", "-n", "2", "--timeout", "600", "--", *args, "--out", str(out)]
    failed = _cli(run)
    assert failed.returncode != 0
    blocks = sorted((out / ".parts").glob("*.npz"))
    assert [b.name for b in blocks] == ["rank-0-of-2.npz", "rank-1-of-2.npz"]
    (out / "voxels.csv").rmdir()
    with np.load(blocks[1]) as z:  # mark process 1's block: a rerun must keep it, not refit
        fields = dict(z)
    fields["r"] = np.full_like(fields["r"], 0.25)
    np.savez(blocks[1], **fields)
    kept = _cli(run)
    assert kept.returncode == 0, kept.stderr
    assert not (out / ".parts").exists()
    ref, got = _voxels(inputs / "one"), _voxels(out)
    n1 = fields["r"].size
    assert [v[:2] for v in got] == [v[:2] for v in ref]
    assert [v[2] for v in got[-n1:]] == [0.25] * n1
    np.testing.assert_allclose([v[2] for v in got[:-n1]], [v[2] for v in ref[:-n1]], rtol=1e-5)
    # a block written by another run (its key differs) is fitted again
    (out / "voxels.csv").unlink()
    (out / "voxels.csv").mkdir()
    assert _cli(run).returncode != 0
    (out / "voxels.csv").rmdir()
    blocks = sorted((out / ".parts").glob("*.npz"))
    with np.load(blocks[1]) as z:
        fields = dict(z)
    fields["r"] = np.full_like(fields["r"], 0.25)
    fields["key"] = np.array("written-by-another-run")
    np.savez(blocks[1], **fields)
    redone = _cli(run)
    assert redone.returncode == 0, redone.stderr
    assert [v[:2] for v in _voxels(out)] == [v[:2] for v in ref]
    np.testing.assert_allclose([v[2] for v in _voxels(out)], [v[2] for v in ref], rtol=1e-5)


def test_launch_bad_input_and_failures(inputs, capsys):
    assert main(["launch", "-n", "0", "--", "info"]) == 2
    assert "at least 1" in capsys.readouterr().err
    assert main(["launch", "-n", "2"]) == 2
    assert "nothing to launch" in capsys.readouterr().err
    assert main(["launch", "-n", "2", "--", "launch", "-n", "2", "--", "info"]) == 2
    assert "not 'launch'" in capsys.readouterr().err
    assert main(["launch", "-n", "2", "--", "extract", "--model", "spectral:mel"]) == 2
    assert "--shard" in capsys.readouterr().err


def test_other_processes_write_to_scratch(monkeypatch, tmp_path):
    from alignjax import distributed
    from alignjax.app.cli import _output_of_this_process

    args = argparse.Namespace(out=str(tmp_path / "res"))
    with _output_of_this_process(args):  # process 0 writes --out
        assert args.out == str(tmp_path / "res")
    monkeypatch.setattr(distributed, "process_index", lambda: 1)
    with _output_of_this_process(args):
        scratch = Path(args.out)
        assert tmp_path not in scratch.parents
        scratch.mkdir()
        (scratch / "x.csv").write_text("1")
    assert not scratch.exists()
    own = argparse.Namespace(out=str(tmp_path / "res"), writes_per_process=True)
    with _output_of_this_process(own):  # encode: every process writes its voxels itself
        assert own.out == str(tmp_path / "res")
    with pytest.raises(DistributedError):
        from alignjax.app.launch import launch
        launch(1, [])
