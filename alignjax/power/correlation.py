"""The ``"correlation"`` design: a Pearson correlation test over n stimuli (the reference).

Generative model: ``n_stimuli`` pairs ``(x, y)`` drawn from a bivariate normal with unit
variances and correlation ``effect`` (say a model score and a behavioural score per
stimulus). Analysis: the t-test of Pearson's r (:func:`scipy.stats.pearsonr`, ``alternative``
as given), detected when ``p < alpha``. Its power has a closed form,
:func:`alignjax.power.correlation_power`, against which the simulation is checked.
"""

from __future__ import annotations

import numpy as np

from .checks import check_alpha, check_at_least, check_unit_interval
from .registry import PowerDesign, register

__all__ = ["DESIGN"]


def _check(point, effect, options):
    check_at_least(point, "n_stimuli", 4)
    check_unit_interval(abs(effect), "effect (a correlation)")
    check_alpha(options["alpha"])
    from alignjax.errors import check_choice

    check_choice(options["alternative"], "alternative", ("greater", "less", "two-sided"))


def _memory(point, options):
    return 16 * point["n_stimuli"] * 4


def _simulate(point, effect, options, seeds, bar):
    from scipy import stats

    n, r = point["n_stimuli"], effect
    x = np.empty((len(seeds), n))
    y = np.empty((len(seeds), n))
    for k, ss in enumerate(seeds):
        rng = np.random.default_rng(ss)
        x[k], e = rng.standard_normal((2, n))
        y[k] = r * x[k] + np.sqrt(1 - r * r) * e
    p = stats.pearsonr(x, y, axis=1, alternative=options["alternative"]).pvalue
    bar.update(len(seeds))
    return (np.asarray(p) < options["alpha"]).astype(float)

DESIGN = register(PowerDesign(
    name="correlation", grid_params={"n_stimuli": 40}, integer_params=("n_stimuli",),
    options={"alpha": 0.05, "alternative": "greater"}, check=_check, memory_bytes=_memory,
    simulate=_simulate))
