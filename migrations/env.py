"""Alembic environment: run by storage.db (programmatic config, no alembic.ini needed).

A caller may pass an open connection in `config.attributes["connection"]` (storage.db does);
otherwise the URL in `sqlalchemy.url` is used (plain `alembic -x` use from the repo).

On PostgreSQL the run first takes a transaction-scoped advisory lock: several nodes share one
index, and two `rtpvault db upgrade` at once must run the migrations one after the other (the
second then finds nothing to do) instead of both creating the same tables.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from storage.db import MIGRATION_LOCK
from storage.models import Base

config = context.config
target_metadata = Base.metadata

LOCK_TIMEOUT = "120s"  # a blocked upgrade fails with a clear error instead of hanging for ever


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things: batch mode copies the table
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    conn = config.attributes.get("connection")
    if conn is not None:
        _run(conn)
    else:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as connection:
            _run(connection)
        engine.dispose()
