"""Rendered spatial scenes: a balanced, seeded design of sources in rooms, rendered offline.

Conventions (stated once, tested): the listener stands in the room facing the room's +x
axis, +y is the listener's left and +z is up. **Azimuth** is in degrees, 0 = front, +90 =
left (counter-clockwise seen from above), in [0, 360); **elevation** is in degrees, +90 =
up; **distance** is in metres from the centre of the head. A source at (azimuth a,
elevation e, distance d) sits at ``listener + d * (cos e cos a, cos e sin a, sin e)``.

Acoustics (pyroomacoustics, deterministic: ``pyroomacoustics.random.seed`` is set per
scene): the room's absorption comes from the target RT60 by ``inverse_sabine``; the room
response is the hybrid model (image sources up to order :data:`EARLY_ORDER`, ray tracing
for the tail). Rooms are a shoebox or an extruded L-shaped floor plan
(``Room.from_corners`` + ``extrude``) of the same volume. Output formats:

``binaural``
    The direct sound and every early image source are filtered by the MIT KEMAR HRIR
    (shipped inside the ``slab`` wheel) of the image's direction as seen by the listener;
    the ray-traced tail is the tail at the two ear positions (+-8.75 cm along y).
``foa``
    First-order ambisonics, ACN channel order (W, Y, Z, X), SN3D normalisation: each early
    image is encoded with gains (1, sin a cos e, sin e, cos a cos e); the diffuse tail is
    put in W and, scaled by 1/sqrt(3), tails at displaced points in Y, Z, X.
``stereo``
    A spaced omni pair (17 cm along the listener's left-right axis; channel 0 left).
``mono``
    One omni microphone at the listener.

The **measured** RT60 (``pyroomacoustics.measure_rt60`` on the omni response at the
listener; the target is only approximate) and the direct-to-reverberant ratio (energy
within 2.5 ms of the direct arrival over the rest) are written per clip.

Design (:func:`spatial_design`): rooms are the crossing of shapes x volumes x RT60s; dry
sources (from :mod:`extractors.synth`, or a user folder) are nested in rooms, so grouping
folds by room (``room_group``) also keeps every dry source (``source_group``) on one side.
Within each room, azimuth, elevation, distance and class are each balanced (every level
equally often, up to one) and, when the scenes per room are a multiple of the crossing of
their levels, fully crossed. Perturbation sets (:func:`perturbation_design`) vary one factor
of an anchor scene at a time with everything else fixed (same dry source, same noise seed)
and re-render the anchor with another noise seed for the noise floor.
"""

from __future__ import annotations

import csv
import itertools
import shutil
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from alignjax.errors import AlignjaxInputError, InvalidOptionError, check_choice, check_positive_int

__all__ = ["Scene", "Room", "spatial_design", "perturbation_design", "render_scene",
           "synthesize_spatial", "room_geometry", "kemar_hrirs", "FORMATS", "SHAPES",
           "VOLUMES", "LABEL_COLUMNS", "PAIR_COLUMNS", "SceneError"]

FORMATS = ("binaural", "foa", "stereo", "mono")
SHAPES = ("shoebox", "lshape")
VOLUMES = {"small": 90.0, "large": 300.0}  # m^3
HEIGHT = {"small": 3.0, "large": 4.0}
ASPECT = 1.25  # floor length / width
EARLY_ORDER = 3
EAR_OFFSET = 0.0875  # m, half the KEMAR head width
STEREO_OFFSET = 0.085
EAR_HEIGHT = 1.5
WALL_MARGIN = 0.25  # m between a source and any wall
SPEED_OF_SOUND = 343.0
NOISE_DB = -60.0  # pink background noise, dB re full scale (RMS)

AZIMUTHS = tuple(float(a) for a in range(0, 360, 45))
ELEVATIONS = (-20.0, 0.0, 20.0)
DISTANCES = (1.0, 1.5, 2.0)
RT60S = (0.3, 0.6, 0.9)
# the synthesiser's classes, and espeak-ng speech where the program is installed
CLASSES = ("harmonic", "noise", "chirp", "am", "clicks", "impact") + (
    ("speech",) if shutil.which("espeak-ng") else ())

LABEL_COLUMNS = ("id", "path", "azimuth", "elevation", "distance", "class", "rt60_target",
                 "rt60", "drr_db", "volume", "volume_level", "shape", "room", "source",
                 "room_group", "source_group", "noise_seed", "format", "set", "anchor", "vary")
PAIR_COLUMNS = ("a", "b", "factor", "delta", "kind")


class SceneError(AlignjaxInputError):
    """A scene cannot be rendered as asked (source outside the room, RT60 unreachable, ...)."""


@dataclass(frozen=True)
class Room:
    """A room: floor-plan shape, volume level, target RT60."""

    shape: str
    volume_level: str
    rt60: float

    @property
    def name(self) -> str:
        return f"{self.shape}-{self.volume_level}-rt{self.rt60:g}"


@dataclass(frozen=True)
class Scene:
    """One clip: a dry source at a direction and distance in a room."""

    id: str
    room: Room
    azimuth: float
    elevation: float
    distance: float
    cls: str
    source: str
    source_index: int
    noise_seed: int
    set: str = "main"
    anchor: str = ""
    vary: str = ""


# --------------------------------------------------------------------------- geometry


def room_geometry(shape: str, volume_level: str):
    """Floor-plan corners (2, n_corners, counter-clockwise), height and listener position.

    Both shapes of a volume level have the same volume and height. The L-shape is the
    shoebox's floor plan scaled up with its (+x, -y) corner quarter cut away.
    """
    check_choice(shape, "shape", SHAPES)
    check_choice(volume_level, "volume", tuple(VOLUMES))
    h = HEIGHT[volume_level]
    area = VOLUMES[volume_level] / h
    if shape == "shoebox":
        w = np.sqrt(area / ASPECT)
        L = ASPECT * w
        corners = np.array([[0, 0], [L, 0], [L, w], [0, w]], float).T
        listener = np.array([L / 2, w / 2, EAR_HEIGHT])
    else:
        cut = 0.3  # fraction of each side cut away at the (+x, -y) corner
        w = np.sqrt(area / (ASPECT * (1 - cut * cut)))
        L = ASPECT * w
        corners = np.array([[0, 0], [L * (1 - cut), 0], [L * (1 - cut), w * cut], [L, w * cut],
                            [L, w], [0, w]], float).T
        listener = np.array([0.42 * L, 0.5 * w, EAR_HEIGHT])
    return corners, h, listener


def _segment_distance(p, a, b):
    ab = b - a
    t = np.clip(np.dot(p - a, ab) / np.dot(ab, ab), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + t * ab)))


def _inside(p2, corners) -> bool:
    from matplotlib.path import Path as MplPath

    return bool(MplPath(corners.T).contains_point(p2))


def direction(azimuth, elevation):
    """Unit vectors (..., 3) of azimuth/elevation in degrees (x front, y left, z up)."""
    a, e = np.deg2rad(azimuth), np.deg2rad(elevation)
    return np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], axis=-1)


def source_position(scene: Scene) -> np.ndarray:
    """The source position of a scene; raises :class:`SceneError` when it does not fit."""
    corners, h, listener = room_geometry(scene.room.shape, scene.room.volume_level)
    pos = listener + scene.distance * direction(scene.azimuth, scene.elevation)
    walls = [_segment_distance(pos[:2], corners[:, i], corners[:, (i + 1) % corners.shape[1]])
             for i in range(corners.shape[1])]
    margin = min(min(walls), pos[2], h - pos[2])
    if not _inside(pos[:2], corners) or margin < WALL_MARGIN:
        raise SceneError(
            f"scene {scene.id}: a source at {scene.distance:g} m (azimuth {scene.azimuth:g}, "
            f"elevation {scene.elevation:g}) does not fit in room {scene.room.name} "
            f"({VOLUMES[scene.room.volume_level]:g} m^3, {scene.room.shape}) with "
            f"{WALL_MARGIN} m to the walls; use smaller distances or elevations, or larger rooms")
    return pos


# --------------------------------------------------------------------------- HRIRs


@lru_cache(maxsize=4)
def kemar_hrirs(sample_rate: int):
    """The MIT KEMAR HRIRs shipped in the ``slab`` wheel, resampled to ``sample_rate``.

    Returns ``(directions (n_dirs, 3) unit vectors, hrirs (n_dirs, n_taps, 2))`` with
    channel 0 the left ear.
    """
    try:
        import slab
    except (ImportError, OSError) as exc:  # OSError: libportaudio2 missing
        raise ImportError("binaural rendering needs the 'slab' package and Debian's "
                          "libportaudio2: pip install 'alignjax[spatial]' and apt-get install "
                          f"libportaudio2 ({exc})") from None
    from scipy.signal import resample_poly

    hrtf = slab.HRTF.kemar()
    sp = hrtf.sources.vertical_polar
    data = np.stack([np.asarray(f.data, float) for f in hrtf.data])  # (n, taps, 2)
    fs0 = int(hrtf.samplerate)
    g = np.gcd(int(sample_rate), fs0)
    # an impulse response's taps scale with 1 / sample rate to keep its gain
    data = resample_poly(data, int(sample_rate) // g, fs0 // g, axis=1) * fs0 / sample_rate
    return direction(sp[:, 0], sp[:, 1]), data


# --------------------------------------------------------------------------- rendering


def _pra():
    try:
        import pyroomacoustics as pra
    except ImportError:
        raise ImportError("spatial rendering needs pyroomacoustics: pip install "
                          "'alignjax[spatial]'") from None
    return pra


def _absorption(room: Room, corners, h):
    """Sabine's energy absorption for the room's target RT60 (as ``inverse_sabine`` on a
    room of this volume and surface); raises :class:`SceneError` above 1."""
    x, y = corners
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    perim = np.sum(np.hypot(np.diff(np.r_[x, x[0]]), np.diff(np.r_[y, y[0]])))
    surface = 2 * area + perim * h
    vol = area * h
    sab = 24 * np.log(10) / SPEED_OF_SOUND
    e = sab * vol / (surface * room.rt60)
    if e > 1:
        raise SceneError(
            f"RT60 {room.rt60:g} s is unreachable in room {room.name}: it needs an energy "
            f"absorption of {e:.2f} > 1 (Sabine); ask for a longer RT60 or a larger room")
    return float(e)


@lru_cache(maxsize=256)
def calibrated_absorption(room: Room, sample_rate: int) -> float:
    """Energy absorption of ``room`` whose measured RT60 is closest to the target.

    Starts from Sabine's (``inverse_sabine``) and corrects it twice by the ratio of
    measured to target RT60 (RT60 ~ 1 / absorption), on a reference scene (a source 1 m in
    front of the listener, fixed seed). Raises :class:`SceneError` when the target needs
    an absorption > 1.
    """
    corners, h, _ = room_geometry(room.shape, room.volume_level)
    e = _absorption(room, corners, h)
    ref = Scene("calibration", room, 0.0, 0.0, 1.0, "noise", "", 0, noise_seed=0)
    for _ in range(2):
        r = _build_room(ref, _mic_layout("mono", room_geometry(room.shape, room.volume_level)[2]),
                        sample_rate=sample_rate, ray_tracing=True, absorption=e)
        e = min(e * measured_rt60(r.rir[0][0], sample_rate) / room.rt60, 1.0)
    return float(e)


def _build_room(scene: Scene, mics: np.ndarray, *, sample_rate: int, ray_tracing: bool,
                absorption: float | None = None):
    pra = _pra()
    corners, h, _ = room_geometry(scene.room.shape, scene.room.volume_level)
    e = calibrated_absorption(scene.room, sample_rate) if absorption is None else absorption
    mat = pra.Material(e)
    room = pra.Room.from_corners(corners, fs=sample_rate, materials=mat, max_order=EARLY_ORDER,
                                 ray_tracing=ray_tracing, air_absorption=False)
    room.extrude(h, materials=mat)
    if ray_tracing:
        room.set_ray_tracing(receiver_radius=0.5, n_rays=5000)
    room.add_source(source_position(scene))
    room.add_microphone(mics)
    pra.random.seed(int(scene.noise_seed) % (2**31))
    room.compute_rir()
    return room


def _stack(rirs, n=None):
    n = n or max(len(r) for r in rirs)
    out = np.zeros((len(rirs), n))
    for i, r in enumerate(rirs):
        out[i, :min(n, len(r))] = r[:n]
    return out


def _early_images(room, listener, sample_rate):
    """Directions (n, 3), integer delays and gains of the visible early image sources."""
    src = room.sources[0]
    vis = np.asarray(room.visibility[0][0], bool)
    rel = src.images[:, vis].T - listener
    dist = np.linalg.norm(rel, axis=1)
    gain = np.asarray(src.damping, float).mean(axis=0)[vis] / dist  # pyroomacoustics: 1 / r
    # pyroomacoustics centres its fractional-delay filters: the same global delay
    lag = _pra().constants.get("frac_delay_length") // 2
    delay = np.round(dist / SPEED_OF_SOUND * sample_rate).astype(int) + lag
    return rel / dist[:, None], delay, gain


def _highpass(x, sample_rate):
    """The high-pass pyroomacoustics applies to its responses (zero phase), on (n_ch, n)."""
    pra = _pra()
    if not pra.constants.get("rir_hpf_enable"):
        return x
    from pyroomacoustics.utilities import design_highpass_filter_sos
    from scipy.signal import sosfiltfilt

    sos = design_highpass_filter_sos(sample_rate, pra.constants.get("rir_hpf_fc"),
                                     **pra.constants.get("rir_hpf_kwargs"))
    return sosfiltfilt(sos, x, axis=-1)


def _mic_layout(fmt: str, listener):
    """Microphone positions (3, n_mics): omni at the listener first, then the format's."""
    off = {"binaural": [(0, EAR_OFFSET, 0), (0, -EAR_OFFSET, 0)],
           "stereo": [(0, STEREO_OFFSET, 0), (0, -STEREO_OFFSET, 0)],
           "foa": [(0, 0.1, 0), (0, 0, 0.1), (0.1, 0, 0)], "mono": []}[fmt]
    return np.array([listener] + [listener + np.array(o) for o in off]).T


def _encode_early(fmt, dirs, delay, gain, n, sample_rate):
    """Early images rendered into the format's channels: (n_channels, n)."""
    if fmt == "binaural":
        grid, hrir = kemar_hrirs(sample_rate)
        idx = np.argmax(dirs @ grid.T, axis=1)
        taps = hrir.shape[1]
        out = np.zeros((2, n + taps))
        pos = (delay[:, None] + np.arange(taps)[None]).ravel()
        for ch in range(2):
            w = (gain[:, None] * hrir[idx, :, ch]).ravel()
            out[ch] = np.bincount(pos, weights=w, minlength=n + taps)[:n + taps]
        return out[:, :n]
    # foa: ACN (W, Y, Z, X), SN3D
    enc = np.stack([np.ones(len(gain)), dirs[:, 1], dirs[:, 2], dirs[:, 0]])
    out = np.zeros((4, n))
    keep = delay < n
    for ch in range(4):
        out[ch] = np.bincount(delay[keep], weights=gain[keep] * enc[ch, keep], minlength=n)
    return out


def scene_rir(scene: Scene, *, fmt: str, sample_rate: int):
    """The scene's room impulse responses: (format channels (n_ch, n), omni (n,))."""
    fmt = check_choice(fmt, "format", FORMATS)
    _, _, listener = room_geometry(scene.room.shape, scene.room.volume_level)
    mics = _mic_layout(fmt, listener)
    room = _build_room(scene, mics, sample_rate=sample_rate, ray_tracing=True)
    full = _stack([room.rir[m][0] for m in range(mics.shape[1])])
    omni, n = full[0], full.shape[1]
    if fmt == "mono":
        return full[:1], omni
    if fmt == "stereo":
        return full[1:], omni
    ism = _build_room(scene, mics, sample_rate=sample_rate, ray_tracing=False)
    tail = full - _stack([ism.rir[m][0] for m in range(mics.shape[1])], n)
    early = _highpass(_encode_early(fmt, *_early_images(room, listener, sample_rate), n,
                                    sample_rate), sample_rate)
    if fmt == "binaural":
        return early + tail[1:], omni
    late = np.concatenate([tail[:1], tail[1:] / np.sqrt(3.0)])
    return early + late, omni


def measured_rt60(omni, sample_rate: int) -> float:
    """RT60 in seconds measured on an impulse response (``pyroomacoustics.measure_rt60``)."""
    return float(_pra().measure_rt60(omni, fs=sample_rate, decay_db=30))


def drr_db(omni, sample_rate: int) -> float:
    """Direct-to-reverberant ratio (dB): energy within 2.5 ms of the direct peak over the rest."""
    k = int(np.argmax(np.abs(omni)))
    w = int(0.0025 * sample_rate)
    e = omni ** 2
    direct = e[max(0, k - w):k + w + 1].sum()
    return float(10 * np.log10(direct / max(e.sum() - direct, 1e-20)))


def _pink(n, n_ch, seed):
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal((n_ch, n)), axis=1)
    f = np.arange(spec.shape[1], dtype=float)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n, axis=1)
    return x / np.sqrt(np.mean(x ** 2)) * 10 ** (NOISE_DB / 20)


def render_scene(scene: Scene, dry: np.ndarray, *, fmt: str, sample_rate: int):
    """Render one scene: ``(audio (n_samples, n_channels), measured RT60, DRR in dB)``."""
    from scipy.signal import fftconvolve

    rir, omni = scene_rir(scene, fmt=fmt, sample_rate=sample_rate)
    n = len(dry)
    wet = fftconvolve(dry[None, :], rir, axes=1)[:, :n]
    wet = wet + _pink(n, wet.shape[0], scene.noise_seed)
    return wet.T.astype(np.float32), measured_rt60(omni, sample_rate), drr_db(omni, sample_rate)


# --------------------------------------------------------------------------- designs


def _balanced(levels, m, rng):
    """``m`` levels, each level equally often (up to one), in a seeded random order."""
    reps = -(-m // len(levels))
    out = np.concatenate([rng.permutation(len(levels)) for _ in range(reps)])[:m]
    return [levels[i] for i in rng.permutation(out)]


def _check_levels(name, levels, *, circular=False, fixed_ok=False):
    levels = tuple(levels)
    if not levels or (len(set(levels)) < 2 and not fixed_ok):
        raise InvalidOptionError(f"factor {name!r} has {len(set(levels))} level(s) "
                                 f"{list(levels)}; a probe needs at least two")
    if circular and any(not (-180 <= float(a) < 360) for a in levels):
        raise InvalidOptionError(f"azimuths must lie in [-180, 360) degrees, got {list(levels)}")
    return levels


def spatial_design(n: int, *, seed: int = 0, azimuths: Sequence[float] = AZIMUTHS,
                   elevations: Sequence[float] = ELEVATIONS,
                   distances: Sequence[float] = DISTANCES, classes: Sequence[str] = CLASSES,
                   rt60s: Sequence[float] = RT60S, volumes: Sequence[str] = tuple(VOLUMES),
                   shapes: Sequence[str] = SHAPES, sources_per_class: int = 2) -> list[Scene]:
    """A balanced, seeded design of ``n`` scenes (see the module docstring).

    Raises :class:`alignjax.errors.InvalidOptionError` for a source factor with one level
    (room factors may be fixed: a study of one room; probing them is then refused) and
    :class:`SceneError` for sources that do not fit in a room or unreachable RT60s.
    """
    n = check_positive_int(n, "n")
    az = tuple(float(a) % 360 for a in _check_levels("azimuth", azimuths, circular=True))
    el = _check_levels("elevation", [float(e) for e in elevations])
    di = _check_levels("distance", [float(d) for d in distances])
    cl = _check_levels("class", classes)
    rooms = [Room(s, v, float(r)) for s in _check_levels("shape", shapes, fixed_ok=True)
             for v in _check_levels("volume", volumes, fixed_ok=True)
             for r in _check_levels("rt60", rt60s, fixed_ok=True)]
    for s in shapes:
        check_choice(s, "shape", SHAPES)
    for v in volumes:
        check_choice(v, "volume", tuple(VOLUMES))
    if n < 2 * len(rooms):
        raise InvalidOptionError(f"n={n} scenes is too few for {len(rooms)} rooms; give at "
                                 f"least {2 * len(rooms)}")
    k = check_positive_int(sources_per_class, "sources_per_class")
    rng = np.random.default_rng(seed)
    crossing = list(itertools.product(az, el, di, cl))
    scenes = []
    for r, room in enumerate(rooms):
        m = n // len(rooms) + (r < n % len(rooms))
        if m % len(crossing) == 0:
            cells = [crossing[i] for i in np.concatenate(
                [rng.permutation(len(crossing)) for _ in range(m // len(crossing))])]
        else:
            cells = list(zip(*(_balanced(lv, m, rng) for lv in (az, el, di, cl))))
        count = {c: 0 for c in cl}
        for a, e, d, c in cells:
            j = count[c] % k
            count[c] += 1
            src_index = (r * len(cl) + cl.index(c)) * k + j
            sid = f"s{len(scenes):05d}"
            scenes.append(Scene(sid, room, a, e, d, c, f"src{src_index:04d}_{c}", src_index,
                                noise_seed=int(rng.integers(2**31))))
    for s in scenes:
        source_position(s)
        _absorption(s.room, *room_geometry(s.room.shape, s.room.volume_level)[:2])
    return scenes


def perturbation_design(scenes: Sequence[Scene], *, n_anchors: int = 4, seed: int = 0,
                        azimuth_step: float = 30.0, elevations=(-30.0, -15.0, 0.0, 15.0, 30.0),
                        distances=(0.75, 1.0, 1.5, 2.0), rt60s=RT60S,
                        volumes=tuple(VOLUMES)) -> tuple[list[Scene], list[dict]]:
    """One-factor sweeps around anchor scenes, with everything else fixed.

    For each anchor (drawn from ``scenes``): azimuth around the circle from 0 (front) in
    ``azimuth_step`` steps, an elevation arc, a distance series, RT60 and volume steps
    (same dry source, same noise seed), and the anchor re-rendered with another noise seed.
    Levels that do not fit the anchor's room are left out, and so is each factor's level
    equal to the reference's (azimuth 0, elevation 0, the anchor's distance, RT60 and
    volume): with the same dry source and noise seed that scene is the reference itself,
    a pair at distance exactly 0 that only pulled the factor's sensitivity to 0 (with one
    volume level, every volume pair was such a copy). A factor with a single level gets
    no pairs. Returns the new scenes and the
    pairs (``a``, ``b``, ``factor``, ``delta`` = |change| (azimuth wrapped to [0, 180]),
    ``kind`` = ``factor`` or ``noise``) plus ``random`` pairs between design scenes.
    """
    rng = np.random.default_rng([seed, 17])
    n_anchors = min(check_positive_int(n_anchors, "n_anchors"), len(scenes))
    anchors = [scenes[i] for i in np.sort(rng.choice(len(scenes), n_anchors, replace=False))]
    new, pairs = [], []
    for a_i, anc in enumerate(anchors):
        base = replace(anc, azimuth=0.0, elevation=0.0, set="sweep", anchor=anc.id)
        sweeps = {
            "azimuth": [replace(base, azimuth=float(v)) for v in np.arange(0, 360, azimuth_step)],
            "elevation": [replace(base, elevation=float(v)) for v in elevations],
            "distance": [replace(base, distance=float(v)) for v in distances],
            "rt60": [replace(base, room=replace(base.room, rt60=float(v))) for v in rt60s],
            "volume": [replace(base, room=replace(base.room, volume_level=v)) for v in volumes],
        }
        ref = replace(base, id=f"p{a_i:02d}_ref", vary="reference")
        new.append(ref)
        noisy = replace(ref, id=f"p{a_i:02d}_noise", noise_seed=ref.noise_seed + 1, vary="noise")
        new.append(noisy)
        pairs.append({"a": ref.id, "b": noisy.id, "factor": "noise", "delta": 0.0,
                      "kind": "noise"})
        for factor, members in sweeps.items():
            for j, s in enumerate(members):
                s = replace(s, id=f"p{a_i:02d}_{factor}{j:02d}", vary=factor)
                if _delta(factor, ref, s) == 0:  # the reference itself: no change to measure
                    continue
                try:
                    source_position(s)
                    _absorption(s.room, *room_geometry(s.room.shape, s.room.volume_level)[:2])
                except SceneError:
                    continue
                new.append(s)
                pairs.append({"a": ref.id, "b": s.id, "factor": factor,
                              "delta": _delta(factor, ref, s), "kind": "factor"})
    main = [s.id for s in scenes]
    for _ in range(max(200, 4 * len(pairs))):
        i, j = rng.choice(len(main), 2, replace=False)
        pairs.append({"a": main[i], "b": main[j], "factor": "random", "delta": np.nan,
                      "kind": "random"})
    return new, pairs


def _delta(factor, a: Scene, b: Scene) -> float:
    if factor == "azimuth":
        d = abs(b.azimuth - a.azimuth) % 360
        return float(min(d, 360 - d))
    if factor == "rt60":
        return abs(b.room.rt60 - a.room.rt60)
    if factor == "volume":
        return abs(VOLUMES[b.room.volume_level] - VOLUMES[a.room.volume_level])
    return abs(getattr(b, factor) - getattr(a, factor))


# --------------------------------------------------------------------------- dry sources and writing


def _user_sources(folder) -> dict[str, list[Path]]:
    """Audio files of a user folder by class: one class per sub-folder (or ``user``)."""
    from .audio import AUDIO_EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():
        raise SceneError(f"sources folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise SceneError(f"{folder} holds no audio files")
    out: dict[str, list[Path]] = {}
    for p in files:
        rel = p.relative_to(folder).parts
        out.setdefault(rel[0] if len(rel) > 1 else "user", []).append(p)
    return out


def _dry(scene: Scene, *, seed, sample_rate, duration, user):
    """The dry waveform of a scene's source (peak 0.5), deterministic per source."""
    n = int(round(duration * sample_rate))
    if user is not None:
        from .audio import load_audio

        files = user[scene.cls]
        return load_audio(files[scene.source_index % len(files)], sample_rate=sample_rate,
                          duration=duration).astype(float)
    from .synth import synth_item

    x, _ = synth_item(scene.source_index, seed=seed, sample_rate=sample_rate,
                      duration=duration, category=scene.cls)
    return np.asarray(x, float)[:n]


def _row(s: Scene, fmt, rt60, drr) -> dict:
    return {"id": s.id, "path": f"{s.id}.wav", "azimuth": s.azimuth, "elevation": s.elevation,
            "distance": s.distance, "class": s.cls, "rt60_target": s.room.rt60,
            "rt60": round(rt60, 4), "drr_db": round(drr, 3),
            "volume": VOLUMES[s.room.volume_level], "volume_level": s.room.volume_level,
            "shape": s.room.shape, "room": s.room.name, "source": s.source,
            "room_group": s.room.name, "source_group": s.source, "noise_seed": s.noise_seed,
            "format": fmt, "set": s.set, "anchor": s.anchor, "vary": s.vary}


def synthesize_spatial(out, *, n: int = 240, fmt: str = "binaural", seed: int = 0,
                       sample_rate: int = 16000, duration: float = 2.0, sources=None,
                       n_anchors: int = 4, perturb: bool = True, perturbation=None,
                       progress: bool = True, **design) -> Path:
    """Render a spatial scene set to ``out``; return the path of ``labels.csv``.

    Writes one float WAV per scene (channels as ``fmt``), ``labels.csv`` (columns
    :data:`LABEL_COLUMNS`; ``set`` is ``main`` for the design, ``sweep`` for perturbation
    scenes), and with ``perturb`` ``pairs.csv`` (columns :data:`PAIR_COLUMNS`) for
    :func:`alignjax.sensitivity`.

    Parameters
    ----------
    out : str or Path
    n : int
        Scenes of the balanced design (:func:`spatial_design`).
    fmt : {"binaural", "foa", "stereo", "mono"}
    seed : int
    sample_rate : int
    duration : float
        Seconds per clip.
    sources : str or Path, optional
        A folder of dry sounds (one class per sub-folder) instead of the synthesiser's.
    n_anchors : int
        Anchor scenes of the perturbation sets.
    perturb : bool
        Also render the perturbation sets.
    perturbation : mapping, optional
        Keywords of :func:`perturbation_design` (``azimuth_step``, ``elevations``,
        ``distances``, ``rt60s``, ``volumes``); by default the RT60s and volumes of the
        design. Give levels beyond the design's (e.g. both volumes for a design of one)
        to measure the sensitivity to a factor the design holds fixed.
    progress : bool
    **design
        Levels passed to :func:`spatial_design` (azimuths, elevations, distances, classes,
        rt60s, volumes, shapes, sources_per_class).
    """
    import soundfile as sf
    from tqdm.auto import tqdm

    fmt = check_choice(fmt, "format", FORMATS)
    check_positive_int(sample_rate, "sample_rate", minimum=8000)
    user = _user_sources(sources) if sources is not None else None
    if user is not None:
        design.setdefault("classes", tuple(user))
    scenes = spatial_design(n, seed=seed, **design)
    levels = {k: design[k] for k in ("rt60s", "volumes") if k in design}
    levels.update(perturbation or {})
    extra, pairs = (perturbation_design(scenes, n_anchors=n_anchors, seed=seed, **levels)
                    if perturb else ([], []))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in tqdm(scenes + extra, desc=f"rendering {fmt} scenes", disable=not progress):
        dry = _dry(s, seed=seed, sample_rate=sample_rate, duration=duration, user=user)
        audio, rt60, drr = render_scene(s, dry, fmt=fmt, sample_rate=sample_rate)
        sf.write(str(out / f"{s.id}.wav"), audio, sample_rate, subtype="FLOAT")
        rows.append(_row(s, fmt, rt60, drr))
    path = out / "labels.csv"
    _write_csv(path, LABEL_COLUMNS, rows)
    if perturb:
        _write_csv(out / "pairs.csv", PAIR_COLUMNS, pairs)
    return path


def _write_csv(path, columns, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)
