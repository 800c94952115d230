"""A worker's storage: Optuna's cached RDB storage, with a trial's small writes batched and the
worker's own running trials read from its memory.

Optuna writes every ``suggest_*`` and every ``set_user_attr`` in its own transaction: a
committed write costs milliseconds (a round trip and, on PostgreSQL, a WAL flush), so sampling
the melt-index DNN's 10-13 parameters cost 35-75 ms per trial before any training. Here those
writes are held in the worker and written together, in one transaction, at the trial's next
write that others must see at once: its first reported epoch (in the same transaction as that
epoch), or its end (in the same transaction as its state). What others see later than before:
the dashboard shows a running trial's parameters from its first epoch on, and the constant-liar
samplers of other workers (``tpe``, ``bohb``, ``bayes``) count it as a liar from then on, one
epoch later than with Optuna's own writes. Its reads of trials run in SQLite's plain (deferred)
transactions, which under WAL neither wait for nor block another worker's writes (writes take
the lock at ``BEGIN``).

A trial this worker runs (claimed from the queue, or created by ``ask``) is read in full once,
or not at all when the worker queued it itself (its cache holds it as queued); from then on the
worker keeps it in memory with its own writes applied, and a read of it asks the storage only
for the trial's row, for its state (one query instead of six): nobody else writes to a running
trial but to end it (a stale-trial check, an operator), and that is what the state shows. A
trial ended from outside is read in full again and its held writes are dropped. Reads inside
:meth:`WorkerStorage.state_checked` ask for the state once per block, or not at all after a
transaction that checked it (the claim; an epoch's report, before the pruner's read), and a
finished trial is not read again. Optuna read the running trial in full at ``Trial()``, twice in
``tell`` and once more after it (and once per epoch for Hyperband's pruner): on PostgreSQL those
reads were 24 of a trial's 66 statements. A claim is one transaction: the queue's listing, the
WAITING -> RUNNING update and the trial's first heartbeat.

With ``hold_reports_s`` (the workers pass ``[reliability] report_interval_s``), an epoch's report
that comes less than that long after the trial's last write is held too, and written with the
next write: the next report after the interval, a pruner's rung (a system attribute), the
trial's end. The first report is written at once. Until then others do not see those epochs,
and a trial ended from outside is noticed at that write (an epoch's write checks the trial is
running).

What it changes for a trial killed before its first epoch: its parameters may not be in the
storage; it is failed and retried like any other (the retry samples what is missing). A trial
killed with held reports loses those epochs' losses from the storage (its checkpoints, when
kept, hold them, and a retry that resumes re-reports them).

Example:
    >>> from optmpp.storage import make_storage
    >>> storage = WorkerStorage(make_storage("sqlite:///runs/optmpp.db"))   # doctest: +SKIP
    >>> study = optuna.load_study(study_name="s", storage=storage)          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import json
import sqlite3
import threading
import time
from collections.abc import Container, Iterator, Sequence
from datetime import datetime
from typing import Any

from optuna import distributions
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState
import sqlalchemy
from sqlalchemy.exc import IntegrityError

from optmpp.storage import read_only_transactions

__all__ = ["WorkerStorage"]


class WorkerStorage(_CachedStorage):
    """:class:`optuna.storages._CachedStorage` that batches a trial's params and user attrs and
    keeps this worker's running trials in memory."""

    def __init__(self, backend: RDBStorage, hold_reports_s: float = 0.0) -> None:
        super().__init__(backend)
        self._hold_reports_s = hold_reports_s
        self._written_at: dict[int, float] = {}  # trial id -> when its epochs were last written
        self._pending: dict[int, list[tuple[Any, ...]]] = {}
        self._pending_lock = threading.RLock()  # guards _pending, _mine and _own
        self._study_ids: dict[str, int] = {}
        self._mine: dict[int, int] = {}  # trial id -> study id: trials this worker runs
        self._own: dict[int, FrozenTrial] = {}  # those of them read once, with this worker's writes
        self._checked: dict[int, bool] = {}  # trial id -> state checked, inside ``state_checked``
        # Optuna's private write helpers; without them (another Optuna) writes go straight through
        self._batching = all(
            hasattr(backend, m)
            for m in ("_set_trial_attr_without_commit", "_set_trial_intermediate_value_without_commit",
                      "_set_trial_value_without_commit", "check_trial_is_updatable")
        )

    def get_study_id_from_name(self, study_name: str) -> int:
        # asked at every suggest under Hyperband (its bracket view of the study); a name's id
        # does not change while the study exists
        if study_name not in self._study_ids:
            self._study_ids[study_name] = super().get_study_id_from_name(study_name)
        return self._study_ids[study_name]

    def delete_study(self, study_id: int) -> None:
        self._study_ids = {k: v for k, v in self._study_ids.items() if v != study_id}
        super().delete_study(study_id)

    # -- the trials this worker runs -------------------------------------------------------
    def claim_next(self, study_id: int) -> int | None:
        """Claim the study's oldest WAITING trial (WAITING -> RUNNING), in one transaction with
        the listing of the queue and, with heartbeats, the trial's first heartbeat; None when the
        queue is empty (or others took every trial of it first). The trial is this worker's from
        then on.

        Optuna's ``set_trial_state_values`` for each candidate, keeping the start time it
        writes: when the queued trial is in this worker's cache (it queued it, or read it
        since), that copy is the trial (Optuna writes a queued trial whole, at
        ``enqueue_trial``, and nothing changes it until it is claimed), and the first read of it
        is not needed."""
        now = self._now()
        try:
            with _create_scoped_session(self._backend.scoped_session) as session:
                waiting = (session.query(models.TrialModel.trial_id)
                           .filter(models.TrialModel.study_id == study_id,
                                   models.TrialModel.state == TrialState.WAITING)
                           .order_by(models.TrialModel.number).all())
                for (trial_id,) in waiting:
                    # locked, then read again: another worker may have claimed it since the listing
                    row = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
                    if row.state == TrialState.WAITING:
                        row.state, row.datetime_start = TrialState.RUNNING, now
                        break
                else:
                    return None
                if self._backend.get_heartbeat_interval():  # its first heartbeat, as Optuna's
                    beat = models.TrialHeartbeatModel.where_trial_id(trial_id, session, True)
                    if beat is None:
                        session.add(models.TrialHeartbeatModel(trial_id=trial_id))
                    else:
                        beat.heartbeat = session.execute(sqlalchemy.func.now()).scalar()
        except IntegrityError:  # as Optuna's
            return None
        with self._lock:
            where = self._trial_id_to_study_id_and_number.get(trial_id)
            cached = self._studies[where[0]].trials.get(where[1]) if where else None
            queued = copy.deepcopy(cached) if cached is not None and cached.state == TrialState.WAITING else None
        with self._pending_lock:
            for tid in [t for t, own in self._own.items() if own.state.is_finished()]:
                del self._own[tid], self._mine[tid]
                self._written_at.pop(tid, None)
            self._mine[trial_id] = study_id
            if queued is not None:
                queued.state, queued.datetime_start = TrialState.RUNNING, now
                self._own[trial_id] = queued
        return trial_id

    def _now(self) -> datetime:
        """Now, as the storage keeps it (MySQL's DATETIME drops the microseconds), so that the
        worker's copy of its trial holds the stored times."""
        now = datetime.now()
        return now.replace(microsecond=0) if self._backend.engine.name == "mysql" else now

    @contextlib.contextmanager
    def state_checked(self, trial_id: int, checked: bool = False) -> Iterator[None]:
        """Inside, reads of this worker's trial ``trial_id`` ask the storage for its state once
        (at the first read), or not at all when ``checked`` (the caller has just checked it in
        a transaction, as :meth:`claim_next` does). For bookkeeping that reads the trial
        several times within milliseconds: Optuna's ``Trial()`` right after the claim; the
        worker's check at a trial's end, then ``tell``'s. The end of a trial checks the stored
        state again, in its own transaction, whatever the reads saw."""
        with self._pending_lock:
            self._checked[trial_id] = checked
        try:
            yield
        finally:
            with self._pending_lock:
                self._checked.pop(trial_id, None)

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        trial_id = super().create_new_trial(study_id, template_trial)
        if template_trial is None or template_trial.state == TrialState.RUNNING:  # ``ask``
            with self._pending_lock:
                self._mine[trial_id] = study_id
        return trial_id

    def _study_of(self, trial_id: int) -> int:
        with self._lock:
            if trial_id in self._trial_id_to_study_id_and_number:
                return self._trial_id_to_study_id_and_number[trial_id][0]
        with self._pending_lock:
            return self._mine[trial_id]

    def _update_own(self, trial_id: int, **changes: Any) -> None:
        """Apply this worker's write to its in-memory copy of the trial (if it keeps one)."""
        with self._pending_lock:
            own = self._own.get(trial_id)
            if own is None:
                return
            for attr, (key, value) in changes.items():  # e.g. _params=(name, value)
                getattr(own, attr)[key] = value

    def _stored_state(self, trial_id: int) -> tuple[TrialState, datetime | None, datetime | None]:
        """The trial's state, start and end as stored (the times as the database keeps them:
        MySQL drops the microseconds)."""
        with read_only_transactions(), _create_scoped_session(self._backend.scoped_session) as session:
            row = models.TrialModel.find_or_raise_by_id(trial_id, session)  # the row only
            return row.state, row.datetime_start, row.datetime_complete

    def get_trial_number_from_id(self, trial_id: int) -> int:
        with self._pending_lock:
            if trial_id in self._own:
                return self._own[trial_id].number
        return super().get_trial_number_from_id(trial_id)

    # -- held writes -----------------------------------------------------------------------
    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float,
        distribution: distributions.BaseDistribution,
    ) -> None:
        if not self._batching:
            return super().set_trial_param(trial_id, param_name, param_value_internal, distribution)
        study_id = self._study_of(trial_id)
        with self._lock:
            known = self._studies[study_id].param_distribution.get(param_name) if study_id in self._studies else None
        if known is not None:  # an incompatible distribution fails here, as it would unbatched
            distributions.check_distribution_compatibility(known, distribution)
        with self._pending_lock:
            self._pending.setdefault(trial_id, []).append(
                ("param", param_name, param_value_internal, distribution, known)
            )
            self._update_own(trial_id, _params=(param_name, distribution.to_external_repr(param_value_internal)),
                             _distributions=(param_name, distribution))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        if not self._batching:
            return super().set_trial_user_attr(trial_id, key, value)
        with self._pending_lock:
            self._pending.setdefault(trial_id, []).append(("user_attr", key, value))
            self._update_own(trial_id, _user_attrs=(key, copy.deepcopy(value)))

    def _write_pending(self, session: Any, trial: Any, pending: list[tuple[Any, ...]]) -> None:
        """Optuna's checks of ``RDBStorage.set_trial_param`` (a name keeps its distribution
        kind), done once for all params, which go in one multi-row INSERT; the user attrs in one
        multi-row upsert. ``trial``: the trial's row, read in ``session`` and checked running."""
        backend = self._backend
        trial_id = trial.trial_id
        params = [item for item in pending if item[0] == "param"]
        if params:
            rows = []
            for _, name, value, dist, known in params:
                if known is None:  # first use of this name by this worker: ask the storage
                    previous = (
                        session.query(models.TrialParamModel).join(models.TrialModel)
                        .filter(models.TrialModel.study_id == trial.study_id)
                        .filter(models.TrialParamModel.param_name == name).first()
                    )
                    if previous is not None:
                        known = distributions.json_to_distribution(previous.distribution_json)
                if known is not None:
                    distributions.check_distribution_compatibility(known, dist)
                rows.append(models.TrialParamModel(
                    trial_id=trial_id, param_name=name, param_value=value,
                    distribution_json=distributions.distribution_to_json(dist),
                ))
            session.add_all(rows)
        steps = [item for item in pending if item[0] == "step"]  # held epoch reports
        if steps:
            rows = []
            for _, step, raw in steps:
                value, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(raw)
                rows.append(models.TrialIntermediateValueModel(
                    trial_id=trial_id, step=step, intermediate_value=value, intermediate_value_type=kind))
            session.add_all(rows)
        attrs = {item[1]: item[2] for item in pending if item[0] == "user_attr"}  # the last write wins
        if not attrs:
            return
        model = models.TrialUserAttributeModel
        values = [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()]
        dialect = backend.engine.name
        if dialect == "postgresql" or (dialect == "sqlite" and sqlite3.sqlite_version_info >= (3, 24, 0)):
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            stmt = insert(model).values(values)
            session.execute(stmt.on_conflict_do_update(
                index_elements=[model.trial_id, model.key], set_={"value_json": stmt.excluded.value_json}))
        elif dialect == "mysql":
            from sqlalchemy.dialects.mysql import insert

            stmt = insert(model).values(values)
            session.execute(stmt.on_duplicate_key_update(value_json=stmt.inserted.value_json))
        else:
            for k, v in attrs.items():
                backend._set_trial_attr_without_commit(session, model, trial_id, k, v)

    def _running_row(self, session: Any, trial_id: int, for_update: bool = False) -> Any:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=for_update)
        self._backend.check_trial_is_updatable(trial_id, trial.state)
        return trial

    def _take(self, trial_id: int | None = None) -> dict[int, list[tuple[Any, ...]]]:
        with self._pending_lock:
            if trial_id is None:
                taken, self._pending = self._pending, {}
                return taken
            pending = self._pending.pop(trial_id, None)
            return {trial_id: pending} if pending else {}

    def _remember(self, trial_id: int, pending: list[tuple[Any, ...]]) -> None:
        study_id = self._study_of(trial_id)
        with self._lock:
            if study_id not in self._studies:
                return
            known = self._studies[study_id].param_distribution
            for item in pending:
                if item[0] == "param":
                    known.setdefault(item[1], item[3])

    def flush(self, trial_id: int | None = None) -> None:
        """Write the held params and user attrs (of ``trial_id``, or of every trial) now."""
        for tid, pending in self._take(trial_id).items():
            with _create_scoped_session(self._backend.scoped_session, True) as session:
                self._write_pending(session, self._running_row(session, tid), pending)
            self._remember(tid, pending)
            if self._hold_reports_s > 0 and any(item[0] == "step" for item in pending):
                with self._pending_lock:
                    self._written_at[tid] = time.monotonic()

    # -- writes and reads that see the held writes -----------------------------------------
    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        if not self._batching:
            return super().set_trial_intermediate_value(trial_id, step, intermediate_value)
        with self._pending_lock:
            own = self._own.get(trial_id)
            new_step = own is not None and step not in own.intermediate_values
            last = self._written_at.get(trial_id)
            if new_step and last is not None and time.monotonic() - last < self._hold_reports_s:
                self._pending.setdefault(trial_id, []).append(("step", step, intermediate_value))
                self._update_own(trial_id, intermediate_values=(step, intermediate_value))
                return
        pending = self._take(trial_id).get(trial_id)
        if not pending and not new_step:
            super().set_trial_intermediate_value(trial_id, step, intermediate_value)
        elif not pending:  # an epoch's report, the common case: one statement
            self._insert_step(trial_id, step, intermediate_value)
        else:
            with _create_scoped_session(self._backend.scoped_session, True) as session:
                trial = self._running_row(session, trial_id)
                if pending:
                    self._write_pending(session, trial, pending)
                if new_step:  # (this worker's copy holds every step stored for its trial)
                    value, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(
                        intermediate_value)
                    session.add(models.TrialIntermediateValueModel(
                        trial_id=trial_id, step=step, intermediate_value=value, intermediate_value_type=kind))
                else:
                    self._backend._set_trial_intermediate_value_without_commit(
                        session, trial_id, step, intermediate_value)
            if pending:
                self._remember(trial_id, pending)
        self._update_own(trial_id, intermediate_values=(step, intermediate_value))
        if self._hold_reports_s > 0:
            with self._pending_lock:
                self._written_at[trial_id] = time.monotonic()

    def _insert_step(self, trial_id: int, step: int, intermediate_value: float) -> None:
        """Store a new step of a running trial in one statement: the insert selects its row only
        while the trial is RUNNING (``INSERT ... SELECT ... WHERE EXISTS``), so a trial ended
        from outside is not written to, without a separate read of the trial's row first (that
        read, through the ORM, was half of an epoch's report: ~1.4 ms of 2.8 in a worker)."""
        table = models.TrialIntermediateValueModel.__table__
        trials = models.TrialModel.__table__.c
        value, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(intermediate_value)
        row = sqlalchemy.select(
            sqlalchemy.literal(trial_id, table.c.trial_id.type), sqlalchemy.literal(step, table.c.step.type),
            sqlalchemy.literal(value, table.c.intermediate_value.type),
            sqlalchemy.literal(kind, table.c.intermediate_value_type.type),
        ).where(sqlalchemy.exists().where(trials.trial_id == trial_id, trials.state == TrialState.RUNNING))
        stmt = sqlalchemy.insert(table).from_select(
            ["trial_id", "step", "intermediate_value", "intermediate_value_type"], row)
        returning = self._backend.engine.dialect.insert_returning  # (psycopg's rowcount here is -1)
        if returning:
            stmt = stmt.returning(table.c.step)
        with _create_scoped_session(self._backend.scoped_session, True) as session:
            result = session.execute(stmt)
            stored = result.first() is not None if returning else result.rowcount == 1
            if not stored:  # not running (or gone): Optuna's error
                self._running_row(session, trial_id)
                raise RuntimeError(f"trial {trial_id}: step {step} not stored")  # pragma: no cover

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        if not (self._batching and state.is_finished()):
            self.flush(trial_id)
            return super().set_trial_state_values(trial_id, state, values)
        # the end of a trial: its held writes, values and state in one transaction (Optuna's
        # ``RDBStorage.set_trial_state_values``, with the held writes)
        pending = self._take(trial_id).get(trial_id)
        now = self._now()
        try:
            with _create_scoped_session(self._backend.scoped_session) as session:
                trial = self._running_row(session, trial_id, for_update=True)
                if pending:
                    self._write_pending(session, trial, pending)
                for objective, v in enumerate(values or []):
                    self._backend._set_trial_value_without_commit(session, trial, objective, v)
                trial.state = state
                trial.datetime_complete = now
        except IntegrityError:  # as Optuna's
            return False
        if pending:
            self._remember(trial_id, pending)
        with self._pending_lock:
            own = self._own.get(trial_id)
            if own is not None:
                own.state, own.datetime_complete = state, now
                own._values = [float(v) for v in values] if values is not None else None
        return True

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.flush(trial_id)
        super().set_trial_system_attr(trial_id, key, value)
        self._update_own(trial_id, _system_attrs=(key, copy.deepcopy(value)))

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        """``get_trial(trial_id).system_attrs`` without copying the whole trial where this
        worker's copy of it answers: Optuna's ``should_prune`` reads them at every epoch (the
        pruners look up the rungs a trial has passed), and a copy of a trial with its losses per
        epoch is most of that read."""
        with self._lock:
            cached = self._get_cached_trial(trial_id)
        if cached is None:
            with self._pending_lock:
                own = self._own.get(trial_id)
                if own is not None and (self._checked.get(trial_id, False) or own.state.is_finished()):
                    return copy.deepcopy(own.system_attrs)
        return self.get_trial(trial_id).system_attrs

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            cached = self._get_cached_trial(trial_id)  # finished, and read as such
        if cached is not None:
            return cached
        with self._pending_lock:
            mine = trial_id in self._mine and self._batching
            own = copy.deepcopy(self._own.get(trial_id))
            checked = self._checked.get(trial_id, False)
        if own is not None and (checked or own.state.is_finished()):  # (finished: never changes again)
            return own
        if own is not None:
            state, start, complete = self._stored_state(trial_id)
            if state == own.state:
                own.datetime_start, own.datetime_complete = start, complete
                self._mark_checked(trial_id)
                return own
            # ended from outside (a stale-trial check, an operator): the storage's trial
            with self._pending_lock:
                self._own.pop(trial_id, None)
                self._pending.pop(trial_id, None)  # can no longer be written
            with read_only_transactions():
                return self._backend.get_trial(trial_id)
        self.flush(trial_id)
        with read_only_transactions():
            trial = super().get_trial(trial_id)
        if mine and trial.state == TrialState.RUNNING:
            with self._pending_lock:
                if trial_id in self._mine:
                    self._own[trial_id] = copy.deepcopy(trial)
            self._mark_checked(trial_id)
        return trial

    def _mark_checked(self, trial_id: int) -> None:
        with self._pending_lock:
            if trial_id in self._checked:
                self._checked[trial_id] = True

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        with self._pending_lock:
            others = [tid for tid in self._pending if tid not in self._own]
        for tid in others:  # held writes of a trial not kept in memory: write them to read them
            self.flush(tid)
        with read_only_transactions():
            trials = super().get_all_trials(study_id, deepcopy=False, states=states)
        with self._pending_lock:
            if self._own:  # this worker's running trials as it wrote them (held writes included)
                trials = [
                    copy.deepcopy(self._own[t._trial_id])
                    if t.state == TrialState.RUNNING and t._trial_id in self._own
                    and self._own[t._trial_id].state == TrialState.RUNNING else t
                    for t in trials
                ]
        return copy.deepcopy(trials) if deepcopy else trials


def enqueue_waiting(storage: Any, study_id: int, n: int) -> list[int] | None:
    """Queue ``n`` trials as ``n`` calls of ``study.enqueue_trial({})`` would (WAITING, system
    attribute ``fixed_params = {}``, numbered in order), in one transaction of a few statements
    instead of ``n`` transactions of six (on PostgreSQL, 300 trials took 1.2 s one by one).
    The study's row is locked while the trials are numbered, as Optuna's own trial creation
    does. Returns the new trials' ids, or None when ``storage`` is not an RDB storage: the
    caller then queues them one by one."""
    from optuna.storages._cached_storage import _StudyInfo
    from optuna.trial import create_trial

    backend = getattr(storage, "_backend", storage)
    if not isinstance(backend, RDBStorage):
        return None
    if n <= 0:
        return []
    with _create_scoped_session(backend.scoped_session) as session:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        count = session.query(sqlalchemy.func.count(models.TrialModel.trial_id)).filter(
            models.TrialModel.study_id == study_id).scalar()
        rows = [models.TrialModel(study_id=study_id, number=count + i, state=TrialState.WAITING) for i in range(n)]
        session.add_all(rows)
        session.flush()
        for i, row in enumerate(sorted(rows, key=lambda r: r.trial_id)):  # numbers follow the ids
            row.number = count + i
        session.add_all([models.TrialSystemAttributeModel(trial_id=row.trial_id, key="fixed_params", value_json="{}")
                         for row in rows])
        created = [(row.trial_id, row.number) for row in rows]
    if isinstance(storage, _CachedStorage):  # as its create_new_trial: the queued trials are known
        trials = []
        for trial_id, number in created:
            trial = create_trial(state=TrialState.WAITING, system_attrs={"fixed_params": {}})
            trial.number, trial._trial_id = number, trial_id
            trials.append(trial)
        with storage._lock:
            study = storage._studies.setdefault(study_id, _StudyInfo())
            storage._add_trials_to_cache(study_id, trials)
            study.unfinished_trial_ids.update(trial_id for trial_id, _ in created)
    return [trial_id for trial_id, _ in created]
