from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import optuna
from conftest import ROOT, cli_env, free_port, optmpp_cmd


def test_dashboard_serves_the_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    study = optuna.create_study(study_name="dash-study", storage=url)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    port = free_port()
    proc = subprocess.Popen([*optmpp_cmd(), "dashboard", "--storage", url, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as resp:
                    body = json.loads(resp.read())
                break
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(proc.stderr.read())
                time.sleep(0.5)
        assert body is not None, "the dashboard did not answer within 60 s"
        names = [s["study_name"] for s in body["study_summaries"]]
        assert names == ["dash-study"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_dashboard_refuses_a_missing_sqlite_file(tmp_path: Path) -> None:
    out = subprocess.run([*optmpp_cmd(), "dashboard", "--storage", f"sqlite:///{tmp_path}/none.db"],
                         capture_output=True, text=True, env=cli_env(), cwd=ROOT)
    assert out.returncode == 3 and "does not exist" in out.stderr
