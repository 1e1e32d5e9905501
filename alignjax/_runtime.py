"""How alignjax's kernels run on the backend: matmul precision and BLAS threads.

Precision
---------
On recent NVIDIA GPUs JAX computes float32 matmuls with TensorFloat-32 by default (10-bit
mantissas). On an H200 a 300 x 2,048 correlation RDM was then off by 2.8e-5 (8e-8 with
float32 products): errors of that size reorder near-tied dissimilarities, ranks' dot
products and null statistics. :func:`float32_matmuls` runs a public function with true
float32 matmuls unless the user has set ``jax_default_matmul_precision`` themselves (then
theirs is kept). It changes nothing on CPU.

BLAS threads
------------
On CPU, jaxlib runs ``eigh``, ``svd``, ``lu`` ... through SciPy's LAPACK, which is OpenBLAS.
After each call OpenBLAS's worker threads busy-wait for new work (about 0.1 s), on the very
cores XLA's own thread pool then needs for the matmuls that follow in the same
computation. With the small decompositions of a typical encoding study (a few hundred
stimuli) the spinning costs more than the threads gain: ``ridge_cv`` on 165 stimuli x 768
features x 10,000 targets ran 1.8x faster with OpenBLAS on one thread (0.114 s -> 0.063 s,
2-core machine).
Large decompositions do gain from the threads (eigh of a 2,048 kernel: 1.4x), so
:func:`serial_lapack` only limits them below :data:`SERIAL_LAPACK_MAX`.

Compilation cache
-----------------
Each process compiles its kernels anew: about 1.3 s of a 1.7 s first call of
``logistic_probe`` on 500 stimuli x 128 features x 13 layers, in every command of a
study. :func:`use_compilation_cache` keeps compiled programs on disk (JAX's persistent
compilation cache); the command line turns it on (``ALIGNJAX_COMPILATION_CACHE``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
from pathlib import Path

import jax

__all__ = ["float32_matmuls", "serial_lapack", "SERIAL_LAPACK_MAX", "usable_cores",
           "use_compilation_cache"]

#: Decompositions of at most this order (the smaller side of the matrix) run LAPACK on one
#: thread (eigh/svd of order 1,024: within 15% of two threads; 256: 1.2-1.8x faster).
SERIAL_LAPACK_MAX = 1024


def usable_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - not Linux


@functools.lru_cache(maxsize=1)
def blas_controller():
    """threadpoolctl's controller of the BLAS libraries jaxlib's CPU LAPACK uses (internal)."""
    # jaxlib's CPU LAPACK kernels come from scipy.linalg.cython_lapack: load it first so
    # the controller sees SciPy's OpenBLAS (and NumPy's).
    import scipy.linalg.cython_lapack  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _on_cpu(devices) -> bool:
    if devices is None:
        return jax.default_backend() == "cpu"
    return all(d.platform == "cpu" for d in devices)


@contextlib.contextmanager
def serial_lapack(order: int, devices=None):
    """Run the enclosed JAX work with single-threaded BLAS/LAPACK when it is CPU work whose
    decompositions are of order <= :data:`SERIAL_LAPACK_MAX`.

    The limit is process-wide while the block runs (restored after): results computed
    asynchronously inside the block must be waited for (``jax.block_until_ready``) before
    it ends, or their LAPACK calls run after the limit is lifted.
    """
    if order > SERIAL_LAPACK_MAX or not _on_cpu(devices):
        yield
        return
    with blas_controller().limit(limits=1, user_api="blas"):
        yield


def float32_matmuls(fn):
    """Decorator: run ``fn`` (and trace its jitted kernels) with float32 matmul precision,
    unless ``jax_default_matmul_precision`` is set (by the user: theirs is kept)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if jax.config.jax_default_matmul_precision is not None:
            return fn(*args, **kwargs)
        with jax.default_matmul_precision("float32"):
            return fn(*args, **kwargs)

    return wrapper


def _cpu_tag() -> str:
    """Machine architecture and a hash of the CPU's feature flags.

    XLA:CPU code is compiled for the host's instruction set; JAX refuses entries built for
    another CPU, so a cache folder shared by cluster nodes of several CPU types is split
    per type instead of being overwritten by each in turn.
    """
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = line.split(":", 1)[1].strip()
                    break
    except OSError:  # pragma: no cover - not Linux
        flags = platform.processor()
    return f"{platform.machine() or 'cpu'}-{hashlib.sha1(flags.encode()).hexdigest()[:12]}"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/alignjax/jax`` (``~/.cache/alignjax/jax``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "alignjax" / "jax"


def use_compilation_cache(path: str | os.PathLike | None = None, *,
                          min_compile_seconds: float = 0.5,
                          max_bytes: int = 2 * 1024 ** 3) -> Path | None:
    """Keep compiled kernels on disk, so later processes skip their compilation.

    Turns on JAX's persistent compilation cache in ``path / <machine>-<cpu hash>`` (default
    folder: :func:`default_cache_dir`): programs whose compilation took at least
    ``min_compile_seconds`` are stored, least recently used ones evicted beyond
    ``max_bytes``, with a file lock so concurrent processes (``alignjax launch``, job arrays)
    share it safely. Results are unchanged: an entry is only used for the same program,
    options, JAX version and CPU type. Call it before the first computation. A cache the
    user configured (``jax_compilation_cache_dir``) is kept as it is.

    Returns the folder in use, or None when it cannot be created (compiling then goes on
    without a cache).
    """
    current = jax.config.jax_compilation_cache_dir
    if current:
        return Path(current)
    folder = (Path(path) if path is not None else default_cache_dir()) / _cpu_tag()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
    jax.config.update("jax_compilation_cache_max_size", int(max_bytes))
    return folder
