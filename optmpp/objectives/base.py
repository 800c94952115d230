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

``objective.ensemble(evaluations) -> Evaluation`` (optional; ``optmpp best --ensemble``)
    One model that predicts the mean of the ``evaluations``' models (the same parameters
    retrained with several seeds), scored on the test part like ``evaluate``'s; ``save`` must
    accept it.

Optional attributes: ``direction`` (``"minimize"``, the default, or ``"maximize"``) and
``max_budget`` (epochs of a full trial; Hyperband's ``max_resource``). ``optmpp best --splits``
needs ``options.split_seed`` (and ``options.split == "random"`` if it has ``split``): it calls the
factory again with ``split_seed`` changed to test the same parameters on other splits.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from optmpp._tables import build_dataclass

if TYPE_CHECKING:
    import optuna

__all__ = [
    "Checkpoint",
    "Evaluation",
    "MeanOfModels",
    "Objective",
    "enable_checkpoints",
    "origin_number",
    "parse_options",
    "regression_metrics",
    "report_epoch",
    "resume",
    "scaled_and_unit_metrics",
    "trial_checkpoint",
    "warm_restart",
]

T = TypeVar("T")


@runtime_checkable
class Objective(Protocol):
    def __call__(self, trial: optuna.Trial) -> float: ...

    def evaluate(self, params: dict[str, Any], seed: int = 0) -> Evaluation: ...


class MeanOfModels:
    """Fitted models whose prediction is the mean of theirs (scikit-learn style, picklable)."""

    def __init__(self, models: list[Any]) -> None:
        if len(models) < 2:
            raise ValueError("an ensemble needs two or more models")
        self.models = list(models)

    def predict(self, x: Any) -> np.ndarray:
        return np.mean([np.asarray(m.predict(x), dtype=float).ravel() for m in self.models], axis=0)


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
    # a worker's storage: the report's transaction checks the trial is still running, so the
    # pruning check's read of the trial need not ask the storage again (a held report checks
    # nothing: a trial ended from outside is noticed at the next report written)
    state_checked = getattr(getattr(trial, "storage", None), "state_checked", None)
    with state_checked(trial._trial_id, checked=True) if state_checked else contextlib.nullcontext():
        trial.report(val_loss, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch} (val loss {val_loss:.5g})")


# --------------------------------------------------------------------------------------
# per-epoch checkpoints: a trial whose worker died resumes from its last saved epoch


def origin_number(trial: Any) -> int:
    """The number of the trial this one retries (its first attempt), else its own number.

    Optuna's retry callback re-queues a trial whose worker died with the same parameters and
    records the attempts in ``system_attrs["retry_history"]``; seeding from the first attempt's
    number makes a retried trial train exactly as the first attempt did.
    """
    attrs = getattr(trial, "system_attrs", None)
    if attrs is None and hasattr(trial, "_trial_id"):  # a live optuna.Trial: read them stored
        attrs = trial.study._storage.get_trial_system_attrs(trial._trial_id)
    attrs = attrs or {}
    history = attrs.get("retry_history")
    if history:
        return int(history[0])
    if attrs.get("failed_trial") is not None:
        return int(attrs["failed_trial"])
    return int(getattr(trial, "number", 0))


class Checkpoint:
    """The training state of one trial after its latest epoch, in one ``.npz`` file.

    ``save`` writes atomically (a temporary file, then a rename), so a worker killed while
    writing leaves the previous checkpoint intact. ``meta`` is JSON (epoch, loss histories,
    counters); ``arrays`` are numpy arrays (weights, optimizer state).
    """

    def __init__(self, path: Path, every: int = 1) -> None:
        self.path = Path(path)
        self.every = max(1, int(every))
        self.at: set[int] = set()  # epochs saved whatever ``every`` says (a Hyperband round's end)
        self.extra: dict[str, Any] = {}  # saved with every ``meta`` (e.g. the trial's params)

    def load(self) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files if k != "__meta__"}
                meta = json.loads(bytes(data["__meta__"]).decode())
        except (OSError, KeyError, ValueError):
            return None  # none yet, or unreadable: start from scratch
        return meta, arrays

    def due(self, epoch: int) -> bool:
        return epoch % self.every == 0 or epoch in self.at

    def save(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        blob = np.frombuffer(json.dumps({**meta, **self.extra}).encode(), dtype=np.uint8)
        with open(tmp, "wb") as fh:
            np.savez(fh, __meta__=blob, **arrays)
        os.replace(tmp, self.path)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


_CHECKPOINTS: dict[str, Any] = {"root": None, "every": 1}


def enable_checkpoints(root: str | Path | None, every: int = 1) -> None:
    """Turn per-epoch checkpoints on (under ``root``) or off (None) in this worker process."""
    _CHECKPOINTS["root"] = Path(root) if root else None
    _CHECKPOINTS["every"] = every


def checkpoint_path(root: str | Path, study_name: str | None, number: int) -> Path:
    """Where the checkpoint of the training that trial ``number`` started is kept."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in (study_name or "study"))
    return Path(root) / safe / f"trial-{number}.npz"


def trial_checkpoint(trial: Any, origin: int | None = None) -> Checkpoint | None:
    """The checkpoint of ``trial`` (shared by its retries), or None when checkpoints are off."""
    root = _CHECKPOINTS["root"]
    if root is None:
        return None
    study = getattr(getattr(trial, "study", None), "study_name", None)
    number = origin_number(trial) if origin is None else origin
    return Checkpoint(checkpoint_path(root, study, number), _CHECKPOINTS["every"])


def _hyperband_round(trial: Any) -> dict[str, Any] | None:
    """The synchronous-Hyperband attribute of ``trial`` (see :mod:`optmpp.hyperband_sync`), if any."""
    from optmpp.hyperband_sync import ATTR

    try:
        hb = trial.user_attrs.get(ATTR)
    except Exception:  # noqa: BLE001 - e.g. a FixedTrial
        return None
    return hb if isinstance(hb, dict) and "epochs" in hb else None


def resume(trial: Any, params: dict[str, Any] | None = None) -> tuple[int, Checkpoint | None, Any]:
    """An objective's start with checkpoints: ``(origin, checkpoint, saved)``.

    ``origin`` is the number of the trial whose training this one carries on (seed training
    from it): the first attempt of a retried trial, or the first round of a configuration that
    synchronous Hyperband promoted; ``checkpoint`` is None when checkpoints are off; ``saved``
    is ``(meta, arrays)`` when there is state to continue from (and, with ``params``, saved
    with the same parameters), else None. When resuming, the saved epochs' validation losses
    (``meta["val_loss"]``) are re-reported and ``resumed_from_epoch`` is recorded (0 for a retry
    from scratch). The objective then saves after each reported epoch when
    ``checkpoint.due(epoch)`` and calls :func:`end_checkpoint` when the trial ends.
    """
    hb = _hyperband_round(trial)
    origin = int(hb["root"]) if hb and hb.get("root") is not None else origin_number(trial)
    checkpoint = trial_checkpoint(trial, origin)
    if checkpoint is not None:
        if params is not None:
            checkpoint.extra["params"] = params
        if hb:
            checkpoint.at.add(int(hb["epochs"]))  # where a later round continues from
    if origin == trial.number:
        return origin, checkpoint, None
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None and params is not None and saved[0].get("params") != params:
        saved = None
    if saved is not None and hb and int(saved[0]["epochs"]) > int(hb["epochs"]):
        saved = None  # a later round's state: not this round's start
    # user attributes are inherited by retries; set before the replay, whose first report writes them
    trial.set_user_attr("resumed_from_epoch", 0 if saved is None else int(saved[0]["epochs"]))
    if saved is not None:
        replay_reports(trial, saved[0]["val_loss"])
    return origin, checkpoint, saved


def warm_restart(trial: Any, saved: Any) -> bool:
    """Whether the state ``saved`` (from :func:`resume`) should be continued KerasTuner's way:
    ``trial`` is a synchronous-Hyperband promotion with ``warm_restart`` on, and ``saved`` is
    the state its round starts from (a retry that saved epochs of the round itself continues
    exactly). The objective then starts from the saved best epoch's weights with a new optimiser."""
    hb = _hyperband_round(trial)
    return bool(hb and hb.get("restart") and saved is not None and int(saved[0]["epochs"]) == int(hb["start"]))


def end_checkpoint(trial: Any, checkpoint: Checkpoint | None, epochs_done: int) -> None:
    """At a trial's end: delete its checkpoint, unless synchronous Hyperband may continue it (the
    trial stopped at the end of a round that is not the last)."""
    if checkpoint is None:
        return
    hb = _hyperband_round(trial)
    if hb and not hb.get("last") and epochs_done == int(hb["epochs"]):
        return
    checkpoint.discard()


def replay_reports(trial: Any, val_losses: list[float]) -> None:
    """Report the validation losses of the epochs a resumed trial skips (no pruning check)."""
    for epoch, value in enumerate(val_losses, 1):
        trial.report(float(value), epoch)
