"""recordings.series_id + part: the file parts of one recording (a call restored from Redis)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 04:45:00

One change: two columns and their index. Existing rows are part 1 of their own series
(`series_id` = `id`). Runs under migrations/env.py's PostgreSQL advisory lock like every
revision, so two nodes starting at once apply it once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("series_id", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("part", sa.Integer(), server_default="1", nullable=False)
        )
    op.execute("UPDATE recordings SET series_id = id WHERE series_id IS NULL")
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.create_index("ix_recordings_series_id_part", ["series_id", "part"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_index("ix_recordings_series_id_part")
        batch_op.drop_column("part")
        batch_op.drop_column("series_id")
