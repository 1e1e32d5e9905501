"""alignjax.spatial: known answers, conventions, folds, sensitivity and bad input."""

import numpy as np
import pytest

import alignjax as aj
from alignjax.errors import InvalidOptionError, StimulusMismatchError

N = 96


def _design(seed=0, n=N):
    rng = np.random.default_rng(seed)
    az = np.tile(np.arange(0.0, 360.0, 45.0), n // 8)
    rng.shuffle(az)
    el = np.tile([-20.0, 0.0, 20.0], n // 3 + 1)[:n]
    rng.shuffle(el)
    dist = rng.choice([1.0, 1.5, 2.0], n)
    cls = np.tile(["a", "b", "c"], n // 3 + 1)[:n]
    rt = rng.choice([0.3, 0.6, 0.9], n)
    src = np.arange(n) // 4                     # 4 scenes per dry source
    room = np.arange(n) // 8                    # 2 dry sources per room
    return dict(azimuth=az, elevation=el, distance=dist, **{"class": cls}, rt60=rt,
                source_group=src, room_group=room)


def _coding(lab, noise, seed=1):
    rng = np.random.default_rng(seed)
    r = np.deg2rad(lab["azimuth"])
    f = np.c_[np.cos(r), np.sin(r), lab["elevation"] / 20, np.log(lab["distance"]),
              lab["rt60"] * 3, lab["class"] == "a", lab["class"] == "b"]
    return f + noise * rng.normal(size=f.shape)


def test_angular_error_wraps():
    assert aj.angular_error(359, 1) == pytest.approx(2.0)
    assert aj.angular_error(-170, 170) == pytest.approx(20.0)
    np.testing.assert_allclose(aj.angular_error([0, 90, 180], [180, 270, 0]), [180, 180, 180])
    with pytest.raises(InvalidOptionError, match=r"\[-180, 360\)"):
        aj.angular_error(400, 0)
    with pytest.raises(InvalidOptionError, match=r"\[-180, 360\)"):
        aj.angular_error(0, -200)


def test_known_answer_cos_sin_features_decode_azimuth():
    lab = _design()
    res = aj.spatial_probe({"good": _coding(lab, 0.1), "noise": _coding(lab, 50.0)}, lab,
                           n_boot=100, folds=4)
    df = res.to_frame()
    assert list(df.columns) == ["layer", "factor", "metric", "value", "chance", "chance_kind",
                                "ci_low", "ci_high", "p", "p_fwe", "permuted"]
    v = df.set_index(["layer", "factor", "metric"])
    assert v.loc[("good", "azimuth", "mean_abs_error_deg"), "value"] < 15
    assert v.loc[("good", "azimuth", "acc_20deg"), "value"] > 0.8
    # chance: each test fold predicted by its training set's circular mean azimuth
    err = np.zeros(N)
    for test in res.folds:
        r = np.deg2rad(lab["azimuth"][~test])
        mean = np.rad2deg(np.arctan2(np.sin(r).mean(), np.cos(r).mean()))
        err[test] = aj.angular_error(mean % 360, lab["azimuth"][test])
    assert v.loc[("good", "azimuth", "mean_abs_error_deg"), "chance"] == pytest.approx(err.mean())
    assert v.loc[("good", "azimuth", "acc_20deg"), "chance"] == pytest.approx(np.mean(err <= 20))
    assert set(df["chance_kind"]) == {"training_mean", "majority_class"}
    assert (df["permuted"] == "").all()                  # n_perm=0: no test
    assert v.loc[("noise", "azimuth", "mean_abs_error_deg"), "value"] > 60
    assert v.loc[("good", "class", "accuracy"), "value"] > 0.9
    assert v.loc[("good", "distance", "relative_error"), "value"] < 0.2
    assert v.loc[("good", "direction", "median_great_circle_error_deg"), "value"] < 20
    lo, hi = v.loc[("good", "rt60", "mae_s"), ["ci_low", "ci_high"]]
    assert lo <= v.loc[("good", "rt60", "mae_s"), "value"] <= hi
    # every factor for every layer
    assert set(df["factor"]) == {"azimuth", "elevation", "direction", "distance", "class",
                                 "rt60"}
    assert df.groupby("factor")["layer"].nunique().eq(2).all()


def test_group_folds_never_share_a_dry_source_or_room():
    lab = _design()
    res = aj.spatial_probe([_coding(lab, 1.0)], lab, factors=["elevation"], n_boot=0, folds=3)
    for test in res.folds:
        for col in ("source_group", "room_group"):
            assert not set(lab[col][test]) & set(lab[col][~test])


def test_lateral_error_for_binaural_labels():
    lab = dict(_design(), format=np.array(["binaural"] * N))
    res = aj.spatial_probe([_coding(lab, 0.1)], lab, factors=["azimuth"], n_boot=0, folds=4)
    df = res.to_frame().set_index("metric")
    assert df.loc["lateral_abs_error_deg", "value"] < df.loc["mean_abs_error_deg", "value"] + 1e-9


def test_bad_input_raises():
    lab = _design()
    X = [_coding(lab, 1.0)]
    with pytest.raises(InvalidOptionError, match="unknown factor"):
        aj.spatial_probe(X, lab, factors=["loudness"])
    with pytest.raises(InvalidOptionError, match="single level"):
        aj.spatial_probe(X, dict(lab, rt60=np.full(N, 0.5)), factors=["rt60"])
    with pytest.raises(InvalidOptionError, match=r"\[-180, 360\)"):
        aj.spatial_probe(X, dict(lab, azimuth=lab["azimuth"] + 400), factors=["azimuth"])
    with pytest.raises(StimulusMismatchError):
        aj.spatial_probe(X, {k: v[:-1] for k, v in lab.items()}, factors=["rt60"])


def test_labels_matched_by_stimulus_id(tmp_path):
    pd = pytest.importorskip("pandas")
    from alignjax.io import StoreWriter

    lab = _design()
    ids = [f"x{i:03d}" for i in range(N)]
    X = _coding(lab, 0.1)
    with StoreWriter(tmp_path / "s", spec="test", stimulus_ids=ids) as w:
        for i in range(N):
            w.write(i, {"L": X[i].astype(np.float32)})
        w.finish()
    df = pd.DataFrame(lab).assign(id=ids).iloc[::-1]        # another row order
    a = aj.spatial_probe(tmp_path / "s", df, factors=["azimuth"], n_boot=0, folds=4)
    b = aj.spatial_probe([X], lab, factors=["azimuth"], n_boot=0, folds=4)
    assert a.rows[0]["value"] == pytest.approx(b.rows[0]["value"], rel=1e-5)
    with pytest.raises(StimulusMismatchError):
        aj.spatial_probe(tmp_path / "s", df.assign(id=[f"y{i}" for i in range(N)]),
                         factors=["azimuth"])


def test_sensitivity_noise_floor_vs_coding_feature():
    rng = np.random.default_rng(0)
    n_anchor, levels = 6, np.arange(0.0, 360.0, 30.0)
    ids, rows, az = [], [], {}
    feats_code, feats_inv = [], []
    for a in range(n_anchor):
        base = rng.normal(size=8)                         # the anchor's identity
        for k, lv in enumerate(levels):
            for noise in (0, 1):
                sid = f"a{a}_az{k}_n{noise}"
                ids.append(sid)
                az[sid] = lv
                r = np.deg2rad(lv)
                jitter = 0.05 * rng.normal(size=10)
                feats_code.append(np.r_[base, 3 * np.cos(r), 3 * np.sin(r)] + jitter)
                feats_inv.append(np.r_[base, 0.0, 0.0] + jitter)
        ref = f"a{a}_az0_n0"
        rows.append((ref, f"a{a}_az0_n1", "noise", 0.0, "noise"))
        for k, lv in enumerate(levels[1:], 1):
            rows.append((ref, f"a{a}_az{k}_n0", "azimuth", min(lv, 360 - lv), "factor"))
    main = [i for i in ids if i.endswith("_n0")]
    for _ in range(200):
        i, j = rng.choice(len(main), 2, replace=False)
        rows.append((main[i], main[j], "random", np.nan, "random"))
    pairs = {k: np.array(v) for k, v in zip(("a", "b", "factor", "delta", "kind"), zip(*rows))}
    res = aj.sensitivity({"code": np.array(feats_code), "inv": np.array(feats_inv)}, pairs,
                         stimulus_ids=ids, azimuths=az, n_boot=200)
    df = res.to_frame().set_index("layer")
    code, inv = df.loc["code"], df.loc["inv"]
    assert code["S"] > 5 * code["noise_floor"] and code["ci_low"] > code["noise_ci_high"]
    assert inv["S"] < 2 * inv["noise_floor"]
    assert inv["S"] < 0.2 * code["S"]
    dose = res.dose_frame()
    d = dose[(dose.layer == "code")].sort_values("delta")["displacement"].to_numpy()
    assert d[-1] > d[0]                                   # dose-response rises
    mir = res.mirror_frame()
    assert (mir[mir.layer == "code"]["asymmetry"] < 0.2).all()
    with pytest.raises(InvalidOptionError, match="noise"):
        aj.sensitivity({"code": np.array(feats_code)},
                       {k: v[pairs["kind"] != "noise"] for k, v in pairs.items()},
                       stimulus_ids=ids)
