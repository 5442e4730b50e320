"""The import journal: how a SQLite import commits in bounded batches yet stays all or nothing.

SQLite has one writer at a time. An import that held the write lock for its whole run
made every recorder wait behind it (then lose its row). So an import on SQLite commits
each batch (about a thousand rows, tens of milliseconds of lock) and records, in the
same transaction, what the batch did: the rowid range it inserted (no other writer can
insert inside a transaction that holds the lock, so the range is exactly its rows), the
replay runs it added, and the export line of each stored row it replaced. On failure
(a bad line, a loop, a conflict under ``fail``, an exception) the import undoes itself
from the journal before raising; an import that was killed (its owner process gone) is
undone by the next import. Rows are visible to readers as their batch commits.

PostgreSQL does not need this (its writers do not block each other) and keeps one
transaction per import.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, delete, insert, select

from .models import ImportJournal

if TYPE_CHECKING:  # pragma: no cover
    from . import Store, Writer

J: Table = ImportJournal.__table__  # type: ignore[attr-defined]  # set by SQLModel, not in its stubs
_TOP = "SELECT coalesce(max(rowid), 0) FROM interaction"
_PAUSE = "INSERT INTO interaction_fts_pause (id) VALUES (1)"
_HAS_PAUSE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'interaction_fts_pause'"
_RESUME = "DELETE FROM interaction_fts_pause"
_INDEX_RANGE = (
    "INSERT INTO interaction_fts(rowid, input_text, output_text) SELECT rowid, input_text, output_text "
    "FROM interaction WHERE rowid >= ? AND (input_text IS NOT NULL OR output_text IS NOT NULL)"
)

#: Re-inserts replaced rows from their export lines (the importer's own line reader).
Restore = Callable[["Writer", list[bytes]], None]


def _owner() -> str:
    return f"{socket.gethostname()} {os.getpid()}"


def _alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(" ")
    if host != socket.gethostname():
        return True  # another machine's import: not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


class Journal:
    """One import's record of what its committed batches did (see the module doc)."""

    def __init__(self, store: "Store") -> None:
        self.store = store
        self.id = uuid.uuid4().hex
        self.base = 0
        self._lo: int | None = None
        self._bulk = False

    def start(self, restore: Restore) -> int:
        """Undo imports killed midway, register this one; returns the table's top rowid."""
        undo_stale(self.store, restore)
        with self.store.writer() as w:
            w.conn.execute(insert(J).values(import_id=self.id, kind="job", ref=_owner()))
            self.base = w.conn.exec_driver_sql(_TOP).scalar() or 0
            # An archive opened without migrating (migrate=False) may predate 0006: its
            # trigger then indexes row by row, as it always did.
            self._bulk = w.conn.exec_driver_sql(_HAS_PAUSE).scalar() is not None
        return self.base

    @contextmanager
    def batch(self) -> Iterator["Writer"]:
        """One committed batch; the rows inserted inside ``inserting`` are journalled as
        one rowid range in the same transaction."""
        self._lo = None
        with self.store.writer() as w:
            yield w
            if self._lo is not None:
                hi = w.conn.exec_driver_sql(_TOP).scalar() or 0
                if hi >= self._lo:
                    w.conn.execute(insert(J).values(import_id=self.id, kind="rows", lo=self._lo, hi=hi))

    @contextmanager
    def inserting(self, w: "Writer") -> Iterator[None]:
        """Around the batch's inserts (after any deletes): journals their rowid range and
        indexes it for full-text search in one statement (migration 0006: the per-row
        trigger is paused inside this transaction only; FTS5 would flush a segment per row)."""
        self._lo = (w.conn.exec_driver_sql(_TOP).scalar() or 0) + 1
        if not self._bulk:
            yield
            return
        w.conn.exec_driver_sql(_PAUSE)
        yield
        w.conn.exec_driver_sql(_INDEX_RANGE, (self._lo,))
        w.conn.exec_driver_sql(_RESUME)

    def run(self, w: "Writer", run_id: str) -> None:
        w.conn.execute(insert(J).values(import_id=self.id, kind="run", ref=run_id))

    def replaced(self, w: "Writer", lines: list[bytes]) -> None:
        if lines:
            w.conn.execute(insert(J), [{"import_id": self.id, "kind": "replaced", "ref": x.decode()} for x in lines])

    def finish(self, w: "Writer") -> None:
        """Inside the import's last transaction: the import is done, forget its journal."""
        w.conn.execute(delete(J).where(J.c.import_id == self.id))

    def undo(self, restore: Restore) -> None:
        undo(self.store, self.id, restore)


def undo(store: "Store", import_id: str, restore: Restore) -> None:
    """Take back everything the journal says ``import_id`` committed, in one transaction."""
    with store.writer() as w:
        entries = w.conn.execute(
            select(J.c.kind, J.c.lo, J.c.hi, J.c.ref).where(J.c.import_id == import_id).order_by(J.c.seq)
        ).all()
        for kind, lo, hi, ref in entries:
            if kind == "rows":
                w.conn.exec_driver_sql("DELETE FROM interaction WHERE rowid BETWEEN ? AND ?", (lo, hi))
            elif kind == "run":
                w.conn.exec_driver_sql("DELETE FROM replay_run WHERE id = ?", (ref,))
        restore(w, [ref.encode() for kind, _, _, ref in entries if kind == "replaced"])
        w.conn.execute(delete(J).where(J.c.import_id == import_id))


def undo_stale(store: "Store", restore: Restore) -> list[str]:
    """Undo the imports whose owner process is gone (killed midway); returns their ids."""
    with store._connect() as conn:
        jobs: list[Any] = conn.execute(select(J.c.import_id, J.c.ref).where(J.c.kind == "job")).all()
    stale = [import_id for import_id, owner in jobs if not _alive(owner or "")]
    for import_id in stale:
        undo(store, import_id, restore)
    return stale
