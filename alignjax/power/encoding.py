"""The ``"encoding"`` design: nested cross-validated voxel-wise ridge, ``alignjax encode --n-perm``.

Generative model: features ``X`` (n_stimuli, n_features) standard normal; each voxel
``y_v = X w_v + e_v`` with ``w_v`` a random direction scaled so the signal has variance
``effect`` (the population R² of the voxel) and noise ``e_v ~ N(0, 1 - effect)``.

Analysis: :func:`alignjax.encoding_permutation_test` (the one ``alignjax encode --n-perm``
reports p-values with): nested CV over ``n_folds`` outer and ``inner_folds`` inner folds,
alpha chosen inside, the score the r of each outer test fold averaged over folds, the
null refitted on permuted responses, max-T over the voxels. ``target="voxel"``: power is
the expected fraction of voxels with ``p_fwe < alpha``; ``target="any"``: the probability
that at least one voxel has.
"""

from __future__ import annotations

import numpy as np

from alignjax.errors import InvalidOptionError, check_choice, check_positive_int

from .checks import analysis_seed, check_alpha, check_at_least, check_unit_interval
from .registry import PowerDesign, register

__all__ = ["DESIGN"]


def _check(point, effect, options):
    check_at_least(point, "n_features", 1)
    check_at_least(point, "n_voxels", 1)
    folds = check_at_least(point, "n_folds", 2)
    n = check_at_least(point, "n_stimuli", 2 * folds)
    if n // folds < options["inner_folds"]:
        raise InvalidOptionError(f"n_stimuli={n} with n_folds={folds} leaves too few stimuli for "
                                 f"inner_folds={options['inner_folds']}; use more stimuli")
    check_unit_interval(effect, "effect (the R² per voxel)")
    check_alpha(options["alpha"])
    check_positive_int(options["n_perm"], "n_perm")
    check_positive_int(options["inner_folds"], "inner_folds", minimum=2)
    check_choice(options["target"], "target", ("voxel", "any"))
    if np.any(np.asarray(options["alphas"], float) <= 0):
        raise InvalidOptionError("alphas (ridge penalties) must be positive")


def _memory(point, options):
    n, p, v = point["n_stimuli"], point["n_features"], point["n_voxels"]
    targets = v * min(options["n_perm"] + 1, max(1, 20_000 // v) + 1)
    return 8 * (n * p + 3 * n * targets + p * p + len(options["alphas"]) * targets * 4)


def _simulate(point, effect, options, seeds, bar):
    from alignjax.encoding import encoding_permutation_test

    n, p, v = point["n_stimuli"], point["n_features"], point["n_voxels"]
    out = np.zeros(len(seeds))
    for k, ss in enumerate(seeds):
        rng = np.random.default_rng(ss)
        X = rng.standard_normal((n, p)).astype(np.float32)
        W = rng.standard_normal((p, v))
        W *= np.sqrt(effect) / np.linalg.norm(W, axis=0)
        Y = (X @ W + np.sqrt(1 - effect) * rng.standard_normal((n, v))).astype(np.float32)
        res = encoding_permutation_test(
            [X], Y, alphas=np.asarray(options["alphas"], float), folds=point["n_folds"],
            n_perm=options["n_perm"], seed=analysis_seed(rng), score="pearson",
            encode_options={"inner_folds": options["inner_folds"]})
        hit = np.asarray(res.p_fwe) < options["alpha"]
        out[k] = hit.mean() if options["target"] == "voxel" else float(hit.any())
        bar.update(1)
    return out


DESIGN = register(PowerDesign(
    name="encoding",
    grid_params={"n_stimuli": 100, "n_features": 20, "n_voxels": 10, "n_folds": 5},
    integer_params=("n_stimuli", "n_features", "n_voxels", "n_folds"),
    options={"alpha": 0.05, "n_perm": 200, "inner_folds": 3,
             "alphas": tuple(np.logspace(-1, 4, 6)), "target": "voxel"},
    check=_check, memory_bytes=_memory, simulate=_simulate))
