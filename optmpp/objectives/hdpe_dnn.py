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


from optmpp.objectives.base import parse_options
from optmpp.objectives.keras_common import KerasRegressionObjective, check_cv_folds, import_keras
from optmpp.objectives.tabular import TabularData, TabularDataOptions

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class DNNOptions(TabularDataOptions):
    model: Literal["search", "paper-baseline"] = "search"
    trainer: Literal["fast", "keras"] = "fast"
    max_epochs: int = 27
    batch_size: int = 64
    restore_best: bool = False
    seed: int = 0
    cv_folds: int = 1
    units: tuple[int, int, int] = (32, 512, 32)
    alpha: tuple[float, float, float] = (0.05, 0.5, 0.05)
    dropout: tuple[float, float, float] = (0.05, 0.5, 0.05)
    num_layers: tuple[int, int] = (1, 4)
    learning_rates: list[float] = field(default_factory=lambda: [1e-2, 1e-3, 1e-4])

    def __post_init__(self) -> None:
        super().__post_init__()
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
        check_cv_folds(self)


class HDPEDNN(KerasRegressionObjective):
    def __init__(self, options: DNNOptions) -> None:
        self.options = options
        self.data = TabularData(options)
        self.table, self.split = self.data.table, self.data.split
        self.inputs, self.y, self.y_raw, self.y_scale = self.data.inputs, self.data.y, self.data.y_raw, self.data.y_scale

    def describe(self) -> str:
        return self.data.describe() + self.describe_folds()

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

    def fast_net(self, params: dict[str, Any]) -> Any:
        from optmpp.objectives.fast_train import DenseNet

        if self.options.trainer != "fast" or self.options.model != "search":
            return None
        suffixes = ["1"] + [f"hid_{i}" for i in range(1, int(params["num_layers"]) + 1)]
        return DenseNet(
            units=[int(params[f"units_{s}"]) for s in suffixes],
            alphas=[float(params[f"alpha_{s}"]) for s in suffixes],
            dropouts=[float(params[f"dropout_{s}"]) for s in suffixes],
            learning_rate=float(params["learning_rate"]),
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
        return self.data.predictor_meta()


def make(options: dict[str, Any]) -> HDPEDNN:
    """Factory of ``hdpe-mi-dnn``: ``options`` is the study file's ``[objective]`` table."""
    return HDPEDNN(parse_options(DNNOptions, options))
