"""The command line keeps compiled kernels on disk (JAX's persistent compilation cache)."""

import os
import subprocess
import sys

from tests.conftest import REPO

SCRIPT = """
import jax, jax.numpy as jnp
from alignjax.app.cli import _compilation_cache
_compilation_cache()
print(jax.config.jax_compilation_cache_dir)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
print(float(jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((4, 4))).sum()))
"""


def _run(setting, tmp_path):
    env = dict(os.environ, ALIGNJAX_COMPILATION_CACHE=setting, XDG_CACHE_HOME=str(tmp_path / "xdg"),
               PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    return out.stdout.split("\n")


def _entries(folder):
    return [p for p in folder.rglob("*-cache")] if folder.exists() else []


def test_cli_stores_compiled_kernels_in_the_given_folder(tmp_path):
    folder, value = _run(str(tmp_path / "cache"), tmp_path)[:2]
    assert folder.startswith(str(tmp_path / "cache"))
    assert _entries(tmp_path / "cache"), "no compiled program was stored"
    # a second process reads it back and computes the same
    assert _run(str(tmp_path / "cache"), tmp_path)[:2] == [folder, value]


def test_default_folder_is_the_user_cache_and_off_turns_it_off(tmp_path):
    folder = _run("", tmp_path)[0]
    assert folder.startswith(str(tmp_path / "xdg" / "alignjax" / "jax"))
    assert _run("off", tmp_path / "other")[0] == "None"
    assert not _entries(tmp_path / "other")


def test_a_cache_the_user_configured_is_kept(tmp_path):
    code = (f"import jax; jax.config.update('jax_compilation_cache_dir', {str(tmp_path)!r}); "
            "import alignjax; print(alignjax.use_compilation_cache(" + repr(str(tmp_path / "x"))
            + "))")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)),
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == str(tmp_path)
