"""Statistics over a zoo of models: rankings, pairwise comparisons, alignment vs scores.

Three questions a model-zoo study asks (Pepino et al. compare 36 models with brain data and
their HEAR downstream scores):

- which model is most brain-like, and how sure is that ranking: :func:`bootstrap_ranking`
  (bootstrap over subjects, or over stimuli from bootstrap samples computed elsewhere, e.g.
  :func:`alignjax.rsa_bootstrap`), with the CI of each model's score and of its rank;
- which models differ: :func:`pairwise_comparisons`, a paired sign-flip permutation test
  over subjects of every pair of models, family-wise corrected by the maximum statistic
  over the pairs (and BH q-values);
- does alignment track an external score (task performance, training step):
  :func:`alignment_score_correlation`, Pearson or Spearman across models with a bootstrap CI
  over models and a permutation p-value over models.

The nulls run through the shared engine (:func:`alignjax.permutation_test`), enumerating
every sign flip or permutation when there are no more than ``n_perm`` of them. NumPy and
SciPy only (tables of models x subjects are small).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.stats import rankdata

from .errors import (AlignjaxInputError, ShapeMismatchError, check_choice,
                     check_positive_int)
from .permutation import exact_permutations, permutation_test
from .stats import fdr_bh

__all__ = ["bootstrap_ranking", "ranking_from_samples", "pairwise_comparisons",
           "alignment_score_correlation", "RankingResult", "PairwiseResult",
           "CorrelationResult", "TooFewModelsError", "CORRELATION_METHODS"]

CORRELATION_METHODS = ("pearson", "spearman")


class TooFewModelsError(AlignjaxInputError):
    """A statistic across models was asked of fewer models than it needs."""


class RankingResult(NamedTuple):
    """Result of :func:`bootstrap_ranking` / :func:`ranking_from_samples`.

    Attributes
    ----------
    score : ndarray (n_models,)
        Observed score of each model.
    ci : ndarray (2, n_models)
        Percentile bootstrap CI (low, high) of the score.
    rank : ndarray (n_models,) of int
        1 = highest score.
    rank_ci : ndarray (2, n_models)
        Percentile CI of the rank over the bootstrap samples.
    p_best : ndarray (n_models,)
        Fraction of bootstrap samples in which the model ranks first.
    boot : ndarray (n_boot, n_models)
    """

    score: np.ndarray
    ci: np.ndarray
    rank: np.ndarray
    rank_ci: np.ndarray
    p_best: np.ndarray
    boot: np.ndarray


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


def bootstrap_ranking(scores, *, n_boot: int = 1000, seed: int = 0,
                      ci: float = 0.95) -> RankingResult:
    """Models ranked by their mean score over units, with bootstrap CIs over the units.

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
        ``score`` is the mean over units (NaN ignored).
    """
    S = _as_table(scores, "scores")
    n_boot = check_positive_int(n_boot, "n_boot")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, S.shape[1], size=(n_boot, S.shape[1]))
    with np.errstate(invalid="ignore"), _quiet():
        boot = np.nanmean(S[:, idx], axis=-1).T
        return ranking_from_samples(np.nanmean(S, axis=1), boot, ci=ci)


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
        Percentile bootstrap CI over models.
    p : float
        Two-sided permutation p-value over models (``|r_perm| >= |r|``).
    n_models : int
    n_perm : int
    exact : bool
        True when every permutation of the models was enumerated.
    boot : ndarray (n_boot,)
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
    for ties) for ``r``. The CI resamples models with replacement (percentile method,
    resamples in which either variable is constant are dropped); the p-value permutes the
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
    lo_hi = np.nanpercentile(boot, [50 * (1 - ci), 50 * (1 + ci)])
    return CorrelationResult(r, lo_hi, float(res.p), int(x.size), len(perms), exact, boot)


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

