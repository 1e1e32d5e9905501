"""`alignjax synth-spatial`, `alignjax extract --channels`, `alignjax spatial` and the
pipeline kind ``spatial`` end to end on a tiny rendered scene set."""

import csv
import json
import shutil

import pytest

pytest.importorskip("pyroomacoustics")
pytest.importorskip("slab")
pytest.importorskip("torch")
pytest.importorskip("librosa")

from alignjax.app.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("spatial")
    assert main(["synth-spatial", "--out", str(root / "sc"), "--n", "16", "--format",
                 "binaural", "--duration", "0.25", "--n-anchors", "1", "--rt60s", "0.3,0.6",
                 "--volumes", "small", "--quiet"]) == 0
    for ch in ("mix", "each"):
        assert main(["extract", "--model", "spectral:mel", "--stimuli",
                     str(root / "sc" / "labels.csv"), "--out", str(root / ch), "--channels",
                     ch, "--quiet"]) == 0
    return root


def test_synth_spatial_writes_labels_and_pairs(scenes):
    import soundfile as sf

    from extractors import spatial as sp

    sc = scenes / "sc"
    rows = list(csv.DictReader(open(sc / "labels.csv")))
    assert set(sp.LABEL_COLUMNS) <= set(rows[0])
    main_rows = [r for r in rows if r["set"] == "main"]
    assert len(main_rows) == 16
    audio, sr = sf.read(sc / rows[0]["path"])
    assert sr == 16000 and audio.shape == (4000, 2)
    for r in main_rows:  # measured, not the target
        assert float(r["rt60"]) != float(r["rt60_target"])
        assert r["format"] == "binaural"
    pairs = list(csv.DictReader(open(sc / "pairs.csv")))
    assert {p["kind"] for p in pairs} == {"factor", "noise", "random"}
    sweep = {r["id"]: r for r in rows if r["set"] == "sweep"}
    az = [p for p in pairs if p["factor"] == "azimuth"]
    ref = sweep[az[0]["a"]]
    for p in az:  # only azimuth changes; same dry source and noise seed
        b = sweep[p["b"]]
        for col in ("elevation", "distance", "source", "noise_seed", "room"):
            assert b[col] == ref[col]


def test_extract_each_channel_stores_one_layer_per_channel(scenes):
    m = json.loads((scenes / "each" / "manifest.json").read_text())
    assert set(m["layers"]) == {"logmel@ch0", "logmel@ch1", "logmel@chans"}
    assert m["settings"]["channels"] == "each"
    assert json.loads((scenes / "mix" / "manifest.json").read_text())["settings"][
        "channels"] == "mix"


def test_cli_spatial_writes_tables_and_figures(scenes, capsys):
    out = scenes / "res"
    assert main(["spatial", "--features", str(scenes / "each"),
                 "--labels", str(scenes / "sc" / "labels.csv"), "--out", str(out),
                 "--folds", "4", "--n-boot", "20", "--no-progress",
                 "--factors", "azimuth,elevation,distance,class,rt60"]) == 0
    rows = list(csv.DictReader(open(out / "spatial.csv")))
    assert {r["model"] for r in rows} == {"each"}
    assert {r["factor"] for r in rows} == {"azimuth", "elevation", "distance", "class", "rt60"}
    assert "lateral_abs_error_deg" in {r["metric"] for r in rows}
    for f in ("spatial.json", "spatial_each.png", "spatial_summary.png",
              "sensitivity.csv", "sensitivity_each.png"):
        assert (out / f).is_file(), f
    sens = list(csv.DictReader(open(out / "sensitivity.csv")))
    assert {r["factor"] for r in sens} >= {"azimuth", "distance", "rt60"}
    assert "best-layer skill" in capsys.readouterr().out


def test_cli_spatial_bad_input(scenes, tmp_path, capsys):
    assert main(["spatial", "--features", str(scenes / "mix"), "--labels",
                 str(scenes / "sc" / "labels.csv"), "--out", str(tmp_path / "x"),
                 "--factors", "loudness"]) == 2
    assert "unknown factor" in capsys.readouterr().err
    bad = tmp_path / "labels.csv"
    text = (scenes / "sc" / "labels.csv").read_text().replace("\ns0000", "\nzz0000")
    bad.write_text(text)
    assert main(["spatial", "--features", str(scenes / "mix"), "--labels", str(bad),
                 "--out", str(tmp_path / "y")]) == 2


def test_pipeline_kind_spatial_runs_skips_and_reports(scenes, tmp_path):
    from alignjax.app.pipeline import run_pipeline
    from alignjax.app.report.html import build_report

    study = tmp_path / "study"
    shutil.copytree(scenes / "sc", study / "sc")
    cfg = study / "pipeline.toml"
    cfg.write_text('[study]\nname = "s"\nout = "out"\n[stimuli]\npath = "sc/labels.csv"\n'
                   '[[models]]\nname = "mel"\nspec = "spectral:mel"\n'
                   '[[analyses]]\nkind = "spatial"\nfolds = 4\nn_boot = 10\n'
                   'factors = ["azimuth", "rt60"]\n')
    quiet = dict(progress=False, log=lambda s: None)
    first = {r["step"]: r["status"] for r in run_pipeline(cfg, **quiet)}
    assert first == {"extract/mel": "ran", "spatial/mel": "ran"}
    again = {r["step"]: r["status"] for r in run_pipeline(cfg, **quiet)}
    assert set(again.values()) == {"skipped"}
    pairs = study / "sc" / "pairs.csv"
    pairs.write_text(pairs.read_text().replace(",random\n", ",random\n", 1) + "")
    lines = pairs.read_text().splitlines()
    pairs.write_text("\n".join(lines[:-1]) + "\n")        # one random pair fewer
    third = {r["step"]: r["status"] for r in run_pipeline(cfg, **quiet)}
    assert third == {"extract/mel": "skipped", "spatial/mel": "ran"}
    html = build_report(study / "out").read_text()
    assert "Spatial probes and sensitivity" in html and "source vs room" in html
