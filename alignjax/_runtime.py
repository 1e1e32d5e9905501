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
"""

from __future__ import annotations

import contextlib
import functools
import os

import jax

__all__ = ["float32_matmuls", "serial_lapack", "SERIAL_LAPACK_MAX", "usable_cores"]

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
