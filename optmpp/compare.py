"""``optmpp compare`` and ``optmpp report``: the paper's algorithm comparison, made reproducible.

A comparison file (TOML) names one objective, the algorithms, one budget and the seeds::

    name = "paper-hdpe-mi"
    algorithms = ["random", "bayes", "tpe", "hyperband", "bohb", "sha"]   # default: all six
    budget = { epochs = 2000 }     # or { trials = 60 } or { seconds = 600 }
    seeds = 3                      # one study per algorithm and seed
    workers = 2
    splits = 1                     # test metrics over this many random splits (--splits)

    [objective]
    name = "hdpe-mi-dnn"
    max_epochs = 81

    [algorithm_options.hyperband]  # optional overrides, per algorithm
    reduction_factor = 3

``compare`` runs the study ``<name>.<algorithm>.s<seed>`` for each algorithm and seed in one
storage, with the same objective (data, split, search space) and budget, retrains each study's
best trial once (with that seed; with ``--splits N`` also on N - 1 other random splits) and
writes, under ``runs/compare/<name>/``: ``table.md`` and ``table.csv`` (mean ± std over seeds),
``anytime.png``, ``parity-<algorithm>.png``, ``curves-<algorithm>.png``, ``config.json``
(resolved configuration and package versions) and ``summary.json``. Every figure is computed from what the storage holds, so re-running
``compare`` resumes (finished studies are not re-run), and ``report`` draws the same table and
figures for any existing studies. This module imports neither TensorFlow nor, until a figure is
drawn, matplotlib.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optmpp import __version__
from optmpp._tables import ConfigError, coerce
from optmpp.algorithms import ALGORITHMS
from optmpp.config import StudyConfig, parse_study_config, read_toml

__all__ = [
    "Budget",
    "CompareConfig",
    "StudyRecord",
    "load_compare_config",
    "parse_compare_config",
    "report",
    "run_compare",
]

Log = Callable[[str], None]
ELAPSED_ATTR = "optmpp:tuning_seconds"
BUDGET_KINDS = ("trials", "seconds", "epochs")
# test metrics shown in the table: (key in the objective's metrics, column title)
TEST_COLUMNS = [("loss", "test loss"), ("mae", "MAE"), ("mape", "MAPE (%)"), ("rmse", "RMSE"), ("r2", "R²")]


# --------------------------------------------------------------------------------------
# comparison files


@dataclass(frozen=True)
class Budget:
    """The same budget for every study: finished trials, tuning seconds or epochs consumed."""

    kind: str
    amount: float

    def describe(self) -> str:
        amount = f"{self.amount:g}"
        return {"trials": f"{amount} finished trials", "seconds": f"{amount} s of tuning",
                "epochs": f"{amount} epochs consumed"}[self.kind]


@dataclass(frozen=True)
class CompareConfig:
    name: str
    studies: dict[str, StudyConfig]  # algorithm -> the study of seed ``first_seed``
    budget: Budget
    seeds: int = 3
    first_seed: int = 0
    workers: int = 1
    storage: str | None = None
    max_trials: int = 100_000
    splits: int = 1
    path: str = "<memory>"
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def algorithms(self) -> list[str]:
        return list(self.studies)

    def study_name(self, algorithm: str, seed: int) -> str:
        return f"{self.name}.{algorithm}.s{seed}"

    def study_config(self, algorithm: str, seed: int) -> StudyConfig:
        n_trials = int(self.budget.amount) if self.budget.kind == "trials" else self.max_trials
        return self.studies[algorithm].replace(
            name=self.study_name(algorithm, seed), seed=seed, n_trials=n_trials, timeout=None
        )


_KEYS = {"name", "algorithms", "algorithm_options", "budget", "seeds", "seed", "workers", "storage",
         "direction", "objective", "reliability", "max_trials", "splits"}


def parse_compare_config(data: Any, path: str | Path = "<memory>") -> CompareConfig:
    """Validate a parsed comparison file; every error is a :class:`ConfigError` naming the key."""
    where = str(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a TOML table at the top level")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(_KEYS))}")
    if "objective" not in data:
        raise ConfigError(f"{where}: missing key 'objective'")
    if "budget" not in data:
        raise ConfigError(f"{where}: missing key 'budget' (e.g. budget = {{ epochs = 2000 }}; "
                          f"one of {', '.join(BUDGET_KINDS)})")
    name = coerce(data.get("name", Path(where).stem if where != "<memory>" else "compare"), str, f"{where}: name")
    algorithms = coerce(data.get("algorithms", list(ALGORITHMS)), list[str], f"{where}: algorithms")
    if not algorithms:
        raise ConfigError(f"{where}: algorithms: name at least one of {', '.join(ALGORITHMS)}")
    for a in algorithms:
        if a not in ALGORITHMS:
            raise ConfigError(f"{where}: algorithms: unknown algorithm {a!r}; allowed: {', '.join(ALGORITHMS)}")
    if len(set(algorithms)) != len(algorithms):
        raise ConfigError(f"{where}: algorithms: each algorithm once, got {algorithms}")
    overrides = data.get("algorithm_options", {})
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise ConfigError(f"{where}: algorithm_options: expected tables such as [algorithm_options.hyperband]")
    stray = sorted(set(overrides) - set(algorithms))
    if stray:
        raise ConfigError(f"{where}: algorithm_options.{stray[0]}: not one of the algorithms compared ({', '.join(algorithms)})")

    budget_t = data["budget"]
    if not isinstance(budget_t, dict) or len(budget_t) != 1 or next(iter(budget_t)) not in BUDGET_KINDS:
        raise ConfigError(f"{where}: budget: expected exactly one of {', '.join(BUDGET_KINDS)}, "
                          f"e.g. budget = {{ epochs = 2000 }}; got {budget_t!r}")
    kind, amount = next(iter(budget_t.items()))
    amount = coerce(amount, float if kind == "seconds" else int, f"{where}: budget.{kind}")
    if amount <= 0:
        raise ConfigError(f"{where}: budget.{kind}: expected a number > 0, got {amount}")
    budget = Budget(kind, float(amount))

    ints = {}
    for key, default, low in (("seeds", 3, 1), ("seed", 0, 0), ("workers", 1, 1), ("max_trials", 100_000, 1),
                              ("splits", 1, 1)):
        ints[key] = coerce(data.get(key, default), int, f"{where}: {key}")
        if ints[key] < low:
            raise ConfigError(f"{where}: {key}: expected an integer >= {low}, got {ints[key]}")
    storage = coerce(data["storage"], str, f"{where}: storage") if "storage" in data else None

    base = {k: data[k] for k in ("direction", "objective", "reliability") if k in data}
    studies = {}
    for algo in algorithms:
        table = {"name": algo, **overrides.get(algo, {})}
        studies[algo] = parse_study_config(
            {**base, "name": f"{name}.{algo}.s{ints['seed']}", "algorithm": table,
             "workers": ints["workers"], "seed": ints["seed"]},
            where,
        )
    return CompareConfig(name=name, studies=studies, budget=budget, seeds=ints["seeds"],
                         first_seed=ints["seed"], workers=ints["workers"], storage=storage,
                         max_trials=ints["max_trials"], splits=ints["splits"], path=where, raw=dict(data))


def load_compare_config(path: str | Path) -> CompareConfig:
    return parse_compare_config(read_toml(path, "comparison file"), path)


# --------------------------------------------------------------------------------------
# reading a study back


@dataclass
class StudyRecord:
    """What the table and figures need of one study, read from the storage."""

    name: str
    group: str  # the algorithm (or the study name for studies optmpp did not create)
    direction: str
    counts: dict[str, int]
    epochs: int
    wall_s: float
    best_value: float | None
    best_trial: int | None
    # anytime curve: one point per finished trial in completion order
    t: list[float] = field(default_factory=list)
    e: list[int] = field(default_factory=list)
    best: list[float | None] = field(default_factory=list)
    val_curve: list[float] = field(default_factory=list)
    train_curve: list[float] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    # with --splits: the best trial's test metrics on each split, the study's own first
    split_tests: list[dict[str, float]] = field(default_factory=list)
    split_seeds: list[int] = field(default_factory=list)
    predictions: tuple[list[float], list[float]] | None = None
    target: str = "target"

    def first_reach(self, target: float) -> tuple[float, int] | None:
        """(seconds, epochs) when the best-so-far first reached ``target``; None if never."""
        better = (lambda v: v <= target) if self.direction == "minimize" else (lambda v: v >= target)
        for t, e, b in zip(self.t, self.e, self.best):
            if b is not None and better(b):
                return t, e
        return None


def _active_elapsed(trials: list[Any]) -> tuple[list[tuple[float, float]], Callable[[datetime.datetime], float]]:
    """Seconds of activity (the union of trials' run intervals) before a given moment.

    Gaps between an interrupted run and its resumption do not count.
    """
    spans = sorted(
        (t.datetime_start, t.datetime_complete) for t in trials
        if t.datetime_start is not None and t.datetime_complete is not None
    )
    merged: list[list[datetime.datetime]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])

    def at(moment: datetime.datetime) -> float:
        total = 0.0
        for a, b in merged:
            if moment <= a:
                break
            total += (min(b, moment) - a).total_seconds()
        return total

    return [(a.timestamp(), b.timestamp()) for a, b in merged], at


def read_study(study: Any) -> StudyRecord:
    from optuna.trial import TrialState

    from optmpp.workers import CONFIG_ATTR, VERSIONS_ATTR, _counts, epochs_consumed

    trials = study.get_trials(deepcopy=False)
    direction = study.direction.name.lower()
    config = study.user_attrs.get(CONFIG_ATTR) or {}
    group = (config.get("algorithm") or {}).get("name") or study.study_name
    merged, at = _active_elapsed(trials)
    wall = study.user_attrs.get(ELAPSED_ATTR)
    if wall is None:
        wall = sum(b - a for a, b in merged)
    rec = StudyRecord(
        name=study.study_name, group=group, direction=direction, counts=_counts(study),
        epochs=epochs_consumed(trials), wall_s=float(wall), best_value=None, best_trial=None,
        config=config, versions=study.user_attrs.get(VERSIONS_ATTR) or {},
    )
    finished = sorted(
        (t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
         and t.datetime_complete is not None),
        key=lambda t: t.datetime_complete,
    )
    best: float | None = None
    best_t = None
    epochs = 0
    for t in finished:
        epochs += int(t.user_attrs.get("epochs", len(t.intermediate_values)))
        if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value):
            if best is None or (t.value < best if direction == "minimize" else t.value > best):
                best, best_t = t.value, t
        rec.t.append(at(t.datetime_complete))
        rec.e.append(epochs)
        rec.best.append(best)
    if best_t is not None:
        rec.best_value, rec.best_trial = best, best_t.number
        rec.val_curve = [best_t.intermediate_values[k] for k in sorted(best_t.intermediate_values)]
        rec.train_curve = [float(v) for v in best_t.user_attrs.get("train_loss", [])]
    return rec


# --------------------------------------------------------------------------------------
# retraining the best trial of each study (cached in the output directory)


def _study_config_from_storage(rec: StudyRecord) -> StudyConfig:
    stored = rec.config
    if not stored.get("objective") or not stored.get("algorithm"):
        raise ConfigError(f"study {rec.name!r} was not created by optmpp (no stored configuration)")
    data = {k: stored[k] for k in ("direction", "objective", "algorithm", "n_trials", "seed", "workers", "reliability")
            if stored.get(k) is not None}
    data["name"] = rec.name
    return parse_study_config(data, f"study {rec.name} (stored configuration)")


def _retrain(rec: StudyRecord, config: StudyConfig | None, url: str, out: Path, log: Log, splits: int = 1) -> None:
    """Fill ``rec.test`` and ``rec.predictions`` (and with ``splits`` >= 2 ``rec.split_tests``)
    from the cache, or retrain the best trial once per split."""
    from optmpp.best import retrain_best

    if rec.best_trial is None:
        return
    cache = out / "retrained" / f"{rec.name}.json"
    if cache.exists():
        try:
            saved = json.loads(cache.read_text())
            if saved.get("trial") == rec.best_trial and saved.get("splits", 1) == splits:
                rec.test = saved["metrics"]
                rec.predictions = tuple(saved["predictions"]) if saved.get("predictions") else None
                rec.target = saved.get("target", rec.target)
                rec.split_tests = saved.get("split_tests", [])
                rec.split_seeds = saved.get("split_seeds", [])
                return
        except (ValueError, KeyError):
            pass
    try:
        config = config or _study_config_from_storage(rec)
    except ConfigError as exc:
        log(f"{rec.name}: not retrained: {exc}")
        return
    seed = int(rec.config.get("seed", config.seed) or 0)
    on = f" on {splits} random splits" if splits > 1 else ""
    log(f"{rec.name}: retraining the best trial {rec.best_trial} (seed {seed}){on} for its test metrics")
    result = retrain_best(config, url, seeds=1, first_seed=seed, out_dir=out / "models" / rec.name,
                          splits=splits, log=lambda m: log("  " + m.strip()))
    if result.trial_number != rec.best_trial:  # the study moved on while we read it
        log(f"{rec.name}: best trial changed during retraining ({rec.best_trial} -> {result.trial_number})")
        rec.best_trial = result.trial_number
    rec.test = result.per_seed[0]
    rec.predictions = result.predictions[0] if result.predictions else None
    rec.target = result.target
    rec.split_tests = [row["metrics"] for row in result.splits]
    rec.split_seeds = [row["split_seed"] for row in result.splits]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"trial": rec.best_trial, "seed": seed, "metrics": rec.test,
                                 "predictions": rec.predictions, "target": rec.target, "splits": splits,
                                 "split_tests": rec.split_tests, "split_seeds": rec.split_seeds}))


# --------------------------------------------------------------------------------------
# the table


def _mean_std(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return math.nan, math.nan
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def _fmt(v: float, digits: int = 4) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def _pm(mean: float, std: float, n: int, digits: int = 4) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{_fmt(mean, digits)} ± {_fmt(std, 2)}" if n > 1 else _fmt(mean, digits)


def _unit_key(records: list[StudyRecord], key: str) -> str:
    """Metrics in the target's units where the objective reports them (loss stays standardised)."""
    if key != "loss" and any(f"{key}_units" in r.test for r in records):
        return f"{key}_units"
    return key


def build_table(records: list[StudyRecord], reference: str = "random") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per group (algorithm): mean/std over its studies (the test metrics over its
    studies and, where they were retrained on several splits, those splits). Returns (rows, facts)."""
    groups: dict[str, list[StudyRecord]] = {}
    for r in records:
        groups.setdefault(r.group, []).append(r)
    with_best = [r for r in records if r.best_value is not None]
    target = None
    if with_best:
        pick = max if with_best[0].direction == "minimize" else min
        target = pick(r.best_value for r in with_best)  # the best loss every study reached
    rows = []
    for g, recs in groups.items():
        reach = [r.first_reach(target) if target is not None else None for r in recs]
        row: dict[str, Any] = {"algorithm": g, "studies": [r.name for r in recs], "n": len(recs)}
        series = {
            "wall_s": [r.wall_s for r in recs],
            "complete": [r.counts["complete"] for r in recs],
            "pruned": [r.counts["pruned"] for r in recs],
            "failed": [r.counts["fail"] for r in recs],
            "epochs": [r.epochs for r in recs],
            "best_val": [r.best_value if r.best_value is not None else math.nan for r in recs],
            "time_to_target_s": [x[0] if x else math.nan for x in reach],
            "epochs_to_target": [x[1] if x else math.nan for x in reach],
        }
        tests = [m for r in recs for m in (r.split_tests or ([r.test] if r.test else []))]  # retrained ones
        for key, _ in TEST_COLUMNS:
            k = _unit_key(records, key)
            series[f"test_{k}"] = [m.get(k, math.nan) for m in tests]
        for k, vals in series.items():
            row[k], row[f"{k}_std"] = _mean_std([float(v) for v in vals])
        row["test_n"] = len(tests)
        row["reached_target"] = sum(1 for x in reach if x)
        rows.append(row)
    ref = next((row for row in rows if row["algorithm"] == reference), None)
    if ref is None and rows:
        ref = max(rows, key=lambda row: row["time_to_target_s"] if math.isfinite(row["time_to_target_s"]) else -1)
    for row in rows:
        row["speedup"] = math.nan
        if ref is not None and row["time_to_target_s"] > 0 and math.isfinite(row["time_to_target_s"]):
            row["speedup"] = ref["time_to_target_s"] / row["time_to_target_s"]
        row["epoch_speedup"] = math.nan
        if ref is not None and row["epochs_to_target"] > 0 and math.isfinite(row["epochs_to_target"]):
            row["epoch_speedup"] = ref["epochs_to_target"] / row["epochs_to_target"]
    split_seeds = max((r.split_seeds for r in records), key=len, default=[])
    facts = {"target": target, "reference": ref["algorithm"] if ref else None,
             "test_keys": [_unit_key(records, k) for k, _ in TEST_COLUMNS],
             "splits": max(1, len(split_seeds)), "split_seeds": split_seeds}
    return rows, facts


def format_table(rows: list[dict[str, Any]], facts: dict[str, Any], title: str) -> str:
    ref = facts["reference"]
    head = ["algorithm", "seeds", "tuning wall time (s)", "trials complete / pruned / failed", "epochs consumed",
            "best val loss"] + [t for _, t in TEST_COLUMNS] + [
            "time to target (s)", "epochs to target", f"speed-up vs {ref} (time / epochs)"]
    lines = [f"## {title}", ""]
    if facts["target"] is not None:
        lines.append(f"Target validation loss (the best loss every study reached): {_fmt(facts['target'], 5)}. "
                     "Means ± standard deviations over seeds; test metrics of each study's best trial "
                     "retrained on train+validation (MAE, MAPE, RMSE, R² in the target's units where the "
                     "objective reports them; the test loss is on the scale of the validation loss).")
        if facts.get("splits", 1) > 1:
            seeds = facts["split_seeds"]
            lines.append("")
            lines.append(f"Test metrics over {facts['splits']} random splits of the data (split seeds {seeds[0]}-{seeds[-1]}): "
                         "each best trial's hyperparameters retrained and tested on every split; means ± standard "
                         "deviations over seeds × splits. The hyperparameters were tuned on the first split's "
                         "validation part; on the other splits some test rows were in its training or validation data.")
        lines.append("")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        n = r["n"]
        cells = [
            r["algorithm"], str(n), _pm(r["wall_s"], r["wall_s_std"], n, 3),
            f"{_fmt(r['complete'], 3)} / {_fmt(r['pruned'], 3)} / {_fmt(r['failed'], 3)}",
            _pm(r["epochs"], r["epochs_std"], n, 4), _pm(r["best_val"], r["best_val_std"], n),
        ]
        cells += [_pm(r[f"test_{k}"], r[f"test_{k}_std"], r.get("test_n", n)) for k in facts["test_keys"]]
        reached = "" if r["reached_target"] == n else f" ({r['reached_target']}/{n} reached)"
        cells += [_pm(r["time_to_target_s"], r["time_to_target_s_std"], n, 3) + reached,
                  _pm(r["epochs_to_target"], r["epochs_to_target_std"], n, 4),
                  f"{_fmt(r['speedup'], 3)} / {_fmt(r['epoch_speedup'], 3)}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys = [k for k in rows[0] if k != "studies"] + ["studies"] if rows else []
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(keys)
        for r in rows:
            w.writerow([";".join(r[k]) if k == "studies" else r[k] for k in keys])


# --------------------------------------------------------------------------------------
# figures


def _step_on_grid(xs: list[float], ys: list[float | None], grid: Any) -> Any:
    import numpy as np

    out = np.full(len(grid), np.nan)
    j, cur = 0, np.nan
    for i, g in enumerate(grid):
        while j < len(xs) and xs[j] <= g:
            if ys[j] is not None:
                cur = ys[j]
            j += 1
        out[i] = cur
    return out


def plot_anytime(path: Path, records: list[StudyRecord], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups: dict[str, list[StudyRecord]] = {}
    for r in records:
        groups.setdefault(r.group, []).append(r)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    positive = all(b is None or b > 0 for r in records for b in r.best)
    for axis, (ax, attr, label) in enumerate(zip(axes, ("t", "e"), ("tuning wall time (s)", "epochs consumed"))):
        for color, (g, recs) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3, groups.items()):
            recs = [r for r in recs if getattr(r, attr)]
            if not recs:
                continue
            end = max(getattr(r, attr)[-1] for r in recs)
            grid = np.linspace(0, end, 300)
            curves = np.vstack([_step_on_grid(getattr(r, attr), r.best, grid) for r in recs])
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # all-NaN columns before a study's first trial
                med = np.nanmedian(curves, axis=0)
                lo, hi = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
            ax.plot(grid, med, color=color, lw=1.8, label=f"{g} (n={len(recs)})", drawstyle="steps-post")
            if len(recs) > 1:
                ax.fill_between(grid, lo, hi, color=color, alpha=0.15, step="post")
        ax.set_xlabel(label)
        ax.set_ylabel("best validation loss so far")
        if positive:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{title}: best-so-far validation loss (median over seeds; band: min-max)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(path: Path, recs: list[StudyRecord], group: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    values = []
    for color, r in zip(colors * 3, recs):
        if r.val_curve:
            ax.plot(range(1, len(r.val_curve) + 1), r.val_curve, color=color, lw=1.5,
                    label=f"{r.name}: validation (trial {r.best_trial})")
            values += r.val_curve
        if r.train_curve:
            ax.plot(range(1, len(r.train_curve) + 1), r.train_curve, color=color, lw=1, ls="--",
                    label=f"{r.name}: training")
            values += r.train_curve
    finite = [v for v in values if math.isfinite(v)]
    if finite and min(finite) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (MSE)")
    ax.set_title(f"{group}: learning curves of each seed's best trial", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------
# report: table + figures for any studies


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def _local_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"optmpp": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("optuna", "scikit-learn", "numpy", "tensorflow", "keras"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def report(
    storage_url: str,
    study_names: list[str],
    out_dir: str | Path,
    *,
    title: str | None = None,
    retrain: bool = True,
    splits: int = 1,
    configs: dict[str, StudyConfig] | None = None,
    extra_config: dict[str, Any] | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Write table.md/csv, anytime.png, parity-/curves-<group>.png, config.json, summary.json.

    With ``splits`` >= 2 each best trial is retrained on that many random splits (the study's
    first) and the table's test metrics are over seeds × splits.
    """
    import optuna

    from optmpp.storage import make_storage, redact_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _check_splits(splits, retrain)
    out = Path(out_dir)
    storage = make_storage(storage_url, heartbeat_interval=None, must_exist=True)
    known = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    missing = [n for n in study_names if n not in known]
    if missing:
        raise ConfigError(f"no study {missing[0]!r} in {redact_url(storage_url)}; studies there: "
                          f"{', '.join(sorted(known)) or 'none'}")
    records = [read_study(optuna.load_study(study_name=n, storage=storage)) for n in study_names]
    directions = {r.direction for r in records}
    if len(directions) > 1:
        raise ConfigError(f"cannot compare studies that minimise and maximise: {', '.join(study_names)}")
    out.mkdir(parents=True, exist_ok=True)  # only once the studies are known to be there
    if retrain:
        for r in records:
            _retrain(r, (configs or {}).get(r.name), storage_url, out, log, splits)
    title = title or (out.name if out.name else "comparison")
    rows, facts = build_table(records)
    files = []
    (out / "table.md").write_text(format_table(rows, facts, title))
    write_table_csv(out / "table.csv", rows)
    files += ["table.md", "table.csv"]
    plot_anytime(out / "anytime.png", records, title)
    files.append("anytime.png")
    groups: dict[str, list[StudyRecord]] = {}
    for r in records:
        groups.setdefault(r.group, []).append(r)
    from optmpp.best import parity_plot

    for g, recs in groups.items():
        if any(r.val_curve for r in recs):
            plot_curves(out / f"curves-{_safe(g)}.png", recs, g)
            files.append(f"curves-{_safe(g)}.png")
        with_pred = [r for r in recs if r.predictions]
        if with_pred:
            r = with_pred[0]
            k = "r2_units" if "r2_units" in r.test else "r2"
            rk = "rmse_units" if "rmse_units" in r.test else "rmse"
            parity_plot(out / f"parity-{_safe(g)}.png", r.predictions[0], r.predictions[1],
                        f"{r.name} (best trial {r.best_trial}): test R² {r.test.get(k, math.nan):.4f}, "
                        f"RMSE {r.test.get(rk, math.nan):.4g}", r.target)
            files.append(f"parity-{_safe(g)}.png")
    config = {
        "storage": redact_url(storage_url),
        "studies": {r.name: {"configuration": r.config, "versions": r.versions} for r in records},
        "report_versions": _local_versions(),
        **(extra_config or {}),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str))
    summary = {"title": title, "target": facts["target"], "reference": facts["reference"], "rows": rows,
               "studies": [{k: v for k, v in r.__dict__.items() if k != "predictions"} for r in records]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    files += ["config.json", "summary.json"]
    return {"out_dir": str(out), "files": files, "rows": rows, "facts": facts, "records": records,
            "table": format_table(rows, facts, title)}


def _check_splits(splits: int, retrain: bool, config: StudyConfig | None = None) -> None:
    """Refuse --splits values that cannot work (for ``config``'s objective, when given), before
    any study runs or retrains."""
    if splits < 1:
        raise ConfigError(f"--splits must be >= 1, got {splits}")
    if splits > 1 and not retrain:
        raise ConfigError("--splits N retrains each best trial on N splits: it cannot go with --no-retrain")
    if splits > 1 and config is not None:
        from optmpp.best import check_splits
        from optmpp.objectives import make_objective

        check_splits(config, make_objective(config.objective.name, config.objective.options, config.path), splits)


# --------------------------------------------------------------------------------------
# compare: run what is missing, then report


def _study_done(config: StudyConfig, budget: Budget, storage: Any) -> tuple[bool, float, int]:
    """(budget reached, tuning seconds so far, finished trials) of a study, from the storage."""
    import optuna

    from optmpp.workers import _counts, epochs_consumed

    try:
        study = optuna.load_study(study_name=config.name, storage=storage)
    except KeyError:
        return False, 0.0, 0
    elapsed = float(study.user_attrs.get(ELAPSED_ATTR, 0.0))
    finished = _counts(study)["finished"]
    if budget.kind == "trials":
        return finished >= budget.amount, elapsed, finished
    if budget.kind == "epochs":
        trials = study.get_trials(deepcopy=False)
        return epochs_consumed(trials) >= budget.amount, elapsed, finished
    return elapsed >= budget.amount, elapsed, finished


def _add_elapsed(config: StudyConfig, storage: Any, seconds: float) -> None:
    import optuna

    try:
        study = optuna.load_study(study_name=config.name, storage=storage)
    except KeyError:
        return
    study.set_user_attr(ELAPSED_ATTR, round(float(study.user_attrs.get(ELAPSED_ATTR, 0.0)) + seconds, 3))


def run_compare(
    config: CompareConfig,
    storage_url: str,
    *,
    workers: int | None = None,
    seeds: int | None = None,
    out_dir: str | Path | None = None,
    retrain: bool = True,
    splits: int | None = None,
    threads: int | None = None,
    log: Log = print,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) every study of the comparison, then write its report."""
    from optmpp.progress import format_duration
    from optmpp.storage import make_storage
    from optmpp.workers import run_study

    storage = make_storage(storage_url, heartbeat_interval=None)  # for reading and the elapsed time

    workers = workers or config.workers
    seeds = seeds or config.seeds
    if splits is None:  # the file's, unless --no-retrain (which then wins)
        splits = config.splits if retrain else 1
    seed_list = list(range(config.first_seed, config.first_seed + seeds))
    out = Path(out_dir) if out_dir else Path("runs") / "compare" / config.name
    plan = [(s, a) for s in seed_list for a in config.algorithms]
    # every study of a comparison has the same objective: one check covers them all
    _check_splits(splits, retrain, config.study_config(config.algorithms[0], seed_list[0]))
    log(f"compare {config.name!r}: {len(config.algorithms)} algorithm(s) x {len(seed_list)} seed(s), "
        f"budget {config.budget.describe()} per study, {workers} worker(s)")
    t_all = time.monotonic()
    errors: list[str] = []  # workers that stopped on an error, per study: `compare` then exits 1
    for i, (seed, algo) in enumerate(plan, 1):
        sc = config.study_config(algo, seed)
        done, elapsed, finished = _study_done(sc, config.budget, storage)
        tag = f"[{i}/{len(plan)} {algo} seed {seed}]"
        if done:
            log(f"{tag} {sc.name}: budget reached earlier, not re-run")
            continue
        kwargs: dict[str, Any] = {}
        if config.budget.kind == "epochs":
            kwargs["epoch_budget"] = int(config.budget.amount)
        elif config.budget.kind == "seconds":
            kwargs["timeout"] = config.budget.amount - elapsed
            kwargs["queue_ahead"] = workers
            kwargs["cut_at_timeout"] = True
        log(f"{tag} {sc.name}: " + (f"resuming ({finished} trials finished earlier)" if finished else "starting")
            + f" ({format_duration(time.monotonic() - t_all)} into the comparison)")
        t0 = time.monotonic()
        try:
            summary = run_study(sc, storage_url, workers=workers, threads=threads, log=log,
                                show_progress=show_progress, progress_label=tag, **kwargs)
        finally:
            _add_elapsed(sc, storage, time.monotonic() - t0)
        best = "-" if summary.best_value is None else f"{summary.best_value:.5g}"
        log(f"{tag} done in {format_duration(time.monotonic() - t0)}: {summary.counts['finished']} finished, "
            f"{summary.counts['fail']} failed, {summary.epochs} epochs, best {best}")
        for error in summary.errors:
            log(f"{tag} warning: {error}")
        errors += [f"{sc.name}: {e}" for e in summary.errors]
    names = [config.study_name(a, s) for s in seed_list for a in config.algorithms]
    configs = {config.study_name(a, s): config.study_config(a, s) for s in seed_list for a in config.algorithms}
    extra = {"comparison": {"file": config.path, "name": config.name, "budget": config.budget.__dict__,
                            "seeds": seed_list, "workers": workers, "algorithms": config.algorithms,
                            "splits": splits,
                            "file_contents": config.raw}}
    result = report(storage_url, names, out, title=config.name, retrain=retrain, splits=splits, configs=configs,
                    extra_config=extra, log=log)
    result["errors"] = errors
    return result
