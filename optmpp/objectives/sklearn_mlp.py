"""``hdpe-mi-mlp``: scikit-learn's MLPRegressor on tabular process data (no TensorFlow).

Trained epoch by epoch with ``partial_fit``, reporting the validation MSE (standardised target)
after each epoch, so Hyperband and successive halving can prune it. Defaults: the HDPE
melt-index plant data of the paper (9 process variables -> ``MI_Plant``), but any CSV of
numeric columns works through ``data_file``, ``features`` and ``target``.

Search space (each range overridable in ``[objective]``):

| parameter | range |
|---|---|
| ``n_layers`` | int in ``layers`` (default 1..3) |
| ``units_{i}`` | int in ``units`` (default 16..256, log) |
| ``activation`` | one of ``activations`` (default relu, tanh) |
| ``alpha`` (L2) | float in ``alpha`` (default 1e-6..1e-2, log) |
| ``learning_rate`` | float in ``learning_rate`` (default 1e-4..1e-2, log) |
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from optmpp.objectives.base import Evaluation, MeanOfModels, parse_options, report_epoch, scaled_and_unit_metrics
from optmpp.objectives.tabular import TabularData, TabularDataOptions

if TYPE_CHECKING:
    import optuna

@dataclass(frozen=True)
class MLPOptions(TabularDataOptions):
    layers: tuple[int, int] = (1, 3)
    units: tuple[int, int] = (16, 256)
    activations: list[str] = field(default_factory=lambda: ["relu", "tanh"])
    alpha: tuple[float, float] = (1e-6, 1e-2)
    learning_rate: tuple[float, float] = (1e-4, 1e-2)

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("layers", "units", "alpha", "learning_rate"):
            lo, hi = getattr(self, key)
            if not 0 < lo <= hi:
                raise ValueError(f"{key}: expected [low, high] with 0 < low <= high, got [{lo}, {hi}]")
        bad = sorted(set(self.activations) - {"relu", "tanh", "logistic", "identity"})
        if bad or not self.activations:
            raise ValueError(
                f"activations: {bad or 'empty'}; allowed: 'relu', 'tanh', 'logistic', 'identity'"
            )


class MLPObjective:
    """Optuna trial function + ``evaluate``; see the module docstring."""

    direction = "minimize"

    def __init__(self, options: MLPOptions) -> None:
        self.options = options
        self.max_budget = options.max_epochs
        self.data = TabularData(options)
        self.table, self.split = self.data.table, self.data.split
        self.X, self.y = self.data.inputs, self.data.y

    def describe(self) -> str:
        return self.data.describe()

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        o = self.options
        n_layers = trial.suggest_int("n_layers", *o.layers)
        params: dict[str, Any] = {"n_layers": n_layers}
        for i in range(1, n_layers + 1):
            params[f"units_{i}"] = trial.suggest_int(f"units_{i}", *o.units, log=o.units[0] < o.units[1])
        params["activation"] = trial.suggest_categorical("activation", list(o.activations))
        params["alpha"] = trial.suggest_float("alpha", *o.alpha, log=o.alpha[0] < o.alpha[1])
        params["learning_rate"] = trial.suggest_float(
            "learning_rate", *o.learning_rate, log=o.learning_rate[0] < o.learning_rate[1]
        )
        return params

    def _model(self, params: dict[str, Any], seed: int) -> Any:
        from sklearn.neural_network import MLPRegressor

        units = tuple(int(params[f"units_{i}"]) for i in range(1, int(params["n_layers"]) + 1))
        return MLPRegressor(
            hidden_layer_sizes=units,
            activation=params["activation"],
            alpha=float(params["alpha"]),
            learning_rate_init=float(params["learning_rate"]),
            batch_size=self.options.batch_size,
            random_state=seed,
        )

    def _epoch(self, model: Any, idx: np.ndarray) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.partial_fit(self.X[idx], self.y[idx])

    def __call__(self, trial: optuna.Trial) -> float:

        params = self.suggest(trial)
        model = self._model(params, seed=trial.number)
        train, val = self.split["train"], self.split["val"]
        loss = float("nan")
        epochs = 0
        train_losses: list[float] = []
        try:
            for epoch in range(1, self.options.max_epochs + 1):
                self._epoch(model, train)
                epochs = epoch
                fit = model.predict(self.X[train])
                train_losses.append(round(float(np.mean((fit - self.y[train]) ** 2)), 7))
                pred = model.predict(self.X[val])
                loss = float(np.mean((pred - self.y[val]) ** 2))
                report_epoch(trial, epoch, loss)
        finally:
            trial.set_user_attr("epochs", epochs)
            trial.set_user_attr("train_loss", train_losses)
        return loss

    def evaluate(self, params: dict[str, Any], seed: int = 0, epochs: int | None = None) -> Evaluation:
        """Retrain on train + validation for ``epochs`` (default max) and score the test part."""
        model = self._model(params, seed=seed)
        fit_idx = np.concatenate([self.split["train"], self.split["val"]])
        for _ in range(epochs or self.options.max_epochs):
            self._epoch(model, fit_idx)
        return self.score(model)

    def score(self, model: Any) -> Evaluation:
        """Test-set metrics of a fitted ``model`` (anything with ``predict``)."""
        test = self.split["test"]
        y_true = self.data.y_raw[test]
        metrics, y_pred = scaled_and_unit_metrics(self.y[test], model.predict(self.X[test]), self.data.y_scale, y_true)
        return Evaluation(metrics=metrics, model=model, y_true=y_true, y_pred=y_pred)

    def ensemble(self, evaluations: list[Evaluation]) -> Evaluation:
        """The mean of the ``evaluations``' models (retrained seeds), scored like one model."""
        return self.score(MeanOfModels([ev.model for ev in evaluations]))

    def save(self, evaluation: Evaluation, directory: Any) -> dict[str, Any]:
        """Pickle the fitted model; return what ``optmpp predict`` needs."""
        import pickle
        from pathlib import Path

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "model.pkl", "wb") as fh:
            pickle.dump(evaluation.model, fh)
        return {"model_file": "model.pkl", "framework": "sklearn", **self.data.predictor_meta()}


def make(options: dict[str, Any]) -> MLPObjective:
    """Factory of ``hdpe-mi-mlp``: ``options`` is the study file's ``[objective]`` table."""
    return MLPObjective(parse_options(MLPOptions, options))
