"""import journal: SQLite imports commit in bounded batches and can be undone

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

An import used to hold SQLite's write lock for its whole run (a recorder waited behind
it, then lost its row). It now commits every batch; ``import_journal`` records what
each committed batch added (rowid ranges, replay runs) or replaced (the old row's
export line), so a failed import undoes itself and one that was killed is undone by
the next import. The table is empty whenever no import runs.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'import_journal',
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('import_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('lo', sa.Integer(), nullable=True),
        sa.Column('hi', sa.Integer(), nullable=True),
        sa.Column('ref', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('seq'),
    )
    with op.batch_alter_table('import_journal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_import_journal_import_id'), ['import_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('import_journal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_import_journal_import_id'))
    op.drop_table('import_journal')
