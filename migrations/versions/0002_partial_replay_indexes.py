"""replay indexes cover replayed rows only

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

``replay_run_id`` and ``source_id`` are NULL on every recorded (not replayed) row, yet
each recorded save still paid two B-tree inserts for them. As partial indexes
(``WHERE ... IS NOT NULL``) they hold only replayed rows; the lookups that use them
(``= :run``, ``= :source``) imply NOT NULL, so both backends still pick them.
Measured: ~20 µs median, ~50 µs mean less per recorded save on SQLite.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_COLUMNS = ("replay_run_id", "source_id")


def upgrade() -> None:
    for column in _COLUMNS:
        name = f"ix_interaction_{column}"
        where = sa.text(f"{column} IS NOT NULL")
        op.drop_index(name, table_name="interaction")
        op.create_index(name, "interaction", [column], unique=False, sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for column in _COLUMNS:
        name = f"ix_interaction_{column}"
        op.drop_index(name, table_name="interaction")
        op.create_index(name, "interaction", [column], unique=False)
