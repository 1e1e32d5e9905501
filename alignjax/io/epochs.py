"""EEG/MEG epochs with stimulus ids: MNE ``Epochs`` (``.fif`` or an object) or arrays.

:func:`load_epochs` returns every subject's trials averaged per stimulus (and, with
``folds``, averaged within disjoint folds of each stimulus's trials, for cross-validated
RDMs), matched by stimulus id across subjects. mne is needed only for ``.fif`` files
(the ``[eeg]`` extra); arrays come from ``.npz``/``.h5`` files holding ``data``
(n_trials or n_stimuli, n_channels, n_times), ``times``, ``stimulus_ids`` (one per row)
and optionally ``subject`` (one per row, or one for the file), ``ch_names`` and ``bads``
(channel names to leave out).

Channels follow MNE's ``picks`` conventions: by default the data channels (EEG, MEG,
sEEG, ECoG, ...; not EOG, ECG, stimulus or misc channels) of one type, without
``info["bads"]``; ``picks=`` takes whatever ``mne.Epochs.pick`` takes. The channels used
are recorded in :attr:`EpochsData.ch_names` (and those left out, with why, in
:attr:`EpochsData.excluded_channels`).

NumPy only (and mne when asked for): nothing here imports jax.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import (InvalidFoldsError, InvalidOptionError, NonFiniteError,
                      ShapeMismatchError, StimulusMismatchError, StoreError)

__all__ = ["load_epochs", "EpochsData", "EPOCH_FORMATS"]

EPOCH_FORMATS = (".fif", ".fif.gz", ".npz", ".h5", ".hdf5")


@dataclass(frozen=True)
class EpochsData:
    """Trial-averaged epochs of every subject, by stimulus id.

    Attributes
    ----------
    data : array (n_subjects, n_stimuli, n_channels, n_times)
        Mean over each stimulus's trials.
    times : array (n_times,)
        Seconds relative to stimulus onset.
    stimulus_ids : list of str
    subjects : list of str
    ch_names : list of str
        The channels used, in order (after ``picks`` and bad-channel exclusion).
    n_trials : int array (n_subjects, n_stimuli)
    folds : array (n_subjects, n_folds, n_stimuli, n_channels, n_times) or None
        Means over disjoint folds of each stimulus's trials (``folds=`` of :func:`load_epochs`).
    noise_cov : array (n_subjects, n_channels, n_channels) or None
        Covariance of the baseline samples (times < 0) over trials, after removing each
        stimulus's mean: for multivariate noise normalisation.
    info : mne.Info or None
        Sensor information of the channels used, when read from MNE (for topomaps and
        channel adjacency).
    ch_types : list of str or None
        MNE channel type of every channel used (None for arrays without types).
    excluded_channels : dict
        Channels of the files that were left out, each with the reason: ``"bad"``
        (``info["bads"]`` or the file's ``bads``), its channel type (e.g. ``"eog"``,
        ``"stim"``: not a data channel) or ``"not picked"``.
    """

    data: np.ndarray
    times: np.ndarray
    stimulus_ids: list
    subjects: list
    ch_names: list
    n_trials: np.ndarray
    folds: Any = None
    noise_cov: Any = None
    info: Any = None
    ch_types: Any = None
    excluded_channels: Any = None

    def resolve_ids(self, stimulus_ids: Sequence[str], *, what: str = "the features"
                    ) -> list[list[int]]:
        """Rows of the epochs that hold each of ``stimulus_ids``, by name or MNE tag.

        An id matches an epochs id equal to it, or, as with ``epochs["sound000"]`` in
        MNE, every hierarchical event name whose ``/``-separated tags include all of its
        tags (``"sound000"`` matches ``"sound/sound000"``).

        Raises
        ------
        StimulusMismatchError
            An id that matches no epochs id, or an epochs id claimed by two ids.
        """
        ids = [str(s) for s in stimulus_ids]
        pos = {s: i for i, s in enumerate(self.stimulus_ids)}
        tags = [set(e.split("/")) for e in self.stimulus_ids]
        rows = [[pos[s]] if s in pos else
                [i for i, tg in enumerate(tags) if set(s.split("/")) <= tg] for s in ids]
        missing = [s for s, r in zip(ids, rows) if not r]
        if missing:
            hier = [e for e in self.stimulus_ids if "/" in e][:3]
            raise StimulusMismatchError(
                f"{len(missing)} stimulus ids of {what} are missing from the epochs (first: "
                f"{missing[:5]}; the epochs have {self.stimulus_ids[:5]}"
                + (f"...; ids also match MNE's hierarchical event tags, e.g. "
                   f"{hier[0].split('/')[-1]!r} matches {hier[0]!r}" if hier else "...")
                + "); check that both use the same stimulus ids, or pass stimulus_ids= a "
                "metadata column of the epochs")
        owner: dict[int, str] = {}
        for s, r in zip(ids, rows):
            for i in r:
                if i in owner:
                    raise StimulusMismatchError(
                        f"epochs id {self.stimulus_ids[i]!r} matches both {owner[i]!r} and "
                        f"{s!r} of {what} (MNE tags); give the stimuli distinct names")
                owner[i] = s
        return rows

    def aligned_to(self, stimulus_ids: Sequence[str], *, what: str = "the features"
                   ) -> "EpochsData":
        """The same epochs restricted to and ordered as ``stimulus_ids``.

        Ids resolve by name or by MNE tag (:meth:`resolve_ids`); several event names
        with one id's tag (``"left/s1"``, ``"right/s1"``) pool their trials.
        """
        rows = self.resolve_ids(stimulus_ids, what=what)
        if all(len(r) == 1 for r in rows):
            idx = np.asarray([r[0] for r in rows])
            folds = None if self.folds is None else self.folds[:, :, idx]
            data, counts = self.data[:, idx], self.n_trials[:, idx]
        else:
            if self.folds is not None:
                many = next(s for s, r in zip(stimulus_ids, rows) if len(r) > 1)
                raise StimulusMismatchError(
                    f"stimulus {many!r} of {what} matches several event names of the epochs "
                    "(MNE tags); pooling them is not available with folds=: give every "
                    "stimulus one event name, or pass stimulus_ids= a metadata column")
            counts = np.stack([self.n_trials[:, r].sum(1) for r in rows], axis=1)
            data = np.stack([np.einsum("sk,sk...->s...", self.n_trials[:, r], self.data[:, r])
                             for r in rows], axis=1) / counts[:, :, None, None]
            folds = None
        return replace(self, data=data, stimulus_ids=[str(s) for s in stimulus_ids],
                       n_trials=counts, folds=folds)


@dataclass
class _Trials:
    """One subject's trials before averaging."""

    name: str
    data: np.ndarray          # (n_trials, n_channels, n_times)
    ids: list
    times: np.ndarray
    ch_names: list
    info: Any = None
    ch_types: Any = None
    excluded: dict | None = None


def _need_mne(what: str):
    try:
        import mne
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise StoreError(f"{what} needs mne: pip install 'alignjax[eeg]'") from exc
    return mne


def _pick_mne(epochs, picks, name: str):
    """``epochs`` restricted to ``picks`` (MNE conventions, bads excluded) and the
    channels left out, with why."""
    everything = dict(zip(epochs.ch_names, epochs.get_channel_types()))
    bads = set(epochs.info["bads"])
    try:
        picked = epochs.copy().pick("data" if picks is None else picks, exclude="bads")
    except ValueError as exc:
        raise InvalidOptionError(f"epochs of {name}: picks={picks!r}: {exc}") from None
    kinds = sorted(set(picked.get_channel_types()))
    if picks is None and len(kinds) > 1:
        counts = ", ".join(f"{k}: {picked.get_channel_types().count(k)}" for k in kinds)
        raise InvalidOptionError(
            f"epochs of {name} have data channels of several types ({counts}); their units "
            "and scales differ, so pick one: picks='eeg' (or 'mag', 'grad', ...), or "
            "picks='data' to keep them all")
    used = set(picked.ch_names)
    excluded = {c: ("bad" if c in bads else t if t not in _DATA_TYPES else "not picked")
                for c, t in everything.items() if c not in used}
    return picked, excluded


_DATA_TYPES = ("mag", "grad", "eeg", "csd", "seeg", "ecog", "dbs", "hbo", "hbr",
               "fnirs_cw_amplitude", "fnirs_fd_ac_amplitude", "fnirs_fd_phase", "fnirs_od")


def _from_mne(epochs, name: str, stimulus_ids, picks=None) -> _Trials:
    epochs, excluded = _pick_mne(epochs, picks, name)
    data = np.asarray(epochs.get_data(copy=True), float)
    if isinstance(stimulus_ids, str) and stimulus_ids == "event":
        code_to_name = {v: k for k, v in epochs.event_id.items()}
        ids = [code_to_name[c] for c in epochs.events[:, 2]]
    elif isinstance(stimulus_ids, str):
        md = epochs.metadata
        if md is None or stimulus_ids not in md.columns:
            have = [] if md is None else list(md.columns)
            raise StimulusMismatchError(
                f"epochs of {name}: no metadata column {stimulus_ids!r} with stimulus ids "
                f"(metadata columns: {have or 'none'}); pass stimulus_ids='event' to use the "
                "event names, or a sequence of ids (one per epoch)")
        ids = [str(s) for s in md[stimulus_ids]]
    elif stimulus_ids is None:
        md = epochs.metadata
        if md is not None and "stimulus_id" in md.columns:
            ids = [str(s) for s in md["stimulus_id"]]
        else:
            code_to_name = {v: k for k, v in epochs.event_id.items()}
            if not code_to_name:
                raise StimulusMismatchError(
                    f"epochs of {name} carry no stimulus ids: no 'stimulus_id' metadata "
                    "column and no event names; set epochs.metadata or pass stimulus_ids=")
            ids = [code_to_name[c] for c in epochs.events[:, 2]]
    else:
        ids = [str(s) for s in stimulus_ids]
        if len(ids) != len(data):
            raise ShapeMismatchError(f"epochs of {name}: {len(ids)} stimulus ids for "
                                     f"{len(data)} epochs")
    return _Trials(name, data, ids, np.asarray(epochs.times, float), list(epochs.ch_names),
                   epochs.info, list(epochs.get_channel_types()), excluded)


def _pick_arrays(data: np.ndarray, ch: list, bads: list, picks, path: Path):
    """Channels of an array file by name or index (``picks``), without ``bads`` unless
    named; arrays carry no channel types."""
    if picks is None or (isinstance(picks, str) and picks in ("data", "all")):
        keep = [i for i, c in enumerate(ch) if picks == "all" or c not in bads]
    else:
        items = [picks] if isinstance(picks, (str, int, np.integer)) else list(picks)
        keep = []
        for p in items:
            if isinstance(p, (int, np.integer)) and -len(ch) <= p < len(ch):
                keep.append(int(p) % len(ch))
            elif str(p) in ch:
                keep.append(ch.index(str(p)))
            else:
                raise InvalidOptionError(
                    f"{path}: picks={picks!r}: no channel {p!r} (channels: {ch[:8]}"
                    f"{'...' if len(ch) > 8 else ''}); array epochs carry no channel types, "
                    "so pick channels by name or index")
    excluded = {c: ("bad" if c in bads else "not picked")
                for i, c in enumerate(ch) if i not in set(keep)}
    return data[:, keep], [ch[i] for i in keep], excluded


def _from_arrays(path: Path, stimulus_ids, picks=None) -> list[_Trials]:
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    else:
        import h5py

        with h5py.File(path, "r") as f:
            arrays = {k: f[k][()] for k in f.keys()}
    for key in ("data", "times"):
        if key not in arrays:
            raise StoreError(f"{path}: no array {key!r}; epochs files need 'data' (n_trials, "
                             "n_channels, n_times), 'times' and 'stimulus_ids'")
    if stimulus_ids is None:
        if "stimulus_ids" not in arrays:
            raise StimulusMismatchError(
                f"{path}: epochs without stimulus ids: add an array 'stimulus_ids' (one per "
                "row of 'data') or pass stimulus_ids=")
        stimulus_ids = arrays["stimulus_ids"]
    ids = [s.decode() if isinstance(s, bytes) else str(s) for s in np.asarray(stimulus_ids).ravel()]
    data = np.asarray(arrays["data"], float)
    if data.ndim != 3:
        raise ShapeMismatchError(f"{path}: 'data' has shape {data.shape}; expected (n_trials, "
                                 "n_channels, n_times)")
    if len(ids) != data.shape[0]:
        raise ShapeMismatchError(f"{path}: {len(ids)} stimulus ids for {data.shape[0]} rows of "
                                 "'data'")
    times = np.asarray(arrays["times"], float).ravel()
    ch = arrays.get("ch_names")
    ch = [c.decode() if isinstance(c, bytes) else str(c) for c in ch] if ch is not None else \
        [f"ch{i}" for i in range(data.shape[1])]
    bads = [c.decode() if isinstance(c, bytes) else str(c)
            for c in np.ravel(arrays.get("bads", np.array([], str)))]
    data, ch, excluded = _pick_arrays(data, ch, bads, picks, path)
    subj = arrays.get("subject")
    if subj is None or np.ndim(subj) == 0:
        return [_Trials(str(subj.item() if subj is not None and hasattr(subj, "item") else path.stem),
                        data, ids, times, ch, excluded=excluded)]
    subj = np.asarray([s.decode() if isinstance(s, bytes) else str(s) for s in np.ravel(subj)])
    if subj.size != data.shape[0]:
        raise ShapeMismatchError(f"{path}: 'subject' has {subj.size} entries for {data.shape[0]} rows")
    order = list(dict.fromkeys(subj))
    return [_Trials(s, data[subj == s], [i for i, m in zip(ids, subj == s) if m], times, ch,
                    excluded=excluded) for s in order]


def _read(source, stimulus_ids, picks=None) -> list[_Trials]:
    if isinstance(source, (list, tuple)):
        return [t for s in source for t in _read(s, stimulus_ids, picks)]
    if not isinstance(source, (str, os.PathLike)):
        if hasattr(source, "get_data") and hasattr(source, "events"):
            return [_from_mne(source, "the epochs object", stimulus_ids, picks)]
        raise StoreError(f"cannot read epochs from a {type(source).__name__}; pass a .fif, "
                         ".npz or .h5 file, a folder of them, or an mne.Epochs object")
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.lower().endswith(EPOCH_FORMATS))
        if not files:
            raise StoreError(f"{path}: no epochs files ({', '.join(EPOCH_FORMATS)}) in the folder")
        return [t for f in files for t in _read(f, stimulus_ids, picks)]
    if not path.is_file():
        raise StoreError(f"epochs file {path} does not exist")
    name = path.name.lower()
    if name.endswith((".fif", ".fif.gz")):
        mne = _need_mne(f"reading {path}")
        epochs = mne.read_epochs(path, preload=True, verbose="error")
        stem = path.name.split(".")[0].removesuffix("-epo").removesuffix("_epo")
        return [_named(_from_mne(epochs, str(path), stimulus_ids, picks), stem)]
    if name.endswith((".npz", ".h5", ".hdf5")):
        return _from_arrays(path, stimulus_ids, picks)
    raise StoreError(f"{path}: unsupported epochs format (use {', '.join(EPOCH_FORMATS)})")


def _named(t: _Trials, name: str) -> _Trials:
    t.name = name
    return t


def _check_subjects(trials: list[_Trials]) -> None:
    ref = trials[0]
    names = [t.name for t in trials]
    if len(set(names)) != len(names):
        raise StoreError(f"subject names repeat across the epochs files: {names}")
    for t in trials:
        if t.times.shape != ref.times.shape or not np.allclose(t.times, ref.times, atol=1e-9):
            raise ShapeMismatchError(
                f"times differ between subjects: {ref.name!r} has {ref.times.size} samples from "
                f"{ref.times[0]:.4g} s, {t.name!r} {t.times.size} from {t.times[0]:.4g} s; resample "
                "or crop every subject to the same times")
        if t.ch_names != ref.ch_names:
            only = sorted(set(ref.ch_names) ^ set(t.ch_names))[:8]
            raise ShapeMismatchError(
                f"channels differ between subjects {ref.name!r} ({len(ref.ch_names)}) and "
                f"{t.name!r} ({len(t.ch_names)}; in one only: {only}; left out: "
                f"{ref.name!r} {sorted(ref.excluded or {})[:8]}, {t.name!r} "
                f"{sorted(t.excluded or {})[:8]}); subjects with different bad channels "
                "need them interpolated (mne: epochs.interpolate_bads()) or picks= naming "
                "channels good in every subject")
        bad = ~np.isfinite(t.data).all(axis=(0, 2))
        if bad.any():
            chans = [t.ch_names[i] for i in np.flatnonzero(bad)[:10]]
            raise NonFiniteError(f"subject {t.name!r} has NaN or inf in channels {chans}; mark "
                                 "them bad and interpolate (or drop them) before loading")


def _fold_means(X: np.ndarray, k: int, sid: str, subject: str) -> np.ndarray:
    if X.shape[0] < k:
        raise InvalidFoldsError(f"stimulus {sid!r} has {X.shape[0]} trials in subject "
                                f"{subject!r}, fewer than the {k} folds")
    return np.stack([X[f::k].mean(0) for f in range(k)])


def _baseline_cov(t: _Trials, ids: list[str]) -> np.ndarray | None:
    base = t.times < 0
    if base.sum() < 2:
        return None
    pos = {s: i for i, s in enumerate(ids)}
    codes = np.array([pos[s] for s in t.ids])
    means = np.stack([t.data[codes == c].mean(0) for c in range(len(ids))])
    resid = (t.data - means[codes])[:, :, base]                    # (n_trials, C, n_base)
    R = np.moveaxis(resid, 1, -1).reshape(-1, resid.shape[1])
    return R.T @ R / max(R.shape[0] - 1, 1)


def load_epochs(path_or_epochs, *, stimulus_ids=None, folds: int | None = None,
                picks=None) -> EpochsData:
    """Load EEG/MEG epochs and average each subject's trials per stimulus.

    Parameters
    ----------
    path_or_epochs : path, mne.Epochs, or a list of them
        A ``.fif`` file (one subject), a ``.npz``/``.h5`` file (one subject, or several
        by a per-row ``subject`` array), a folder of such files (one subject per file,
        named by the file), an ``mne.Epochs`` object, or a list of any of these.
    stimulus_ids : str or sequence, optional
        MNE epochs: the metadata column holding stimulus ids (default ``"stimulus_id"``
        when present, else the event names); or one id per epoch. Arrays: overrides the
        file's ``stimulus_ids``.
    folds : int, optional
        Also keep means over ``folds`` disjoint subsets of every stimulus's trials
        (trial ``i`` of a stimulus goes to fold ``i % folds``), for cross-validated RDMs
        (:func:`alignjax.temporal.temporal_rdms` with ``cv_folds``).
    picks : str, list of str or int, optional
        Channels to use, as ``mne.Epochs.pick(picks, exclude="bads")`` takes them: a
        channel type (``"eeg"``, ``"mag"``, ``"grad"``), ``"data"`` (every data channel),
        ``"all"``, channel names or indices. Default: the data channels without
        ``info["bads"]``, which must be of one type (an error names the types
        otherwise); EOG, ECG, stimulus and misc channels are left out, as in mne-rsa.
        As in MNE, channels named explicitly are kept even when marked bad. Array files
        have no channel types: names or indices, and their ``bads`` are left out.

    Returns
    -------
    EpochsData

    Raises
    ------
    StimulusMismatchError
        No stimulus ids, or a stimulus with no trials in some subject.
    ShapeMismatchError
        Times or channels that differ between subjects.
    NonFiniteError
        NaN channels (named, with the subject).
    InvalidFoldsError
        A stimulus with fewer trials than ``folds`` in some subject.
    InvalidOptionError
        ``picks`` that select nothing, or data channels of several types without
        ``picks``.
    """
    trials = _read(path_or_epochs, stimulus_ids, picks)
    _check_subjects(trials)
    ids = list(dict.fromkeys(s for t in trials for s in t.ids))
    C, T = trials[0].data.shape[1:]
    data = np.empty((len(trials), len(ids), C, T))
    counts = np.zeros((len(trials), len(ids)), int)
    fold_data = None if folds is None else np.empty((len(trials), int(folds), len(ids), C, T))
    covs = []
    for si, t in enumerate(trials):
        have = np.asarray(t.ids)
        for k, sid in enumerate(ids):
            rows = t.data[have == sid]
            if rows.shape[0] == 0:
                raise StimulusMismatchError(
                    f"stimulus {sid!r} has zero trials in subject {t.name!r} (present in other "
                    "subjects); drop it from every subject or check that subject's event codes")
            data[si, k], counts[si, k] = rows.mean(0), rows.shape[0]
            if fold_data is not None:
                fold_data[si, :, k] = _fold_means(rows, int(folds), sid, t.name)
        covs.append(_baseline_cov(t, ids))
    noise_cov = np.stack(covs) if all(c is not None for c in covs) else None
    excluded = {c: r for t in trials for c, r in (t.excluded or {}).items()}
    return EpochsData(data, trials[0].times, ids, [t.name for t in trials], trials[0].ch_names,
                      counts, fold_data, noise_cov, trials[0].info, trials[0].ch_types,
                      excluded)
