"""Shared pieces of the pipeline tests: a small synthesised study on disk."""

import numpy as np


def synth_study(root, *, n: int, seed: int, duration: float, n_voxels: int | None = None,
                reverse: bool = True):
    """Synthesise ``n`` stimuli under ``root/stimuli`` (no speech: the same on every
    machine) and, with ``n_voxels``, two subjects of noise responses in ``root/brain.npz``
    (stimulus ids stored reversed when ``reverse``: matched by id, never by position).

    Returns the labels CSV and the stimulus ids.
    """
    from extractors.synth import synthesize

    labels = synthesize(root / "stimuli", n=n, seed=seed, duration=duration, speech=False)
    ids = [line.split(",")[0] for line in labels.read_text().splitlines()[1:]]
    if n_voxels:
        rng = np.random.default_rng(0)
        np.savez(root / "brain.npz", stimulus_ids=np.array(ids[::-1] if reverse else ids),
                 s1=rng.normal(size=(len(ids), n_voxels)),
                 s2=rng.normal(size=(len(ids), n_voxels)))
    return labels, ids
