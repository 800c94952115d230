"""A worker's storage: Optuna's cached RDB storage, with a trial's small writes batched.

Optuna writes every ``suggest_*`` and every ``set_user_attr`` in its own transaction: a
committed write costs milliseconds (a round trip and, on PostgreSQL, a WAL flush), so sampling
the melt-index DNN's 10-13 parameters cost 35-75 ms per trial before any training. Here those
writes are held in the worker and written together, in one transaction, at the trial's next
write that others must see at once: its first reported epoch (in the same transaction as that
epoch), or its end (``tell``); any read of the trial writes them first. What others see later
than before: the dashboard shows a running trial's parameters from its first epoch on, and the
constant-liar samplers of other workers (``tpe``, ``bohb``, ``bayes``) count it as a liar from
then on, one epoch later than with Optuna's own writes. Its reads of trials run in SQLite's plain (deferred) transactions, which under WAL
neither wait for nor block another worker's writes (writes take the lock at ``BEGIN``).

What it changes for a trial killed before its first epoch: its parameters may not be in the
storage; it is failed and retried like any other (the retry samples what is missing).

Example:
    >>> from optmpp.storage import make_storage
    >>> storage = WorkerStorage(make_storage("sqlite:///runs/optmpp.db"))   # doctest: +SKIP
    >>> study = optuna.load_study(study_name="s", storage=storage)          # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Container, Sequence
from typing import Any

from optuna import distributions
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

from optmpp.storage import read_only_transactions

__all__ = ["WorkerStorage"]


class WorkerStorage(_CachedStorage):
    """:class:`optuna.storages._CachedStorage` that batches a trial's params and user attrs."""

    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        self._pending: dict[int, list[tuple[Any, ...]]] = {}
        self._pending_lock = threading.RLock()
        self._study_ids: dict[str, int] = {}
        # Optuna's private write helpers; without them (another Optuna) writes go straight through
        self._batching = all(
            hasattr(backend, m)
            for m in ("_set_trial_attr_without_commit", "_set_trial_intermediate_value_without_commit",
                      "check_trial_is_updatable")
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

    # -- held writes -----------------------------------------------------------------------
    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float,
        distribution: distributions.BaseDistribution,
    ) -> None:
        if not self._batching:
            return super().set_trial_param(trial_id, param_name, param_value_internal, distribution)
        with self._lock:
            study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
            known = self._studies[study_id].param_distribution.get(param_name)
        if known is not None:  # an incompatible distribution fails here, as it would unbatched
            distributions.check_distribution_compatibility(known, distribution)
        with self._pending_lock:
            self._pending.setdefault(trial_id, []).append(
                ("param", param_name, param_value_internal, distribution, known)
            )

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        if not self._batching:
            return super().set_trial_user_attr(trial_id, key, value)
        with self._pending_lock:
            self._pending.setdefault(trial_id, []).append(("user_attr", key, value))

    def _write_pending(self, session: Any, trial_id: int, pending: list[tuple[Any, ...]]) -> None:
        """Optuna's checks of ``RDBStorage.set_trial_param`` (the trial is running; a name keeps
        its distribution kind), done once for all params, which go in one multi-row INSERT."""
        backend = self._backend
        params = [item for item in pending if item[0] == "param"]
        if params:
            trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
            backend.check_trial_is_updatable(trial_id, trial.state)
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
        for item in pending:
            if item[0] == "user_attr":
                backend._set_trial_attr_without_commit(
                    session, models.TrialUserAttributeModel, trial_id, item[1], item[2]
                )

    def _take(self, trial_id: int | None = None) -> dict[int, list[tuple[Any, ...]]]:
        with self._pending_lock:
            if trial_id is None:
                taken, self._pending = self._pending, {}
                return taken
            pending = self._pending.pop(trial_id, None)
            return {trial_id: pending} if pending else {}

    def _remember(self, trial_id: int, pending: list[tuple[Any, ...]]) -> None:
        with self._lock:
            study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
            known = self._studies[study_id].param_distribution
            for item in pending:
                if item[0] == "param":
                    known.setdefault(item[1], item[3])

    def flush(self, trial_id: int | None = None) -> None:
        """Write the held params and user attrs (of ``trial_id``, or of every trial) now."""
        for tid, pending in self._take(trial_id).items():
            with _create_scoped_session(self._backend.scoped_session, True) as session:
                self._write_pending(session, tid, pending)
            self._remember(tid, pending)

    # -- writes and reads that see the held writes -----------------------------------------
    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        pending = self._take(trial_id).get(trial_id)
        if not pending:
            return super().set_trial_intermediate_value(trial_id, step, intermediate_value)
        with _create_scoped_session(self._backend.scoped_session, True) as session:
            self._write_pending(session, trial_id, pending)
            self._backend._set_trial_intermediate_value_without_commit(session, trial_id, step, intermediate_value)
        self._remember(trial_id, pending)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        self.flush(trial_id)
        return super().set_trial_state_values(trial_id, state, values)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.flush(trial_id)
        super().set_trial_system_attr(trial_id, key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        self.flush(trial_id)
        with read_only_transactions():
            return super().get_trial(trial_id)

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        self.flush()
        with read_only_transactions():
            return super().get_all_trials(study_id, deepcopy=deepcopy, states=states)
