"""``alignjax_commit`` / ``alignjax_source`` name the code that ran: from a fresh ``git clone``
the commit (and a dirty flag), from a copy that is no checkout the installed version only."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# run in the clone's (or the copy's) package: sys.path[0] is that tree, nothing else of ours
_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from alignjax.app import provenance as p
out = {"file": p.__file__, "steps": []}
for action in sys.argv[2:]:
    if action != "-":
        path, text = action.split("=", 1)
        with open(path, "a") as fh:
            fh.write(text)
    p.alignjax_source.cache_clear()
    out["steps"].append([p.alignjax_source(), p.alignjax_commit()])
print(json.dumps(out))
"""


def _probe(tree: Path, *actions: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["JAX_PLATFORMS"] = "cpu"
    run = subprocess.run([sys.executable, "-c", _PROBE, str(tree), *actions],
                         capture_output=True, text=True, timeout=120, env=env,
                         cwd=tree.parent)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(out["file"]).resolve().is_relative_to(tree.resolve()), out["file"]
    return out


def _git(*args) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout of alignjax")
    dst = tmp_path_factory.mktemp("prov") / "alignjax-clone"
    _git("clone", "--quiet", "--no-hardlinks", str(ROOT), str(dst))
    return dst


def test_fresh_clone_records_its_commit_and_dirty_state(clone):
    head = _git("-C", str(clone), "rev-parse", "HEAD")
    from alignjax import __version__

    steps = _probe(clone, "-", f"{clone / 'alignjax' / 'errors.py'}=\n# local edit\n")["steps"]
    (clean, clean_commit), (dirty, dirty_commit) = steps
    assert clean == {"commit": head, "dirty": False, "version": __version__}
    assert clean_commit == head
    assert dirty == {"commit": head, "dirty": True, "version": __version__}
    assert dirty_commit == head + "+dirty"
    _git("-C", str(clone), "checkout", "--quiet", "--", "alignjax/errors.py")
    # an untracked module in the package is a local change too
    steps = _probe(clone, f"{clone / 'extractors' / 'scratch_mod.py'}=x = 1\n")["steps"]
    assert steps[0][0]["dirty"] is True
    (clone / "extractors" / "scratch_mod.py").unlink()


def test_a_copy_that_is_no_checkout_records_the_version_only(clone, tmp_path):
    from alignjax import __version__

    # a plain copy (no repository above it) and a copy inside another repository's ignored
    # folder (an installed package in a venv inside a checkout) are not that checkout's code
    plain = tmp_path / "copy"
    nested = clone / "build" / "site"
    for dst in (plain, nested):
        shutil.copytree(clone / "alignjax", dst / "alignjax",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (src,) = _probe(dst, "-")["steps"]
        assert src == [{"commit": None, "dirty": None, "version": __version__}, None]
