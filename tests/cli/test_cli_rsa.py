import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from alignjax import StoreWriter
from alignjax.app.cli import main


def _make_inputs(tmp_path, rng, n=24):
    ids = [f"stim{i:02d}" for i in range(n)]
    latent = 3 * rng.normal(size=(4, 6))[np.arange(n) % 4] + rng.normal(size=(n, 6))
    proj = rng.normal(size=(6, 10))
    w = StoreWriter(tmp_path / "store", spec="test:planted", stimulus_ids=ids)
    for i in range(n):
        w.write(i, {"noise": rng.normal(size=8), "planted": latent[i] @ proj})
    w.finish()
    order = rng.permutation(n)  # brain file lists stimuli in another order
    subj = {f"sub{s}": (latent @ rng.normal(size=(6, 30)) + 0.3 * rng.normal(size=(n, 30)))[order]
            for s in range(3)}
    np.savez(tmp_path / "brain.npz", stimulus_ids=np.array(ids)[order], **subj)
    return ids


def test_rsa_cli_writes_tables_and_figure(tmp_path, rng):
    _make_inputs(tmp_path, rng)
    out = tmp_path / "out"
    rc = main(["rsa", "--features", str(tmp_path / "store"), "--brain", str(tmp_path / "brain.npz"),
               "--out", str(out), "--n-perm", "200"])
    assert rc == 0
    rows = list(csv.DictReader(open(out / "rsa.csv")))
    assert {r["subject"] for r in rows} == {"sub0", "sub1", "sub2", "group", "mean_of_subjects"}
    # the noise ceiling is reported only beside the statistic it bounds
    for r in rows:
        assert (r["noise_ceiling_lower"] != "") == (r["subject"] == "mean_of_subjects")
    planted = [r for r in rows if r["layer"] == "planted" and r["subject"] == "group"][0]
    noise = [r for r in rows if r["layer"] == "noise" and r["subject"] == "group"][0]
    assert float(planted["r"]) > float(noise["r"])
    assert float(planted["p_fwe"]) < 0.05
    summary = json.load(open(out / "rsa.json"))
    assert summary["best_layer_group"] == "planted"
    assert summary["noise_ceiling"]["upper"] >= summary["noise_ceiling"]["lower"]
    assert summary["noise_ceiling_bounds"] == "mean_subject_r"
    assert "fixed-effects" in summary["group_test"]
    assert (out / "rsa.png").stat().st_size > 10_000


def test_rsa_cli_reports_mismatched_ids(tmp_path, rng, capsys):
    _make_inputs(tmp_path, rng)
    np.savez(tmp_path / "bad.npz", stimulus_ids=np.array([f"other{i}" for i in range(24)]),
             sub0=rng.normal(size=(24, 5)))
    rc = main(["rsa", "--features", str(tmp_path / "store"), "--brain", str(tmp_path / "bad.npz"),
               "--out", str(tmp_path / "o"), "--n-perm", "10"])
    assert rc == 2
    assert "missing" in capsys.readouterr().err


def test_rsa_cli_names_subject_and_stimulus_of_nan_brain_response(tmp_path, rng, capsys):
    ids = _make_inputs(tmp_path, rng)
    with np.load(tmp_path / "brain.npz") as z:
        data = {k: z[k] for k in z.files}
    data["sub1"][5, 3] = np.nan
    np.savez(tmp_path / "brain.npz", **data)
    rc = main(["rsa", "--features", str(tmp_path / "store"), "--brain", str(tmp_path / "brain.npz"),
               "--out", str(tmp_path / "o"), "--n-perm", "10"])
    assert rc == 2
    err = capsys.readouterr().err
    bad_id = str(data["stimulus_ids"][5])
    assert bad_id in ids
    assert "brain responses of subject 'sub1'" in err and f"stimulus id '{bad_id}'" in err
    assert "features" not in err.split("error:")[1].split("(")[0]


def test_rsa_cli_names_layer_and_stimulus_of_nan_features(tmp_path, rng, capsys):
    ids = _make_inputs(tmp_path, rng)
    w = StoreWriter(tmp_path / "nan", spec="test:nan", stimulus_ids=ids)
    for i in range(len(ids)):
        w.write(i, {"ok": rng.normal(size=4), "broken": np.full(4, np.nan if i == 3 else 1.0) + i})
    w.finish()
    rc = main(["rsa", "--features", str(tmp_path / "nan"), "--brain", str(tmp_path / "brain.npz"),
               "--out", str(tmp_path / "o"), "--n-perm", "10"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "layer 'broken'" in err and f"stimulus id '{ids[3]}'" in err


def test_info_runs_as_a_console_script():
    out = subprocess.run([sys.executable, "-m", "alignjax.app.cli", "info"], capture_output=True,
                         text=True, check=True).stdout
    assert "jax backend" in out and "x64 enabled" in out


def test_rsa_cli_bootstrap_and_control(tmp_path, rng):
    _make_inputs(tmp_path, rng)
    out = tmp_path / "out"
    rc = main(["rsa", "--features", str(tmp_path / "store"), "--brain", str(tmp_path / "brain.npz"),
               "--out", str(out), "--n-perm", "50", "--n-boot", "30",
               "--control", f"{tmp_path / 'store'}:noise"])
    assert rc == 0
    rows = [r for r in csv.DictReader(open(out / "rsa.csv")) if r["subject"] == "group"]
    for r in rows:
        assert float(r["ci_low"]) <= float(r["r"]) <= float(r["ci_high"])
    noise = [r for r in rows if r["layer"] == "noise"][0]
    assert np.isnan(float(noise["r_partial"]))  # a layer regressed on itself leaves nothing
    planted = [r for r in rows if r["layer"] == "planted"][0]
    assert np.isfinite(float(planted["r_partial"]))
