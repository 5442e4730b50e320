"""Rows stored before migration 0008 packed into ``body``, a batch per transaction.

The migration itself only adds columns (seconds at any size); this pass then rewrites
the old rows (``packing``), in id order, each batch its own short transaction that
also moves ``body_backfill.after`` forward: killed or interrupted, the next open
resumes after the last batch that committed, and a row not packed yet reads as before.
Writers are never blocked for more than a batch. Rows that refer to stored media keep
their JSON columns (``removal`` finds media references there).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.engine import Engine

from .rows import _BODY_COLUMNS, _COLUMN_FOR_FIELD, _ROW_FIELDS, _SELECT_COLUMNS, Row, T, _encode

log = logging.getLogger("convostore")

#: Rows read and rewritten per transaction.
BATCH = 2000
_PACK = (
    update(T)
    .where(T.c.id == bindparam("b_id"), T.c.body.is_(None))
    .values(body=bindparam("b_body"), thought_tokens=bindparam("b_thought"), cached_tokens=bindparam("b_cached"),
            **{c: None for c in _BODY_COLUMNS})
)


def pending(engine: Engine) -> bool:
    """Whether rows stored before 0008 may still wait to be packed."""
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT 1 FROM body_backfill WHERE id = 1")).first() is not None
        except Exception:  # noqa: BLE001 - an archive before 0008 has no such table
            return False


def _packed(r: Any) -> dict[str, Any] | None:
    """The update for one stored row, or None when it stays as it is."""
    m = r._mapping
    if m["body"] is not None or all(m[c] is None for c in _BODY_COLUMNS):
        return None
    if any(m[c] is not None and "convostore-media:" in m[c] for c in _BODY_COLUMNS):
        return None
    row = Row(**{name: m[_COLUMN_FOR_FIELD[name]] for name in _ROW_FIELDS})
    values, media = _encode(row.body_parts())
    if media or values.get("body") is None:
        return None
    return {"b_id": m["id"], "b_body": values["body"], "b_thought": values.get("thought_tokens"),
            "b_cached": values.get("cached_tokens")}


def run_batch(engine: Engine, dialect: str, batch: int = BATCH) -> int | None:
    """Pack the next ``batch`` rows; how many were rewritten, None once nothing is left."""
    lock = " FOR UPDATE" if dialect == "postgresql" else ""
    with engine.begin() as conn:
        after = conn.execute(text(f"SELECT after FROM body_backfill WHERE id = 1{lock}")).scalar()
        if after is None:
            return None
        rows = conn.execute(select(*_SELECT_COLUMNS).where(T.c.id > after).order_by(T.c.id).limit(batch)).all()
        if not rows:
            conn.execute(text("DELETE FROM body_backfill"))
            return None
        updates = [u for u in map(_packed, rows) if u is not None]
        if updates:
            conn.execute(_PACK, updates)
        conn.execute(text("UPDATE body_backfill SET after = :a WHERE id = 1"), {"a": rows[-1].id})
        return len(updates)


def run(engine: Engine, dialect: str, batch: int = BATCH) -> int:
    """Pack every row still waiting; returns how many were rewritten."""
    total = 0
    while (n := run_batch(engine, dialect, batch)) is not None:
        total += n
    if total:
        log.info("convostore: packed %d rows stored before schema 0008", total)
    return total
