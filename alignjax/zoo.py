"""Statistics over a zoo of models: rankings, pairwise comparisons, alignment vs scores.

Three questions a model-zoo study asks (Pepino et al. compare 36 models with brain data and
their HEAR downstream scores):

- which model is most brain-like, and how sure is that ranking: :func:`bootstrap_ranking`
  (t-interval of each model's mean score over subjects, and bootstrap ranks over
  subjects; or, over stimuli, from bootstrap samples computed elsewhere, e.g.
  :func:`alignjax.rsa_bootstrap`, with :func:`ranking_from_samples`);
- which models differ: :func:`pairwise_comparisons`, a paired sign-flip permutation test
  over subjects of every pair of models, family-wise corrected by the maximum statistic
  over the pairs (and BH q-values);
- does alignment track an external score (task performance, training step):
  :func:`alignment_score_correlation`, Pearson or Spearman across models with a Fisher-z
  CI and a permutation p-value over models.

A bootstrap over a handful of models or subjects under-covers (a percentile CI of a
Pearson r over 6 models covers 0.90, of a mean over 8 subjects 0.88), so the intervals
here are the small-sample ones; the fraction of bootstrap samples in which a model ranks
first is reported as ``frac_boot_best`` (it is not the probability that the model is
best: with six equal models the observed best one gets about 0.54, not 1/6).

The nulls run through the shared engine (:func:`alignjax.permutation_test`), enumerating
every sign flip or permutation when there are no more than ``n_perm`` of them. NumPy and
SciPy only (tables of models x subjects are small).
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
from scipy.stats import norm, rankdata
from scipy.stats import t as student_t

from .errors import (AlignjaxInputError, ShapeMismatchError, check_choice,
                     check_positive_int)
from .permutation import exact_permutations, permutation_test
from .stats import fdr_bh

__all__ = ["bootstrap_ranking", "ranking_from_samples", "pairwise_comparisons",
           "alignment_score_correlation", "RankingResult", "PairwiseResult",
           "CorrelationResult", "TooFewModelsError", "SmallSampleWarning", "fisher_z_interval",
           "CORRELATION_METHODS", "MIN_BOOT_UNITS"]

CORRELATION_METHODS = ("pearson", "spearman")

#: Fewest units (subjects) for which :func:`bootstrap_ranking` calls its bootstrap ranks
#: and ``frac_boot_best`` anything but descriptive: a resample of n units takes at most
#: ``C(2n-1, n)`` distinct values (3 for 2 subjects), and a percentile bootstrap over 8
#: subjects still covers a mean only 0.88 of the time.
MIN_BOOT_UNITS = 10


class TooFewModelsError(AlignjaxInputError):
    """A statistic across models was asked of fewer models than it needs."""


class SmallSampleWarning(UserWarning):
    """A resampling statistic was computed from fewer units than it needs to be valid."""


class RankingResult(NamedTuple):
    """Result of :func:`bootstrap_ranking` / :func:`ranking_from_samples`.

    Attributes
    ----------
    score : ndarray (n_models,)
        Observed score of each model.
    ci : ndarray (2, n_models)
        CI (low, high) of the score: the t-interval of the mean over units
        (:func:`bootstrap_ranking`), or the percentile interval of the given samples
        (:func:`ranking_from_samples`); see ``ci_method``.
    rank : ndarray (n_models,) of int
        1 = highest score.
    rank_ci : ndarray (2, n_models)
        Percentiles of the rank over the bootstrap samples (descriptive: ranks are not
        smooth in the data, and no coverage is claimed for them).
    frac_boot_best : ndarray (n_models,)
        Fraction of bootstrap samples in which the model ranks first. Not the probability
        that the model is best: it is biased towards whichever model scored best on these
        data (about 0.54 for the observed best of six equal models over 8 subjects).
        Use :func:`pairwise_comparisons` to test whether the best model differs from the
        others. (Called ``p_best`` before; that name still reads this field, with a
        ``DeprecationWarning``.)
    boot : ndarray (n_boot, n_models)
    ci_method : str
    n_units : int or None
        Units resampled (None when unknown, as for :func:`ranking_from_samples`).
    """

    score: np.ndarray
    ci: np.ndarray
    rank: np.ndarray
    rank_ci: np.ndarray
    frac_boot_best: np.ndarray
    boot: np.ndarray
    ci_method: str = "percentile of the given samples"
    n_units: int | None = None

    @property
    def p_best(self) -> np.ndarray:
        """Deprecated name of :attr:`frac_boot_best` (it is not a probability of being best)."""
        warnings.warn("RankingResult.p_best is deprecated: it is frac_boot_best, the fraction "
                      "of bootstrap samples in which the model ranks first, not the "
                      "probability that the model is best", DeprecationWarning, stacklevel=2)
        return self.frac_boot_best


def _ranks(x: np.ndarray) -> np.ndarray:
    """Rank 1 = largest along the last axis (NaN last; ties share the best rank)."""
    return rankdata(np.where(np.isnan(x), -np.inf, -x), axis=-1, method="min")


def ranking_from_samples(score, boot, *, ci: float = 0.95) -> RankingResult:
    """Ranking with CIs from observed scores and bootstrap samples of them.

    Parameters
    ----------
    score : array (n_models,)
    boot : array (n_boot, n_models)
        Scores on each bootstrap sample, the same resampling for every model.
    ci : float
    """
    score = np.asarray(score, float)
    boot = np.asarray(boot, float)
    if boot.ndim != 2 or boot.shape[1] != score.shape[0]:
        raise ShapeMismatchError(f"boot has shape {boot.shape}; expected (n_boot, {score.shape[0]})")
    q = [50 * (1 - ci), 50 * (1 + ci)]
    ranks = _ranks(boot)
    return RankingResult(score, np.nanpercentile(boot, q, axis=0), _ranks(score),
                         np.percentile(ranks, q, axis=0), (ranks == 1).mean(0), boot)


def _t_interval(S: np.ndarray, ci: float) -> np.ndarray:
    """(2, n_models) t-interval of each row's mean over its non-NaN units (NaN below 2)."""
    n = np.sum(~np.isnan(S), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"), _quiet():
        m = np.nanmean(S, axis=1)
        se = np.nanstd(S, axis=1, ddof=1) / np.sqrt(n)
        half = student_t.ppf(0.5 + ci / 2, np.maximum(n - 1, 1)) * se
    half = np.where(n >= 2, half, np.nan)
    return np.stack([m - half, m + half])


def bootstrap_ranking(scores, *, n_boot: int = 1000, seed: int = 0,
                      ci: float = 0.95) -> RankingResult:
    """Models ranked by their mean score over units, with a t-interval of each mean and
    bootstrap ranks over the units.

    Parameters
    ----------
    scores : array (n_models, n_units)
        Score of each model for each unit (subject); NaN for a missing unit.
    n_boot : int
        Bootstrap samples: each draws ``n_units`` units with replacement, the same units
        for every model (so the models' ranks are compared on the same data).
    seed : int
    ci : float

    Returns
    -------
    RankingResult
        ``score`` is the mean over units (NaN ignored); ``ci`` the t-interval
        ``mean +- t_{n-1} sd / sqrt(n)`` over each model's units (nominal coverage at any
        number of units for normal scores, where the percentile bootstrap covers 0.88
        over 8 units); ``rank_ci`` and ``frac_boot_best`` come from the bootstrap.

    Warns
    -----
    SmallSampleWarning
        Fewer than :data:`MIN_BOOT_UNITS` units: ``rank_ci`` and ``frac_boot_best`` only
        describe the few distinct resamples.
    """
    S = _as_table(scores, "scores")
    n_boot = check_positive_int(n_boot, "n_boot")
    n_units = S.shape[1]
    if n_units < MIN_BOOT_UNITS:
        warnings.warn(f"bootstrap ranking over {n_units} units (subjects): below "
                      f"{MIN_BOOT_UNITS} the bootstrap ranks and frac_boot_best describe only "
                      "the few distinct resamples and are not intervals or probabilities; "
                      "the score CI is a t-interval", SmallSampleWarning, stacklevel=2)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_units, size=(n_boot, n_units))
    with np.errstate(invalid="ignore"), _quiet():
        boot = np.nanmean(S[:, idx], axis=-1).T
        res = ranking_from_samples(np.nanmean(S, axis=1), boot, ci=ci)
    return res._replace(ci=_t_interval(S, ci), ci_method="t over units", n_units=n_units)


class PairwiseResult(NamedTuple):
    """Result of :func:`pairwise_comparisons`.

    Attributes
    ----------
    pairs : ndarray (n_pairs, 2) of int
        Model indices ``(a, b)``, ``a < b``.
    diff : ndarray (n_pairs,)
        Mean over units of ``score[a] - score[b]``.
    t : ndarray (n_pairs,)
        Paired t statistic of the difference (the tested statistic).
    p : ndarray (n_pairs,)
        Two-sided sign-flip permutation p-value.
    p_fwe : ndarray (n_pairs,)
        Corrected by the maximum ``|t|`` over all pairs (same sign flips for every pair).
    q : ndarray (n_pairs,)
        Benjamini-Hochberg q-values over the pairs.
    n_perm : int
    exact : bool
    """

    pairs: np.ndarray
    diff: np.ndarray
    t: np.ndarray
    p: np.ndarray
    p_fwe: np.ndarray
    q: np.ndarray
    n_perm: int
    exact: bool


def _paired_t(D: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Paired t of sign-flipped differences: D (n_pairs, n), signs (c, n) -> (c, n_pairs)."""
    X = signs[:, None, :] * D[None]
    n = D.shape[1]
    sd = X.std(axis=-1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return X.mean(-1) / (sd / math.sqrt(n))


def _sign_flips(n: int, n_perm: int, seed: int) -> tuple[np.ndarray, bool]:
    if 2 ** n <= n_perm:  # every sign vector, identity (all +1) first
        grid = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)[None]) & 1)
        return grid.astype(float), True
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], size=(n_perm, n)), False


def pairwise_comparisons(scores, *, n_perm: int = 10_000, seed: int = 0) -> PairwiseResult:
    """Every pair of models compared over units with a paired sign-flip permutation test.

    Under the null that two models score alike, the sign of each unit's difference is
    exchangeable; the statistic is the paired t of the differences, two-sided, and the
    family-wise correction uses the maximum ``|t|`` over all pairs under the same flips
    (Nichols & Holmes 2002). With ``2**n_units <= n_perm`` every flip is enumerated.

    Parameters
    ----------
    scores : array (n_models, n_units)
        No NaN (every model scored on every unit); at least 2 models and 3 units.
    n_perm : int
    seed : int

    Returns
    -------
    PairwiseResult
    """
    S = _as_table(scores, "scores")
    if np.isnan(S).any():
        raise AlignjaxInputError("pairwise comparisons need every model scored on every unit "
                                 "(subject); some scores are missing (NaN)")
    n_models, n = S.shape
    if n_models < 2 or n < 3:
        raise TooFewModelsError(f"pairwise comparisons need at least 2 models and 3 subjects; "
                                f"got {n_models} models x {n} subjects")
    n_perm = check_positive_int(n_perm, "n_perm")
    a, b = np.triu_indices(n_models, k=1)
    D = S[a] - S[b]
    flips, exact = _sign_flips(n, n_perm, seed)
    observed = _paired_t(D, np.ones((1, n)))[0]
    res = permutation_test(lambda batch: _paired_t(D, batch), observed, n_perm=len(flips),
                           permutations=flips.__getitem__, alternative="two-sided",
                           exact=exact, chunk_size=min(len(flips), 1000))
    p = np.asarray(res.p, float)
    return PairwiseResult(np.stack([a, b], 1), D.mean(1), observed, p,
                          np.asarray(res.p_fwe, float), fdr_bh(p), len(flips), exact)


class CorrelationResult(NamedTuple):
    """Result of :func:`alignment_score_correlation`.

    Attributes
    ----------
    r : float
        Pearson or Spearman correlation across models.
    ci : ndarray (2,)
        Fisher-z CI: ``tanh(atanh(r) +- z se)``, ``se = 1/sqrt(n-3)`` (Pearson) or
        ``sqrt((1 + r^2/2)/(n-3))`` (Spearman; Bonett & Wright 2000); NaN with 3 models.
    p : float
        Two-sided permutation p-value over models (``|r_perm| >= |r|``).
    n_models : int
    n_perm : int
    exact : bool
        True when every permutation of the models was enumerated.
    boot : ndarray (n_boot,)
        The correlation on bootstrap resamples of the models (not used by ``ci``: a
        percentile interval of it covers a Pearson r over 6 models only 0.90 of the time).
    """

    r: float
    ci: np.ndarray
    p: float
    n_models: int
    n_perm: int
    exact: bool
    boot: np.ndarray


def _rowwise_corr(x: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Pearson r of ``x`` (…, n) with each row of ``Y`` (…, n), NaN when constant."""
    xc = x - x.mean(-1, keepdims=True)
    yc = Y - Y.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(-1) / np.sqrt((xc ** 2).sum(-1) * (yc ** 2).sum(-1))


def alignment_score_correlation(alignment, score, *, method: str = "pearson",
                                n_boot: int = 10_000, n_perm: int = 10_000, seed: int = 0,
                                ci: float = 0.95) -> CorrelationResult:
    """Correlation between models' alignment and an external score, across models.

    Matches :func:`scipy.stats.pearsonr` / :func:`scipy.stats.spearmanr` (average ranks
    for ties) for ``r``. The CI is the Fisher-z interval (Bonett & Wright's variance for
    Spearman), which keeps its coverage with few models where a bootstrap over models does
    not; ``boot`` still holds a bootstrap over models (resamples in which either variable
    is constant are NaN). The p-value permutes the
    scores across models (two-sided, ``|r_perm| >= |r|``; ``p = (1 + #) / (1 + n_perm)``,
    or the exact fraction when all ``n_models!`` permutations are enumerated). Spearman
    ranks once, then permutes.

    Parameters
    ----------
    alignment, score : array (n_models,)
        One value per model (at least 3 models, no NaN).
    method : {"pearson", "spearman"}
    n_boot, n_perm, seed, ci

    Returns
    -------
    CorrelationResult

    Raises
    ------
    TooFewModelsError
        Fewer than 3 models.
    """
    check_choice(method, "method", CORRELATION_METHODS)
    x = np.asarray(alignment, float).reshape(-1)
    y = np.asarray(score, float).reshape(-1)
    if x.shape != y.shape:
        raise ShapeMismatchError(f"alignment has {x.size} models but score has {y.size}")
    if x.size < 3:
        raise TooFewModelsError(f"a correlation across models needs at least 3 models; got "
                                f"{x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise AlignjaxInputError("alignment and score must be finite for every model")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise AlignjaxInputError("alignment or score is the same for every model: the "
                                 "correlation is undefined")
    n_boot = check_positive_int(n_boot, "n_boot")
    n_perm = check_positive_int(n_perm, "n_perm")
    rx, ry = (rankdata(x), rankdata(y)) if method == "spearman" else (x, y)
    r = float(_rowwise_corr(rx, ry))
    perms = exact_permutations(x.size, n_perm)
    exact = perms is not None
    if not exact:
        rng = np.random.default_rng(seed)
        perms = np.stack([rng.permutation(x.size) for _ in range(n_perm)])
    res = permutation_test(lambda batch: _rowwise_corr(rx[None], ry[batch]), np.float64(r),
                           n_perm=len(perms), permutations=perms.__getitem__,
                           alternative="two-sided", exact=exact,
                           chunk_size=min(len(perms), 2000))
    rng = np.random.default_rng([seed, 1])
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    bx, by = x[idx], y[idx]
    if method == "spearman":
        bx, by = rankdata(bx, axis=-1), rankdata(by, axis=-1)
    boot = _rowwise_corr(bx, by)
    return CorrelationResult(r, fisher_z_interval(r, x.size, ci=ci, method=method),
                             float(res.p), int(x.size), len(perms), exact, boot)


def fisher_z_interval(r: float, n: int, *, ci: float = 0.95,
                      method: str = "pearson") -> np.ndarray:
    """Fisher-z interval (2,) of a correlation ``r`` of ``n`` pairs; NaN for ``n <= 3``.

    ``tanh(atanh(r) -+ z_{(1+ci)/2} se)`` with ``se = 1/sqrt(n-3)`` (Pearson, exact in
    the limit for bivariate normal data) or ``sqrt((1 + r^2/2)/(n-3))`` (Spearman;
    Bonett & Wright 2000).
    """
    check_choice(method, "method", CORRELATION_METHODS)
    if n <= 3:
        return np.array([np.nan, np.nan])
    se = math.sqrt((1 + r * r / 2 if method == "spearman" else 1.0) / (n - 3))
    z = math.atanh(min(max(r, -1 + 1e-15), 1 - 1e-15))
    h = norm.ppf(0.5 + ci / 2) * se
    return np.tanh([z - h, z + h])


def _as_table(scores, name: str) -> np.ndarray:
    S = np.asarray(scores, float)
    if S.ndim != 2:
        raise ShapeMismatchError(f"{name} must be (n_models, n_units); got shape {S.shape}")
    if S.shape[0] < 1 or S.shape[1] < 1:
        raise ShapeMismatchError(f"{name} is empty: shape {S.shape}")
    return S


class _quiet:
    """Silence NumPy's 'mean of empty slice' warnings for all-NaN bootstrap columns."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)

