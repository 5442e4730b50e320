"""Deleting from the archive: one interaction, a whole conversation, or old conversations.

The archive holds personal data, so it must be possible to remove it; and removing must
leave the rest consistent. What goes with a deleted row: its continuation hops, the rows
replayed from it (``source_id``), those rows' own continuations, media no remaining row
references, replay runs left with no rows, and (through the FTS5 delete trigger, or the
generated column on PostgreSQL) its search entries. One interaction that later turns
build on (a non-continuation child) is refused: deleting it would leave their parent
link dangling; delete the conversation instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.engine import Connection

from ..errors import ConvostoreError
from .queries import Queries
from .rows import M, R, T, _utc

#: Ids per IN (...) list: well under SQLite's bound-parameter limit.
CHUNK = 500
_MEDIA_REF = re.compile(r"convostore-media:sha256:([0-9a-f]{64})")
_JSON_COLUMNS = ("request_json", "response_json", "input_steps", "output_steps")


class HasLaterTurnsError(ConvostoreError):
    """An interaction that later turns continue from: deleting it alone would orphan them."""

    def __init__(self, message: str, children: list[str]) -> None:
        self.children = children
        super().__init__(message)


@dataclass
class Removal:
    """What a delete or purge removed (or, with ``dry_run``, would remove)."""

    ids: list[str] = field(default_factory=list)
    conversations: list[str] = field(default_factory=list)
    live: list[str] = field(default_factory=list)  # of ``ids``, those the server may still hold
    media: int = 0
    runs: int = 0
    dry_run: bool = False
    server_deleted: int = 0
    server_gone: int = 0

    @property
    def interactions(self) -> int:
        return len(self.ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "interactions": self.interactions, "conversations": len(self.conversations), "media": self.media,
            "replay_runs": self.runs, "live_on_server": len(self.live), "server_deleted": self.server_deleted,
            "server_gone": self.server_gone, "dry_run": self.dry_run, "ids": self.ids,
        }


def _chunks(items: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


class Removals(Queries):
    """``Store.delete`` and ``Store.purge``."""

    def delete(self, interaction_id: str, *, conversation: bool = False, dry_run: bool = False) -> Removal:
        """Delete one interaction (with its continuation hops and replayed rows), or its whole conversation.

        A single interaction that later turns continue from raises ``HasLaterTurnsError``
        naming them (``conversation=True`` deletes them all). ``dry_run`` only reports.
        """
        self._settle()
        row = self.get(interaction_id)
        with self._open_for(dry_run) as conn:
            if conversation:
                seeds = set(conn.execute(select(T.c.id).where(T.c.conversation_id == row.conversation_id)).scalars())
                ids = _expand(conn, seeds, children=True)
            else:
                ids = _expand(conn, {row.id}, children=False)
                orphans = _children_outside(conn, ids)
                if orphans:
                    shown = ", ".join(orphans[:5]) + (", …" if len(orphans) > 5 else "")
                    raise HasLaterTurnsError(
                        f"{row.id} has later turns that continue from it ({shown}): deleting it alone would cut "
                        "their chain; delete the later turns first, or the whole conversation (--conversation)",
                        orphans,
                    )
            return self._remove(conn, ids, dry_run)

    def purge(self, before: datetime, *, model: str | None = None, dry_run: bool = False) -> Removal:
        """Delete every conversation whose newest turn was recorded before ``before``.

        ``model``: only conversations with at least one turn on that model. Replayed
        conversations go with the conversation they replay.
        """
        replayed = func.sum(case((T.c.replay_run_id.is_(None), 0), else_=1))
        query = (
            select(T.c.conversation_id)
            .group_by(T.c.conversation_id)
            .having(and_(func.max(T.c.recorded_at) < _utc(before), replayed == 0))
        )
        if model is not None:
            query = query.having(func.sum(case((T.c.model == model, 1), else_=0)) > 0)
        self._settle()
        with self._open_for(dry_run) as conn:
            conversations = [c for c in conn.execute(query).scalars() if c is not None]
            seeds: set[str] = set()
            for batch in _chunks(conversations):
                seeds |= set(conn.execute(select(T.c.id).where(T.c.conversation_id.in_(batch))).scalars())
            return self._remove(conn, _expand(conn, seeds, children=True), dry_run)

    def _remove(self, conn: Connection, ids: set[str], dry_run: bool) -> Removal:
        result = Removal(dry_run=dry_run)
        media: set[str] = set()
        runs: set[str] = set()
        conversations: set[str] = set()
        columns = [T.c.id, T.c.conversation_id, T.c.server_state, T.c.store, T.c.replay_run_id, *(T.c[c] for c in _JSON_COLUMNS)]
        for batch in _chunks(sorted(ids)):
            for r in conn.execute(select(*columns).where(T.c.id.in_(batch))):
                result.ids.append(r.id)
                if r.conversation_id:
                    conversations.add(r.conversation_id)
                if r.server_state == "live" and r.store is not False and not r.id.startswith("local-"):
                    result.live.append(r.id)
                if r.replay_run_id:
                    runs.add(r.replay_run_id)
                for column in _JSON_COLUMNS:
                    value = getattr(r, column)
                    if value and "convostore-media:" in str(value):
                        media.update(_MEDIA_REF.findall(str(value)))
        result.ids.sort()
        result.conversations = sorted(conversations)
        if not dry_run:
            for batch in _chunks(result.ids):
                conn.execute(delete(T).where(T.c.id.in_(batch)))
            self._status.clear()
            self._links.clear()
        unused_media = [h for h in sorted(media) if not _media_in_use(conn, h, exclude=ids if dry_run else None)]
        empty_runs = [r for r in sorted(runs) if not _run_in_use(conn, r, exclude=ids if dry_run else None)]
        result.media, result.runs = len(unused_media), len(empty_runs)
        if not dry_run:
            for batch in _chunks(unused_media):
                conn.execute(delete(M).where(M.c.sha256.in_(batch)))
            for batch in _chunks(empty_runs):
                conn.execute(delete(R).where(R.c.id.in_(batch)))
        return result

    def _settle(self) -> None:
        """Recorded saves still queued in the background land first, never after their conversation went."""
        flush = getattr(self, "flush", None)
        if flush is not None:
            flush()

    def _open_for(self, dry_run: bool) -> Any:
        """A write transaction, or for a dry run a read connection (no write lock taken)."""
        return self._connect() if dry_run else self._begin()


def _expand(conn: Connection, ids: set[str], *, children: bool) -> set[str]:
    """``ids`` plus everything hanging off them: continuation hops and replayed rows, and
    with ``children`` every later turn too, until nothing new turns up."""
    found = set(ids)
    frontier = set(ids)
    while frontier:
        new: set[str] = set()
        for batch in _chunks(frontier):
            follows = T.c.parent_id.in_(batch) if children else and_(T.c.parent_id.in_(batch), T.c.link == "continuation")
            new |= set(conn.execute(select(T.c.id).where(or_(T.c.source_id.in_(batch), follows))).scalars())
        frontier = new - found
        found |= frontier
    return found


def _children_outside(conn: Connection, ids: set[str]) -> list[str]:
    out: list[str] = []
    for batch in _chunks(ids):
        out += [c for c in conn.execute(select(T.c.id).where(T.c.parent_id.in_(batch))).scalars() if c not in ids]
    return sorted(out)


def _media_in_use(conn: Connection, sha256: str, exclude: set[str] | None) -> bool:
    ref = f"%convostore-media:sha256:{sha256}%"
    query = select(T.c.id).where(or_(*(T.c[c].like(ref) for c in _JSON_COLUMNS)))
    if exclude is None:
        return conn.execute(query.limit(1)).first() is not None
    return any(i not in exclude for i in conn.execute(query).scalars())


def _run_in_use(conn: Connection, run_id: str, exclude: set[str] | None) -> bool:
    query = select(T.c.id).where(T.c.replay_run_id == run_id)
    if exclude is None:
        return conn.execute(query.limit(1)).first() is not None
    return any(i not in exclude for i in conn.execute(query).scalars())
