"""Loader for the 92-image RDMs in ../shared/data/kriegeskorte92 (skips when absent)."""

import numpy as np
import pytest

from tests.conftest import KRIEGESKORTE


def _load(fname, key):
    sio = pytest.importorskip("scipy.io")
    path = KRIEGESKORTE / fname
    if not path.is_file():
        pytest.skip(f"{path} not present")
    structs = sio.loadmat(path, squeeze_me=True, struct_as_record=False)[key]
    i, j = np.triu_indices(92, k=1)
    return np.stack([s.RDM[i, j] for s in structs.flat]), [str(s.name) for s in structs.flat]


def brain():
    return _load("92_brainRDMs.mat", "RDMs")


def models():
    return _load("92_modelRDMs.mat", "Models")


def behaviour():
    return _load("92_behavRDMs.mat", "rdms_behav_92")
