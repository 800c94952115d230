"""Workers that are stopped, interrupted or started all at once; objectives that return NaN."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from conftest import ROOT, cli_env, drop_pg_database, make_pg_database, optmpp_cmd
from optuna.trial import TrialState

from optmpp.storage import make_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=make_storage(url, heartbeat_interval=None))


def _running_with_reports(url: str, name: str) -> bool:
    if url.startswith("sqlite:///"):
        # read-only with sqlite3: quick under load, and never creates the schema itself (Optuna's
        # load_study would, racing the process that is creating it)
        import sqlite3
        from contextlib import closing

        path = url[len("sqlite:///"):].split("?", 1)[0]
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
                return db.execute(
                    "SELECT count(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
                    "WHERE s.study_name = ? AND t.state = 'RUNNING' AND EXISTS "
                    "(SELECT 1 FROM trial_intermediate_values v WHERE v.trial_id = t.trial_id)", (name,)
                ).fetchone()[0] > 0
        except sqlite3.OperationalError:  # no file or no tables yet
            return False
    try:
        return any(t.state == TrialState.RUNNING and t.intermediate_values for t in load(url, name).trials)
    except Exception:  # noqa: BLE001 - not created yet
        return False


def wait_running(url: str, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _running_with_reports(url, name):
            return
        time.sleep(0.2)
    raise AssertionError("no trial started")


def slow_study(tmp_path: Path, name: str, n_trials: int = 4, max_epochs: int = 6) -> Path:
    f = tmp_path / f"{name}.toml"
    f.write_text(f'name = "{name}"\nn_trials = {n_trials}\nalgorithm = "random"\n'
                 f'[objective]\nname = "toy_objectives:make"\nmax_epochs = {max_epochs}\nsleep = 0.4\n')
    return f


def test_nan_results_fail_with_the_reason(sqlite_url: str) -> None:
    from optmpp.config import parse_study_config
    from optmpp.workers import prepare_study, run_worker

    cfg = parse_study_config({"name": "nan", "n_trials": 8, "algorithm": "random",
                              "objective": {"name": "toy_objectives:make", "max_epochs": 1, "nan_above": -1.0},
                              "reliability": {"max_consecutive_failures": 0}}, "nan.toml")
    prepare_study(cfg, sqlite_url, log=lambda m: None)
    run_worker(cfg, sqlite_url, log=lambda m: None)
    study = load(sqlite_url, "nan")
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed and all("returned nan" in t.user_attrs["error"] for t in failed)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 8


@pytest.mark.slow
def test_sigterm_fails_the_running_trial_and_exits_0(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    proc = subprocess.Popen([*optmpp_cmd(), "worker", str(slow_study(tmp_path, "term", max_epochs=20)), "--storage", url, "-q"],
                            env=cli_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_running(url, "term")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "SIGTERM; the running trial was marked FAIL" in err
    trials = load(url, "term").trials
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert [t.user_attrs.get("error") for t in trials if t.state == TrialState.FAIL] == ["interrupted (SIGINT/SIGTERM)"]


@pytest.mark.slow
def test_run_interrupted_and_started_again_reaches_n_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    study = slow_study(tmp_path, "again", n_trials=4, max_epochs=20)  # 8 s per trial
    # as from a terminal: Ctrl-C's SIGINT neither ignored nor blocked, whatever this test process
    # inherited or did to its own signals (in the full suite, a run started from here ignored it)
    parent = f"SIGINT handler here {signal.getsignal(signal.SIGINT)}, blocked {signal.pthread_sigmask(signal.SIG_BLOCK, [])}"

    def terminal_signals() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])

    proc = subprocess.Popen([*optmpp_cmd(), "run", str(study), "--storage", url, "--workers", "2", "-q"],
                            env=cli_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=terminal_signals)
    wait_running(url, "again")
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, f"{parent}\n{err[-2000:]}"
    trials = load(url, "again").trials
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    again = subprocess.run([*optmpp_cmd(), "run", str(study), "--storage", url, "--workers", "2", "-q", "--json"],
                           env=cli_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    trials = load(url, "again").trials
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 4
    assert not [t for t in trials if t.state == TrialState.RUNNING]


@pytest.mark.slow
def test_sixteen_workers_cold_start_on_an_empty_postgresql_database(tmp_path: Path) -> None:
    """16 workers started at once against an empty database, 5 rounds: no failure.

    The first round is also the 16 workers x 10 trials parallel-invariants check."""
    for round_ in range(5):
        n = 160 if round_ == 0 else 32
        study = tmp_path / "cold.toml"
        study.write_text(f'name = "cold"\nn_trials = {n}\nalgorithm = "hyperband"\n'
                         '[objective]\nname = "toy_objectives:make"\nmax_epochs = 3\n')
        name, url = make_pg_database()
        try:
            procs = [subprocess.Popen([*optmpp_cmd(), "worker", str(study), "--storage", url, "-q", "--threads", "1"],
                                      env=cli_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                     for _ in range(16)]
            errs = [p.communicate(timeout=300)[1] for p in procs]
            codes = [p.returncode for p in procs]
            assert codes == [0] * 16, (round_, [e[-500:] for e, c in zip(errs, codes) if c])
            trials = load(url, "cold").trials
            assert len(trials) == n and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), round_
            assert sorted(t.number for t in trials) == list(range(n))
            for t in trials:
                steps = sorted(t.intermediate_values)
                assert steps == list(range(1, len(steps) + 1)) and t.user_attrs["epochs"] == len(steps)
                if t.state == TrialState.COMPLETE:
                    assert len(steps) == 3
        finally:
            drop_pg_database(name)


@pytest.mark.slow
def test_a_worker_survives_its_connections_being_killed(tmp_path: Path) -> None:
    """PostgreSQL terminates the worker's connections mid-study: it reconnects and goes on."""
    import psycopg

    name, url = make_pg_database()
    try:
        study = slow_study(tmp_path, "lost", n_trials=6)
        proc = subprocess.Popen([*optmpp_cmd(), "worker", str(study), "--storage", url, "-v"],
                                env=cli_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_running(url, "lost")
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as con:
            killed = con.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            ).fetchone()[0]
        assert killed >= 1
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
        trials = load(url, "lost").trials
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert len(finished) == 6, [(t.number, t.state.name, t.user_attrs.get("error")) for t in trials]
        assert sum(t.state == TrialState.FAIL for t in trials) <= 1  # at most the trial in flight
        assert not [t for t in trials if t.state == TrialState.RUNNING]
    finally:
        drop_pg_database(name)


def _kill_mid_trial(url: str, name: str, study_file: Path, min_steps: int, threads: str = "1") -> optuna.trial.FrozenTrial:
    """Start a worker, SIGKILL it once its running trial reported ``min_steps`` epochs."""
    import os

    victim = subprocess.Popen([*optmpp_cmd(), "worker", str(study_file), "--storage", url, "-q", "--threads", threads],
                              env=cli_env(), cwd=ROOT)
    deadline = time.monotonic() + 180
    killed = None
    while time.monotonic() < deadline and killed is None:
        time.sleep(0.2)
        try:
            running = [t for t in load(url, name).trials
                       if t.state == TrialState.RUNNING and len(t.intermediate_values) >= min_steps]
        except Exception:  # noqa: BLE001 - not created yet
            running = []
        if running:
            killed = running[0]
            os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert killed is not None, "no trial got far enough"
    return killed


@pytest.mark.slow
def test_a_killed_trial_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    ckpt = tmp_path / "ckpt"
    f = tmp_path / "c.toml"
    f.write_text('name = "c"\nn_trials = 2\nalgorithm = "random"\n'
                 '[objective]\nname = "toy_objectives:make"\nmax_epochs = 10\nsleep = 0.3\n'
                 f'[reliability]\nheartbeat_interval = 1\ngrace_period = 3\nmax_retry = 1\ncheckpoint_dir = "{ckpt}"\n')
    killed = _kill_mid_trial(url, "c", f, min_steps=4)
    assert list(ckpt.glob("c/trial-*.npz")), "the killed trial left no checkpoint"
    rescuer = subprocess.run([*optmpp_cmd(), "worker", str(f), "--storage", url, "-q"],
                             capture_output=True, text=True, env=cli_env(), cwd=ROOT, timeout=120)
    assert rescuer.returncode == 0, rescuer.stderr
    study = load(url, "c")
    retry = next(t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number)
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    saved = retry.user_attrs["resumed_from_epoch"]
    print(f"toy trial killed after {len(killed.intermediate_values)} reported epochs; retry resumed from epoch {saved} of 10")
    assert saved >= 3, saved  # >= the steps reported before the kill, less the one in flight
    assert sorted(retry.intermediate_values) == list(range(1, 11))  # the whole curve, replayed + new
    for step, value in killed.intermediate_values.items():
        assert retry.intermediate_values[step] == pytest.approx(value)
    assert not list(ckpt.glob("c/*.npz"))  # finished trials leave no checkpoint behind
    from optmpp.workers import epochs_consumed

    killed_final = next(t for t in study.trials if t.number == killed.number)
    # the epochs the killed attempt trained are counted once: what it reported + what the retry added
    assert epochs_consumed([killed_final, retry]) == len(killed_final.intermediate_values) + 10 - saved


@pytest.mark.slow
def test_a_resumed_keras_trial_trains_exactly_as_an_uninterrupted_one(tmp_path: Path, real_data: Path) -> None:
    ckpt = tmp_path / "ckpt"
    # long enough that the poller sees it running past epoch 6: with 24 epochs (~0.1 s each for
    # this small network) the trial once finished between two polls
    epochs = 80
    body = ('n_trials = 1\nalgorithm = "random"\n'
            f'[objective]\nname = "hdpe-mi-dnn"\nmax_epochs = {epochs}\nbatch_size = 64\nrestore_best = true\n'
            f'[reliability]\nheartbeat_interval = 1\ngrace_period = 3\nmax_retry = 1\ncheckpoint_dir = "{ckpt}"\n')
    url = f"sqlite:///{tmp_path}/k.db"
    f = tmp_path / "k.toml"
    f.write_text('name = "k"\n' + body)
    killed = _kill_mid_trial(url, "k", f, min_steps=6)
    rescuer = subprocess.run([*optmpp_cmd(), "worker", str(f), "--storage", url, "-q", "--threads", "1"],
                             capture_output=True, text=True, env=cli_env(), cwd=ROOT, timeout=300)
    assert rescuer.returncode == 0, rescuer.stderr
    retry = next(t for t in load(url, "k").trials if t.system_attrs.get("failed_trial") == killed.number)
    print(f"keras trial killed after {len(killed.intermediate_values)} reported epochs; "
          f"retry resumed from epoch {retry.user_attrs['resumed_from_epoch']} of {epochs}")
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["resumed_from_epoch"] >= 5
    assert retry.user_attrs["epochs"] == epochs and len(retry.user_attrs["train_loss"]) == epochs

    # the same parameters as trial 0 of a study never interrupted: the same result
    ref = tmp_path / "ref.toml"
    ref.write_text('name = "ref"\n' + body)
    optuna.create_study(study_name="ref", storage=url).enqueue_trial(killed.params)
    out = subprocess.run([*optmpp_cmd(), "worker", str(ref), "--storage", url, "-q", "--threads", "1"],
                         capture_output=True, text=True, env=cli_env(), cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    clean = load(url, "ref").trials[0]
    assert clean.params == retry.params and clean.number == killed.number
    assert retry.value == pytest.approx(clean.value, rel=1e-4)
    assert retry.user_attrs["best_epoch"] == clean.user_attrs["best_epoch"]
    for step in range(1, epochs + 1):
        assert retry.intermediate_values[step] == pytest.approx(clean.intermediate_values[step], rel=1e-4)


def _worker(study_file: Path, url: str) -> subprocess.Popen:
    return subprocess.Popen([*optmpp_cmd(), "worker", str(study_file), "--storage", url, "-v"],
                            env=cli_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_worker_survives_database_is_locked(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "l.db"
    url = f"sqlite:///{db}?timeout=1"  # a short busy timeout, so that the lock below bites
    f = slow_study(tmp_path, "l", n_trials=3, max_epochs=6)
    w = _worker(f, url)
    wait_running(url, "l")
    con = sqlite3.connect(db, timeout=30, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")  # nobody else can write for 5 s
    time.sleep(5)
    con.execute("COMMIT")
    con.close()
    out, err = w.communicate(timeout=180)
    assert w.returncode == 0, err[-3000:]
    assert "database is locked" in err  # it was hit, logged, and survived
    study = load(url, "l")
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 3
    assert states.count(TrialState.FAIL) <= 1  # at most the trial in flight is lost
    assert TrialState.RUNNING not in states


@pytest.mark.slow
def test_a_worker_goes_on_when_its_trial_is_failed_from_outside(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/o.db"
    f = slow_study(tmp_path, "o", n_trials=4, max_epochs=6)
    w = _worker(f, url)
    wait_running(url, "o")
    storage = make_storage(url, heartbeat_interval=None)
    victim = next(t for t in load(url, "o").trials if t.state == TrialState.RUNNING)
    storage.set_trial_state_values(victim._trial_id, state=TrialState.FAIL)  # e.g. an admin, or a stale check
    out, err = w.communicate(timeout=180)
    assert w.returncode == 0, err[-3000:]
    assert f"trial {victim.number} FAILED" in err
    study = load(url, "o")
    assert study.trials[victim.number].state == TrialState.FAIL
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 4  # replaced
    assert TrialState.RUNNING not in states
