"""Closed-form power of the tests the simulated designs reduce to (references for checks)."""

from __future__ import annotations

import numpy as np

__all__ = ["correlation_power", "correlation_power_fisher", "ttest_power"]


def _critical_t(df: int, alpha: float, alternative: str) -> float:
    from scipy import stats

    return float(stats.t.ppf(1 - (alpha / 2 if alternative == "two-sided" else alpha), df))


def correlation_power(r: float, n: int, *, alpha: float = 0.05,
                      alternative: str = "greater") -> float:
    """Exact power of the t-test of a Pearson correlation for bivariate normal data.

    Given ``x``, the test of ``r`` is the regression t-test with ``n - 2`` degrees of
    freedom, whose statistic is noncentral t with noncentrality ``r / sqrt(1 - r**2) *
    sqrt(S)``, ``S ~ chi2(n - 1)`` the sum of squares of ``x``; the power is its
    expectation over ``S`` (one integral, by quadrature). Matches
    ``scipy.stats.pearsonr``'s test (which is this t-test).
    """
    from scipy import integrate, stats

    df = n - 2
    tc = _critical_t(df, alpha, alternative)
    k = r / np.sqrt(1 - r * r)

    def given_s(s):
        nc = k * np.sqrt(s)
        p = stats.nct.sf(tc, df, nc)
        if alternative == "two-sided":
            p += stats.nct.cdf(-tc, df, nc)
        elif alternative == "less":
            p = stats.nct.cdf(-tc, df, nc)
        return p * stats.chi2.pdf(s, n - 1)

    lo, hi = stats.chi2.ppf([1e-12, 1 - 1e-12], n - 1)
    return float(integrate.quad(given_s, lo, hi, limit=200)[0])


def correlation_power_fisher(r: float, n: int, *, alpha: float = 0.05,
                             alternative: str = "greater") -> float:
    """Fisher-z approximation of :func:`correlation_power`: ``atanh(r_hat) ~ N(atanh(r),
    1 / (n - 3))``."""
    from scipy import stats

    z = np.arctanh(r) * np.sqrt(n - 3)
    if alternative == "two-sided":
        c = stats.norm.ppf(1 - alpha / 2)
        return float(stats.norm.sf(c - z) + stats.norm.cdf(-c - z))
    c = stats.norm.ppf(1 - alpha)
    return float(stats.norm.sf(c - z) if alternative == "greater" else stats.norm.cdf(-c - z))


def ttest_power(d: float, n: int, *, alpha: float = 0.05, alternative: str = "greater") -> float:
    """Power of a one-sample t-test of ``n`` normal values with standardised mean ``d``
    (noncentral t with ``n - 1`` degrees of freedom and noncentrality ``d * sqrt(n)``)."""
    from scipy import stats

    df, nc = n - 1, d * np.sqrt(n)
    tc = _critical_t(df, alpha, alternative)
    if alternative == "greater":
        return float(stats.nct.sf(tc, df, nc))
    if alternative == "less":
        return float(stats.nct.cdf(-tc, df, nc))
    return float(stats.nct.sf(tc, df, nc) + stats.nct.cdf(-tc, df, nc))
