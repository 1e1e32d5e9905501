"""The ``"probe"`` design: the nested logistic probe and permutation test of ``alignjax probe``.

Generative model: ``n_classes`` classes of ``n_per_class`` stimuli each; features
(n_features) standard normal around a class mean. Two classes: means ``±delta/2`` on one
axis; more: ``delta`` on one axis per class. ``delta`` is set so that the Bayes-optimal
classifier reaches accuracy ``effect`` (the target accuracy of a probe with unlimited
data; a probe trained on finitely many stimuli scores less). ``effect`` must exceed
chance ``1 / n_classes``.

Analysis: :func:`alignjax.probe_permutation_test` with ``inner_folds`` (C chosen by nested
CV) as ``alignjax probe --n-perm`` runs it; detected when ``p < alpha``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from alignjax.errors import InvalidOptionError, check_positive_int

from .checks import analysis_seed, check_alpha, check_at_least, check_unit_interval
from .registry import PowerDesign, register

__all__ = ["DESIGN", "bayes_accuracy", "separation_for_accuracy"]


def bayes_accuracy(delta: float, n_classes: int) -> float:
    """Bayes accuracy of the generative model with separation ``delta``."""
    from scipy import integrate, stats

    if n_classes == 2:
        return float(stats.norm.cdf(delta / 2))
    f = lambda z: stats.norm.pdf(z) * stats.norm.cdf(z + delta) ** (n_classes - 1)  # noqa: E731
    return float(integrate.quad(f, -10, 10)[0])


@lru_cache(maxsize=256)
def separation_for_accuracy(accuracy: float, n_classes: int) -> float:
    """The ``delta`` whose Bayes accuracy is ``accuracy``."""
    from scipy import optimize

    if accuracy <= 1 / n_classes:
        return 0.0
    return float(optimize.brentq(lambda d: bayes_accuracy(d, n_classes) - accuracy, 0, 40))


def _check(point, effect, options):
    check_at_least(point, "n_features", 1)
    K = check_positive_int(options["n_classes"], "n_classes", minimum=2)
    per = check_at_least(point, "n_per_class", 2)
    if per < options["folds"]:
        raise InvalidOptionError(f"n_per_class={per} is below folds={options['folds']}: every "
                                 "outer fold needs a stimulus of each class")
    if not 1 / K <= effect < 1:
        raise InvalidOptionError(f"effect (a target accuracy) must lie in [1/n_classes, 1) = "
                                 f"[{1 / K:.3g}, 1), got {effect}")
    check_alpha(options["alpha"])
    check_positive_int(options["n_perm"], "n_perm")
    check_unit_interval(options["alpha"], "alpha")


def _memory(point, options):
    n = point["n_per_class"] * options["n_classes"]
    return 8 * n * point["n_features"] * (4 + options["chunk_size"] * options["folds"])


def _simulate(point, effect, options, seeds, bar):
    from alignjax.probes import probe_permutation_test

    K, per, p = options["n_classes"], point["n_per_class"], point["n_features"]
    delta = separation_for_accuracy(round(effect, 12), K)
    y = np.repeat(np.arange(K), per)
    means = np.zeros((K, p))
    if K == 2:
        means[:, 0] = [-delta / 2, delta / 2]
    else:
        means[np.arange(K), np.arange(K) % p] = delta
    out = np.zeros(len(seeds))
    for k, ss in enumerate(seeds):
        rng = np.random.default_rng(ss)
        X = (means[y] + rng.standard_normal((y.size, p))).astype(np.float32)
        res = probe_permutation_test(
            {"layer": X}, y, Cs=options["Cs"], inner_folds=options["inner_folds"],
            folds=options["folds"], n_perm=options["n_perm"], seed=analysis_seed(rng),
            chunk_size=options["chunk_size"])
        out[k] = float(np.asarray(res.p)[0]) < options["alpha"]
        bar.update(1)
    return out


DESIGN = register(PowerDesign(
    name="probe", grid_params={"n_per_class": 20, "n_features": 10},
    integer_params=("n_per_class", "n_features"),
    options={"alpha": 0.05, "n_perm": 200, "n_classes": 2, "folds": 5, "inner_folds": 3,
             "Cs": (0.01, 1.0, 100.0), "chunk_size": 32},
    check=_check, memory_bytes=_memory, simulate=_simulate))
