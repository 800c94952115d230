"""``hdpe-mi-dnn``: the paper's dense network for the HDPE melt index (case 1), in Keras.

Model: Dense(units_1) -> LeakyReLU(alpha_1) -> Dropout(dropout_1), then ``num_layers`` more
blocks Dense(units_hid_i) -> LeakyReLU(alpha_hid_i) -> Dropout(dropout_hid_i), then Dense(1);
Adam, MSE on the standardised target. X and y are standardised with scalers fitted on the
training part only.

The search space is the paper's Table 5, exactly (each range overridable in ``[objective]``):

| parameter | values |
|---|---|
| ``units_1``, ``units_hid_i`` | 32..512 step 32 (``units = [32, 512, 32]``) |
| ``alpha_1``, ``alpha_hid_i`` (LeakyReLU slope) | 0.05..0.5 step 0.05 (``alpha``) |
| ``dropout_1``, ``dropout_hid_i`` | 0.05..0.5 step 0.05 (``dropout``) |
| ``num_layers`` (hidden blocks after the first) | 1..4 (``num_layers = [1, 4]``) |
| ``learning_rate`` | {1e-2, 1e-3, 1e-4} (``learning_rates``) |

Batch size is fixed by the study file, as the paper recommends. ``model = "paper-baseline"``
trains the paper's no-HPO network instead (3 x Dense(64, relu) + Dropout(0.25), Adam 1e-3;
the study file sets 50 epochs and batch 150) and suggests no parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from optmpp.data import find_data_file, load_numeric_table, split_indices
from optmpp.objectives.base import parse_options
from optmpp.objectives.keras_common import KerasRegressionObjective, import_keras
from optmpp.objectives.sklearn_mlp import HDPE_FEATURES

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class DNNOptions:
    data_file: str = "HDPE_LG_Plant_Data.csv"
    features: list[str] = field(default_factory=lambda: list(HDPE_FEATURES))
    target: str = "MI_Plant"
    on_bad_rows: Literal["error", "drop"] = "error"
    split: Literal["random", "ordered"] = "random"
    test_size: float = 0.25
    val_size: float = 0.2
    split_seed: int = 0
    model: Literal["search", "paper-baseline"] = "search"
    trainer: Literal["fast", "keras"] = "fast"
    max_epochs: int = 27
    batch_size: int = 64
    restore_best: bool = False
    seed: int = 0
    units: tuple[int, int, int] = (32, 512, 32)
    alpha: tuple[float, float, float] = (0.05, 0.5, 0.05)
    dropout: tuple[float, float, float] = (0.05, 0.5, 0.05)
    num_layers: tuple[int, int] = (1, 4)
    learning_rates: list[float] = field(default_factory=lambda: [1e-2, 1e-3, 1e-4])

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError("features: at least one column is needed")
        if self.max_epochs < 1 or self.batch_size < 1:
            raise ValueError("max_epochs and batch_size must be >= 1")
        for key in ("units", "alpha", "dropout"):
            lo, hi, step = getattr(self, key)
            if not (0 < lo <= hi and step > 0):
                raise ValueError(f"{key}: expected [low, high, step] with 0 < low <= high, step > 0")
        if not 0 <= self.num_layers[0] <= self.num_layers[1]:
            raise ValueError("num_layers: expected [low, high] with 0 <= low <= high")
        if self.dropout[1] >= 1:
            raise ValueError("dropout: values must be < 1")
        if not self.learning_rates or any(lr <= 0 for lr in self.learning_rates):
            raise ValueError("learning_rates: expected a non-empty list of positive numbers")


class HDPEDNN(KerasRegressionObjective):
    def __init__(self, options: DNNOptions) -> None:
        from sklearn.preprocessing import StandardScaler

        self.options = options
        path = find_data_file(options.data_file)
        self.table = load_numeric_table(path, options.features, options.target, options.on_bad_rows)
        tr, va, te = split_indices(len(self.table.y), options.split, options.test_size, options.val_size, options.split_seed)
        self.split = {"train": tr, "val": va, "test": te}
        self.x_scaler = StandardScaler().fit(self.table.X[tr])
        self.y_scaler = StandardScaler().fit(self.table.y[tr].reshape(-1, 1))
        self.inputs = self.x_scaler.transform(self.table.X).astype(np.float32)
        self.y = self.y_scaler.transform(self.table.y.reshape(-1, 1)).ravel().astype(np.float32)
        self.y_raw = self.table.y
        self.y_scale = (float(self.y_scaler.mean_[0]), float(self.y_scaler.scale_[0]))

    def describe(self) -> str:
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.split.items())
        return f"{self.table.describe()}; split {self.options.split} ({sizes})"

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        o = self.options
        if o.model == "paper-baseline":
            return {}
        p: dict[str, Any] = {}

        def block(suffix: str) -> None:
            p[f"units_{suffix}"] = trial.suggest_int(f"units_{suffix}", o.units[0], o.units[1], step=o.units[2])
            p[f"alpha_{suffix}"] = trial.suggest_float(f"alpha_{suffix}", o.alpha[0], o.alpha[1], step=o.alpha[2])
            p[f"dropout_{suffix}"] = trial.suggest_float(f"dropout_{suffix}", o.dropout[0], o.dropout[1], step=o.dropout[2])

        block("1")
        p["num_layers"] = trial.suggest_int("num_layers", *o.num_layers)
        for i in range(1, p["num_layers"] + 1):
            block(f"hid_{i}")
        p["learning_rate"] = trial.suggest_categorical("learning_rate", list(o.learning_rates))
        return p

    # ---- the fast path (see optmpp.objectives.fast_dense) ----------------------------

    def _use_fast(self) -> bool:
        return self.options.trainer == "fast" and self.options.model == "search"

    def _net(self, params: dict[str, Any]) -> Any:
        from optmpp.objectives.fast_dense import DenseNet

        suffixes = ["1"] + [f"hid_{i}" for i in range(1, int(params["num_layers"]) + 1)]
        return DenseNet(
            units=[int(params[f"units_{s}"]) for s in suffixes],
            alphas=[float(params[f"alpha_{s}"]) for s in suffixes],
            dropouts=[float(params[f"dropout_{s}"]) for s in suffixes],
            learning_rate=float(params["learning_rate"]),
        )

    def _trainer(self, which: str) -> Any:
        from optmpp.objectives.fast_dense import FastDenseTrainer

        cache = self.__dict__.setdefault("_trainers", {})
        if which not in cache:
            if which == "tune":
                tr, va = self.split["train"], self.split["val"]
                cache[which] = FastDenseTrainer(self.inputs[tr], self.y[tr], self.inputs[va], self.y[va], self.options.batch_size)
            else:
                fit = np.concatenate([self.split["train"], self.split["val"]])
                cache[which] = FastDenseTrainer(self.inputs[fit], self.y[fit], None, None, self.options.batch_size)
        return cache[which]

    def __call__(self, trial: optuna.Trial) -> float:
        if not self._use_fast():
            return super().__call__(trial)
        import optuna

        params = self.suggest(trial)
        net = self._net(params)
        history: dict[str, Any] = {"epochs": 0, "best_epoch": 0}

        def on_epoch(epoch: int, train_loss: float, val_loss: float) -> None:
            history["epochs"] = epoch
            if not np.isfinite(val_loss):
                raise FloatingPointError(f"validation loss is {val_loss} at epoch {epoch}")
            trial.report(val_loss, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch} (val loss {val_loss:.5g})")

        try:
            result = self._trainer("tune").train(
                net, self.options.max_epochs, self.options.seed + trial.number, on_epoch, self.options.restore_best
            )
        finally:
            trial.set_user_attr("epochs", history["epochs"])
        trial.set_user_attr("best_epoch", result["best_epoch"])
        return result["best_val"] if self.options.restore_best else result["val_loss"][-1]

    def evaluate(self, params: dict[str, Any], seed: int = 0, epochs: int | None = None) -> Any:
        if not self._use_fast():
            return super().evaluate(params, seed=seed, epochs=epochs)
        from optmpp.objectives.base import Evaluation, regression_metrics

        net = self._net(params)
        result = self._trainer("final").train(net, epochs or self.options.max_epochs, self.options.seed + seed)
        test = self.split["test"]
        model = net.to_keras(self.inputs.shape[1])
        pred = np.asarray(model.predict(self.inputs[test], verbose=0, batch_size=4096)).reshape(-1)
        metrics = regression_metrics(self.y[test], pred)
        mean, std = self.y_scale
        y_pred, y_true = pred * std + mean, self.y_raw[test]
        metrics.update({f"{k}_units": v for k, v in regression_metrics(y_true, y_pred).items()})
        fast_pred = self._trainer("final").predict(net, self.inputs[test])
        return Evaluation(
            metrics=metrics, model=model, y_true=y_true, y_pred=y_pred,
            extra={"train_loss": result["train_loss"], "epochs": result["epochs"],
                   "max_abs_diff_fast_vs_keras": float(np.max(np.abs(fast_pred - pred)))},
        )

    def build(self, params: dict[str, Any]) -> Any:
        keras = import_keras()
        layers = keras.layers
        n_in = self.inputs.shape[1]
        if self.options.model == "paper-baseline":
            model = keras.Sequential([keras.Input((n_in,))])
            for _ in range(3):
                model.add(layers.Dense(64, activation="relu", kernel_initializer="random_normal"))
                model.add(layers.Dropout(0.25))
            model.add(layers.Dense(1))
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
            return model
        model = keras.Sequential([keras.Input((n_in,))])
        suffixes = ["1"] + [f"hid_{i}" for i in range(1, int(params["num_layers"]) + 1)]
        for s in suffixes:
            model.add(layers.Dense(int(params[f"units_{s}"])))
            model.add(layers.LeakyReLU(negative_slope=float(params[f"alpha_{s}"])))
            model.add(layers.Dropout(float(params[f"dropout_{s}"])))
        model.add(layers.Dense(1))
        model.compile(optimizer=keras.optimizers.Adam(float(params["learning_rate"])), loss="mse")
        return model

    def predictor_meta(self) -> dict[str, Any]:
        return {
            "kind": "tabular",
            "features": list(self.options.features),
            "target": self.options.target,
            "x_scaler": {"mean": self.x_scaler.mean_.tolist(), "scale": self.x_scaler.scale_.tolist()},
            "y_scaler": {"mean": self.y_scale[0], "scale": self.y_scale[1]},
            "data": {"file": self.table.path.name, "sha256": self.table.sha256, "rows": int(len(self.table.y))},
        }


def make(options: dict[str, Any]) -> HDPEDNN:
    """Factory of ``hdpe-mi-dnn``: ``options`` is the study file's ``[objective]`` table."""
    return HDPEDNN(parse_options(DNNOptions, options))
