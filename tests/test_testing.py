"""optmpp.testing.check_objective, the conformance check for plug-in authors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import toy_objectives

from optmpp.objectives.base import Evaluation
from optmpp.testing import check_objective


def test_the_toy_objective_conforms() -> None:
    report = check_objective(toy_objectives.make, {"max_epochs": 3})
    assert report["epochs"] == [3, 3] and set(report["metrics"]) >= {"loss", "r2"}


def test_the_sklearn_objective_conforms(real_data: Path) -> None:
    from optmpp.objectives.sklearn_mlp import make

    report = check_objective(make, {"max_epochs": 2, "units": [8, 16]})
    assert report["metrics"]["r2"] > 0


class Unprunable:
    max_budget = 3

    def __call__(self, trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        for step in range(1, 4):
            trial.report(x, step)
        trial.set_user_attr("epochs", 3)
        return x

    def evaluate(self, params: dict[str, Any], seed: int = 0) -> Evaluation:
        return Evaluation(metrics=dict.fromkeys(("loss", "mae", "mape", "rmse", "r2"), 0.0))


def strict(options: dict[str, Any]) -> Unprunable:
    from optmpp.config import ConfigError

    if options:
        raise ConfigError(f"objective: unknown key {sorted(options)[0]!r}")
    return Unprunable()


def test_broken_objectives_are_named() -> None:
    with pytest.raises(AssertionError, match="told to prune after its first report but ended COMPLETE"):
        check_objective(strict)
    with pytest.raises(AssertionError, match="unknown option key was accepted silently"):
        check_objective(lambda options: Unprunable())
