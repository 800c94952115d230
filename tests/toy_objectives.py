"""A cheap objective for tests: a smooth function of mixed parameters, reported per step."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import optuna

from optmpp.objectives.base import Evaluation, end_checkpoint, parse_options, resume


@dataclass(frozen=True)
class ToyOptions:
    max_epochs: int = 9
    sleep: float = 0.0
    fail_above: float | None = None  # raise when x exceeds this (failure tests)
    nan_above: float | None = None  # return NaN when x exceeds this


class Toy:
    direction = "minimize"

    def __init__(self, options: ToyOptions) -> None:
        self.options = options
        self.max_budget = options.max_epochs

    @staticmethod
    def value(params: dict[str, Any], step: int = 1_000_000) -> float:
        base = (params["x"] - 1.0) ** 2 + 0.1 * (params["n"] - 3) ** 2
        base += {"a": 0.0, "b": 0.5, "c": 1.0}[params["c"]]
        base += 0.5 * (math.log10(params["lr"]) + 2.5) ** 2
        return base + 1.0 / step

    def __call__(self, trial: optuna.Trial) -> float:
        params = {
            "x": trial.suggest_float("x", -3.0, 3.0),
            "n": trial.suggest_int("n", 1, 6),
            "c": trial.suggest_categorical("c", ["a", "b", "c"]),
            "lr": trial.suggest_float("lr", 1e-5, 1e-1, log=True),
        }
        if self.options.fail_above is not None and params["x"] > self.options.fail_above:
            raise RuntimeError(f"x={params['x']:.3f} is too large for this toy")
        v = float("nan")
        # per-epoch checkpoints, as a real objective does them (resume a retried trial)
        _, checkpoint, saved = resume(trial, params)
        vals: list[float] = [] if saved is None else list(saved[0]["val_loss"])
        step = len(vals)
        try:
            for step in range(len(vals) + 1, self.options.max_epochs + 1):
                if self.options.sleep:
                    time.sleep(self.options.sleep)
                v = self.value(params, step)
                vals.append(v)
                if checkpoint is not None and checkpoint.due(step):
                    checkpoint.save({"epochs": step, "val_loss": vals}, {})
                trial.report(v, step)
                if trial.should_prune():
                    trial.set_user_attr("epochs", step)
                    raise optuna.TrialPruned()
        finally:
            end_checkpoint(trial, checkpoint, step)
        trial.set_user_attr("epochs", self.options.max_epochs)
        if self.options.nan_above is not None and params["x"] > self.options.nan_above:
            return float("nan")
        return v

    def evaluate(self, params: dict[str, Any], seed: int = 0) -> Evaluation:
        v = self.value(params)
        return Evaluation(metrics={"loss": v, "mae": v**0.5, "mape": 100 * v**0.5, "rmse": v**0.5, "r2": 1 - v})


def make(options: dict[str, Any]) -> Toy:
    return Toy(parse_options(ToyOptions, options))
