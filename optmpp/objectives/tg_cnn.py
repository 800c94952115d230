"""``tg-cnn``: the paper's CNN on one-hot SMILES matrices for polymer Tg (case 2), in Keras.

Input: a (max_length x vocabulary x 1) one-hot matrix per repeat unit (``encoding = "paper"``:
the paper's 65 x 17 character encoding with its flaws; ``"tokens"``, the default: a real SMILES
tokeniser; see :mod:`optmpp.data.smiles`). Target: Tg in K, standardised on the training part
(``scale_target``).

Model: ``conv_blocks`` x [Conv2D(filters_i, kernel_i x kernel_i, relu, same) -> MaxPool2D(2, same)
-> BatchNormalization], Flatten, ``dense_blocks`` x [Dense(units_i, relu) -> Dropout(dropout_i)],
Dense(1); Adam, MSE.

Search space (each range overridable in ``[objective]``):

| parameter | values |
|---|---|
| ``conv_blocks`` | 1..3 (``conv_blocks = [1, 3]``) |
| ``filters_i`` | 16..256, log scale (``filters``) |
| ``kernel_i`` | 2..5 (``kernel``) |
| ``dense_blocks`` | 1..3 (``dense_blocks``) |
| ``units_i`` | 32..512, log scale (``units``) |
| ``dropout_i`` | 0.05..0.5 step 0.05 (``dropout``) |
| ``learning_rate`` | {1e-2, 1e-3, 1e-4} (``learning_rates``) |

``duplicates``: the Tg file lists 125 polymers two or three times (same SMILES, same Tg; 127
extra rows), so the paper's random split puts copies of training molecules in the validation
(18 of 30) and test (36 of 53) parts. ``"keep"`` (the default) is the paper's data as is;
``"merge"`` folds repeats into one row (mean target) before splitting. ``optmpp best`` reports
the test RMSE on the molecules not in the training data (``rmse_unseen``) next to the usual one.

``model = "conv1d"``: the same search space (the same parameter names) over a 1D CNN that reads the
matrix as a sequence of one-hot tokens: ``conv_blocks`` x Conv1D(filters_i, kernel_i, relu, same),
global max pooling over the sequence (each filter's strongest match anywhere in the molecule,
wherever it sits in the SMILES string), ``dense_blocks`` x [Dense(units_i, relu) ->
Dropout(dropout_i)], Dense(1); Adam, MSE. A 2D kernel slides along the vocabulary axis too, where
neighbouring columns are unrelated tokens; a 1D kernel sees whole tokens. Tuned for 20 minutes,
its median test RMSE over 10 random splits was 22 K against the 2D CNN's 34 K (RESULTS.md 7e).

``model = "paper-baseline"``: the paper's no-HPO CNN (Conv 128 3x3, pool, BN, Conv 64 3x3,
pool, BN, Dense 128, Dropout 0.1, Dense 64, Dropout 0.1, Dense 1; valid padding; Adam 1e-3);
the study file sets batch 16 and 500 epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from optmpp.data import find_data_file, split_indices, table_fingerprint
from optmpp.data.smiles import load_smiles_table
from optmpp.objectives.base import parse_options
from optmpp.objectives.keras_common import KerasRegressionObjective, check_cv_folds, import_keras

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class CNNOptions:
    data_file: str = "Polymer_Tg_SMILES.csv"
    smiles_column: str = "SMILES Structure"
    target: str = "Tg"
    name_column: str = "Polymer"
    encoding: Literal["tokens", "paper"] = "tokens"
    max_length: int | None = None
    on_bad_rows: Literal["error", "drop"] = "error"
    duplicates: Literal["keep", "merge"] = "keep"
    split: Literal["random", "ordered"] = "random"
    test_size: float = 0.15
    val_size: float = 0.1
    split_seed: int = 0
    cv_folds: int = 1
    scale_target: bool = True
    model: Literal["search", "conv1d", "paper-baseline"] = "search"
    trainer: Literal["fast", "keras"] = "fast"
    max_epochs: int = 100
    batch_size: int = 16
    restore_best: bool = True
    seed: int = 0
    conv_blocks: tuple[int, int] = (1, 3)
    filters: tuple[int, int] = (16, 256)
    kernel: tuple[int, int] = (2, 5)
    dense_blocks: tuple[int, int] = (1, 3)
    units: tuple[int, int] = (32, 512)
    dropout: tuple[float, float, float] = (0.05, 0.5, 0.05)
    learning_rates: list[float] = field(default_factory=lambda: [1e-2, 1e-3, 1e-4])

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.batch_size < 1:
            raise ValueError("max_epochs and batch_size must be >= 1")
        for key in ("conv_blocks", "filters", "kernel", "dense_blocks", "units"):
            lo, hi = getattr(self, key)
            if not 1 <= lo <= hi:
                raise ValueError(f"{key}: expected [low, high] with 1 <= low <= high, got [{lo}, {hi}]")
        lo, hi, step = self.dropout
        if not (0 <= lo <= hi < 1 and step > 0):
            raise ValueError("dropout: expected [low, high, step] with 0 <= low <= high < 1, step > 0")
        if not self.learning_rates or any(lr <= 0 for lr in self.learning_rates):
            raise ValueError("learning_rates: expected a non-empty list of positive numbers")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError("max_length must be >= 1")
        check_cv_folds(self)


class TgCNN(KerasRegressionObjective):
    def __init__(self, options: CNNOptions) -> None:
        self.options = options
        path = find_data_file(options.data_file)
        self.table, self.encoder = load_smiles_table(
            path, options.smiles_column, options.target, options.encoding, options.max_length,
            options.on_bad_rows, options.name_column, options.duplicates,
        )
        n = len(self.table.y)
        tr, va, te = split_indices(n, options.split, options.test_size, options.val_size, options.split_seed)
        self.split = {"train": tr, "val": va, "test": te}
        self.inputs = self.encoder.encode(self.table.smiles)
        self.y_raw = self.table.y
        if options.scale_target:  # on the rows that train: with cross-validation, every fold's
            fit = tr if options.cv_folds == 1 else np.concatenate([tr, va])
            mean, std = float(self.y_raw[fit].mean()), float(self.y_raw[fit].std()) or 1.0
        else:
            mean, std = 0.0, 1.0
        self.y_scale = (mean, std)
        self.y = ((self.y_raw - mean) / std).astype(np.float32)

    def seen_in_training(self, part: str) -> np.ndarray:
        """Mask over ``split[part]``: molecules whose SMILES is also in the part(s) they are scored
        against (training for "val"; training + validation for "test", which the final model fits)."""
        fit = self.split["train"] if part == "val" else np.concatenate([self.split["train"], self.split["val"]])
        known = {self.table.smiles[i] for i in fit}
        return np.asarray([self.table.smiles[i] in known for i in self.split[part]], dtype=bool)

    def describe(self) -> str:
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.split.items())
        shape = "x".join(str(s) for s in self.encoder.shape)
        text = f"{self.table.describe()}; encoding {self.encoder.kind} {shape}; split ({sizes}){self.describe_folds()}"
        seen = {part: int(self.seen_in_training(part).sum()) for part in ("val", "test")}
        if self.cv_folds > 1:
            seen["val"] = 0  # the folds keep a molecule's copies together
        if any(seen.values()):
            text += (f"; {seen['val']} validation and {seen['test']} test molecules are copies of training"
                     " molecules (same SMILES)")
        return text

    def fold_groups(self) -> list[str]:
        """A molecule's rows (repeats of one SMILES) share a cross-validation fold, so a fold is
        never validated on copies of what it trained on (the single validation part is: 18 of 30
        molecules on the paper's split)."""
        return self.table.smiles

    def score(self, model: Any, extra: dict[str, Any] | None = None) -> Any:
        """As the base class; with test molecules that are copies of training ones, also the RMSE
        on the others (``rmse_unseen``), which is what the model does on molecules it never saw."""
        ev = super().score(model, extra)
        seen = self.seen_in_training("test")
        if seen.any() and not seen.all():
            err = (np.asarray(ev.y_pred, float) - np.asarray(ev.y_true, float))[~seen]
            rmse = float(np.sqrt(np.mean(err**2)))
            ev.metrics["rmse_unseen"] = rmse / self.y_scale[1]
            ev.metrics["rmse_unseen_units"] = rmse
            ev.extra["test_unseen_molecules"] = int((~seen).sum())
        return ev

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        o = self.options
        if o.model == "paper-baseline":
            return {}
        p: dict[str, Any] = {"conv_blocks": trial.suggest_int("conv_blocks", *o.conv_blocks)}
        for i in range(1, p["conv_blocks"] + 1):
            p[f"filters_{i}"] = trial.suggest_int(f"filters_{i}", *o.filters, log=o.filters[0] < o.filters[1])
            p[f"kernel_{i}"] = trial.suggest_int(f"kernel_{i}", *o.kernel)
        p["dense_blocks"] = trial.suggest_int("dense_blocks", *o.dense_blocks)
        for i in range(1, p["dense_blocks"] + 1):
            p[f"units_{i}"] = trial.suggest_int(f"units_{i}", *o.units, log=o.units[0] < o.units[1])
            p[f"dropout_{i}"] = trial.suggest_float(f"dropout_{i}", o.dropout[0], o.dropout[1], step=o.dropout[2])
        p["learning_rate"] = trial.suggest_categorical("learning_rate", list(o.learning_rates))
        return p

    def fast_net(self, params: dict[str, Any]) -> Any:
        from optmpp.objectives.fast_train import Conv1DNet, ConvNet

        if self.options.trainer != "fast" or self.options.model == "paper-baseline":
            return None
        n_conv, n_dense = int(params["conv_blocks"]), int(params["dense_blocks"])
        return (Conv1DNet if self.options.model == "conv1d" else ConvNet)(
            filters=[int(params[f"filters_{i}"]) for i in range(1, n_conv + 1)],
            kernels=[int(params[f"kernel_{i}"]) for i in range(1, n_conv + 1)],
            units=[int(params[f"units_{i}"]) for i in range(1, n_dense + 1)],
            dropouts=[float(params[f"dropout_{i}"]) for i in range(1, n_dense + 1)],
            learning_rate=float(params["learning_rate"]),
        )

    def build(self, params: dict[str, Any]) -> Any:
        keras = import_keras()
        L = keras.layers
        model = keras.Sequential([keras.Input(self.encoder.shape)])
        if self.options.model == "paper-baseline":
            for filters in (128, 64):
                model.add(L.Conv2D(filters, (3, 3), activation="relu"))
                model.add(L.MaxPool2D((2, 2)))
                model.add(L.BatchNormalization())
            model.add(L.Flatten())
            for units in (128, 64):
                model.add(L.Dense(units, activation="relu"))
                model.add(L.Dropout(0.1))
            model.add(L.Dense(1))
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
            return model
        if self.options.model == "conv1d":
            model.add(L.Reshape(tuple(self.encoder.shape[:2])))
            for i in range(1, int(params["conv_blocks"]) + 1):
                model.add(L.Conv1D(int(params[f"filters_{i}"]), int(params[f"kernel_{i}"]), activation="relu", padding="same"))
            model.add(L.GlobalMaxPooling1D())
        else:
            for i in range(1, int(params["conv_blocks"]) + 1):
                k = int(params[f"kernel_{i}"])
                model.add(L.Conv2D(int(params[f"filters_{i}"]), (k, k), activation="relu", padding="same"))
                model.add(L.MaxPool2D((2, 2), padding="same"))
                model.add(L.BatchNormalization())
            model.add(L.Flatten())
        for i in range(1, int(params["dense_blocks"]) + 1):
            model.add(L.Dense(int(params[f"units_{i}"]), activation="relu"))
            model.add(L.Dropout(float(params[f"dropout_{i}"])))
        model.add(L.Dense(1))
        model.compile(optimizer=keras.optimizers.Adam(float(params["learning_rate"])), loss="mse")
        return model

    def predictor_meta(self) -> dict[str, Any]:
        # the molecules the saved model was trained on (train + validation) and their mean target:
        # predict marks a new input that is one of them, since its prediction is then a fit
        seen: dict[str, list[float]] = {}
        for i in np.concatenate([self.split["train"], self.split["val"]]):
            seen.setdefault(self.table.smiles[i], []).append(float(self.y_raw[i]))
        return {
            "training_targets": {smiles: float(np.mean(values)) for smiles, values in seen.items()},
            "kind": "smiles",
            "smiles_column": self.options.smiles_column,
            "target": self.options.target,
            "encoder": self.encoder.to_dict(),
            "y_scaler": {"mean": self.y_scale[0], "scale": self.y_scale[1]},
            "data": table_fingerprint(self.table),
        }


def make(options: dict[str, Any]) -> TgCNN:
    """Factory of ``tg-cnn``: ``options`` is the study file's ``[objective]`` table."""
    return TgCNN(parse_options(CNNOptions, options))
