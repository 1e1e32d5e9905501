"""layer_weighted_probe: learns to weight the informative layer; rejects mixed widths."""

import logging

import jax
import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("optax")
from alignjax import ShapeMismatchError  # noqa: E402
from alignjax.probes import layer_weighted_probe  # noqa: E402


def test_layer_weighted_probe_finds_informative_layer():
    rng = np.random.default_rng(0)
    n = 60
    y = np.arange(n) % 3
    code = rng.standard_normal((3, 8)) * 1.5
    layers = [rng.standard_normal((n, 8)), np.eye(3)[y] @ code + 0.5 * rng.standard_normal((n, 8)),
              rng.standard_normal((n, 8))]
    r = layer_weighted_probe(layers, y, folds=2, hidden=((16,),), learning_rates=(1e-2, 3e-3),
                             max_epochs=30, patience=5, batch_size=10)
    assert r.accuracy.shape == (2,) and r.layer_weights.shape == (2, 3)
    np.testing.assert_allclose(r.layer_weights.sum(axis=1), 1.0, rtol=1e-5)
    assert r.accuracy.mean() > 0.85
    assert np.all(np.argmax(r.layer_weights, axis=1) == 1)
    assert r.chance == pytest.approx(1 / 3)
    assert np.all((r.n_epochs >= 1) & (r.n_epochs <= 30))


def test_layer_weighted_probe_needs_equal_widths():
    rng = np.random.default_rng(1)
    with pytest.raises(ShapeMismatchError, match="one width"):
        layer_weighted_probe([rng.standard_normal((30, 4)), rng.standard_normal((30, 5))],
                             np.arange(30) % 2, folds=2)


def test_validation_holdout_follows_val_fraction():
    from alignjax.folds import stratified_holdout

    codes = np.repeat([0, 1], 50)
    members = np.arange(100)
    sizes = {f: len(stratified_holdout(codes, members, f, np.random.default_rng(0))[0])
             for f in (0.2, 0.4, 0.45)}
    assert sizes == {0.2: 20, 0.4: 40, 0.45: 44}  # 22.5 rounds to 22 per class
    val, tr = stratified_holdout(codes, members, 0.3, np.random.default_rng(1))
    assert np.intersect1d(val, tr).size == 0 and len(val) + len(tr) == 100
    assert np.bincount(codes[val]).tolist() == [15, 15]


class _Messages(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_compiles_once_per_problem_shape():
    """Folds of one shape share one compiled trainer, and a second identical call compiles
    nothing at all (jax's compilation log stays empty)."""
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1, 2], 20)
    layers = [rng.standard_normal((60, 4)) for _ in range(2)]
    kw = dict(folds=3, hidden=((4,),), learning_rates=(1e-2,), max_epochs=2, patience=1,
              batch_size=16)
    log = _Messages()
    logging.getLogger("jax").addHandler(log)
    try:
        with jax.log_compiles():
            first = layer_weighted_probe(layers, y, **kw)
            trainer = [m for m in log.messages if m.startswith("Compiling jit(_train_grid)")]
            assert len(trainer) == 1  # three folds of equal shape: one compilation
            log.messages.clear()
            second = layer_weighted_probe(layers, y, **kw)
            assert not [m for m in log.messages if m.startswith("Compiling")]
    finally:
        logging.getLogger("jax").removeHandler(log)
    np.testing.assert_array_equal(first.accuracy, second.accuracy)
