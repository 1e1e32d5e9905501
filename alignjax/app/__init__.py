"""The application layer: the command line, the study runner, the studies, the demo and the
report.

It is the one layer that imports both halves of alignjax: the JAX core (``alignjax``'s
other modules, which never import this package or the torch side) and the torch side
(``extractors``, imported inside the functions that need it). Scripts and notebooks that
only analyse features need none of it.
"""
