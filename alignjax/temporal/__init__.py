"""Time-resolved alignment with EEG/MEG: RDMs over time, temporal RSA and its inference.

- :mod:`.rdms`: :func:`temporal_rdms` (sliding windows, cross-validated distances, noise
  normalisation).
- :mod:`.rsa`: :func:`temporal_rsa` (layer x time maps, model-time x brain-time
  generalisation) and :func:`temporal_rsa_permutation_test` (stimulus-label permutations,
  max-statistic or cluster-mass FWE over the whole family).
- :mod:`.extras`: noise ceiling over time, peak latency with subject-bootstrap CIs,
  partial RSA over time.
- :mod:`.frames`: frame-wise RSA within one continuous stimulus, with autocorrelation-
  matched surrogate nulls or permutations of independent units.
- :mod:`.searchlight`: channel searchlight RSA.

Sign-flip tests over subjects (random effects) are in :mod:`alignjax.clusters`.
"""

from .rdms import TemporalRDMs, temporal_rdms, whiten
from .rsa import TemporalRSAResult, temporal_rsa, temporal_rsa_permutation_test
from .extras import (PeakLatency, TemporalNoiseCeiling, TemporalPartialRSA, peak_latency,
                     temporal_noise_ceiling, temporal_partial_rsa)
from .frames import frame_rsa_permutation_test
from .searchlight import TemporalSearchlight, channel_neighbourhoods, temporal_searchlight

__all__ = ["temporal_rdms", "TemporalRDMs", "whiten", "temporal_rsa",
           "temporal_rsa_permutation_test", "TemporalRSAResult", "temporal_noise_ceiling",
           "TemporalNoiseCeiling", "peak_latency", "PeakLatency", "temporal_partial_rsa",
           "TemporalPartialRSA", "frame_rsa_permutation_test", "temporal_searchlight",
           "TemporalSearchlight", "channel_neighbourhoods"]
