"""Extraction throughput: clips per second into a feature store, against a naive loop.

Workloads: a tiny (hidden 32, 2 layers) and a base-size (hidden 768, 12 layers, the
wav2vec2-base architecture) randomly initialised wav2vec2 saved with ``save_pretrained``
and loaded through ``hf:DIR``; a tiny audio LLM (Qwen2-Audio: audio tower and decoder
states at the audio tokens) and a tiny codec (EnCodec, encoder blocks through hooks)
(:mod:`extractors.tiny_zoo`); and the spectral baselines (mel, MFCC, modulation). With a
GPU, also a base-size Qwen2-Audio (12 + 12 layers of width 768, 30 s window) and the
EnCodec 24 kHz architecture.

alignjax: ``extractors.run.extract`` (equal-length batches, mean pooling, one resumable
store). Naive baseline: one clip per forward pass and ``np.save`` of every layer of every
clip to its own file. Both are checked to give the same pooled features before timing.
On CPU, and on CUDA too when torch sees a GPU.

Durable writes (mel and the tiny wav2vec2, CPU): the store's checkpoint intervals
(``sync_every``: every batch, every second (the default), only at the end) in interleaved
runs, at least 5 rounds (``--repeats``), median, quartiles and range.

    python benchmarks/bench_extract.py --quick
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.harness import Recorder, check_close, parse_args, time_call  # noqa: E402


def _make_wav2vec2(root: Path, size: str) -> Path:
    from extractors.tiny import build_random_model

    return build_random_model("wav2vec2", root / size, size=size, seed=0)


def _make_llm(root: Path, size: str) -> Path:
    from extractors.tiny_zoo import build_tiny_llm

    return build_tiny_llm("qwen2_audio", root / f"llm-{size}", size=size,
                          chunk_s=2 if size == "tiny" else 30)


def _make_codec(root: Path, size: str) -> Path:
    from extractors.tiny_zoo import build_tiny_codec

    return build_tiny_codec("encodec", root / f"codec-{size}", size=size)


def _naive(spec: str, stimuli: list, out: Path, *, device: str) -> dict[str, np.ndarray]:
    """One clip per forward pass, one np.save per clip per layer."""
    from extractors.audio import load_audio
    from extractors.spec import load_extractor

    ext = load_extractor(spec, device=device)
    names = ext.layer_names()
    out.mkdir(parents=True, exist_ok=True)
    for s in stimuli:
        w = load_audio(s.path, sample_rate=ext.sample_rate)
        acts = ext.forward(w[None], names)
        for k, name in enumerate(names):
            np.save(out / f"{s.id}__{k}.npy", acts[name][0].mean(axis=0))
    return {name: np.stack([np.load(out / f"{s.id}__{k}.npy") for s in stimuli])
            for k, name in enumerate(names)}


SYNC_MODES = {"every-batch": 0.0, "every-1s": 1.0, "at-finish-only": 1e9}


def _durability(rec, name: str, spec: str, stimuli: list, tmp: Path, *, repeats: int,
                n_clips: int, seconds: float) -> None:
    """The cost of durable writes: the store's checkpoint intervals, runs interleaved.

    ``every-batch`` msyncs the rows and fsyncs the manifest and directory after every
    batch, ``every-1s`` (the default) at most once a second, ``at-finish-only`` once, when
    the store is finished (no durable checkpoint while rows are written). The modes take
    turns (one run of each per round, the order rotated every round) so a machine whose
    speed drifts slows them alike; median, quartiles and range over ``repeats`` rounds.
    """
    import statistics
    import time

    from extractors.run import extract

    times: dict[str, list[float]] = {m: [] for m in SYNC_MODES}
    modes = list(SYNC_MODES)
    extract(spec, stimuli, tmp / "durability-warmup", batch_size=8, progress=False)
    for r in range(repeats):
        for mode in modes[r % len(modes):] + modes[:r % len(modes)]:
            out = tmp / f"durability-{name}-{mode}-{r}"
            t0 = time.perf_counter()
            extract(spec, stimuli, out, batch_size=8, progress=False,
                    sync_every=SYNC_MODES[mode])
            times[mode].append(time.perf_counter() - t0)
            shutil.rmtree(out, ignore_errors=True)
    base = statistics.median(times["at-finish-only"])
    for mode, ts in times.items():
        q1, _, q3 = statistics.quantiles(ts, n=4) if len(ts) > 1 else (ts[0],) * 3
        med = statistics.median(ts)
        rec.add(f"{name}/{n_clips}x{seconds:g}s/cpu/durability", f"sync-{mode}",
                {"seconds": med, "repeats": len(ts)}, sync_every=SYNC_MODES[mode],
                all_seconds=ts, q1=q1, q3=q3, min=min(ts), max=max(ts),
                cost_vs_finish_only=med / base - 1, n_clips=n_clips, clip_seconds=seconds)
        print(f"{name} durability {mode}: median {med:.2f} s (IQR {q1:.2f}-{q3:.2f}, range "
              f"{min(ts):.2f}-{max(ts):.2f}), {100 * (med / base - 1):+.1f}% vs at-finish-only",
              flush=True)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    import torch

    from extractors.audio import list_stimuli
    from extractors.run import extract
    from extractors.synth import synthesize

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    quick = args.quick
    n_clips = 8 if quick else 165  # the target size: 165 clips of 2 s
    seconds = 1.0 if quick else 2.0
    repeats = 1 if quick else min(args.repeats, 3)
    rec = Recorder("extract", args.out, quick=quick)
    tmp = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    try:
        csv_path = synthesize(tmp / "stim", n=n_clips, seed=0, duration=seconds,
                              categories=["impact", "harmonic", "noise", "chirp", "am", "fm",
                                          "clicks"])
        stimuli = list_stimuli(csv_path)
        makers = {
            "wav2vec2-tiny": lambda: f"hf:{_make_wav2vec2(tmp, 'tiny')}",
            "wav2vec2-base": lambda: f"hf:{_make_wav2vec2(tmp, 'base')}",
            "qwen2audio-tiny": lambda: f"hf:{_make_llm(tmp, 'tiny')}",
            "encodec-tiny": lambda: f"hf:{_make_codec(tmp, 'tiny')}",
            "spectral-mel": lambda: "spectral:mel",
            "spectral-mfcc": lambda: "spectral:mfcc",
            "spectral-modulation": lambda: "spectral:modulation",
        }
        if torch.cuda.is_available():
            makers["qwen2audio-base"] = lambda: f"hf:{_make_llm(tmp, 'base')}"
            makers["encodec-base"] = lambda: f"hf:{_make_codec(tmp, 'base')}"
        if args.only:
            keep = set(args.only.split(","))
            makers = {k: v for k, v in makers.items() if k in keep}
        models = {k: make() for k, make in makers.items()}
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        counter = iter(range(10**6))
        for device in devices:
            for name, spec in models.items():
                if name.endswith("-base") and name != "wav2vec2-base" and device == "cpu":
                    continue  # GPU-only workloads
                workload = f"{name}/{n_clips}x{seconds:g}s/{device}"

                def run_store():
                    out = tmp / f"store{next(counter)}"
                    store = extract(spec, stimuli, out, batch_size=8, device=device,
                                    progress=False)
                    return {k: np.asarray(store[k]) for k in store.layers}

                def run_naive():
                    return _naive(spec, stimuli, tmp / f"naive{next(counter)}", device=device)

                got, want = run_store(), run_naive()  # warm-up + agreement check
                tol = dict(rtol=1e-3, atol=1e-4)
                for layer in want:
                    check_close(f"{workload}:{layer}", got[layer], want[layer], **tol)
                t_naive = time_call(run_naive, repeats=repeats)
                t_store = time_call(run_store, repeats=repeats)
                rec.add(workload, "naive-loop", t_naive, clips_per_s=n_clips / t_naive["seconds"],
                        n_clips=n_clips, clip_seconds=seconds, spec=spec.split(":")[0])
                rec.add(workload, "alignjax-extract", t_store,
                        baseline_seconds={"naive": t_naive["seconds"]},
                        clips_per_s=n_clips / t_store["seconds"], n_clips=n_clips,
                        clip_seconds=seconds, spec=spec.split(":")[0])
                print(f"{workload}: extract {n_clips / t_store['seconds']:.1f} clips/s, "
                      f"naive {n_clips / t_naive['seconds']:.1f} clips/s", flush=True)
                if device == "cpu" and name in ("spectral-mel", "wav2vec2-tiny"):
                    _durability(rec, name, spec, stimuli, tmp, n_clips=n_clips,
                                seconds=seconds, repeats=1 if quick else max(args.repeats, 5))
        rec.save()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
