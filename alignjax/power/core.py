"""The simulation loop shared by every design: grid, seeds, memory check, Monte-Carlo error."""

from __future__ import annotations

import itertools
import os
import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from alignjax.errors import InvalidOptionError, check_positive_int

from .registry import PowerDesign, get_design

__all__ = ["power", "expand_grid", "available_memory", "mc_standard_error"]

#: Fraction of the available memory one simulated analysis may use.
MEMORY_FRACTION = 0.5


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable`` of /proc/meminfo, else physical)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _grid_values(design: PowerDesign, name: str, values) -> list:
    vals = list(np.atleast_1d(np.asarray(values, dtype=object)))
    if not vals:
        raise InvalidOptionError(f"grid parameter {name!r} of the {design.name} design has no "
                                 "values; give at least one")
    out = []
    for v in vals:
        if name in design.integer_params:
            if isinstance(v, (bool, np.bool_)) or not float(v).is_integer():
                raise InvalidOptionError(f"grid parameter {name!r} must hold integers, got {v!r}")
            v = int(v)
        else:
            v = float(v)
            if not np.isfinite(v):
                raise InvalidOptionError(f"grid parameter {name!r} must be finite, got {v!r}")
        out.append(v)
    if len(set(out)) != len(out):
        raise InvalidOptionError(f"grid parameter {name!r} repeats a value: {out}")
    return out


def expand_grid(design: PowerDesign, grid: Mapping[str, Sequence],
                fixed: Mapping[str, Any] | None = None) -> tuple[list[str], list[dict]]:
    """Grid columns and one full parameter dict per grid point (the product of the values).

    Parameters the grid leaves out take their value in ``fixed``, else the design's default.
    """
    fixed = dict(fixed or {})
    both = sorted(set(fixed) & set(grid))
    if both:
        raise InvalidOptionError(f"{both} given both in the grid and as a fixed option; give "
                                 "each parameter once")
    if not isinstance(grid, Mapping) or not grid:
        raise InvalidOptionError(f"grid must be a non-empty mapping of parameter -> values; the "
                                 f"{design.name} design varies {list(design.grid_params)}")
    unknown = sorted(set(grid) - set(design.grid_params))
    if unknown:
        raise InvalidOptionError(f"the {design.name} design has no grid parameter {unknown}; "
                                 f"it varies {list(design.grid_params)}")
    columns = list(grid)
    values = [_grid_values(design, k, grid[k]) for k in columns]
    points = []
    for combo in itertools.product(*values):
        point = dict(design.grid_params)
        point.update({k: _grid_values(design, k, [v])[0] for k, v in fixed.items()})
        point.update(zip(columns, combo))
        points.append(point)
    return columns, points


def _options(design: PowerDesign, given: Mapping[str, Any]) -> dict:
    unknown = sorted(set(given) - set(design.options))
    if unknown:
        raise InvalidOptionError(f"the {design.name} design has no option {unknown}; its options "
                                 f"are {sorted(design.options)}")
    opts = dict(design.options)
    opts.update(given)
    return opts


def _check_memory(design: PowerDesign, points: list[dict], options: dict,
                  limit: int | None) -> None:
    need = [design.memory_bytes(p, options) for p in points]
    worst = int(np.argmax(need))
    have = available_memory() if limit is None else int(limit)
    if need[worst] > MEMORY_FRACTION * have:
        sizes = {k: v for k, v in points[worst].items() if k in design.integer_params}
        raise InvalidOptionError(
            f"the largest grid point of the {design.name} design ({sizes}) needs about "
            f"{need[worst] / 2**30:.1f} GiB per simulated analysis, more than half of the "
            f"{have / 2**30:.1f} GiB available; shrink the grid's largest sizes")


def mc_standard_error(detections: np.ndarray) -> float:
    """Monte-Carlo standard error of the mean detection: binomial for 0/1 outcomes, the
    standard error of the mean for fractions of targets."""
    d = np.asarray(detections, float)
    p = d.mean()
    if np.isin(d, (0.0, 1.0)).all():
        return float(np.sqrt(p * (1 - p) / d.size))
    return float(d.std(ddof=1) / np.sqrt(d.size))


def power(design: str, grid: Mapping[str, Sequence], *, effect, n_sim: int, seed: int,
          progress: bool = True, max_memory: int | None = None, **design_options):
    """Simulation-based power of a design over a grid of sample sizes.

    For each grid point (the product of the grid's values) ``n_sim`` data sets are drawn
    from the design's generative model with the given ``effect``, the design's real
    analysis (the same function, options and correction the study command runs) is run on
    each, and the detection rate is reported with its Monte-Carlo standard error.

    Parameters
    ----------
    design : {"correlation", "rsa", "encoding", "probe", "temporal_rsa"}
        See :mod:`alignjax.power` for each design's generative model, effect and test.
    grid : mapping str -> sequence
        Values of the design's grid parameters (e.g. ``{"n_stimuli": [20, 40, 80]}``).
    effect : float
        The planted effect, in the unit of the design (a correlation, R², an accuracy).
    n_sim : int
        Simulated data sets per grid point (fewer than 10 warns that the Monte-Carlo
        error is too wide to read).
    seed : int
        Data set ``k`` of grid point ``g`` is drawn from ``SeedSequence(seed,
        spawn_key=(g, k))``: results do not depend on the order the grid is run in.
    progress : bool
        A tqdm progress bar over all simulated analyses.
    max_memory : int, optional
        Memory (bytes) to check the largest grid point against (default: available now).
    **design_options
        The design's fixed options (``alpha``, ``n_perm``, ``method``, ...), and fixed
        values of grid parameters the grid does not vary (e.g. ``n_voxels=10``).

    Returns
    -------
    pandas.DataFrame
        One row per grid point: one column per grid parameter, ``power`` and ``mc_se``.

    Examples
    --------
    >>> import alignjax
    >>> df = alignjax.power("correlation", {"n_stimuli": [20, 40]}, effect=0.3, n_sim=200,
    ...                     seed=0, progress=False)
    >>> list(df.columns)
    ['n_stimuli', 'power', 'mc_se']
    """
    import pandas as pd
    from tqdm.auto import tqdm

    d = get_design(design)
    n_sim = check_positive_int(n_sim, "n_sim")
    if n_sim < 10:
        warnings.warn(f"n_sim={n_sim}: with fewer than 10 simulated data sets per grid point "
                      f"the Monte-Carlo error of each power estimate (up to "
                      f"{0.5 / np.sqrt(n_sim):.2f}) is too wide to read; use n_sim >= 100",
                      stacklevel=2)
    seed = check_positive_int(seed, "seed", minimum=0)
    fixed = {k: v for k, v in design_options.items() if k in d.grid_params}
    columns, points = expand_grid(d, grid, fixed)
    options = _options(d, {k: v for k, v in design_options.items() if k not in fixed})
    effect = float(effect)
    for p in points:
        d.check(p, effect, options)
    _check_memory(d, points, options, max_memory)
    rows = []
    with tqdm(total=n_sim * len(points), desc=f"power ({design})", unit="sim",
              disable=not progress) as bar:
        for g, point in enumerate(points):
            seeds = [np.random.SeedSequence(seed, spawn_key=(g, k)) for k in range(n_sim)]
            det = np.asarray(d.simulate(point, effect, options, seeds, bar), float)
            rows.append({**{c: point[c] for c in columns}, "power": float(det.mean()),
                         "mc_se": mc_standard_error(det)})
    return pd.DataFrame(rows, columns=columns + ["power", "mc_se"])
