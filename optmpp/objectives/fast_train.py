"""Fast trainers for the paper's networks: one traced TensorFlow function per architecture family.

Keras ``fit`` traces a new graph for every new model (0.7-1.0 s for the dense network, seconds
for the CNN), more than most Hyperband trials spend training, and TensorFlow keeps every traced
graph, so a worker's memory grows by megabytes per trial. Here a network's weights, its
batch-norm statistics, Adam's moments and its hyperparameters (LeakyReLU slopes, dropout rates,
learning rate) are *arguments* of a shape-generic ``tf.function`` that runs a whole epoch
(shuffle, mini-batches, Adam updates, then the validation loss) in one call. A worker traces it
once per architecture *family* (the dense network's depth; the CNN's numbers of conv and dense
blocks) and reuses it for every trial of that family, whatever the widths and kernel sizes.

The maths is Keras's: Glorot-uniform kernels, zero biases, batch normalisation with momentum
0.99 and epsilon 1e-3 (batch statistics in training, moving ones in inference), inverted
dropout, Adam with beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-7 and bias-corrected step size,
MSE loss. Each net's ``to_keras`` returns the equivalent standard Keras model carrying the
trained weights, so a saved model predicts what the training path validated (tested).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from optmpp.objectives.keras_common import import_keras

__all__ = ["Conv1DNet", "ConvNet", "DenseNet", "FastTrainer", "start_state"]

_BN_MOMENTUM, _BN_EPS = 0.99, 1e-3


def _glorot(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def _dropout(tf: Any, h: Any, rate: Any, seed: Any) -> Any:
    keep = 1.0 - rate
    u = tf.random.stateless_uniform(tf.shape(h), seed=seed)
    return tf.where(u < keep, h / keep, tf.zeros_like(h))


def _dense_head_init(rng: np.random.Generator, fan_in: int, units: Sequence[int]) -> list[np.ndarray]:
    """Weights of the CNNs' head: [Dense(u) for u in units], then Dense(1)."""
    weights = []
    for u in [*units, 1]:
        weights += [_glorot(rng, (fan_in, u), fan_in, u), np.zeros(u, np.float32)]
        fan_in = u
    return weights


def _dense_head_specs(tf: Any, n_dense: int) -> list[Any]:
    return [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.float32)] * (n_dense + 1)


def _dense_head(tf: Any, h: Any, w: list[Any], n_dense: int, drops: Any, seed: Any | None) -> Any:
    """The CNNs' head on features ``h``: ``w`` holds its weights only (W, b per layer)."""
    for j in range(n_dense):
        h = tf.nn.relu(tf.matmul(h, w[2 * j]) + w[2 * j + 1])
        if seed is not None:
            h = _dropout(tf, h, drops[j], seed + tf.constant([0, 1], tf.int32) * (j + 1))
    return tf.matmul(h, w[2 * n_dense]) + w[2 * n_dense + 1]


def _add_dense_head(model: Any, L: Any, units: Sequence[int], dropouts: Sequence[float]) -> None:
    for u, d in zip(units, dropouts):
        model.add(L.Dense(int(u), activation="relu"))
        model.add(L.Dropout(float(d)))
    model.add(L.Dense(1))


@dataclass
class DenseNet:
    """Dense(units_i) -> LeakyReLU(alpha_i) -> Dropout(dropout_i) blocks, then Dense(1)."""

    units: list[int]
    alphas: list[float]
    dropouts: list[float]
    learning_rate: float
    weights: list[Any] = field(default_factory=list)  # trainable: W1, b1, ..., Wout, bout
    state: list[Any] = field(default_factory=list)  # non-trainable: none

    @property
    def family(self) -> tuple[int, ...]:
        return (len(self.units),)

    def init(self, input_shape: tuple[int, ...], seed: int) -> None:
        rng = np.random.default_rng(seed)
        sizes = [int(input_shape[-1]), *self.units, 1]
        self.weights, self.state = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            self.weights += [_glorot(rng, (fan_in, fan_out), fan_in, fan_out), np.zeros(fan_out, np.float32)]

    def hyper(self) -> list[np.ndarray]:
        return [np.asarray(self.alphas, np.float32), np.asarray(self.dropouts, np.float32)]

    @staticmethod
    def specs(tf: Any, family: tuple[int, ...]) -> tuple[list[Any], list[Any], list[Any]]:
        (depth,) = family
        w = [tf.TensorSpec([None, None], tf.float32) if k % 2 == 0 else tf.TensorSpec([None], tf.float32)
             for k in range(2 * (depth + 1))]
        return w, [], [tf.TensorSpec([depth], tf.float32)] * 2

    @staticmethod
    def forward(tf: Any, family: tuple[int, ...], w: list[Any], state: list[Any], hyper: list[Any],
                x: Any, seed: Any | None) -> tuple[Any, list[Any]]:
        (depth,) = family
        alphas, drops = hyper
        h = x
        for i in range(depth):
            h = tf.matmul(h, w[2 * i]) + w[2 * i + 1]
            h = tf.where(h >= 0, h, alphas[i] * h)  # LeakyReLU
            if seed is not None:
                h = _dropout(tf, h, drops[i], seed + tf.constant([0, 1], tf.int32) * (i + 1))
        return tf.matmul(h, w[2 * depth]) + w[2 * depth + 1], state

    def to_keras(self, input_shape: tuple[int, ...] | int) -> Any:
        """The same network as a standard Keras model with these weights (not compiled)."""
        keras = import_keras()
        L = keras.layers
        shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
        model = keras.Sequential([keras.Input(shape)])
        for u, a, d in zip(self.units, self.alphas, self.dropouts):
            model.add(L.Dense(int(u)))
            model.add(L.LeakyReLU(negative_slope=float(a)))
            model.add(L.Dropout(float(d)))
        model.add(L.Dense(1))
        model.set_weights([np.asarray(w) for w in self.weights])
        return model


@dataclass
class ConvNet:
    """[Conv2D(relu, same) -> MaxPool2D(2, same) -> BatchNorm] blocks, Flatten,
    [Dense(relu) -> Dropout] blocks, Dense(1)."""

    filters: list[int]
    kernels: list[int]
    units: list[int]
    dropouts: list[float]
    learning_rate: float
    weights: list[Any] = field(default_factory=list)  # per conv: K, b, gamma, beta; per dense: W, b; out W, b
    state: list[Any] = field(default_factory=list)  # per conv: moving mean, moving variance
    PER_CONV: ClassVar[int] = 4

    @property
    def family(self) -> tuple[int, ...]:
        return (len(self.filters), len(self.units))

    def init(self, input_shape: tuple[int, ...], seed: int) -> None:
        rng = np.random.default_rng(seed)
        h, w, cin = (int(s) for s in input_shape)
        self.weights, self.state = [], []
        for f, k in zip(self.filters, self.kernels):
            self.weights += [
                _glorot(rng, (k, k, cin, f), k * k * cin, k * k * f),
                np.zeros(f, np.float32), np.ones(f, np.float32), np.zeros(f, np.float32),
            ]
            self.state += [np.zeros(f, np.float32), np.ones(f, np.float32)]
            h, w, cin = -(-h // 2), -(-w // 2), f
        self.weights += _dense_head_init(rng, h * w * cin, self.units)

    def hyper(self) -> list[np.ndarray]:
        return [np.asarray(self.dropouts, np.float32)]

    @staticmethod
    def specs(tf: Any, family: tuple[int, ...]) -> tuple[list[Any], list[Any], list[Any]]:
        n_conv, n_dense = family
        vec = tf.TensorSpec([None], tf.float32)
        w = []
        for _ in range(n_conv):
            w += [tf.TensorSpec([None, None, None, None], tf.float32), vec, vec, vec]
        return w + _dense_head_specs(tf, n_dense), [vec] * (2 * n_conv), [tf.TensorSpec([n_dense], tf.float32)]

    @staticmethod
    def forward(tf: Any, family: tuple[int, ...], w: list[Any], state: list[Any], hyper: list[Any],
                x: Any, seed: Any | None) -> tuple[Any, list[Any]]:
        n_conv, n_dense = family
        (drops,) = hyper
        h, new_state = x, []
        for i in range(n_conv):
            K, b, gamma, beta = w[4 * i : 4 * i + 4]
            mm, mv = state[2 * i], state[2 * i + 1]
            h = tf.nn.relu(tf.nn.conv2d(h, K, strides=1, padding="SAME") + b)
            h = tf.nn.max_pool2d(h, ksize=2, strides=2, padding="SAME")
            if seed is not None:  # training: batch statistics, moving averages updated
                mean, var = tf.nn.moments(h, axes=[0, 1, 2])
                new_state += [mm * _BN_MOMENTUM + mean * (1 - _BN_MOMENTUM),
                              mv * _BN_MOMENTUM + var * (1 - _BN_MOMENTUM)]
            else:
                mean, var = mm, mv
                new_state += [mm, mv]
            h = (h - mean) * tf.math.rsqrt(var + _BN_EPS) * gamma + beta
        h = tf.reshape(h, [tf.shape(h)[0], -1])
        return _dense_head(tf, h, w[4 * n_conv :], n_dense, drops, seed), new_state

    def to_keras(self, input_shape: tuple[int, ...]) -> Any:
        keras = import_keras()
        L = keras.layers
        model = keras.Sequential([keras.Input(tuple(input_shape))])
        for f, k in zip(self.filters, self.kernels):
            model.add(L.Conv2D(int(f), (int(k), int(k)), activation="relu", padding="same"))
            model.add(L.MaxPool2D((2, 2), padding="same"))
            model.add(L.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPS))
        model.add(L.Flatten())
        _add_dense_head(model, L, self.units, self.dropouts)
        weights: list[Any] = []
        for i in range(len(self.filters)):
            weights += [*self.weights[4 * i : 4 * i + 4], *self.state[2 * i : 2 * i + 2]]
        weights += self.weights[4 * len(self.filters) :]
        model.set_weights([np.asarray(v) for v in weights])
        return model


@dataclass
class Conv1DNet:
    """A 1D CNN over the SMILES tokens: the (length x vocabulary x 1) one-hot matrix read as a
    sequence of one-hot tokens, [Conv1D(relu, same)] blocks over the sequence, global max pooling
    (each filter's strongest match anywhere in the molecule), [Dense(relu) -> Dropout] blocks,
    Dense(1)."""

    filters: list[int]
    kernels: list[int]
    units: list[int]
    dropouts: list[float]
    learning_rate: float
    weights: list[Any] = field(default_factory=list)  # per conv: K, b; per dense: W, b; out W, b
    state: list[Any] = field(default_factory=list)  # non-trainable: none

    @property
    def family(self) -> tuple[int, ...]:
        return (len(self.filters), len(self.units))

    def init(self, input_shape: tuple[int, ...], seed: int) -> None:
        rng = np.random.default_rng(seed)
        cin = int(input_shape[1])
        self.weights, self.state = [], []
        for f, k in zip(self.filters, self.kernels):
            self.weights += [_glorot(rng, (k, cin, f), k * cin, k * f), np.zeros(f, np.float32)]
            cin = f
        self.weights += _dense_head_init(rng, cin, self.units)

    def hyper(self) -> list[np.ndarray]:
        return [np.asarray(self.dropouts, np.float32)]

    @staticmethod
    def specs(tf: Any, family: tuple[int, ...]) -> tuple[list[Any], list[Any], list[Any]]:
        n_conv, n_dense = family
        vec = tf.TensorSpec([None], tf.float32)
        w = []
        for _ in range(n_conv):
            w += [tf.TensorSpec([None, None, None], tf.float32), vec]
        return w + _dense_head_specs(tf, n_dense), [], [tf.TensorSpec([n_dense], tf.float32)]

    @staticmethod
    def forward(tf: Any, family: tuple[int, ...], w: list[Any], state: list[Any], hyper: list[Any],
                x: Any, seed: Any | None) -> tuple[Any, list[Any]]:
        n_conv, n_dense = family
        (drops,) = hyper
        shape = tf.shape(x)
        h = tf.reshape(x, [shape[0], shape[1], shape[2]])  # (molecules, tokens, vocabulary)
        for i in range(n_conv):
            h = tf.nn.relu(tf.nn.conv1d(h, w[2 * i], stride=1, padding="SAME") + w[2 * i + 1])
        h = tf.reduce_max(h, axis=1)
        return _dense_head(tf, h, w[2 * n_conv :], n_dense, drops, seed), state

    def to_keras(self, input_shape: tuple[int, ...]) -> Any:
        keras = import_keras()
        L = keras.layers
        model = keras.Sequential([keras.Input(tuple(input_shape)), L.Reshape(tuple(input_shape[:2]))])
        for f, k in zip(self.filters, self.kernels):
            model.add(L.Conv1D(int(f), int(k), activation="relu", padding="same"))
        model.add(L.GlobalMaxPooling1D())
        _add_dense_head(model, L, self.units, self.dropouts)
        model.set_weights([np.asarray(v) for v in self.weights])
        return model


def start_state(weights: Sequence[Any], state: Sequence[Any] = (), epochs: int = 0
                ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A ``resume`` argument for :meth:`FastTrainer.train` that starts from given weights (and
    batch-norm statistics) with a new Adam, as if ``epochs`` epochs had been trained: how Keras
    ``fit`` continues a freshly built model that was given those weights."""
    arrays: dict[str, np.ndarray] = {}
    for i, w in enumerate(weights):
        w = np.asarray(w, np.float32)
        arrays.update({f"w{i}": w, f"bw{i}": w, f"m{i}": np.zeros_like(w), f"v{i}": np.zeros_like(w)})
    for i, x in enumerate(state):
        arrays.update({f"s{i}": np.asarray(x, np.float32), f"bs{i}": np.asarray(x, np.float32)})
    meta = {"t": 0.0, "train_loss": [], "val_loss": [], "best_epoch": 0, "best_val": math.inf, "epochs": epochs}
    return meta, arrays


def _direct(tf: Any, fn: Any) -> Any:
    """``fn`` (a ``tf.function`` with an input signature), traced now and called without its
    per-call argument binding: for the melt-index DNN that binding cost 2-3 ms per epoch call
    (casting and checking each weight, moment and hyperparameter tensor), as much as the epoch of
    a small network. Our callers pass exactly the signature's tensors, so the flat call is safe;
    where TensorFlow has no flat call, the concrete function is called as usual."""
    concrete = fn.get_concrete_function()
    call_flat = getattr(concrete, "_call_flat", None)
    if call_flat is None:  # pragma: no cover - TensorFlow 2.16-2.21 have it
        return concrete
    captured = concrete.captured_inputs

    def call(*args: Any) -> Any:
        return call_flat(tf.nest.flatten(args, expand_composites=True), captured)

    return call


class FastTrainer:
    """Trains nets (:class:`DenseNet`, :class:`ConvNet`) epoch by epoch on fixed data.

    Args:
        x, y: training inputs and targets.
        x_val, y_val: validation data, scored after every epoch (None: no validation).
        batch_size: mini-batch size.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None, y_val: np.ndarray | None, batch_size: int) -> None:
        import_keras()
        import tensorflow as tf

        self.tf = tf
        self.input_shape = tuple(int(s) for s in np.shape(x)[1:])
        self.x = tf.constant(np.asarray(x, np.float32))
        self.y = tf.constant(np.asarray(y, np.float32).reshape(-1, 1))
        self.has_val = x_val is not None and y_val is not None and len(x_val) > 0
        self.x_val = tf.constant(np.asarray(x_val if self.has_val else x[:1], np.float32))
        self.y_val = tf.constant(np.asarray(y_val if self.has_val else y[:1], np.float32).reshape(-1, 1))
        self.batch_size = int(batch_size)
        self._fns: dict[tuple[Any, ...], Any] = {}
        self.traces = 0
        self.history: dict[str, Any] = {}  # the latest ``train`` call's, as it goes

    def _epoch_fn(self, net: Any) -> Any:
        key = ("epoch", type(net).__name__, net.family)
        if key in self._fns:
            return self._fns[key]
        tf, family, forward = self.tf, net.family, type(net).forward
        w_spec, s_spec, h_spec = type(net).specs(tf, family)
        x_spec = tf.TensorSpec([None, *self.input_shape], tf.float32)
        outer = self

        @tf.function(input_signature=[
            x_spec, tf.TensorSpec([None, 1], tf.float32), x_spec, tf.TensorSpec([None, 1], tf.float32),
            w_spec, s_spec, w_spec, w_spec, h_spec,
            tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.float32),  # Adam steps so far, learning rate
            tf.TensorSpec([2], tf.int32), tf.TensorSpec([], tf.int32),  # epoch seed, batch size
        ])
        def epoch(x, y, x_val, y_val, weights, state, m, v, hyper, t, lr, seed, batch_size):  # type: ignore[no-untyped-def]
            outer.traces += 1  # Python side effect: counts traces, not calls
            n = tf.shape(x)[0]
            perm = tf.argsort(tf.random.stateless_uniform([n], seed=seed))
            xs, ys = tf.gather(x, perm), tf.gather(y, perm)
            n_batches = (n + batch_size - 1) // batch_size
            b1, b2, eps = 0.9, 0.999, 1e-7

            def body(i, weights, state, m, v, t, loss_sum):  # type: ignore[no-untyped-def]
                start = i * batch_size
                end = tf.minimum(start + batch_size, n)
                xb, yb = xs[start:end], ys[start:end]
                with tf.GradientTape() as tape:
                    tape.watch(weights)
                    pred, new_state = forward(tf, family, weights, state, hyper, xb,
                                              tf.stack([seed[0], seed[1] * 100_000 + i * 16]))
                    loss = tf.reduce_mean(tf.square(pred - yb))
                grads = tape.gradient(loss, weights)
                t = t + 1.0
                step = lr * tf.sqrt(1.0 - tf.pow(b2, t)) / (1.0 - tf.pow(b1, t))
                m = [mk + (g - mk) * (1.0 - b1) for mk, g in zip(m, grads)]
                v = [vk + (tf.square(g) - vk) * (1.0 - b2) for vk, g in zip(v, grads)]
                weights = [w - step * mk / (tf.sqrt(vk) + eps) for w, mk, vk in zip(weights, m, v)]
                return i + 1, weights, new_state, m, v, t, loss_sum + loss * tf.cast(end - start, tf.float32)

            _, weights, state, m, v, t, loss_sum = tf.while_loop(
                lambda i, *_: i < n_batches, body, (tf.constant(0), weights, state, m, v, t, tf.constant(0.0))
            )
            val_pred, _ = forward(tf, family, weights, state, hyper, x_val, None)
            return weights, state, m, v, t, loss_sum / tf.cast(n, tf.float32), tf.reduce_mean(tf.square(val_pred - y_val))

        self._fns[key] = _direct(tf, epoch)
        return self._fns[key]

    def _predict_fn(self, net: Any) -> Any:
        key = ("predict", type(net).__name__, net.family)
        if key not in self._fns:
            tf, family, forward = self.tf, net.family, type(net).forward
            w_spec, s_spec, h_spec = type(net).specs(tf, family)

            @tf.function(input_signature=[tf.TensorSpec([None, *self.input_shape], tf.float32), w_spec, s_spec, h_spec])
            def predict(x, weights, state, hyper):  # type: ignore[no-untyped-def]
                return forward(tf, family, weights, state, hyper, x, None)[0]

            self._fns[key] = predict
        return self._fns[key]

    def train(
        self,
        net: Any,
        epochs: int,
        seed: int,
        on_epoch: Any = None,
        restore_best: bool = False,
        checkpoint: Any = None,
        resume: tuple[dict[str, Any], dict[str, np.ndarray]] | None = None,
        restart: bool = False,
    ) -> dict[str, Any]:
        """Initialise ``net`` from ``seed`` and train it for up to ``epochs`` epochs.

        ``on_epoch(epoch, train_loss, val_loss)`` runs after every epoch (1-based) and may raise
        to stop (pruning). The net keeps the last weights, or the best validation epoch's with
        ``restore_best``. Returns the losses per epoch, ``epochs``, ``best_epoch`` and
        ``resumed_from`` (0, or the epoch a checkpoint resumed from), and this call's
        ``train_s`` (seconds inside the epoch graph: training steps and the validation pass) and
        ``trace_s`` (the part of it spent tracing a new network family's graph, once per worker).

        With ``checkpoint`` (:class:`optmpp.objectives.base.Checkpoint`), the whole training
        state (weights, batch-norm statistics, Adam moments and step, best weights, histories) is
        saved after each epoch it says is due, before ``on_epoch``; ``resume`` (a loaded checkpoint)
        continues from it. Shuffling and dropout are seeded by (seed, epoch), so a resumed run
        trains exactly as an uninterrupted one. With ``restart`` it continues as KerasTuner
        continues a promoted configuration instead: from the saved best epoch's weights, with a
        new Adam (moments and step count reset).
        """
        steps = self.steps(net, epochs, seed, restore_best, resume, restart)
        try:
            for epoch, tl, vl, snapshot in steps:
                # saved before ``on_epoch``, which raises where a synchronous Hyperband round ends
                if checkpoint is not None and checkpoint.due(epoch):
                    checkpoint.save(*snapshot())
                if on_epoch is not None:
                    on_epoch(epoch, tl, vl)
        finally:
            steps.close()  # the net takes its weights now, also when ``on_epoch`` raised
        return self.history

    def steps(
        self,
        net: Any,
        epochs: int,
        seed: int,
        restore_best: bool = False,
        resume: tuple[dict[str, Any], dict[str, np.ndarray]] | None = None,
        restart: bool = False,
    ) -> Iterator[tuple[int, float, float, Callable[[], tuple[dict[str, Any], dict[str, np.ndarray]]]]]:
        """:meth:`train` one epoch at a time: yields ``(epoch, train_loss, val_loss, snapshot)``
        after each epoch, where ``snapshot()`` returns the training state as a checkpoint holds
        it, ``(meta, arrays)``, which ``resume`` takes back. Several nets (one per
        cross-validation fold) train side by side by advancing their generators in turn. The net
        takes its final weights when the generator ends or is closed; ``self.history`` is the
        history :meth:`train` returns."""
        tf = self.tf
        net.init(self.input_shape, seed)
        weights = [tf.constant(w) for w in net.weights]
        state = [tf.constant(s) for s in net.state]
        m = [tf.zeros_like(w) for w in weights]
        v = [tf.zeros_like(w) for w in weights]
        hyper = [tf.constant(h) for h in net.hyper()]
        t, lr = tf.constant(0.0), tf.constant(float(net.learning_rate), tf.float32)
        bs = tf.constant(self.batch_size, tf.int32)
        traces, t0 = self.traces, time.perf_counter()
        fn = self._epoch_fn(net)  # traced here for a new family; its first call then builds the graph
        new_graph = self.traces != traces
        set_up = time.perf_counter() - t0 if new_graph else 0.0
        history: dict[str, Any] = {"train_loss": [], "val_loss": [], "best_epoch": 0, "best_val": math.inf,
                                   "epochs": 0, "resumed_from": 0, "train_s": set_up, "trace_s": set_up}
        self.history = history  # the caller reads it even when it stopped early (pruning)
        best = (weights, state)
        start = 1
        if resume is not None:
            meta, arrays = resume
            nw, ns = len(weights), len(state)

            def group(prefix: str, n: int) -> list[Any]:
                return [tf.constant(arrays[f"{prefix}{i}"]) for i in range(n)]

            weights, state, m, v = group("w", nw), group("s", ns), group("m", nw), group("v", nw)
            best = (group("bw", nw), group("bs", ns))
            t = tf.constant(float(meta["t"]))
            if restart:
                weights, state = best
                m, v = [tf.zeros_like(w) for w in weights], [tf.zeros_like(w) for w in weights]
                t = tf.constant(0.0)
            for k in ("train_loss", "val_loss", "best_epoch", "best_val", "epochs"):
                # copies: this call appends to its histories, and a resume state may be used again
                history[k] = list(meta[k]) if isinstance(meta[k], list) else meta[k]
            history["resumed_from"] = int(meta["epochs"])
            start = int(meta["epochs"]) + 1

        def snapshot() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
            arrays = {}
            for prefix, tensors in (("w", weights), ("s", state), ("m", m), ("v", v), ("bw", best[0]), ("bs", best[1])):
                arrays.update({f"{prefix}{i}": x.numpy() for i, x in enumerate(tensors)})
            meta = {k: history[k] for k in ("train_loss", "val_loss", "best_epoch", "best_val", "epochs")}
            return {**meta, "t": float(t)}, arrays

        try:
            for epoch in range(start, epochs + 1):
                t0 = time.perf_counter()
                weights, state, m, v, t, train_loss, val_loss = fn(
                    self.x, self.y, self.x_val, self.y_val, weights, state, m, v, hyper, t, lr,
                    tf.constant([seed % 2**30, epoch], tf.int32), bs,
                )
                tl = float(train_loss)
                vl = float(val_loss) if self.has_val else math.nan
                seconds = time.perf_counter() - t0
                history["train_s"] += seconds
                if new_graph:  # the first call of a new graph: TensorFlow builds and optimises it
                    history["trace_s"] += seconds
                    new_graph = False
                history["train_loss"].append(tl)
                history["val_loss"].append(vl)
                history["epochs"] = epoch
                if not math.isfinite(tl):
                    raise FloatingPointError(f"training loss is {tl} at epoch {epoch}")
                if self.has_val and vl < history["best_val"]:
                    history["best_val"], history["best_epoch"] = vl, epoch
                    best = (weights, state)
                yield epoch, tl, vl, snapshot
        finally:
            keep = best if restore_best and self.has_val else (weights, state)
            net.weights = [w.numpy() for w in keep[0]]
            net.state = [s.numpy() for s in keep[1]]

    def predict(self, net: Any, x: np.ndarray) -> np.ndarray:
        tf = self.tf
        out = self._predict_fn(net)(
            tf.constant(np.asarray(x, np.float32)), [tf.constant(w) for w in net.weights],
            [tf.constant(s) for s in net.state], [tf.constant(h) for h in net.hyper()],
        )
        return out.numpy().reshape(-1)
