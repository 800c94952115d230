from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # toy_objectives, for in-process and spawned workers

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
MY_URL = "mysql+pymysql://root@127.0.0.1:3306/{db}"


def _unavailable(what: str, exc: Exception) -> None:
    msg = f"{what} is not reachable: {exc}"
    if IN_CI:
        pytest.fail(msg + " (CI=true: storage tests must not be skipped)")
    pytest.skip(msg)


def data_dir() -> Path:
    env = os.environ.get("OPTMPP_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(ROOT.parent / "shared" / "data")
    for c in candidates:
        if (c / "HDPE_LG_Plant_Data.csv").exists():
            return c
    if IN_CI:
        pytest.fail("the data directory (OPTMPP_DATA_DIR or ../shared/data) is missing")
    pytest.skip("data directory not found")
    raise AssertionError


@pytest.fixture
def real_data(monkeypatch: pytest.MonkeyPatch) -> Path:
    d = data_dir()
    monkeypatch.setenv("OPTMPP_DATA_DIR", str(d))
    return d


def make_pg_database() -> tuple[str, str]:
    import psycopg

    name = f"optmpp_t_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as con:
            con.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL at 127.0.0.1:5432", exc)
    return name, PG_URL.format(db=name)


def drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_mysql_database() -> tuple[str, str]:
    import pymysql

    name = f"optmpp_t_{uuid.uuid4().hex[:10]}"
    try:
        con = pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=5)
    except pymysql.err.OperationalError as exc:
        _unavailable("MariaDB at 127.0.0.1:3306", exc)
    with con:
        con.cursor().execute(f"CREATE DATABASE `{name}`")
    return name, MY_URL.format(db=name)


def drop_mysql_database(name: str) -> None:
    import pymysql

    con = pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=5)
    with con:
        con.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A throw-away storage of each kind (real servers; a database created and dropped)."""
    kind = request.param
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'optmpp.db'}"
    elif kind == "postgresql":
        name, url = make_pg_database()
        yield url
        drop_pg_database(name)
    else:
        name, url = make_mysql_database()
        yield url
        drop_mysql_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'optmpp.db'}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def optmpp_cmd() -> list[str]:
    return [sys.executable, "-m", "optmpp"]
