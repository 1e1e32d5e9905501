"""Sharded extraction: N writers fill one feature store, on any scheduler or through SLURM.

``extract(..., shard=(i, n))`` computes the i-th of n shares of the planned batches into
its own store under ``OUT/.shards/shard-I-of-N`` (its own manifest and done-record, no
shared temporary names, resumable by itself). ``extract(...)`` without ``shard`` then
folds every shard's written rows into ``OUT`` (in the order an uninterrupted run writes
them), computes whatever rows are still missing, finishes the store and removes the
shards: the result is byte-identical to a single-process extraction, because shards run
exactly the batches a single process would.

:func:`extract_on_slurm` submits the shards as a SLURM job array through submitit (the
optional extra ``[cluster]``), waits for it and merges; its local executor runs the same
code path on one machine.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from alignjax.errors import InvalidOptionError, StoreError
from alignjax.io import MANIFEST, FeatureStore, StoreWriter

SHARDS = ".shards"


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N), with 0 <= I < N."""
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise InvalidOptionError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    return check_shard((i, n))


def check_shard(shard: Sequence[int]) -> tuple[int, int]:
    """A valid (index, count) pair, or a clear error."""
    i, n = (int(x) for x in shard)
    if n < 1 or not 0 <= i < n:
        raise InvalidOptionError(f"shard index {i} is out of range for {n} shards "
                                 f"(0 <= index < {n})")
    return i, n


def shard_dir(out: Path, i: int, n: int) -> Path:
    """The directory shard ``i`` of ``n`` writes into."""
    return Path(out) / SHARDS / f"shard-{i}-of-{n}"


def shard_batches(batches: list[list[int]], i: int, n: int) -> list[list[int]]:
    """The planned batches shard ``i`` of ``n`` computes (every n-th, from the i-th)."""
    return batches[i::n]


def shard_dirs(out: Path) -> list[Path]:
    """The shard stores under ``out`` (sorted), if any."""
    root = Path(out) / SHARDS
    return sorted(p for p in root.glob("shard-*-of-*") if (p / MANIFEST).is_file()) \
        if root.is_dir() else []


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    """``"key: A vs B"`` for each (dotted) key whose values differ between two manifests'
    entries; lists are compared whole (a stimulus list by its first differing position)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in _differences(a.get(k, "<absent>"), b.get(k, "<absent>"),
                                      f"{where}.{k}" if where else str(k))]
    if a == b:
        return []
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        return [f"{where}[{i}]: {a[i]!r} vs {b[i]!r}"]
    if isinstance(a, list) and isinstance(b, list):
        return [f"{where}: {len(a)} entries vs {len(b)}"]
    return [f"{where}: {a!r} vs {b!r}"]


def _check_same_request(shard: FeatureStore, writer: StoreWriter) -> None:
    """A shard made with another model, stimulus set or settings is never mixed in."""
    m, w = shard.manifest, writer.manifest
    for key in ("spec", "stimulus_ids", "settings"):
        if m.get(key) != w.get(key):
            diffs = _differences(m.get(key), w.get(key), key)
            shown = "; ".join(diffs[:5]) + (f"; and {len(diffs) - 5} more" if len(diffs) > 5
                                             else "")
            raise StoreError(
                f"{shard.path} was extracted with a different {key} than this run "
                f"(shard vs this run: {shown}); two launches wrote this store with "
                "different settings. Delete that shard directory (or choose another --out) "
                "and rerun")


def merge_shards(out: Path, writer: StoreWriter, batches: list[list[int]],
                 names: list[str]) -> int:
    """Fold every shard's written rows into ``writer`` (the store at ``out``).

    Rows are written batch by batch in the plan's order, as an uninterrupted run writes
    them, so the layer files, their order in the manifest and the manifest itself come
    out the same. Returns the number of rows taken from the shards.
    """
    shards = [FeatureStore(d) for d in shard_dirs(out)]
    for s in shards:
        _check_same_request(s, writer)
    owner = _row_owners(shards, names, len(writer.stimulus_ids))
    skipped = {sid: why for s in shards for sid, why in s.skipped.items()}
    pending = set(writer.pending())
    ids = writer.stimulus_ids
    taken = 0
    for batch in batches:
        for i in batch:  # skips in the order the batches meet them
            if i in pending and ids[i] in skipped and ids[i] not in writer.meta.skipped:
                writer.skip(i, skipped[ids[i]])
        rows = {i: owner[i] for i in batch if i in pending and i in owner}
        if rows:
            writer.write_rows({i: _row(s, names, i) for i, s in rows.items()},
                              n_valid_frames=_frames(rows, names))
            taken += len(rows)
    return taken


def _row_owners(shards: list[FeatureStore], names: list[str], n: int) -> dict[int, FeatureStore]:
    """For each row written in every layer by some shard, that shard."""
    owner: dict[int, FeatureStore] = {}
    for s in shards:
        if not all(name in s for name in names):
            done = np.zeros(n, bool)
        else:
            done = np.logical_and.reduce([s.done_mask(name) for name in names])
        for i in np.flatnonzero(done):
            owner.setdefault(int(i), s)
    return owner


def _row(store: FeatureStore, names: list[str], i: int) -> dict[str, np.ndarray]:
    return {name: np.array(store.load(name, require_complete=False)[i]) for name in names}


def _frames(rows: dict[int, FeatureStore], names: list[str]) -> dict[int, dict[str, int]]:
    """Valid-frame counts of time-resolved rows, as the shards recorded them."""
    out: dict[int, dict[str, int]] = {}
    for i, s in rows.items():
        counts = {name: int(s.n_valid_frames(name)[i]) for name in names
                  if s.layer_info(name).n_valid_frames is not None}
        if counts:
            out[i] = counts
    return out


def remove_shards(out: Path) -> None:
    """Delete the shard stores once their rows are in the finished store."""
    shutil.rmtree(Path(out) / SHARDS, ignore_errors=True)


# --------------------------------------------------------------------------- SLURM


def _shard_job(kwargs: dict[str, Any], i: int, n: int) -> str:
    """One array task: extract shard ``i`` of ``n`` (runs on the cluster node)."""
    from .run import extract

    extract(**dict(kwargs, progress=False), shard=(i, n))
    return str(shard_dir(Path(kwargs["out"]), i, n))


def extract_on_slurm(*, jobs: int, cluster: str | None = None, partition: str | None = None,
                     gpus_per_job: int = 0, timeout_min: int = 240, **kwargs) -> FeatureStore:
    """Extract as a SLURM job array of ``jobs`` shards (submitit), wait, and merge.

    Parameters
    ----------
    jobs : int
        Number of shards (array tasks).
    cluster : {None, "slurm", "local", "debug"}
        submitit's executor (None: SLURM when available, else local processes).
    partition, gpus_per_job, timeout_min
        SLURM resources of each task.
    **kwargs
        The arguments of :func:`extractors.run.extract` (``spec``, ``stimuli``, ``out``, ...).

    Returns
    -------
    FeatureStore
        The merged, finished store.
    """
    try:
        import submitit
    except ImportError:
        raise InvalidOptionError("--slurm needs submitit: pip install 'alignjax[cluster]'") \
            from None
    from .run import extract

    jobs = check_shard((0, jobs))[1]
    out = Path(kwargs["out"])
    if kwargs.pop("force", False):  # once, here: the jobs and the merge must keep the shards
        from alignjax.io import StoreLock

        from .run import discard_store

        with StoreLock(out):
            discard_store(out)
            remove_shards(out)
    executor = submitit.AutoExecutor(folder=out / SHARDS / "submitit", cluster=cluster)
    params: dict[str, Any] = {"timeout_min": int(timeout_min), "name": "alignjax-extract"}
    if executor.cluster == "slurm":
        params.update(slurm_partition=partition, gpus_per_node=int(gpus_per_job) or None)
        params = {k: v for k, v in params.items() if v is not None}
    executor.update_parameters(**params)
    array = executor.map_array(_shard_job, [dict(kwargs, out=str(out))] * jobs,
                               range(jobs), [jobs] * jobs)
    failed = []
    for i, job in enumerate(array):
        try:
            job.result()
        except Exception as exc:  # noqa: BLE001 - reported with the shard that failed
            failed.append(f"shard {i} (job {job.job_id}): {str(exc).strip()[-400:]}")
    if failed:
        raise StoreError("some shards failed; their written rows are kept, rerun to "
                         "resume:\n" + "\n".join(failed))
    progress = kwargs.pop("progress", True)
    return extract(**kwargs, progress=progress)
