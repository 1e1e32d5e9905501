"""The documentation builds offline with warnings as errors (gallery not executed here).

Built from a copy of ``docs/`` and ``examples/`` so no generated file lands in the tree.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("numpydoc")
pytest.importorskip("sphinx_gallery")
pytest.importorskip("pydata_sphinx_theme")
pytest.importorskip("sphinx_copybutton")

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("_build", "generated", "auto_examples", "gen_modules", "sg_execution_times.rst")


def test_docs_build_without_warnings(tmp_path):
    for name in ("docs", "examples"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns(*GENERATED))
    out = tmp_path / "html"
    run = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
                          "html", "-D", "plot_gallery=0", str(tmp_path / "docs"), str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    for page in ("index.html", "api.html", "guide/cli.html",
                 "generated/alignjax.frame_rsa_permutation_test.html"):
        assert (out / page).is_file(), page
    api = (out / "api.html").read_text()
    import alignjax

    missing = [n for n in alignjax.__all__ if f"alignjax.{n}" not in api]
    assert not missing, f"API reference lacks {missing[:5]}"
    cli = (out / "guide" / "cli.html").read_text()
    assert "alignjax encode" in cli and "--n-perm" in cli
