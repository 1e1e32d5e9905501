"""The subcommands of ``alignjax``, one ``add_<name>(subparsers)`` each, grouped by theme.

- :mod:`.study`: info, demo, run (pipelines), report, launch
- :mod:`.features`: extract, synth, layers, synth-spatial (the torch side)
- :mod:`.brain`: rsa, encode, similarity, zoo
- :mod:`.probes`: probe, spatial
- :mod:`.eeg`: temporal-rsa, simulate-eeg
- :mod:`.common`: the arguments and helpers several of them share
"""

from . import brain, eeg, features, probes, study

# the order of ``alignjax --help``
COMMANDS = [
    study.add_info,
    brain.add_rsa,
    study.add_run,
    study.add_report,
    study.add_demo,
    features.add_extract, features.add_synth, features.add_layers,
    brain.add_encode,
    probes.add_probe,
    brain.add_zoo,
    eeg.add_temporal_rsa, eeg.add_simulate_eeg,
    brain.add_similarity,
    features.add_synth_spatial, probes.add_spatial,
    study.add_launch,
]

__all__ = ["COMMANDS"]
