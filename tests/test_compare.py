"""``optmpp compare`` / ``optmpp report``: budgets, resume, the table's contents, the figures."""

from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path

import optuna
import pytest
from conftest import ROOT, cli_env, optmpp_cmd

from optmpp.compare import (
    ELAPSED_ATTR,
    StudyRecord,
    build_table,
    format_table,
    parse_compare_config,
    run_compare,
)
from optmpp.config import ConfigError
from optmpp.workers import run_study

PNG = b"\x89PNG\r\n\x1a\n"


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*optmpp_cmd(), *args], capture_output=True, text=True, env=cli_env(), cwd=ROOT, timeout=timeout)


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {r["algorithm"]: r for r in csv.DictReader(fh)}


def assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG, path
    img = matplotlib.image.imread(path)  # decodes the whole file
    assert img.shape[0] > 100 and img.shape[1] > 100


def toy_compare(**over: object) -> dict:
    data = {
        "name": "cmp",
        "algorithms": ["tpe", "sha"],
        "budget": {"trials": 7},
        "seeds": 2,
        "workers": 2,
        "objective": {"name": "toy_objectives:make", "max_epochs": 5},
    }
    data.update(over)
    return data


# --------------------------------------------------------------------------------------
# the comparison file


@pytest.mark.parametrize(
    "change, message",
    [
        ({"budget": {"epochs": 10, "trials": 3}}, "exactly one of trials, seconds, epochs"),
        ({"budget": {"hours": 1}}, "exactly one of"),
        ({"budget": {"epochs": 0}}, "budget.epochs: expected a number > 0"),
        ({"budget": {"epochs": "many"}}, "budget.epochs"),
        ({"algorithms": ["tpe", "grid"]}, "unknown algorithm 'grid'"),
        ({"algorithms": []}, "name at least one"),
        ({"algorithms": ["tpe", "tpe"]}, "each algorithm once"),
        ({"algorithm_options": {"hyperband": {"reduction_factor": 3}}}, "algorithm_options.hyperband: not one of"),
        ({"algorithm_options": {"sha": {"reduction_factor": "x"}}}, "reduction_factor"),
        ({"seeds": 0}, "seeds: expected an integer >= 1"),
        ({"splits": 0}, "splits: expected an integer >= 1"),
        ({"trials": 3}, "unknown key 'trials'"),
        ({"objective": {"name": "no-such-objective"}}, "objective.name"),
    ],
)
def test_bad_comparison_files_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_compare_config(toy_compare(**change), "c.toml")


def test_missing_budget_is_refused_with_an_example() -> None:
    data = toy_compare()
    del data["budget"]
    with pytest.raises(ConfigError, match=r"missing key 'budget' \(e.g. budget = \{ epochs = 2000 \}"):
        parse_compare_config(data, "c.toml")


def test_defaults_and_study_names() -> None:
    data = toy_compare(algorithm_options={"sha": {"reduction_factor": 2}})
    del data["algorithms"], data["seeds"]
    cfg = parse_compare_config(data, "c.toml")
    assert cfg.algorithms == ["random", "bayes", "tpe", "hyperband", "bohb", "sha"]
    assert cfg.seeds == 3 and cfg.splits == 1
    sc = cfg.study_config("sha", 2)
    assert sc.name == "cmp.sha.s2" and sc.seed == 2 and sc.n_trials == 7
    assert sc.algorithm.options["reduction_factor"] == 2
    assert cfg.study_config("tpe", 0).objective == sc.objective  # same objective everywhere


# --------------------------------------------------------------------------------------
# the table


def record(name: str, group: str, points: list[tuple[float, int, float]], **kw: object) -> StudyRecord:
    best = min(p[2] for p in points)
    r = StudyRecord(name=name, group=group, direction="minimize",
                    counts={"complete": len(points), "pruned": 0, "fail": 0}, epochs=points[-1][1],
                    wall_s=points[-1][0] + 1, best_value=best, best_trial=0,
                    t=[p[0] for p in points], e=[p[1] for p in points], best=[], **kw)
    running = math.inf
    for p in points:
        running = min(running, p[2])
        r.best.append(running)
    return r


def test_target_time_to_target_and_speedup() -> None:
    recs = [
        record("a.random.s0", "random", [(10, 100, 0.5), (40, 400, 0.2), (80, 800, 0.1)]),
        record("a.random.s1", "random", [(20, 200, 0.3), (60, 600, 0.2)]),
        record("a.hyperband.s0", "hyperband", [(5, 20, 0.3), (10, 60, 0.15)]),
        record("a.hyperband.s1", "hyperband", [(10, 40, 0.19)]),
    ]
    rows, facts = build_table(recs)
    assert facts["target"] == 0.2  # the best loss every study reached (random s1's)
    by = {r["algorithm"]: r for r in rows}
    assert by["random"]["time_to_target_s"] == 50.0  # (40 + 60) / 2
    assert by["random"]["epochs_to_target"] == 500.0
    assert by["hyperband"]["time_to_target_s"] == 10.0
    assert by["hyperband"]["epochs_to_target"] == 50.0
    assert by["hyperband"]["speedup"] == pytest.approx(5.0)
    assert by["hyperband"]["epoch_speedup"] == pytest.approx(10.0)
    assert by["random"]["best_val"] == pytest.approx(0.15) and by["random"]["best_val_std"] > 0
    table = format_table(rows, facts, "t")
    assert "| hyperband | 2 |" in table and "speed-up vs random" in table and "0.2" in table


def test_test_metrics_over_splits_pool_seeds_and_splits() -> None:
    import statistics

    recs = [record("a.random.s0", "random", [(10, 100, 0.5)]), record("a.random.s1", "random", [(10, 100, 0.4)]),
            record("a.sha.s0", "sha", [(10, 100, 0.3)])]
    rmse = {"a.random.s0": [1.0, 2.0, 3.0], "a.random.s1": [4.0, 5.0, 6.0], "a.sha.s0": [0.5, 1.5, 1.0]}
    for r in recs:
        r.test = {"loss": 0.1, "rmse": rmse[r.name][0]}  # the study's own split
        r.split_tests = [{"loss": 0.1, "rmse": v} for v in rmse[r.name]]
        r.split_seeds = [7, 8, 9]
    rows, facts = build_table(recs)
    by = {r["algorithm"]: r for r in rows}
    assert facts["splits"] == 3 and facts["split_seeds"] == [7, 8, 9]
    assert by["random"]["test_n"] == 6 and by["random"]["n"] == 2
    assert by["random"]["test_rmse"] == pytest.approx(3.5)
    assert by["random"]["test_rmse_std"] == pytest.approx(statistics.stdev([1, 2, 3, 4, 5, 6]))
    assert by["sha"]["test_n"] == 3 and by["sha"]["test_rmse"] == pytest.approx(1.0)
    table = format_table(rows, facts, "t")
    assert "Test metrics over 3 random splits of the data (split seeds 7-9)" in table
    assert "| 1 ± 0.5 |" in table  # sha: one study, its three splits give the ± (not one seed's bare figure)
    # without splits: the study's own split, one figure per study
    for r in recs:
        r.split_tests, r.split_seeds = [], []
    rows, facts = build_table(recs)
    assert facts["splits"] == 1 and {r["algorithm"]: r for r in rows}["random"]["test_rmse"] == pytest.approx(2.5)
    assert "random splits" not in format_table(rows, facts, "t")
    recs[2].test = {}  # not retrained (e.g. --no-retrain, or a study optmpp did not create)
    rows, facts = build_table(recs)
    sha = {r["algorithm"]: r for r in rows}["sha"]
    assert sha["test_n"] == 0 and math.isnan(sha["test_rmse"])


def test_splits_are_refused_before_any_study_runs(sqlite_url: str, tmp_path: Path) -> None:
    cfg = parse_compare_config(toy_compare(), "c.toml")
    with pytest.raises(ConfigError, match="has no split_seed option: --splits cannot re-split"):
        run_compare(cfg, sqlite_url, out_dir=tmp_path, splits=2, log=lambda m: None, show_progress=False)
    with pytest.raises(ConfigError, match="has no split_seed option"):  # splits = 2 in the file
        run_compare(parse_compare_config(toy_compare(splits=2), "c.toml"), sqlite_url, out_dir=tmp_path,
                    log=lambda m: None, show_progress=False)
    with pytest.raises(ConfigError, match="cannot go with --no-retrain"):
        run_compare(cfg, sqlite_url, out_dir=tmp_path, splits=2, retrain=False, log=lambda m: None,
                    show_progress=False)
    assert optuna.get_all_study_summaries(sqlite_url) == []  # nothing ran
    # --no-retrain wins over the file's splits: the studies run, no test metrics
    cfg = parse_compare_config(toy_compare(splits=2, algorithms=["tpe"], seeds=1, workers=1, budget={"trials": 2}),
                               "c.toml")
    result = run_compare(cfg, sqlite_url, out_dir=tmp_path, retrain=False, log=lambda m: None, show_progress=False)
    assert result["rows"][0]["complete"] == 2 and result["rows"][0]["test_n"] == 0
    assert json.loads((tmp_path / "config.json").read_text())["comparison"]["splits"] == 1


# --------------------------------------------------------------------------------------
# running comparisons (toy objective: cheap; every storage)


def test_trials_budget_on_postgresql(tmp_path: Path) -> None:
    from conftest import drop_pg_database, make_pg_database

    db, storage_url = make_pg_database()
    try:
        _check_trials_budget(storage_url, tmp_path)
    finally:
        drop_pg_database(db)


def _check_trials_budget(storage_url: str, tmp_path: Path) -> None:
    cfg = parse_compare_config(toy_compare(workers=1), "c.toml")
    out = tmp_path / "out"
    result = run_compare(cfg, storage_url, out_dir=out, log=lambda m: None, show_progress=False)
    for algo in ("tpe", "sha"):
        for seed in (0, 1):
            s = optuna.load_study(study_name=f"cmp.{algo}.s{seed}", storage=storage_url)
            finished = [t for t in s.trials if t.state.is_finished()]
            assert len(finished) == 7 and all(t.state != optuna.trial.TrialState.FAIL for t in finished)
            assert s.user_attrs[ELAPSED_ATTR] > 0
    rows = read_rows(out / "table.csv")
    assert set(rows) == {"tpe", "sha"}
    for r in rows.values():
        assert r["n"] == "2"
        assert float(r["complete"]) + float(r["pruned"]) == 7
        assert 0 < float(r["best_val"]) < 5 and 0 < float(r["test_loss"]) < 5  # the toy's evaluate
        assert float(r["wall_s"]) > 0
    assert float(rows["tpe"]["epochs"]) == 35  # no pruner: 7 trials x 5 epochs
    assert float(rows["sha"]["epochs"]) < 35
    assert result["facts"]["target"] is not None
    for f in ("anytime.png", "curves-tpe.png", "curves-sha.png"):
        assert_png(out / f)
    config = json.loads((out / "config.json").read_text())
    assert config["comparison"]["budget"] == {"kind": "trials", "amount": 7.0}
    assert "optuna" in config["report_versions"]
    assert set(config["studies"]) == {"cmp.tpe.s0", "cmp.sha.s0", "cmp.tpe.s1", "cmp.sha.s1"}


def test_epochs_budget_resumes_an_interrupted_study(sqlite_url: str, tmp_path: Path) -> None:
    cfg = parse_compare_config(toy_compare(algorithms=["random", "hyperband"], seeds=1, budget={"epochs": 40}), "c.toml")
    # a first run that stopped early (as if interrupted) at 15 epochs
    first = run_study(cfg.study_config("random", 0), sqlite_url, workers=1, epoch_budget=15, log=lambda m: None)
    assert 15 <= first.epochs < 20
    before = optuna.load_study(study_name="cmp.random.s0", storage=sqlite_url)
    first_params = [t.params for t in before.trials if t.state.is_finished()]
    logs: list[str] = []
    run_compare(cfg, sqlite_url, out_dir=tmp_path / "o", log=logs.append, show_progress=False)
    s = optuna.load_study(study_name="cmp.random.s0", storage=sqlite_url)
    done = [t for t in s.trials if t.state.is_finished()]
    assert [t.params for t in done[: len(first_params)]] == first_params  # kept, not re-run
    epochs = sum(t.user_attrs["epochs"] for t in done)
    assert 40 <= epochs < 40 + 2 * 5  # at most one trial in flight per worker overshoots
    assert not [t for t in s.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert any("cmp.random.s0: resuming" in m for m in logs)
    # a second compare finds every budget reached and runs nothing
    logs.clear()
    n_before = len(s.trials)
    run_compare(cfg, sqlite_url, out_dir=tmp_path / "o", log=logs.append, show_progress=False)
    assert sum("budget reached earlier, not re-run" in m for m in logs) == 2
    assert len(optuna.load_study(study_name="cmp.random.s0", storage=sqlite_url).trials) == n_before


def test_seconds_budget(sqlite_url: str, tmp_path: Path) -> None:
    cfg = parse_compare_config(
        toy_compare(algorithms=["tpe"], seeds=1, budget={"seconds": 4},
                    objective={"name": "toy_objectives:make", "max_epochs": 3, "sleep": 0.05}), "c.toml")
    run_compare(cfg, sqlite_url, out_dir=tmp_path / "o", log=lambda m: None, show_progress=False, retrain=False)
    s = optuna.load_study(study_name="cmp.tpe.s0", storage=sqlite_url)
    assert 4 <= s.user_attrs[ELAPSED_ATTR] < 30
    states = [t.state for t in s.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) >= 3
    assert states.count(optuna.trial.TrialState.WAITING) <= 2  # queued a few at a time, not n_trials
    rows = read_rows(tmp_path / "o" / "table.csv")
    assert rows["tpe"]["test_loss"] == "nan"  # --no-retrain: no test metrics, said so


def test_compare_exits_1_when_a_studys_trials_keep_failing(tmp_path: Path) -> None:
    comp = tmp_path / "failing.toml"
    comp.write_text('name = "failing"\nalgorithms = ["random"]\nseeds = 1\nworkers = 1\n'
                    '[budget]\ntrials = 7\n[objective]\nname = "toy_objectives:make"\nmax_epochs = 2\nfail_above = -4.0\n')
    url = f"sqlite:///{tmp_path}/f.db"
    res = cli("compare", str(comp), "--storage", url, "--out", str(tmp_path / "o"), "--json")
    assert res.returncode == 1, res.stderr[-3000:]
    errors = json.loads(res.stdout)["errors"]
    assert len(errors) == 1 and errors[0].startswith("failing.random.s0: worker 0: 5 trials failed in a row")
    assert "optmpp: error: a worker stopped on an error: failing.random.s0" in res.stderr
    assert "[1/1 random seed 0] warning: worker 0: 5 trials failed in a row" in res.stderr  # logged as it happens
    assert (tmp_path / "o" / "table.csv").exists()  # the report is still written


# --------------------------------------------------------------------------------------
# end to end through the CLI, real data


@pytest.mark.slow
def test_compare_all_six_algorithms_sklearn_then_report(tmp_path: Path, real_data: Path) -> None:
    comp = tmp_path / "six.toml"
    comp.write_text(
        'name = "six"\nbudget = { epochs = 24 }\nseeds = 1\nworkers = 1\n'
        '[objective]\nname = "hdpe-mi-mlp"\nmax_epochs = 6\nbatch_size = 256\n'
    )
    url = f"sqlite:///{tmp_path}/cmp.db"
    out = tmp_path / "out"
    res = cli("compare", str(comp), "--storage", url, "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    algos = ["random", "bayes", "tpe", "hyperband", "bohb", "sha"]
    assert all(f"| {a} | 1 |" in res.stdout for a in algos)  # the markdown table is printed
    rows = read_rows(out / "table.csv")
    assert list(rows) == algos
    for a, r in rows.items():
        assert 24 <= float(r["epochs"]) < 24 + 6, a
        assert float(r["failed"]) == 0
        assert 0 < float(r["best_val"]) < 1.0, a  # standardised MSE
        assert 0.5 < float(r["test_r2_units"]) <= 1.0, a  # retrained best model on the test part
        assert float(r["test_rmse_units"]) > 0 and float(r["wall_s"]) > 0
        assert float(r["reached_target"]) == 1 and float(r["epochs_to_target"]) <= float(r["epochs"])
    assert float(rows["random"]["speedup"]) == 1.0
    for a in ("random", "bayes", "tpe"):  # no pruner: every trial runs its 6 epochs
        assert float(rows[a]["pruned"]) == 0
    assert float(rows["sha"]["pruned"]) > 0
    md = (out / "table.md").read_text()
    assert "Target validation loss" in md and md.count("\n| ") == 7
    for f in ["anytime.png"] + [f"parity-{a}.png" for a in algos] + [f"curves-{a}.png" for a in algos]:
        assert_png(out / f)
    assert (out / "models" / "six.hyperband.s0" / "optmpp-model.json").exists()

    # re-running resumes: nothing to run, nothing retrained
    res = cli("compare", str(comp), "--storage", url, "--out", str(out), "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.count("not re-run") == 6 and "retraining" not in res.stderr
    assert {r["algorithm"] for r in json.loads(res.stdout)["rows"]} == set(algos)

    # report: any studies of a storage
    rep = tmp_path / "rep"
    res = cli("report", url, "six.sha.s0", "six.random.s0", "--out", str(rep), "--title", "sha vs random")
    assert res.returncode == 0, res.stderr[-3000:]
    assert list(read_rows(rep / "table.csv")) == ["sha", "random"]
    assert "## sha vs random" in (rep / "table.md").read_text()
    assert_png(rep / "anytime.png")
    res = cli("report", url, "six.nope.s0", "--out", str(tmp_path / "nope"))
    assert res.returncode == 2 and "no study 'six.nope.s0'" in res.stderr
    assert not (tmp_path / "nope").exists()  # nothing written for a study that is not there

    # --splits 3: each best trial retrained on split seeds 0, 1, 2; the test columns over all three
    rep3 = tmp_path / "rep3"
    res = cli("report", url, "six.sha.s0", "six.random.s0", "--out", str(rep3), "--splits", "3")
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.count("on 3 random splits for its test metrics") == 2
    assert "Test metrics over 3 random splits of the data (split seeds 0-2)" in (rep3 / "table.md").read_text()
    one, three = read_rows(rep / "table.csv"), read_rows(rep3 / "table.csv")
    for a in ("sha", "random"):
        cached = json.loads((rep3 / "retrained" / f"six.{a}.s0.json").read_text())
        assert cached["split_seeds"] == [0, 1, 2]
        rmses = [m["rmse_units"] for m in cached["split_tests"]]
        assert rmses[0] == pytest.approx(float(one[a]["test_rmse_units"]), rel=1e-6)  # split 0 = the study's own
        assert len(set(rmses)) == 3  # other test parts, other figures
        assert float(three[a]["test_rmse_units"]) == pytest.approx(sum(rmses) / 3, rel=1e-6)
        assert three[a]["test_n"] == "3" and float(three[a]["test_rmse_units_std"]) > 0
    res = cli("report", url, "six.sha.s0", "--out", str(rep3), "--splits", "3")
    assert res.returncode == 0 and "retraining" not in res.stderr  # cached
    res = cli("report", url, "six.sha.s0", "--out", str(rep3), "--splits", "2", "--no-retrain")
    assert res.returncode == 2 and "cannot go with --no-retrain" in res.stderr


@pytest.mark.slow
def test_compare_keras_two_algorithms(tmp_path: Path, real_data: Path) -> None:
    comp = tmp_path / "k.toml"
    comp.write_text(
        'name = "k"\nalgorithms = ["random", "hyperband"]\nbudget = { epochs = 12 }\nseeds = 1\nworkers = 2\n'
        '[objective]\nname = "hdpe-mi-dnn"\nmax_epochs = 4\nbatch_size = 128\n'
    )
    out = tmp_path / "out"
    res = cli("compare", str(comp), "--storage", f"sqlite:///{tmp_path}/k.db", "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    rows = read_rows(out / "table.csv")
    assert list(rows) == ["random", "hyperband"]
    for a, r in rows.items():
        assert 12 <= float(r["epochs"]) < 12 + 2 * 4, a
        assert 0.5 < float(r["test_r2_units"]) <= 1.0, a
    for f in ("anytime.png", "parity-random.png", "parity-hyperband.png", "curves-random.png", "curves-hyperband.png"):
        assert_png(out / f)
    study = optuna.load_study(study_name="k.random.s0", storage=f"sqlite:///{tmp_path}/k.db")
    best = study.best_trial
    assert len(best.user_attrs["train_loss"]) == best.user_attrs["epochs"]  # the training curve


def test_running_trials_stop_when_the_epoch_budget_is_spent(sqlite_url: str, tmp_path: Path) -> None:
    # no pruner (random), 40-epoch trials of 0.05 s per epoch, a 30-epoch budget, 2 workers:
    # without the cut both first trials would run to 40 epochs (80 in all)
    cfg = parse_compare_config(toy_compare(algorithms=["random"], seeds=1, budget={"epochs": 30},
                                           objective={"name": "toy_objectives:make", "max_epochs": 40, "sleep": 0.05}),
                               "c.toml")
    run_compare(cfg, sqlite_url, out_dir=tmp_path / "o", log=lambda m: None, show_progress=False, retrain=False)
    s = optuna.load_study(study_name="cmp.random.s0", storage=sqlite_url)
    done = [t for t in s.trials if t.state.is_finished()]
    from optmpp.workers import epochs_consumed

    assert 30 <= epochs_consumed(s.trials) <= 30 + 2 * 25  # <= 1.25 s of 2 workers past the budget
    assert all(t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["stopped_by_budget"] for t in done)
    assert all(len(t.intermediate_values) < 40 for t in done)
