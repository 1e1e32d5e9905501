"""Perturbation pairs (``extractors.spatial.perturbation_design``): every factor pair carries
a change. The reference's own level used to be re-rendered (same dry source, same noise
seed: the reference itself), so with one volume level every volume pair had distance 0."""

import pytest

pytest.importorskip("matplotlib")

from extractors.spatial import perturbation_design, spatial_design  # noqa: E402


def _pairs(**levels):
    scenes = spatial_design(16, seed=0, rt60s=(0.3, 0.6), volumes=("small",))
    return perturbation_design(scenes, n_anchors=3, seed=0, **levels)


def test_no_factor_pair_is_the_reference_itself():
    new, pairs = _pairs(volumes=("small",), rt60s=(0.3, 0.6))   # as synth-spatial passes them
    by_id = {s.id: s for s in new}
    factor_pairs = [p for p in pairs if p["kind"] == "factor"]
    assert factor_pairs and all(p["delta"] > 0 for p in factor_pairs)
    key = (lambda s: (s.azimuth, s.elevation, s.distance, s.room, s.noise_seed, s.source))
    for p in factor_pairs:
        assert key(by_id[p["a"]]) != key(by_id[p["b"]])
    # a factor with a single level gets no pairs
    assert not [p for p in factor_pairs if p["factor"] == "volume"]
    n_rt = sum(p["factor"] == "rt60" for p in factor_pairs)
    assert n_rt == 3                                     # one other RT60 per anchor


def test_perturbation_levels_beyond_the_design_give_volume_pairs():
    _, pairs = _pairs(volumes=("small", "large"), rt60s=(0.3, 0.6, 0.9))
    vol = [p for p in pairs if p["factor"] == "volume"]
    assert len(vol) == 3 and all(p["delta"] == 210.0 for p in vol)
    assert sum(p["factor"] == "rt60" for p in pairs) == 6
