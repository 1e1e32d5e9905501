"""Where metrics disagree: rankings of layers/models per metric, Kendall tau between
rankings, Kendall's W, with a bootstrap over stimuli; and model-vs-model matrices."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from alignjax.errors import InvalidOptionError

__all__ = ["rank_agreement", "RankAgreement", "model_similarity", "kendalls_w"]


class RankAgreement(NamedTuple):
    """Result of :func:`rank_agreement`.

    Attributes
    ----------
    metrics, items : tuple of str
        The metrics (raters) and the ranked layers/models.
    ranks : array (n_metrics, n_items)
        Rank of each item under each metric (1 = most similar; ties averaged).
    tau : array (n_metrics, n_metrics)
        Kendall tau-b between the metrics' rankings.
    w : float
        Kendall's coefficient of concordance over all metrics.
    tau_ci : array (2, n_metrics, n_metrics) or None
    w_ci : array (2,) or None
        Percentile bootstrap intervals over stimuli (when the result has a bootstrap).
    w_boot : array (n_boot,) or None
    """

    metrics: tuple
    items: tuple
    ranks: np.ndarray
    tau: np.ndarray
    w: float
    tau_ci: np.ndarray | None
    w_ci: np.ndarray | None
    w_boot: np.ndarray | None


def _ranks(scores: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return np.stack([rankdata(-s) for s in scores])


def kendalls_w(ranks: np.ndarray) -> float:
    """Kendall's W of ``ranks`` (n_raters, n_items): ``12 S / (m^2 (n^3 - n))``, with ``S``
    the sum of squared deviations of the items' rank sums from their mean (no tie
    correction)."""
    m, n = ranks.shape
    R = ranks.sum(0)
    S = np.sum((R - R.mean()) ** 2)
    return float(12 * S / (m * m * (n ** 3 - n)))


def _tau_matrix(ranks: np.ndarray) -> np.ndarray:
    from scipy.stats import kendalltau

    m = len(ranks)
    tau = np.eye(m)
    for i in range(m):
        for j in range(i + 1, m):
            tau[i, j] = tau[j, i] = kendalltau(ranks[i], ranks[j]).statistic
    return tau


def rank_agreement(result, *, subject: str | None = None, ci: float = 0.95) -> RankAgreement:
    """Rankings of the layers (or models) under each metric and their agreement.

    Parameters
    ----------
    result : SimilarityResult
        From :func:`alignjax.similarity`; with ``n_boot > 0`` the agreement gets
        bootstrap intervals (the same stimulus resamples for every metric).
    subject : str, optional
        Rank by this subject's scores (default: the mean over subjects).
    ci : float

    Returns
    -------
    RankAgreement
    """
    if len(result.metrics) < 2 or len(result.layers) < 2:
        raise InvalidOptionError(
            f"rank agreement needs at least 2 metrics and 2 layers, got {len(result.metrics)} "
            f"metric(s) and {len(result.layers)} layer(s)")

    def pick(a):  # (..., M, L, S) -> (..., M, L)
        if subject is None:
            return np.nanmean(a, axis=-1)
        if subject not in result.subjects:
            raise InvalidOptionError(f"subject {subject!r} is not among {list(result.subjects)}")
        return a[..., result.subjects.index(subject)]

    ranks = _ranks(pick(np.asarray(result.score)))
    tau = _tau_matrix(ranks)
    w = kendalls_w(ranks)
    tau_ci = w_ci = w_boot = None
    if result.boot is not None:
        boots = pick(result.boot)
        br = [_ranks(b) for b in boots]
        w_boot = np.array([kendalls_w(r) for r in br])
        taus = np.stack([_tau_matrix(r) for r in br])
        q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
        w_ci = np.nanpercentile(w_boot, q)
        tau_ci = np.nanpercentile(taus, q, axis=0)
    return RankAgreement(tuple(result.metrics), tuple(result.layers), ranks, tau, w, tau_ci,
                         w_ci, w_boot)


def model_similarity(features_a, features_b, *, metrics: Sequence[str] | str = ("cka",),
                     n_perm: int = 0, **kwargs):
    """Layer x layer similarity between two models (the "CKA heatmap" of two networks).

    ``features_a`` and ``features_b`` are anything :func:`alignjax.similarity` accepts as
    layers (stores, mappings, arrays); stimuli are matched by id when both carry ids. The
    result's ``score[m]`` is the (n_layers_a, n_layers_b) matrix of metric ``m``; with
    ``n_perm > 0`` each cell has its permutation p-value (FWE over the layers of A, per
    metric and layer of B).
    """
    from .inference import similarity

    return similarity(features_a, features_b, metrics=metrics, n_perm=n_perm, **kwargs)
