"""Test helpers that differ across the supported jax versions (floor: pyproject.toml)."""

import jax


def enable_x64(on: bool = True):
    """``jax.enable_x64`` (jax >= 0.8), or ``jax.experimental.enable_x64`` before it."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(on)
    from jax.experimental import enable_x64 as legacy, disable_x64

    return legacy() if on else disable_x64()
