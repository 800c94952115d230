"""The README's commands stay in step with the CLI.

Every `optmpp ...` line in the README's shell blocks must parse with the real argument parser
(so no documented command, option or argument is stale), and every subcommand the README shows
is run end to end by some test of this suite (listed here, checked to exist).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from optmpp.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

# subcommand -> a test that runs it end to end
EXERCISED = {
    "run": "tests/test_cli.py::test_run_end_to_end_on_the_real_data",
    "check": "tests/test_cli.py::test_check_reports_what_run_would_do_and_runs_nothing",
    "worker": "tests/test_cli.py::test_worker_command_joins_a_postgresql_study_three_times",
    "best": "tests/test_keras_objectives.py::test_hdpe_dnn_run_best_predict",
    "predict": "tests/test_keras_objectives.py::test_tg_cnn_run_best_predict",
    "status": "tests/test_cli.py::test_status_shows_each_study",
    "compare": "tests/test_compare.py::test_compare_all_six_algorithms_sklearn_then_report",
    "report": "tests/test_compare.py::test_compare_all_six_algorithms_sklearn_then_report",
    "plots": "tests/test_cli.py::test_plots_writes_optunas_figures",
    "algorithms": "tests/test_cli.py::test_algorithms_lists_sampler_pruner_and_paper_name",
    "objectives": "tests/test_cli.py::test_objectives_lists_builtins",
    "dashboard": "tests/test_browser.py::test_dashboard_in_chromium_while_a_worker_runs",
    "data": "tests/test_data_storage.py::test_fetch_downloads_nothing_when_the_files_are_present",
}


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("optmpp "):
                commands.append(line)
    return commands


def test_the_readme_shows_commands() -> None:
    assert len(readme_commands()) >= 15


@pytest.mark.parametrize("command", readme_commands())
def test_each_readme_command_parses(command: str) -> None:
    argv = shlex.split(command)[1:]
    args = build_parser().parse_args(argv)
    assert args.command in EXERCISED, f"{args.command} is documented but no end-to-end test is listed for it"


@pytest.mark.parametrize(("command", "test"), sorted(EXERCISED.items()))
def test_each_command_has_an_end_to_end_test(command: str, test: str) -> None:
    path, name = test.split("::")
    assert f"def {name}(" in (ROOT / path).read_text(), test
