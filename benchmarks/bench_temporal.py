"""Benchmark: time-resolved RSA with EEG, from epochs to family-wise inference.

Workloads (full size; ``--quick`` shrinks every axis):

- ``chain``: 92 stimuli x 64 channels x 200 time points x 8 subjects; an RDM per subject
  and time point, RSA against 13 layers, then the sign-flip cluster test over subjects
  per layer (MNE's conventions). Baselines on the same data: mne-rsa (``rsa_array`` per
  subject) followed by ``mne.stats.permutation_cluster_1samp_test`` per layer, and
  rsatoolbox (``calc_rdm_movie`` + ``compare`` per subject). The answers are checked
  against each other before anything is timed (r values; cluster p-values identical
  under exact enumeration).
- ``fwe``: the same RDMs, 1,000 stimulus-label permutations applied identically at every
  time point, layer and subject, with cluster-mass FWE over layers x subjects x time
  (:func:`alignjax.temporal_rsa_permutation_test`), which neither baseline offers.

Run::

    python benchmarks/bench_temporal.py [--quick] [--only chain,fwe]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Recorder, check_close, parse_args, time_call, time_jax  # noqa: E402

import alignjax as aj  # noqa: E402

SIZES = dict(n=92, channels=64, times=200, subjects=8, layers=13, n_perm=1000, n_flip=1024)
QUICK = dict(n=30, channels=16, times=40, subjects=8, layers=4, n_perm=200, n_flip=1024)


def _problem(cfg, rng):
    n, C, T, S, L = cfg["n"], cfg["channels"], cfg["times"], cfg["subjects"], cfg["layers"]
    feats = rng.standard_normal((n, 20))
    model = np.stack([np.asarray(aj.rdm(feats + 0.5 * k * rng.standard_normal((n, 20))))
                      for k in range(L)])
    gain = np.exp(-0.5 * ((np.arange(T) - 0.6 * T) / (0.08 * T)) ** 2)
    topo = rng.standard_normal((20, C)) / np.sqrt(20)
    noise = np.cumsum(rng.standard_normal((S, n, C, T)), -1) * 0.3
    data = noise + 2.0 * gain * (feats @ topo)[None, :, :, None] + rng.standard_normal((S, n, C, T))
    return model.astype(np.float64), data.astype(np.float32)


def alignjax_chain(model, data, n_flip):
    R = aj.temporal_rdms(data)
    r = np.asarray(aj.temporal_rsa(model, R.rdms))                      # (L, S, T)
    tests = [aj.cluster_permutation_test(r[l], n_perm=n_flip, tail=0) for l in range(len(r))]
    return r, tests


def mne_rsa_chain(model, data, n_flip):
    import mne
    import mne_rsa
    from mne.stats import permutation_cluster_1samp_test

    mne.set_log_level("ERROR")
    S = data.shape[0]
    r = np.stack([np.asarray(mne_rsa.rsa_array(
        data[s], list(model), patches=mne_rsa.searchlight(data[s].shape, temporal_radius=0),
        data_rdm_metric="correlation", rsa_metric="spearman")) for s in range(S)], axis=1)
    tests = [permutation_cluster_1samp_test(r[l], n_permutations=n_flip, tail=0,
                                            out_type="mask") for l in range(len(r))]
    return r, tests


def rsatoolbox_chain(model, data):
    from rsatoolbox.data import TemporalDataset
    from rsatoolbox.rdm import RDMs, calc_rdm_movie, compare

    n, T = data.shape[1], data.shape[3]
    out = []
    for x in data:
        ds = TemporalDataset(x, obs_descriptors={"conds": np.arange(n)},
                             time_descriptors={"time": np.arange(T)})
        movie = calc_rdm_movie(ds, method="correlation", descriptor="conds")
        out.append(compare(RDMs(model), movie, method="spearman"))     # (L, T)
    return np.stack(out, axis=1)


def bench_chain(rec, cfg, rng, repeats):
    model, data = _problem(cfg, rng)
    t0 = time.perf_counter()
    ours = alignjax_chain(model, data, cfg["n_flip"])
    first = time.perf_counter() - t0
    t_mne = time_call(lambda: mne_rsa_chain(model, data, cfg["n_flip"]), repeats=1)
    ref_r, ref_tests = t_mne["output"]
    check_close("chain: r vs mne-rsa", ours[0], ref_r, atol=2e-4)
    for l, (mine, theirs) in enumerate(zip(ours[1], ref_tests)):
        if not mine.exact:
            continue
        masks = []
        for c in theirs[1]:
            m = np.zeros(mine.t_obs.shape, bool)
            m[c] = True
            masks.append(m)
        for mask, p in zip(mine.clusters, mine.cluster_p):
            k = next(i for i, m in enumerate(masks) if (m == mask).all())
            check_close(f"chain: cluster p of layer {l}", p, theirs[2][k], atol=1e-6)
    t_rt = time_call(lambda: rsatoolbox_chain(model, data), repeats=1)
    check_close("chain: r vs rsatoolbox", ours[0], t_rt["output"], atol=2e-4)
    t = time_jax(lambda: alignjax_chain(model, data, cfg["n_flip"])[0], repeats=repeats)
    t["compile_seconds"] = max(first - t["seconds"], 0.0)
    rec.add("chain", "alignjax", t,
            baseline_seconds={"mne_rsa_mne": t_mne["seconds"], "rsatoolbox": t_rt["seconds"]},
            **cfg)
    rec.add("chain", "mne_rsa+mne.stats", t_mne, **cfg)
    rec.add("chain", "rsatoolbox (RSA only)", t_rt, **cfg)
    return model, data


def bench_fwe(rec, cfg, model, data, repeats):
    brain = np.asarray(aj.temporal_rdms(data).rdms)
    t0 = time.perf_counter()
    res = aj.temporal_rsa_permutation_test(model, brain, n_perm=cfg["n_perm"],
                                           correction="cluster")
    first = time.perf_counter() - t0
    assert res.r.shape == (cfg["layers"], cfg["subjects"], cfg["times"])
    t = time_jax(lambda: aj.temporal_rsa_permutation_test(
        model, brain, n_perm=cfg["n_perm"], correction="cluster").p_fwe,
        repeats=max(1, repeats // 2))
    t["compile_seconds"] = max(first - t["seconds"], 0.0)
    flops = 2.0 * cfg["layers"] * brain.shape[-1] * cfg["subjects"] * cfg["times"] * cfg["n_perm"]
    rec.add("fwe", "alignjax", t, flops=flops,
            n_clusters=int(len(res.cluster_p)), n_significant=int((res.cluster_p < 0.05).sum()),
            **cfg)


def main():
    args = parse_args(__doc__)
    rec = Recorder("temporal", args.out, quick=args.quick)
    cfg = QUICK if args.quick else SIZES
    only = set(args.only.split(",")) if args.only else {"chain", "fwe"}
    rng = np.random.default_rng(0)
    print(f"sizes: {cfg}", flush=True)
    model, data = _problem(cfg, rng)
    if "chain" in only:
        model, data = bench_chain(rec, cfg, np.random.default_rng(0), args.repeats)
    if "fwe" in only:
        bench_fwe(rec, cfg, model, data, args.repeats)
    rec.save()


if __name__ == "__main__":
    main()
