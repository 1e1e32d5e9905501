"""False-positive rates and null scores of alignjax's tests on pure-noise data.

Prints, for each test, the rate of p < 0.05 and the mean p over many null layers or voxels,
and the median cross-validated r of null voxels (encode) and null targets (ridge_probe):
the numbers of the README's "Inference you can publish" table. About 3 minutes on 2 cores.

Usage: ``python benchmarks/null_rates.py``
"""
import time
import numpy as np
import alignjax as aj
# 1. probe permutation test, fixed C, the case
for C in (1e-2, 1e-4):
    ps = []
    for ds in range(10):
        rng = np.random.default_rng(100 + ds)
        y = rng.permutation(np.repeat([0, 1], 20))
        layers = [rng.standard_normal((40, 8)) for _ in range(20)]
        r = aj.probe_permutation_test(layers, y, C=C, folds=5, n_perm=99, seed=ds, chunk_size=50)
        ps.append(r.p)
    ps = np.concatenate(ps)
    print(f"probe fixed C={C}: {len(ps)} noise layers, rate p<.05 {np.mean(ps<.05):.3f}, mean p {ps.mean():.3f}", flush=True)
# 1b. the command line's path: C chosen by nested CV for every labelling
Cs = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)
ps = []
t0 = time.time()
for ds in range(4):
    rng = np.random.default_rng(700 + ds)
    y = rng.permutation(np.repeat([0, 1], 20))
    layers = [rng.standard_normal((40, 8)) for _ in range(20)]
    r = aj.probe_permutation_test(layers, y, Cs=Cs, inner_folds=3, folds=5, n_perm=99, seed=ds,
                                  chunk_size=25)
    ps.append(r.p)
ps = np.concatenate(ps)
print(f"probe CLI path (nested C): {len(ps)} noise layers, rate p<.05 {np.mean(ps<.05):.3f}, mean p {ps.mean():.3f} ({time.time()-t0:.0f} s)", flush=True)
# 2. encode null median r
rng = np.random.default_rng(0)
X = rng.standard_normal((165, 100)); Y = rng.standard_normal((165, 500))
res = aj.encode([X], Y, alphas=np.logspace(-2, 8, 11), outer_folds=5, inner_folds=5)
print(f"encode null voxels (165 x 100, 5x5): median r {np.median(res.r):.3f}", flush=True)
rs = []
for ds in range(30):
    rng = np.random.default_rng(500 + ds)
    rp = aj.ridge_probe([rng.standard_normal((60, 8))], rng.standard_normal(60), folds=5, seed=ds)
    rs.append(rp.pearson_r[0])
print(f"ridge_probe null target (60 stimuli, 30 draws): median r {np.median(rs):.3f}", flush=True)
# 3. encoding permutation test on null voxels
ps = []
t0 = time.time()
for ds in range(10):
    rng = np.random.default_rng(600 + ds)
    X = rng.standard_normal((60, 20)); Y = rng.standard_normal((60, 40))
    r = aj.encoding_permutation_test([X], Y, alphas=np.logspace(-2, 4, 7), folds=5, n_perm=99,
                                     seed=ds, encode_options={"inner_folds": 3})
    ps.append(r.p)
ps = np.concatenate(ps)
print(f"encoding permutation test: {len(ps)} null voxels, rate p<.05 {np.mean(ps<.05):.3f}, mean p {ps.mean():.3f} ({time.time()-t0:.0f} s)", flush=True)
