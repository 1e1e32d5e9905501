"""The permutation engine: against permutation_pvalues and brute force; chunking, devices,
families, exact enumeration, NaN rules, bounded memory."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import alignjax as aj
from alignjax import permutation as pm
from alignjax.stats import permutation_pvalues

ALTS = ("greater", "less", "two-sided")


def _brute(observed, null, alternative, exact=False):
    """p and p_fwe by a plain NumPy loop over permutations (finite data, one family)."""
    tol = 8 * np.finfo(np.float32).eps * np.maximum(1.0, np.abs(observed))
    hit, hit_fwe = np.zeros(observed.shape), np.zeros(observed.shape)
    for z in null:
        if alternative == "greater":
            hit += z >= observed - tol
            hit_fwe += z.max() >= observed - tol
        elif alternative == "less":
            hit += z <= observed + tol
            hit_fwe += z.min() <= observed + tol
        else:
            hit += np.abs(z) >= np.abs(observed) - tol
            hit_fwe += np.abs(z).max() >= np.abs(observed) - tol
    n = len(null)
    if exact:
        return hit / n, hit_fwe / n
    return (1 + hit) / (1 + n), (1 + hit_fwe) / (1 + n)


@pytest.fixture
def table(rng):
    null = rng.standard_normal((97, 3, 4)).astype(np.float32)
    observed = rng.standard_normal((3, 4)).astype(np.float32) * 1.5
    observed[0, 0] = null[5, 0, 0]  # a tie
    return observed, null


def _host(observed, null, **kw):
    return pm.permutation_test(lambda ids: null[ids], observed, n_perm=len(null),
                               permutations=lambda ids: ids, **kw)


@pytest.mark.parametrize("alternative", ALTS)
def test_host_engine_matches_permutation_pvalues_and_brute_force(table, alternative):
    observed, null = table
    res = _host(observed, null, alternative=alternative, chunk_size=10)
    p, p_fwe = permutation_pvalues(observed, null, alternative=alternative)
    np.testing.assert_array_equal(res.p, np.asarray(p))
    np.testing.assert_array_equal(res.p_fwe, np.asarray(p_fwe))
    bp, bpf = _brute(observed, null, alternative)
    np.testing.assert_allclose(res.p, bp, rtol=1e-6)
    np.testing.assert_allclose(res.p_fwe, bpf, rtol=1e-6)
    assert res.null is None and res.n_perm == 97 and not res.exact


def test_chunk_size_never_changes_the_result(table):
    observed, null = table
    ref = _host(observed, null, return_null=True)
    for chunk in (1, 7, 96, 97, 500):
        res = _host(observed, null, chunk_size=chunk, return_null=True)
        np.testing.assert_array_equal(res.p, ref.p)
        np.testing.assert_array_equal(res.p_fwe, ref.p_fwe)
        np.testing.assert_array_equal(res.null, null)


def test_statistic_sees_only_chunks(table):
    observed, null = table
    seen = []

    def statistic(ids):
        seen.append(len(ids))
        return null[ids]

    pm.permutation_test(statistic, observed, n_perm=97, permutations=lambda i: i, chunk_size=10)
    assert max(seen) == 10 and sum(seen) == 97


def test_families_each_get_their_own_max(table):
    observed, null = table
    families = np.array([["a"] * 4, ["b"] * 4, ["a", "a", "c", "c"]])
    res = _host(observed, null, families=families, chunk_size=13)
    for f in np.unique(families):
        m = families == f
        p, p_fwe = permutation_pvalues(observed[m], null[:, m])
        np.testing.assert_array_equal(res.p[m], np.asarray(p))
        np.testing.assert_array_equal(res.p_fwe[m], np.asarray(p_fwe))
    with pytest.raises(ValueError, match="families"):
        _host(observed, null, families=np.zeros(3))


@pytest.mark.parametrize("alternative", ALTS)
def test_nan_rules_as_permutation_pvalues(table, alternative):
    observed, null = table
    observed, null = observed.copy(), null.copy()
    observed[1, 2] = np.nan                    # NaN observed -> NaN p
    null[::3, 0, 1] = np.nan                   # NaN null values are not counted
    null[:, 2, 3] = np.nan                     # an all-NaN member is left out of the max
    null[4] = np.nan                           # a permutation with every member NaN
    families = np.repeat(np.arange(3), 4).reshape(3, 4)
    for fam in (None, families):
        res = _host(observed, null, alternative=alternative, chunk_size=8, families=fam)
        for f in np.unique(families if fam is not None else 0):
            m = (families == f) if fam is not None else np.ones(observed.shape, bool)
            p, p_fwe = permutation_pvalues(observed[m], null[:, m], alternative=alternative)
            np.testing.assert_array_equal(res.p[m], np.asarray(p))
            np.testing.assert_array_equal(res.p_fwe[m], np.asarray(p_fwe))
    assert np.isnan(res.p[1, 2]) and np.isnan(res.p[2, 3])


# --------------------------------------------------------------------------- jittable statistics


def group_difference(data, ids):
    """Mean of the first half minus the second half of each row, permuted: (c, n_rows)."""
    x, key, table = data
    n = x.shape[-1]
    perms = fold_or_table(key, table, ids, n)
    xp = x[:, perms]                                                   # (rows, c, n)
    return (xp[..., : n // 2].mean(-1) - xp[..., n // 2:].mean(-1)).T


def fold_or_table(key, table, ids, n):
    if table.shape[0] > 1:
        return table[ids]
    return pm.fold_in_permutations(key, ids, n)


def _data(rng, n=12, rows=5, exact=False):
    x = rng.standard_normal((rows, n)).astype(np.float32)
    x[0, : n // 2] += 2.0
    table = pm.exact_permutations(n, 10**9) if exact else np.zeros((1, n), np.int32)
    return (jnp.asarray(x), jax.random.PRNGKey(3), jnp.asarray(table))


@pytest.mark.parametrize("alternative", ALTS)
def test_device_engine_matches_host_engine(rng, alternative):
    data = _data(rng)
    observed = data[0][:, :6].mean(-1) - data[0][:, 6:].mean(-1)
    dev = pm.device_permutation_test(group_difference, data, observed, n_perm=203,
                                     alternative=alternative, chunk_size=8, return_null=True,
                                     devices=1)
    host = pm.permutation_test(lambda ids: group_difference(data, jnp.asarray(ids)), observed,
                               n_perm=203, permutations=lambda ids: ids,
                               alternative=alternative, chunk_size=50, return_null=True)
    np.testing.assert_allclose(np.asarray(dev.null), host.null, atol=1e-6)
    # the same counts; p rounded as p = hit * (1 / n) on device (see pvalues)
    np.testing.assert_allclose(np.asarray(dev.p), host.p, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(dev.p_fwe), host.p_fwe)
    bp, bpf = _brute(np.asarray(observed), np.asarray(dev.null), alternative)
    np.testing.assert_allclose(np.asarray(dev.p), bp, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(dev.p_fwe), bpf, rtol=1e-6)


def test_chunk_size_and_devices_never_change_the_device_result(rng):
    assert len(jax.devices("cpu")) == 4, "tests/conftest.py should force 4 CPU devices"
    data = _data(rng)
    observed = data[0][:, :6].mean(-1) - data[0][:, 6:].mean(-1)
    families = np.array([0, 0, 1, 1, 2])
    kw = dict(n_perm=301, return_null=True, families=families)
    ref = pm.device_permutation_test(group_difference, data, observed, chunk_size=301,
                                     devices=1, **kw)
    for chunk, dev in [(1, 1), (16, 1), (7, 4), (64, 2), (5, None)]:
        res = pm.device_permutation_test(group_difference, data, observed, chunk_size=chunk,
                                         devices=dev, **kw)
        np.testing.assert_array_equal(np.asarray(res.p), np.asarray(ref.p))
        np.testing.assert_array_equal(np.asarray(res.p_fwe), np.asarray(ref.p_fwe))
        np.testing.assert_allclose(np.asarray(res.null), np.asarray(ref.null), atol=1e-6)


def test_concurrent_host_slices_never_change_the_device_result(rng, monkeypatch):
    data = _data(rng)
    observed = data[0][:, :6].mean(-1) - data[0][:, 6:].mean(-1)
    ref = pm.device_permutation_test(group_difference, data, observed, n_perm=101,
                                     chunk_size=4, devices=1, return_null=True)
    monkeypatch.setattr(pm, "host_splits", lambda n_dev, n_steps: 3)
    res = pm.device_permutation_test(group_difference, data, observed, n_perm=101,
                                     chunk_size=4, devices=2, return_null=True)
    np.testing.assert_array_equal(np.asarray(res.p), np.asarray(ref.p))
    np.testing.assert_allclose(np.asarray(res.null), np.asarray(ref.null), atol=1e-6)


def test_exact_enumeration(rng):
    n = 6
    table = pm.exact_permutations(n, 720)
    assert table.shape == (math.factorial(n), n) and (table[0] == np.arange(n)).all()
    assert pm.exact_permutations(n, 719) is None
    data = _data(rng, n=n, rows=3, exact=True)
    x = np.asarray(data[0])
    observed = x[:, :3].mean(-1) - x[:, 3:].mean(-1)
    for dev in (1, 4):
        res = pm.device_permutation_test(group_difference, data, observed, n_perm=720,
                                         exact=True, chunk_size=16, devices=dev)
        brute = np.stack([x[:, t[:3]].mean(-1) - x[:, t[3:]].mean(-1) for t in table])
        bp, bpf = _brute(observed, brute, "greater", exact=True)
        np.testing.assert_allclose(np.asarray(res.p), bp, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(res.p_fwe), bpf, rtol=1e-6)
        assert res.exact and res.n_perm == 720 and np.asarray(res.p).min() >= 1 / 720


def test_memory_is_bounded_by_the_chunk(rng):
    """Without the null, the compiled scan holds chunks, never n_perm x n_cells."""
    x = jnp.asarray(rng.standard_normal((4096, 16)).astype(np.float32))
    data = (x, jax.random.PRNGKey(0), jnp.zeros((1, 16), jnp.int32))
    observed = jnp.zeros(4096)
    n_perm, chunk = 4096, 8
    ids = jnp.arange(n_perm, dtype=jnp.int32)
    kw = dict(chunk=chunk, alternative="greater", n_perm=n_perm, n_families=1, n_dev=1)
    full = n_perm * 4096 * 4
    lowered = pm.null_scan.lower(group_difference, data, ids, observed, None,
                                 return_null=False, **kw)
    mem = lowered.compile().memory_analysis()
    if mem is None:  # pragma: no cover - backend without memory analysis
        pytest.skip("no memory analysis on this backend")
    assert mem.temp_size_in_bytes + mem.output_size_in_bytes < full / 8
    with_null = pm.null_scan.lower(group_difference, data, ids, observed, None,
                                   return_null=True, **kw).compile().memory_analysis()
    assert with_null.output_size_in_bytes >= full


def test_rsa_keyword_n_devices_is_renamed(rng):
    R = np.array(aj.rdm(rng.normal(size=(3, 8, 4))))
    new = aj.rsa_permutation_test(R[:1], R[1:], n_perm=50, devices=2)
    with pytest.warns(DeprecationWarning, match="n_devices"):
        old = aj.rsa_permutation_test(R[:1], R[1:], n_perm=50, n_devices=2)
    np.testing.assert_array_equal(np.asarray(old.p), np.asarray(new.p))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        aj.rsa_permutation_test(R[:1], R[1:], n_perm=50)
