from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from conftest import ROOT, cli_env, optmpp_cmd

NO_TF = textwrap.dedent(
    """
    import sys
    from optmpp.cli import main
    try:
        main({argv!r})
    except SystemExit:
        pass
    heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'torch'))
    print('HEAVY', heavy)
    """
)


@pytest.mark.parametrize("argv", [["--help"], ["algorithms"], ["objectives"], ["run", "--help"]])
def test_core_commands_do_not_import_tensorflow(argv: list[str]) -> None:
    out = subprocess.run([sys.executable, "-c", NO_TF.format(argv=argv)], capture_output=True, text=True, env=cli_env(), check=True)
    assert "HEAVY []" in out.stdout, out.stdout[-2000:]


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*optmpp_cmd(), *args], capture_output=True, text=True, env=env or cli_env(), timeout=timeout, cwd=ROOT)


def test_algorithms_lists_sampler_pruner_and_paper_name() -> None:
    out = run_cli("algorithms")
    assert out.returncode == 0
    for name, words in {
        "random": "RandomSampler",
        "bayes": "Gaussian-process",
        "tpe": "TPESampler",
        "hyperband": "HyperbandPruner",
        "bohb": "BOHB",
        "sha": "SuccessiveHalvingPruner",
    }.items():
        line = next(line for line in out.stdout.splitlines() if line.startswith(name + " "))
        assert words in line


def test_objectives_lists_builtins() -> None:
    out = run_cli("objectives", "--json")
    names = {o["name"]: o for o in json.loads(out.stdout)}
    assert names["hdpe-mi-mlp"]["source"] == "built-in"


def test_bad_study_file_exits_2(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('algorithm = "hyperbnd"\nobjective = "hdpe-mi-mlp"\n')
    out = run_cli("run", str(p), "--storage", f"sqlite:///{tmp_path}/x.db")
    assert out.returncode == 2
    assert "bad.toml: algorithm.name: unknown algorithm 'hyperbnd'" in out.stderr
    assert "Traceback" not in out.stderr


def test_unreachable_storage_exits_3_and_hides_the_password(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text('algorithm = "random"\nobjective = "toy_objectives:make"\n')
    url = "postgresql+psycopg://someone:S3cretSentinel@127.0.0.1:1/nodb"
    out = run_cli("run", str(p), "--storage", url)
    assert out.returncode == 3, out.stderr
    assert "unreachable" in out.stderr
    assert "S3cretSentinel" not in out.stderr + out.stdout
    assert "someone:***@127.0.0.1:1" in out.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["run", "S", "--workers", "-1"], "argument --workers: expected an integer >= 1, got -1"),
    (["run", "S", "--workers", "0"], "argument --workers: expected an integer >= 1, got 0"),
    (["run", "S", "--n-trials", "0"], "argument --n-trials: expected an integer >= 1, got 0"),
    (["run", "S", "--threads", "two"], "argument --threads: expected an integer >= 1, got 'two'"),
    (["run", "S", "--timeout", "-5"], "argument --timeout: expected a number of seconds > 0, got -5"),
    (["worker", "S", "--timeout", "nan"], "argument --timeout: expected a number of seconds > 0, got nan"),
    (["best", "S", "--seeds", "0"], "argument --seeds: expected an integer >= 1, got 0"),
    (["status", "--recent", "0"], "argument --recent: expected a number of seconds > 0, got 0"),
    (["dashboard", "--port", "70000"], "argument --port: expected a port number 1-65535, got '70000'"),
])
def test_bad_counts_and_durations_exit_2_before_anything_runs(tmp_path: Path, args: list[str], message: str) -> None:
    p = tmp_path / "s.toml"
    p.write_text('name = "s"\nalgorithm = "random"\nobjective = "toy_objectives:make"\nn_trials = 2\n')
    db = tmp_path / "s.db"
    out = run_cli(*[str(p) if a == "S" else a for a in args], "--storage", f"sqlite:///{db}")
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert not db.exists()


def test_run_refuses_more_than_four_workers_per_core_and_notes_more_than_one(tmp_path: Path) -> None:
    from optmpp.workers import MAX_WORKERS_PER_CORE, available_cores

    cores = available_cores()
    p = tmp_path / "s.toml"
    p.write_text('name = "s"\nalgorithm = "random"\nobjective = "toy_objectives:make"\nn_trials = 4\n')
    db = tmp_path / "s.db"
    too_many = MAX_WORKERS_PER_CORE * cores + 1
    out = run_cli("run", str(p), "--storage", f"sqlite:///{db}", "--workers", str(too_many))
    assert out.returncode == 2, out.stderr
    assert f"workers: {too_many} worker processes on this machine's {cores} core(s)" in out.stderr
    assert "optmpp worker STUDY --storage URL" in out.stderr and not db.exists()
    out = run_cli("run", str(p), "--storage", f"sqlite:///{db}", "--workers", str(cores + 1), "--json")
    assert out.returncode == 0, out.stderr
    assert f"note: {cores + 1} workers on {cores} core(s) share the cores" in out.stderr
    assert json.loads(out.stdout)["counts"]["finished"] == 4


@pytest.mark.parametrize("command", ["status", "best", "plots", "report"])
def test_reading_commands_refuse_a_missing_sqlite_file_and_create_none(tmp_path: Path, command: str) -> None:
    p = tmp_path / "s.toml"
    p.write_text('name = "s"\nalgorithm = "random"\nobjective = "toy_objectives:make"\n')
    db = tmp_path / "mistyped.db"
    url = f"sqlite:///{db}"
    args = {"status": ["status", "--storage", url], "best": ["best", str(p), "--storage", url],
            "plots": ["plots", str(p), "--storage", url], "report": ["report", url, "s", "--out", str(tmp_path / "r")]}
    out = run_cli(*args[command])
    assert out.returncode == 3, out.stderr
    assert f"{db} does not exist: run a study first" in out.stderr
    assert "Traceback" not in out.stderr
    assert not db.exists()


@pytest.mark.slow
def test_run_end_to_end_on_the_real_data(tmp_path: Path, real_data: Path) -> None:
    url = f"sqlite:///{tmp_path}/runs.db"
    out = run_cli("run", "studies/default.toml", "--storage", url, "--workers", "2", "--n-trials", "10", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["counts"]["finished"] == 10 and summary["counts"]["fail"] == 0
    assert summary["best_value"] < 0.1  # standardised MSE: far better than predicting the mean (1.0)
    assert summary["epochs"] > 10
    assert "finished" in out.stderr  # progress lines
    study = optuna.load_study(study_name="hdpe-mi-mlp-hyperband", storage=url)
    assert len(study.trials) == 10
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2
    # a second `run` resumes: nothing left to do at the same budget
    again = run_cli("run", "studies/default.toml", "--storage", url, "--workers", "2", "--n-trials", "10", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["counts"]["finished"] == 10


@pytest.mark.slow
def test_worker_command_joins_a_postgresql_study_three_times(tmp_path: Path) -> None:
    from conftest import drop_pg_database, make_pg_database

    name, url = make_pg_database()
    try:
        study_file = tmp_path / "toy.toml"
        study_file.write_text(
            'name = "toy-pg"\nn_trials = 30\n[algorithm]\nname = "sha"\n'
            '[objective]\nname = "toy_objectives:make"\nmax_epochs = 5\nsleep = 0.1\n'
        )
        procs = [
            subprocess.Popen([*optmpp_cmd(), "worker", str(study_file), "--storage", url, "--json", "--threads", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=ROOT)
            for _ in range(3)
        ]
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-1000:] for o in outs]
        study = optuna.load_study(study_name="toy-pg", storage=url)
        assert len(study.trials) == 30
        assert all(t.state.is_finished() and t.state.name != "FAIL" for t in study.trials)
        workers = {t.user_attrs["worker"] for t in study.trials}
        assert len(workers) >= 2, workers  # usually 3; a worker that starts late may find no work left
        summaries = [json.loads(o[0]) for o in outs]
        assert all(s["counts"]["finished"] == 30 for s in summaries)
        # `check` on the PostgreSQL study: a fourth worker would find it done; another algorithm is refused
        out = run_cli("check", str(study_file), "--storage", url)
        assert out.returncode == 0 and "study 'toy-pg' holds 30 finished trial(s)" in out.stdout, out.stderr[-2000:]
        assert "127.0.0.1" in out.stdout and "note: the study already holds 30 finished trials" in out.stdout
        study_file.write_text(study_file.read_text().replace('"sha"', '"hyperband"'))
        out = run_cli("check", str(study_file), "--storage", url)
        assert out.returncode == 2 and "was created with another configuration" in out.stderr
        assert len(optuna.load_study(study_name="toy-pg", storage=url).trials) == 30
    finally:
        drop_pg_database(name)


def test_status_shows_each_study(tmp_path: Path) -> None:
    study = tmp_path / "toy.toml"
    study.write_text('name = "toy-status"\nn_trials = 6\nalgorithm = "hyperband"\n[objective]\nname = "toy_objectives:make"\nmax_epochs = 3\n')
    url = f"sqlite:///{tmp_path}/s.db"
    assert run_cli("worker", str(study), "--storage", url, "-q").returncode == 0
    out = run_cli("status", "--storage", url, "--json")
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert row["study"] == "toy-status" and row["objective"] == "toy_objectives:make" and row["algorithm"] == "hyperband"
    assert row["counts"]["finished"] == 6 and row["n_trials"] == 6
    assert row["epochs"] == sum(t.user_attrs["epochs"] for t in optuna.load_study(study_name="toy-status", storage=url).trials)
    assert len(row["workers_recent"]) == 1 and row["best_value"] is not None
    trials = optuna.load_study(study_name="toy-status", storage=url).trials
    # the toy objective keeps no account of its training time: only the trials' own
    assert row["time_s"] == {"trials": pytest.approx(sum(t.user_attrs["wall_time_s"] for t in trials), abs=1e-2),
                             "training": 0.0, "tracing": 0.0}
    text = run_cli("status", "toy-status", "--storage", url)
    assert "6/6 finished" in text.stdout and "workers seen in the last 300 s: 1" in text.stdout
    assert "time in trials" in text.stdout and "training steps" not in text.stdout
    missing = run_cli("status", "nope", "--storage", url)
    assert missing.returncode == 2 and "no study 'nope'" in missing.stderr


def test_plots_writes_optunas_figures(tmp_path: Path) -> None:
    study = tmp_path / "toy.toml"
    study.write_text('name = "toy-plots"\nn_trials = 12\nalgorithm = "sha"\n[objective]\nname = "toy_objectives:make"\nmax_epochs = 4\n')
    url = f"sqlite:///{tmp_path}/p.db"
    assert run_cli("worker", str(study), "--storage", url, "-q").returncode == 0
    out = run_cli("plots", str(study), "--storage", url, "--out", str(tmp_path / "figs"))
    assert out.returncode == 0, out.stderr
    for name in ("history.png", "intermediate.png", "importances.png"):
        data = (tmp_path / "figs" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


def run_mlp_study(tmp_path: Path, name: str, n_trials: int = 3,
                  options: str = "max_epochs = 4\nunits = [16, 32]\n") -> tuple[Path, str]:
    """A small hdpe-mi-mlp study, run to the end: its file and storage URL."""
    study = tmp_path / f"{name}.toml"
    study.write_text(f'name = "{name}"\nn_trials = {n_trials}\nalgorithm = "random"\n'
                     f'[objective]\nname = "hdpe-mi-mlp"\n{options}')
    url = f"sqlite:///{tmp_path}/{name}.db"
    assert run_cli("run", str(study), "--storage", url, "-q").returncode == 0
    return study, url


def test_best_ensemble_saves_the_mean_of_the_seeds(tmp_path: Path, real_data: Path) -> None:
    study, url = run_mlp_study(tmp_path, "mlp-ens")
    out = run_cli("best", str(study), "--storage", url, "--ensemble")
    assert out.returncode == 2 and "--ensemble averages several retrained seeds: give --seeds 2 or more" in out.stderr
    models = tmp_path / "models"
    out = run_cli("best", str(study), "--storage", url, "--seeds", "3", "--ensemble", "--out", str(models))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "mean of the 3 seeds' predictions" in out.stdout and "The saved model is the ensemble" in out.stdout
    assert "mean of the 3 seeds' predictions: loss" in out.stderr  # progress line
    card = json.loads((models / "optmpp-model.json").read_text())
    assert card["ensemble_of_seeds"] == [0, 1, 2] and card["seed_of_saved_model"] is None
    saved = json.loads((models / "metrics.json").read_text())
    assert card["test_metrics"] == saved["ensemble"]
    # the mean prediction's RMSE is at most the seeds' mean RMSE (the norm is convex)
    assert saved["ensemble"]["rmse_units"] <= saved["mean"]["rmse_units"] + 1e-9
    rows = (models / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["seed", "0", "1", "2", "mean", "std", "ensemble"]
    # `predict` uses the ensemble: its prediction is the mean of the three seeds' models
    import pickle

    import numpy as np

    with open(models / "model.pkl", "rb") as fh:
        ens = pickle.load(fh)
    assert len(ens.models) == 3
    lines = (real_data / "HDPE_LG_Plant_Data.csv").read_text().splitlines()
    new = tmp_path / "new.csv"
    new.write_text("\n".join(lines[:11]) + "\n")
    out = run_cli("predict", str(models), str(new))
    assert out.returncode == 0, out.stderr[-2000:]
    pred = np.array([float(r["predicted_MI_Plant"]) for r in csv.DictReader(io.StringIO(out.stdout))])
    header = lines[0].split(",")
    X = np.array([[float(line.split(",")[header.index(c)]) for c in card["features"]] for line in lines[1:11]])
    xs = (X - np.array(card["x_scaler"]["mean"])) / np.array(card["x_scaler"]["scale"])
    members = np.mean([m.predict(xs.astype(np.float32)) for m in ens.models], axis=0)
    np.testing.assert_allclose(pred, members * card["y_scaler"]["scale"] + card["y_scaler"]["mean"], rtol=1e-5)


def test_predict_reads_and_writes_a_semicolon_file_with_decimal_commas(tmp_path: Path, real_data: Path) -> None:
    """A chemist's spreadsheet export (``;`` between fields, ``,`` as the decimal mark) predicts as
    the comma file does, and comes back in the same form."""
    study, url = run_mlp_study(tmp_path, "mlp-semicolon")
    models = tmp_path / "models"
    assert run_cli("best", str(study), "--storage", url, "--out", str(models), "-q").returncode == 0
    lines = (real_data / "HDPE_LG_Plant_Data.csv").read_text().splitlines()[:6]
    comma, semi = tmp_path / "comma.csv", tmp_path / "semi.csv"
    comma.write_text("\n".join(lines) + "\n")
    semi.write_text("\n".join(line.replace(",", ";").replace(".", ",") for line in lines) + "\n")
    out = run_cli("predict", str(models), str(comma))
    assert out.returncode == 0, out.stderr[-2000:]
    out_rows = out.stdout.splitlines()[1:]
    want_rows = list(csv.DictReader(io.StringIO(out.stdout)))
    want = [float(r["predicted_MI_Plant"]) for r in want_rows]
    out = run_cli("predict", str(models), str(semi), "-o", str(tmp_path / "pred.csv"))
    assert out.returncode == 0, out.stderr[-2000:]
    written = (tmp_path / "pred.csv").read_text().splitlines()
    assert written[0] == lines[0].replace(",", ";").strip() + ";predicted_MI_Plant;outside_training_range"
    # the input rows as they were, then the prediction with a decimal comma, then the range flags
    got_rows = list(csv.reader(written[1:], delimiter=";"))
    assert [";".join(r[:-2]) for r in got_rows] == semi.read_text().splitlines()[1:]
    got = [float(r[-2].replace(",", ".")) for r in got_rows]
    assert len(got) == 5 and got == pytest.approx(want, rel=1e-5)
    assert [r[-1] for r in got_rows] == [r["outside_training_range"].replace(".", ",") for r in want_rows]
    # -o makes its folder; a folder given as the input or the output is an error message, not a traceback
    assert run_cli("predict", str(models), str(comma), "-o", str(tmp_path / "new" / "dir" / "p.csv")).returncode == 0
    assert (tmp_path / "new" / "dir" / "p.csv").read_text().splitlines()[1:] == out_rows
    out = run_cli("predict", str(models), str(tmp_path))
    assert out.returncode == 2 and f"optmpp: error: {tmp_path}: a folder, not a file" in out.stderr
    out = run_cli("predict", str(models), str(comma), "-o", str(tmp_path))
    assert out.returncode == 1 and f"optmpp: error: {tmp_path}: Is a directory" in out.stderr
    assert "Traceback" not in out.stderr
    assert got_rows[1][-1].startswith("CAT 42,1041 > ")  # line 3 is a test row beyond the training range


def test_predict_flags_rows_outside_the_training_range(tmp_path: Path, real_data: Path) -> None:
    import numpy as np

    from optmpp.objectives import make_objective

    study, url = run_mlp_study(tmp_path, "mlp-range", 1)
    models = tmp_path / "models"
    assert run_cli("best", str(study), "--storage", url, "--out", str(models), "-q").returncode == 0
    card = json.loads((models / "optmpp-model.json").read_text())
    # the range is that of the rows the saved model was trained on: train + validation, not test
    data = make_objective("hdpe-mi-mlp", {}).data
    seen = data.table.X[np.concatenate([data.split["train"], data.split["val"]])]
    assert card["x_range"] == {"min": seen.min(axis=0).tolist(), "max": seen.max(axis=0).tolist()}
    lines = (real_data / "HDPE_LG_Plant_Data.csv").read_text().splitlines()
    header = [h.strip() for h in lines[0].split(",")]
    t, c2 = header.index("T"), header.index("C2")
    rows = [lines[n - 1].split(",") for n in data.table.rows[data.split["train"][:7]]]  # training rows: in range
    rows[2][t] = "120.5"  # a reactor temperature above any the model saw
    rows[5][t], rows[5][c2] = "-1", "1e6"
    new = tmp_path / "new.csv"
    new.write_text("\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n")
    out = run_cli("predict", str(models), str(new), "-o", str(tmp_path / "pred.csv"))
    assert out.returncode == 0, out.stderr[-2000:]
    with open(tmp_path / "pred.csv", newline="") as fh:
        flags = [r["outside_training_range"] for r in csv.DictReader(fh)]
    t_max, t_min = card["x_range"]["max"][t], card["x_range"]["min"][t]
    assert flags == ["", "", f"T 120.5 > {t_max:.6g}", "", "", f"C2 1e+06 > {card['x_range']['max'][c2]:.6g}; T -1 < {t_min:.6g}", ""]
    assert "warning: 2 of 7 rows lie outside the range of the data the model was trained on" in out.stderr
    assert f"line 4: T 120.5 > {t_max:.6g}; line 7: C2 1e+06" in out.stderr
    # of the test rows, which the model never saw, some lie outside: the plant drifted
    test_rows = [lines[n - 1] for n in data.table.rows[data.split["test"]]]
    (tmp_path / "test.csv").write_text("\n".join([lines[0], *test_rows]) + "\n")
    out = run_cli("predict", str(models), str(tmp_path / "test.csv"))
    outside = [r for r in data.table.X[data.split["test"]] if (r < seen.min(axis=0)).any() or (r > seen.max(axis=0)).any()]
    assert len(outside) > 0 and f"warning: {len(outside)} of {len(test_rows)} rows lie outside" in out.stderr


def test_a_study_refuses_to_resume_on_changed_data_and_best_warns(tmp_path: Path, real_data: Path) -> None:
    """Trials scored on one version of the data file do not mix with trials on another (a file
    edited since, or another copy on a second machine); `best` retrains but says so."""
    import optuna

    from optmpp.workers import DATA_ATTR

    data = tmp_path / "hdpe.csv"
    original = (real_data / "HDPE_LG_Plant_Data.csv").read_text()
    data.write_text(original)
    study, url = run_mlp_study(tmp_path, "mlp-data", 2, f'max_epochs = 2\nunits = [16, 32]\ndata_file = "{data}"\n')
    stored = optuna.load_study(study_name="mlp-data", storage=url).user_attrs[DATA_ATTR]
    assert stored["file"] == "hdpe.csv" and stored["rows"] == 3743 and len(stored["sha256"]) == 64
    data.write_text("\n".join(original.splitlines()[:-1]) + "\n")  # one row fewer
    for command in ("run", "worker"):
        out = run_cli(command, str(study), "--storage", url, "--n-trials", "4")
        assert out.returncode == 2, out.stderr[-2000:]
        assert "the stored study 'mlp-data'" in out.stderr and "was scored on other data: hdpe.csv with 3743 rows" in out.stderr
        assert "hdpe.csv with 3742 rows" in out.stderr and "use another study name, or restore the data file" in out.stderr
    assert len(optuna.load_study(study_name="mlp-data", storage=url).trials) == 2
    out = run_cli("best", str(study), "--storage", url, "-q", "--out", str(tmp_path / "m"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "warning: study 'mlp-data' was tuned on other data" in out.stderr  # shown even with -q
    data.write_text(original)
    assert run_cli("run", str(study), "--storage", url, "--n-trials", "3", "-q").returncode == 0
    out = run_cli("best", str(study), "--storage", url, "--out", str(tmp_path / "m"))
    assert out.returncode == 0 and "warning" not in out.stderr
    # a study made before the data was recorded resumes, and records it then
    s = optuna.load_study(study_name="mlp-data", storage=url)
    s._storage.set_study_user_attr(s._study_id, DATA_ATTR, None)
    assert run_cli("run", str(study), "--storage", url, "--n-trials", "4", "-q").returncode == 0
    assert optuna.load_study(study_name="mlp-data", storage=url).user_attrs[DATA_ATTR] == stored
    # every built-in objective has its data file checked
    from optmpp.objectives import make_objective
    from optmpp.workers import data_fingerprint

    files = {name: data_fingerprint(make_objective(name, {}))["file"] for name in ("hdpe-mi-dnn", "hdpe-mi-mlp", "tg-cnn")}
    assert files == {"hdpe-mi-dnn": "HDPE_LG_Plant_Data.csv", "hdpe-mi-mlp": "HDPE_LG_Plant_Data.csv",
                     "tg-cnn": "Polymer_Tg_SMILES.csv"}


def test_check_reports_what_run_would_do_and_runs_nothing(tmp_path: Path, real_data: Path) -> None:
    import optuna

    data = tmp_path / "hdpe.csv"
    original = (real_data / "HDPE_LG_Plant_Data.csv").read_text()
    data.write_text(original)
    options = f'max_epochs = 2\nunits = [16, 32]\ndata_file = "{data}"\n'
    study = tmp_path / "mlp-check.toml"
    study.write_text(f'name = "mlp-check"\nn_trials = 2\nalgorithm = "random"\n[objective]\nname = "hdpe-mi-mlp"\n{options}')
    db = tmp_path / "mlp-check.db"
    url = f"sqlite:///{db}"
    out = run_cli("check", str(study), "--storage", url)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "objective hdpe-mi-mlp: hdpe.csv: 3743 rows, 9 features -> MI_Plant; split random (train 2246, val 561, test 936)" in out.stdout
    assert f"storage {url}: no such file yet" in out.stdout and out.stdout.rstrip().endswith("ok: nothing stands in the way of `optmpp run`")
    assert not db.exists()  # nothing created
    assert run_cli("run", str(study), "--storage", url, "-q").returncode == 0
    out = run_cli("check", str(study), "--storage", url, "--n-trials", "5", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["stored"]["counts"]["finished"] == 2 and result["n_trials"] == 5 and result["storage_exists"]
    assert result["objective"]["data_file"]["rows"] == 3743 and result["algorithm"]["name"] == "random"
    out = run_cli("check", str(study), "--storage", url)
    assert "holds 2 finished trial(s)" in out.stdout and "note: the study already holds 2 finished trials" in out.stdout
    # what `run` would refuse, `check` refuses with the same message and exit code
    other = tmp_path / "other.toml"
    other.write_text(study.read_text().replace("units = [16, 32]", "units = [16, 64]"))
    for args, code, message in (
        ([str(other)], 2, "was created with another configuration"),
        ([str(study), "--workers", "1000"], 2, "is more than 4 per core"),
        ([str(study), "--storage", "postgresql+psycopg://nobody@127.0.0.1:1/none"], 3, "unreachable"),
    ):
        out = run_cli("check", *args, *(["--storage", url] if "--storage" not in args else []))
        assert (out.returncode, message in out.stderr) == (code, True), out.stderr[-2000:]
    data.write_text("\n".join(original.splitlines()[:-1]) + "\n")
    out = run_cli("check", str(study), "--storage", url)
    assert out.returncode == 2 and "was scored on other data" in out.stderr
    trials = optuna.load_study(study_name="mlp-check", storage=url).trials
    assert len(trials) == 2 and optuna.get_all_study_names(url) == ["mlp-check"]  # nothing was added


@pytest.mark.parametrize("command", ["run", "check"])
def test_an_algorithm_the_objective_cannot_carry_is_refused_before_the_study_exists(tmp_path: Path, command: str) -> None:
    study = tmp_path / "mr.toml"
    study.write_text('name = "mr"\nn_trials = 4\n[algorithm]\nname = "hyperband"\nmin_resource = 50\n'
                     '[objective]\nname = "toy_objectives:make"\nmax_epochs = 9\n')
    db = tmp_path / "mr.db"
    out = run_cli(command, str(study), "--storage", f"sqlite:///{db}")
    assert out.returncode == 2 and "min_resource (50) exceeds the objective's budget (9)" in out.stderr
    assert not db.exists()


def test_run_and_worker_exit_1_when_trials_keep_failing(tmp_path: Path) -> None:
    """A study that stops because its trials fail is not 'done': scripts see exit code 1."""
    study = tmp_path / "failing.toml"
    study.write_text('name = "failing"\nn_trials = 6\nalgorithm = "random"\n'
                     '[objective]\nname = "toy_objectives:make"\nmax_epochs = 1\nfail_above = -4.0\n'
                     '[reliability]\nmax_consecutive_failures = 3\n')
    url = f"sqlite:///{tmp_path}/f.db"
    out = run_cli("run", str(study), "--storage", url, "--workers", "1", "--json")
    assert out.returncode == 1, out.stderr[-2000:]
    summary = json.loads(out.stdout)
    assert summary["counts"]["fail"] == 3 and summary["counts"]["finished"] == 0
    assert len(summary["errors"]) == 1 and "3 trials failed in a row" in summary["errors"][0]
    assert "is too large for this toy" in summary["errors"][0]
    out = run_cli("worker", str(study), "--storage", url, "-q")
    assert out.returncode == 1 and "stopped: 3 trials failed in a row" in out.stdout
    # the same study with trials that succeed exits 0
    ok = tmp_path / "ok.toml"
    ok.write_text(study.read_text().replace('"failing"', '"ok"').replace("fail_above = -4.0", "fail_above = 4.0"))
    assert run_cli("run", str(ok), "--storage", url, "-q").returncode == 0


def test_best_splits_retrains_on_other_random_splits(tmp_path: Path, real_data: Path) -> None:
    import numpy as np

    from optmpp.objectives import make_objective

    options = {"max_epochs": 4, "units": [16, 32]}  # run_mlp_study's
    study, url = run_mlp_study(tmp_path, "mlp-splits")
    models = tmp_path / "models"
    out = run_cli("best", str(study), "--storage", url, "--seeds", "2", "--splits", "3", "--out", str(models))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Test metrics over 3 random splits (MI_Plant), split seeds 0-2" in out.stdout
    assert "split seed 2 (3 of 3): retraining trial" in out.stderr  # progress
    saved = json.loads((models / "metrics.json").read_text())
    rows = saved["splits"]
    assert [r["split_seed"] for r in rows] == [0, 1, 2] and all(r["ensemble"] is None for r in rows)
    assert rows[0]["metrics"] == saved["mean"]  # the study's split is the usual retrain
    assert saved["seconds"] > 0  # the retraining time is recorded in metrics.json
    # another split's figures are those of the objective built on that split, same parameters and seeds
    params = json.loads((models / "optmpp-model.json").read_text())["params"]
    other = make_objective("hdpe-mi-mlp", {**options, "split_seed": 2})
    by_hand = [other.evaluate(params, seed=s, epochs=saved["epochs"]).metrics["rmse_units"] for s in (0, 1)]
    assert rows[2]["metrics"]["rmse_units"] == pytest.approx(np.mean(by_hand), rel=1e-6)
    assert len({round(r["metrics"]["rmse_units"], 6) for r in rows}) == 3  # three different test parts
    rmses = [r["metrics"]["rmse_units"] for r in rows]
    assert saved["split_summary"]["rmse_units"]["median"] == pytest.approx(np.median(rmses))
    # the progress line of a split gives its RMSE in the target's units, as the table does
    assert f"split seed 2: test RMSE {rmses[2]:.4g} (MI_Plant), R² " in out.stderr
    assert saved["split_summary"]["r2_units"]["min"] == pytest.approx(min(r["metrics"]["r2_units"] for r in rows))
    csv_rows = (models / "splits.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in csv_rows] == ["split_seed", "0", "1", "2", "median", "q1", "q3", "min", "max"]
    # the saved model is still the study split's
    assert json.loads((models / "optmpp-model.json").read_text())["objective_options"]["split_seed"] == 0
    # with --ensemble the figures per split are those of the seeds' averaged model
    out = run_cli("best", str(study), "--storage", url, "--seeds", "2", "--splits", "2", "--ensemble", "--json", "-q",
                  "--out", str(tmp_path / "ensemble"))
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    ens = [r["ensemble"]["rmse_units"] for r in result["splits"]]
    assert result["splits"][0]["ensemble"] == result["ensemble"]
    assert result["split_summary"]["rmse_units"]["median"] == pytest.approx(np.mean(ens))  # of two splits


def test_best_splits_refuses_what_it_cannot_re_split(tmp_path: Path, real_data: Path) -> None:
    study, url = run_mlp_study(tmp_path, "mlp-ordered", 1, 'max_epochs = 2\nsplit = "ordered"\n')
    out = run_cli("best", str(study), "--storage", url, "--splits", "3")
    assert out.returncode == 2 and "the study's split is 'ordered': it has one test part" in out.stderr
    assert run_cli("best", str(study), "--storage", url, "--splits", "0").returncode == 2
    toy = tmp_path / "toy.toml"
    toy.write_text('name = "toy-splits"\nn_trials = 2\nalgorithm = "random"\n[objective]\nname = "toy_objectives:make"\n')
    assert run_cli("run", str(toy), "--storage", url, "-q").returncode == 0
    out = run_cli("best", str(toy), "--storage", url, "--splits", "2")
    assert out.returncode == 2 and "has no split_seed option: --splits cannot re-split its data" in out.stderr
