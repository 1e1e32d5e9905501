"""``alignjax zoo`` on five models' RSA results: ranking, pairwise tests, correlation with a
planted external score, checkpoint curves from the stores' manifests, and clear errors."""

import csv
import json

import numpy as np
import pytest
from scipy import stats

from alignjax.app.cli import main
from alignjax.io import StoreWriter

N, N_MODELS = 30, 5
NOISE = [0.3, 0.8, 1.5, 2.5, 4.0]  # model k's features: the brain's latent plus noise


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    rng = np.random.default_rng(0)
    ids = [f"s{i:02d}" for i in range(N)]
    latent = rng.normal(size=(N, 6))
    np.savez(root / "brain.npz", stimulus_ids=np.array(ids),
             **{f"sub{j}": latent @ rng.normal(size=(6, 20)) + 0.8 * rng.normal(size=(N, 20))
                for j in range(4)})
    results = []
    for k, noise in enumerate(NOISE):
        X = latent @ rng.normal(size=(6, 12)) + noise * rng.normal(size=(N, 12))
        store = root / f"store{k}"
        with StoreWriter(store, spec="hf:toy", stimulus_ids=ids,
                         settings={"checkpoint_step": 1000 * (N_MODELS - k),
                                   "checkpoint_family": "toy"}) as w:
            for i in w.pending():
                w.write(i, {"block": X[i].astype(np.float32)})
            w.finish()
        assert main(["rsa", "--features", str(store), "--brain", str(root / "brain.npz"),
                     "--out", str(root / f"rsa{k}"), "--n-perm", "20"]) == 0
        results.append(f"m{k}={root / f'rsa{k}'}")
    hear = 0.9 - 0.1 * np.arange(N_MODELS) + 0.01 * rng.normal(size=N_MODELS)
    (root / "hear.csv").write_text("model,hear,notes\n" + "".join(
        f"m{k},{hear[k]},x\n" for k in range(N_MODELS)))
    out = root / "out"
    assert main(["zoo", "--results", *results, "--out", str(out), "--scores",
                 str(root / "hear.csv"), "--n-boot", "300", "--n-perm", "500"]) == 0
    return root, out, hear


def test_zoo_ranks_compares_and_correlates(zoo):
    root, out, hear = zoo
    rank = list(csv.DictReader(open(out / "zoo_ranking.csv")))
    assert {r["over"] for r in rank} == {"subjects", "stimuli"}
    for over in ("subjects", "stimuli"):
        best = [r for r in rank if r["over"] == over and r["rank"] == "1"]
        assert [r["model"] for r in best] == ["m0"]
    summary = json.loads((out / "zoo.json").read_text())
    # 4 subjects: no bootstrap statements over subjects (frac_boot_best, formerly p_best)
    subj = [r for r in rank if r["over"] == "subjects"]
    assert all(r["frac_boot_best"] == r["p_best"] == "nan" for r in subj)
    assert all(r["ci_method"] == "t over units" for r in subj)
    assert any("too few for bootstrap ranks" in n for n in summary["notes"])
    assert all(0 <= float(r["frac_boot_best"]) <= 1 for r in rank if r["over"] == "stimuli")
    # the alignment of a model is the mean over subjects of its best layer's RSA r
    value = []
    for k in range(N_MODELS):
        rsa = json.loads((root / f"rsa{k}" / "rsa.json").read_text())
        value.append(np.mean([r["r"] for r in rsa["rows"] if r["layer"] == "block"
                              and r["subject"].startswith("sub")]))
        assert summary["values"][f"rsa|m{k}"] == pytest.approx(value[-1])
    corr = {r["method"]: r for r in csv.DictReader(open(out / "zoo_correlation.csv"))}
    assert set(corr) == {"pearson", "spearman"} and corr["pearson"]["score"] == "hear"
    assert float(corr["pearson"]["r"]) == pytest.approx(stats.pearsonr(value, hear)[0])
    assert float(corr["spearman"]["r"]) == pytest.approx(stats.spearmanr(value, hear)[0])
    assert float(corr["spearman"]["r"]) > 0.8 and corr["spearman"]["exact"] == "True"
    pairs = list(csv.DictReader(open(out / "zoo_pairwise.csv")))
    assert len(pairs) == 20 and all(float(p["p_fwe"]) >= float(p["p"]) for p in pairs)
    assert sum(p["over"] == "subjects" for p in pairs) == 10
    for png in ("zoo_ranking.png", "zoo_scatter.png", "zoo_checkpoints.png"):
        assert (out / png).stat().st_size > 2000


def test_checkpoint_curves_use_the_manifest_steps(zoo):
    root, out, hear = zoo
    rows = list(csv.DictReader(open(out / "zoo_checkpoints.csv")))
    assert {(r["model"], float(r["step"]), r["family"]) for r in rows} == {
        (f"m{k}", 1000.0 * (N_MODELS - k), "toy") for k in range(N_MODELS)}
    trend = list(csv.DictReader(open(out / "zoo_checkpoint_trend.csv")))
    assert len(trend) == 1 and float(trend[0]["spearman_r"]) > 0.8


def test_zoo_errors(zoo, tmp_path, capsys):
    root, out, hear = zoo
    two = [f"m{k}={root / f'rsa{k}'}" for k in range(2)]
    assert main(["zoo", "--results", *two, "--out", str(tmp_path / "o"), "--scores",
                 str(root / "hear.csv")]) == 2
    assert "at least 3 models" in capsys.readouterr().err
    (root / "partial.csv").write_text("model,hear\nm0,0.5\n")
    three = [f"m{k}={root / f'rsa{k}'}" for k in range(3)]
    assert main(["zoo", "--results", *three, "--out", str(tmp_path / "o"), "--scores",
                 str(root / "partial.csv")]) == 2
    assert "no score for the models ['m1', 'm2']" in capsys.readouterr().err
    assert main(["zoo", "--results", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "holds no rsa.json" in capsys.readouterr().err


def test_probe_results_are_scores(zoo, tmp_path):
    """A probe run of each model on a labelled downstream set serves as its external score."""
    root, out, hear = zoo
    acc = [0.9, 0.8, 0.6, 0.65, 0.4]
    results = [f"m{k}={root / f'rsa{k}'}" for k in range(N_MODELS)]
    for k, a in enumerate(acc):
        d = tmp_path / f"probe{k}"
        d.mkdir()
        (d / "probe.json").write_text(json.dumps(
            {"analysis": "probe", "mode": "cv",
             "layers": [{"layer": "a", "accuracy": a - 0.1}, {"layer": "b", "accuracy": a}]}))
        results.append(f"m{k}={d}")
    # the fixture's n_boot and n_perm: the same compiled shapes
    assert main(["zoo", "--results", *results, "--out", str(tmp_path / "o"), "--n-boot", "300",
                 "--n-perm", "500", "--no-progress"]) == 0
    summary = json.loads((tmp_path / "o" / "zoo.json").read_text())
    assert summary["scores"]["probe"] == {f"m{k}": a for k, a in enumerate(acc)}
    sp = [r for r in summary["correlation"] if r["method"] == "spearman"][0]
    value = [summary["values"][f"rsa|m{k}"] for k in range(N_MODELS)]
    assert sp["r"] == pytest.approx(stats.spearmanr(value, acc)[0])


def test_pairwise_over_stimuli_from_the_rdms(zoo):
    from alignjax import rsa_bootstrap
    from alignjax.app.studies.zoo import _holm

    root, out, hear = zoo
    rows = [r for r in csv.DictReader(open(out / "zoo_pairwise.csv")) if r["over"] == "stimuli"]
    assert len(rows) == 10
    A = np.stack([np.load(root / f"rsa{k}" / "rdms" / "model.npy") for k in range(N_MODELS)])
    B = np.load(root / "rsa0" / "rdms" / "subjects.npy").mean(0, keepdims=True)
    ref = rsa_bootstrap(A, B, n_boot=300, seed=0)
    p = np.asarray(ref.diff_p)[np.triu_indices(N_MODELS, 1)][:, 0]
    np.testing.assert_allclose([float(r["p"]) for r in rows], p)
    # Holm: sorted p times (m - rank), running maximum, capped at 1
    order = np.argsort(p)
    want = np.minimum(1, np.maximum.accumulate(p[order] * np.arange(10, 0, -1)))
    np.testing.assert_allclose(_holm(p)[order], want)
    np.testing.assert_allclose([float(r["p_fwe"]) for r in rows], _holm(p))
    group = [json.loads((root / f"rsa{k}" / "rsa.json").read_text())["group_r"][0]
             for k in range(N_MODELS)]
    assert float(rows[0]["diff"]) == pytest.approx(group[0] - group[1], abs=1e-5)
