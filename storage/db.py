"""Opening the recordings index and keeping its schema current (Alembic, in migrations/).

    index = open_index("sqlite:////var/spool/rtpengine/recordings.db", create=True)
    with index.session() as s: ...

* SQLite runs with a rollback journal (`journal_mode=DELETE`), never WAL, and without mmap: WAL
  keeps its index in a memory-mapped `-shm` file, and a write to that mapping which the file
  system refuses (file made immutable, spool full) is a SIGBUS that kills the whole process —
  the relay with it. With a rollback journal every file access is read(2)/write(2), and a fault
  is an error the caller logs and retries. `busy_timeout` lets the daemon's writer and CLI
  readers wait for each other's short transactions. The journal mode is stored in the file: a
  file left in WAL mode (older rtpvault, a `sqlite3` shell) is converted back in a child process
  (`to_rollback_journal`) before any connection of ours touches its `-shm`, and every checkout
  re-reads the file header, so a switch to WAL while we run is noticed before the next
  transaction.
* `create=True` (the embedded default: `recording-db` unset) creates or upgrades the schema to
  the newest migration. `create=False` (an explicit `recording-db`) refuses a database whose
  schema is not at the newest migration: `SchemaError` tells the operator to run
  `rtpvault db upgrade` — a shared PostgreSQL is never migrated behind the operator's back.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
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
    "refuse_newer",
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


# Bytes 18 and 19 of an SQLite file header: the write and read format versions, 2 in WAL mode
# (https://www.sqlite.org/fileformat2.html#file_format_version_numbers).
_WAL_VERSION = b"\x02"

# Run by a child process: a SIGBUS on a WAL file's -shm kills only the child.
_CONVERT = (
    "import sqlite3, sys\n"
    "c = sqlite3.connect(sys.argv[1], timeout=10)\n"
    "mode = c.execute('PRAGMA journal_mode=DELETE').fetchone()[0]\n"
    "sys.exit(0 if mode == 'delete' else 'journal mode still ' + mode)\n"
)


# One read-only descriptor per database file, opened once and never closed. Closing *any*
# descriptor of a file drops every POSIX advisory lock this process holds on it (fcntl(2)), and
# SQLite's locks are such locks: an open/read/close here while another thread's connection is
# inside a transaction would silently release that transaction's lock (SQLite's "how to corrupt
# a database", section 2.2; seen here as a reader's "disk I/O error"). A file replaced under
# the same name gets a new descriptor; the old one stays open for the same reason.
_header_fds: dict[str, int] = {}
_header_lock = threading.Lock()


def _header_fd(path: str) -> int | None:
    with _header_lock:
        fd = _header_fds.get(path)
        try:
            if fd is not None and os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
            _header_fds[path] = fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        return fd


def in_wal_mode(path: str) -> bool:
    """True when the SQLite file at `path` is in WAL mode (header bytes 18-19); a missing or
    new (empty) file is not."""
    fd = _header_fd(path)
    if fd is None:
        return False
    header = os.pread(fd, 20, 0)
    return len(header) == 20 and _WAL_VERSION in header[18:20]


def to_rollback_journal(path: str) -> None:
    """Switch the SQLite file at `path` from WAL to a rollback journal, in a child process.
    Raises sqlite3.OperationalError (a transient index fault for the callers) if it cannot."""
    import signal
    import sqlite3
    import subprocess
    import sys

    try:
        done = subprocess.run([sys.executable, "-c", _CONVERT, path], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise sqlite3.OperationalError(
            f"{path} is in WAL mode; converting it failed: {exc}"
        ) from None
    if done.returncode == 0:
        return
    if done.returncode < 0:
        why = f"the converting process died of {signal.Signals(-done.returncode).name}"
    else:
        lines = done.stderr.strip().splitlines()
        why = lines[-1] if lines else f"exit {done.returncode}"
    raise sqlite3.OperationalError(
        f"{path} is in WAL mode (its -shm is memory-mapped) and could not be switched to a "
        f"rollback journal: {why}"
    )


def _sqlite_before_connect(path: str) -> Any:
    def do_connect(_dialect: Any, _record: Any, _cargs: Any, _cparams: Any) -> None:
        # before the driver opens the file, so even SQLAlchemy's first-connect queries never
        # run on a WAL file
        if in_wal_mode(path):
            to_rollback_journal(path)

    return do_connect


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA mmap_size=0")
    cur.execute("PRAGMA journal_mode=DELETE")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_checkout(path: str) -> Any:
    def checkout(_dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        # one 20-byte read per transaction: a connection that began its next transaction on a
        # file switched to WAL would map its -shm; the pool drops it and connects anew
        if in_wal_mode(path):
            raise DisconnectionError(f"{path} was switched to WAL mode")

    return checkout


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
        path = engine.url.database or ""
        if path == ":memory:" or path.startswith("file:"):
            path = ""
        event.listen(engine, "connect", _sqlite_pragmas)
        if path:
            event.listen(engine, "do_connect", _sqlite_before_connect(path))
            event.listen(engine, "checkout", _sqlite_checkout(path))
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


def known_revision(revision: str) -> bool:
    """Whether `revision` is one of this code's migrations (False: a newer rtpvault wrote it)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision(
            revision) is not None  # fmt: skip
    except CommandError:
        return False


def refuse_newer(current: str | None, url: str) -> None:
    """Raise SchemaError when the index is at a revision this code does not know: a node with
    newer code migrated the shared index. Upgrading cannot help here (this code has no way to
    the revision, nor should it undo it): the node's rtpvault must be upgraded instead."""
    if current is not None and not known_revision(current):
        raise SchemaError(
            f"recording-db {_redact(url)} is at revision {current}, newer than this rtpvault "
            f"knows (its newest is {head_revision()}): another node with a newer rtpvault "
            f"migrated it; upgrade rtpvault on this node (never downgrade a shared index)"
        )


def check_schema(engine: Engine, url: str) -> None:
    """Raise SchemaError unless the database at `engine` is at the newest migration."""
    current, head = schema_revision(engine), head_revision()
    if current != head:
        refuse_newer(current, url)
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
        refuse_newer(schema_revision(engine), url)
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


@contextmanager
def _migration_lock(folder: str) -> Iterator[None]:
    """Several processes creating one SQLite index (the workers of `num-threads` starting
    together) migrate in turn: SQLite runs DDL outside a transaction, and the second
    `CREATE TABLE` would fail. An flock(2) on the database's folder, not on the file (closing
    a descriptor of the file would drop SQLite's own locks, see `_header_fds`); PostgreSQL has
    its advisory lock in migrations/env.py."""
    if not folder:
        yield
        return
    import fcntl

    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def open_index(url: str, *, create: bool) -> Index:
    """Open the index at `url`; see the module docstring for `create`."""
    try:
        engine = make_engine(url)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise SchemaError(f"recording-db {_redact(url)}: {exc}") from None
    try:
        if create:
            from alembic import command

            parent = ""
            if url.startswith("sqlite:///"):
                parent = os.path.dirname(url[len("sqlite:///") :])
                if parent:
                    os.makedirs(parent, exist_ok=True)
            with _migration_lock(parent):
                refuse_newer(schema_revision(engine), url)
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
