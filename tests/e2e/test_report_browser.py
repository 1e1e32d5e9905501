"""The HTML report loads in headless Chromium with no console errors, every figure sized."""

import json
import shutil

import numpy as np
import pytest

from alignjax.app.provenance import output_hashes
from alignjax.app.report.html import build_report
from alignjax.app.studies.rsa import run_rsa
from alignjax.store import StoreWriter

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _run_dir(tmp_path, rng):
    ids = [f"s{i}" for i in range(16)]
    w = StoreWriter(tmp_path / "features" / "m", spec="test:m", stimulus_ids=ids)
    X = rng.normal(size=(16, 10))
    for i in range(16):
        w.write(i, {"l1": X[i], "l2": X[i] + rng.normal(size=10)})
    w.finish()
    np.savez(tmp_path / "brain.npz", stimulus_ids=np.array(ids), a=X @ rng.normal(size=(10, 8)),
             b=X @ rng.normal(size=(10, 8)))
    step = tmp_path / "rsa-fmri" / "m"
    run_rsa(tmp_path / "features" / "m", tmp_path / "brain.npz", step, n_perm=20, n_boot=10,
            progress=False)
    # the report embeds only the files a step's record lists among its outputs
    record = {"kind": "rsa", "finished": True, "outputs": output_hashes(step)}
    (step / "step.json").write_text(json.dumps(record))
    return tmp_path


def test_report_is_self_contained(tmp_path, rng):
    path = build_report(_run_dir(tmp_path, rng), title="t")
    text = path.read_text()
    assert "data:image/png;base64," in text and "<img" in text
    assert "src=\"http" not in text and "src=\"/" not in text


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_report_in_headless_chromium(tmp_path, rng):
    sync_api = pytest.importorskip("playwright.sync_api")
    path = build_report(_run_dir(tmp_path, rng), title="browser test")
    errors = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        sizes = page.evaluate(
            "Array.from(document.images).map(i => [i.naturalWidth, i.getBoundingClientRect().width,"
            " i.getBoundingClientRect().height, i.complete])")
        browser.close()
    assert errors == []
    assert len(sizes) >= 2
    for nat, w, h, done in sizes:
        assert done and nat > 0 and w > 0 and h > 0
