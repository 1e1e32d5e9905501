"""Training-checkpoint series: one feature store per checkpoint, with its training step.

``alignjax extract --model hf:RUN --checkpoints 'checkpoint-*' --out OUT`` extracts every
checkpoint directory ``RUN/checkpoint-*`` (those holding a ``config.json``) into
``OUT/<checkpoint name>``, in the order of their training steps. The step of a checkpoint
is ``global_step`` of its ``trainer_state.json`` (what the transformers ``Trainer``
writes), else the last number in its directory name (``checkpoint-500``, ``step_1000``);
it is recorded in each store's manifest (``settings.checkpoint``), so scores can be
plotted against training step (:attr:`alignjax.io.FeatureStore.training_step`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from alignjax.errors import InvalidOptionError

__all__ = ["list_checkpoints", "checkpoint_info", "extract_checkpoints"]


def _step(path: Path) -> int | None:
    state = path / "trainer_state.json"
    if state.is_file():
        try:
            return int(json.loads(state.read_text())["global_step"])
        except (ValueError, KeyError, TypeError):
            pass
    numbers = re.findall(r"\d+", path.name)
    return int(numbers[-1]) if numbers else None


def checkpoint_info(spec: str) -> dict | None:
    """``{"name", "step", "step_from"}`` of an ``hf:DIR`` checkpoint; None when it is none.

    A directory is a checkpoint when it holds a ``trainer_state.json`` or its name is
    ``checkpoint-<N>`` / ``step<N>`` / ``step_<N>``.
    """
    prefix, _, rest = spec.partition(":")
    path = Path(rest)
    if prefix != "hf" or not path.is_dir():
        return None
    has_state = (path / "trainer_state.json").is_file()
    if not has_state and not re.fullmatch(r"(checkpoint|step)[-_]?\d+", path.name):
        return None
    step = _step(path)
    return {"name": path.name, "step": step,
            "step_from": "trainer_state.json" if has_state else "directory name"}


def list_checkpoints(root, pattern: str) -> list[tuple[str, Path, int]]:
    """Checkpoint directories ``root/pattern`` with a ``config.json``, sorted by step.

    Returns
    -------
    list of (name, path, step)
    """
    root = Path(root)
    if not root.is_dir():
        raise InvalidOptionError(f"--checkpoints needs --model hf:DIR with DIR a local "
                                 f"directory; {root} is not one")
    found = [p for p in sorted(root.glob(pattern)) if p.is_dir() and (p / "config.json").is_file()]
    if not found:
        raise InvalidOptionError(
            f"--checkpoints {pattern!r} matches no checkpoint directory (with a config.json) "
            f"in {root}; found: {sorted(p.name for p in root.iterdir())[:10]}")
    out = []
    for p in found:
        step = _step(p)
        if step is None:
            raise InvalidOptionError(
                f"cannot tell the training step of checkpoint {p}: it has no "
                "trainer_state.json and no number in its name")
        out.append((p.name, p, step))
    steps = [s for _, _, s in out]
    if len(set(steps)) != len(steps):
        raise InvalidOptionError(f"--checkpoints {pattern!r}: several checkpoints share a "
                                 f"training step ({steps})")
    return sorted(out, key=lambda t: t[2])


def extract_checkpoints(spec: str, pattern: str, stimuli, out, **kwargs) -> list:
    """Extract every checkpoint of a training run into its own store under ``out``.

    Parameters
    ----------
    spec : str
        ``hf:DIR``, the training run's output directory.
    pattern : str
        Glob of checkpoint directories inside ``DIR`` (e.g. ``'checkpoint-*'``).
    stimuli, out
        As :func:`extractors.run.extract`; store ``k`` is ``out/<checkpoint name>``.
    **kwargs
        Passed to :func:`extractors.run.extract`.

    Returns
    -------
    list of alignjax.io.FeatureStore
        In order of training step.
    """
    from .run import extract

    prefix, _, root = spec.partition(":")
    if prefix != "hf":
        raise InvalidOptionError(f"--checkpoints applies to hf:DIR specs, not {spec!r}")
    series = list_checkpoints(root, pattern)
    return [extract(f"hf:{path}", stimuli, Path(out) / name, **kwargs)
            for name, path, _ in series]
