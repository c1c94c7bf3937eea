"""Index databases for tests: the same test runs on SQLite and on the machine's PostgreSQL.

    def test_x(index_url): ...          # parametrised: sqlite, postgresql
    def test_y(index): ...              # an open storage.db.Index on that database

PostgreSQL (127.0.0.1:5432, trust auth, database `test`): each test gets a fresh database of its
own, dropped afterwards, so tests are isolated and can run the migrations from scratch. With
CI=true an unreachable PostgreSQL fails the test (tests.support.tools.unavailable).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .tools import unavailable

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pg_admin() -> Any:
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")


def pg_database() -> Iterator[str]:
    """Create a private PostgreSQL database; yield its URL; drop it."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    name = f"rvt_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        unavailable(f"PostgreSQL at 127.0.0.1:5432 not reachable: {str(exc).splitlines()[0]}")
        return
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as c:
            c.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def recording(session: Any, rid: str) -> Any:
    """The `recordings` row `rid` (storage.models.Recording); fails the test when absent."""
    from storage.models import Recording

    row = session.get(Recording, rid)
    assert row is not None, f"no recording {rid}"
    return row


@pytest.fixture(params=["sqlite", "postgresql"])
def index_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite:///" + str(tmp_path / "index.db")
    else:
        yield from pg_database()


@pytest.fixture
def index(index_url: str) -> Iterator[object]:
    from storage.db import open_index

    ix = open_index(index_url, create=True)
    try:
        yield ix
    finally:
        ix.close()


def all_archived(index: Any, count: int) -> bool:
    """`count` recordings are indexed and every one is archived (a check for wait_for)."""
    from sqlalchemy import select

    from storage.models import Recording

    with index.session() as s:
        states = s.scalars(select(Recording.archive_state)).all()
    return len(states) == count and set(states) == {"archived"}
