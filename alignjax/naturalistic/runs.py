"""Run-wise cross-validation folds for time series (whole runs are held out together).

Samples of one run are autocorrelated, so a fold that tests some samples of a run and
trains on their neighbours leaks; :func:`run_folds` holds out whole runs only.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidFoldsError
from ..folds import validate_folds
from .delays import run_bounds

__all__ = ["run_folds"]


def run_folds(runs, n_folds: int | None = None) -> np.ndarray:
    """Test masks that hold out whole runs: leave-one-run-out, or K folds of whole runs.

    Parameters
    ----------
    runs : array (n_samples,)
        Run id of each sample; each run one contiguous block of samples (as for
        :func:`alignjax.delay_features`).
    n_folds : int, optional
        ``None``: one fold per run (leave-one-run-out). Else ``n_folds`` folds of
        consecutive runs (in their order of appearance), as equal in number of runs as
        possible (``np.array_split`` of the runs).

    Returns
    -------
    ndarray (n_folds, n_samples) of bool
        Test masks, accepted by ``folds=`` of :func:`alignjax.banded_ridge_cv`,
        :func:`alignjax.ridge_cv` and :func:`alignjax.resolve_folds`.

    Raises
    ------
    InvalidFoldsError
        Fewer than two runs, or ``n_folds`` not in ``2..n_runs``.
    """
    ids = np.asarray(runs)
    bounds = run_bounds(ids, ids.shape[0] if ids.ndim == 1 else -1)
    n_runs = len(bounds.ids)
    if n_runs < 2:
        raise InvalidFoldsError(
            f"run-wise cross-validation needs at least two runs, got {n_runs} "
            f"(run ids {bounds.ids.tolist()}); give each sample its run id")
    if n_folds is None:
        n_folds = n_runs
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) \
            or not 2 <= n_folds <= n_runs:
        raise InvalidFoldsError(f"n_folds must be an int in 2..{n_runs} (the number of runs), "
                                f"got {n_folds!r}")
    masks = np.zeros((int(n_folds), ids.shape[0]), bool)
    for k, group in enumerate(np.array_split(np.arange(n_runs), int(n_folds))):
        for r in group:
            masks[k, bounds.start[r]:bounds.stop[r]] = True
    return validate_folds(masks, ids.shape[0])
