"""Alembic migrations on SQLite and PostgreSQL: down to nothing and back up, the byte-order
collation of the prefix-searched columns, and concurrent upgrades serialised on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from storage.db import (
    MIGRATION_LOCK,
    alembic_config,
    head_revision,
    make_engine,
    open_index,
    schema_revision,
    upgrade,
)
from storage.models import Base
from tests.support.db import pg_database

REPO = Path(__file__).resolve().parents[3]

TABLES = {"recordings", "streams", "recording_ips", "recording_codecs", "recording_meta",
          "uploads", "audit"}  # fmt: skip


def downgrade(url: str, revision: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
    engine.dispose()


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    names = set(inspect(engine).get_table_names())
    engine.dispose()
    return names - {"alembic_version"}


def test_downgrade_to_base_removes_everything_and_upgrade_rebuilds_it(index_url: str) -> None:
    upgrade(index_url)
    assert tables(index_url) == TABLES
    downgrade(index_url, "base")
    assert tables(index_url) == set()
    engine = make_engine(index_url)
    assert schema_revision(engine) is None
    engine.dispose()
    upgrade(index_url)
    engine = make_engine(index_url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    assert schema_revision(engine) == head_revision()
    engine.dispose()


def test_prefix_columns_compare_bytewise(index_url: str) -> None:
    """'abz1' lies in [abz, ab{) only in byte order; ICU/en_US put '{' before letters."""
    ix = open_index(index_url, create=True)
    with ix.engine.connect() as conn:
        if ix.dialect == "postgresql":
            got = conn.execute(text(
                "SELECT column_name, collation_name FROM information_schema.columns "
                "WHERE table_name = 'recordings' AND column_name IN ('call_id','caller','callee')"
            )).all()  # fmt: skip
            assert sorted(got) == [("call_id", "C"), ("callee", "C"), ("caller", "C")]
        conn.execute(text(
            "INSERT INTO recordings (id, call_id, tags, node, started, status, format, path, "
            "codecs, meta, packets, archive_state, local_removed, legal_hold, sidecar, updated) "
            "VALUES ('r1', 'abz1', '[]', '', 0, 'complete', 'pcap', '', '', '{}', 0, 'local', "
            "false, false, '{}', 0)"
        ))  # fmt: skip
        hits = conn.execute(text(
            "SELECT id FROM recordings WHERE call_id >= 'abz' AND call_id < 'ab{'"
        )).scalars().all()  # fmt: skip
    ix.close()
    assert hits == ["r1"]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """PostgreSQL only: collations and advisory locks are its matters (SQLite compares bytes and
    locks the whole file)."""
    yield from pg_database()


def test_icu_database_still_compares_bytewise(pg_url: str) -> None:
    """A PostgreSQL database whose default collation is ICU en-US (punctuation before letters)."""
    index_url = pg_url
    admin = create_engine(index_url, isolation_level="AUTOCOMMIT")
    name = index_url.rsplit("/", 1)[1] + "_icu"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0 LOCALE_PROVIDER icu '
                       f"ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"))  # fmt: skip
    url = index_url.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade(url)
        engine = make_engine(url)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT 'abz1' < 'ab{'")).scalar() is False  # linguistic
            conn.execute(text(
                "INSERT INTO recordings (id, call_id, tags, node, started, status, format, path, "
                "codecs, meta, packets, archive_state, local_removed, legal_hold, sidecar, "
                "updated) VALUES ('r1', 'abz1', '[]', '', 0, 'complete', 'pcap', '', '', '{}', "
                "0, 'local', false, false, '{}', 0)"
            ))  # fmt: skip
            hits = conn.execute(text(
                "SELECT id FROM recordings WHERE call_id >= 'abz' AND call_id < 'ab{'"
            )).scalars().all()  # fmt: skip
        engine.dispose()
        assert hits == ["r1"]
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_concurrent_upgrades_run_one_after_the_other(pg_url: str, tmp_path: Path) -> None:
    """Two nodes run `rtpvault db upgrade` at once: the second waits, then has nothing to do."""
    holder = create_engine(pg_url)
    with holder.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
        procs = [
            subprocess.Popen([sys.executable, "-m", "rtpvault", "db", "upgrade", "--db", pg_url],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
            for _ in range(2)
        ]  # fmt: skip
        time.sleep(2.0)  # give them the chance to (wrongly) go ahead
        assert tables(pg_url) == set()  # both wait for the lock
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
        conn.commit()
        outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    holder.dispose()
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all(f"schema at {head_revision()}" in out for out in outputs), outputs
    assert tables(pg_url) == TABLES
