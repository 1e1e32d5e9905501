"""``alignjax launch -n 2 -- encode ...`` writes the files of ``alignjax encode ...``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alignjax.app.cli import main
from alignjax.app.launch import _with_out
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


def test_launch_bad_input_and_failures(inputs, capsys):
    assert main(["launch", "-n", "0", "--", "info"]) == 2
    assert "at least 1" in capsys.readouterr().err
    assert main(["launch", "-n", "2"]) == 2
    assert "nothing to launch" in capsys.readouterr().err
    assert main(["launch", "-n", "2", "--", "launch", "-n", "2", "--", "info"]) == 2
    assert "not 'launch'" in capsys.readouterr().err
    assert main(["launch", "-n", "2", "--", "extract", "--model", "spectral:mel"]) == 2
    assert "--shard" in capsys.readouterr().err


def test_rank_outputs_go_to_scratch():
    assert _with_out(["encode", "--out", "res", "--x"], "/s") == ["encode", "--out", "/s", "--x"]
    assert _with_out(["encode", "--out=res"], "/s") == ["encode", "--out=/s"]
    assert _with_out(["demo"], "/s") == ["demo", "--out", "/s"]
    with pytest.raises(DistributedError):
        from alignjax.app.launch import launch
        launch(1, [])
