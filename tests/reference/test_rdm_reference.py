import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon, pdist
from scipy.spatial.distance import squareform as sp_squareform
from scipy.stats import entropy

import alignjax as aj

TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-10)}


def tol():
    import jax
    return TOL[np.float64 if jax.config.jax_enable_x64 else np.float32]


@pytest.mark.parametrize("metric", aj.rdm_metrics)
@pytest.mark.parametrize("shape", [(12, 40), (40, 12), (3, 25, 7), (2, 700, 9)])
def test_rdm_matches_pdist(metric, shape, rng):
    X = rng.normal(size=shape) + 3.0
    got = np.asarray(aj.rdm(X, metric=metric))
    flat = X.reshape((-1,) + X.shape[-2:])
    want = np.stack([pdist(x, metric) for x in flat]).reshape(X.shape[:-2] + (-1,))
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=tol()["rtol"], atol=tol()["atol"] * scale)


@pytest.mark.parametrize("metric", aj.rdm_metrics)
def test_row_blocks_match_pdist(metric, rng):
    X = rng.normal(size=(37, 9))
    got = np.asarray(aj.rdm(X, metric=metric, block_size=8))  # last block overlaps
    scale = max(1.0, float(pdist(X, metric).max()))
    np.testing.assert_allclose(got, pdist(X, metric), rtol=tol()["rtol"], atol=tol()["atol"] * scale)


def test_squareform_both_ways(rng):
    d = pdist(rng.normal(size=(9, 4)))
    sq = np.asarray(aj.squareform(d))
    np.testing.assert_allclose(sq, sp_squareform(d), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(aj.squareform(sq)), d, rtol=1e-6)
    batch = np.stack([d, 2 * d])
    assert np.asarray(aj.squareform(batch)).shape == (2, 9, 9)


def test_squareform_rejects_bad_input():
    with pytest.raises(aj.ShapeMismatchError, match="pairs"):
        aj.squareform(np.ones(7))
    with pytest.raises(aj.ShapeMismatchError, match="symmetric"):
        aj.squareform(np.triu(np.ones((4, 4)), 1))


def test_jensen_shannon_matches_scipy(rng):
    P = rng.dirichlet(np.ones(6), size=15)
    got = np.asarray(aj.rdm_from_distributions(P, metric="jensen_shannon"))
    want = pdist(P, lambda u, v: jensenshannon(u, v, base=2))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_symmetric_kl_matches_entropy_with_smoothing(rng):
    counts = rng.integers(0, 5, size=(10, 4)).astype(float)
    counts[:, 0] += 1  # no empty rows; zeros elsewhere stay
    eps = 0.01
    P = counts / counts.sum(1, keepdims=True)
    Ps = (P + eps) / (1 + 4 * eps)
    want = pdist(Ps, lambda u, v: entropy(u, v) + entropy(v, u))
    got = np.asarray(aj.rdm_from_distributions(counts, metric="symmetric_kl", smoothing=eps))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert np.isfinite(got).all()


def test_mode_and_labels():
    P = np.array([[5, 1, 0], [4, 0, 2], [0, 3, 1]])
    np.testing.assert_array_equal(np.asarray(aj.rdm_from_distributions(P, metric="mode")), [0, 1, 1])
    np.testing.assert_array_equal(np.asarray(aj.rdm_from_labels(["a", "a", "b"])), [0, 1, 1])


def _near_duplicates(n, p, offset, seed):
    """Stimuli in pairs at every separation from 1e-5 to 1 of the feature scale (5), around
    a few centres, plus a common offset on every feature."""
    rng = np.random.default_rng(seed)
    centres = 5 * rng.standard_normal((4, p))
    sep = np.logspace(-5, 0, n)
    X = centres[np.arange(n) % 4] + sep[:, None] * 5 * rng.standard_normal((n, p))
    return (X + offset).astype(np.float32)


def _check_against_pdist64(got, X, metric):
    """Relative 1e-4 of pdist in float64 (on the float32 features) for distances of at
    least 1e-10 of their scale, 1e-14 of the scale below (the documented accuracy)."""
    X64 = X.astype(np.float64)
    want = pdist(X64, metric)
    i, j = np.triu_indices(len(X), 1)
    Xc = X64 - X64.mean(0)
    sq = (Xc ** 2).sum(1)
    scale = {"euclidean": np.sqrt(sq[i] + sq[j]), "sqeuclidean": sq[i] + sq[j]}.get(metric, 1.0)
    scale = np.broadcast_to(scale, want.shape)
    err = np.abs(np.asarray(got, np.float64) - want)
    big = want >= 1e-10 * scale
    assert big.mean() > 0.5
    assert np.max(err[big] / want[big]) < 1e-4
    assert np.max(err[~big] / scale[~big], initial=0.0) < 1e-14


@pytest.mark.parametrize("metric", aj.rdm_metrics)
@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_float32_near_duplicates_and_offsets_match_pdist64(metric, offset):
    """Issue 25 item 11: the Gram form lost near-identical stimuli (a distance of 1.8e-3
    among features of scale 5 came back as 0-7.8e-3) and cosine distances under an offset
    of 1000 (errors up to 78%); every path (square, upper-triangle blocks, row blocks,
    batched leading axes) now recomputes the near-zero distances from the rows."""
    from alignjax.rdm import TRIANGLE_MIN
    from tests._compat import enable_x64

    X = _near_duplicates(60, 50, offset, seed=1)
    big = _near_duplicates(TRIANGLE_MIN + 8, 20, offset, seed=2)
    with enable_x64(False):
        square = aj.rdm(X, metric=metric)
        blocks = aj.rdm(X, metric=metric, block_size=16)
        batched = aj.rdm(np.stack([X, X[::-1]]), metric=metric)
        triangle = aj.rdm(big, metric=metric)
    assert np.asarray(square).dtype == np.float32
    for got in (square, blocks, batched[0]):
        _check_against_pdist64(got, X, metric)
    _check_against_pdist64(batched[1], X[::-1], metric)
    _check_against_pdist64(triangle, big, metric)
