"""Every read: get, chain, chain_links, chain_turns, tree, tree_nodes, conversation, media, children, list,
conversations, search, stats. Reads go through ``_connect`` (on SQLite a plain ``BEGIN``,
so they never wait on the write lock) and stream when they could be large."""

from __future__ import annotations

import base64
import builtins
import os
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy import Integer, String, and_, bindparam, column, func, or_, select, text

from .. import wire
from ..errors import AmbiguousIdError, ChainCycleError, NotFoundError, StoreError
from . import packing, ranking, summary
from .base import StoreBase
from .rows import (
    BODY_FIELDS,
    M,
    R,
    T,
    Node,
    Row,
    Turn,
    _COLUMN_FOR_FIELD,
    _ROW_FIELDS,
    _SELECT_COLUMNS,
    _TYPED,
    _blank,
    _defaults,
    _encode,
    _utc,
)

#: A unique prefix this long (or longer) stands for the whole id.
MIN_PREFIX = 6
#: Prefixes are looked up only up to this length (ids are shorter; LIKE has limits).
MAX_PREFIX = 256
#: How many matching ids an ambiguous prefix's error names.
CANDIDATES = 5
#: The raw exchange's columns, which ``chain(raw=False)`` leaves out.
_RAW_BODIES = frozenset({"request_json", "response_json"})
#: How much of a turn's input text ``tree_nodes`` carries.
NODE_TEXT = 200

# Ancestors of :id. UNION (not UNION ALL) stops on a row already seen, so a cycle
# ends the recursion instead of looping; _order_chain then reports it.
_ANCESTORS = (
    "WITH RECURSIVE anc(id, parent_id) AS ("
    " SELECT id, parent_id FROM interaction WHERE id = :id"
    " UNION SELECT i.id, i.parent_id FROM interaction i JOIN anc ON i.id = anc.parent_id)"
)


_TURN_COLUMNS = "input_steps, output_steps, body, input_text, output_text"
_WALK = (
    "WITH RECURSIVE anc(id, parent_id, model, link, inp, outp, body, itext, otext, depth) AS ("
    f" SELECT id, parent_id, model, link, {_TURN_COLUMNS}, 0 FROM interaction WHERE id = :id"
    " UNION ALL SELECT i.id, i.parent_id, i.model, i.link, i.input_steps, i.output_steps, i.body, i.input_text,"
    " i.output_text, anc.depth + 1"
    " FROM interaction i JOIN anc ON i.id = anc.parent_id WHERE anc.depth < :bound)"
    " SELECT id, parent_id, model, link, inp, outp, body, itext, otext, depth FROM anc"
)


def _order_chain(head_id: str, rows: list[Any], key: Any) -> list[Any]:
    """Rows of a chain (any order) root first, walking parent links from the head."""
    by_id = {key(r)[0]: r for r in rows}
    out: list[Any] = []
    seen: set[str] = set()
    current: str | None = head_id
    while current is not None and current in by_id:
        if current in seen:
            raise ChainCycleError(f"the chain ending at {head_id} loops back on itself at {current}")
        seen.add(current)
        row = by_id[current]
        out.append(row)
        current = key(row)[1]
    out.reverse()
    return out


#: Seconds a listing (list, tree, search, stats, ...) waits for this Store's queued writes.
READ_WAIT = 10.0
#: Seconds ``get`` waits for the writer to link a queued stateless row by its content.
CONTENT_LINK_WAIT = 1.0
_FIELD_FOR_COLUMN = {column: field for field, column in _COLUMN_FOR_FIELD.items()}
_CONV_COUNT = select(func.count()).select_from(T).where(T.c.conversation_id == bindparam("cid"))
_STATUS = select(T.c.server_state, T.c.expires_at).where(T.c.id == bindparam("iid"))



#: ``Row``'s fields in order, as result columns, and which of them are times.
_ROW_COLUMNS = [_COLUMN_FOR_FIELD[name] for name in _ROW_FIELDS]
_ROW_TIMES = [i for i, name in enumerate(_ROW_FIELDS) if name in ("created", "updated", "recorded_at", "expires_at")]

class Queries(StoreBase):
    """The read side of ``Store``."""

    def _media_lookup(self) -> Any:
        def lookup(digest: str) -> str | None:
            with self._connect() as conn:
                data: str | None = conn.execute(select(M.c.data).where(M.c.sha256 == digest)).scalar()
                return data

        return lookup

    def _row(self, r: Any, depth: int = 0) -> Row:
        m = r._mapping
        values = [m[c] for c in _ROW_COLUMNS]
        for i in _ROW_TIMES:  # SQLite gives naive UTC datetimes
            v = values[i]
            if v is not None and v.tzinfo is None:
                values[i] = v.replace(tzinfo=timezone.utc)
        row = Row(*values)
        row.depth = depth
        row._media = self._media_lookup()
        return row

    # --- queued writes (read your own writes) ------------------------------------------

    def _queued(self, interaction_id: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """``(row, changes)`` still queued for the background writer: the row dict if its
        save is queued (later queued views and updates merged in), else the fields queued
        to change on the stored row."""
        bg = self._bg
        if bg is None:
            return None, {}
        ops = bg.view(interaction_id)
        if not ops:
            return None, {}
        row: dict[str, Any] | None = None
        changes: dict[str, Any] = {}
        for op in ops:
            if op["op"] == "save":
                if row is None:
                    row = dict(op["row"])
                else:  # a later view fills in, never blanks (as the merge does)
                    row.update((k, v) for k, v in op["row"].items() if not _blank(v))
            else:
                changes.update(op["fields"])
        if row is not None:
            row.update(changes)
            return row, {}
        return None, changes

    def _queued_row(self, row: dict[str, Any]) -> Row:
        """A queued row dict as a ``Row``; its links as the writer will most likely set them."""
        values, _ = _encode(row)
        parent = row.get("parent_id") or row.get("previous_interaction_id")
        values["parent_id"] = parent
        values["link"] = row.get("link") or ("server" if parent else "root")
        values["conversation_id"] = row.get("conversation_id") or self._conversation_of(parent) or row["id"]
        _defaults(values)
        fields: dict[str, Any] = {name: values.get(_COLUMN_FOR_FIELD[name]) for name in _ROW_FIELDS}
        out = Row(**fields, _media=self._media_lookup())
        for attr in ("created", "updated", "recorded_at", "expires_at"):
            setattr(out, attr, _utc(getattr(out, attr)))
        return out

    def _conversation_of(self, parent: str | None) -> str | None:
        if not parent:
            return None
        queued, _ = self._queued(parent)
        if queued is not None:
            return self._queued_row(queued).conversation_id
        cached = self._links.get(parent)
        if cached is not None:
            return str(cached.conversation_id)
        try:
            with self._connect() as conn:
                found = conn.execute(select(T.c.conversation_id).where(T.c.id == parent)).scalar()
        except StoreError:
            return None
        return None if found is None else str(found)

    def _with_changes(self, row: Row, changes: dict[str, Any]) -> Row:
        if BODY_FIELDS.intersection(changes):  # packed fields change together (as the write will)
            changes = {**changes, **row.body_parts(), **{k: changes[k] for k in BODY_FIELDS.intersection(changes)}}
            row._pack = row._derived = None
        values, _ = _encode(changes)
        for col, value in values.items():
            field = _FIELD_FOR_COLUMN.get(col)
            if field is not None and field != "id":
                setattr(row, field, _utc(value) if isinstance(value, datetime) else value)
        return row

    def _queued_chain(self, interaction_id: str) -> tuple[list[dict[str, Any]], str | None]:
        """The queued rows at the end of the chain ending at ``interaction_id`` (head first),
        and the stored ancestor the chain continues from (None: it starts in the queue)."""
        rows: list[dict[str, Any]] = []
        current: str | None = interaction_id
        seen: set[str] = set()
        while current is not None and current not in seen:
            queued, _ = self._queued(current)
            if queued is None:
                break
            seen.add(current)
            rows.append(queued)
            current = queued.get("parent_id") or queued.get("previous_interaction_id")
        return rows, current

    def _settle(self) -> None:
        """Before a listing: give this Store's queued writes up to ``READ_WAIT`` seconds to land."""
        bg = self._bg
        if bg is not None and bg.pending():
            bg.flush(READ_WAIT)

    # --- reads ------------------------------------------------------------------------

    def get(self, interaction_id: str) -> Row:
        """One interaction by id, or by a unique id prefix of at least MIN_PREFIX characters.

        A prefix that matches several interactions, or a shorter one that matches any,
        raises ``AmbiguousIdError`` naming up to ``CANDIDATES`` of them, so a person can
        pick one instead of reading "no interaction". Rows still queued for the
        background writer are found by their full id.
        """
        queued, changes = self._queued(interaction_id)
        if queued is not None:
            # Links and the context hash are set on write: give the writer a moment (a
            # bounded wait) to do it exactly; while the database is away, the queued view.
            bg = self._bg
            if bg is not None:
                bg.flush(CONTENT_LINK_WAIT)
            queued, changes = self._queued(interaction_id)
        if queued is not None:
            return self._queued_row(queued)
        row = self._get_db(interaction_id)
        return self._with_changes(row, changes) if changes else row

    @staticmethod
    def _linked_by_content(row: dict[str, Any]) -> bool:
        """A stateless call repeating history: its parent is found by content hash on write."""
        if row.get("parent_id") or row.get("previous_interaction_id") or row.get("link"):
            return False
        history, _ = wire.split_history(list(row.get("input_steps") or []))
        return bool(history)

    def _get_db(self, interaction_id: str) -> Row:
        with self._connect() as conn:
            r = conn.execute(select(*_SELECT_COLUMNS).where(T.c.id == interaction_id)).first()
            if r is None and 0 < len(interaction_id) <= MAX_PREFIX:
                ids = list(conn.execute(
                    select(T.c.id).where(T.c.id.startswith(interaction_id, autoescape=True)).order_by(T.c.id).limit(CANDIDATES + 1)
                ).scalars())
                if len(ids) == 1 and len(interaction_id) >= MIN_PREFIX:
                    r = conn.execute(select(*_SELECT_COLUMNS).where(T.c.id == ids[0])).first()
                elif ids:
                    more = ", …" if len(ids) > CANDIDATES else ""
                    what = "more than one interaction" if len(ids) > 1 else f"an interaction, but a prefix needs {MIN_PREFIX} characters"
                    raise AmbiguousIdError(
                        f"{interaction_id!r} matches {what}: {', '.join(ids[:CANDIDATES])}{more}; give more of the id",
                        ids[:CANDIDATES],
                    )
        if r is None:
            raise NotFoundError(f"no interaction {interaction_id!r} in {self.display_url}")
        return self._row(r)

    def server_status(self, interaction_id: str) -> tuple[str | None, datetime | None] | None:
        """(server_state, expires_at) of a stored interaction, or None: the resume check, kept cheap.

        Answers from a small cache of what this Store object itself wrote (saves,
        updates, marks keep it true); anything else is one indexed read. A change made
        by another process is seen once the entry leaves the cache; until then the
        worst case is one request to the server that fails and is rebuilt anyway.
        """
        queued, changes = self._queued(interaction_id)
        if queued is not None:
            expires = queued.get("expires_at")
            return queued.get("server_state"), _utc(expires) if isinstance(expires, datetime) else None
        status = self._status.get(interaction_id)
        if status is None:
            with self._connect() as conn:
                r = conn.execute(_STATUS, {"iid": interaction_id}).first()
            if r is None:
                return None
            status = r[0], _utc(r[1])
        if changes:
            expires = changes.get("expires_at", status[1])
            status = changes.get("server_state", status[0]), _utc(expires) if isinstance(expires, datetime) else None
        return status

    def exists(self, interaction_id: str) -> bool:
        if self._queued(interaction_id)[0] is not None:
            return True
        with self._connect() as conn:
            return conn.execute(select(T.c.id).where(T.c.id == interaction_id)).first() is not None

    def chain(self, interaction_id: str, *, raw: bool = True) -> list[Row]:
        """The interaction and its ancestors, root first, in one recursive query.

        ``raw=False`` leaves out the raw request and response bodies (``request`` reads
        ``{}``, ``response`` None): a viewer's read, since a stateless chain's requests
        repeat its whole history (bytes growing with the square of its length).
        """
        queued, stored = self._queued_chain(interaction_id)
        if queued:
            before = self._chain_db(stored, raw) if stored is not None and self._stored(stored) else []
            return before + [self._queued_row(r) for r in reversed(queued)]
        return self._chain_db(interaction_id, raw)

    def _stored(self, interaction_id: str) -> bool:
        with self._connect() as conn:
            return conn.execute(select(T.c.id).where(T.c.id == interaction_id)).first() is not None

    def _chain_db(self, interaction_id: str, raw: bool = True) -> list[Row]:
        head = self._get_db(interaction_id)
        cols = ", ".join(f"i.{c}" if raw or c not in _RAW_BODIES else f"NULL AS {c}" for c in T.c.keys())
        sql = text(f"{_ANCESTORS} SELECT {cols} FROM anc JOIN interaction i ON i.id = anc.id").columns(*_TYPED)
        with self._connect() as conn:
            rows = conn.execute(sql, {"id": head.id}).all()
        return [self._row(r) for r in _order_chain(head.id, rows, lambda r: (r.id, r.parent_id))]

    def chains(self, interaction_ids: Sequence[str]) -> dict[str, list[Row]]:
        """Each interaction's chain, root first, for many at once: one recursive query per call.

        For readers that walk thousands of conversations (``compare``); an id not
        stored is left out of the result.
        """
        ids = list(dict.fromkeys(interaction_ids))
        if not ids:
            return {}
        self._settle()
        cols = ", ".join(f"i.{c}" for c in T.c.keys())
        sql = text(
            "WITH RECURSIVE anc(head, id, parent_id) AS ("
            " SELECT id, id, parent_id FROM interaction WHERE id IN :ids"
            " UNION SELECT anc.head, i.id, i.parent_id FROM interaction i JOIN anc ON i.id = anc.parent_id)"
            f" SELECT anc.head AS chain_head, {cols} FROM anc JOIN interaction i ON i.id = anc.id"
        ).bindparams(bindparam("ids", expanding=True)).columns(column("chain_head", String), *_TYPED)
        by_head: dict[str, list[Any]] = {}
        with self._connect() as conn:
            for r in conn.execute(sql, {"ids": ids}):
                by_head.setdefault(r[0], []).append(r)
        return {
            head: [self._row(r) for r in _order_chain(head, rows, lambda r: (r.id, r.parent_id))]
            for head, rows in by_head.items()
        }

    def chain_links(self, interaction_id: str) -> list[tuple[str, str | None]]:
        """``(id, link)`` of the interaction and its ancestors, root first: a chain's shape
        without its payloads (counting turns, say), in one recursive query."""
        queued, stored = self._queued_chain(interaction_id)
        if queued:
            before = self._chain_links_db(stored) if stored is not None and self._stored(stored) else []
            return before + [(r.id, r.link) for r in map(self._queued_row, reversed(queued))]
        return self._chain_links_db(interaction_id)

    def _chain_links_db(self, interaction_id: str) -> list[tuple[str, str | None]]:
        sql = text(f"{_ANCESTORS} SELECT anc.id, anc.parent_id, i.link FROM anc JOIN interaction i ON i.id = anc.id")
        with self._connect() as conn:
            rows = conn.execute(sql, {"id": interaction_id}).all()
        if not rows:
            raise NotFoundError(f"no interaction {interaction_id!r} in {self.display_url}")
        return [(r[0], r[2]) for r in _order_chain(interaction_id, rows, lambda r: (r[0], r[1]))]

    def chain_turns(self, interaction_id: str) -> list["Turn"]:
        """The chain's turns, root first, with just what rebuilding history needs.

        One recursive query over a few columns, no per-row type processing: a
        10,000-turn chain comes back in milliseconds. (``chain`` returns full rows.)
        Turns still queued for the background writer are included.
        """
        queued, stored = self._queued_chain(interaction_id)
        if not queued:
            return self._chain_turns_db(interaction_id)
        turns = self._chain_turns_db(stored) if stored is not None and self._stored(stored) else []
        for r in reversed(queued):
            row = self._queued_row(r)
            turns.append(Turn(row.id, row.parent_id, row.model, row.link, row.input_steps, row.output_steps))
        turns[-1].request = self._queued_row(queued[0]).request
        return turns

    def _chain_turns_db(self, interaction_id: str) -> list["Turn"]:
        head = self._get_db(interaction_id)
        with self._connect() as conn:
            # Fast path: walk parents carrying the columns along, bounded by the size of
            # the conversation (a chain longer than that must loop, or cross into another
            # conversation: then the general, cycle-checking query decides).
            bound = 2 * (conn.execute(_CONV_COUNT, {"cid": head.conversation_id}).scalar() or 0) + 16
            rows = conn.execute(text(_WALK), {"id": head.id, "bound": bound}).all()
            if len(rows) > bound:
                sql = text(
                    f"{_ANCESTORS} SELECT i.id, i.parent_id, i.model, i.link, i.{_TURN_COLUMNS.replace(', ', ', i.')} "
                    "FROM anc JOIN interaction i ON i.id = anc.id"
                )
                rows = _order_chain(head.id, conn.execute(sql, {"id": head.id}).all(), lambda r: (r[0], r[1]))
            else:
                # SQLite's queue yields them in depth order already; sorting in Python
                # (linear on sorted input) keeps that a certainty without a SQL sort of
                # every row's JSON.
                rows.sort(key=lambda r: -r[9])
        # Rows written before 0008 (or with media): one parse for all of them, since
        # per-call overhead, not bytes, dominates thousands of small JSON texts.
        text_ = "[" + ",".join(f"[{r[4] or '[]'},{r[5] or '[]'}]" for r in rows if r[6] is None) + "]"
        legacy = iter(orjson.loads(text_))
        if "convostore-media:" in text_:
            legacy = iter(wire.join_media(list(legacy), self._media_lookup()))
        turns = []
        for r in rows:
            if r[6] is None:
                inputs, outputs = next(legacy)
            else:
                _, _, inputs, outputs, _ = packing.unpack(r[6], r[7], r[8])
            turns.append(Turn(r[0], r[1], r[2], r[3], inputs or [], outputs or []))
        turns[-1].request = head.request
        return turns

    def children(self, interaction_id: str) -> list[Row]:
        self._settle()
        with self._connect() as conn:
            rows = conn.execute(select(*_SELECT_COLUMNS).where(T.c.parent_id == interaction_id).order_by(T.c.recorded_at)).all()
        return [self._row(r) for r in rows]

    def tree(self, interaction_id: str) -> list[Row]:
        """The whole conversation, parents before children (depth-first), with ``depth`` set."""
        self._settle()
        row = self.get(interaction_id)
        with self._connect() as conn:
            rows = conn.execute(
                select(*_SELECT_COLUMNS).where(T.c.conversation_id == row.conversation_id).order_by(T.c.recorded_at, T.c.id)
            ).all()
        by_parent: dict[str | None, list[Any]] = {}
        ids = {r.id for r in rows}
        for r in rows:
            by_parent.setdefault(r.parent_id if r.parent_id in ids else None, []).append(r)
        out: list[Row] = []
        seen: set[str] = set()
        stack = [(r, 0) for r in reversed(by_parent.get(None, []))]
        while stack:
            r, depth = stack.pop()
            if r.id in seen:
                continue
            seen.add(r.id)
            out.append(self._row(r, depth))
            stack.extend((c, depth + 1) for c in reversed(by_parent.get(r.id, [])))
        return out

    def tree_nodes(self, conversation_id: str) -> builtins.list[Node]:
        """Every turn of a conversation as a ``Node`` (ids, links, a little text), oldest first.

        The tree's shape without its payloads: a viewer draws the branches from it and
        reads full rows only for the branch it shows. One read of the conversation index.
        """
        self._settle()
        q = (
            select(T.c.id, T.c.parent_id, T.c.link, T.c.model, T.c.status, T.c.server_state, T.c.recorded_at,
                   func.substr(T.c.input_text, 1, NODE_TEXT))
            .where(T.c.conversation_id == conversation_id)
            .order_by(T.c.recorded_at, T.c.id)
        )
        with self._connect() as conn:
            rows = conn.execute(q).all()
        return [Node(r[0], r[1], r[2], r[3], r[4], r[5], _utc(r[6]), r[7]) for r in rows]

    def conversation(self, conversation_id: str) -> summary.Conversation | None:
        """One conversation's summary (turns, newest turn, expiry), or None: one primary-key read,
        cheap enough to poll for news."""
        with self._connect() as conn:
            return summary.one(conn, conversation_id)

    def media(self, sha256: str) -> tuple[str | None, bytes] | None:
        """One stored media item as (mime type, bytes), by content hash; None when not stored."""
        with self._connect() as conn:
            r = conn.execute(select(M.c.mime_type, M.c.data).where(M.c.sha256 == sha256)).first()
        if r is None:
            return None
        return r[0], base64.b64decode(r[1])

    def list(
        self,
        *,
        conversation: str | Sequence[str] | None = None,
        model: str | None = None,
        status: str | None = None,
        server_state: str | None = None,
        since: datetime | None = None,
        replay_run_id: str | None = None,
        source_id: str | None = None,
        replays: bool = True,
        limit: int | None = None,
        oldest_first: bool = False,
    ) -> Iterator[Row]:
        """Interactions, newest first, streamed from the database (``conversation``: one id or several)."""
        self._settle()
        q = select(*_SELECT_COLUMNS)
        conds = []
        if isinstance(conversation, str):
            conds.append(T.c.conversation_id == conversation)
        elif conversation:
            conds.append(T.c.conversation_id.in_(list(conversation)))
        if model:
            conds.append(T.c.model == model)
        if status:
            conds.append(T.c.status == status)
        if server_state:
            conds.append(T.c.server_state == server_state)
        if since:
            conds.append(T.c.recorded_at >= _utc(since))
        if replay_run_id:
            conds.append(T.c.replay_run_id == replay_run_id)
        if source_id:
            conds.append(T.c.source_id == source_id)
        if not replays:
            conds.append(T.c.replay_run_id.is_(None))
        if conds:
            q = q.where(and_(*conds))
        order = (T.c.recorded_at, T.c.id) if oldest_first else (T.c.recorded_at.desc(), T.c.id.desc())
        q = q.order_by(*order)
        if limit:
            q = q.limit(limit)
        return self._stream(q)

    def _stream(self, q: Any) -> Iterator[Row]:
        with self._connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=500).execute(q)
            for r in result:
                yield self._row(r)

    def iter_all(self) -> Iterator[Row]:
        """Every interaction, oldest first, streamed (exports)."""
        return self.list(oldest_first=True)

    def conversations(self, *, since: datetime | None = None) -> Iterator[Row]:
        """The newest turn of each original (non-replay) conversation whose newest turn did
        not fail, by latest activity (oldest first): replay's "every conversation"."""
        self._settle()
        C = summary.C
        q = (
            select(*_SELECT_COLUMNS)
            .select_from(C.join(T, T.c.id == C.c.head_id))
            .where(C.c.replay == False, or_(C.c.status.is_(None), C.c.status != "failed"))  # noqa: E712
            .order_by(C.c.updated_at, C.c.id)
        )
        if since:
            q = q.where(C.c.updated_at >= _utc(since))
        return self._stream(q)

    def list_conversations(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        model: str | None = None,
        status: str | None = None,
        server_state: str | None = None,
        label: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        replays: bool = False,
    ) -> summary.ConversationPage:
        """A page of conversations by latest activity, newest first; pass the page's
        ``next`` as ``after`` for the one after it (keyset: every page costs the same).

        Filters look at each conversation's newest turn (``model``, ``status``,
        ``server_state``, ``label`` as ``KEY`` or ``KEY=VALUE``) and its latest activity
        (``since`` <= it < ``until``). Replayed conversations only with ``replays``.
        """
        self._settle()
        with self._connect() as conn:
            return summary.conversation_page(
                conn, self.dialect, limit=limit, after=after, model=model, status=status, server_state=server_state,
                label=label, since=since, until=until, replays=replays,
            )

    def expiring_heads(self, horizon: datetime) -> Iterator[summary.LiveHead]:
        """Conversations whose newest live turn expires by ``horizon``, soonest first, streamed."""
        with self._connect() as conn:
            yield from summary.expiring_heads(conn, horizon)

    def search(self, query: str, *, limit: int = 50, order: str = "relevance") -> builtins.list[Row]:  # `list` is a method here
        """Full-text search over input and output text; user text is never FTS syntax.

        ``order="newest"``: the newest matches first (SQLite: most recently stored), read
        straight off the index, as fast for a word in every row as for a rare one.
        ``order="relevance"`` (BM25 on SQLite, ``ts_rank`` on PostgreSQL) ranks at most
        the newest ``ranking.CANDIDATES`` matches: exact for a word in fewer rows than that,
        and for a common word the best of its recent matches rather than of all of them,
        so a word in every row of a million costs what a rare one does.
        """
        if order not in ("relevance", "newest"):
            raise StoreError(f"search order is 'relevance' or 'newest', not {order!r}")
        self._settle()
        words = re.findall(r"\w+", query, flags=re.UNICODE)
        if not words or limit < 1:
            return []
        with self._connect() as conn:
            if self.dialect == "sqlite":
                rowids = ranking.sqlite_rowids(conn, words, limit=limit, newest=order == "newest")
                ranked = ranking.sqlite_rows_in_order(conn, rowids, [column("convostore_rowid", Integer()), *_TYPED])
            else:
                ids = ranking.pg_ids(conn, words, limit=limit, newest=order == "newest")
                ranked = ranking.pg_rows_in_order(conn, ids, _TYPED)
            return [self._row(r) for r in ranked]

    def usage(
        self,
        *,
        by_run: bool = False,
        conversations: Sequence[str] | None = None,
        by_day: bool = False,
        since: datetime | None = None,
        scan: bool = False,
    ) -> builtins.list[dict[str, Any]]:
        """Token sums per model: what a price table turns into cost.

        ``calls`` counts the interactions with usage; ``thought`` and ``cached`` come
        from it; ``long_context`` holds the same sums for prompts past
        ``LONG_CONTEXT_TOKENS`` (billed at a model's long-context rates). Per model over
        the whole archive they are read from the counters the triggers keep (0008: a few
        rows at any size). Otherwise summed over the rows, with ``max_input`` (the largest
        prompt): ``by_run`` per replay run and model (replayed rows only, through the
        replay-run index); ``conversations``: only those, per ``conversation``; ``by_day``:
        per UTC ``day`` (YYYY-MM-DD); ``since``: recorded then or later (the
        ``recorded_at`` index); ``scan``: the counters' figures recomputed from the rows.
        """
        self._settle()
        if not (by_run or by_day or scan or conversations is not None or since is not None):
            with self._connect() as conn:
                return summary.usage_counts(conn)
        if conversations is not None and not conversations:
            return []
        with self._connect() as conn:
            return summary.usage_scan(conn, self.dialect, by_run=by_run, conversations=conversations, by_day=by_day,
                                      since=_utc(since) if since is not None else None)

    def stats(self) -> dict[str, Any]:
        """Counts by model, status and server state; tokens; conversations.

        From the counters the triggers keep (``interaction_count``, ``conversation``):
        a few small reads at any archive size, exact after every write."""
        self._settle()
        with self._connect() as conn:
            counts = summary.counts(conn)
            media = conn.execute(select(func.count(), func.coalesce(func.sum(M.c.size), 0)).select_from(M)).first()
            runs = conn.execute(select(func.count()).select_from(R)).scalar() or 0
            # Two index probes (min and max of the recorded_at index), not a scan.
            first = conn.execute(select(func.min(T.c.recorded_at))).scalar()
            last = conn.execute(select(func.max(T.c.recorded_at))).scalar()
        size = None
        if self.path and os.path.exists(self.path):
            size = os.path.getsize(self.path)
        return {
            "database": self.display_url,
            **counts,
            "media": {"items": media[0], "bytes": int(media[1])},
            "replay_runs": runs,
            "first_recorded": _utc(first),
            "last_recorded": _utc(last),
            "file_bytes": size,
        }
