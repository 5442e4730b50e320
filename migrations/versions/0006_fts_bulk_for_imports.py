"""imports index full-text search per batch, not per row

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27

A statement run by a trigger opens a savepoint on the FTS5 table, and FTS5 flushes its
pending terms to a new segment at every savepoint: indexed row by row from the insert
trigger, an import wrote one tiny segment per row (and merged them), 4-5x the cost of
the insert itself. An import now pauses the insert trigger inside its own batch
transaction (a row in ``interaction_fts_pause``, never committed: it is deleted again
before COMMIT, and no other connection can see it or write meanwhile) and indexes the
batch's rowid range with one ``INSERT ... SELECT``. The index is exactly current at
every commit, as before. Recorded rows are still indexed by the trigger.
"""

from __future__ import annotations

from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_INSERT = "INSERT INTO interaction_fts(rowid, input_text, output_text) VALUES (new.rowid, new.input_text, new.output_text);"
_HAS_TEXT = "(new.input_text IS NOT NULL OR new.output_text IS NOT NULL)"


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE TABLE interaction_fts_pause (id INTEGER PRIMARY KEY CHECK (id = 1))")
    op.execute("DROP TRIGGER IF EXISTS interaction_fts_ai")
    op.execute(
        f"CREATE TRIGGER interaction_fts_ai AFTER INSERT ON interaction WHEN {_HAS_TEXT} "
        f"AND NOT EXISTS (SELECT 1 FROM interaction_fts_pause) BEGIN {_INSERT} END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TRIGGER IF EXISTS interaction_fts_ai")
    op.execute(f"CREATE TRIGGER interaction_fts_ai AFTER INSERT ON interaction WHEN {_HAS_TEXT} BEGIN {_INSERT} END")
    op.execute("DROP TABLE IF EXISTS interaction_fts_pause")
