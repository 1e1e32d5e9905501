"""Spatial probing (SARL-style): source and room factors decoded from every layer, and the
sensitivity of embeddings to one-factor perturbations.

Modules: ``targets`` (factors, conventions, metrics, chance, :func:`angular_error`),
``ridge`` (nested ridge over many targets and labellings, package-internal), ``probe``
(:func:`spatial_probe`), ``sensitivity`` (:func:`sensitivity`). Scenes are rendered by
``extractors.spatial`` (``alignjax synth-spatial``).

Conventions: azimuth in degrees, 0 = front, +90 = left (counter-clockwise seen from
above); elevation +90 = up.
"""

from .probe import SpatialProbeResult, spatial_probe
from .sensitivity import SensitivityResult, sensitivity
from .targets import FACTORS, ROOM_FACTORS, SOURCE_FACTORS, angular_error

__all__ = ["spatial_probe", "SpatialProbeResult", "angular_error", "sensitivity",
           "SensitivityResult", "FACTORS", "SOURCE_FACTORS", "ROOM_FACTORS"]
