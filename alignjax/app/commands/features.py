"""Subcommands of the torch side: extract, layers, synth, synth-spatial."""

from __future__ import annotations

from .common import parse_floats, parse_names

__all__ = ["add_extract", "add_synth", "add_layers", "add_synth_spatial"]


def add_extract(sub) -> None:
    p = sub.add_parser("extract", help="extract model activations into a feature store (torch)")
    p.add_argument("--model", required=True, metavar="SPEC",
                   help="hf:DIR_OR_ID, torch:module:factory, crepe:tiny|full, silero, "
                        "spectral:mel|mfcc|modulation")
    p.add_argument("--stimuli", required=True, metavar="DIR_OR_CSV",
                   help="folder of audio files, or a CSV with id,path columns")
    p.add_argument("--out", required=True, metavar="DIR", help="feature store directory")
    p.add_argument("--layers", nargs="+", default=None, help="layer names (default: all)")
    p.add_argument("--pooling", default="mean", choices=["mean", "max", "first", "stats", "none"])
    p.add_argument("--batch-size", type=int, default=8, help="clips per forward pass (equal lengths only)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="storage dtype; bfloat16 runs an audio LLM in bfloat16 (stored as float32)")
    p.add_argument("--duration", type=float, default=None, help="crop/pad every clip to SECONDS")
    p.add_argument("--n-frames", type=int, default=None, help="common frame count for --pooling none")
    p.add_argument("--prompt", default=None,
                   help="audio LLMs: text prompt, placed before the audio (default: empty; "
                        "recorded)")
    p.add_argument("--frame-rate", type=float, default=None, metavar="HZ",
                   help="--pooling none: resample every layer's frames to HZ (times recorded)")
    p.add_argument("--checkpoints", default=None, metavar="GLOB",
                   help="with --model hf:DIR: extract every checkpoint DIR/GLOB into "
                        "OUT/<checkpoint> (training step recorded)")
    p.add_argument("--on-error", default="stop", choices=["stop", "skip"],
                   help="unreadable/unusable clips: stop, or skip and list them in the manifest")
    p.add_argument("--channels", default="mix",
                   help="multichannel clips: mix (average), left, right, a channel index, or "
                        "each (every channel extracted; layer L of channel k stored as L@chk, "
                        "all channels concatenated as L@chans)")
    p.add_argument("--channel-format", default=None,
                   choices=["plain", "foa-acn-sn3d", "foa-acn-n3d", "foa-fuma", "foa"],
                   help="what the channels are: plain (independent signals: mix averages "
                        "them) or first-order ambisonics (foa = foa-acn-sn3d, AmbiX; "
                        "foa-acn-n3d; foa-fuma), for which mix is the omnidirectional W "
                        "(default: the stimulus CSV's format column, as synth-spatial "
                        "writes it, else plain; recorded in the manifest)")
    p.add_argument("--force", action="store_true",
                   help="discard the feature store already in --out (e.g. one extracted with "
                        "other weights, which is refused otherwise) and extract anew")
    p.add_argument("--sync-every", type=float, default=1.0, metavar="SECONDS",
                   help="seconds between durable checkpoints of the rows written (a crash or "
                        "kill recomputes at most the last SECONDS of rows); 0: every batch "
                        "(default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("sharded extraction")
    g.add_argument("--shard", default=None, metavar="I/N",
                   help="compute only shard I of N (0 <= I < N), for any scheduler; rerun "
                        "without --shard to merge the shards and fill what is missing")
    g.add_argument("--slurm", action="store_true",
                   help="submit --jobs shards as a SLURM job array (submitit), wait, merge")
    g.add_argument("--jobs", type=int, default=None, help="number of shards with --slurm")
    g.add_argument("--partition", default=None, help="SLURM partition with --slurm")
    g.add_argument("--gpus-per-job", type=int, default=0, help="GPUs per array task")
    g.add_argument("--slurm-timeout", type=int, default=240, metavar="MIN",
                   help="minutes per array task (default %(default)s)")
    g.add_argument("--cluster", default=None, choices=["slurm", "local"],
                   help="submitit executor for --slurm (default: SLURM when available)")
    p.set_defaults(func=_cmd_extract)


def _cmd_extract(args) -> int:
    from alignjax.errors import InvalidOptionError
    from extractors.run import extract
    from extractors.shards import extract_on_slurm, parse_shard

    kw = dict(layers=args.layers, pooling=args.pooling, batch_size=args.batch_size,
              device=args.device, dtype=args.dtype, duration=args.duration,
              n_frames=args.n_frames, on_error=args.on_error, progress=not args.quiet,
              prompt=args.prompt, frame_rate=args.frame_rate, force=args.force,
              sync_every=args.sync_every, channel_format=args.channel_format,
              channels=int(args.channels) if args.channels.isdigit() else args.channels)
    if (args.slurm or args.shard is not None) and args.checkpoints is not None:
        raise InvalidOptionError("--checkpoints runs one extraction per checkpoint; shard "
                                 "each checkpoint's store with its own --model hf:DIR")
    if args.slurm:
        if args.shard is not None or not args.jobs:
            raise InvalidOptionError("--slurm needs --jobs N (and no --shard)")
        stores = [extract_on_slurm(jobs=args.jobs, cluster=args.cluster,
                                   partition=args.partition, gpus_per_job=args.gpus_per_job,
                                   timeout_min=args.slurm_timeout, spec=args.model,
                                   stimuli=args.stimuli, out=args.out, **kw)]
    elif args.shard is not None:
        store = extract(args.model, args.stimuli, args.out, **kw, shard=parse_shard(args.shard))
        print(f"{store.path}: shard {args.shard} written; run the same command without "
              "--shard to merge the shards")
        return 0
    elif args.checkpoints is not None:
        from extractors.checkpoints import extract_checkpoints

        stores = extract_checkpoints(args.model, args.checkpoints, args.stimuli, args.out, **kw)
    else:
        stores = [extract(args.model, args.stimuli, args.out, **kw)]
    for store in stores:
        n_skip = len(store.skipped)
        step = "" if store.training_step is None else f" (step {store.training_step})"
        print(f"{store.path}{step}: {len(store.stimulus_ids) - n_skip} stimuli x "
              f"{len(store.layers)} layers"
              + (f" ({n_skip} skipped, listed in manifest.json)" if n_skip else ""))
    return 0


def add_synth(sub) -> None:
    p = sub.add_parser("synth", help="synthesise a labelled stimulus set (impacts, tones, ...)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--n", type=int, default=56, help="number of stimuli")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=1.0, help="seconds per stimulus")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--categories", default=None,
                   help="comma-separated subset of impact,harmonic,noise,chirp,am,fm,clicks,speech")
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(args) -> int:
    from extractors.synth import synthesize

    cats = parse_names(args.categories)
    csv_path = synthesize(args.out, n=args.n, seed=args.seed, duration=args.duration,
                          sample_rate=args.sample_rate, categories=cats)
    print(f"{args.n} stimuli written to {args.out}; labels in {csv_path}")
    return 0


def add_layers(sub) -> None:
    p = sub.add_parser("layers", help="list a model's layer names and output shapes")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seconds", type=float, default=1.0, help="probe clip length")
    p.set_defaults(func=_cmd_layers)


def _cmd_layers(args) -> int:
    from extractors.run import layer_table

    rows = layer_table(args.spec, device=args.device, seconds=args.seconds)
    width = max(len(n) for n, _ in rows)
    print(f"{'layer':<{width}}  shape (n_frames, n_features) for {args.seconds:g} s")
    for name, shape in rows:
        print(f"{name:<{width}}  {shape}")
    return 0


def add_synth_spatial(sub) -> None:
    p = sub.add_parser(
        "synth-spatial", help="render a balanced set of spatial scenes (rooms, directions, "
                              "distances; binaural, FOA, stereo or mono)",
        description="Render dry sources in shoebox and L-shaped rooms with pyroomacoustics "
                    "(needs alignjax[spatial]). Writes one WAV per scene, labels.csv (azimuth: "
                    "0 = front, +90 = left; elevation +90 = up; measured RT60, DRR, group ids) "
                    "and pairs.csv (one-factor perturbation pairs for the sensitivity analysis).")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--n", type=int, default=240, help="scenes of the balanced design")
    p.add_argument("--format", default="binaural", choices=["binaural", "foa", "stereo", "mono"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=2.0, help="seconds per clip")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--sources", default=None, metavar="DIR",
                   help="folder of dry sounds (one class per sub-folder) instead of the synthesiser")
    p.add_argument("--azimuths", default=None, help="comma-separated degrees (default 0,45,...,315)")
    p.add_argument("--elevations", default=None, help="comma-separated degrees (default -20,0,20)")
    p.add_argument("--distances", default=None, help="comma-separated metres (default 1,1.5,2)")
    p.add_argument("--rt60s", default=None, help="comma-separated seconds (default 0.3,0.6,0.9)")
    p.add_argument("--classes", default=None, help="comma-separated synthesiser categories")
    p.add_argument("--volumes", default=None, help="comma-separated of small,large (default both)")
    p.add_argument("--shapes", default=None, help="comma-separated of shoebox,lshape (default both)")
    p.add_argument("--n-anchors", type=int, default=4, help="anchor scenes of the perturbation sets")
    p.add_argument("--no-perturb", action="store_true", help="no perturbation sets")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_synth_spatial)


def _cmd_synth_spatial(args) -> int:
    from extractors.spatial import synthesize_spatial

    design = {k: v for k, v in dict(
        azimuths=parse_floats(args.azimuths), elevations=parse_floats(args.elevations),
        distances=parse_floats(args.distances), rt60s=parse_floats(args.rt60s),
        classes=parse_names(args.classes),
        volumes=parse_names(args.volumes),
        shapes=parse_names(args.shapes)).items() if v is not None}
    path = synthesize_spatial(args.out, n=args.n, fmt=args.format, seed=args.seed,
                              duration=args.duration, sample_rate=args.sample_rate,
                              sources=args.sources, n_anchors=args.n_anchors,
                              perturb=not args.no_perturb, progress=not args.quiet, **design)
    print(f"{args.format} scenes written to {args.out}; labels in {path}")
    return 0
