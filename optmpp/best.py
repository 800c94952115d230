"""``optmpp best``: retrain a study's best trial, report test metrics, save a usable model.

The best complete trial is read back from the storage; its parameters are retrained on the
training + validation parts for the epochs the trial trained (its best epoch when the objective
restores the best weights), once per seed; the test metrics are reported as mean ± std over
seeds, in the layout of the paper's Tables 9 and 11. The first seed's model is saved under
``runs/models/<study>/`` with everything ``optmpp predict`` needs (``optmpp-model.json``), the
metrics (``metrics.json``, ``metrics.csv``) and a parity plot (``parity.png``). With
``ensemble``, the saved model is instead the seeds' models averaged (one Keras model; the
prediction is the mean of theirs), and its test metrics are reported beside the per-seed ones.
With ``splits`` N >= 2, the same hyperparameters are also retrained and tested on N - 1 other
random splits of the data (split seeds following the study's), and the spread of the test
metrics over the N splits is reported: on a few hundred molecules one test part's figure says
little on its own. The saved model is still the one of the study's split.

A study file whose objective is a fixed ``paper-baseline`` model has nothing to tune: ``best``
trains that model directly, without a storage.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from optmpp import __version__
from optmpp.config import ConfigError, StudyConfig
from optmpp.objectives import make_objective

__all__ = ["BestResult", "retrain_best", "format_metrics_table"]

METRIC_ROWS = [("loss", "Loss (MSE)"), ("mae", "MAE"), ("mape", "MAPE (%)"), ("rmse", "RMSE"), ("r2", "R²"),
               ("rmse_unseen", "RMSE, test molecules not in the training data")]
MODEL_CARD = "optmpp-model.json"


@dataclass
class BestResult:
    study: str
    trial_number: int | None
    params: dict[str, Any]
    epochs: int | None
    seeds: list[int]
    per_seed: list[dict[str, float]]
    mean: dict[str, float]
    std: dict[str, float]
    out_dir: Path | None
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    target: str = "target"
    scaled: bool = True  # False: the model is trained on the target in its units
    predictions: list[tuple[list[float], list[float]]] = field(default_factory=list)  # (true, pred) per seed
    ensemble: dict[str, float] | None = None  # test metrics of the seeds' averaged prediction
    # with --splits: one row per split seed, the study's first ({"split_seed", "metrics", "ensemble"})
    splits: list[dict[str, Any]] = field(default_factory=list)
    # the saved model's file, which `optmpp predict` loads; None where the objective saves none
    model_file: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("predictions")
        d["out_dir"] = str(self.out_dir) if self.out_dir else None
        if self.splits:
            d["split_summary"] = split_summary(self)
        return d


def _fmt(v: float) -> str:
    if v != v:  # NaN
        return "nan"
    return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"


def format_metrics_table(result: BestResult) -> str:
    """Markdown table: metric x (standardised target, target in its units), mean ± std."""
    n = len(result.per_seed)
    head = (
        f"Test metrics, study {result.study}"
        + (f", best trial {result.trial_number}" if result.trial_number is not None else " (fixed model)")
        + f" retrained on train+validation for {result.epochs} epochs, {n} seed(s)"
    )
    has_units = any(k.endswith("_units") for k in result.mean)
    both = has_units and result.scaled
    first = "standardised target" if result.scaled else result.target
    ens = result.ensemble
    columns = [first] + ([result.target] if both else [])
    if ens is not None:
        columns += [f"{c}, mean of the {n} seeds' predictions" for c in columns]
    lines = [head, "", "| metric | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for key, label in METRIC_ROWS:
        if key not in result.mean:
            continue
        keys = [key] + ([f"{key}_units"] if both else [])
        cells = [f"{_fmt(result.mean[k])} ± {_fmt(result.std[k])}" if n > 1 else _fmt(result.mean[k]) for k in keys]
        if ens is not None:
            cells += [_fmt(ens[k]) if k in ens else "" for k in keys]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if ens is not None:
        lines += ["", f"The saved model is the ensemble: it predicts the mean of the {n} seeds' models."]
    return "\n".join(lines)


SPLIT_COLUMNS = [("rmse", "RMSE"), ("mae", "MAE"), ("r2", "R²"), ("rmse_unseen", "RMSE, unseen molecules")]


def split_figures(result: BestResult) -> list[dict[str, float]]:
    """The test figures summarised per split: those of the saved kind of model (the seeds'
    ensemble with ``--ensemble``, else the mean over seeds)."""
    kind = "ensemble" if result.ensemble is not None else "metrics"
    return [row[kind] for row in result.splits]


def split_summary(result: BestResult) -> dict[str, dict[str, float]]:
    """Median, quartiles, min and max of each test metric over the splits."""
    rows = split_figures(result)
    out: dict[str, dict[str, float]] = {}
    for key in rows[0] if rows else []:
        values = np.asarray([r[key] for r in rows if key in r], dtype=float)
        values = values[np.isfinite(values)]
        if not len(values):
            continue
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        out[key] = {"median": float(med), "q1": float(q1), "q3": float(q3),
                    "min": float(values.min()), "max": float(values.max())}
    return out


def format_splits_table(result: BestResult) -> str:
    """Markdown table of the test metrics split by split, then their median, quartiles and range."""
    rows = split_figures(result)
    units = any(k.endswith("_units") for k in rows[0])
    cols = [(f"{k}_units" if units else k, label) for k, label in SPLIT_COLUMNS]
    cols = [(k, label) for k, label in cols if k in rows[0]]
    seeds = [row["split_seed"] for row in result.splits]
    n_seeds = len(result.seeds)
    what = (f"the mean of the {n_seeds} seeds' predictions" if result.ensemble is not None
            else f"mean over {n_seeds} seeds" if n_seeds > 1 else "one seed")
    unit = f" ({result.target})" if units else ""
    model = "the fixed model" if result.trial_number is None else f"the hyperparameters of split seed {seeds[0]}"
    lines = [
        f"Test metrics over {len(rows)} random splits{unit}, split seeds {seeds[0]}-{seeds[-1]}, {model}; "
        f"{what} per split",
        "",
        "| split seed | " + " | ".join(label for _, label in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for seed, r in zip(seeds, rows):
        lines.append(f"| {seed} | " + " | ".join(_fmt(r[k]) if k in r else "" for k, _ in cols) + " |")
    summary = split_summary(result)
    for label, f in (("median", lambda s: _fmt(s["median"])),
                     ("quartiles", lambda s: f"{_fmt(s['q1'])} - {_fmt(s['q3'])}"),
                     ("min - max", lambda s: f"{_fmt(s['min'])} - {_fmt(s['max'])}")):
        lines.append(f"| **{label}** | " + " | ".join(f(summary[k]) if k in summary else "" for k, _ in cols) + " |")
    if result.trial_number is not None:
        lines += ["", f"The hyperparameters were tuned on split seed {seeds[0]}'s training and validation parts (scored"
                  " on its validation part, or cross-validated over both). On the other splits"
                  " some test rows were in that split's training or validation data: the hyperparameters (not the"
                  " weights) saw them, which can only flatter those splits' figures."]
    return "\n".join(lines)


def check_splits(config: StudyConfig, objective: Any, splits: int) -> int:
    """Check that ``splits`` other random splits can be drawn; the study's split seed."""
    if splits < 1:
        raise ConfigError(f"--splits must be >= 1, got {splits}")
    options = getattr(objective, "options", None)
    if splits > 1 and not hasattr(options, "split_seed"):
        raise ConfigError(f"objective {config.objective.name!r} has no split_seed option: --splits cannot re-split its data")
    if splits > 1 and getattr(options, "split", "random") != "random":
        raise ConfigError(f"--splits draws other random splits, but the study's split is {options.split!r}: "
                          "it has one test part (set split = \"random\" in [objective] to re-split)")
    return int(getattr(options, "split_seed", 0))


def _retrain(evaluate: Callable[..., Any], params: dict[str, Any], seeds: list[int], epochs: int | None,
             log: Callable[[str], None], prefix: str = "") -> list[Any]:
    accepts_epochs = "epochs" in inspect.signature(evaluate).parameters
    evaluations = []
    for seed in seeds:
        kwargs = {"epochs": epochs} if accepts_epochs and epochs else {}
        t = time.monotonic()
        ev = evaluate(params, seed=seed, **kwargs)
        evaluations.append(ev)
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in ev.metrics.items() if not k.endswith("_units"))
        log(f"  {prefix}seed {seed}: {shown} ({time.monotonic() - t:.1f} s)")
    return evaluations


def _mean(metrics: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.fmean(m[k] for m in metrics) for k in metrics[0]}


def _best_trial(config: StudyConfig, storage_url: str) -> tuple[Any, dict[str, Any] | None]:
    """The study's best complete trial, and the data file it was created on (when stored)."""
    import optuna
    from optuna.trial import TrialState

    from optmpp.storage import make_storage, redact_url
    from optmpp.workers import DATA_ATTR

    storage = make_storage(storage_url, heartbeat_interval=None, must_exist=True)
    try:
        study = optuna.load_study(study_name=config.name, storage=storage)
    except KeyError:
        raise ConfigError(
            f"{config.path}: no study {config.name!r} in {redact_url(storage_url)}; run it first "
            f"(optmpp run {config.path})"
        ) from None
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ConfigError(f"study {config.name!r} has no complete trial yet")
    pick = min if study.direction.name == "MINIMIZE" else max
    return pick(complete, key=lambda t: t.value), study.user_attrs.get(DATA_ATTR)


def parity_plot(path: Path, y_true: Any, y_pred: Any, title: str, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    fig, ax = plt.subplots(figsize=(5.2, 5))
    ax.scatter(y_true, y_pred, s=14, alpha=0.7, edgecolors="none")
    lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    ax.set_xlabel(f"true {label}")
    ax.set_ylabel(f"predicted {label}")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def retrain_best(
    config: StudyConfig,
    storage_url: str | None,
    *,
    seeds: int = 1,
    out_dir: str | Path | None = None,
    save: bool = True,
    log: Callable[[str], None] = print,
    first_seed: int = 0,
    ensemble: bool = False,
    splits: int = 1,
    warn: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> BestResult:
    """Retrain the best trial of ``config``'s study (or its fixed baseline model).

    Seeds ``first_seed`` .. ``first_seed + seeds - 1``; with ``save``, the first seed's model,
    its metadata, the metrics and a parity plot are written to ``out_dir``. With ``ensemble``
    (two or more seeds), the seeds' models averaged are scored and saved instead of the first.
    With ``splits`` >= 2, the same is done on ``splits - 1`` other random splits (test metrics
    only; ``result.splits``).
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if ensemble and seeds < 2:
        raise ConfigError(f"--ensemble averages several retrained seeds: give --seeds 2 or more (got {seeds})")
    t0 = time.monotonic()
    objective = make_objective(config.objective.name, config.objective.options, config.path)
    evaluate = getattr(objective, "evaluate", None)
    if evaluate is None:
        raise ConfigError(f"objective {config.objective.name!r} has no evaluate(params) method")
    if ensemble and not callable(getattr(objective, "ensemble", None)):
        raise ConfigError(f"objective {config.objective.name!r} cannot average models (it has no ensemble(evaluations) method)")
    options = getattr(objective, "options", None)
    split_seed = check_splits(config, objective, splits)
    fixed = getattr(options, "model", None) == "paper-baseline"
    if fixed:
        trial_number, params, epochs = None, {}, getattr(objective, "max_budget", None)
        log(f"{config.name}: fixed paper-baseline model, nothing to tune; training it directly")
    else:
        if storage_url is None:
            raise ConfigError("a storage URL is needed to read the study")
        from optmpp.workers import data_change, data_fingerprint

        trial, tuned_on = _best_trial(config, storage_url)
        changed = data_change(tuned_on, data_fingerprint(objective))
        if changed:
            warn(f"warning: study {config.name!r} was tuned on other data: {changed}. Its best hyperparameters "
                "are retrained and tested on the data as it is now, so these test metrics are not the study's")
        trial_number, params = trial.number, dict(trial.params)
        epochs = trial.user_attrs.get("epochs")
        if getattr(options, "restore_best", False) and trial.user_attrs.get("best_epoch"):
            epochs = trial.user_attrs["best_epoch"]
        log(f"{config.name}: best trial {trial_number} (value {trial.value:.6g}), retraining for {epochs} epochs")
    seed_list = list(range(first_seed, first_seed + seeds))
    evaluations = _retrain(evaluate, params, seed_list, epochs, log)
    per_seed = [dict(ev.metrics) for ev in evaluations]
    keys = list(per_seed[0])
    mean = _mean(per_seed)
    std = {k: (statistics.stdev(m[k] for m in per_seed) if len(per_seed) > 1 else 0.0) for k in keys}
    result = BestResult(config.name, trial_number, params, epochs, seed_list, per_seed, mean, std, None)
    result.predictions = [
        (np.asarray(ev.y_true, float).ravel().tolist(), np.asarray(ev.y_pred, float).ravel().tolist())
        for ev in evaluations if ev.y_true is not None and ev.y_pred is not None
    ]
    table = getattr(objective, "table", None)
    result.target = str(getattr(table, "target", None) or getattr(getattr(objective, "options", None), "target", "target"))
    result.scaled = tuple(getattr(objective, "y_scale", (None, None))) != (0.0, 1.0)
    saved = evaluations[0]
    if ensemble:
        saved = objective.ensemble(evaluations)
        result.ensemble = dict(saved.metrics)
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in saved.metrics.items() if not k.endswith("_units"))
        log(f"  mean of the {seeds} seeds' predictions: {shown}")
    if splits > 1:
        result.splits.append({"split_seed": split_seed, "metrics": mean, "ensemble": result.ensemble})
        for i, s in enumerate(range(split_seed + 1, split_seed + splits), 2):
            t = time.monotonic()
            what = "the fixed model" if fixed else f"trial {trial_number}'s hyperparameters"
            log(f"split seed {s} ({i} of {splits}): retraining {what}")
            other = make_objective(config.objective.name, {**config.objective.options, "split_seed": s}, config.path)
            evs = _retrain(other.evaluate, params, seed_list, epochs, log, prefix=f"split {s}, ")
            row = {"split_seed": s,
                   "metrics": _mean([ev.metrics for ev in evs]),
                   "ensemble": dict(other.ensemble(evs).metrics) if ensemble else None}
            result.splits.append(row)
            fig = row["ensemble"] or row["metrics"]
            units = "rmse_units" in fig
            rmse, r2 = fig.get("rmse_units", fig["rmse"]), fig.get("r2_units", fig.get("r2"))
            shown = f"test RMSE {_fmt(rmse)} ({result.target if units or not result.scaled else 'standardised'})"
            shown += f", R² {_fmt(r2)}" if r2 is not None else ""
            log(f"  split seed {s}: {shown} ({time.monotonic() - t:.1f} s)")
    result.seconds = time.monotonic() - t0  # training and testing; written to metrics.json below
    if save:
        out = Path(out_dir) if out_dir else Path("runs") / "models" / config.name
        out.mkdir(parents=True, exist_ok=True)
        result.out_dir = out
        card: dict[str, Any] = {"format": "optmpp-model/1"}
        if hasattr(objective, "save"):
            card.update(objective.save(saved, out))
        card.update({
            "study": config.name,
            "objective": config.objective.name,
            "objective_options": json.loads(json.dumps(
                dataclasses.asdict(options) if dataclasses.is_dataclass(options) else config.objective.options,
                default=str)),
            "trial": trial_number,
            "params": params,
            "epochs": epochs,
            "seed_of_saved_model": None if ensemble else first_seed,
            "ensemble_of_seeds": seed_list if ensemble else None,
            "test_metrics": saved.metrics,
            "versions": {"optmpp": __version__, "python": platform.python_version()},
        })
        (out / MODEL_CARD).write_text(json.dumps(card, indent=2, default=str))
        (out / "metrics.json").write_text(json.dumps(result.as_dict(), indent=2, default=str))
        with open(out / "metrics.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["seed", *keys])
            for seed, m in zip(seed_list, per_seed):
                w.writerow([seed, *(m[k] for k in keys)])
            w.writerow(["mean", *(mean[k] for k in keys)])
            w.writerow(["std", *(std[k] for k in keys)])
            if result.ensemble is not None:
                w.writerow(["ensemble", *(result.ensemble.get(k, "") for k in keys)])
        result.files = [MODEL_CARD, "metrics.json", "metrics.csv"]
        if result.splits:
            rows = split_figures(result)
            with open(out / "splits.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["split_seed", *keys])
                for row, figures in zip(result.splits, rows):
                    w.writerow([row["split_seed"], *(figures.get(k, "") for k in keys)])
                summary = split_summary(result)
                for stat in ("median", "q1", "q3", "min", "max"):
                    w.writerow([stat, *(summary[k][stat] if k in summary else "" for k in keys)])
            result.files.append("splits.csv")
        if "model_file" in card:
            result.files.insert(0, card["model_file"])
            result.model_file = card["model_file"]
        if saved.y_true is not None and saved.y_pred is not None:
            m = saved.metrics
            r2, rmse = m.get("r2_units", m.get("r2")), m.get("rmse_units", m.get("rmse"))
            which = f"mean of seeds {seed_list[0]}-{seed_list[-1]}" if ensemble else f"seed {first_seed}"
            title = f"{config.name}: test R² {r2:.4f}, RMSE {rmse:.4g} ({which})"
            parity_plot(out / "parity.png", saved.y_true, saved.y_pred, title, card.get("target", "y"))
            result.files.append("parity.png")
    return result
