"""Exact binomial bounds for family-wise error rates over many null data sets.

A valid permutation test whose p-value takes ``m`` equally likely values (``m = n_perm + 1``
for ``p = (1 + #{null >= obs}) / (1 + n_perm)``; ``m = n_perm`` when the observed set is one
of the ``n_perm``) rejects at ``p < alpha`` with probability at most its attainable size
``(ceil(alpha * m) - 1) / m`` (0.025 for n_perm 39, 0.04 for n_perm 99; ``alpha`` itself for
continuous p-values). Over ``N`` null data sets the number of family-wise errors is then at
most Binomial(N, size); a test passes when it is at most the ``1 - false_fail`` quantile.
:func:`false_pass` says how likely a test with a true FWER ``rate`` would still pass.
"""

import math

import numpy as np
from scipy.stats import binom


def attainable_size(m: int, alpha: float = 0.05) -> float:
    """P(p < alpha) at most, for a valid p-value on the grid 1/m, 2/m, ..., 1."""
    return (math.ceil(alpha * m) - 1) / m


def max_errors(n_sets: int, size: float, *, false_fail: float = 1e-3) -> int:
    """The smallest k with P(Binomial(n_sets, size) > k) <= false_fail."""
    k = 0
    while binom.sf(k, n_sets, size) > false_fail:
        k += 1
    return k


def false_pass(n_sets: int, size: float, rate: float, **kw) -> float:
    """P(a test whose true FWER is ``rate`` passes :func:`fwer_ok`)."""
    return float(binom.cdf(max_errors(n_sets, size, **kw), n_sets, rate))


def fwer_ok(errors, size: float, *, false_fail: float = 1e-3) -> None:
    """Assert that the family-wise errors (one bool per null data set) are no more than a
    valid test of this ``size`` makes, except with probability ``false_fail``."""
    errors = np.asarray(errors, bool).ravel()
    k = max_errors(errors.size, size, false_fail=false_fail)
    assert errors.sum() <= k, (
        f"{errors.sum()} family-wise errors in {errors.size} null sets (rate "
        f"{errors.mean():.3f}); a valid test of size {size:.3f} makes at most {k} "
        f"(P(more) <= {false_fail})")
