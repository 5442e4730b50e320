"""a smaller archive (packed body) and exact cost counters

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27

Bytes: a row kept its raw request and response *and* the input steps, output steps
and usage derived from them, as JSON text (2.4x the JSONL export on SQLite, 3.1x on
PostgreSQL, where a stored tsvector doubled the text again). Now:

- ``interaction.body`` holds request and response packed (``store/packing.py``: the
  derivable parts left out, strings equal to the text columns referred to, deflated
  with a preset dictionary). The JSON columns stay for rows with inline media and rows
  an older convostore writes; reads take either.
- Rows stored before this revision are packed after it, in batches of their own
  transactions (``store/repack.py``, run on open): ``body_backfill`` holds the last id
  done, so an interrupted pass resumes there, and a row not yet packed reads as before.
- PostgreSQL keeps its generated ``search_vector`` column (a draft dropped it for an
  expression index: a third smaller, but ranking and the newest-first walk then
  computed every candidate's tsvector from the text, 16 -> 152 ms for a common word at
  100k, past the 100 ms target; search speed wins over size).
- ``ix_interaction_expires_at`` goes: ``expiring`` reads ``conversation`` (0005).

Cost: ``interaction_count`` also counts rows with usage (``calls``), their thought and
cached tokens, and the same sums for prompts past 200,000 input tokens (the API's
long-context rates), kept by the same triggers; ``interaction.thought_tokens`` and
``cached_tokens`` carry them from usage. A row not yet packed is counted from its
``usage_json``, so the counters are exact throughout the backfill.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

LONG = 200_000
_NEW_COUNTERS = ("calls", "thought_tokens", "cached_tokens", "long_calls", "long_input", "long_output",
                 "long_thought", "long_cached")
_ALL_COUNTERS = ("n", "tokens", "input_tokens", "output_tokens", *_NEW_COUNTERS)


def _m0005():  # type: ignore[no-untyped-def]
    """0005's trigger bodies for the conversation summary (unchanged here)."""
    path = Path(__file__).with_name("0005_summary_tables.py")
    spec = importlib.util.spec_from_file_location("convostore_migration_0005", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _usage_sums(r: str, dialect: str) -> tuple[str, str, str]:
    """SQL for (has usage, thought, cached) of row ``r``: the 0008 columns, or for a row not
    yet packed its usage JSON (the same integers ``rows._usage_extra`` reads)."""
    def from_json(key: str) -> str:
        if dialect == "sqlite":
            return (f"CASE WHEN json_type({r}.usage_json, '$.{key}') = 'integer' "
                    f"THEN json_extract({r}.usage_json, '$.{key}') ELSE 0 END")
        v = f"({r}.usage_json::jsonb->>'{key}')"
        return (f"CASE WHEN jsonb_typeof({r}.usage_json::jsonb->'{key}') = 'number' AND {v} ~ '^-?[0-9]{{1,18}}$' "
                f"THEN {v}::bigint ELSE 0 END")
    has = f"({r}.thought_tokens IS NOT NULL OR {r}.usage_json IS NOT NULL)"
    thought = f"coalesce({r}.thought_tokens, CASE WHEN {r}.usage_json IS NOT NULL THEN {from_json('total_thought_tokens')} ELSE 0 END)"
    cached = f"coalesce({r}.cached_tokens, CASE WHEN {r}.usage_json IS NOT NULL THEN {from_json('total_cached_tokens')} ELSE 0 END)"
    return has, thought, cached


def _counter_terms(r: str, dialect: str) -> list[str]:
    """One row's contribution to each of ``_ALL_COUNTERS`` (SQL expressions)."""
    has, thought, cached = _usage_sums(r, dialect)
    long = f"coalesce({r}.input_tokens, 0) > {LONG}"
    one = "1" if dialect == "sqlite" else "1::bigint"

    def when_long(x: str) -> str:
        return f"CASE WHEN {long} THEN {x} ELSE 0 END"

    return [
        one, f"coalesce({r}.total_tokens, 0)", f"coalesce({r}.input_tokens, 0)", f"coalesce({r}.output_tokens, 0)",
        f"CASE WHEN {has} THEN 1 ELSE 0 END", thought, cached,
        when_long("1"), when_long(f"coalesce({r}.input_tokens, 0)"), when_long(f"coalesce({r}.output_tokens, 0)"),
        when_long(thought), when_long(cached),
    ]


_UPSERT_SET = ", ".join(f"{c} = {{t}}{c} + excluded.{c}" for c in _ALL_COUNTERS)
_COUNTER_COLUMNS = ", ".join(_ALL_COUNTERS)


def _sqlite_count(row: str, sign: str) -> str:
    key = f"coalesce({row}.model, ''), coalesce({row}.status, ''), coalesce({row}.server_state, '')"
    terms = ", ".join(f"{sign}({t})" for t in _counter_terms(row, "sqlite"))
    return (
        f"INSERT INTO interaction_count (slot, model, status, server_state, {_COUNTER_COLUMNS}) "
        f"VALUES (0, {key}, {terms}) "
        f"ON CONFLICT (slot, model, status, server_state) DO UPDATE SET {_UPSERT_SET.format(t='')}; "
        f"DELETE FROM interaction_count WHERE slot = 0 AND model = coalesce({row}.model, '') "
        f"AND status = coalesce({row}.status, '') AND server_state = coalesce({row}.server_state, '') AND n = 0;"
    )


def _pg_count(table: str, sign: str) -> str:
    sums = ", ".join(f"{sign}coalesce(sum({t}), 0)" for t in _counter_terms("r", "postgresql"))
    return (
        f"INSERT INTO interaction_count AS c (slot, model, status, server_state, {_COUNTER_COLUMNS}) "
        f"SELECT pg_backend_pid(), coalesce(r.model, ''), coalesce(r.status, ''), coalesce(r.server_state, ''), {sums} "
        f"FROM {table} r GROUP BY 2, 3, 4 "
        f"ON CONFLICT (slot, model, status, server_state) DO UPDATE SET {_UPSERT_SET.format(t='c.')};"
    )


def _recount(dialect: str) -> None:
    sums = ", ".join(f"coalesce(sum({t}), 0)" for t in _counter_terms("r", dialect))
    op.execute("DELETE FROM interaction_count")
    op.execute(
        f"INSERT INTO interaction_count (slot, model, status, server_state, {_COUNTER_COLUMNS}) "
        f"SELECT 0, coalesce(r.model, ''), coalesce(r.status, ''), coalesce(r.server_state, ''), {sums} "
        "FROM interaction r GROUP BY 2, 3, 4"
    )


def _sqlite_triggers() -> None:
    m = _m0005()
    for kind in ("ai", "ad", "au"):
        op.execute(f"DROP TRIGGER IF EXISTS interaction_summary_{kind}")
    op.execute("CREATE TRIGGER interaction_summary_ai AFTER INSERT ON interaction "
               "WHEN NOT EXISTS (SELECT 1 FROM summary_bulk) BEGIN "
               f"{_sqlite_count('new', '')} {m._sqlite_add('new')} END")
    op.execute(f"CREATE TRIGGER interaction_summary_ad AFTER DELETE ON interaction BEGIN "
               f"{_sqlite_count('old', '-')} {m._sqlite_remove('old')} END")
    # Only when something it counts changed: packing a stored row (body in, JSON out)
    # leaves every counter as it was and costs no trigger work.
    watched = [c.strip() for c in m._WATCHED.split(",")]
    changed = [f"old.{c} IS NOT new.{c}" for c in watched]
    for old_term, new_term in zip(_usage_sums("old", "sqlite"), _usage_sums("new", "sqlite")):
        changed.append(f"({old_term}) IS NOT ({new_term})")
    op.execute(f"CREATE TRIGGER interaction_summary_au AFTER UPDATE OF {m._WATCHED}, thought_tokens, cached_tokens, "
               f"usage_json ON interaction WHEN {' OR '.join(changed)} BEGIN "
               f"{_sqlite_count('old', '-')} {m._sqlite_remove('old')} "
               f"{_sqlite_count('new', '')} {m._sqlite_add('new')} END")


def _pg_triggers() -> None:
    m = _m0005()
    op.execute(f"""
CREATE OR REPLACE FUNCTION convostore_summary_insert() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
{_pg_count('new_rows', '')}
{m._pg_add('new_rows')}
RETURN NULL;
END $$""")
    op.execute(f"""
CREATE OR REPLACE FUNCTION convostore_summary_delete() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
{_pg_count('old_rows', '-')}
PERFORM convostore_conversation_recompute(ARRAY(SELECT DISTINCT conversation_id FROM old_rows));
RETURN NULL;
END $$""")
    op.execute(f"""
CREATE OR REPLACE FUNCTION convostore_summary_update() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
{_pg_count('old_rows', '-')}
{_pg_count('new_rows', '')}
PERFORM convostore_conversation_recompute(ARRAY(
    SELECT conversation_id FROM old_rows UNION SELECT conversation_id FROM new_rows));
RETURN NULL;
END $$""")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # Plain ADD COLUMN (never a batch table copy on SQLite: the triggers and FTS stay put).
    op.add_column('interaction', sa.Column('body', sa.LargeBinary(), nullable=True))
    op.add_column('interaction', sa.Column('thought_tokens', sa.Integer(), nullable=True))
    op.add_column('interaction', sa.Column('cached_tokens', sa.Integer(), nullable=True))
    op.drop_index('ix_interaction_expires_at', table_name='interaction')
    for c in _NEW_COUNTERS:
        op.add_column('interaction_count', sa.Column(c, sa.BigInteger(), nullable=False, server_default='0'))
    op.create_table(
        'body_backfill',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('after', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.execute("INSERT INTO body_backfill (id, after) SELECT 1, '' WHERE EXISTS (SELECT 1 FROM interaction)")
    if dialect == "sqlite":
        _sqlite_triggers()
    else:
        _pg_triggers()
    _recount(dialect)


def downgrade() -> None:
    raise NotImplementedError("0008 packs rows into body; export with this version and import into an older one instead")
