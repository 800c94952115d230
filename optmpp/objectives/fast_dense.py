"""A fast trainer for dense LeakyReLU/Dropout networks: one traced TensorFlow function per depth.

Keras ``fit`` traces a new graph for every new model: 0.7-1.0 s per trial, more than most
Hyperband trials spend training (they stop after 1-3 epochs), plus per-step overhead. Here the
network's weights, Adam's moments and the hyperparameters (LeakyReLU slopes, dropout rates,
learning rate) are *arguments* of a shape-generic ``tf.function`` that runs a whole epoch
(shuffle, mini-batches, Adam updates, then the validation loss) in one call. A worker traces it
once per network depth and reuses it for every trial of that depth, whatever the layer widths.

The maths is Keras's: Glorot-uniform kernels and zero biases, inverted dropout, Adam with
beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-7 (bias-corrected step size), MSE loss.
:meth:`DenseNet.to_keras` returns the equivalent standard Keras model (Dense -> LeakyReLU ->
Dropout blocks, then Dense(1)) with the trained weights, so a saved model predicts exactly what
the training path validated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optmpp.objectives.keras_common import import_keras

__all__ = ["DenseNet", "FastDenseTrainer"]


@dataclass
class DenseNet:
    """A dense network's architecture and (trained) weights."""

    units: list[int]
    alphas: list[float]
    dropouts: list[float]
    learning_rate: float
    weights: list[Any] = field(default_factory=list)  # [W1, b1, ..., Wout, bout] as tensors

    @property
    def depth(self) -> int:
        return len(self.units)

    def init(self, n_inputs: int, seed: int) -> None:
        """Glorot-uniform kernels, zero biases (Keras's defaults)."""
        rng = np.random.default_rng(seed)
        sizes = [n_inputs, *self.units, 1]
        self.weights = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            self.weights.append(rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32))
            self.weights.append(np.zeros(fan_out, dtype=np.float32))

    def to_keras(self, n_inputs: int) -> Any:
        """The same network as a standard Keras model carrying these weights (not compiled)."""
        keras = import_keras()
        layers = keras.layers
        model = keras.Sequential([keras.Input((n_inputs,))])
        for u, a, d in zip(self.units, self.alphas, self.dropouts):
            model.add(layers.Dense(int(u)))
            model.add(layers.LeakyReLU(negative_slope=float(a)))
            model.add(layers.Dropout(float(d)))
        model.add(layers.Dense(1))
        # not compiled: the file then holds no untrained optimizer state (compile it to train on)
        model.set_weights([np.asarray(w) for w in self.weights])
        return model


class FastDenseTrainer:
    """Trains :class:`DenseNet` objects epoch by epoch on fixed data; caches one function per depth.

    Args:
        x, y: training inputs and targets (float32).
        x_val, y_val: validation data, scored after every epoch (may be None).
        batch_size: mini-batch size.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        x_val: np.ndarray | None,
        y_val: np.ndarray | None,
        batch_size: int,
    ) -> None:
        import_keras()
        import tensorflow as tf

        self.tf = tf
        self.x = tf.constant(np.asarray(x, np.float32))
        self.y = tf.constant(np.asarray(y, np.float32).reshape(-1, 1))
        has_val = x_val is not None and y_val is not None and len(x_val) > 0
        self.x_val = tf.constant(np.asarray(x_val if has_val else x[:1], np.float32))
        self.y_val = tf.constant(np.asarray(y_val if has_val else y[:1], np.float32).reshape(-1, 1))
        self.has_val = has_val
        self.batch_size = int(batch_size)
        self._epoch_fns: dict[int, Any] = {}
        self._predict_fns: dict[int, Any] = {}
        self.traces = 0

    # ---- the traced functions -------------------------------------------------------

    @staticmethod
    def _forward(tf: Any, weights: list[Any], x: Any, alphas: Any, drops: Any, depth: int, seed: Any | None) -> Any:
        h = x
        for i in range(depth):
            h = tf.matmul(h, weights[2 * i]) + weights[2 * i + 1]
            h = tf.where(h >= 0, h, alphas[i] * h)  # LeakyReLU
            if seed is not None:  # training: inverted dropout, Keras-style
                keep = 1.0 - drops[i]
                u = tf.random.stateless_uniform(tf.shape(h), seed=seed + tf.constant([0, 1], tf.int32) * (i + 1))
                h = tf.where(u < keep, h / keep, tf.zeros_like(h))
        return tf.matmul(h, weights[2 * depth]) + weights[2 * depth + 1]

    def _epoch_fn(self, depth: int) -> Any:
        fn = self._epoch_fns.get(depth)
        if fn is not None:
            return fn
        tf = self.tf
        n_w = 2 * (depth + 1)
        w_spec = [tf.TensorSpec([None, None], tf.float32) if k % 2 == 0 else tf.TensorSpec([None], tf.float32) for k in range(n_w)]
        forward = self._forward
        outer = self

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None], tf.float32),  # x
                tf.TensorSpec([None, 1], tf.float32),  # y
                tf.TensorSpec([None, None], tf.float32),  # x_val
                tf.TensorSpec([None, 1], tf.float32),  # y_val
                w_spec, w_spec, w_spec,  # weights, m, v
                tf.TensorSpec([], tf.float32),  # t (Adam steps so far)
                tf.TensorSpec([depth], tf.float32),  # alphas
                tf.TensorSpec([depth], tf.float32),  # dropout rates
                tf.TensorSpec([], tf.float32),  # learning rate
                tf.TensorSpec([2], tf.int32),  # epoch seed
                tf.TensorSpec([], tf.int32),  # batch size
            ],
            reduce_retracing=True,
        )
        def epoch(x, y, x_val, y_val, weights, m, v, t, alphas, drops, lr, seed, batch_size):  # type: ignore[no-untyped-def]
            outer.traces += 1  # runs at trace time only
            n = tf.shape(x)[0]
            perm = tf.argsort(tf.random.stateless_uniform([n], seed=seed))
            xs, ys = tf.gather(x, perm), tf.gather(y, perm)
            n_batches = (n + batch_size - 1) // batch_size
            b1, b2, eps = 0.9, 0.999, 1e-7

            def body(i, weights, m, v, t, loss_sum):  # type: ignore[no-untyped-def]
                start = i * batch_size
                end = tf.minimum(start + batch_size, n)
                xb, yb = xs[start:end], ys[start:end]
                with tf.GradientTape() as tape:
                    tape.watch(weights)
                    pred = forward(tf, weights, xb, alphas, drops, depth, tf.stack([seed[0], seed[1] * 100_000 + i * 16]))
                    loss = tf.reduce_mean(tf.square(pred - yb))
                grads = tape.gradient(loss, weights)
                t = t + 1.0
                step = lr * tf.sqrt(1.0 - tf.pow(b2, t)) / (1.0 - tf.pow(b1, t))
                new_m = [mk + (g - mk) * (1.0 - b1) for mk, g in zip(m, grads)]
                new_v = [vk + (tf.square(g) - vk) * (1.0 - b2) for vk, g in zip(v, grads)]
                new_w = [w - step * mk / (tf.sqrt(vk) + eps) for w, mk, vk in zip(weights, new_m, new_v)]
                return i + 1, new_w, new_m, new_v, t, loss_sum + loss * tf.cast(end - start, tf.float32)

            _, weights, m, v, t, loss_sum = tf.while_loop(
                lambda i, *_: i < n_batches, body, (tf.constant(0), weights, m, v, t, tf.constant(0.0))
            )
            train_loss = loss_sum / tf.cast(n, tf.float32)
            val_pred = forward(tf, weights, x_val, alphas, drops, depth, None)
            val_loss = tf.reduce_mean(tf.square(val_pred - y_val))
            return weights, m, v, t, train_loss, val_loss

        self._epoch_fns[depth] = epoch
        return epoch

    def _predict_fn(self, depth: int) -> Any:
        fn = self._predict_fns.get(depth)
        if fn is None:
            tf = self.tf
            w_spec = [tf.TensorSpec([None, None], tf.float32) if k % 2 == 0 else tf.TensorSpec([None], tf.float32) for k in range(2 * (depth + 1))]
            forward = self._forward

            @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32), w_spec, tf.TensorSpec([depth], tf.float32)])
            def predict(x, weights, alphas):  # type: ignore[no-untyped-def]
                return forward(tf, weights, x, alphas, tf.zeros_like(alphas), depth, None)

            fn = self._predict_fns[depth] = predict
        return fn

    # ---- training -------------------------------------------------------------------

    def train(
        self,
        net: DenseNet,
        epochs: int,
        seed: int,
        on_epoch: Any = None,
        restore_best: bool = False,
    ) -> dict[str, Any]:
        """Train ``net`` (initialised from ``seed``) for up to ``epochs`` epochs.

        ``on_epoch(epoch, train_loss, val_loss)`` is called after every epoch (1-based); it may
        raise to stop (pruning). Returns the losses and the best epoch.
        """
        tf = self.tf
        net.init(int(self.x.shape[1]), seed)
        weights = [tf.constant(w) for w in net.weights]
        m = [tf.zeros_like(w) for w in weights]
        v = [tf.zeros_like(w) for w in weights]
        t = tf.constant(0.0)
        alphas = tf.constant(net.alphas, tf.float32)
        drops = tf.constant(net.dropouts, tf.float32)
        lr = tf.constant(net.learning_rate, tf.float32)
        bs = tf.constant(self.batch_size, tf.int32)
        fn = self._epoch_fn(net.depth)
        history: dict[str, Any] = {"train_loss": [], "val_loss": [], "best_epoch": 0, "best_val": math.inf, "epochs": 0}
        best_weights = weights
        try:
            for epoch in range(1, epochs + 1):
                weights, m, v, t, train_loss, val_loss = fn(
                    self.x, self.y, self.x_val, self.y_val, weights, m, v, t, alphas, drops, lr,
                    tf.constant([seed % 2**30, epoch], tf.int32), bs,
                )
                tl, vl = float(train_loss), float(val_loss) if self.has_val else math.nan
                history["train_loss"].append(tl)
                history["val_loss"].append(vl)
                history["epochs"] = epoch
                if not math.isfinite(tl):
                    raise FloatingPointError(f"training loss is {tl} at epoch {epoch}")
                if self.has_val and vl < history["best_val"]:
                    history["best_val"], history["best_epoch"] = vl, epoch
                    best_weights = weights
                if on_epoch is not None:
                    on_epoch(epoch, tl, vl)
        finally:
            net.weights = [w.numpy() for w in (best_weights if restore_best and self.has_val else weights)]
        return history

    def predict(self, net: DenseNet, x: np.ndarray) -> np.ndarray:
        tf = self.tf
        fn = self._predict_fn(net.depth)
        out = fn(tf.constant(np.asarray(x, np.float32)), [tf.constant(w) for w in net.weights], tf.constant(net.alphas, tf.float32))
        return out.numpy().reshape(-1)
