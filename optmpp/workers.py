"""Create or resume a study, run worker processes against it, stop at the study's budget.

How exactly ``n_trials`` trials get run, across any number of workers on any number of
machines: when a study is prepared (under a cross-process lock, see
:func:`optmpp.storage.study_lock`) its queue is topped up with WAITING trials until
complete + pruned + running + waiting = ``n_trials``. A worker only ever runs a trial it popped
from that queue (an atomic WAITING -> RUNNING update), so no worker creates surplus trials.
A trial that fails (its objective raised, or its worker died and the heartbeat expired) no
longer counts, and the queue is topped up again under the lock; a trial whose worker died is
first re-queued with the same parameters by Optuna's ``RetryFailedTrialCallback``.

Each worker limits its BLAS/OpenMP/TensorFlow threads, records per trial its wall time,
epochs trained and host as user attributes, and stops when the study holds ``n_trials``
finished (complete + pruned) trials, at the timeout, or after too many failures in a row.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import math
import multiprocessing
import os
import platform
import signal
import socket
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optmpp import __version__
from optmpp.algorithms import make_pruner, make_sampler
from optmpp.config import ConfigError, StudyConfig
from optmpp.objectives import make_objective
from optmpp.storage import StorageError, make_storage, read_only_transactions, redact_text, redact_url, study_lock

if TYPE_CHECKING:
    import optuna

__all__ = [
    "StudySummary",
    "WorkerStats",
    "check_resumable",
    "checked_objective",
    "data_change",
    "data_fingerprint",
    "prepare_study",
    "run_study",
    "run_worker",
    "summarize_study",
]

CONFIG_ATTR = "optmpp:config"
VERSIONS_ATTR = "optmpp:versions"
#: the study's data file when it was created: name, sha256, rows (objectives with a ``table``)
DATA_ATTR = "optmpp:data"
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
)

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# study preparation


def _versions() -> dict[str, str]:
    import optuna
    import sklearn

    return {
        "optmpp": __version__,
        "optuna": optuna.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }


def _diff(stored: dict[str, Any], asked: dict[str, Any], prefix: str = "") -> list[str]:
    lines = []
    for key in sorted(set(stored) | set(asked)):
        a, b = stored.get(key, "<unset>"), asked.get(key, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            lines += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"  {prefix}{key}: stored {json.dumps(a)} != asked {json.dumps(b)}")
    return lines


def _storage_for(config: StudyConfig, url: str) -> optuna.storages.RDBStorage:
    r = config.reliability
    return make_storage(
        url,
        heartbeat_interval=r.heartbeat_interval,
        grace_period=r.effective_grace_period,
        max_retry=r.max_retry,
    )


def _counts(study: optuna.Study) -> dict[str, int]:
    """Trials by state (and ``finished`` = complete + pruned): one COUNT query on an RDB."""
    try:
        return _tally(_count_rows(study))
    except Exception:  # noqa: BLE001 - not an RDB storage, or Optuna's tables changed: read them all
        return _tally(collections.Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False)))


def _tally(by_state: dict[str, int]) -> dict[str, int]:
    """Every state's count (0 if absent), and ``finished`` = complete + pruned."""
    from optuna.trial import TrialState

    counts = {s.name.lower(): 0 for s in TrialState}
    counts.update(by_state)
    counts["finished"] = counts["complete"] + counts["pruned"]
    return counts


def _count_rows(study: optuna.Study) -> dict[str, int]:
    """``SELECT state, COUNT(*) ... GROUP BY state`` instead of loading every trial (~ms at 5k)."""
    from optuna.storages import RDBStorage
    from optuna.storages._rdb import models
    from sqlalchemy import func

    storage = study._storage
    storage = getattr(storage, "_backend", storage)  # unwrap a cached storage
    if not isinstance(storage, RDBStorage):
        raise TypeError("not an RDB storage")
    with read_only_transactions(), storage.scoped_session() as session:
        rows = (session.query(models.TrialModel.state, func.count(models.TrialModel.trial_id))
                .filter(models.TrialModel.study_id == study._study_id)
                .group_by(models.TrialModel.state).all())
        # end with COMMIT, not the ROLLBACK of closing the session: on PostgreSQL psycopg drops
        # every prepared statement of the connection at a ROLLBACK (DEALLOCATE ALL)
        session.commit()
    return {state.name.lower(): int(n) for state, n in rows}


def epochs_consumed(trials: list[Any]) -> int:
    """Epochs trained by ``trials``: finished ones as recorded, running ones as reported so far."""
    from optuna.trial import TrialState

    total = 0
    for t in trials:
        if t.state == TrialState.RUNNING:  # (a resumed trial re-reports the epochs it skips)
            total += len(t.intermediate_values) - int(t.user_attrs.get("resumed_from_epoch", 0))
        elif t.state != TrialState.WAITING:
            epochs = int(t.user_attrs.get("epochs", len(t.intermediate_values)))
            total += epochs - int(t.user_attrs.get("resumed_from_epoch", 0))  # a resumed retry
    return total


def _share_trials(study: optuna.Study, trials: list[Any] | None) -> None:
    """Set Optuna's per-trial cache of the study's trials (which samplers read at a trial's first
    ``suggest`` and ``tell`` empties); ``None`` empties it."""
    local = getattr(study, "_thread_local", None)
    if local is not None and hasattr(local, "cached_all_trials"):
        local.cached_all_trials = trials


def counts_and_epochs(study: optuna.Study) -> tuple[dict[str, int], int]:
    """:func:`_counts` and :func:`epochs_consumed`, from one read of the study's trials (a
    worker with an epoch budget needs both before each trial). The trials read are left in
    Optuna's per-trial cache for the sampler of the trial the worker claims next: it would read
    the same a few milliseconds later (one read of the study per trial, not two)."""
    trials = study.get_trials(deepcopy=False)
    _share_trials(study, trials)
    return _tally(collections.Counter(t.state.name.lower() for t in trials)), epochs_consumed(trials)


def top_up_queue(study: optuna.Study, n_trials: int, ahead: int | None = None, schedule: Any = None) -> int:
    """Enqueue WAITING trials until finished + running + waiting = ``n_trials``.

    With ``ahead`` (budgets in epochs or seconds, where ``n_trials`` is only a cap), at most
    ``ahead`` trials are kept waiting. With a ``schedule`` (synchronous Hyperband), it decides
    which trials can run now. Call under :func:`optmpp.storage.study_lock`. Returns the number
    of trials added.
    """
    c = _counts(study)
    if schedule is not None:
        return int(schedule.top_up(study, n_trials, ahead, c))
    need = n_trials - (c["finished"] + c["running"] + c["waiting"])
    if ahead is not None:
        need = min(need, ahead - c["waiting"])
    from optmpp.worker_storage import enqueue_waiting

    need = max(0, need)
    if need > 1 and enqueue_waiting(study._storage, study._study_id, need) is not None:
        return need  # (in one transaction)
    for _ in range(need):
        study.enqueue_trial({})
    return need


def fail_stale(study: optuna.Study) -> None:
    """Fail trials whose heartbeat expired (their worker died); they are re-queued for retry."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)


def prepare_study(
    config: StudyConfig,
    storage_url: str,
    n_trials: int | None = None,
    log: Log = _stderr,
    ahead: int | None = None,
    lookahead: bool = True,
) -> tuple[optuna.Study, Any]:
    """Create or resume the study; refuse a resumed study whose configuration differs.

    Validates the objective (its options and data) before anything is written, and tops up
    the trial queue to ``n_trials`` (at most ``ahead`` waiting ones when given). Returns the
    study and the objective.

    Raises:
        ConfigError: the study file, the objective options or the stored study disagree.
        StorageError: the storage is unreachable.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective, schedule = checked_objective(config, lookahead)
    n_trials = n_trials or config.n_trials
    with study_lock(storage_url, config.name):
        # created under the lock: concurrent first workers would race on the schema
        storage = _storage_for(config, storage_url)
        study = optuna.create_study(
            study_name=config.name,
            storage=storage,
            direction=config.direction,
            load_if_exists=True,
        )
        identity, data = check_resumable(config, storage_url, study, objective)
        study.set_user_attr(CONFIG_ATTR, {**config.to_dict(), **identity})
        if data is not None:
            study.set_user_attr(DATA_ATTR, data)
        study.set_user_attr(VERSIONS_ATTR, _versions())
        fail_stale(study)
        added = top_up_queue(study, n_trials, ahead or (1 if schedule else None), schedule)
    c = _counts(study)
    log(
        f"study {config.name!r} in {redact_url(storage_url)}: {c['finished']} finished, "
        f"{c['running']} running, {c['waiting']} queued ({added} added) of n_trials={n_trials}"
    )
    return study, objective


def check_resumable(
    config: StudyConfig, storage_url: str, study: optuna.Study, objective: Any
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Refuse to resume a stored study (new or not) with another direction, another configuration
    or other data. Returns what to store: the configuration's identity and the data fingerprint.

    Raises:
        ConfigError: naming what differs.
    """
    if study.direction.name.lower() != config.direction:
        raise ConfigError(
            f"{config.path}: direction: the stored study {config.name!r} in "
            f"{redact_url(storage_url)} is {study.direction.name.lower()!r}, "
            f"the study file asks for {config.direction!r}; use another study name"
        )
    attrs = study.user_attrs
    stored = attrs.get(CONFIG_ATTR)
    identity = _identity(config, objective)
    if stored is not None:
        stored = _with_new_option_defaults(stored, objective)
        diff = _diff({k: stored.get(k) for k in identity}, identity)
        if diff:
            raise ConfigError(
                f"{config.path}: the stored study {config.name!r} was created with another "
                "configuration; refusing to resume it with this one (use another study "
                "name, or restore the old settings):\n" + "\n".join(diff)
            )
    data = data_fingerprint(objective)
    changed = data_change(attrs.get(DATA_ATTR), data)
    if changed:
        raise ConfigError(
            f"{config.path}: the stored study {config.name!r} in {redact_url(storage_url)} was scored on "
            f"other data: {changed}. Its trials' values would not compare with new ones: use another "
            "study name, or restore the data file (on every machine that runs workers)"
        )
    return identity, data


#: where synchronous Hyperband keeps its checkpoints when ``[reliability] checkpoint_dir`` is unset
SYNC_CHECKPOINT_DIR = "runs/checkpoints"


def checked_objective(config: StudyConfig, lookahead: bool = True) -> tuple[Any, Any]:
    """The study's objective (its options and data validated), with the sampler, the pruner and
    (synchronous Hyperband) the schedule built as the workers will build them, so that an
    ``[algorithm]`` table the objective cannot carry (a ``min_resource`` above its epochs) is
    refused before a study is created. Returns the objective and the schedule (None if not
    synchronous).

    Raises:
        ConfigError: naming the study file's key, the objective's option or the algorithm's.
    """
    objective = make_objective(config.objective.name, config.objective.options, config.path)
    _check_direction(config, objective)
    max_budget = getattr(objective, "max_budget", None)
    make_sampler(config.algorithm.name, config.algorithm.options, seed=config.seed)
    make_pruner(config.algorithm.name, config.algorithm.options, max_budget)
    return objective, _schedule(config, objective, lookahead)


def _schedule(config: StudyConfig, objective: Any, lookahead: bool = True) -> Any:
    from optmpp.algorithms import make_schedule

    return make_schedule(config.algorithm.name, config.algorithm.options, getattr(objective, "max_budget", None),
                         config.direction, config.reliability.checkpoint_dir or SYNC_CHECKPOINT_DIR, lookahead)


def data_fingerprint(objective: Any) -> dict[str, Any] | None:
    """The objective's data file (name, sha256, rows) when it has a ``table`` with ``path``,
    ``sha256`` and ``y``, as the built-in objectives do; else None (nothing to check)."""
    from optmpp.data import table_fingerprint

    table = getattr(objective, "table", None)
    sha = getattr(table, "sha256", None)
    return table_fingerprint(table) if isinstance(sha, str) and sha else None


def data_change(stored: dict[str, Any] | None, now: dict[str, Any] | None) -> str | None:
    """How the data now differs from the data a study was created on; None when it does not
    (or when either is unknown: a study from before the check, a plug-in objective)."""
    if not stored or not now or stored.get("sha256") == now["sha256"]:
        return None
    return (f"{stored.get('file')} with {stored.get('rows')} rows (sha256 {str(stored.get('sha256'))[:12]}...) "
            f"then, {now['file']} with {now['rows']} rows (sha256 {now['sha256'][:12]}...) now")


def _identity(config: StudyConfig, objective: Any) -> dict[str, Any]:
    """What a resumed study must share with the stored one, with every default resolved."""
    identity = config.identity()
    options = getattr(objective, "options", None)
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        identity["objective"] = {"name": config.objective.name, **dataclasses.asdict(options)}
    return json.loads(json.dumps(identity, default=str))  # tuples -> lists, as stored


def _with_new_option_defaults(stored: dict[str, Any], objective: Any) -> dict[str, Any]:
    """``stored`` with the objective options that it lacks filled in with their defaults.

    A stored configuration lists every option of the optmpp that created the study; an option
    missing from it was added since, with a default that keeps the old behaviour. So a study
    made by an older optmpp resumes when the study file leaves such an option at its default,
    and is refused (as any other change) when it sets another value.
    """
    options = getattr(objective, "options", None)
    old = stored.get("objective")
    if not (dataclasses.is_dataclass(options) and isinstance(old, dict)):
        return stored
    added = {}
    for f in dataclasses.fields(options):
        if f.name in old:
            continue
        if f.default is not dataclasses.MISSING:
            added[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            added[f.name] = f.default_factory()
    if not added:
        return stored
    added = json.loads(json.dumps(added, default=str))  # as _identity normalises them
    return {**stored, "objective": {**old, **added}}


def _check_direction(config: StudyConfig, objective: Any) -> None:
    declared = getattr(objective, "direction", None)
    if declared and declared != config.direction:
        raise ConfigError(
            f"{config.path}: direction: the objective {config.objective.name!r} is to be "
            f"{declared}d, the study file says {config.direction!r}"
        )


# --------------------------------------------------------------------------------------
# one worker


@dataclass
class WorkerStats:
    trials: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    epochs: int = 0
    stop_reason: str = ""
    failed_out: bool = False  # stopped because trials kept failing (max_consecutive_failures)


class _Heartbeat:
    """Records a running trial's heartbeat every ``interval`` seconds in a thread."""

    def __init__(self, storage: Any, trial_id: int, interval: int | None, beat_now: bool = True) -> None:
        self._storage, self._trial_id, self._interval, self._beat_now = storage, trial_id, interval, beat_now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self._interval:
            if self._beat_now:  # (not when the claim recorded the first one)
                self._storage.record_heartbeat(self._trial_id)
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._storage.record_heartbeat(self._trial_id)
            except Exception:  # noqa: BLE001 - a missed beat is retried next interval
                pass

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _budgeted(pruner: Any, cut: threading.Event) -> Any:
    """``pruner`` that also prunes every trial once ``cut`` is set (the budget is spent).

    A subclass of the pruner's own class, so that Optuna's special handling of
    ``HyperbandPruner`` (brackets for BOHB's sampler) still applies.
    """
    import optuna

    inner = pruner if pruner is not None else optuna.pruners.NopPruner()
    cls = type(inner)

    def prune(self: Any, study: Any, trial: Any) -> bool:
        return cut.is_set() or cls.prune(self, study, trial)

    budgeted = object.__new__(type(f"Budgeted{cls.__name__}", (cls,), {"prune": prune}))
    budgeted.__dict__.update(inner.__dict__)
    budgeted._optmpp_cut = cut
    return budgeted


class _BudgetWatch(threading.Thread):
    """Sets ``cut`` once the study's trials consumed ``epoch_budget`` epochs or at ``deadline``."""

    def __init__(self, study: Any, cut: threading.Event, epoch_budget: int | None, deadline: float | None,
                 every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.study, self.cut, self.epoch_budget, self.deadline, self.every_s = study, cut, epoch_budget, deadline, every_s

    def run(self) -> None:
        while not self.cut.wait(self.every_s):
            try:
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    self.cut.set()
                elif self.epoch_budget is not None and epochs_consumed(
                        self.study.get_trials(deepcopy=False)) >= self.epoch_budget:
                    self.cut.set()
            except Exception:  # noqa: BLE001 - a storage hiccup: check again next time
                pass


def _pop_waiting(study: optuna.Study) -> int | None:
    """Claim a WAITING trial (atomic WAITING -> RUNNING); None when the queue is empty."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    if hasattr(storage, "claim_next"):  # a worker's storage: one transaction, the trial is its own
        try:
            return storage.claim_next(study._study_id)
        except Exception:  # noqa: BLE001 - e.g. SQLite's "database is locked": none claimed now
            return None
    waiting = [t._trial_id for t in storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,))]
    for trial_id in waiting:
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return trial_id
        except UpdateFinishedTrialError:
            continue
        except Exception:  # noqa: BLE001 - e.g. SQLite's "database is locked" on a lost race
            continue
    return None


def _cause(exc: BaseException) -> str:
    """' (cause: ...)' naming the root cause when it differs (Optuna wraps 'database is locked')."""
    root, seen = exc, 0
    while (root.__cause__ or root.__context__) is not None and seen < 10:
        root, seen = root.__cause__ or root.__context__, seen + 1
    if root is exc or str(root) == str(exc):
        return ""
    return f" (cause: {type(root).__name__}: {str(root).splitlines()[0] if str(root) else ''})"


def describe_error(exc: BaseException, url: str | None = None) -> str:
    """One line: the error and its root cause."""
    text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return redact_text(text + _cause(exc), url)


def _study_exists(storage: Any, name: str) -> bool:
    try:
        storage.get_study_id_from_name(name)
        return True
    except KeyError:
        return False
    except Exception:  # noqa: BLE001 - cannot tell: assume it does, and retry
        return True


def _thread_vars(n: int) -> dict[str, str]:
    """Environment that limits BLAS/OpenMP/TensorFlow to ``n`` threads (1 inter-op thread)."""
    return {**{var: str(n) for var in THREAD_ENV}, "TF_NUM_INTEROP_THREADS": "1"}


def limit_threads(n: int) -> None:
    """Limit this process's BLAS/OpenMP threads (and TensorFlow's, if imported later)."""
    os.environ.update(_thread_vars(n))
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except Exception:  # noqa: BLE001 - threadpoolctl is optional
        pass


def _run_one(study: optuna.Study, trial_id: int, objective: Any, config: StudyConfig, worker: str,
             cut: threading.Event | None = None) -> tuple[str, float | None, int, str]:
    """Run one claimed trial; returns (state, value, epochs, error)."""
    import optuna
    from optuna.trial import TrialState

    # (another storage: every read asks the storage)
    state_checked = getattr(study._storage, "state_checked", lambda *a, **k: contextlib.nullcontext())
    with state_checked(trial_id, checked=True):  # (just claimed)
        trial = optuna.Trial(study, trial_id)
    value: float | None = None
    state = TrialState.COMPLETE
    error = ""
    t0 = time.perf_counter()
    interrupted: BaseException | None = None
    # a worker's storage (with heartbeats) recorded the first one in the claim's transaction
    beat_now = not (hasattr(study._storage, "claim_next") and study._storage.get_heartbeat_interval())
    with _Heartbeat(study._storage, trial_id, config.reliability.heartbeat_interval, beat_now):
        try:
            trial.set_user_attr("worker", worker)
            raw = objective(trial)
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise TypeError(f"the objective returned {raw!r}, not a number") from None
            if not math.isfinite(value):
                raise FloatingPointError(f"the objective returned {value}")
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except KeyboardInterrupt as exc:
            state, error, interrupted = TrialState.FAIL, "interrupted (SIGINT/SIGTERM)", exc
        except Exception as exc:  # noqa: BLE001 - any objective error fails the trial only
            state = TrialState.FAIL
            error = f"{type(exc).__name__}: {exc}{_cause(exc)}"
            tb = traceback.format_exc(limit=-3)
            with contextlib.suppress(Exception):  # the trial may have been finished from outside
                trial.set_user_attr("traceback", tb[-2000:])
    wall = time.perf_counter() - t0
    epochs = 0
    try:
        with state_checked(trial_id):  # one check of its stored state, for this read and tell's
            frozen = study._storage.get_trial(trial_id)
            if frozen.state.is_finished():  # failed from outside (stale check, an operator): keep that
                if interrupted is not None:
                    raise interrupted
                return "fail", None, len(frozen.intermediate_values), (
                    f"the trial was marked {frozen.state.name} from outside while it ran" + (f" ({error})" if error else ""))
            epochs = frozen.user_attrs.get("epochs")
            if epochs is None:
                epochs = len(frozen.intermediate_values)
                trial.set_user_attr("epochs", epochs)
            trial.set_user_attr("wall_time_s", round(wall, 4))
            if error:
                trial.set_user_attr("error", error[:2000])
            if state == TrialState.PRUNED and cut is not None and cut.is_set():
                trial.set_user_attr("stopped_by_budget", True)
            if state == TrialState.COMPLETE:
                study.tell(trial, value)
            else:
                study.tell(trial, state=state)
    except Exception as exc:  # noqa: BLE001 - e.g. failed from outside as stale
        error = error or f"could not store the result: {describe_error(exc)}"
        state = TrialState.FAIL
    if interrupted is not None:
        raise interrupted
    return state.name.lower(), value, int(epochs), error


def run_worker(
    config: StudyConfig,
    storage_url: str,
    *,
    worker_index: int = 0,
    n_trials: int | None = None,
    timeout: float | None = None,
    threads: int | None = None,
    log: Log = _stderr,
    stop: threading.Event | None = None,
    on_trial: Callable[[optuna.Study], None] | None = None,
    verbose: bool = True,
    epoch_budget: int | None = None,
    queue_ahead: int | None = None,
    parent_pid: int | None = None,
    cut_at_timeout: bool = False,
    ready: Any = None,
) -> WorkerStats:
    """Run trials of the (prepared) study until it holds ``n_trials`` finished trials.

    Stops also at ``timeout`` seconds, when ``stop`` is set, after
    ``reliability.max_consecutive_failures`` failed trials in a row, or, with
    ``epoch_budget``, when the study's trials (running ones included) have consumed that many
    epochs: no new trial starts, the one in flight finishes. With ``queue_ahead`` (or an epoch
    budget), ``n_trials`` is only a cap and trials are queued a few at a time. A worker
    spawned by ``run`` (``parent_pid``) stops when its parent is gone, and any worker stops
    when its study is deleted.

    With an epoch budget (or ``cut_at_timeout`` and a timeout), trials still running when the
    budget is spent are stopped at their next reported epoch and recorded as PRUNED with the
    user attribute ``stopped_by_budget``, so that no study trains much past the budget.

    ``ready`` (an event; ``run`` starts its workers while it prepares the study): the worker
    sets up its objective (for Keras, TensorFlow's import), then waits for it before it opens
    the study.
    """
    timeout = timeout if timeout is not None else config.timeout
    if queue_ahead is None and (epoch_budget is not None or timeout is not None):
        queue_ahead = 1
    if threads:
        limit_threads(threads)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_trials = n_trials or config.n_trials
    objective = make_objective(config.objective.name, config.objective.options, config.path)
    warm_up = getattr(objective, "warm_up", None)  # e.g. import TensorFlow before the first trial
    if callable(warm_up):
        warm_up()
    from optmpp.objectives.base import enable_checkpoints

    schedule = _schedule(config, objective, lookahead=epoch_budget is None)
    if schedule is not None and queue_ahead is None:
        queue_ahead = 1  # synchronous Hyperband queues what can run now, never n_trials up front
    # synchronous Hyperband continues promoted trials from checkpoints (at least at round ends)
    every = config.reliability.checkpoint_every if config.reliability.checkpoint_dir else 1_000_000_000
    enable_checkpoints(schedule.checkpoint_root if schedule is not None else config.reliability.checkpoint_dir, every)
    while ready is not None and not ready.wait(0.5):  # the study is being prepared
        if parent_pid is not None and os.getppid() != parent_pid:
            return WorkerStats(stop_reason="the process that started this worker is gone")
    options = config.algorithm.options
    storage = _storage_for(config, storage_url)
    # Seeded by the study seed, the algorithm, the worker and the trials already stored:
    # reproducible for a fresh study; a resumed study does not re-propose the points of its
    # first run; and two algorithms with the same seed draw independent points (as separate
    # runs in the paper), not the same random start.
    stored = len(storage.get_all_trials(storage.get_study_id_from_name(config.name), deepcopy=False))
    algo = zlib.crc32(config.algorithm.name.encode())
    seed = (config.seed * 1_000_003 + algo + worker_index * 10_007 + stored) % (2**31 - 1)
    pruner = make_pruner(config.algorithm.name, options, getattr(objective, "max_budget", None))
    cut = threading.Event()  # set when the budget is spent: running trials stop at their next epoch
    if epoch_budget is not None or (cut_at_timeout and timeout is not None):
        pruner = _budgeted(pruner, cut)
    from optmpp.worker_storage import WorkerStorage

    study = optuna.load_study(
        study_name=config.name,
        # a trial's params and user attrs written in one go, and epoch reports at most every
        # report_interval_s; with an epoch budget every epoch at once, so that all workers count it
        storage=WorkerStorage(storage, hold_reports_s=0.0 if epoch_budget is not None
                              else config.reliability.report_interval_s),
        sampler=make_sampler(config.algorithm.name, options, seed=seed),
        pruner=pruner,
    )
    worker = f"{socket.gethostname()}:{os.getpid()}"
    stats = WorkerStats()
    start = time.monotonic()
    if pruner is not None and cut is getattr(pruner, "_optmpp_cut", None):
        _BudgetWatch(study, cut, epoch_budget, start + timeout if cut_at_timeout and timeout else None).start()
    streak = 0
    max_streak = config.reliability.max_consecutive_failures
    idle_start = 0.1 if schedule is not None else 0.2
    idle_sleep = idle_start
    while True:
        if stop is not None and stop.is_set():
            stats.stop_reason = "stopped"
            break
        if timeout is not None and time.monotonic() - start >= timeout:
            stats.stop_reason = f"timeout ({timeout:g} s)"
            break
        if parent_pid is not None and os.getppid() != parent_pid:
            stats.stop_reason = "the process that started this worker is gone"
            break
        try:
            _share_trials(study, None)  # (a trial that never reached `tell` left its read there)
            # with an epoch budget, counted from the read of the study the epochs are counted from
            c, used = (_counts(study), 0) if epoch_budget is None else counts_and_epochs(study)
            if c["finished"] >= n_trials:
                stats.stop_reason = f"the study holds {c['finished']} finished trials (n_trials={n_trials})"
                break
            if epoch_budget is not None and used >= epoch_budget:
                stats.stop_reason = f"the study's trials consumed {used} epochs (budget {epoch_budget})"
                break
            trial_id = _pop_waiting(study)
            if trial_id is None:
                with study_lock(storage_url, config.name):
                    fail_stale(study)
                    added = top_up_queue(study, n_trials, queue_ahead, schedule)
                if not added:
                    time.sleep(idle_sleep)  # others' trials are running; one may fail and be re-queued
                    # synchronous Hyperband: the end of another worker's trial may open a round;
                    # at most 1 s otherwise: at a study's end `run` waits for its idle workers
                    idle_sleep = min(0.25 if schedule is not None else 1.0, idle_sleep * 1.5)
                continue
        except StorageError:
            raise
        except KeyError as exc:  # "Record does not exist": the study was deleted under us
            if not _study_exists(storage, config.name):
                stats.stop_reason = f"the study {config.name!r} no longer exists in the storage"
                break
            log(f"[{worker}] storage error, retrying: {describe_error(exc, storage_url)}")
            time.sleep(2.0)
            continue
        except Exception as exc:  # noqa: BLE001 - a storage hiccup: log, back off, go on
            log(f"[{worker}] storage error, retrying: {describe_error(exc, storage_url)}")
            time.sleep(2.0)
            continue
        idle_sleep = idle_start
        try:
            number = study._storage.get_trial_number_from_id(trial_id)
            state, value, epochs, error = _run_one(study, trial_id, objective, config, worker, cut)
        except (KeyboardInterrupt, StorageError):
            raise
        except Exception as exc:  # noqa: BLE001 - lose at most the trial in flight
            log(f"[{worker}] storage error around trial id {trial_id}, going on: {describe_error(exc, storage_url)}")
            time.sleep(1.0)
            continue
        stats.trials += 1
        stats.epochs += epochs
        if on_trial is not None:
            try:
                on_trial(study)
            except Exception:  # noqa: BLE001 - progress display must not stop the worker
                pass
        if state == "complete":
            stats.complete += 1
            streak = 0
            if verbose:
                log(f"[{worker}] trial {number} complete: {value:.6g} ({epochs} epochs)")
        elif state == "pruned":
            stats.pruned += 1
            streak = 0
            if verbose:
                log(f"[{worker}] trial {number} pruned after {epochs} epochs")
        else:
            stats.failed += 1
            streak += 1
            log(f"[{worker}] trial {number} FAILED: {redact_text(error, storage_url)}")
            if max_streak and streak >= max_streak:
                stats.failed_out = True
                stats.stop_reason = (
                    f"{streak} trials failed in a row (reliability.max_consecutive_failures="
                    f"{max_streak}); last error: {redact_text(error, storage_url)}"
                )
                break
    cut.set()  # ends the budget watch
    return stats


# --------------------------------------------------------------------------------------
# many workers


@dataclass
class StudySummary:
    name: str
    direction: str
    n_trials: int
    counts: dict[str, int]
    best_value: float | None
    best_params: dict[str, Any]
    best_number: int | None
    epochs: int
    wall_time_s: float
    stop_reasons: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # workers that stopped on an error: `run` exits 1

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def format(self) -> str:
        c = self.counts
        lines = [
            f"study {self.name}: {c['finished']}/{self.n_trials} finished "
            f"({c['complete']} complete, {c['pruned']} pruned), {c['fail']} failed, "
            f"{c['running']} running, {c['waiting']} queued",
            f"  wall time {self.wall_time_s:.1f} s, epochs consumed {self.epochs}",
        ]
        if self.best_value is not None:
            lines.append(f"  best value {self.best_value:.6g} (trial {self.best_number}, {self.direction})")
            for k, v in self.best_params.items():
                lines.append(f"    {k} = {v:.6g}" if isinstance(v, float) else f"    {k} = {v}")
        else:
            lines.append("  no complete trial yet")
        for reason in self.stop_reasons:
            lines.append(f"  stopped: {reason}")
        return "\n".join(lines)


def summarize_study(study: optuna.Study, n_trials: int, wall_time_s: float, stop_reasons: list[str] | None = None) -> StudySummary:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = None
    if complete:
        best = min(complete, key=lambda t: t.value) if study.direction.name == "MINIMIZE" else max(
            complete, key=lambda t: t.value
        )
    return StudySummary(
        name=study.study_name,
        direction=study.direction.name.lower(),
        n_trials=n_trials,
        counts=_counts(study),
        best_value=None if best is None else best.value,
        best_params={} if best is None else dict(best.params),
        best_number=None if best is None else best.number,
        epochs=epochs_consumed(trials),
        wall_time_s=wall_time_s,
        stop_reasons=list(stop_reasons or []),
    )


def _worker_main(
    config: StudyConfig,
    storage_url: str,
    index: int,
    n_trials: int,
    timeout: float | None,
    threads: int,
    verbose: bool,
    queue: Any,
    epoch_budget: int | None = None,
    queue_ahead: int | None = None,
    cut_at_timeout: bool = False,
    ready: Any = None,
) -> None:
    """Entry point of a spawned worker process."""
    stop = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        stats = run_worker(
            config, storage_url, worker_index=index, n_trials=n_trials, timeout=timeout,
            threads=threads, log=_stderr, stop=stop, verbose=verbose, epoch_budget=epoch_budget,
            queue_ahead=queue_ahead, parent_pid=os.getppid(), cut_at_timeout=cut_at_timeout, ready=ready,
        )
        queue.put((index, "error" if stats.failed_out else "ok", stats.stop_reason))
    except KeyboardInterrupt:
        queue.put((index, "interrupted", "interrupted"))
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        queue.put((index, "error", redact_text(f"{type(exc).__name__}: {exc}", storage_url)))
    # The process ends here without the interpreter's teardown, which takes ~1 s with TensorFlow
    # loaded, while `run` waits for it: the result is flushed to the parent first; the storage's
    # connections are idle (no transaction open) and close with the process.
    queue.close()
    queue.join_thread()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@contextlib.contextmanager
def _thread_env(threads: int) -> Iterator[None]:
    new = _thread_vars(threads)
    old = {v: os.environ.get(v) for v in new}
    os.environ.update(new)
    try:
        yield
    finally:
        for v, val in old.items():
            if val is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = val


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def default_threads(workers: int) -> int:
    return max(1, available_cores() // max(1, workers))


#: ``run`` and ``compare`` start at most this many worker processes per core of the machine
MAX_WORKERS_PER_CORE = 4


def check_workers(workers: int, log: Log = _stderr, where: str = "") -> None:
    """Refuse a worker count that would swamp this machine; note one above its cores.

    Each worker is a process with its own copy of the objective (TensorFlow, the data), so
    500 workers on 2 cores start 500 TensorFlow imports at once and the machine stalls.
    """
    if workers < 1:
        raise ConfigError(f"{where}workers: expected an integer >= 1, got {workers}")
    cores = available_cores()
    if workers > MAX_WORKERS_PER_CORE * cores:
        raise ConfigError(
            f"{where}workers: {workers} worker processes on this machine's {cores} core(s) is more than "
            f"{MAX_WORKERS_PER_CORE} per core ({MAX_WORKERS_PER_CORE * cores}): each is a process with its own "
            "copy of the objective. Use fewer (one per core trains fastest), or run `optmpp worker STUDY "
            "--storage URL` on more machines against one shared storage"
        )
    if workers > cores:
        log(f"note: {workers} workers on {cores} core(s) share the cores, so each trial runs slower; "
            "one worker per core trains fastest")


def run_study(
    config: StudyConfig,
    storage_url: str,
    *,
    workers: int | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    threads: int | None = None,
    log: Log = _stderr,
    verbose_workers: bool = False,
    poll_s: float = 2.0,
    show_progress: bool = False,
    epoch_budget: int | None = None,
    progress_label: str = "",
    queue_ahead: int | None = None,
    cut_at_timeout: bool = False,
) -> StudySummary:
    """Prepare the study and run ``workers`` spawned worker processes until its budget is met.

    The budget is ``n_trials`` finished trials, or with ``epoch_budget`` the epochs consumed by
    all trials (``n_trials`` is then only a cap; trials are queued one at a time), whichever
    comes first, and ``timeout`` seconds for this invocation. With ``queue_ahead`` (implied by
    an epoch budget), ``n_trials`` is only a cap and at most that many trials wait queued.
    """
    workers = workers or config.workers
    check_workers(workers, log, f"{config.path}: " if config.path else "")
    n_trials = n_trials or config.n_trials
    timeout = timeout if timeout is not None else config.timeout
    threads = threads or default_threads(workers)
    t0 = time.monotonic()
    if queue_ahead is None and (epoch_budget is not None or timeout is not None):
        queue_ahead = workers  # n_trials is then a cap: do not queue thousands of trials up front
    # the workers start first: their set-up (imports, data, TensorFlow) overlaps the study's
    # preparation, which they wait for
    ctx = multiprocessing.get_context("spawn")
    queue, ready = ctx.Queue(), ctx.Event()
    with _thread_env(threads):
        procs = [
            ctx.Process(
                target=_worker_main,
                args=(config, storage_url, i, n_trials, timeout, threads, verbose_workers, queue, epoch_budget,
                      queue_ahead, cut_at_timeout, ready),
                name=f"optmpp-worker-{i}",
            )
            for i in range(workers)
        ]
        for p in procs:
            p.start()
    try:
        study, _ = prepare_study(config, storage_url, n_trials, log=log, ahead=queue_ahead, lookahead=epoch_budget is None)
    except BaseException:
        for p in procs:  # still setting up, or waiting: nothing of theirs is in the storage
            p.terminate()
        for p in procs:
            p.join(timeout=30)
        raise
    ready.set()
    log(f"started {workers} worker process(es), {threads} thread(s) each")
    reasons: list[str] = []
    progress = None
    if show_progress:
        from optmpp.progress import Progress

        progress = Progress(n_trials, finished_at_start=_counts(study)["finished"],
                            epoch_budget=epoch_budget, label=progress_label, timeout=timeout)
    try:
        from multiprocessing.connection import wait

        while alive := [p for p in procs if p.is_alive()]:
            wait([p.sentinel for p in alive], timeout=poll_s)  # wakes at once when a worker exits
            try:
                with study_lock(storage_url, config.name):
                    fail_stale(study)
                if progress is not None:
                    progress.update(*snapshot(study))
            except Exception as exc:  # noqa: BLE001 - progress is best effort
                log(f"progress unavailable: {redact_text(str(exc).splitlines()[0], storage_url)}")
        if progress is not None:
            progress.update(*snapshot(study))
            progress.close()
    except KeyboardInterrupt:
        log("interrupted: stopping the workers (their running trials are marked FAIL)")
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=30)
        raise
    for p in procs:
        p.join()
    errors: list[str] = []
    while not queue.empty():
        index, status, reason = queue.get()
        if status != "ok":
            reasons.append(f"worker {index}: {reason}")
            if status == "error":
                errors.append(reasons[-1])
        elif reason and reason not in reasons:
            reasons.append(reason)
    for i, p in enumerate(procs):
        if p.exitcode not in (0, None):
            reasons.append(f"worker {i} exited with code {p.exitcode}")
            errors.append(reasons[-1])
    summary = summarize_study(study, n_trials, time.monotonic() - t0, reasons)
    summary.errors = errors
    if summary.counts["running"] == 0:  # no worker anywhere writes a checkpoint of this study now
        _remove_empty_checkpoint_dirs(config)
    return summary


def _remove_empty_checkpoint_dirs(config: StudyConfig) -> None:
    """Remove the study's checkpoint directories when no checkpoint is left in them (synchronous
    Hyperband discards every checkpoint of a finished study; a trial that may resume keeps its own)."""
    from optmpp.objectives.base import checkpoint_path

    for root in {config.reliability.checkpoint_dir, SYNC_CHECKPOINT_DIR} - {None}:
        with contextlib.suppress(OSError):  # not empty, or not there
            checkpoint_path(root, config.name, 0).parent.rmdir()


def snapshot(study: optuna.Study) -> tuple[dict[str, int], float | None, int]:
    """Counts by state, best value and epochs consumed, read from the storage."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = _counts(study)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = None
    if complete:
        pick = min if study.direction.name == "MINIMIZE" else max
        best = pick(complete, key=lambda t: t.value).value
    return counts, best, epochs_consumed(trials)


def storage_status(storage_url: str, study_name: str | None = None, recent_s: float = 300.0) -> list[dict[str, Any]]:
    """Each study of a storage: trials by state, best value, epochs, workers seen recently, and
    the seconds its trials took (``time_s``: in all, in the training graphs, in tracing them).

    A worker counts as seen when one of its trials is running or finished within ``recent_s``.
    """
    import datetime

    import optuna
    from optuna.trial import TrialState

    storage = make_storage(storage_url, heartbeat_interval=None, must_exist=True)
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    names = [s.study_name for s in summaries]
    if study_name is not None:
        if study_name not in names:
            raise ConfigError(f"no study {study_name!r} in {redact_url(storage_url)}; studies: {', '.join(names) or 'none'}")
        names = [study_name]
    now = datetime.datetime.now()
    out = []
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        counts = _counts(study)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        pick = min if study.direction.name == "MINIMIZE" else max
        best = pick(complete, key=lambda t: t.value) if complete else None
        recent = set()
        for t in trials:
            when = t.datetime_complete or t.datetime_start
            if t.state == TrialState.RUNNING or (when is not None and (now - when).total_seconds() <= recent_s):
                if "worker" in t.user_attrs:
                    recent.add(t.user_attrs["worker"])
        config = study.user_attrs.get(CONFIG_ATTR, {})
        # where the trials' time went: the objective's own account (optmpp's fast trainer sets
        # train_s, its epoch graphs' time, and trace_s, the part spent tracing a new graph)
        timed = [t.user_attrs for t in trials if "wall_time_s" in t.user_attrs]
        time_s = None if not timed else {
            key: round(sum(float(a.get(attr, 0.0)) for a in timed), 3)
            for key, attr in (("trials", "wall_time_s"), ("training", "train_s"), ("tracing", "trace_s"))
        }
        out.append({
            "study": name,
            "direction": study.direction.name.lower(),
            "objective": (config.get("objective") or {}).get("name"),
            "algorithm": (config.get("algorithm") or {}).get("name"),
            "n_trials": config.get("n_trials"),
            "counts": counts,
            "best_value": None if best is None else best.value,
            "best_trial": None if best is None else best.number,
            "epochs": epochs_consumed(trials),
            "workers_recent": sorted(recent),
            "time_s": time_s,
        })
    return out
