"""A third-party objective, plugged in without touching optmpp."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from conftest import ROOT, cli_env, optmpp_cmd

PLUGIN = textwrap.dedent(
    '''
    from dataclasses import dataclass

    import optuna
    from optmpp.objectives.base import Evaluation, parse_options


    @dataclass(frozen=True)
    class Options:
        max_epochs: int = 6


    class Quadratic:
        direction = "minimize"

        def __init__(self, options):
            self.options = options
            self.max_budget = options.max_epochs

        def __call__(self, trial):
            a = trial.suggest_float("a", -2.0, 2.0)
            value = float("nan")
            for epoch in range(1, self.options.max_epochs + 1):
                value = (a - 0.5) ** 2 + 1.0 / epoch
                trial.report(value, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()
            trial.set_user_attr("epochs", self.options.max_epochs)
            return value

        def evaluate(self, params, seed=0):
            return Evaluation(metrics={"loss": (params["a"] - 0.5) ** 2})


    def make(options):
        return Quadratic(parse_options(Options, options))
    '''
)


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build and install a throw-away package declaring an entry point, into its own target dir."""
    src = tmp_path_factory.mktemp("plugin-src")
    (src / "quadplug").mkdir()
    (src / "quadplug" / "__init__.py").write_text(PLUGIN)
    (src / "pyproject.toml").write_text(textwrap.dedent(
        """
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "quadplug"
        version = "0.3"

        [project.entry-points."optmpp.objectives"]
        quadratic = "quadplug:make"
        """
    ))
    target = tmp_path_factory.mktemp("plugin-env")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(src)],
        check=True, capture_output=True, text=True,
    )
    assert list(target.glob("quadplug-0.3.dist-info"))
    return target


def plugin_env(target: Path) -> dict[str, str]:
    env = cli_env()
    env["PYTHONPATH"] = f"{target}:{env['PYTHONPATH']}"
    return env


def test_entry_point_objective_is_listed(installed_plugin: Path) -> None:
    out = subprocess.run([*optmpp_cmd(), "objectives", "--json"], capture_output=True, text=True, env=plugin_env(installed_plugin), check=True)
    found = {o["name"]: o for o in json.loads(out.stdout)}
    assert found["quadratic"]["target"] == "quadplug:make"
    assert "quadplug 0.3" in found["quadratic"]["source"]


@pytest.mark.slow
def test_entry_point_objective_runs_end_to_end(installed_plugin: Path, tmp_path: Path) -> None:
    study = tmp_path / "quad.toml"
    study.write_text('name = "quad"\nn_trials = 12\nalgorithm = "hyperband"\n[objective]\nname = "quadratic"\nmax_epochs = 4\n')
    url = f"sqlite:///{tmp_path}/q.db"
    out = subprocess.run([*optmpp_cmd(), "run", str(study), "--storage", url, "--workers", "2", "--json"],
                         capture_output=True, text=True, env=plugin_env(installed_plugin), cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["counts"]["finished"] == 12
    assert set(summary["best_params"]) == {"a"}
    s = optuna.load_study(study_name="quad", storage=url)
    assert len(s.trials) == 12 and s.best_value < 1.5


def test_module_factory_objective_runs(tmp_path: Path) -> None:
    study = tmp_path / "toy.toml"
    study.write_text('name = "t"\nn_trials = 5\nalgorithm = "random"\n[objective]\nname = "toy_objectives:make"\nmax_epochs = 2\n')
    out = subprocess.run([*optmpp_cmd(), "worker", str(study), "--storage", f"sqlite:///{tmp_path}/t.db", "--json"],
                         capture_output=True, text=True, env=cli_env(), cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["counts"]["complete"] == 5


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_such_module_xyz:make", "cannot import module 'no_such_module_xyz'"),
        ("toy_objectives:nothing", "module 'toy_objectives' has no attribute 'nothing'"),
        ("quadratc", "unknown objective 'quadratc'"),
    ],
)
def test_unresolvable_objectives_get_distinct_messages(tmp_path: Path, name: str, message: str) -> None:
    study = tmp_path / "x.toml"
    study.write_text(f'algorithm = "random"\nobjective = "{name}"\n')
    out = subprocess.run([*optmpp_cmd(), "run", str(study), "--storage", f"sqlite:///{tmp_path}/x.db"],
                         capture_output=True, text=True, env=cli_env(), cwd=ROOT)
    assert out.returncode == 2
    assert message in out.stderr


def test_a_module_beside_the_study_file_or_in_the_current_folder_is_found(tmp_path: Path) -> None:
    """A user's ``quad.py`` next to their study file needs no install and no PYTHONPATH."""
    mine, elsewhere = tmp_path / "mine", tmp_path / "elsewhere"
    mine.mkdir()
    elsewhere.mkdir()
    (mine / "quad.py").write_text(PLUGIN)
    study = mine / "quad.toml"
    study.write_text('name = "q"\nn_trials = 8\nalgorithm = "hyperband"\n[objective]\nname = "quad:make"\nmax_epochs = 3\n')
    url = f"sqlite:///{tmp_path}/q.db"
    run = subprocess.run([*optmpp_cmd(), "run", str(study), "--storage", url, "--workers", "2", "--json"],
                         capture_output=True, text=True, env=cli_env(), cwd=elsewhere, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["counts"]["finished"] == 8
    best = subprocess.run([*optmpp_cmd(), "best", str(study), "--storage", url, "--out", str(tmp_path / "m"), "--json"],
                          capture_output=True, text=True, env=cli_env(), cwd=elsewhere, timeout=300)
    assert best.returncode == 0, best.stderr
    assert json.loads(best.stdout)["mean"]["loss"] >= 0 and json.loads(best.stdout)["model_file"] is None
    # its objective saves no model: best says so, and predict refuses the folder with the reason
    best = subprocess.run([*optmpp_cmd(), "best", str(study), "--storage", url, "--out", str(tmp_path / "m")],
                          capture_output=True, text=True, env=cli_env(), cwd=elsewhere, timeout=300)
    assert "no model saved: the objective 'quad:make' has no save method" in best.stdout
    assert "predict with" not in best.stdout
    (tmp_path / "in.csv").write_text("a\n1\n")
    predict = subprocess.run([*optmpp_cmd(), "predict", str(tmp_path / "m"), str(tmp_path / "in.csv")],
                             capture_output=True, text=True, env=cli_env(), cwd=elsewhere, timeout=300)
    assert predict.returncode == 2
    assert "holds the test metrics of study 'q' but no model: its objective 'quad:make' saves none" in predict.stderr
    # the current folder, with the study file elsewhere
    (elsewhere / "quad2.py").write_text(PLUGIN)
    other = tmp_path / "other.toml"
    other.write_text('name = "q2"\nn_trials = 3\nalgorithm = "random"\n[objective]\nname = "quad2:make"\nmax_epochs = 2\n')
    here = subprocess.run([*optmpp_cmd(), "worker", str(other), "--storage", url, "--json"],
                          capture_output=True, text=True, env=cli_env(), cwd=elsewhere, timeout=300)
    assert here.returncode == 0, here.stderr
    assert json.loads(here.stdout)["counts"]["complete"] == 3
    # found, but what it imports is missing: that is the message, not "no such module"
    (mine / "broken.py").write_text("import no_such_dependency_xyz\n")
    study.write_text('name = "b"\nalgorithm = "random"\nobjective = "broken:make"\n')
    broken = subprocess.run([*optmpp_cmd(), "check", str(study), "--storage", url],
                            capture_output=True, text=True, env=cli_env(), cwd=elsewhere, timeout=300)
    assert broken.returncode == 2
    assert "cannot import module 'broken': No module named 'no_such_dependency_xyz'" in broken.stderr
    study.write_text('name = "n"\nalgorithm = "random"\nobjective = "nowhere:make"\n')
    nowhere = subprocess.run([*optmpp_cmd(), "check", str(study), "--storage", url],
                             capture_output=True, text=True, env=cli_env(), cwd=elsewhere, timeout=300)
    assert nowhere.returncode == 2
    assert f"no nowhere.py lies in {mine} or {elsewhere}" in nowhere.stderr
