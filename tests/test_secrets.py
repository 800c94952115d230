"""A storage password never leaves the process: not in output, errors, user attributes or files."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import optuna
import pytest
from conftest import ROOT, cli_env, drop_pg_database, make_pg_database, optmpp_cmd

SENTINEL = "Zq7SentinelPassw0rd"


@pytest.fixture
def pg_role_with_password() -> tuple[str, str]:
    import psycopg

    name, url = make_pg_database()
    role = f"optmpp_secret_{name[-6:]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as con:
        con.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{SENTINEL}'")
        con.execute(f'GRANT ALL ON DATABASE "{name}" TO {role}')
        con.execute(f'ALTER DATABASE "{name}" OWNER TO {role}')
    yield role, f"postgresql+psycopg://{role}:{SENTINEL}@127.0.0.1:5432/{name}"
    drop_pg_database(name)
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as con:
        con.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.slow
def test_password_from_the_environment_is_never_shown(pg_role_with_password: tuple[str, str], tmp_path: Path) -> None:
    role, url = pg_role_with_password
    study = tmp_path / "s.toml"
    study.write_text('name = "secret-study"\nn_trials = 4\nalgorithm = "random"\n[objective]\nname = "toy_objectives:make"\nmax_epochs = 2\nfail_above = 2.0\n')
    env = cli_env(OPTMPP_STORAGE=url)
    outputs = []
    for argv in (["run", str(study), "--workers", "2", "-v"], ["worker", str(study), "-v"], ["status"],
                 ["best", str(study), "--out", str(tmp_path / "model")], ["plots", str(study), "--out", str(tmp_path / "figs")]):
        out = subprocess.run([*optmpp_cmd(), *argv], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
        assert out.returncode == 0, (argv, out.stderr[-2000:])
        outputs.append(out.stdout + out.stderr)
    text = "\n".join(outputs)
    assert f"{role}:***@" in text  # the URL is shown, redacted
    assert SENTINEL not in text
    s = optuna.load_study(study_name="secret-study", storage=url)
    assert SENTINEL not in json.dumps(s.user_attrs) + json.dumps([t.user_attrs for t in s.trials])
    for f in (tmp_path / "model").iterdir():
        if f.suffix in (".json", ".csv"):
            assert SENTINEL not in f.read_text(), f
    # a wrong password (on a role that has one) is an error without the password in it
    bad = url.replace("127.0.0.1", "localhost").replace(SENTINEL, SENTINEL + "x")
    out = subprocess.run([*optmpp_cmd(), "status"], capture_output=True, text=True, env=cli_env(OPTMPP_STORAGE=bad), cwd=ROOT)
    assert SENTINEL not in out.stdout + out.stderr


def test_a_storage_that_does_not_answer_is_refused_within_10_s(tmp_path: Path) -> None:
    """A server that accepts the connection and never speaks: exit 3 after the connect timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.5)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    study = tmp_path / "s.toml"
    study.write_text('algorithm = "random"\nobjective = "toy_objectives:make"\n')
    t0 = time.monotonic()
    try:
        out = subprocess.run([*optmpp_cmd(), "run", str(study), "--storage",
                              f"postgresql+psycopg://u:{SENTINEL}@127.0.0.1:{port}/db"],
                             capture_output=True, text=True, env=cli_env(), cwd=ROOT, timeout=60)
    finally:
        stop.set()
        for c in held:
            c.close()
        server.close()
    elapsed = time.monotonic() - t0
    assert out.returncode == 3, out.stderr
    assert "unreachable" in out.stderr and SENTINEL not in out.stderr
    assert elapsed < 25, elapsed  # 10 s connect timeout + start-up
