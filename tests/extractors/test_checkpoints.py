"""--checkpoints: a training run's checkpoints, each into its own store with its step."""

import json

import numpy as np
import pytest

from alignjax import InvalidOptionError
from alignjax.app.cli import main
from alignjax.io import FeatureStore
from extractors.checkpoints import extract_checkpoints, list_checkpoints
from extractors.tiny import build_random_model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    for k, step in enumerate((1000, 200, 30)):  # glob order differs from step order
        path = build_random_model("wav2vec2", tmp_path_factory.mktemp(f"b{k}"), seed=k)
        path.rename(root / f"checkpoint-{step}")
    (root / "checkpoint-1000" / "trainer_state.json").write_text(json.dumps({"global_step": 1000}))
    (root / "runs").mkdir()  # not a checkpoint: no config.json
    return root


def test_checkpoint_series_yields_one_store_per_step(run_dir, synth_set, tmp_path, capsys):
    assert [s for _, _, s in list_checkpoints(run_dir, "checkpoint-*")] == [30, 200, 1000]
    out = tmp_path / "series"
    assert main(["extract", "--model", f"hf:{run_dir}", "--checkpoints", "checkpoint-*",
                 "--stimuli", str(synth_set), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "(step 30)" in printed and "(step 1000)" in printed
    stores = {p.name: FeatureStore(p) for p in sorted(out.iterdir())}
    assert sorted(stores) == ["checkpoint-1000", "checkpoint-200", "checkpoint-30"]
    steps = {k: s.training_step for k, s in stores.items()}
    assert steps == {"checkpoint-1000": 1000, "checkpoint-200": 200, "checkpoint-30": 30}
    assert stores["checkpoint-1000"].settings["checkpoint"]["step_from"] == "trainer_state.json"
    assert stores["checkpoint-30"].settings["checkpoint"]["step_from"] == "directory name"
    a, b = (stores[k].load("hidden_states.2") for k in ("checkpoint-30", "checkpoint-200"))
    assert a.shape == b.shape == (16, 32) and not np.allclose(a, b)
    # rerun: every store is complete already, nothing is recomputed
    again = extract_checkpoints(f"hf:{run_dir}", "checkpoint-*", synth_set, out, progress=False)
    assert [s.training_step for s in again] == [30, 200, 1000]


def test_checkpoint_glob_errors(run_dir, synth_set, tmp_path):
    with pytest.raises(InvalidOptionError, match="matches no checkpoint"):
        extract_checkpoints(f"hf:{run_dir}", "ckpt-*", synth_set, tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()
    with pytest.raises(InvalidOptionError, match="hf:DIR"):
        extract_checkpoints("spectral:mel", "checkpoint-*", synth_set, tmp_path / "y")
