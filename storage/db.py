"""Opening the recordings index and keeping its schema current (Alembic, in migrations/).

    index = open_index("sqlite:////var/spool/rtpengine/recordings.db", create=True)
    with index.session() as s: ...

* SQLite gets WAL mode, `synchronous=NORMAL` and a busy timeout on every connection, so the
  daemon's writer thread and CLI readers do not block each other.
* `create=True` (the embedded default: `recording-db` unset) creates or upgrades the schema to
  the newest migration. `create=False` (an explicit `recording-db`) refuses a database whose
  schema is not at the newest migration: `SchemaError` tells the operator to run
  `rtpvault db upgrade` — a shared PostgreSQL is never migrated behind the operator's back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "Index",
    "SchemaError",
    "open_index",
    "default_url",
    "alembic_config",
    "schema_revision",
    "head_revision",
    "upgrade",
]

MIGRATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")


# The PostgreSQL advisory lock migrations/env.py takes: nodes sharing one index migrate in turn.
MIGRATION_LOCK = 0x7274707661756C74  # "rtpvault"


class SchemaError(Exception):
    """The index cannot be used as it is (out of date, unreachable, not ours). `unreachable`:
    the database could not be reached at all, so its schema is unknown (may be temporary)."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def default_url(recording_dir: str) -> str:
    """The embedded default: an SQLite file inside `recording-dir`."""
    return "sqlite:///" + os.path.join(os.path.abspath(recording_dir), "recordings.db")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # prepare_threshold=None: psycopg would prepare a statement run 5 times and PostgreSQL may then
    # use a generic plan blind to the actual time range or value (a 9 ms search became 1.7 s).
    return create_engine(url, pool_pre_ping=True, connect_args={"prepare_threshold": None})


# Alembic is imported where it is used: the search CLI opens indexes many times a day and should
# not pay ~85 ms of imports for a schema check that only needs one SELECT.


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def check_schema(engine: Engine, url: str) -> None:
    """Raise SchemaError unless the database at `engine` is at the newest migration."""
    current, head = schema_revision(engine), head_revision()
    if current != head:
        state = "empty (no schema)" if current is None else f"at revision {current}"
        raise SchemaError(
            f"recording-db {_redact(url)} is {state}, rtpvault needs {head}: "
            f"run `rtpvault db upgrade --db URL` (or with --config-file) first"
        )


def schema_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (`rtpvault db upgrade`)."""
    from alembic import command

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


class Index:
    """An open recordings index: an engine and a session factory."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success, rolled back on error."""
        with self._sessions.begin() as s:
            yield s

    def close(self) -> None:
        self.engine.dispose()


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable URL>"


def open_index(url: str, *, create: bool) -> Index:
    """Open the index at `url`; see the module docstring for `create`."""
    try:
        engine = make_engine(url)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise SchemaError(f"recording-db {_redact(url)}: {exc}") from None
    try:
        if create:
            from alembic import command

            if url.startswith("sqlite:///"):
                parent = os.path.dirname(url[len("sqlite:///") :])
                if parent:
                    os.makedirs(parent, exist_ok=True)
            with engine.begin() as conn:
                cfg = alembic_config(url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        else:
            check_schema(engine, url)
    except SchemaError:
        engine.dispose()
        raise
    except (SQLAlchemyError, OSError) as exc:
        engine.dispose()
        from sqlalchemy.exc import InterfaceError, OperationalError

        raise SchemaError(
            f"recording-db {_redact(url)}: {str(exc).splitlines()[0]}",
            # a server that does not answer (may come back); an SQLite file is a local fault
            unreachable=isinstance(exc, (OperationalError, InterfaceError))
            and not url.startswith("sqlite"),
        ) from None
    return Index(url, engine)
