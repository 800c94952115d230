"""Storage URL -> Optuna storage, with the settings that make several workers safe.

* ``sqlite:///path.db`` (the embedded default): WAL journal and a 60 s busy timeout, so several
  processes on one machine share the file without "database is locked" failures.
* ``postgresql+psycopg://user:pw@host/db``: ``pool_pre_ping``, a bounded pool (2 + 2 overflow)
  and a 10 s connect timeout.
* ``mysql+pymysql://user:pw@host/db`` (MySQL and MariaDB): the same.

Every RDB storage gets a heartbeat, and trials whose worker died are failed and re-run with the
same parameters (``RetryFailedTrialCallback``). The URL comes from ``--storage``, else
``OPTMPP_STORAGE``, else the study file, else ``sqlite:///runs/optmpp.db``. Passwords never
appear in output: print :func:`redact_url` of a URL, never the URL.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import sqlite3
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

__all__ = [
    "DEFAULT_STORAGE",
    "StorageError",
    "make_storage",
    "redact_url",
    "redact_text",
    "resolve_storage_url",
    "study_lock",
]

DEFAULT_STORAGE = "sqlite:///runs/optmpp.db"
CONNECT_TIMEOUT_S = 10


class StorageError(RuntimeError):
    """The storage cannot be reached or used (CLI exit code 3)."""


def resolve_storage_url(cli: str | None = None, study_file: str | None = None) -> str:
    return cli or os.environ.get("OPTMPP_STORAGE") or study_file or DEFAULT_STORAGE


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    return re.sub(r"(?<=://)([^/@:]*):([^/@]*)@", r"\1:***@", url)


def redact_text(text: str, url: str | None = None) -> str:
    """``text`` with any password of ``url`` (and any ``user:pw@`` in a URL) masked."""
    out = re.sub(r"(://[^/@:\s]*):([^/@\s]*)@", r"\1:***@", text)
    if url:
        from sqlalchemy.engine import make_url

        try:
            password = make_url(url).password
        except Exception:  # noqa: BLE001 - an unparsable URL has no password to hide
            password = None
        if password:
            out = out.replace(str(password), "***")
    return out


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].split("+", 1)[0].lower()


def sqlite_path(url: str) -> Path | None:
    if _scheme(url) != "sqlite":
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path == ":memory:":
        return None
    return Path(path.split("?", 1)[0])


def _engine_kwargs(url: str) -> dict[str, Any]:
    scheme = _scheme(url)
    if scheme == "sqlite":
        # wait up to 60 s for a lock, unless the URL says otherwise (sqlite:///f.db?timeout=5)
        return {} if "timeout=" in url.partition("?")[2] else {"connect_args": {"timeout": 60.0}}
    if scheme in ("postgresql", "mysql", "mariadb"):
        return {
            "pool_pre_ping": True,
            "pool_size": 2,
            "max_overflow": 2,
            "pool_recycle": 1800,
            "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S},
        }
    raise StorageError(
        f"unsupported storage {redact_url(url)!r}: use sqlite:///FILE, "
        "postgresql+psycopg://USER@HOST/DB or mysql+pymysql://USER@HOST/DB"
    )


def _prepare_sqlite(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=60.0)
    try:
        con.execute("PRAGMA journal_mode=WAL")  # persistent: every later connection uses it
    finally:
        con.close()


_READ_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("optmpp_sqlite_read_only", default=False)


@contextlib.contextmanager
def read_only_transactions() -> Iterator[None]:
    """SQLite transactions begun inside are plain (deferred) ``BEGIN``: under WAL a reader
    neither waits for nor blocks the writer. Only for code that does not write."""
    token = _READ_ONLY.set(True)
    try:
        yield
    finally:
        _READ_ONLY.reset(token)


def _serialize_sqlite_transactions(engine: Any) -> None:
    """Make every SQLite transaction ``BEGIN IMMEDIATE`` (but see :func:`read_only_transactions`).

    Python's sqlite3 driver starts a transaction only at the first write, so a
    read-check-write (Optuna's WAITING -> RUNNING claim of a queued trial, its trial numbering)
    is not atomic across processes: two workers could claim the same trial. Taking the write
    lock at BEGIN makes each transaction atomic; the busy timeout makes others wait for it.

    Foreign keys are enforced too (SQLite does not by default): a worker that outlived its
    deleted study cannot add trials to a study id that SQLite later hands to a new study.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys=ON")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if _READ_ONLY.get() else "BEGIN IMMEDIATE")

    engine.dispose()


def make_storage(
    url: str,
    *,
    heartbeat_interval: int | None = 10,
    grace_period: int | None = None,
    max_retry: int = 2,
    must_exist: bool = False,
) -> optuna.storages.RDBStorage:
    """An RDB storage for ``url`` with heartbeat and retry of trials whose worker died.

    ``must_exist``: for commands that only read studies, a SQLite file that is not there is an
    error (a mistyped path), not a new empty database.

    Raises:
        StorageError: the URL is not supported, the database does not answer, or (``must_exist``)
            the SQLite file does not exist.
    """
    import inspect
    import warnings

    import optuna

    kwargs = _engine_kwargs(url)
    path = sqlite_path(url)
    if path is not None:
        if must_exist and not path.exists():
            raise StorageError(f"{path} does not exist: run a study first, or pass --storage")
        try:
            _prepare_sqlite(path)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open {path}: {exc}") from None
    retry: dict[str, Any] = {}
    if heartbeat_interval:
        params = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
        if "heartbeat_stale_trial_callback" in params:  # optuna >= 4.9
            callback_cls = getattr(
                optuna.storages, "RetryHeartbeatStaleTrialCallback", None
            ) or optuna.storages.RetryFailedTrialCallback
            key = "heartbeat_stale_trial_callback"
        else:
            callback_cls, key = optuna.storages.RetryFailedTrialCallback, "failed_trial_callback"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            retry[key] = callback_cls(max_retry=max_retry)
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeat is "experimental" in Optuna
                storage = optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period if heartbeat_interval else None,
                    **retry,
                )
            if path is not None:
                _serialize_sqlite_transactions(storage.engine)
            return storage
        except Exception as exc:  # noqa: BLE001 - sqlalchemy/driver errors have many types
            text = str(exc).lower()
            if attempt < 4 and ("already exists" in text or "duplicate" in text):
                time.sleep(0.2 * (attempt + 1))  # another process is creating the schema
                continue
            msg = redact_text(f"{type(exc).__name__}: {exc}".splitlines()[0], url)
            raise StorageError(f"storage {redact_url(url)} is unreachable or unusable: {msg}") from None
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def study_lock(url: str, name: str, timeout: float = 60.0) -> Iterator[None]:
    """A cross-process lock around creating a study and its queue of trials.

    SQLite: an ``fcntl`` lock on a file beside the database. PostgreSQL: an advisory lock.
    MySQL/MariaDB: ``GET_LOCK``. Other processes creating the same study wait.
    """
    scheme = _scheme(url)
    key = f"optmpp:{name}"
    path = sqlite_path(url)
    if scheme == "sqlite":
        if path is None:
            yield
            return
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        with open(str(path) + ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, **{
        k: v for k, v in _engine_kwargs(url).items() if k == "connect_args"
    })
    try:
        with engine.connect() as conn:
            if scheme == "postgresql":
                lock_id = zlib.crc32(key.encode()) - 2**31
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
                try:
                    yield
                finally:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
            else:
                got = conn.execute(
                    sqlalchemy.text("SELECT GET_LOCK(:k, :t)"), {"k": key[:64], "t": int(timeout)}
                ).scalar()
                if got != 1:
                    raise StorageError(f"could not lock study {name!r} within {timeout:.0f} s")
                try:
                    yield
                finally:
                    conn.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:k)"), {"k": key[:64]})
    except sqlalchemy.exc.OperationalError as exc:
        msg = redact_text(str(exc).splitlines()[0], url)
        raise StorageError(f"storage {redact_url(url)} is unreachable: {msg}") from None
    finally:
        engine.dispose()
