"""Shared test configuration.

Four CPU devices are forced before JAX is imported so multi-device (sharding) tests run
on any machine; single-device code is unaffected (it uses device 0).
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# in-process CLI calls would turn JAX's persistent compilation cache on for the whole test
# process; tests/cli/test_compilation_cache.py checks it in subprocesses
os.environ.setdefault("ALIGNJAX_COMPILATION_CACHE", "0")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
KRIEGESKORTE = REPO.parent / "shared" / "data" / "kriegeskorte92"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def pytest_collection_modifyitems(config, items):
    import jax

    has_gpu = any(d.platform == "gpu" for d in jax.devices()) if _safe_devices() else False
    skip_gpu = pytest.mark.skip(reason="needs a GPU; none is present")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)


def _safe_devices():
    try:
        import jax

        return jax.devices()
    except Exception:  # pragma: no cover
        return []
