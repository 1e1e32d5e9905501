"""Channel searchlight RSA over time: RDMs of each channel's neighbourhood x window."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .._runtime import float32_matmuls
from .._validation import ShapeMismatchError, as_float_array
from .rdms import temporal_rdms
from .._validation import check_choice
from .rsa import (_as_model, _check_method, compare_rows, permuted_rsa_test, prepare_rows,
                  temporal_rsa, time_neighbours)

__all__ = ["temporal_searchlight", "TemporalSearchlight", "channel_neighbourhoods"]


class TemporalSearchlight(NamedTuple):
    """Result of :func:`temporal_searchlight`.

    Attributes
    ----------
    r : array (n_layers, n_subjects, n_channels, n_windows)
    times : array (n_windows,)
        Window centre times.
    p_fwe : array like ``r`` or None
        FWE p over layers x subjects x channels x time (``n_perm > 0``): max statistic, or
        that of the channel x time cluster holding the cell.
    neighbourhoods : list of int arrays
        The channels of each searchlight.
    """

    r: Any
    times: Any
    p_fwe: Any
    neighbourhoods: list


def channel_neighbourhoods(adjacency, n_channels: int) -> list[np.ndarray]:
    """Each channel with its neighbours: from an adjacency matrix (n_channels, n_channels)
    (scipy sparse or array, e.g. ``mne.channels.find_ch_adjacency``) or a list of lists."""
    if isinstance(adjacency, (list, tuple)):
        if len(adjacency) != n_channels:
            raise ShapeMismatchError(f"{len(adjacency)} neighbourhoods for {n_channels} channels")
        return [np.unique(np.asarray(list(nb) + [c], int)) for c, nb in enumerate(adjacency)]
    from scipy import sparse

    A = sparse.csr_matrix(adjacency)
    if A.shape != (n_channels, n_channels):
        raise ShapeMismatchError(
            f"adjacency has shape {A.shape}, but the data have {n_channels} channels: it must "
            f"be ({n_channels}, {n_channels}), in the order of the data's channels")
    return [np.unique(np.concatenate([A[c].indices, [c]])) for c in range(n_channels)]


@float32_matmuls
def temporal_searchlight(model_rdms, data, adjacency, *, window: int = 1, step: int = 1,
                         metric: str = "correlation", method="spearman", times=None,
                         n_perm: int = 0, correction: str = "max",
                         cluster_threshold: float | None = None, seed: int = 0,
                         progress: bool = False) -> TemporalSearchlight:
    """Searchlight RSA over channels and time.

    For every channel, the RDMs of its neighbourhood (the channel and its adjacent
    channels) x each time window (as :func:`temporal_rdms`; mne-rsa's searchlight with
    ``spatial_radius`` given as the neighbourhoods) are compared with every model RDM.

    Parameters
    ----------
    model_rdms : array, shape (n_layers, n_pairs)
    data : array, shape (n_subjects, n_stimuli, n_channels, n_times)
    adjacency : sparse or array (n_channels, n_channels), or list of lists
    window, step, metric, times
        As :func:`temporal_rdms`.
    method : str or callable
        As :func:`temporal_rsa`.
    n_perm : int
        With ``n_perm > 0``, a stimulus-label permutation test over the whole family
        (layers x subjects x channels x time, as :func:`temporal_rsa_permutation_test`);
        its memory is about ``n_subjects x n_channels x n_windows x n_pairs`` floats.
    correction : {"max", "cluster"}
        ``"cluster"``: clusters connected over neighbouring time windows and adjacent
        channels (``adjacency``), tested by their mass against the family maximum.
    cluster_threshold : float, optional
        Cluster-forming r (default: the 95th percentile of pilot permutations).
    seed : int
    progress : bool
        Progress bar over channels.

    Returns
    -------
    TemporalSearchlight
    """
    method = _check_method(method)
    M = _as_model(model_rdms)
    X = as_float_array(data, "data", ndim=4)
    hoods = channel_neighbourhoods(adjacency, X.shape[2])
    from tqdm.auto import tqdm

    rdms, out, centres = [], [], None
    for nb in tqdm(hoods, desc="searchlight", unit="channel", disable=not progress, leave=False):
        R = temporal_rdms(X[:, :, nb], metric=metric, window=window, step=step, times=times)
        centres = R.times
        if n_perm:
            rdms.append(np.asarray(R.rdms))
        out.append(np.asarray(temporal_rsa(M, R.rdms, method=method)))
    r = np.stack(out, axis=2)                                     # (L, S, C, W)
    p_fwe = None
    if n_perm:
        check_choice(correction, "correction", ("max", "cluster"))
        B = np.stack(rdms, axis=2)                                # (S, W, C, P): time outer
        S, W, C, P = B.shape
        A = prepare_rows(M, method)
        Bt = prepare_rows(B.reshape(-1, P), method)
        shape = (M.shape[0], S, W, C)
        obs = np.asarray(compare_rows(A, Bt, method)).reshape(shape)
        adj = np.zeros((C, C), bool)
        for c, nb in enumerate(hoods):
            adj[c, nb] = True
        from ..rdm import n_stimuli_from_pairs

        res = permuted_rsa_test(A, Bt, obs, shape, n=n_stimuli_from_pairs(P), method=method,
                                scheme="stimuli", param=1, n_perm=n_perm, seed=seed,
                                alternative="greater", correction=correction,
                                cluster_threshold=cluster_threshold, chunk_size=4,
                                devices=None, nbrs=time_neighbours(shape, adj))
        p_fwe = np.swapaxes(res.p_fwe, -1, -2)
    return TemporalSearchlight(r, centres, p_fwe, hoods)
