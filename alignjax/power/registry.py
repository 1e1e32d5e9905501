"""The designs :func:`alignjax.power` knows, one :class:`PowerDesign` each.

A design module (``correlation``, ``rsa``, ...) builds its record and the package
registers it here with :func:`register`; :func:`get_design` looks one up by name.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

from alignjax.errors import InvalidOptionError

__all__ = ["PowerDesign", "DESIGNS", "register", "get_design"]


class PowerDesign(NamedTuple):
    """One simulated design.

    Attributes
    ----------
    name : str
        The name :func:`alignjax.power` takes (``"rsa"``, ...).
    grid_params : mapping str -> default
        Parameters a grid may vary (each a column of the result), with the value used when
        the grid leaves one out.
    integer_params : tuple of str
        The grid parameters that must be integers (sizes).
    options : mapping str -> default
        Fixed keyword options of the design (``n_perm``, ``alpha``, ...).
    check : callable ``(point, effect, options) -> None``
        Raises :class:`alignjax.errors.InvalidOptionError` for a grid point or option that
        cannot be simulated, naming it.
    memory_bytes : callable ``(point, options) -> int``
        Estimated peak memory of one simulated analysis at ``point``.
    simulate : callable ``(point, effect, options, seeds, bar) -> ndarray (n_sim,)``
        Simulates ``len(seeds)`` data sets at ``point`` (one ``numpy.random.SeedSequence``
        each), runs the analysis on each and returns its detection (0/1, or the fraction of
        targets detected); ticks ``bar`` once per data set.
    from_results : callable ``(results_dir) -> dict``, optional
        Effect and options estimated from a pilot study's results folder.
    """

    name: str
    grid_params: Mapping[str, Any]
    integer_params: tuple
    options: Mapping[str, Any]
    check: Callable
    memory_bytes: Callable
    simulate: Callable
    from_results: Callable | None = None


DESIGNS: dict[str, PowerDesign] = {}


def register(design: PowerDesign) -> PowerDesign:
    """Add ``design`` to :data:`DESIGNS` under its name and return it."""
    DESIGNS[design.name] = design
    return design


def get_design(name: str) -> PowerDesign:
    """The registered design called ``name``, or raise naming the known ones."""
    if name not in DESIGNS:
        raise InvalidOptionError(f"unknown power design {name!r}; choose one of "
                                 f"{', '.join(repr(d) for d in DESIGNS)}")
    return DESIGNS[name]
