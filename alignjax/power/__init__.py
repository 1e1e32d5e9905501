"""Simulation-based power of the designs alignjax runs (``alignjax.power``).

Each design module documents its generative model, its effect and the analysis it runs
(the same function and correction as the study command):

- :mod:`.correlation`: a Pearson correlation test over n stimuli (the reference, with a
  closed form);
- :mod:`.rsa`: model RDM vs subjects' RDMs, the group permutation test of ``alignjax rsa``;
- :mod:`.encoding`: nested cross-validated voxel-wise ridge with the refitting permutation
  test of ``alignjax encode --n-perm``;
- :mod:`.probe`: the nested logistic probe with the permutation test of ``alignjax probe``;
- :mod:`.temporal_rsa`: time-resolved RSA with the cluster test of ``alignjax temporal-rsa``.
"""

from . import correlation, encoding, probe, rsa, temporal_rsa  # noqa: F401  (register the designs)
from .closed_form import correlation_power, correlation_power_fisher, ttest_power
from .core import expand_grid, power
from .registry import DESIGNS, PowerDesign, get_design

__all__ = ["power", "DESIGNS", "PowerDesign", "get_design", "expand_grid",
           "correlation_power", "correlation_power_fisher", "ttest_power"]
