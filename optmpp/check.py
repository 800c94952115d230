"""``optmpp check``: everything ``optmpp run`` checks before its first trial, and nothing run.

The study file, the objective's options and data (rows, split), the algorithm, the worker count,
the storage, and whether a stored study of that name would be resumed or refused. No study, trial
or SQLite file is created; the one thing written can be Optuna's tables in an empty database.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from optmpp.config import StudyConfig

__all__ = ["CheckResult", "check_study"]


@dataclass
class CheckResult:
    """What ``optmpp run`` would do with a study file and a storage."""

    study: str
    study_file: str
    direction: str
    algorithm: dict[str, Any]
    objective: dict[str, Any]
    storage: str
    workers: int
    cores: int
    n_trials: int
    timeout: float | None
    storage_exists: bool = True  # False: a SQLite file that `run` would create
    stored: dict[str, Any] | None = None  # the stored study: {"counts": trials by state}; None if new
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        a, o = self.algorithm, self.objective
        options = ", ".join(f"{k}={v!r}" for k, v in a["options"].items()) or "no options"
        lines = [
            f"study {self.study!r} ({self.study_file}): {self.direction}",
            f"  algorithm {a['name']}: {a['sampler']} + pruner {a['pruner']} ({options})",
            f"  objective {o['name']}: {o.get('data') or 'no data description'}",
        ]
        if o.get("max_budget"):
            folds = f" in each of its {o['cv_folds']} folds" if o.get("cv_folds", 1) > 1 else ""
            lines.append(f"  a full trial trains {o['max_budget']} epochs{folds}")
        stop = f"{self.n_trials} finished trials" + (f" or {self.timeout:g} s" if self.timeout else "")
        lines.append(f"  stops at {stop}; {self.workers} worker(s) on {self.cores} core(s)")
        if not self.storage_exists:
            lines.append(f"storage {self.storage}: no such file yet; `optmpp run` creates it and the study")
        elif self.stored is None:
            lines.append(f"storage {self.storage}: no study {self.study!r} yet; `optmpp run` creates it")
        else:
            c = self.stored["counts"]
            lines.append(
                f"storage {self.storage}: study {self.study!r} holds {c['finished']} finished trial(s) "
                f"({c['complete']} complete, {c['pruned']} pruned), {c['fail']} failed, {c['running']} running, "
                f"{c['waiting']} queued; same configuration and data: `optmpp run` resumes it"
            )
        lines += [f"note: {n}" for n in self.notes]
        lines.append("ok: nothing stands in the way of `optmpp run`")
        return "\n".join(lines)


def check_study(
    config: StudyConfig,
    storage_url: str,
    *,
    workers: int | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
) -> CheckResult:
    """Check ``config`` against ``storage_url`` as ``optmpp run`` would, without running a trial.

    Raises:
        ConfigError: the study file, the objective's options or data, the worker count, or a
            stored study of that name that ``run`` would refuse to resume.
        StorageError: the storage is unreachable.
    """
    import optuna

    from optmpp.algorithms import ALGORITHMS
    from optmpp.storage import make_storage, redact_url, sqlite_path
    from optmpp.workers import _counts, available_cores, check_resumable, check_workers, checked_objective, data_fingerprint

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    notes: list[str] = []
    workers = workers or config.workers
    where = f"{config.path}: " if config.path else ""
    check_workers(workers, lambda m: notes.append(m.removeprefix("note: ")), where)
    objective, _ = checked_objective(config)
    max_budget = getattr(objective, "max_budget", None)
    describe = getattr(objective, "describe", None)
    spec = ALGORITHMS[config.algorithm.name]
    result = CheckResult(
        study=config.name,
        study_file=str(config.path),
        direction=config.direction,
        algorithm={"name": spec.name, "sampler": spec.sampler, "pruner": spec.pruner,
                   "options": dict(config.algorithm.options)},
        objective={"name": config.objective.name, "data": describe() if callable(describe) else None,
                   "data_file": data_fingerprint(objective), "max_budget": max_budget,
                   "cv_folds": int(getattr(objective, "cv_folds", 1))},
        storage=redact_url(storage_url),
        workers=workers,
        cores=available_cores(),
        n_trials=n_trials or config.n_trials,
        timeout=timeout if timeout is not None else config.timeout,
        notes=notes,
    )
    path = sqlite_path(storage_url)
    if path is not None and not path.exists():
        result.storage_exists = False
        return result
    storage = make_storage(storage_url, heartbeat_interval=None)
    names = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if config.name in names:
        study = optuna.load_study(study_name=config.name, storage=storage)
        check_resumable(config, storage_url, study, objective)
        result.stored = {"counts": _counts(study)}
        if result.stored["counts"]["finished"] >= result.n_trials:
            result.notes.append(
                f"the study already holds {result.stored['counts']['finished']} finished trials, n_trials is "
                f"{result.n_trials}: `optmpp run` starts none (raise --n-trials to go on)"
            )
    return result
