"""The objective contract.

An objective *factory* is any callable ``factory(options: dict) -> objective``. It receives the
study file's ``[objective]`` table without its ``name`` key, validates it (raising
:class:`optmpp.config.ConfigError` for a bad key or value; :func:`parse_options` does this for a
dataclass of options) and returns an *objective*:

``objective(trial) -> float``
    An Optuna trial function. To be prunable by ``hyperband``, ``bohb`` and ``sha`` it trains
    epoch by epoch and after each epoch calls ``trial.report(val_loss, step=epochs_trained)``
    (steps start at 1, so the step is the budget consumed) and raises ``optuna.TrialPruned``
    when ``trial.should_prune()`` is true. It should set ``trial.set_user_attr("epochs", n)``;
    when it does not, the worker records the number of reported steps.

``objective.evaluate(params, seed=0) -> Evaluation``
    Retrain with ``params`` (a finished trial's parameters) on the training and validation
    data and return test-set metrics (``loss``, ``mae``, ``mape``, ``rmse``, ``r2``) and the
    fitted model.

Optional attributes: ``direction`` (``"minimize"``, the default, or ``"maximize"``) and
``max_budget`` (epochs of a full trial; Hyperband's ``max_resource``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from optmpp._tables import build_dataclass

if TYPE_CHECKING:
    import optuna

__all__ = ["Evaluation", "Objective", "parse_options", "regression_metrics", "report_epoch", "scaled_and_unit_metrics"]

T = TypeVar("T")


@runtime_checkable
class Objective(Protocol):
    def __call__(self, trial: optuna.Trial) -> float: ...

    def evaluate(self, params: dict[str, Any], seed: int = 0) -> Evaluation: ...


@dataclass
class Evaluation:
    """Test-set result of a retrained configuration."""

    metrics: dict[str, float]
    model: Any = None
    y_true: np.ndarray | None = None
    y_pred: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_options(cls: type[T], options: dict[str, Any]) -> T:
    """Build an options dataclass from an ``[objective]`` table (errors name ``objective.key``)."""
    return build_dataclass(cls, dict(options), "objective")


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """loss (MSE), MAE, MAPE (%), RMSE and R² of a regression."""
    from sklearn.metrics import (
        mean_absolute_error,
        mean_absolute_percentage_error,
        mean_squared_error,
        r2_score,
    )

    y_true = np.asarray(y_true, dtype=float).ravel()
    y_pred = np.asarray(y_pred, dtype=float).ravel()
    mse = float(mean_squared_error(y_true, y_pred))
    return {
        "loss": mse,
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "mape": float(100.0 * mean_absolute_percentage_error(y_true, y_pred)),
        "rmse": float(np.sqrt(mse)),
        "r2": float(r2_score(y_true, y_pred)),
    }


def scaled_and_unit_metrics(
    y_scaled: np.ndarray, pred_scaled: np.ndarray, y_scale: tuple[float, float], y_true: np.ndarray
) -> tuple[dict[str, float], np.ndarray]:
    """Metrics on the standardised target plus ``*_units`` ones after undoing the scaling.

    ``y_scale`` is the target scaler's (mean, std). Returns the metrics and the predictions in
    the target's units.
    """
    mean, std = y_scale
    y_pred = np.asarray(pred_scaled, dtype=float).ravel() * std + mean
    metrics = regression_metrics(y_scaled, pred_scaled)
    metrics.update({f"{k}_units": v for k, v in regression_metrics(y_true, y_pred).items()})
    return metrics, y_pred


def report_epoch(trial: optuna.Trial, epoch: int, val_loss: float) -> None:
    """The prunable objective's per-epoch duty: check, report at step = epoch, prune if told.

    Raises ``FloatingPointError`` for a non-finite loss and ``optuna.TrialPruned`` when the
    pruner stops the trial.
    """
    import optuna

    if not math.isfinite(val_loss):
        raise FloatingPointError(f"validation loss is {val_loss} at epoch {epoch}")
    trial.report(val_loss, epoch)
    if trial.should_prune():
        raise optuna.TrialPruned(f"pruned after epoch {epoch} (val loss {val_loss:.5g})")
