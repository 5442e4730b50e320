"""conversation summary and interaction counters, kept exact by triggers

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

``stats``, ``expiring`` and listing conversations read every row of a large archive
(1.6 s, 16 s and seconds at a million interactions). Two small tables answer them:

- ``conversation``: one row per conversation (first words, turns, tokens, the newest
  turn's id/model/status/state/labels, the newest live turn and its expiry), indexed by
  activity (keyset pages) and by live expiry (``expiring``).
- ``interaction_count``: interactions and tokens per (model, status, server state).

Triggers on ``interaction`` keep both exact on every write path (recorder, import,
update, delete), in SQL, so no code path can forget them. SQLite: row triggers (one
writer at a time; an insert costs two upserts). PostgreSQL: statement triggers over
transition tables (a COPY of 1,000 rows costs a few grouped statements), counters
written to the backend's own ``slot`` so concurrent transactions never wait on the
same counter row. The migration backfills both tables from the rows already stored.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_LIVE = "server_state = 'live' AND replay_run_id IS NULL"
_COLUMNS = (
    "id, replay, turns, tokens, first_id, first_input, started_at, updated_at, head_id, model, status, "
    "server_state, labels, live_turns, live_head_id, live_expires_at, live_at"
)


def upgrade() -> None:
    op.create_table(
        'conversation',
        sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('replay', sa.Boolean(), nullable=False),
        sa.Column('turns', sa.Integer(), nullable=False),
        sa.Column('tokens', sa.BigInteger(), nullable=False),
        sa.Column('first_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('first_input', sa.Text(), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('head_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('model', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('server_state', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('labels', sa.Text(), nullable=True),
        sa.Column('live_turns', sa.Integer(), nullable=False),
        sa.Column('live_head_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('live_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('live_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'interaction_count',
        sa.Column('slot', sa.Integer(), nullable=False),
        sa.Column('model', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('server_state', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.Column('tokens', sa.BigInteger(), nullable=False),
        sa.Column('input_tokens', sa.BigInteger(), nullable=False),
        sa.Column('output_tokens', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('slot', 'model', 'status', 'server_state'),
    )
    op.create_table(
        'summary_bulk',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    if op.get_bind().dialect.name == "sqlite":
        _sqlite()
    else:
        _postgresql()
    op.create_index('ix_conversation_updated', 'conversation', ['updated_at', 'id'], unique=False)
    where = sa.text("live_expires_at IS NOT NULL")
    op.create_index('ix_conversation_live_expires', 'conversation', ['live_expires_at'], unique=False,
                    sqlite_where=where, postgresql_where=where)


# --- SQLite: row triggers ---------------------------------------------------------

def _sqlite_count(row: str, sign: str) -> str:
    key = f"coalesce({row}.model, ''), coalesce({row}.status, ''), coalesce({row}.server_state, '')"
    return (
        "INSERT INTO interaction_count (slot, model, status, server_state, n, tokens, input_tokens, output_tokens) "
        f"VALUES (0, {key}, {sign}1, {sign}coalesce({row}.total_tokens, 0), {sign}coalesce({row}.input_tokens, 0), "
        f"{sign}coalesce({row}.output_tokens, 0)) "
        "ON CONFLICT (slot, model, status, server_state) DO UPDATE SET n = n + excluded.n, "
        "tokens = tokens + excluded.tokens, input_tokens = input_tokens + excluded.input_tokens, "
        "output_tokens = output_tokens + excluded.output_tokens; "
        f"DELETE FROM interaction_count WHERE slot = 0 AND model = coalesce({row}.model, '') "
        f"AND status = coalesce({row}.status, '') AND server_state = coalesce({row}.server_state, '') AND n = 0;"
    )


def _sqlite_add(row: str = "new") -> str:
    """Statements that count ``row`` into its conversation (an upsert)."""
    live = f"(CASE WHEN {row}.server_state = 'live' AND {row}.replay_run_id IS NULL THEN 1 ELSE 0 END)"
    return (
        f"INSERT INTO conversation ({_COLUMNS}) VALUES ("
        f"{row}.conversation_id, {row}.replay_run_id IS NOT NULL, 1, coalesce({row}.total_tokens, 0), {row}.id, "
        f"{row}.input_text, {row}.recorded_at, {row}.recorded_at, {row}.id, {row}.model, {row}.status, "
        f"{row}.server_state, {row}.labels, {live}, CASE WHEN {live} = 1 THEN {row}.id END, "
        f"CASE WHEN {live} = 1 THEN {row}.expires_at END, CASE WHEN {live} = 1 THEN {row}.recorded_at END) "
        "ON CONFLICT (id) DO UPDATE SET replay = replay OR excluded.replay, turns = turns + 1, "
        "tokens = tokens + excluded.tokens, "
        + ", ".join(
            f"{c} = CASE WHEN (excluded.started_at, excluded.first_id) < (started_at, first_id) THEN excluded.{c} ELSE {c} END"
            for c in ("first_input", "first_id", "started_at")
        )
        + ", "
        + ", ".join(
            f"{c} = CASE WHEN (excluded.updated_at, excluded.head_id) > (updated_at, head_id) THEN excluded.{c} ELSE {c} END"
            for c in ("model", "status", "server_state", "labels", "head_id", "updated_at")
        )
        + ", live_turns = live_turns + excluded.live_turns, "
        + ", ".join(
            f"{c} = CASE WHEN excluded.live_head_id IS NOT NULL AND (live_head_id IS NULL OR "
            f"(excluded.live_at, excluded.live_head_id) > (live_at, live_head_id)) THEN excluded.{c} ELSE {c} END"
            for c in ("live_expires_at", "live_head_id", "live_at")
        )
        + ";"
    )


def _sqlite_remove(row: str = "old") -> str:
    """Statements that take ``row`` out of its conversation; the first, newest and newest
    live turn are looked up again (one index probe) only when ``row`` was one of them."""
    live = f"(CASE WHEN {row}.server_state = 'live' AND {row}.replay_run_id IS NULL THEN 1 ELSE 0 END)"
    conv = f"{row}.conversation_id"
    newest = "ORDER BY recorded_at DESC, id DESC LIMIT 1"
    return (
        f"UPDATE conversation SET turns = turns - 1, tokens = tokens - coalesce({row}.total_tokens, 0), "
        f"live_turns = live_turns - {live} WHERE id = {conv}; "
        f"DELETE FROM conversation WHERE id = {conv} AND turns <= 0; "
        "UPDATE conversation SET (first_id, first_input, started_at) = (SELECT id, input_text, recorded_at "
        "FROM interaction WHERE conversation_id = conversation.id ORDER BY recorded_at, id LIMIT 1) "
        f"WHERE id = {conv} AND first_id = {row}.id; "
        "UPDATE conversation SET (head_id, model, status, server_state, labels, updated_at) = (SELECT id, model, "
        f"status, server_state, labels, recorded_at FROM interaction WHERE conversation_id = conversation.id {newest}) "
        f"WHERE id = {conv} AND head_id = {row}.id; "
        "UPDATE conversation SET (live_head_id, live_expires_at, live_at) = (SELECT id, expires_at, recorded_at "
        f"FROM interaction WHERE conversation_id = conversation.id AND {_LIVE} {newest}) "
        f"WHERE id = {conv} AND live_head_id = {row}.id;"
    )


#: The columns whose change moves a row's counters or its conversation's summary.
_WATCHED = (
    "conversation_id, model, status, server_state, total_tokens, input_tokens, output_tokens, recorded_at, "
    "expires_at, replay_run_id, labels, input_text, id"
)


# A bulk import on SQLite (``summary.begin_bulk``) puts a row in ``summary_bulk`` inside
# its transaction and counts the rows it inserts itself, a batch at a time
# (``summary.count_sqlite_rows``): a row trigger costs an import ~35 us a row (its
# statement journal, mostly). Updates and deletes always go through the triggers.


def _sqlite() -> None:
    op.execute("CREATE TRIGGER interaction_summary_ai AFTER INSERT ON interaction "
               "WHEN NOT EXISTS (SELECT 1 FROM summary_bulk) BEGIN "
               f"{_sqlite_count('new', '')} {_sqlite_add('new')} END")
    op.execute(f"CREATE TRIGGER interaction_summary_ad AFTER DELETE ON interaction BEGIN "
               f"{_sqlite_count('old', '-')} {_sqlite_remove('old')} END")
    # An update is the old row taken out and the new one counted in.
    op.execute(f"CREATE TRIGGER interaction_summary_au AFTER UPDATE OF {_WATCHED} ON interaction BEGIN "
               f"{_sqlite_count('old', '-')} {_sqlite_remove('old')} "
               f"{_sqlite_count('new', '')} {_sqlite_add('new')} END")
    op.execute(
        "INSERT INTO interaction_count (slot, model, status, server_state, n, tokens, input_tokens, output_tokens) "
        "SELECT 0, coalesce(model, ''), coalesce(status, ''), coalesce(server_state, ''), count(*), "
        "coalesce(sum(total_tokens), 0), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0) "
        "FROM interaction GROUP BY 2, 3, 4"
    )
    # SQLite's min()/max() aggregates take the other (bare) columns from the row that
    # holds the extreme: one pass per question, in the conversation index's order.
    op.execute(
        f"INSERT INTO conversation ({_COLUMNS}) "
        "SELECT conversation_id, max(replay_run_id IS NOT NULL), count(*), coalesce(sum(total_tokens), 0), "
        "NULL, NULL, min(recorded_at), max(recorded_at), NULL, NULL, NULL, NULL, NULL, "
        f"sum(CASE WHEN {_LIVE} THEN 1 ELSE 0 END), NULL, NULL, NULL FROM interaction GROUP BY conversation_id"
    )
    newest = "ORDER BY recorded_at DESC, id DESC LIMIT 1"
    op.execute(
        "UPDATE conversation SET (first_id, first_input) = (SELECT id, input_text FROM interaction "
        "WHERE conversation_id = conversation.id ORDER BY recorded_at, id LIMIT 1), "
        "(head_id, model, status, server_state, labels) = (SELECT id, model, status, server_state, labels "
        f"FROM interaction WHERE conversation_id = conversation.id {newest})"
    )
    op.execute(
        "UPDATE conversation SET (live_head_id, live_expires_at, live_at) = (SELECT id, expires_at, recorded_at "
        f"FROM interaction WHERE conversation_id = conversation.id AND {_LIVE} {newest}) WHERE live_turns > 0"
    )


# --- PostgreSQL: statement triggers over transition tables ------------------------

# Recompute the summary of the conversations in ``ids`` from their rows (deletes and
# updates: each affected conversation once per statement, from its index).
_PG_RECOMPUTE = f"""
CREATE FUNCTION convostore_conversation_recompute(ids text[]) RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $$
DELETE FROM conversation WHERE id = ANY(ids);
INSERT INTO conversation ({_COLUMNS})
SELECT a.cid, a.replay, a.turns, a.tokens, f.id, f.input_text, a.started_at, a.updated_at, h.id, h.model,
       h.status, h.server_state, h.labels, a.live_turns, l.id, l.expires_at, l.recorded_at
FROM (SELECT conversation_id AS cid, bool_or(replay_run_id IS NOT NULL) AS replay, count(*) AS turns,
             coalesce(sum(total_tokens), 0) AS tokens, min(recorded_at) AS started_at, max(recorded_at) AS updated_at,
             count(*) FILTER (WHERE {_LIVE}) AS live_turns
      FROM interaction WHERE conversation_id = ANY(ids) GROUP BY conversation_id) a
JOIN (SELECT DISTINCT ON (conversation_id) conversation_id, id, input_text FROM interaction
      WHERE conversation_id = ANY(ids) ORDER BY conversation_id, recorded_at, id) f ON f.conversation_id = a.cid
JOIN (SELECT DISTINCT ON (conversation_id) conversation_id, id, model, status, server_state, labels FROM interaction
      WHERE conversation_id = ANY(ids) ORDER BY conversation_id, recorded_at DESC, id DESC) h ON h.conversation_id = a.cid
LEFT JOIN (SELECT DISTINCT ON (conversation_id) conversation_id, id, expires_at, recorded_at FROM interaction
      WHERE conversation_id = ANY(ids) AND {_LIVE} ORDER BY conversation_id, recorded_at DESC, id DESC) l
      ON l.conversation_id = a.cid;
$$
"""


def _pg_count(table: str, sign: str) -> str:
    return (
        "INSERT INTO interaction_count AS c (slot, model, status, server_state, n, tokens, input_tokens, output_tokens) "
        f"SELECT pg_backend_pid(), coalesce(model, ''), coalesce(status, ''), coalesce(server_state, ''), {sign}count(*), "
        f"{sign}coalesce(sum(total_tokens), 0), {sign}coalesce(sum(input_tokens), 0), {sign}coalesce(sum(output_tokens), 0) "
        f"FROM {table} GROUP BY 2, 3, 4 "
        "ON CONFLICT (slot, model, status, server_state) DO UPDATE SET n = c.n + excluded.n, "
        "tokens = c.tokens + excluded.tokens, input_tokens = c.input_tokens + excluded.input_tokens, "
        "output_tokens = c.output_tokens + excluded.output_tokens;"
    )


def _pg_add(table: str) -> str:
    """Count a statement's new rows into their conversations: one grouped upsert."""
    def case(cond: str, columns: tuple[str, ...]) -> list[str]:
        return [f"{c} = CASE WHEN {cond} THEN excluded.{c} ELSE c.{c} END" for c in columns]

    sets = ", ".join(
        case("(excluded.started_at, excluded.first_id) < (c.started_at, c.first_id)", ("first_input", "first_id", "started_at"))
        + case("(excluded.updated_at, excluded.head_id) > (c.updated_at, c.head_id)",
               ("model", "status", "server_state", "labels", "head_id", "updated_at"))
        + case("excluded.live_head_id IS NOT NULL AND (c.live_head_id IS NULL OR "
               "(excluded.live_at, excluded.live_head_id) > (c.live_at, c.live_head_id))",
               ("live_expires_at", "live_head_id", "live_at"))
    )
    return f"""
INSERT INTO conversation AS c ({_COLUMNS})
SELECT a.cid, a.replay, a.turns, a.tokens, f.id, f.input_text, a.started_at, a.updated_at, h.id, h.model,
       h.status, h.server_state, h.labels, a.live_turns, l.id, l.expires_at, l.recorded_at
FROM (SELECT conversation_id AS cid, bool_or(replay_run_id IS NOT NULL) AS replay, count(*) AS turns,
             coalesce(sum(total_tokens), 0) AS tokens, min(recorded_at) AS started_at, max(recorded_at) AS updated_at,
             count(*) FILTER (WHERE {_LIVE}) AS live_turns
      FROM {table} GROUP BY conversation_id) a
JOIN (SELECT DISTINCT ON (conversation_id) conversation_id, id, input_text FROM {table}
      ORDER BY conversation_id, recorded_at, id) f ON f.conversation_id = a.cid
JOIN (SELECT DISTINCT ON (conversation_id) conversation_id, id, model, status, server_state, labels FROM {table}
      ORDER BY conversation_id, recorded_at DESC, id DESC) h ON h.conversation_id = a.cid
LEFT JOIN (SELECT DISTINCT ON (conversation_id) conversation_id, id, expires_at, recorded_at FROM {table}
      WHERE {_LIVE} ORDER BY conversation_id, recorded_at DESC, id DESC) l ON l.conversation_id = a.cid
ON CONFLICT (id) DO UPDATE SET replay = c.replay OR excluded.replay, turns = c.turns + excluded.turns,
  tokens = c.tokens + excluded.tokens, live_turns = c.live_turns + excluded.live_turns, {sets};
"""


def _postgresql() -> None:
    op.execute(_PG_RECOMPUTE)
    op.execute(f"""
CREATE FUNCTION convostore_summary_insert() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
{_pg_count('new_rows', '')}
{_pg_add('new_rows')}
RETURN NULL;
END $$""")
    op.execute(f"""
CREATE FUNCTION convostore_summary_delete() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
{_pg_count('old_rows', '-')}
PERFORM convostore_conversation_recompute(ARRAY(SELECT DISTINCT conversation_id FROM old_rows));
RETURN NULL;
END $$""")
    op.execute(f"""
CREATE FUNCTION convostore_summary_update() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
{_pg_count('old_rows', '-')}
{_pg_count('new_rows', '')}
PERFORM convostore_conversation_recompute(ARRAY(
    SELECT conversation_id FROM old_rows UNION SELECT conversation_id FROM new_rows));
RETURN NULL;
END $$""")
    for kind, tables in (("insert", "NEW TABLE AS new_rows"), ("delete", "OLD TABLE AS old_rows"),
                         ("update", "OLD TABLE AS old_rows NEW TABLE AS new_rows")):
        op.execute(f"CREATE TRIGGER interaction_summary_{kind} AFTER {kind.upper()} ON interaction "
                   f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION convostore_summary_{kind}()")
    op.execute(
        "INSERT INTO interaction_count (slot, model, status, server_state, n, tokens, input_tokens, output_tokens) "
        "SELECT 0, coalesce(model, ''), coalesce(status, ''), coalesce(server_state, ''), count(*), "
        "coalesce(sum(total_tokens), 0), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0) "
        "FROM interaction GROUP BY 2, 3, 4"
    )
    op.execute("SELECT convostore_conversation_recompute(ARRAY(SELECT DISTINCT conversation_id FROM interaction))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for kind in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS interaction_summary_{kind}")
    else:
        for kind in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS interaction_summary_{kind} ON interaction")
            op.execute(f"DROP FUNCTION IF EXISTS convostore_summary_{kind}()")
        op.execute("DROP FUNCTION IF EXISTS convostore_conversation_recompute(text[])")
    op.drop_index('ix_conversation_live_expires', table_name='conversation')
    op.drop_index('ix_conversation_updated', table_name='conversation')
    op.drop_table('summary_bulk')
    op.drop_table('interaction_count')
    op.drop_table('conversation')
