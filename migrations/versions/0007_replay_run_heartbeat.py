"""replay runs keep a heartbeat

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27

A replay process writes ``replay_run.heartbeat_at`` every few seconds while it runs. A run
still marked ``running`` whose heartbeat went stale belonged to a process that died
(SIGKILL, power loss): it is shown as ``interrupted`` and can be continued with
``replay --resume``. Runs from before this column (NULL) go by their start time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("replay_run") as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("replay_run") as batch:
        batch.drop_column("heartbeat_at")
