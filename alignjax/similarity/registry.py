"""The metrics of :func:`alignjax.similarity`, each as a per-input preparation and a score.

A metric is a frozen (hashable) :class:`Metric`: ``prepare(X)`` turns one input (n, p)
into a :class:`Prep` computed once (square matrices, row factors, constants), and
``score(px, py)`` compares two preparations. Permuting the stimuli of an input permutes
its square matrices on both axes and its factors' rows, and leaves its constants, so a
permutation null re-indexes ``py`` and scores again; nothing is recomputed from features.

"Inner" metrics are ``post(<Mx, My>_F / norm(cx, cy))`` of one square matrix per input
(CKA, HSIC, dCor, mean CCA R², mutual kNN, RSA): their null over a batch of permutations
is one gather of ``My`` and one contraction with every ``Mx`` (a matrix product).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from alignjax.rdm import rdm_body
from alignjax.stats import rankdata_body, zscore_rows_body

from . import geometry as geo
from . import kernels as ker
from . import knn as kn

__all__ = ["Metric", "Prep", "METRICS", "get_metric", "permute"]


class Prep(NamedTuple):
    """One input prepared for a metric: ``sq`` (n, n) matrices, ``rows`` (n, r) factors,
    ``const`` arrays untouched by permutations."""

    sq: tuple
    rows: tuple
    const: tuple


def permute(prep: Prep, perm) -> Prep:
    """The preparation of the input with its stimuli reordered by ``perm`` (new i <- old perm[i])."""
    return Prep(tuple(M[perm][:, perm] for M in prep.sq), tuple(F[perm] for F in prep.rows),
                prep.const)


@dataclasses.dataclass(frozen=True)
class Metric:
    """One similarity metric (greater = more similar).

    Attributes
    ----------
    name : str
    kind : str
        What ``prepare``/``score`` compute (see the module's table in :data:`METRICS`).
    inner : bool
        ``score`` is ``post(<Mx, My> / norm)`` of ``sq[0]`` (a gather-and-matmul null).
    min_stimuli : int
    k : int
        Neighbours (kNN metrics).
    option : str
        Kernel, CCA method, kNN method or RDM distance, by kind.
    alpha : float
        Shape metric regularisation.
    unbiased : bool
        U-centred (unbiased) estimator.
    rank : bool
        Rank the RDM first (Spearman RSA).
    """

    name: str
    kind: str
    inner: bool
    min_stimuli: int = 2
    k: int = 10
    option: str = ""
    alpha: float = 1.0
    unbiased: bool = False
    rank: bool = False

    # ------------------------------------------------------------------ per input
    def prepare(self, X) -> Prep:
        n = X.shape[0]
        if self.kind == "cka":
            M = ker.center_body(ker.gram_body(X, self.option, 1.0), self.unbiased)
            return Prep((M,), (), (jnp.sqrt(jnp.tensordot(M, M, 2)),))
        if self.kind == "hsic":
            return Prep((ker.center_body(ker.gram_body(X, "linear"), self.unbiased),), (), ())
        if self.kind == "dcor":
            M = ker.center_body(ker.distance_body(X), self.unbiased)
            return Prep((M,), (), (jnp.sqrt(jnp.tensordot(M, M, 2)),))
        if self.kind == "cca":
            Q, r = geo.cca_basis_body(X, self.option)
            if self.option == "mean_r2":
                return Prep((Q @ Q.T,), (), (r,))
            return Prep((), (Q,), (r, Q.T @ (X - X.mean(0))))
        if self.kind == "shape":
            F = geo.shape_factor_body(X, self.alpha)
            return Prep((), (F,), (jnp.sqrt(jnp.sum(F * F)),))
        if self.kind == "knn":
            C = kn.cosine_body(X)
            A = kn.adjacency_body(C, self.k)
            if self.option == "cknna":
                return Prep((A, C), (), (kn.cknna_self_body(C, A),))
            return Prep((A,), (), ())
        if self.kind == "rsa":
            v = rdm_body(X, self.option, triangle=False)
            v = zscore_rows_body(rankdata_body(v) if self.rank else v)
            i, j = jnp.triu_indices(n, 1)
            M = jnp.zeros((n, n), v.dtype).at[i, j].set(v).at[j, i].set(v)
            return Prep((M / jnp.sqrt(2.0),), (), ())
        raise ValueError(self.kind)  # pragma: no cover

    # ------------------------------------------------------------------ per pair
    def norm(self, px: Prep, py: Prep, n: int):
        """Denominator of an inner metric."""
        if self.kind in ("cka", "dcor"):
            return px.const[0] * py.const[0]
        if self.kind == "hsic":
            return float(n * (n - 3) if self.unbiased else (n - 1) ** 2)
        if self.kind == "cca":
            return jnp.minimum(px.const[0], py.const[0])
        if self.kind == "knn":
            return float(n * self.k)
        return 1.0

    def post(self, v):
        if self.kind == "dcor" and not self.unbiased and self.option == "root":
            return jnp.sqrt(jnp.maximum(v, 0.0))
        return v

    def score(self, px: Prep, py: Prep):
        if self.inner:
            n = px.sq[0].shape[0]
            return self.post(jnp.tensordot(px.sq[0], py.sq[0], 2) / self.norm(px, py, n))
        if self.kind == "shape":
            cos = geo.nuclear_body(px.rows[0], py.rows[0]) / (px.const[0] * py.const[0])
            return jnp.clip(cos, -1.0, 1.0)
        if self.kind == "cca":
            return geo.cca_from_bases(px.rows[0], px.const[0], py.rows[0], py.const[0],
                                      self.option, px.const[1])
        if self.kind == "knn":
            if self.option == "cknna":
                return kn.knn_from_matrices(px.sq[0], py.sq[0], self.k, "cknna", px.sq[1],
                                            py.sq[1], px.const[0], py.const[0])
            return kn.knn_from_matrices(px.sq[0], py.sq[0], self.k, self.option)
        raise ValueError(self.kind)  # pragma: no cover

    def with_k(self, k: int) -> "Metric":
        return dataclasses.replace(self, k=int(k)) if self.kind == "knn" else self

    def with_rdm_metric(self, metric: str) -> "Metric":
        return dataclasses.replace(self, option=metric) if self.kind == "rsa" else self


def _m(name, kind, inner, **kw):
    return Metric(name, kind, inner, **kw)


METRICS: dict[str, Metric] = {m.name: m for m in [
    _m("cka", "cka", True, option="linear"),
    _m("cka_debiased", "cka", True, option="linear", unbiased=True, min_stimuli=4),
    _m("cka_rbf", "cka", True, option="rbf"),
    _m("rv", "cka", True, option="linear"),
    _m("hsic", "hsic", True),
    _m("hsic_unbiased", "hsic", True, unbiased=True, min_stimuli=4),
    _m("dcor", "dcor", True, option="root"),
    _m("dcor_sqr", "dcor", True),
    _m("dcor_unbiased", "dcor", True, unbiased=True, min_stimuli=4),
    _m("cca", "cca", True, option="mean_r2"),
    _m("svcca", "cca", False, option="svcca"),
    _m("pwcca", "cca", False, option="pwcca"),
    _m("shape", "shape", False, alpha=1.0),
    _m("shape_cca", "shape", False, alpha=0.0),
    _m("knn", "knn", True, option="mutual", min_stimuli=3),
    _m("knn_jaccard", "knn", False, option="jaccard", min_stimuli=3),
    _m("knn_cycle", "knn", False, option="cycle", min_stimuli=3),
    _m("cknna", "knn", False, option="cknna", min_stimuli=4),
    _m("rsa_spearman", "rsa", True, option="correlation", rank=True, min_stimuli=3),
    _m("rsa_pearson", "rsa", True, option="correlation", min_stimuli=3),
]}
METRICS_DOC = {
    "cka": "linear CKA (= RV coefficient)", "cka_debiased": "linear CKA, unbiased HSIC",
    "cka_rbf": "RBF CKA, sigma^2 = median squared distance", "rv": "RV coefficient",
    "hsic": "biased linear HSIC", "hsic_unbiased": "unbiased linear HSIC",
    "dcor": "distance correlation", "dcor_sqr": "squared distance correlation",
    "dcor_unbiased": "bias-corrected squared distance correlation",
    "cca": "mean squared canonical correlation", "svcca": "SVCCA (99% variance)",
    "pwcca": "projection-weighted CCA", "shape": "cos of the angular Procrustes shape distance",
    "shape_cca": "cos of the angular shape distance at alpha=0 (CCA)",
    "knn": "mutual k-NN", "knn_jaccard": "k-NN Jaccard", "knn_cycle": "k-NN cycle consistency",
    "cknna": "CKNNA", "rsa_spearman": "RSA, Spearman of correlation-distance RDMs",
    "rsa_pearson": "RSA, Pearson of correlation-distance RDMs",
}


def get_metric(name: str, *, k: int = 10, rdm_metric: str = "correlation") -> Metric:
    """The :class:`Metric` called ``name`` (with ``k`` and the RDM distance applied)."""
    from alignjax.errors import check_choice

    check_choice(name, "metric", tuple(METRICS))
    return METRICS[name].with_k(k).with_rdm_metric(rdm_metric)
