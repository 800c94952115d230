"""Study files (TOML) -> validated, frozen dataclasses.

A study file names the objective, the algorithm and the budget of one study::

    name = "hdpe-mi-mlp-hyperband"   # the study's name in the storage (default: file stem)
    direction = "minimize"
    n_trials = 40                    # finished (complete + pruned) trials, all workers together
    timeout = 600                    # optional, seconds per `run`/`worker` invocation
    seed = 0
    workers = 2
    # storage = "sqlite:///runs/optmpp.db"

    [algorithm]                      # or simply: algorithm = "hyperband"
    name = "hyperband"
    reduction_factor = 3

    [objective]                      # or simply: objective = "hdpe-mi-mlp"
    name = "hdpe-mi-mlp"
    max_epochs = 27

    [reliability]
    heartbeat_interval = 10
    max_retry = 2

Every error raised here is a :class:`ConfigError` whose message names the file, the key and
what was expected. This module imports neither Optuna nor TensorFlow.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optmpp._tables import ConfigError, build_dataclass, coerce
from optmpp.algorithms import ALGORITHMS

__all__ = [
    "AlgorithmConfig",
    "ConfigError",
    "ObjectiveConfig",
    "ReliabilityConfig",
    "StudyConfig",
    "build_dataclass",
    "load_study_config",
    "parse_study_config",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class AlgorithmConfig:
    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectiveConfig:
    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReliabilityConfig:
    """Heartbeat and failure handling of the workers.

    Attributes:
        heartbeat_interval: seconds between a running trial's heartbeats (RDB storages).
        grace_period: seconds without a heartbeat after which a running trial is failed;
            default twice the interval.
        max_retry: how many times a trial whose worker died is re-run with the same
            parameters.
        max_consecutive_failures: a worker stops after this many failed trials in a row
            instead of burning the budget (0 = never stop).
        checkpoint_dir: when set, objectives that support it (``hdpe-mi-dnn``, ``tg-cnn``, and
            plug-ins using :func:`optmpp.objectives.base.resume`) save each running
            trial's training state there every ``checkpoint_every`` epochs, so that a trial
            whose worker died resumes from its last saved epoch when retried. Workers on
            several machines need it on a shared file system.
        checkpoint_every: epochs between checkpoints.
        report_interval_s: a worker writes a running trial's epoch reports at most this often:
            those in between are held in the worker and written with the next write (the next
            report after the interval, a pruner's rung, the trial's end). 0 writes every epoch
            at once. Holding saves a transaction per epoch (~2.5 ms on PostgreSQL) where epochs
            are short; others see the losses up to this much later, and a trial ended from
            outside is noticed as late. Studies with an epoch budget write every epoch at once,
            so that every worker counts them.
    """

    heartbeat_interval: int = 10
    grace_period: int | None = None
    max_retry: int = 2
    max_consecutive_failures: int = 5
    checkpoint_dir: str | None = None
    checkpoint_every: int = 1
    report_interval_s: float = 0.5

    @property
    def effective_grace_period(self) -> int:
        return self.grace_period if self.grace_period is not None else 2 * self.heartbeat_interval


@dataclass(frozen=True)
class StudyConfig:
    """One study, as read from a study file."""

    name: str
    objective: ObjectiveConfig
    algorithm: AlgorithmConfig
    direction: str = "minimize"
    n_trials: int = 20
    timeout: float | None = None
    seed: int = 0
    workers: int = 1
    storage: str | None = None
    reliability: ReliabilityConfig = field(default_factory=ReliabilityConfig)
    path: str = "<memory>"

    def identity(self) -> dict[str, Any]:
        """What a resumed study must share with the stored one (budgets may change)."""
        return {
            "direction": self.direction,
            "objective": {"name": self.objective.name, **self.objective.options},
            "algorithm": {"name": self.algorithm.name, **self.algorithm.options},
        }

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration, without the storage URL (it may hold a password)."""
        return {
            "name": self.name,
            **self.identity(),
            "n_trials": self.n_trials,
            "timeout": self.timeout,
            "seed": self.seed,
            "workers": self.workers,
            "reliability": dataclasses.asdict(self.reliability),
        }

    def replace(self, **changes: Any) -> StudyConfig:
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------------------
# study files


def _split_named_table(value: Any, key: str, where: str) -> tuple[str, dict[str, Any]]:
    """``key = "name"`` or ``[key] name = "name" ...`` -> (name, options)."""
    if isinstance(value, str):
        return value, {}
    if isinstance(value, dict):
        options = dict(value)
        name = options.pop("name", None)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: {key}.name: expected a non-empty string, got {name!r}")
        return name, options
    raise ConfigError(f"{where}: {key}: expected a name (string) or a table with a 'name' key, got {value!r}")


_TOP_LEVEL = {
    "name": str,
    "direction": typing.Literal["minimize", "maximize"],
    "n_trials": int,
    "timeout": float | None,
    "seed": int,
    "workers": int,
    "storage": str,
}
_TABLES = {"objective", "algorithm", "reliability"}


def parse_study_config(data: Any, path: str | Path = "<memory>") -> StudyConfig:
    """Validate the parsed TOML ``data`` of the study file ``path``."""
    where = str(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a TOML table at the top level")
    allowed = sorted(set(_TOP_LEVEL) | _TABLES)
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(allowed)}")
    for required in ("objective", "algorithm"):
        if required not in data:
            raise ConfigError(f"{where}: missing key {required!r}")

    kwargs: dict[str, Any] = {}
    for key, tp in _TOP_LEVEL.items():
        if key in data:
            kwargs[key] = coerce(data[key], tp, f"{where}: {key}")
    name = kwargs.pop("name", None) or (Path(where).stem if where != "<memory>" else "study")
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"{where}: name: {name!r} is not a valid study name "
            "(letters, digits, '.', '_', '-'; at most 128 characters)"
        )
    for key in ("n_trials", "workers"):
        if key in kwargs and kwargs[key] < 1:
            raise ConfigError(f"{where}: {key}: expected an integer >= 1, got {kwargs[key]}")
    if kwargs.get("timeout") is not None and kwargs["timeout"] <= 0:
        raise ConfigError(f"{where}: timeout: expected a number of seconds > 0, got {kwargs['timeout']}")

    algo_name, algo_options = _split_named_table(data["algorithm"], "algorithm", where)
    spec = ALGORITHMS.get(algo_name)
    if spec is None:
        raise ConfigError(
            f"{where}: algorithm.name: unknown algorithm {algo_name!r}; "
            f"allowed: {', '.join(ALGORITHMS)}"
        )
    algo_options = spec.validate_options(algo_options, f"{where}: algorithm")

    obj_name, obj_options = _split_named_table(data["objective"], "objective", where)
    from optmpp.objectives import check_objective_name  # light: no objective is imported

    problem = check_objective_name(obj_name)
    if problem:
        raise ConfigError(f"{where}: objective.name: {problem}")

    reliability = build_dataclass(
        ReliabilityConfig, data.get("reliability", {}), f"{where}: reliability"
    )
    if reliability.heartbeat_interval < 1:
        raise ConfigError(f"{where}: reliability.heartbeat_interval: expected an integer >= 1")
    if reliability.grace_period is not None and reliability.grace_period <= reliability.heartbeat_interval:
        raise ConfigError(
            f"{where}: reliability.grace_period: must exceed heartbeat_interval "
            f"({reliability.heartbeat_interval}), got {reliability.grace_period}"
        )
    if reliability.checkpoint_every < 1:
        raise ConfigError(f"{where}: reliability.checkpoint_every: expected an integer >= 1")
    if not reliability.report_interval_s >= 0:  # (NaN fails too)
        raise ConfigError(f"{where}: reliability.report_interval_s: expected a number of seconds >= 0, "
                          f"got {reliability.report_interval_s}")
    if reliability.max_retry < 0 or reliability.max_consecutive_failures < 0:
        raise ConfigError(f"{where}: reliability: max_retry and max_consecutive_failures must be >= 0")

    return StudyConfig(
        name=name,
        objective=ObjectiveConfig(obj_name, obj_options),
        algorithm=AlgorithmConfig(algo_name, algo_options),
        reliability=reliability,
        path=where,
        **kwargs,
    )


def read_toml(path: str | Path, what: str = "study file") -> Any:
    """The parsed TOML file at ``path``; every problem is a :class:`ConfigError` naming it."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such {what}") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and validate the study file at ``path``."""
    return parse_study_config(read_toml(path), path)
