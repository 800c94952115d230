"""Keras helpers shared by the TensorFlow objectives: import with thread limits, epoch loop.

TensorFlow is imported here only when :func:`import_keras` is called (by an objective, inside
a worker process), never when this module is imported.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from optmpp.objectives.base import end_checkpoint, report_epoch, resume, warm_restart

if TYPE_CHECKING:
    import optuna

__all__ = ["TrainResult", "check_cv_folds", "cv_fold_indices", "import_keras", "train_epochs"]

_CONFIGURED = False


def import_keras() -> Any:
    """Import Keras on TensorFlow with this process's thread limits; returns ``keras``.

    Threads: ``TF_NUM_INTRAOP_THREADS`` (set by the workers to cores / workers) and
    ``TF_NUM_INTEROP_THREADS`` (1), applied before TensorFlow starts its thread pools.
    """
    global _CONFIGURED
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no CUDA-probe noise on CPU machines
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import sys

    if "tensorflow" not in sys.modules and not os.environ.get("OPTMPP_TF_VERBOSE"):
        # TensorFlow's C++ start-up logs CUDA probes to fd 2 before its log level applies;
        # on CPU machines that is noise. Python exceptions still propagate.
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        try:
            import tensorflow as tf
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    import tensorflow as tf

    if not _CONFIGURED:
        _CONFIGURED = True
        if not os.environ.get("OPTMPP_TF_VERBOSE"):
            import logging

            tf.get_logger().setLevel(logging.ERROR)  # e.g. retracing notes about our per-family functions
        intra = int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0") or 0)
        inter = int(os.environ.get("TF_NUM_INTEROP_THREADS", "0") or 0)
        try:
            if intra:
                tf.config.threading.set_intra_op_parallelism_threads(intra)
            if inter:
                tf.config.threading.set_inter_op_parallelism_threads(inter)
        except RuntimeError:  # TensorFlow was already initialised by the caller
            pass
    import keras

    return keras


def check_cv_folds(options: Any) -> None:
    """The ``cv_folds`` option of a Keras objective: 1 (one validation part), or k >= 2 folds,
    which need the fast trainer, a searched model and a random split. Raises ``ValueError``."""
    k = options.cv_folds
    if k < 1:
        raise ValueError(f"cv_folds must be >= 1 (1: one validation part), got {k}")
    if k == 1:
        return
    if options.trainer != "fast":
        raise ValueError('cv_folds > 1 needs trainer = "fast"')
    if options.model == "paper-baseline":
        raise ValueError('cv_folds > 1: the model "paper-baseline" has nothing to tune')
    if options.split != "random":
        raise ValueError('cv_folds > 1 needs split = "random" (folds of time-ordered rows would let a '
                         "model see the future of the rows it is validated on)")


def cv_fold_indices(
    rows: np.ndarray, k: int, seed: int, groups: Sequence[Any] | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, validation) row indices of ``k`` cross-validation folds over ``rows`` (the study's
    train + validation rows, never its test part): scikit-learn's shuffled ``KFold`` seeded by
    ``seed``, each row in exactly one validation part. With ``groups`` (one label per row of the
    whole table, such as a molecule's SMILES) the groups are dealt to the folds instead, so rows
    of one group are always validated together, never against a copy of themselves."""
    from sklearn.model_selection import KFold

    from optmpp.data import DataError

    rows = np.sort(np.asarray(rows))
    labels = [groups[i] for i in rows] if groups is not None else list(range(len(rows)))
    unique = list(dict.fromkeys(labels))  # in order of first appearance: seeded, repeatable
    if k > len(unique):
        what = "distinct molecules" if groups is not None else "rows"
        raise DataError(f"cv_folds = {k} needs at least {k} {what} outside the test part, there are {len(unique)}")
    fold_of: dict[Any, int] = {}
    for j, (_, va) in enumerate(KFold(n_splits=k, shuffle=True, random_state=seed).split(unique)):
        fold_of.update({unique[i]: j for i in va})
    which = np.asarray([fold_of[g] for g in labels])
    return [(rows[which != j], rows[which == j]) for j in range(k)]


@dataclass
class TrainResult:
    epochs: int = 0
    best_epoch: int = 0
    best_val: float = math.inf
    last_val: float = math.nan
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0


def mse(model: Any, x: np.ndarray, y: np.ndarray, batch: int = 4096) -> float:
    """Mean squared error of ``model`` on (x, y), computed directly (no ``evaluate`` tracing)."""
    preds = [np.asarray(model(x[i : i + batch], training=False)).reshape(-1) for i in range(0, len(x), batch)]
    pred = np.concatenate(preds) if preds else np.zeros(0)
    return float(np.mean((pred - y.reshape(-1)) ** 2))


def train_epochs(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    trial: optuna.Trial | None = None,
    restore_best: bool = False,
    seed: int = 0,
) -> TrainResult:
    """Train ``model`` epoch by epoch with ``fit``; validate, report and prune after each epoch.

    With a trial, the validation MSE is reported as step = epochs trained (1, 2, ...) and
    ``optuna.TrialPruned`` is raised when the pruner says so. With ``restore_best``, the weights
    of the epoch with the lowest validation loss are restored at the end. A non-finite loss
    stops training with ``FloatingPointError``.
    """

    keras = import_keras()
    result = TrainResult()
    best_weights: list[np.ndarray] | None = None
    t0 = time.perf_counter()

    class _EpochEnd(keras.callbacks.Callback):  # type: ignore[misc, name-defined]
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            nonlocal best_weights
            step = epoch + 1
            result.epochs = step
            train_loss = float((logs or {}).get("loss", math.nan))
            result.train_loss.append(train_loss)
            if not math.isfinite(train_loss):
                raise FloatingPointError(f"training loss is {train_loss} at epoch {step}")
            if x_val is None or y_val is None:
                return
            val = mse(model, x_val, y_val)
            result.val_loss.append(val)
            result.last_val = val
            if val < result.best_val:
                result.best_val, result.best_epoch = val, step
                if restore_best:
                    best_weights = [w.copy() for w in model.get_weights()]
            if trial is not None:
                report_epoch(trial, step, val)
            elif not math.isfinite(val):
                raise FloatingPointError(f"validation loss is {val} at epoch {step}")

    try:
        model.fit(
            x, y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True, callbacks=[_EpochEnd()]
        )
    finally:
        result.seconds = time.perf_counter() - t0
        if trial is not None:
            trial.set_user_attr("epochs", result.epochs)
            trial.set_user_attr("train_loss", [round(v, 7) for v in result.train_loss])
            if result.best_epoch:
                trial.set_user_attr("best_epoch", result.best_epoch)
    if restore_best and best_weights is not None:
        model.set_weights(best_weights)
    return result


class KerasRegressionObjective:
    """Shared trial function / evaluate / save of the Keras objectives.

    A subclass sets, in ``__init__``: ``options`` (with ``max_epochs``, ``batch_size``,
    ``restore_best``, ``seed``, ``model``), ``inputs`` (model inputs, all rows), ``y`` (target,
    standardised when the objective scales it), ``y_raw`` (target in its units), ``split``
    (dict of train/val/test indices) and ``y_scale`` ((mean, std) of the target scaler, or
    (0, 1)); and implements ``suggest(trial) -> params`` and ``build(params) -> keras.Model``.
    """

    direction = "minimize"
    options: Any
    inputs: np.ndarray
    y: np.ndarray
    y_raw: np.ndarray
    split: dict[str, np.ndarray]
    y_scale: tuple[float, float] = (0.0, 1.0)

    @property
    def max_budget(self) -> int:
        return int(self.options.max_epochs)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def warm_up(self) -> None:
        """Import TensorFlow now (a worker calls this before its first trial, so that the
        seconds of the import are not counted as the first trial's training time)."""
        import_keras()

    def build(self, params: dict[str, Any]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fresh(self, seed: int) -> Any:
        keras = import_keras()
        keras.backend.clear_session(free_memory=False)  # gc.collect costs ~0.4 s per trial
        keras.utils.set_random_seed(seed)
        return keras

    def fast_net(self, params: dict[str, Any]) -> Any:
        """The :mod:`optmpp.objectives.fast_train` net for ``params``, or None for Keras ``fit``."""
        return None

    @property
    def cv_folds(self) -> int:
        """Cross-validation folds of a trial (1: the study's one validation part)."""
        return int(getattr(self.options, "cv_folds", 1))

    def folds(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (train, validation) indices of each cross-validation fold (:func:`cv_fold_indices`
        over the train + validation rows, seeded by ``split_seed``), computed once."""
        if "_folds" not in self.__dict__:
            rows = np.concatenate([self.split["train"], self.split["val"]])
            self._folds = cv_fold_indices(rows, self.cv_folds, int(getattr(self.options, "split_seed", 0)),
                                          self.fold_groups())
        return self._folds

    def fold_groups(self) -> Sequence[Any] | None:
        """One label per row whose rows must share a cross-validation fold (None: rows are free)."""
        return None

    def describe_folds(self) -> str:
        """``; trials cross-validated in 5 folds over train + validation (299 rows; validation
        folds of 59-60)``, or "" without cross-validation."""
        if self.cv_folds < 2:
            return ""
        sizes = sorted(len(va) for _, va in self.folds())
        span = str(sizes[0]) if sizes[0] == sizes[-1] else f"{sizes[0]}-{sizes[-1]}"
        rows = sum(sizes)
        return (f"; trials cross-validated in {self.cv_folds} folds over train + validation "
                f"({rows} rows; validation folds of {span})")

    def _trainer(self, which: str) -> Any:
        """The worker's fast trainer on train/validation ("tune"), on train+validation ("final"),
        or on cross-validation fold j ("fold<j>"; every fold shares the first one's traced graphs)."""
        from optmpp.objectives.fast_train import FastTrainer

        cache = self.__dict__.setdefault("_trainers", {})
        if which not in cache:
            tr, va = self.split["train"], self.split["val"]
            if which == "tune":
                cache[which] = FastTrainer(self.inputs[tr], self.y[tr], self.inputs[va], self.y[va], self.options.batch_size)
            elif which.startswith("fold"):
                tr, va = self.folds()[int(which[4:])]
                cache[which] = FastTrainer(self.inputs[tr], self.y[tr], self.inputs[va], self.y[va], self.options.batch_size)
                if which != "fold0":
                    cache[which]._fns = self._trainer("fold0")._fns  # shape-generic graphs: traced once
            else:
                fit = np.concatenate([tr, va])
                cache[which] = FastTrainer(self.inputs[fit], self.y[fit], None, None, self.options.batch_size)
        return cache[which]

    def __call__(self, trial: optuna.Trial) -> float:

        params = self.suggest(trial)
        net = self.fast_net(params)
        if net is None:
            return self._call_keras(trial, params)
        if self.cv_folds > 1:
            return self._call_cv(trial, params)
        origin, checkpoint, saved = resume(trial, params)  # a retry trains as its first attempt did
        epochs_done = 0 if saved is None else int(saved[0]["epochs"])
        train_losses = [] if saved is None else [round(float(v), 7) for v in saved[0]["train_loss"]]

        def on_epoch(epoch: int, train_loss: float, val_loss: float) -> None:
            nonlocal epochs_done
            epochs_done = epoch
            train_losses.append(round(float(train_loss), 7))
            report_epoch(trial, epoch, val_loss)

        trainer = self._trainer("tune")
        try:
            result = trainer.train(
                net, self.options.max_epochs, self.options.seed + origin, on_epoch, self.options.restore_best,
                checkpoint=checkpoint, resume=saved, restart=warm_restart(trial, saved),
            )
        finally:
            trial.set_user_attr("epochs", epochs_done)
            trial.set_user_attr("train_loss", train_losses)
            # where the trial's time went (benchmarks/vs_kerastuner.py): inside the epoch graphs,
            # and the part of that which traced a new graph
            for key in ("train_s", "trace_s"):
                trial.set_user_attr(key, round(float(trainer.history.get(key, 0.0)), 4))
            # the trial ended here: only a killed worker, or a synchronous Hyperband round that
            # a later round may continue, leaves a checkpoint
            end_checkpoint(trial, checkpoint, epochs_done)
        trial.set_user_attr("best_epoch", result["best_epoch"])
        return result["best_val"] if self.options.restore_best else result["val_loss"][-1]

    def _call_cv(self, trial: optuna.Trial, params: dict[str, Any]) -> float:
        """A trial cross-validated: one net per fold, trained side by side epoch by epoch; the
        mean of the folds' validation losses is reported after each epoch (and pruned on), and
        the trial's value is its lowest (``restore_best``) or last mean. ``best_epoch`` is the
        epoch of the lowest mean, which ``optmpp best`` retrains for; ``fold_val_loss`` holds the
        folds' losses behind the value. A checkpoint holds every fold's state, so retries and
        synchronous Hyperband continue cross-validated trials as they continue others."""
        k = self.cv_folds
        origin, checkpoint, saved = resume(trial, params)
        fold_resume: list[Any] = [None] * k
        history: dict[str, Any] = {"train_loss": [], "val_loss": [], "best_epoch": 0, "best_val": math.inf,
                                   "epochs": 0, "best_folds": [], "last_folds": []}
        if saved is not None:
            meta, arrays = saved
            for j in range(k):
                prefix = f"f{j}."
                fold_resume[j] = (meta["folds"][j], {key[len(prefix):]: a for key, a in arrays.items() if key.startswith(prefix)})
            for key in history:
                history[key] = list(meta[key]) if isinstance(meta[key], list) else meta[key]
        restart = warm_restart(trial, saved)
        trainers = [self._trainer(f"fold{j}") for j in range(k)]
        for tr in trainers:
            tr.history = {}  # a fold that never starts (an earlier fold raised) counts no time
        seed = self.options.seed + origin
        steps = [tr.steps(self.fast_net(params), self.options.max_epochs, seed, False, fold_resume[j], restart)
                 for j, tr in enumerate(trainers)]
        try:
            for outs in zip(*steps):
                epoch = outs[0][0]
                fold_vals = [float(o[2]) for o in outs]
                val = float(np.mean(fold_vals))
                history["train_loss"].append(round(float(np.mean([o[1] for o in outs])), 7))
                history["val_loss"].append(val)
                history["epochs"], history["last_folds"] = epoch, fold_vals
                if val < history["best_val"]:
                    history["best_val"], history["best_epoch"], history["best_folds"] = val, epoch, fold_vals
                if checkpoint is not None and checkpoint.due(epoch):
                    arrays, fold_metas = {}, []
                    for j, o in enumerate(outs):
                        fold_meta, fold_arrays = o[3]()
                        fold_metas.append(fold_meta)
                        arrays.update({f"f{j}.{key}": a for key, a in fold_arrays.items()})
                    checkpoint.save({**history, "folds": fold_metas}, arrays)
                report_epoch(trial, epoch, val)
        finally:
            for g in steps:
                g.close()
            trial.set_user_attr("epochs", history["epochs"])
            trial.set_user_attr("train_loss", history["train_loss"])
            for key in ("train_s", "trace_s"):
                trial.set_user_attr(key, round(sum(float(tr.history.get(key, 0.0)) for tr in trainers), 4))
            end_checkpoint(trial, checkpoint, history["epochs"])
        trial.set_user_attr("best_epoch", history["best_epoch"])
        folds = history["best_folds"] if self.options.restore_best else history["last_folds"]
        trial.set_user_attr("fold_val_loss", [round(v, 7) for v in folds])  # the folds behind the value
        return history["best_val"] if self.options.restore_best else history["val_loss"][-1]

    def _call_keras(self, trial: optuna.Trial, params: dict[str, Any]) -> float:
        self._fresh(self.options.seed + trial.number)
        model = self.build(params)
        tr, va = self.split["train"], self.split["val"]
        result = train_epochs(
            model,
            self.inputs[tr],
            self.y[tr],
            epochs=self.options.max_epochs,
            batch_size=self.options.batch_size,
            x_val=self.inputs[va],
            y_val=self.y[va],
            trial=trial,
            restore_best=self.options.restore_best,
        )
        return result.best_val if self.options.restore_best else result.last_val

    def evaluate(self, params: dict[str, Any], seed: int = 0, epochs: int | None = None) -> Any:
        """Retrain on train + validation for ``epochs`` (default: max) and score the test part."""
        epochs = epochs or self.options.max_epochs
        fit_idx = np.concatenate([self.split["train"], self.split["val"]])
        net = self.fast_net(params)
        extra: dict[str, Any] = {}
        if net is None:
            self._fresh(self.options.seed + seed)
            model = self.build(params)
            result = train_epochs(model, self.inputs[fit_idx], self.y[fit_idx], epochs=epochs,
                                  batch_size=self.options.batch_size)
            extra.update(train_loss=result.train_loss, epochs=result.epochs, seconds=result.seconds)
        else:
            trainer = self._trainer("final")
            history = trainer.train(net, epochs, self.options.seed + seed)
            model = net.to_keras(self.inputs.shape[1:])
            extra.update(train_loss=history["train_loss"], epochs=history["epochs"])
        ev = self.score(model, extra)
        if net is not None:
            fast = trainer.predict(net, self.inputs[self.split["test"]])
            pred = (np.asarray(ev.y_pred, float) - self.y_scale[0]) / self.y_scale[1]
            ev.extra["max_abs_diff_fast_vs_keras"] = float(np.max(np.abs(fast - pred)))
        return ev

    def score(self, model: Any, extra: dict[str, Any] | None = None) -> Any:
        """Test-set metrics of a fitted Keras ``model`` (an :class:`Evaluation` holding it)."""
        from optmpp.objectives.base import Evaluation, scaled_and_unit_metrics

        test = self.split["test"]
        pred = np.asarray(model.predict(self.inputs[test], verbose=0, batch_size=4096)).reshape(-1)
        y_true = self.y_raw[test]
        metrics, y_pred = scaled_and_unit_metrics(self.y[test], pred, self.y_scale, y_true)
        return Evaluation(metrics=metrics, model=model, y_true=y_true, y_pred=y_pred, extra=dict(extra or {}))

    def ensemble(self, evaluations: list[Any]) -> Any:
        """One Keras model whose output is the mean of the ``evaluations``' models (retrained
        seeds of one configuration), scored on the test part like a single model.

        It is a standard functional model (the seeds' models side by side, then ``Average``), so
        ``keras.models.load_model`` and ``optmpp predict`` use it as they use a single one.
        """
        keras = import_keras()
        models = [ev.model for ev in evaluations]
        if len(models) < 2:
            raise ValueError("an ensemble needs two or more models")
        inp = keras.Input(self.inputs.shape[1:], name="inputs")
        outs = [keras.Sequential([m], name=f"member_{i}")(inp) for i, m in enumerate(models)]
        model = keras.Model(inp, keras.layers.Average(name="mean_of_members")(outs), name="ensemble")
        return self.score(model, {"members": len(models)})

    def predictor_meta(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """What ``optmpp predict`` needs besides the model file (columns, scalers, encoding)."""
        raise NotImplementedError

    def save(self, evaluation: Any, directory: Any) -> dict[str, Any]:
        """Save the fitted model as a standard Keras file plus optmpp's metadata; return it."""
        from pathlib import Path

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        evaluation.model.save(directory / "model.keras")
        return {"model_file": "model.keras", "framework": "keras", **self.predictor_meta()}
