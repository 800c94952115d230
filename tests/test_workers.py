from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from optmpp.config import ConfigError, parse_study_config
from optmpp.storage import make_storage
from optmpp.workers import prepare_study, run_study, run_worker

optuna.logging.set_verbosity(optuna.logging.WARNING)


def toy_config(name: str = "toy", algorithm: str | dict = "hyperband", n_trials: int = 30, **objective) -> object:
    return parse_study_config(
        {
            "name": name,
            "n_trials": n_trials,
            "algorithm": algorithm,
            "objective": {"name": "toy_objectives:make", **objective},
            "reliability": {"heartbeat_interval": 2, "grace_period": 6},
        },
        "toy.toml",
    )


def load(url: str, name: str = "toy") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=make_storage(url, heartbeat_interval=None))


def check_invariants(study: optuna.Study, n: int, max_epochs: int) -> None:
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == n
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    for t in trials:
        if t.state == TrialState.COMPLETE:
            assert t.value is not None
            assert sorted(t.intermediate_values) == list(range(1, max_epochs + 1))
            assert t.user_attrs["epochs"] == max_epochs
        if t.state == TrialState.PRUNED:
            steps = sorted(t.intermediate_values)
            assert steps == list(range(1, len(steps) + 1))
            assert t.user_attrs["epochs"] == len(steps)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            assert t.user_attrs["wall_time_s"] >= 0
            assert ":" in t.user_attrs["worker"]


@pytest.mark.slow
def test_three_workers_share_one_study(storage_url: str) -> None:
    cfg = toy_config(max_epochs=5, sleep=0.02)
    summary = run_study(cfg, storage_url, workers=3, n_trials=30, log=lambda m: None, poll_s=0.5)
    study = load(storage_url)
    check_invariants(study, 30, 5)
    trials = study.get_trials()
    assert len(trials) == 30  # no surplus trial was created
    assert len({t.user_attrs["worker"] for t in trials}) >= 2  # the work was shared
    assert summary.counts["finished"] == 30 and summary.counts["fail"] == 0
    assert summary.epochs == sum(t.user_attrs["epochs"] for t in trials)
    assert study.user_attrs["optmpp:config"]["algorithm"]["name"] == "hyperband"


def test_resume_continues_to_the_new_budget(sqlite_url: str) -> None:
    cfg = toy_config(algorithm="tpe", n_trials=8, max_epochs=2)
    prepare_study(cfg, sqlite_url, log=lambda m: None)
    stats = run_worker(cfg, sqlite_url, log=lambda m: None)
    assert stats.complete == 8
    prepare_study(cfg, sqlite_url, n_trials=12, log=lambda m: None)
    stats = run_worker(cfg, sqlite_url, n_trials=12, log=lambda m: None)
    assert stats.complete == 4
    study = load(sqlite_url)
    assert len(study.trials) == 12
    # the resumed worker did not replay the first run's random points
    xs = [t.params["x"] for t in study.trials]
    assert len(set(xs)) == 12


def test_resume_with_another_configuration_is_refused(sqlite_url: str) -> None:
    prepare_study(toy_config(algorithm="random", n_trials=2), sqlite_url, log=lambda m: None)
    with pytest.raises(ConfigError, match=r"refusing to resume(.|\n)*algorithm.name: stored \"random\" != asked \"tpe\""):
        prepare_study(toy_config(algorithm="tpe", n_trials=2), sqlite_url, log=lambda m: None)
    with pytest.raises(ConfigError, match=r"objective.max_epochs: stored 9 != asked 3"):
        prepare_study(toy_config(algorithm="random", n_trials=2, max_epochs=3), sqlite_url, log=lambda m: None)
    # a bigger budget is fine
    prepare_study(toy_config(algorithm="random", n_trials=5), sqlite_url, log=lambda m: None)


def test_a_study_made_before_an_option_existed_resumes_at_its_default(sqlite_url: str) -> None:
    """An older optmpp stored no value for an option added since (its default keeps the old
    behaviour): the study resumes with the default, and another value is refused as a change."""
    prepare_study(toy_config(algorithm="random", n_trials=2), sqlite_url, log=lambda m: None)
    study = load(sqlite_url)
    stored = study.user_attrs["optmpp:config"]
    assert stored["objective"]["nan_above"] is None and stored["objective"]["sleep"] == 0.0
    for key in ("nan_above", "sleep"):  # as an optmpp without these options stored it
        del stored["objective"][key]
    study.set_user_attr("optmpp:config", stored)
    prepare_study(toy_config(algorithm="random", n_trials=3), sqlite_url, log=lambda m: None)
    assert load(sqlite_url).user_attrs["optmpp:config"]["objective"]["nan_above"] is None  # now stored
    study.set_user_attr("optmpp:config", stored)
    with pytest.raises(ConfigError, match=r"refusing to resume(.|\n)*objective.sleep: stored 0.0 != asked 0.5"):
        prepare_study(toy_config(algorithm="random", n_trials=3, sleep=0.5), sqlite_url, log=lambda m: None)
    # what the stored study does hold still has to match
    with pytest.raises(ConfigError, match=r"objective.max_epochs: stored 9 != asked 3"):
        prepare_study(toy_config(algorithm="random", n_trials=3, max_epochs=3), sqlite_url, log=lambda m: None)


def test_stored_direction_must_match(sqlite_url: str) -> None:
    optuna.create_study(study_name="toy", storage=sqlite_url, direction="maximize")
    with pytest.raises(ConfigError, match="stored study 'toy' .* is 'maximize'"):
        prepare_study(toy_config(), sqlite_url, log=lambda m: None)


def test_run_starts_its_workers_while_it_prepares_and_stops_them_if_that_fails(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run` starts the worker processes before it prepares the study (they set up, then wait);
    when the preparation fails they are stopped, and nothing was written by them."""
    import multiprocessing

    from optmpp import workers

    alive_at_prepare = []

    def spy(*args: object, **kwargs: object) -> object:
        alive_at_prepare.append(len(multiprocessing.active_children()))
        return prepare_study(*args, **kwargs)

    monkeypatch.setattr(workers, "prepare_study", spy)
    optuna.create_study(study_name="toy", storage=sqlite_url, direction="maximize")
    with pytest.raises(ConfigError, match="stored study 'toy' .* is 'maximize'"):
        run_study(toy_config(), sqlite_url, workers=2, log=lambda m: None, poll_s=0.2)
    assert alive_at_prepare == [2] and multiprocessing.active_children() == []
    assert load(sqlite_url).trials == []


def test_failing_trials_are_recorded_and_a_streak_stops_the_worker(sqlite_url: str) -> None:
    cfg = toy_config(algorithm="random", n_trials=10, fail_above=-10.0)  # every trial fails
    prepare_study(cfg, sqlite_url, log=lambda m: None)
    stats = run_worker(cfg, sqlite_url, log=lambda m: None)
    assert stats.failed == 5 and "5 trials failed in a row" in stats.stop_reason
    study = load(sqlite_url)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 5
    assert all("too large for this toy" in t.user_attrs["error"] for t in failed)


def test_failed_trials_are_replaced_so_the_budget_is_met(sqlite_url: str) -> None:
    cfg = toy_config(algorithm="random", n_trials=12, fail_above=1.5, max_epochs=2)
    prepare_study(cfg, sqlite_url, log=lambda m: None)
    run_worker(cfg, sqlite_url, log=lambda m: None)
    study = load(sqlite_url)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 12
    assert states.count(TrialState.FAIL) >= 1  # x > 1.5 happens in ~25% of trials


@pytest.mark.slow
def test_a_killed_workers_trial_is_failed_and_retried_with_the_same_parameters(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import time

    from conftest import ROOT, cli_env, optmpp_cmd

    url = f"sqlite:///{tmp_path}/k.db"
    study_file = tmp_path / "k.toml"
    study_file.write_text(
        'name = "toy"\nn_trials = 3\nalgorithm = "random"\n'
        '[objective]\nname = "toy_objectives:make"\nmax_epochs = 6\nsleep = 0.5\n'
        '[reliability]\nheartbeat_interval = 1\ngrace_period = 3\nmax_retry = 1\n'
    )
    victim = subprocess.Popen([*optmpp_cmd(), "worker", str(study_file), "--storage", url, "-q"], env=cli_env(), cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            running = [t for t in load(url).trials if t.state == TrialState.RUNNING and t.intermediate_values]
        except Exception:  # noqa: BLE001 - the study may not exist yet
            running = []
        if running:
            break
    assert running, "no trial started"
    killed = running[0]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    rescuer = subprocess.run([*optmpp_cmd(), "worker", str(study_file), "--storage", url, "--json"],
                             capture_output=True, text=True, env=cli_env(), cwd=ROOT, timeout=120)
    assert rescuer.returncode == 0, rescuer.stderr
    study = load(url)
    by_number = {t.number: t for t in study.trials}
    assert by_number[killed.number].state == TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert retries[0].state == TrialState.COMPLETE
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 3 and not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert time.monotonic() - killed_at < 60


@pytest.mark.slow
def test_four_workers_hyperband_100_trials_exactly(storage_url: str) -> None:
    """Parallel invariants with fast trials (maximum contention on the storage)."""
    cfg = toy_config(name="par", n_trials=100, max_epochs=9)
    summary = run_study(cfg, storage_url, workers=4, log=lambda m: None, poll_s=0.5)
    study = load(storage_url, "par")
    check_invariants(study, 100, 9)
    assert len(study.trials) == 100 and summary.counts["fail"] == 0
    assert summary.stop_reasons == ["the study holds 100 finished trials (n_trials=100)"]


def test_a_trials_params_and_attributes_are_written_in_one_transaction(storage_url: str) -> None:
    """The worker's storage holds a trial's suggests and user attributes and writes them with its
    first reported epoch, in one transaction; other connections see them from then on. A name
    whose stored distribution differs fails at the suggest when this worker knows it, else at
    the write (README, "Storage")."""
    from sqlalchemy import event

    from optmpp.worker_storage import WorkerStorage
    from optmpp.workers import _pop_waiting

    rdb = make_storage(storage_url, heartbeat_interval=None)
    optuna.create_study(study_name="batched", storage=rdb)
    study = optuna.load_study(study_name="batched", storage=WorkerStorage(rdb),
                              sampler=optuna.samplers.RandomSampler(seed=0))
    other = make_storage(storage_url, heartbeat_interval=None)  # another process's view
    commits = []
    event.listen(rdb.engine, "commit", lambda conn: commits.append(1))

    def trial_with_ten_params() -> optuna.Trial:
        study.enqueue_trial({})
        trial = optuna.Trial(study, _pop_waiting(study))
        trial.set_user_attr("worker", "w1")
        for i in range(5):
            trial.suggest_int(f"units_{i}", 32, 512, step=32)
            trial.suggest_float(f"dropout_{i}", 0.05, 0.5, step=0.05)
        return trial

    trial = trial_with_ten_params()
    before = len(commits)
    assert other.get_trial(trial._trial_id).params == {}  # held in the worker
    trial.report(0.25, 1)
    assert len(commits) == before + 1  # ten params, one attribute and the epoch: one commit
    stored = other.get_trial(trial._trial_id)
    assert stored.params == trial.params and len(stored.params) == 10
    assert stored.user_attrs == {"worker": "w1"} and stored.intermediate_values == {1: 0.25}
    trial.set_user_attr("epochs", 1)
    study.tell(trial, 0.25)
    stored = other.get_trial(trial._trial_id)
    assert stored.state == TrialState.COMPLETE and stored.user_attrs["epochs"] == 1

    # a trial that ends before its first epoch keeps its params; a read sees held writes
    trial = trial_with_ten_params()
    assert study._storage.get_trial(trial._trial_id).params == trial.params
    study.tell(trial, state=TrialState.FAIL)
    assert other.get_trial(trial._trial_id).params == trial.params

    # an incompatible distribution still fails at the suggest, not at a later write
    study.enqueue_trial({})
    trial = optuna.Trial(study, _pop_waiting(study))
    with pytest.raises(ValueError, match="different distribution"):
        trial.suggest_categorical("units_0", ["a", "b"])

    # ... unless only the storage knows the name (another worker stored it): then at the write
    fresh = optuna.load_study(study_name="batched", storage=WorkerStorage(rdb),
                              sampler=optuna.samplers.RandomSampler(seed=1))
    fresh.enqueue_trial({})
    trial = optuna.Trial(fresh, _pop_waiting(fresh))
    trial.suggest_categorical("units_0", ["a", "b"])
    with pytest.raises(ValueError, match="different distribution"):
        trial.report(0.5, 1)


def test_a_budgeted_worker_reads_the_study_once_per_trial(sqlite_url: str) -> None:
    """A worker with an epoch budget counts the trials and the epochs from one read of the
    study, which the sampler of the trial it claims next reuses (TPE would read the same again)."""
    from optmpp.algorithms import make_sampler
    from optmpp.worker_storage import WorkerStorage
    from optmpp.workers import _pop_waiting, counts_and_epochs

    rdb = make_storage(sqlite_url, heartbeat_interval=None)
    optuna.create_study(study_name="once", storage=rdb)
    storage = WorkerStorage(rdb)
    study = optuna.load_study(study_name="once", storage=storage, sampler=make_sampler("tpe", {}, seed=0))
    for i in range(12):  # past TPE's random start-up
        t = study.ask()
        t.suggest_int("units", 32, 512)
        t.report(float(i), 1)
        study.tell(t, float(i))
    reads = []
    backend_reads = storage._backend._get_trials
    storage._backend._get_trials = lambda *a, **k: reads.append(1) or backend_reads(*a, **k)
    study.enqueue_trial({})
    counts, epochs = counts_and_epochs(study)
    assert epochs == 12 and len(reads) == 1
    assert (counts["complete"], counts["waiting"], counts["finished"], counts["running"]) == (12, 1, 12, 0)
    trial = optuna.Trial(study, _pop_waiting(study))
    trial.suggest_int("units", 32, 512)
    trial.suggest_float("dropout", 0.05, 0.5)
    assert len(reads) == 1  # the sampler used the worker's read
    study.tell(trial, 0.5)
    study.enqueue_trial({})
    trial = optuna.Trial(study, _pop_waiting(study))  # no read by the worker first: the sampler reads
    trial.suggest_int("units", 32, 512)
    trial.suggest_float("dropout", 0.05, 0.5)
    assert len(reads) == 2


def test_a_worker_reads_its_own_running_trial_from_memory(storage_url: str) -> None:
    """A trial the worker claimed is read in full once; later reads ask the storage for its
    state only (once per ``state_checked`` block) and see the worker's held writes; its end
    (held writes, value, state) is one commit, and what is stored equals the worker's copy,
    which later reads return without a query. A trial ended from outside is seen as ended, and
    its held writes are dropped (README, "Storage")."""
    from sqlalchemy import event

    from optmpp.worker_storage import WorkerStorage
    from optmpp.workers import _pop_waiting

    rdb = make_storage(storage_url, heartbeat_interval=None)
    optuna.create_study(study_name="own", storage=rdb)
    study = optuna.load_study(study_name="own", storage=WorkerStorage(rdb),
                              sampler=optuna.samplers.RandomSampler(seed=0))
    other = make_storage(storage_url, heartbeat_interval=None)
    statements: list[str] = []
    event.listen(rdb.engine, "before_cursor_execute",
                 lambda *a: None if a[2].startswith("BEGIN") else statements.append(a[2]))  # SQLite's own BEGIN
    event.listen(rdb.engine, "commit", lambda conn: statements.append("COMMIT"))

    study.enqueue_trial({"units": 64})
    trial = optuna.Trial(study, _pop_waiting(study))
    assert trial.params == {} and trial.suggest_int("units", 32, 512) == 64  # the enqueued value
    trial.suggest_float("dropout", 0.05, 0.5, step=0.05)
    trial.set_user_attr("worker", "w1")
    trial.report(0.5, 1)
    trial.report(0.25, 2)
    trial.set_user_attr("epochs", 2)
    statements.clear()
    seen = study._storage.get_trial(trial._trial_id)
    queries = [sql for sql in statements if sql != "COMMIT"]
    assert len(queries) == 1 and "FROM trials \nWHERE trials.trial_id = " in queries[0]  # its row only
    assert seen.user_attrs == {"worker": "w1", "epochs": 2} and seen.params == trial.params
    assert seen.intermediate_values == {1: 0.5, 2: 0.25} and seen.state == TrialState.RUNNING
    assert other.get_trial(trial._trial_id).user_attrs == {"worker": "w1"}  # "epochs" held
    # inside state_checked, reads ask for the state once; none when the caller has checked it
    for checked, expected in ((False, 1), (True, 0)):
        statements.clear()
        with study._storage.state_checked(trial._trial_id, checked=checked):
            for _ in range(3):
                assert study._storage.get_trial(trial._trial_id).user_attrs["epochs"] == 2
        assert len([sql for sql in statements if sql != "COMMIT"]) == expected
    statements.clear()
    study.tell(trial, 0.25)
    writes = [i for i, sql in enumerate(statements) if sql.startswith(("INSERT", "UPDATE"))]
    assert len(writes) == 3 and "COMMIT" not in statements[writes[0]:writes[-1]]  # one transaction:
    assert "trial_user_attributes" in statements[writes[0]]  # held attribute, value and state
    statements.clear()
    mine = study._storage.get_trial(trial._trial_id)  # finished: read from memory, no query
    assert statements == []
    stored = other.get_trial(trial._trial_id)
    for field in ("state", "values", "params", "distributions", "user_attrs", "system_attrs",
                  "intermediate_values", "datetime_start", "datetime_complete", "number"):
        assert getattr(mine, field) == getattr(stored, field), field
    assert stored.state == TrialState.COMPLETE and stored.user_attrs["epochs"] == 2

    # a trial queued by another process (not in this worker's cache) is read in full at its claim
    optuna.load_study(study_name="own", storage=other).enqueue_trial({"units": 96})
    trial = optuna.Trial(study, _pop_waiting(study))
    assert trial.suggest_int("units", 32, 512) == 96
    study.tell(trial, 0.5)
    assert other.get_trial(trial._trial_id).params == {"units": 96}

    # ended from outside (a stale check, an operator): seen, and the held writes dropped
    study.enqueue_trial({})
    trial = optuna.Trial(study, _pop_waiting(study))
    trial.report(0.5, 1)
    trial.set_user_attr("late", 1)
    other.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    assert study._storage.get_trial(trial._trial_id).state == TrialState.FAIL
    assert len(study.get_trials(states=(TrialState.RUNNING,))) == 0
    with pytest.raises(ValueError, match="Cannot tell a FAIL trial"):  # as Optuna's
        study.tell(trial, 0.5)
    assert "late" not in other.get_trial(trial._trial_id).user_attrs


def test_a_claim_is_one_transaction_with_the_first_heartbeat(storage_url: str) -> None:
    """A worker claims the oldest queued trial, with its first heartbeat, in one transaction;
    two workers never get the same trial, and an empty queue gives None."""
    from optuna.storages._rdb import models
    from sqlalchemy import event

    from optmpp.worker_storage import WorkerStorage
    from optmpp.workers import _pop_waiting

    rdb = make_storage(storage_url, heartbeat_interval=10)
    optuna.create_study(study_name="claims", storage=rdb)
    studies = [optuna.load_study(study_name="claims", storage=WorkerStorage(make_storage(storage_url, heartbeat_interval=10)))
               for _ in range(2)]
    for i in range(3):
        studies[0].enqueue_trial({"x": i}, skip_if_exists=False)
    commits: list[int] = []
    event.listen(studies[1]._storage._backend.engine, "commit", lambda conn: commits.append(1))
    first = _pop_waiting(studies[1])  # queued by the other worker: not in this one's cache
    assert len(commits) == 1
    second, third = _pop_waiting(studies[0]), _pop_waiting(studies[1])
    assert _pop_waiting(studies[0]) is None and _pop_waiting(studies[1]) is None
    stored = {t._trial_id: t for t in load(storage_url, "claims").trials}
    assert [stored[t].system_attrs["fixed_params"]["x"] for t in (first, second, third)] == [0, 1, 2]  # oldest first
    assert all(stored[t].state == TrialState.RUNNING for t in (first, second, third))
    assert rdb._get_stale_trial_ids(studies[0]._study_id) == []  # each has a fresh heartbeat

    with rdb.scoped_session() as session:
        beats = {b.trial_id for b in session.query(models.TrialHeartbeatModel).all()}
    assert beats == {first, second, third}
    assert studies[1]._storage.get_trial(first).system_attrs["fixed_params"] == {"x": 0}  # read in full


class _PrunesOnSystemAttr(optuna.pruners.BasePruner):
    """Reads the trial's system attributes, as Optuna's Hyperband and successive halving do."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return bool(trial.system_attrs.get("stop"))


def test_an_epochs_pruning_check_reads_nothing_after_its_report(storage_url: str) -> None:
    """The objectives' per-epoch step (report, then ask the pruner) is one transaction on a
    worker's storage: the report checks the trial is running, the pruner's read of the trial
    comes from memory. A trial failed from outside still fails the next report."""
    from optuna.exceptions import UpdateFinishedTrialError
    from sqlalchemy import event

    from optmpp.objectives.base import report_epoch
    from optmpp.worker_storage import WorkerStorage
    from optmpp.workers import _pop_waiting

    rdb = make_storage(storage_url, heartbeat_interval=None)
    optuna.create_study(study_name="epochs", storage=rdb)
    study = optuna.load_study(study_name="epochs", storage=WorkerStorage(rdb),
                              pruner=_PrunesOnSystemAttr())
    study.enqueue_trial({})
    trial = optuna.Trial(study, _pop_waiting(study))
    trial.suggest_int("units", 32, 512)
    commits: list[int] = []
    event.listen(rdb.engine, "commit", lambda conn: commits.append(1))
    for epoch in (1, 2, 3):
        report_epoch(trial, epoch, 1.0 / epoch)
    assert len(commits) == 3
    study._storage.set_trial_system_attr(trial._trial_id, "stop", True)  # this worker's write: seen
    with pytest.raises(optuna.TrialPruned):
        report_epoch(trial, 4, 0.25)
    make_storage(storage_url, heartbeat_interval=None).set_trial_state_values(trial._trial_id, TrialState.FAIL)
    with pytest.raises(UpdateFinishedTrialError):
        report_epoch(trial, 5, 0.2)


def test_held_epoch_reports_are_written_with_the_next_write(storage_url: str) -> None:
    """With ``hold_reports_s`` a worker writes a trial's first epoch at once and holds the epochs
    that follow within the interval: they are in its own reads at once, and in the storage after
    the next write (a report after the interval, a system attribute as a pruner's rung writes
    one, the trial's end). A trial failed from outside fails the first report that is written
    (README, "Storage")."""
    from optuna.exceptions import UpdateFinishedTrialError
    from sqlalchemy import event

    from optmpp.objectives.base import report_epoch
    from optmpp.worker_storage import WorkerStorage
    from optmpp.workers import _pop_waiting

    rdb = make_storage(storage_url, heartbeat_interval=None)
    optuna.create_study(study_name="held", storage=rdb)
    storage = WorkerStorage(rdb, hold_reports_s=0.5)
    study = optuna.load_study(study_name="held", storage=storage, pruner=_PrunesOnSystemAttr())
    other = make_storage(storage_url, heartbeat_interval=None)
    commits: list[int] = []
    event.listen(rdb.engine, "commit", lambda conn: commits.append(1))

    study.enqueue_trial({})
    trial = optuna.Trial(study, _pop_waiting(study))
    trial.suggest_int("units", 32, 512)
    commits.clear()
    for epoch in (1, 2, 3):
        report_epoch(trial, epoch, 1.0 / epoch)
    assert len(commits) == 1  # the first epoch (with the params); 2 and 3 held
    assert other.get_trial(trial._trial_id).intermediate_values == {1: 1.0}
    assert storage.get_trial(trial._trial_id).intermediate_values == {1: 1.0, 2: 0.5, 3: 1 / 3}
    storage.set_trial_system_attr(trial._trial_id, "completed_rung_0", 1 / 3)  # a rung's write
    assert other.get_trial(trial._trial_id).intermediate_values == {1: 1.0, 2: 0.5, 3: 1 / 3}
    report_epoch(trial, 4, 0.25)  # held again
    time.sleep(0.6)
    commits.clear()
    report_epoch(trial, 5, 0.2)  # past the interval: 4 and 5 in one commit
    assert len(commits) == 1
    assert sorted(other.get_trial(trial._trial_id).intermediate_values) == [1, 2, 3, 4, 5]
    report_epoch(trial, 6, 0.1)  # held, then written with the trial's end
    study.tell(trial, 0.1)
    stored = other.get_trial(trial._trial_id)
    assert stored.state == TrialState.COMPLETE and stored.intermediate_values[6] == 0.1
    assert sorted(stored.intermediate_values) == [1, 2, 3, 4, 5, 6]

    # failed from outside: a held report does not see it, the next written one does
    study.enqueue_trial({})
    trial = optuna.Trial(study, _pop_waiting(study))
    report_epoch(trial, 1, 1.0)
    other.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    report_epoch(trial, 2, 0.5)  # held
    time.sleep(0.6)
    with pytest.raises(UpdateFinishedTrialError):
        report_epoch(trial, 3, 0.4)
    assert other.get_trial(trial._trial_id).intermediate_values == {1: 1.0}


def test_workers_holding_reports_store_every_epoch(storage_url: str) -> None:
    """``[reliability] report_interval_s``: two workers that hold every report after a trial's
    first (a 30-s interval) still leave each finished trial with one stored loss per epoch, and
    Hyperband's rungs see the losses; a negative interval is a config error."""
    data = {
        "name": "held", "n_trials": 12, "algorithm": "hyperband",
        "objective": {"name": "toy_objectives:make", "max_epochs": 9},
        "reliability": {"heartbeat_interval": 2, "grace_period": 6, "report_interval_s": 30},
    }
    cfg = parse_study_config(data, "held.toml")
    assert cfg.reliability.report_interval_s == 30
    run_study(cfg, storage_url, workers=2, log=lambda m: None, poll_s=0.5)
    study = load(storage_url, "held")
    check_invariants(study, 12, 9)
    assert any(t.state == TrialState.PRUNED for t in study.trials)
    data["reliability"]["report_interval_s"] = -1
    with pytest.raises(ConfigError, match="report_interval_s"):
        parse_study_config(data, "held.toml")


def test_a_queue_is_filled_in_one_transaction_as_optuna_would_fill_it(storage_url: str) -> None:
    """``enqueue_waiting`` queues n trials in one commit; they read back exactly as n calls of
    ``enqueue_trial({})`` (state, number, attributes, params), a worker's cache knows them, and
    numbering goes on after them; ``top_up_queue`` uses it."""
    from sqlalchemy import event

    from optmpp.worker_storage import WorkerStorage, enqueue_waiting
    from optmpp.workers import _pop_waiting, top_up_queue

    rdb = make_storage(storage_url, heartbeat_interval=None)
    optuna.create_study(study_name="reference", storage=rdb)
    reference = optuna.load_study(study_name="reference", storage=rdb)
    for _ in range(5):
        reference.enqueue_trial({})
    optuna.create_study(study_name="bulk", storage=rdb)
    study = optuna.load_study(study_name="bulk", storage=WorkerStorage(rdb))
    study.enqueue_trial({"x": 1})  # one before: the numbering continues from it
    commits: list[int] = []
    event.listen(rdb.engine, "commit", lambda conn: commits.append(1))
    ids = enqueue_waiting(study._storage, study._study_id, 4)
    assert len(commits) == 1 and len(ids) == 4
    assert [study._storage.get_trial(i).number for i in ids] == [1, 2, 3, 4]  # from the cache
    study.enqueue_trial({})  # and after them
    fields = ("state", "number", "params", "user_attrs", "system_attrs", "values", "intermediate_values",
              "datetime_start", "datetime_complete")
    fresh = load(storage_url, "bulk").trials
    assert [t.number for t in fresh] == list(range(6))
    for mine, theirs in zip(fresh[1:], load(storage_url, "reference").trials, strict=True):
        assert all(getattr(mine, f) == getattr(theirs, f) for f in fields if f != "number"), mine
    assert _pop_waiting(study) == fresh[0]._trial_id  # the queue's order: oldest first
    assert top_up_queue(study, n_trials=10) == 4 and len(study.trials) == 10
