"""Subcommands of time-resolved analyses: temporal-rsa, simulate-eeg."""

from __future__ import annotations

from .common import parse_names

__all__ = ["add_temporal_rsa", "add_simulate_eeg"]


def add_temporal_rsa(sub) -> None:
    p = sub.add_parser(
        "temporal-rsa", help="time-resolved RSA of model layers against EEG/MEG epochs",
        description="Build an RDM per subject and time window from the epochs (trials averaged "
                    "per stimulus, matched to the features by stimulus id), compare every layer "
                    "with them, test with stimulus-label permutations (cluster-mass or max-"
                    "statistic FWE over layers x time) and, from 6 subjects, a sign-flip cluster "
                    "test over subjects; writes temporal_rsa.csv, temporal_rsa.json and figures.")
    p.add_argument("--features", required=True,
                   help="feature store, directory of per-layer .npy (+ stimulus_ids.txt), or .npz")
    p.add_argument("--epochs", required=True, metavar="FILE_OR_DIR",
                   help="MNE -epo.fif, .npz/.h5 (data, times, stimulus_ids[, subject]), or a "
                        "folder of them (one subject per file)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--window", type=int, default=1, help="samples per RDM window (default 1)")
    p.add_argument("--step", type=int, default=1, help="samples between windows (default 1)")
    p.add_argument("--n-perm", type=int, default=1000)
    p.add_argument("--correction", default="cluster", choices=["cluster", "max"])
    p.add_argument("--cluster-threshold", type=float, default=None,
                   help="cluster-forming r (default: 95th percentile of pilot permutations)")
    p.add_argument("--method", default="spearman", choices=["spearman", "pearson", "cosine", "rho_a"])
    p.add_argument("--metric", default="correlation",
                   choices=["correlation", "cosine", "euclidean", "sqeuclidean"],
                   help="distance for the model RDMs")
    p.add_argument("--brain-metric", default="correlation",
                   choices=["correlation", "cosine", "euclidean", "sqeuclidean"])
    p.add_argument("--cv-folds", type=int, default=None,
                   help="cross-validated brain RDMs over this many folds of repeated trials")
    p.add_argument("--noise-norm", action="store_true",
                   help="multivariate noise normalisation with the baseline covariance")
    p.add_argument("--searchlight", action="store_true",
                   help="also a channel searchlight (needs MNE epochs with a montage)")
    p.add_argument("--picks", default=None, metavar="TYPE_OR_NAMES",
                   help="channels, as MNE's picks: a channel type (eeg, mag, grad), 'data', "
                        "'all', or comma-separated channel names (default: the data channels "
                        "of one type, without info['bads']; EOG/ECG/stim/misc left out)")
    p.add_argument("--layers", default=None, help="comma-separated layer names (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_temporal_rsa)


def _parse_picks(text):
    """``--picks``: one token as a string (an MNE channel type, 'data', 'all' or a name),
    several comma-separated ones as a list of channel names (None when unset)."""
    names = parse_names(text)
    return None if names is None else names[0] if len(names) == 1 else names


def _cmd_temporal_rsa(args) -> int:
    from alignjax.app.studies.temporal import run_temporal_rsa

    s = run_temporal_rsa(args.features, args.epochs, args.out, window=args.window,
                         step=args.step, n_perm=args.n_perm, correction=args.correction,
                         cluster_threshold=args.cluster_threshold, method=args.method,
                         metric=args.metric, brain_metric=args.brain_metric,
                         cv_folds=args.cv_folds, noise_norm=args.noise_norm,
                         searchlight=args.searchlight, picks=_parse_picks(args.picks),
                         layers=parse_names(args.layers),
                         seed=args.seed, progress=not args.no_progress)
    print(f"temporal RSA of {len(s['layers'])} layers x {s['n_subjects']} subjects "
          f"({s['n_stimuli']} stimuli, {len(s['times'])} windows, {s['n_perm']} permutations, "
          f"{s['correction']} FWE) in {s['seconds']:.1f} s")
    left = ", ".join(f"{c} ({why})" for c, why in s["excluded_channels"].items())
    print(f"  {s['n_channels']} channels ({', '.join(s['channel_types'] or ['untyped'])})"
          + (f"; left out: {left}" if left else ""))
    for layer, sp in s["significant_spans"].items():
        if sp:
            txt = ", ".join(f"{1000 * a:.0f}-{1000 * b:.0f} ms" for a, b in sp)
            print(f"  {layer}: significant {txt}")
    print(f"wrote {args.out}/temporal_rsa.csv, temporal_rsa.json and figures")
    return 0


def add_simulate_eeg(sub) -> None:
    p = sub.add_parser(
        "simulate-eeg", help="simulated EEG epochs with a layer planted in a known time window",
        description="Write simulated epochs (64 channels, 100 Hz, -100..800 ms, autocorrelated "
                    "noise) whose channels express one layer between 250 and 500 ms. Without "
                    "--features a synthetic feature directory (165 stimuli x 6 layers) is "
                    "written too, with layer3 planted.")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--features", default=None, help="feature store or layer directory to plant")
    p.add_argument("--layer", default=None, help="layer to plant (default layer3 / the middle one)")
    p.add_argument("--n-stimuli", type=int, default=165,
                   help="stimuli of the synthetic features (without --features)")
    p.add_argument("--n-subjects", type=int, default=8)
    p.add_argument("--n-channels", type=int, default=64)
    p.add_argument("--n-trials", type=int, default=2)
    p.add_argument("--snr", type=float, default=0.6)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_simulate_eeg)


def _cmd_simulate_eeg(args) -> int:
    from pathlib import Path

    import numpy as np

    from alignjax.io import load_layers
    from alignjax.app.studies.simulate_eeg import (PLANTED_LAYER, PLANTED_WINDOW, simulate_eeg,
                                                   synthetic_layers)

    out = Path(args.out)
    features = args.features or synthetic_layers(out / "features", n_stimuli=args.n_stimuli,
                                                 seed=args.seed)
    ls = load_layers(features)
    layer = args.layer or (PLANTED_LAYER if PLANTED_LAYER in ls.names
                           else ls.names[len(ls.names) // 2])
    X = np.asarray(ls.arrays[ls.names.index(layer)], float)
    path = simulate_eeg(X.reshape(X.shape[0], -1), ls.stimulus_ids, out / "epochs.npz",
                        n_subjects=args.n_subjects, n_channels=args.n_channels,
                        n_trials=args.n_trials, snr=args.snr, seed=args.seed)
    print(f"{path}: {args.n_subjects} subjects x {len(ls.stimulus_ids)} stimuli x "
          f"{args.n_trials} trials; {layer!r} of {features} planted at "
          f"{1000 * PLANTED_WINDOW[0]:.0f}-{1000 * PLANTED_WINDOW[1]:.0f} ms")
