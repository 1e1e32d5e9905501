"""Layer-weighted downstream probe (HEAR style, Pepino et al.): softmax layer weights -> MLP.

The model sees every layer of a stimulus at once: the features of the layers are mixed
with learned softmax weights, then an MLP (hidden layers of ``Dense -> BatchNorm -> ReLU ->
Dropout``) predicts the class. It is trained with Adam on minibatches, with early
stopping on a validation split of each outer training set, over a small grid (hidden
layers x learning rate); the learning rates of a grid row are trained together under
``vmap``. The learned layer weights say which layers the downstream model relies on.

The model of a (n_layers, hidden, n_classes, dropout) is built once per process
(:func:`_model` is cached), so the compiled training program is keyed only by the data
shapes and the static hyperparameters: folds of equal shape and repeated calls reuse it.

Written with flax (``flax.linen``) and optax, the extra ``alignjax[probe]``.
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import InvalidOptionError, ShapeMismatchError, check_positive_int
from ..folds import stratified_holdout
from .cv import accuracy, resolve_probe_folds
from .labels import encode_labels, load_labelled

__all__ = ["LayerWeightedResult", "layer_weighted_probe"]


class LayerWeightedResult(NamedTuple):
    """Result of :func:`layer_weighted_probe`.

    Attributes
    ----------
    layers : list of str (n_layers,)
    accuracy, balanced_accuracy : arrays (n_folds,)
        Outer test-fold scores of the model selected on the validation split.
    layer_weights : array (n_folds, n_layers)
        Learned softmax layer weights of the selected model per outer fold.
    hidden : list of tuple (n_folds,)
        Hidden-layer sizes selected per fold.
    learning_rate : array (n_folds,)
        Learning rate selected per fold.
    val_accuracy : array (n_folds,)
        A selection score, not an estimate: the validation accuracy of the selected model,
        on the split that chose both its early-stopping epoch and its grid point, so it is
        optimistic (0.44 on 3-class noise whose test accuracy is 0.32). ``accuracy`` is
        the estimate.
    n_epochs : array (n_folds,)
        Epochs trained before early stopping (selected model).
    chance : float
        Majority-class share.
    folds : bool array (n_folds, n_stimuli)
    """

    layers: list
    accuracy: np.ndarray
    balanced_accuracy: np.ndarray
    layer_weights: np.ndarray
    hidden: list
    learning_rate: np.ndarray
    val_accuracy: np.ndarray
    n_epochs: np.ndarray
    chance: float
    folds: np.ndarray


@lru_cache(maxsize=32)
def _model(n_layers: int, hidden: tuple, n_classes: int, dropout: float):
    """The flax module of one architecture, built once: a static argument of the compiled
    trainer, so the same module object must come back for the same architecture."""
    import flax.linen as nn

    class LayerWeightedMLP(nn.Module):
        @nn.compact
        def __call__(self, x, *, train: bool):  # x: (batch, n_layers, n_features)
            logits = self.param("layer_logits", nn.initializers.zeros, (n_layers,))
            w = jax.nn.softmax(logits)
            h = jnp.einsum("l,blp->bp", w, x)
            for width in hidden:
                h = nn.Dense(width)(h)
                h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
                h = nn.relu(h)
                h = nn.Dropout(dropout, deterministic=not train)(h)
            return nn.Dense(n_classes)(h)

    return LayerWeightedMLP()


def _train_one(key, lr, Xtr, ytr, Xval, yval, *, model, batch_size, max_epochs, patience):
    """Train one model; early stopping on validation loss. Composes under vmap (over lr, key)."""
    import optax

    k_init, k_loop = jax.random.split(key)
    variables = model.init({"params": k_init}, Xtr[:2], train=False)
    params, stats = variables["params"], variables["batch_stats"]
    tx = optax.adam(lr)
    opt_state = tx.init(params)
    n_tr = Xtr.shape[0]
    n_batches = max(n_tr // batch_size, 1)
    bs = min(batch_size, n_tr)

    def loss_fn(params, stats, xb, yb, rng):
        logits, upd = model.apply({"params": params, "batch_stats": stats}, xb, train=True,
                                  rngs={"dropout": rng}, mutable=["batch_stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        return loss, upd["batch_stats"]

    def val_metrics(params, stats):
        logits = model.apply({"params": params, "batch_stats": stats}, Xval, train=False)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, yval).mean()
        return loss

    def epoch(carry):
        params, stats, opt_state, key, ep, best, best_params, best_stats, best_ep, wait = carry
        key, kp, kd = jax.random.split(key, 3)
        perm = jax.random.permutation(kp, n_tr)[: n_batches * bs].reshape(n_batches, bs)

        def step(c, idx_rng):
            params, stats, opt_state = c
            idx, rng = idx_rng
            (_, stats), g = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, Xtr[idx],
                                                                       ytr[idx], rng)
            upd, opt_state = tx.update(g, opt_state, params)
            return (optax.apply_updates(params, upd), stats, opt_state), None

        (params, stats, opt_state), _ = jax.lax.scan(
            step, (params, stats, opt_state), (perm, jax.random.split(kd, n_batches)))
        vloss = val_metrics(params, stats)
        better = vloss < best
        pick = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b),
                                                       new, old)
        return (params, stats, opt_state, key, ep + 1, jnp.where(better, vloss, best),
                pick(params, best_params), pick(stats, best_stats),
                jnp.where(better, ep + 1, best_ep), jnp.where(better, 0, wait + 1))

    def cond(carry):
        ep, wait = carry[4], carry[9]
        return (ep < max_epochs) & (wait < patience)

    init = (params, stats, opt_state, k_loop, jnp.asarray(0), jnp.asarray(jnp.inf, Xtr.dtype),
            params, stats, jnp.asarray(0), jnp.asarray(0))
    out = jax.lax.while_loop(cond, epoch, init)
    best_params, best_stats, best_ep = out[6], out[7], out[8]
    return best_params, best_stats, best_ep


@partial(jax.jit, static_argnames=("model", "batch_size", "max_epochs", "patience"))
def _train_grid(keys, lrs, Xtr, ytr, Xval, yval, Xte, *, model, batch_size, max_epochs,
                patience):
    def one(key, lr):
        params, stats, ep = _train_one(key, lr, Xtr, ytr, Xval, yval, model=model,
                                       batch_size=batch_size, max_epochs=max_epochs,
                                       patience=patience)
        v = {"params": params, "batch_stats": stats}
        val_pred = jnp.argmax(model.apply(v, Xval, train=False), axis=-1)
        te_pred = jnp.argmax(model.apply(v, Xte, train=False), axis=-1)
        return val_pred, te_pred, jax.nn.softmax(params["layer_logits"]), ep

    return jax.vmap(one)(keys, lrs)


def _check_options(batch_size, max_epochs, patience, val_fraction, dropout, hidden,
                   learning_rates):
    """Validated ``(batch_size, max_epochs, patience, hidden)``."""
    batch_size = check_positive_int(batch_size, "batch_size")
    max_epochs = check_positive_int(max_epochs, "max_epochs")
    patience = check_positive_int(patience, "patience")
    if not 0 < val_fraction < 0.5:
        raise InvalidOptionError(f"val_fraction must be in (0, 0.5), got {val_fraction}")
    if not 0 <= dropout < 1:
        raise InvalidOptionError(f"dropout must be in [0, 1), got {dropout}")
    hidden = [tuple(int(h) for h in hs) for hs in hidden]
    if not hidden or not learning_rates:
        raise InvalidOptionError("hidden and learning_rates must each hold at least one value")
    return batch_size, max_epochs, patience, hidden


def _stacked(arrays) -> np.ndarray:
    """Layers stacked (n_stimuli, n_layers, n_features); they must share one width."""
    widths = {a.shape[1] for a in arrays}
    if len(widths) != 1:
        raise ShapeMismatchError(
            f"layer_weighted_probe mixes layers, so they need one width; got widths "
            f"{sorted(widths)} (select layers of equal width with `layers=`)")
    return np.stack(arrays, axis=1)


def _fold_data(Xall, tr, val, te, standardize, dtype):
    """Training, validation and test features, z-scored with training statistics."""
    Xf = Xall
    if standardize:
        mu = Xall[tr].mean(axis=0)
        sd = Xall[tr].std(axis=0)
        Xf = (Xall - mu) / np.where(sd > 0, sd, 1.0)
    return tuple(jnp.asarray(Xf[i], dtype) for i in (tr, val, te))


def _best_of_grid(data, codes, tr, val, *, f, seed, hidden, learning_rates, n_classes, dropout,
                  **train):
    """Train the grid on one outer fold; the grid point with the best validation accuracy
    (first wins ties): ``(val_accuracy, (hidden, lr index, test predictions, layer
    weights, epochs))``."""
    Xtr, Xval, Xte = data
    lrs = jnp.asarray(learning_rates, Xtr.dtype)
    best = (-1.0, None)
    for hi, hs in enumerate(hidden):
        model = _model(Xtr.shape[1], hs, n_classes, float(dropout))
        keys = jax.random.split(jax.random.key(seed * 1000 + f * 10 + hi), len(learning_rates))
        vp, tp, w, ep = _train_grid(keys, lrs, Xtr, jnp.asarray(codes[tr]), Xval,
                                    jnp.asarray(codes[val]), Xte, model=model, **train)
        vp, tp, w, ep = map(np.asarray, (vp, tp, w, ep))
        for j in range(len(learning_rates)):
            va = float(np.mean(vp[j] == codes[val]))
            if va > best[0]:
                best = (va, (hs, j, tp[j], w[j], ep[j]))
    return best


def layer_weighted_probe(X, y, *, folds=5, hidden: Sequence[tuple] = ((1024,), (1024, 1024)),
                         learning_rates: Sequence[float] = (1e-3, 1e-4), dropout: float = 0.1,
                         batch_size: int = 64, max_epochs: int = 100, patience: int = 10,
                         val_fraction: float = 0.2, standardize: bool = True,
                         layers: Sequence[str] | None = None, seed: int = 0) -> LayerWeightedResult:
    """Downstream probe with learned softmax weights over layers and an MLP (Pepino et al.).

    Parameters
    ----------
    X : sequence or mapping of arrays (n_stimuli, n_features), or a feature store
        All layers must have the same width.
    y : array (n_stimuli,) or mapping stimulus id -> label
    folds : int or fold specification
        Outer folds (stratified for an int).
    hidden : sequence of tuples
        Hidden-layer sizes to try (1 or 2 layers of 1024 in Pepino et al.).
    learning_rates : sequence of float
        Adam learning rates to try (trained together under ``vmap``).
    dropout : float
    batch_size, max_epochs, patience : int
        Minibatch size; epoch cap; epochs without validation-loss improvement before
        stopping (the best epoch's weights are kept).
    val_fraction : float
        Share of each outer training set (stratified) held out for early stopping and for
        choosing the grid point.
    standardize : bool
        Z-score each layer with training statistics.
    seed : int

    Returns
    -------
    LayerWeightedResult
    """
    batch_size, max_epochs, patience, hidden = _check_options(
        batch_size, max_epochs, patience, val_fraction, dropout, hidden, learning_rates)
    names, arrays, _, y = load_labelled(X, y, layers=layers)
    Xall = _stacked(arrays)
    classes, codes = encode_labels(y)
    K, n, L = len(classes), len(codes), len(arrays)
    outer = resolve_probe_folds(folds, codes, classes, seed)
    F = outer.shape[0]
    dtype = jnp.result_type(float)
    rng = np.random.default_rng(seed)
    acc, bacc, val_acc, chosen_lr = np.zeros(F), np.zeros(F), np.zeros(F), np.zeros(F)
    weights, epochs, chosen_h = np.zeros((F, L)), np.zeros(F, dtype=int), []
    for f in range(F):
        val, tr = stratified_holdout(codes, np.flatnonzero(~outer[f]), val_fraction, rng)
        te = np.flatnonzero(outer[f])
        data = _fold_data(Xall, tr, val, te, standardize, dtype)
        va, (hs, j, tp, w, ep) = _best_of_grid(
            data, codes, tr, val, f=f, seed=seed, hidden=hidden, learning_rates=learning_rates,
            n_classes=K, dropout=dropout, batch_size=batch_size, max_epochs=max_epochs,
            patience=patience)
        full = np.zeros(n, dtype=np.int64)
        full[te] = tp
        a, b = accuracy(full, codes, outer[f])
        acc[f], bacc[f], val_acc[f], chosen_lr[f] = float(a), float(b), va, learning_rates[j]
        weights[f], epochs[f] = w, int(ep)
        chosen_h.append(hs)
    chance = float(np.bincount(codes).max() / n)
    return LayerWeightedResult(names, acc, bacc, weights, chosen_h, chosen_lr, val_acc, epochs,
                               chance, outer)
