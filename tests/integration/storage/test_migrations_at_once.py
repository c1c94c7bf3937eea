"""Nodes sharing one PostgreSQL index (issue 20 item 1): several `rtpvault db upgrade` on a fresh
database at the same moment all succeed and migrate it once (migrations/env.py's advisory lock),
and a node whose rtpvault is older than the schema another node migrated to is refused with a
message that says to upgrade rtpvault, not the schema (storage.db.refuse_newer)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from storage.db import MIGRATIONS, head_revision
from tests.support import daemons
from tests.support.db import pg_database
from tests.support.tools import free_port

pytestmark = pytest.mark.integration

PROCESSES = 3

# waits for the start signal, then runs the CLI's `db upgrade` in this process
UPGRADE = textwrap.dedent("""
    import os, sys, time
    from rtpvault.cli import cli
    url, go = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    cli(["db", "upgrade", "--db", url])
""")

FUTURE = textwrap.dedent('''
    """A migration this rtpvault does not have (a newer node's)."""
    import sqlalchemy as sa
    from alembic import op

    revision = "9999_future"
    down_revision = "{head}"
    branch_labels = None
    depends_on = None


    def upgrade() -> None:
        op.create_table("future_things", sa.Column("id", sa.Integer, primary_key=True))


    def downgrade() -> None:
        op.drop_table("future_things")
''')


def test_nodes_upgrading_a_fresh_index_at_once_migrate_it_once(tmp_path: Path) -> None:
    for url in pg_database():
        go = tmp_path / "go"
        procs = [subprocess.Popen([sys.executable, "-c", UPGRADE, url, str(go)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(PROCESSES)]  # fmt: skip
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        go.touch()  # all at once
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0] * PROCESSES, outs
        for out, _ in outs:
            assert f"schema at {head_revision()}" in out
        engine = create_engine(url)
        try:
            with engine.connect() as c:
                versions = c.execute(text("SELECT version_num FROM alembic_version")).all()
                tables = c.scalars(text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "ORDER BY tablename")).all()  # fmt: skip
        finally:
            engine.dispose()
        assert [v[0] for v in versions] == [head_revision()]
        assert tables == ["alembic_version", "audit", "recording_codecs", "recording_ips",
                          "recording_meta", "recordings", "streams", "uploads"]  # fmt: skip


def newer_schema(url: str, tmp: Path) -> None:
    """Migrate `url` as a newer rtpvault would: this code's migrations plus one more."""
    from alembic import command

    from storage.db import alembic_config

    scripts = tmp / "migrations"
    shutil.copytree(MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9999_future.py").write_text(FUTURE.format(head=head_revision()))
    cfg = alembic_config(url)
    cfg.set_main_option("script_location", str(scripts))
    command.upgrade(cfg, "head")


def test_an_older_node_on_a_newer_schema_is_told_to_upgrade_rtpvault(tmp_path: Path) -> None:
    for url in pg_database():
        newer_schema(url, tmp_path)
        cmd = daemons.rtpvault_command()
        up = subprocess.run([*cmd, "db", "upgrade", "--db", url], capture_output=True, text=True)
        spool = tmp_path / "spool"
        run = subprocess.run(
            [*cmd, "run", "--config-file=none", "--interface=lo/127.0.0.1", "--foreground",
             f"--recording-dir={spool}", f"--recording-db={url}", "--recording-node=old-node",
             f"--listen-ng=127.0.0.1:{free_port()}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        search = subprocess.run([*cmd, "search", "--db", url], capture_output=True, text=True)
        for done in (up, run, search):
            assert done.returncode == 1, done.stderr
            assert "is at revision 9999_future, newer than this rtpvault knows" in done.stderr
            assert "upgrade rtpvault on this node" in done.stderr
            assert "run `rtpvault db upgrade" not in done.stderr  # it cannot help here
        engine = create_engine(url)
        try:
            with engine.connect() as c:  # nothing was undone or changed
                assert c.scalar(text("SELECT version_num FROM alembic_version")) == "9999_future"
        finally:
            engine.dispose()
