"""The archive: every read and write of interactions, media and replay runs.

The store knows nothing of the SDK. Writes go through SQLAlchemy Core (no ORM objects
on the hot path); a save costs one parent lookup and one statement, whatever the
chain's length. Reads that could be large (listings, exports) stream.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections import namedtuple
from contextlib import contextmanager
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from sqlalchemy import Integer, and_, bindparam, column, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from .. import wire
from ..errors import ChainCycleError, NotFoundError, StoreError
from . import engine as _engine
from .models import Interaction, Media, ReplayRun

T = Interaction.__table__
M = Media.__table__
R = ReplayRun.__table__

#: JSON columns: row key → column name.
_JSON = {
    "request": "request_json",
    "response": "response_json",
    "input_steps": "input_steps",
    "output_steps": "output_steps",
    "usage": "usage_json",
    "labels": "labels",
    "error": "error",
}
_COLUMNS = frozenset(T.c.keys())
_COLUMN_ORDER = tuple(T.c.keys())
_RUN_JSON = ("settings", "summary")
MAX_DEPTH = 1_000_000
# Ancestors of :id. UNION (not UNION ALL) stops on a row already seen, so a cycle
# ends the recursion instead of looping; _order_chain then reports it.
_ANCESTORS = (
    "WITH RECURSIVE anc(id, parent_id) AS ("
    " SELECT id, parent_id FROM interaction WHERE id = :id"
    " UNION SELECT i.id, i.parent_id FROM interaction i JOIN anc ON i.id = anc.parent_id)"
)


_WALK = (
    "WITH RECURSIVE anc(id, parent_id, model, link, inp, outp, depth) AS ("
    " SELECT id, parent_id, model, link, input_steps, output_steps, 0 FROM interaction WHERE id = :id"
    " UNION ALL SELECT i.id, i.parent_id, i.model, i.link, i.input_steps, i.output_steps, anc.depth + 1"
    " FROM interaction i JOIN anc ON i.id = anc.parent_id WHERE anc.depth < :bound)"
    " SELECT id, parent_id, model, link, inp, outp, depth FROM anc"
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


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, default=str).decode()


def _encode(row: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A row dict as column values (JSON as orjson text, times in UTC), plus the JSON
    values that carry inline media and still need splitting out (column → value)."""
    values: dict[str, Any] = {}
    media: dict[str, Any] = {}
    for key, value in row.items():
        column = _JSON.get(key, key)
        if column not in _COLUMNS:
            continue
        if key in _JSON:
            if isinstance(value, (str, bytes)) and key in ("request", "response"):
                value = orjson.loads(value)
            raw = _dumps(value)
            if raw is not None and len(raw) >= wire.MEDIA_MIN_CHARS and wire.has_media(raw):
                media[column] = value
            value = raw
        elif isinstance(value, datetime):
            value = _utc(value)
        values[column] = value
    return values, media


def _defaults(values: dict[str, Any]) -> None:
    if values.get("recorded_at") is None:
        values["recorded_at"] = datetime.now(timezone.utc)
    for flag in ("partial", "store", "background", "stream"):
        if values.get(flag) is None:
            values[flag] = flag == "store"
    if values.get("hop_index") is None:
        values["hop_index"] = 0


def _blank(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, str) and value in ("", "[]", "{}", "null"))


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


@dataclass
class Row:
    """One stored interaction. JSON columns are parsed on first access."""

    id: str
    conversation_id: str
    parent_id: str | None
    previous_interaction_id: str | None
    link: str | None
    model: str | None
    agent: str | None
    status: str | None
    partial: bool
    store: bool
    background: bool
    stream: bool
    request_json: str | None
    response_json: str | None
    input_steps_json: str | None
    output_steps_json: str | None
    input_text: str | None
    output_text: str | None
    usage_json: str | None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    created: datetime | None
    updated: datetime | None
    recorded_at: datetime | None
    latency_ms: float | None
    expires_at: datetime | None
    server_state: str | None
    labels_json: str | None
    error_json: str | None
    context_hash: str | None
    hop_index: int
    api_version: str | None
    replay_run_id: str | None
    source_id: str | None
    depth: int = 0
    _media: Any = None

    def _json(self, raw: str | None) -> Any:
        if raw is None:
            return None
        value = orjson.loads(raw)
        if self._media is not None and "convostore-media:" in raw:
            value = wire.join_media(value, self._media)
        return value

    @property
    def request(self) -> dict[str, Any]:
        return self._json(self.request_json) or {}

    @property
    def response(self) -> dict[str, Any] | None:
        return self._json(self.response_json)

    @property
    def input_steps(self) -> list[dict[str, Any]]:
        return self._json(self.input_steps_json) or []

    @property
    def output_steps(self) -> list[dict[str, Any]]:
        return self._json(self.output_steps_json) or []

    @property
    def usage(self) -> dict[str, Any] | None:
        return self._json(self.usage_json)

    @property
    def labels(self) -> dict[str, Any] | None:
        return self._json(self.labels_json)

    @property
    def error(self) -> dict[str, Any] | None:
        return self._json(self.error_json)

    def to_json_dict(self) -> dict[str, Any]:
        """The shape the CLI's ``--json`` prints."""
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "parent_id": self.parent_id,
            "previous_interaction_id": self.previous_interaction_id,
            "link": self.link,
            "model": self.model,
            "agent": self.agent,
            "status": self.status,
            "partial": self.partial,
            "store": self.store,
            "background": self.background,
            "stream": self.stream,
            "input_text": self.input_text,
            "output_text": self.output_text,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "created": self.created,
            "updated": self.updated,
            "recorded_at": self.recorded_at,
            "latency_ms": self.latency_ms,
            "expires_at": self.expires_at,
            "server_state": self.server_state,
            "labels": self.labels,
            "error": self.error,
            "hop_index": self.hop_index,
            "api_version": self.api_version,
            "replay_run_id": self.replay_run_id,
            "source_id": self.source_id,
        }


_ROW_FIELDS = [f.name for f in fields(Row) if not f.name.startswith("_") and f.name != "depth"]
_SELECT_COLUMNS = [T.c[name] for name in T.c.keys()]
_TYPED = [column(c.name, c.type) for c in _SELECT_COLUMNS]
# Prebuilt statements for the recorder's hot path: compiled once, cached by SQLAlchemy.
_EXISTS = select(T.c.id).where(T.c.id == bindparam("iid"))
_PARENT = select(T.c.id, T.c.conversation_id, T.c.context_hash).where(T.c.id == bindparam("pid"))
_MATCH = (
    select(T.c.id, T.c.conversation_id, T.c.context_hash)
    .where(T.c.context_hash == bindparam("h"), T.c.replay_run_id.is_(None))
    .order_by(T.c.recorded_at.desc())
    .limit(1)
)
_INSERT = insert(T)
# One prebuilt statement: a fresh in_() per batch left a compiled-cache entry behind each time.
_EXISTING = select(T.c.id).where(T.c.id.in_(bindparam("ids", expanding=True)))
_SQL_INSERT = f"INSERT INTO interaction ({', '.join(T.c.keys())}) VALUES ({', '.join('?' * len(T.c))})"
_SQL_INSERT_NEW = _SQL_INSERT + " ON CONFLICT (id) DO NOTHING"
_LinkRow = namedtuple("_LinkRow", "id conversation_id context_hash")


class _RawLinks:
    """Parent and content-hash lookups on a raw sqlite3 cursor (the fast path)."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def parent(self, parent_id: str) -> Any:
        r = self.cur.execute("SELECT id, conversation_id, context_hash FROM interaction WHERE id = ?", (parent_id,)).fetchone()
        return _LinkRow(*r) if r else None

    def match(self, wanted: str) -> Any:
        r = self.cur.execute(
            "SELECT id, conversation_id, context_hash FROM interaction WHERE context_hash = ? AND replay_run_id IS NULL "
            "ORDER BY recorded_at DESC LIMIT 1",
            (wanted,),
        ).fetchone()
        return _LinkRow(*r) if r else None


def _sqlite_param(value: Any) -> Any:
    """A value as SQLAlchemy's SQLite dialect stores it (so both paths read back the same)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


_ZERO = timedelta(0)
#: The column order _sqlite_params writes (checked against the table at import).
_PARAMS_ORDER = (
    "id", "conversation_id", "parent_id", "previous_interaction_id", "link", "model", "agent", "status",
    "partial", "store", "background", "stream", "request_json", "response_json", "input_steps", "output_steps",
    "input_text", "output_text", "usage_json", "input_tokens", "output_tokens", "total_tokens", "created",
    "updated", "recorded_at", "latency_ms", "expires_at", "server_state", "labels", "error", "context_hash",
    "hop_index", "api_version", "replay_run_id", "source_id",
)
if _PARAMS_ORDER != _COLUMN_ORDER:  # pragma: no cover - a schema change must update _sqlite_params
    raise RuntimeError("_sqlite_params is out of step with the interaction table")


class _Media(Exception):
    """A JSON value carries inline media: the general path splits it out."""


def _sqlite_json(value: Any) -> str | None:
    if value is None:
        return None
    raw = orjson.dumps(value, default=str).decode()
    if len(raw) >= wire.MEDIA_MIN_CHARS and wire.has_media(raw):
        raise _Media
    return raw


def _sqlite_time(value: Any) -> Any:
    """A datetime as SQLAlchemy's SQLite dialect stores it (UTC, naive, microseconds)."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is not None and value.tzinfo is not timezone.utc and value.utcoffset() != _ZERO:
        value = value.astimezone(timezone.utc)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond
    )


def _sqlite_params(row: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """A row dict straight to the driver's parameter tuple, in table order: the values
    ``_encode`` + ``_defaults`` + ``_sqlite_param`` give, at a third of the cost.
    None when the general path must do it (inline media to split out, raw JSON text)."""
    if "request_json" in row or "response_json" in row or "usage_json" in row:
        return None
    g = row.get
    request, response = g("request"), g("response")
    if isinstance(request, (str, bytes)):
        request = orjson.loads(request)
    if isinstance(response, (str, bytes)):
        response = orjson.loads(response)
    recorded_at = g("recorded_at")
    partial, store, background, stream, hop = g("partial"), g("store"), g("background"), g("stream"), g("hop_index")
    try:
        return (
            g("id"), g("conversation_id"), g("parent_id"), g("previous_interaction_id"), g("link"), g("model"),
            g("agent"), g("status"),
            False if partial is None else partial, True if store is None else store,
            False if background is None else background, False if stream is None else stream,
            _sqlite_json(request), _sqlite_json(response), _sqlite_json(g("input_steps")),
            _sqlite_json(g("output_steps")), g("input_text"), g("output_text"), _sqlite_json(g("usage")),
            g("input_tokens"), g("output_tokens"), g("total_tokens"), _sqlite_time(g("created")),
            _sqlite_time(g("updated")), _sqlite_time(datetime.now(timezone.utc) if recorded_at is None else recorded_at),
            g("latency_ms"), _sqlite_time(g("expires_at")), g("server_state"), _sqlite_json(g("labels")),
            _sqlite_json(g("error")), g("context_hash"), 0 if hop is None else hop, g("api_version"),
            g("replay_run_id"), g("source_id"),
        )
    except _Media:
        return None
_SQL_TOP_ROWID = "SELECT coalesce(max(rowid), 0) FROM interaction"
_SQL_EXISTING = "SELECT id FROM interaction WHERE id IN (SELECT value FROM json_each(?))"
_PG_TRACK = "CREATE TEMPORARY TABLE convostore_new_rows (id text PRIMARY KEY) ON COMMIT DROP"
_PG_TRACK_COPY = "COPY convostore_new_rows (id) FROM STDIN"
_PG_COPY = f"COPY interaction ({', '.join(_COLUMN_ORDER)}) FROM STDIN"
# The chain check (Writer.check_chains): walk down from the new rows whose parent is
# not new; older rows met on the way (older rows whose parent is new) are leaves.
# UNION ALL is safe: a row has one parent, so a loop of new rows has no way in.
# Per dialect: whether row {t} is new; the new rows as n (FROM ... WHERE ...); the join
# that keeps its left side the outer loop (SQLite's CROSS JOIN), so probes go from the
# new rows into the indexes and never scan the older ones.
_NEW = {
    "sqlite": ("{t}.rowid > :base", "interaction n", "n.rowid > :base", "CROSS JOIN"),
    "postgresql": (
        "EXISTS (SELECT 1 FROM convostore_new_rows x WHERE x.id = {t}.id)",
        "convostore_new_rows x JOIN interaction n ON n.id = x.id",
        "TRUE",
        "JOIN",
    ),
}


def _chain_sql(dialect: str) -> tuple[str, str, str]:
    """(counts, one unreached new row, an older row on a loop) for ``Writer.check_chains``."""
    new, scan, is_new, join = _NEW[dialect]
    walk = (
        "WITH RECURSIVE ok(id, new) AS ("
        f" SELECT n.id, 1 FROM {scan} WHERE {is_new} AND NOT EXISTS ("
        f"  SELECT 1 FROM interaction p WHERE p.id = n.parent_id AND {new.format(t='p')})"
        f" UNION ALL SELECT c.id, CASE WHEN {new.format(t='c')} THEN 1 ELSE 0 END"
        f"  FROM ok {join} interaction c ON c.parent_id = ok.id WHERE ok.new = 1)"
    )
    counts = (
        f"{walk} SELECT (SELECT count(*) FROM {scan} WHERE {is_new}),"
        " coalesce(sum(new), 0), count(*) - coalesce(sum(new), 0) FROM ok"
    )
    unreached = f"{walk} SELECT n.id FROM {scan} WHERE {is_new} AND n.id NOT IN (SELECT id FROM ok) LIMIT 1"
    # Older rows whose parent is new, each walked up its ancestors (UNION: ends on a loop).
    older = (
        "WITH RECURSIVE d(start, id, parent_id) AS ("
        f" SELECT c.id, c.id, c.parent_id FROM {scan} {join} interaction c ON c.parent_id = n.id"
        f"  WHERE {is_new} AND NOT {new.format(t='c')}"
        " UNION SELECT d.start, i.id, i.parent_id FROM d JOIN interaction i ON i.id = d.parent_id)"
        " SELECT start FROM d WHERE parent_id = start LIMIT 1"
    )
    return counts, unreached, older


_CHAIN_SQL = {d: _chain_sql(d) for d in _NEW}
# SQLite's quick test, two index probes per new row: a loop of new rows needs a new row
# whose parent is new and was inserted at or after it (rowids grow in insert order); a
# loop through older rows needs an older row whose parent is new. Neither: no loop.
# (CROSS JOIN keeps the new rows the outer loop: the probes must not scan older rows.)
_SQLITE_QUICK = (
    "SELECT (SELECT count(*) FROM interaction n CROSS JOIN interaction p ON p.id = n.parent_id"
    " WHERE n.rowid > :base AND p.rowid >= n.rowid),"
    " (SELECT count(*) FROM interaction n CROSS JOIN interaction c ON c.parent_id = n.id"
    " WHERE n.rowid > :base AND c.rowid <= :base)"
)


_CONV_COUNT = select(func.count()).select_from(T).where(T.c.conversation_id == bindparam("cid"))
_STATUS = select(T.c.server_state, T.c.expires_at).where(T.c.id == bindparam("iid"))


@dataclass
class Turn:
    """One turn of a chain, as ``history`` needs it."""

    id: str
    parent_id: str | None
    model: str | None
    link: str | None
    input_steps: list[dict[str, Any]]
    output_steps: list[dict[str, Any]]
    request: dict[str, Any] | None = None


@dataclass
class Run:
    id: str
    source_conversation_id: str | None
    source_head_id: str | None
    model: str | None
    agent: str | None
    mode: str
    settings: dict[str, Any]
    status: str
    created_at: datetime | None
    finished_at: datetime | None
    summary: dict[str, Any]


class Writer:
    """Saves inside one open transaction (see ``Store.writer``).

    With ``check_chains`` the writer keeps track of the rows it inserts (SQLite: the
    rowids past the table's top when the transaction began; PostgreSQL: a temporary
    table of ids) so ``check_chains`` can prove, in SQL and before COMMIT, that they
    close no loop of parent links.
    """

    def __init__(self, store: "Store", conn: Connection, *, check_chains: bool = False) -> None:
        self.store = store
        self.conn = conn
        self._cur: Any = None
        self._tracking = check_chains
        self._base = 0
        if check_chains:
            if store.dialect == "sqlite":
                self._base = conn.exec_driver_sql(_SQL_TOP_ROWID).scalar() or 0
            else:
                conn.exec_driver_sql(_PG_TRACK)

    def _raw(self) -> Any:
        """A driver cursor inside this writer's transaction (SQLite)."""
        if self._cur is None:
            self._cur = self.conn.connection.driver_connection.cursor()
        return self._cur

    def _track(self, ids: list[str]) -> None:
        if self._tracking and ids and self.store.dialect != "sqlite":
            with self._pg().cursor().copy(_PG_TRACK_COPY) as copy:
                for i in ids:
                    copy.write_row((i,))

    def _pg(self) -> Any:
        """The psycopg connection under this writer's transaction (PostgreSQL)."""
        return self.conn.connection.driver_connection

    def save(self, row: Mapping[str, Any], *, merge: bool = False) -> bool:
        """Insert ``row``; returns False when its id is already stored (and ``merge`` is off)."""
        existed = self._tracking and self.store.dialect != "sqlite" and self.conn.execute(_EXISTS, {"iid": row["id"]}).first() is not None
        saved = self.store._save(self.conn, row, merge=merge)
        if saved and not existed:
            self._track([row["id"]])
        return saved

    def save_many(self, rows: list[Mapping[str, Any]]) -> int:
        """Insert a batch (imports): one id lookup and one multi-row insert; returns how many were new.

        Rows whose link is not given (no ``conversation_id``, ``link`` or
        ``context_hash``) are linked against what is stored, so a caller puts such a
        row in a batch only after its parent has been saved.
        """
        if not rows:
            return 0
        if self.store.dialect == "sqlite":
            return self._save_many_sqlite(rows)
        conn = self.conn
        ids = [r["id"] for r in rows]
        existing = set(conn.execute(_EXISTING, {"ids": ids}).scalars())
        fresh: list[dict[str, Any]] = []
        seen: set[str] = set()
        for row in rows:
            if row["id"] in existing or row["id"] in seen:
                continue
            seen.add(row["id"])
            values = self.store._values(row, conn)
            if not all(row.get(k) for k in ("conversation_id", "link", "context_hash")):
                self.store._link(conn, row, values)
            _defaults(values)
            fresh.append({c: values.get(c) for c in _COLUMN_ORDER})
        if fresh:
            # COPY rather than a multi-row INSERT: the same rows in one stream, without
            # per-row parameter processing on either side (~2x the import rate).
            with self._pg().cursor().copy(_PG_COPY) as copy:
                for v in fresh:
                    copy.write_row([v[c] for c in _COLUMN_ORDER])
            self._track([v["id"] for v in fresh])
        return len(fresh)

    def _save_many_sqlite(self, rows: list[Mapping[str, Any]]) -> int:
        """``save_many`` through the driver: one json_each id lookup, one executemany of
        prebuilt parameter tuples (no per-row SQLAlchemy parameter processing)."""
        cur = self._raw()
        ids = [r["id"] for r in rows]
        existing = {r[0] for r in cur.execute(_SQL_EXISTING, (orjson.dumps(ids).decode(),))}
        fresh: list[tuple[Any, ...]] = []
        links: _RawLinks | None = None
        for row in rows:
            iid = row["id"]
            if iid in existing:
                continue
            existing.add(iid)
            params = _sqlite_params(row)
            if params is None or not (row.get("conversation_id") and row.get("link") and row.get("context_hash")):
                # Inline media to split out, or a link to find: the general encoding.
                values = self.store._values(row, self.conn)
                if not all(row.get(k) for k in ("conversation_id", "link", "context_hash")):
                    links = links or _RawLinks(cur)
                    self.store._link(links, row, values)
                _defaults(values)
                params = tuple(_sqlite_param(values.get(c)) for c in _COLUMN_ORDER)
            fresh.append(params)
        if fresh:
            cur.executemany(_SQL_INSERT, fresh)
        return len(fresh)

    def check_chains(self) -> None:
        """Raise ``ChainCycleError`` if the rows this writer inserted close a loop of parent links.

        One walk down from the new rows whose parent is not new (a root, a stored row,
        or an id not in the archive): every new row must be reached, else it sits on
        (or under) a loop of new rows. A loop through older rows must pass an older row
        whose parent is new; those few are found by the same walk and each checked
        with an ancestor query. On SQLite a cheaper test (``_SQLITE_QUICK``) comes
        first and the walk runs only when a new row's parent came in after it.
        """
        if not self._tracking:
            raise StoreError("this writer was not opened with check_chains=True")
        conn = self.conn
        counts, unreached, older_loop = _CHAIN_SQL[self.store.dialect]
        args = {"base": self._base} if self.store.dialect == "sqlite" else {}
        if self.store.dialect == "sqlite":
            forward, older = conn.execute(text(_SQLITE_QUICK), args).one()
            new_rows = reached = 0
            if forward:
                new_rows, reached, older = conn.execute(text(counts), args).one()
        else:
            new_rows, reached, older = conn.execute(text(counts), args).one()
        if reached != new_rows:
            start = conn.execute(text(unreached), args).scalar()
            raise ChainCycleError(f"imported chains loop: {self._on_loop(start)} is its own ancestor")
        if older:
            looped = conn.execute(text(older_loop), args).scalar()
            if looped is not None:
                raise ChainCycleError(f"imported chains loop: {looped} is its own ancestor")

    def _on_loop(self, start: str) -> str:
        """A row on the loop above ``start`` (walking parents until one repeats)."""
        seen: set[str] = set()
        node: str | None = start
        while node is not None and node not in seen:
            seen.add(node)
            node = self.conn.execute(select(T.c.parent_id).where(T.c.id == node)).scalar()
        return node or start

    def save_run(self, run: Mapping[str, Any]) -> bool:
        if self.conn.execute(select(R.c.id).where(R.c.id == run["id"])).first() is not None:
            return False
        values = {k: (_dumps(v) if k in _RUN_JSON else v) for k, v in run.items() if k in R.c}
        for key in ("created_at", "finished_at"):
            if isinstance(values.get(key), str):
                from ..records import parse_time

                values[key] = parse_time(values[key])
        self.conn.execute(insert(R).values(**values))
        return True


class Store:
    """A convostore archive on SQLite (default) or PostgreSQL.

    ``url``: a SQLAlchemy URL or a file path; default ``$CONVOSTORE_DB``, else a file
    in the user data directory. The schema is migrated to head on open.
    """

    def __init__(self, url: str | os.PathLike[str] | None = None, *, retention: Any = "paid", migrate: bool = True) -> None:
        self.url = _engine.resolve_url(url)
        self.retention = retention
        self.dialect = "sqlite" if self.url.startswith("sqlite") else "postgresql"
        # The recorder's SQLite fast path writes through one driver connection of its
        # own, taken from the pool once: threads of this process queue on this lock
        # (woken at once) rather than on SQLite's busy handler (which polls and sleeps).
        self._lock = threading.Lock()
        self._fast: Any = None  # (pid, pooled connection) for _save_sqlite_fast
        self._reader: Engine | None = None
        self._status: dict[str, tuple[str | None, datetime | None]] = {}
        self._links: dict[str, _LinkRow] = {}  # id -> what _link needs of it, for rows saved here
        self._engine: Engine | None = _engine.create(self.url)
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            if migrate and _engine.current_revision(self._engine) != _engine.SCHEMA_HEAD:
                _engine.upgrade(self._engine)
        except SQLAlchemyError as exc:
            self._engine.dispose()
            self._engine = None
            raise StoreError(f"cannot open database {self.display_url}: {_reason(exc)}") from exc

    # --- lifecycle -----------------------------------------------------------------

    @property
    def display_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def path(self) -> str | None:
        """The SQLite file, if this store is one."""
        return make_url(self.url).database if self.dialect == "sqlite" else None

    def __repr__(self) -> str:
        return f"Store({self.display_url!r})"

    def close(self) -> None:
        with self._lock:
            if self._fast is not None and self._fast[0] == os.getpid():
                self._fast[1].close()  # back to the pool, which dispose() then closes
            self._fast = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._reader = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise StoreError(f"the store {self.display_url} is closed")
        return self._engine

    def upgrade(self) -> str:
        """Apply pending migrations; returns the schema revision."""
        try:
            _engine.upgrade(self.engine)
            return _engine.current_revision(self.engine) or ""
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot upgrade {self.display_url}: {_reason(exc)}") from exc

    def _begin(self) -> Any:
        try:
            return self.engine.begin()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot write to {self.display_url}: {_reason(exc)}") from exc

    def _connect(self) -> Any:
        """A connection for reads: on SQLite it does not take the write lock."""
        try:
            if self._reader is None:
                self._reader = _engine.reader(self.engine)
            return self._reader.connect()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read {self.display_url}: {_reason(exc)}") from exc

    # --- writes --------------------------------------------------------------------

    def _values(self, row: Mapping[str, Any], conn: Connection) -> dict[str, Any]:
        """Column values for a row dict; inline media moved to the media table."""
        values, media = _encode(row)
        for column, value in media.items():
            split, found = wire.split_media(value)
            self._put_media(conn, found)
            values[column] = _dumps(split)
        return values

    def _put_media(self, conn: Connection, found: Mapping[str, tuple[str | None, str]]) -> None:
        existing = set(conn.execute(select(M.c.sha256).where(M.c.sha256.in_(list(found)))).scalars())
        new = [{"sha256": h, "mime_type": m, "data": d, "size": len(d)} for h, (m, d) in found.items() if h not in existing]
        if new:
            conn.execute(insert(M), new)

    def save(self, row: Mapping[str, Any]) -> Row:
        """Insert an interaction, or merge into the stored one with the same id.

        Linking on insert: an explicit ``parent_id``; else a stored
        ``previous_interaction_id`` (link ``server``); else, for a stateless call whose
        input repeats history, the stored turn whose context hash matches it (link
        ``stateless``); else a new conversation (link ``root``).
        """
        if not row.get("id"):
            raise StoreError("an interaction needs an id")
        try:
            with self._begin() as conn:
                self._save(conn, row)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot save {row['id']} to {self.display_url}: {_reason(exc)}") from exc
        return self.get(row["id"])

    def save_quiet(self, row: Mapping[str, Any]) -> None:
        """``save`` without reading the row back: the recorder's hot path."""
        if not row.get("id"):
            raise StoreError("an interaction needs an id")
        if self.dialect == "sqlite":
            try:
                if self._save_sqlite_fast(row):
                    return
            except (sqlite3.Error, SQLAlchemyError) as exc:
                raise StoreError(f"cannot save {row['id']} to {self.display_url}: {_reason(exc)}") from exc
        try:
            with self._begin() as conn:
                self._save(conn, row)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot save {row['id']} to {self.display_url}: {_reason(exc)}") from exc

    @contextmanager
    def writer(self, *, check_chains: bool = False) -> Iterator["Writer"]:
        """One transaction for many saves (imports): all of them land, or none.

        ``check_chains``: before COMMIT, refuse (``ChainCycleError``, nothing written)
        if the new rows' parent links loop.
        """
        try:
            with self._begin() as conn:
                w = Writer(self, conn, check_chains=check_chains)
                yield w
                if check_chains:
                    w.check_chains()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot write to {self.display_url}: {_reason(exc)}") from exc

    def _save(self, conn: Connection, row: Mapping[str, Any], *, merge: bool = True) -> bool:
        self._status.pop(row["id"], None)
        self._links.pop(row["id"], None)
        existing = conn.execute(_EXISTS, {"iid": row["id"]}).first()
        if existing is not None:
            if not merge:
                return False
            # A later view (a GET of a background job, a resumed stream) fills in what
            # it knows; it never blanks out what an earlier save recorded.
            values = {k: v for k, v in self._values(row, conn).items() if k != "id" and not _blank(v)}
            if values:
                conn.execute(update(T).where(T.c.id == row["id"]).values(**values))
            return True
        values = self._values(row, conn)
        self._link(conn, row, values)
        _defaults(values)
        conn.execute(insert(T), values)  # a cached compiled INSERT: ~2x faster than .values(**values)
        return True

    def _link(self, conn: Any, row: Mapping[str, Any], values: dict[str, Any]) -> None:
        """Parent, link kind, conversation and context hash of a new row (see ``save``).

        ``conn`` is a SQLAlchemy connection or a ``_RawLinks`` (the SQLite fast path).
        """
        inputs = row.get("input_steps") or []
        outputs = row.get("output_steps") or []
        history, _ = wire.split_history(list(inputs))
        parent_id = row.get("parent_id")
        link = row.get("link")
        parent = None
        if parent_id:
            parent = self._parent(conn, parent_id)
            link = link or ("server" if row.get("previous_interaction_id") == parent_id else "rebuilt")
        elif link or row.get("conversation_id"):
            pass  # the caller decided (replays, imports)
        elif row.get("previous_interaction_id"):
            parent_id = row["previous_interaction_id"]
            parent = self._parent(conn, parent_id)
            link = "server"
        elif history:
            wanted = wire.context_hash(None, history)
            match = conn.match(wanted) if isinstance(conn, _RawLinks) else conn.execute(_MATCH, {"h": wanted}).first()
            if match is not None:
                parent_id, parent, link = match.id, match, "stateless"
        if parent is not None:
            conversation = parent.conversation_id
            ctx = wire.context_hash(None, list(inputs) + list(outputs)) if history else wire.context_hash(parent.context_hash, list(inputs) + list(outputs))
        else:
            conversation = row.get("conversation_id") or parent_id or row["id"]
            ctx = wire.context_hash(None, list(inputs) + list(outputs))
        values["parent_id"] = parent_id
        values["link"] = link or ("server" if parent_id else "root")
        values["conversation_id"] = row.get("conversation_id") or conversation
        values.setdefault("context_hash", row.get("context_hash") or ctx)
        if values.get("context_hash") is None:
            values["context_hash"] = ctx

    def _parent(self, conn: Any, parent_id: str) -> Any:
        cached = self._links.get(parent_id)
        if cached is not None:
            return cached
        if isinstance(conn, _RawLinks):
            return conn.parent(parent_id)
        return conn.execute(_PARENT, {"pid": parent_id}).first()

    def _save_sqlite_fast(self, row: Mapping[str, Any]) -> bool:
        """The recorder's insert on SQLite through the driver directly: the parent read
        and one ``INSERT ... ON CONFLICT DO NOTHING`` that is its own transaction (no
        BEGIN/COMMIT round trips), the row encoded straight into the parameter tuple, on
        a connection kept for the purpose (no pool checkout per call). Returns False to
        ask for the general path (an existing id to merge, or inline media)."""
        links: dict[str, Any] = {}
        with self._lock:
            fast = self._fast
            if fast is None or fast[0] != os.getpid():  # first use, or a forked child
                fast = self._fast = (os.getpid(), self.engine.raw_connection())
            driver = fast[1].driver_connection
            if driver.in_transaction:  # never left open by this path; a guard, not a branch taken
                driver.rollback()
            cur = driver.cursor()
            # The parent's conversation and context hash never change once written, so
            # reading them outside the insert's transaction is safe.
            self._link(_RawLinks(cur), row, links)
            full = {**row, **links}
            params = _sqlite_params(full)
            if params is None:
                return False
            cur.execute(_SQL_INSERT_NEW, params)
            if cur.rowcount != 1:
                return False  # stored already: merge on the general path
        self._remember_status(full)
        # The next turn of this chain names this row as its parent: keep what linking
        # reads of it (fixed once written), so that turn's save needs no parent query.
        if len(self._links) >= 4096:
            self._links.clear()
        self._links[full["id"]] = _LinkRow(full["id"], full.get("conversation_id"), full.get("context_hash"))
        return True

    def update(self, interaction_id: str, **fields_: Any) -> Row:
        """Change stored fields of one interaction (row-dict keys, e.g. ``status``, ``labels``)."""
        self._status.pop(interaction_id, None)
        self._links.pop(interaction_id, None)
        with self._begin() as conn:
            values = self._values(fields_, conn)
            values.pop("id", None)
            result = conn.execute(update(T).where(T.c.id == interaction_id).values(**values)) if values else None
            if result is not None and result.rowcount == 0:
                raise NotFoundError(f"no interaction {interaction_id!r} in {self.display_url}")
        return self.get(interaction_id)

    def mark_server_state(self, interaction_id: str, state: str) -> None:
        """Record what the server knows of an interaction: live, expired, deleted, not_stored."""
        self._status.pop(interaction_id, None)
        with self._begin() as conn:
            result = conn.execute(update(T).where(T.c.id == interaction_id).values(server_state=state))
            if result.rowcount == 0:
                raise NotFoundError(f"no interaction {interaction_id!r} in {self.display_url}")

    # --- reads ---------------------------------------------------------------------

    def _media_lookup(self) -> Any:
        def lookup(digest: str) -> str | None:
            with self._connect() as conn:
                return conn.execute(select(M.c.data).where(M.c.sha256 == digest)).scalar()

        return lookup

    def _row(self, r: Any, depth: int = 0) -> Row:
        m = r._mapping
        row = Row(
            **{name: m[_COLUMN_FOR_FIELD[name]] for name in _ROW_FIELDS},
            depth=depth,
            _media=self._media_lookup(),
        )
        for attr in ("created", "updated", "recorded_at", "expires_at"):
            setattr(row, attr, _utc(getattr(row, attr)))
        return row

    def get(self, interaction_id: str) -> Row:
        """One interaction by id, or by a unique id prefix."""
        with self._connect() as conn:
            r = conn.execute(select(*_SELECT_COLUMNS).where(T.c.id == interaction_id)).first()
            if r is None and len(interaction_id) >= 6:
                found = conn.execute(
                    select(*_SELECT_COLUMNS).where(T.c.id.startswith(interaction_id, autoescape=True)).limit(2)
                ).all()
                if len(found) == 1:
                    r = found[0]
                elif len(found) > 1:
                    raise NotFoundError(f"{interaction_id!r} matches more than one interaction; give more of the id")
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
        cached = self._status.get(interaction_id)
        if cached is not None:
            return cached
        with self._connect() as conn:
            r = conn.execute(_STATUS, {"iid": interaction_id}).first()
        if r is None:
            return None
        return r[0], _utc(r[1])

    def _remember_status(self, values: Mapping[str, Any]) -> None:
        if "server_state" in values or "expires_at" in values:
            iid = values["id"]
            if len(self._status) >= 4096:
                self._status.clear()
            state = values.get("server_state")
            expires = values.get("expires_at")
            self._status[iid] = (state, _utc(expires) if isinstance(expires, datetime) else None)

    def exists(self, interaction_id: str) -> bool:
        with self._connect() as conn:
            return conn.execute(select(T.c.id).where(T.c.id == interaction_id)).first() is not None

    def chain(self, interaction_id: str) -> list[Row]:
        """The interaction and its ancestors, root first, in one recursive query."""
        head = self.get(interaction_id)
        cols = ", ".join(f"i.{c}" for c in T.c.keys())
        sql = text(f"{_ANCESTORS} SELECT {cols} FROM anc JOIN interaction i ON i.id = anc.id").columns(*_TYPED)
        with self._connect() as conn:
            rows = conn.execute(sql, {"id": head.id}).all()
        return [self._row(r) for r in _order_chain(head.id, rows, lambda r: (r.id, r.parent_id))]

    def chain_links(self, interaction_id: str) -> list[tuple[str, str | None]]:
        """``(id, link)`` of the interaction and its ancestors, root first: a chain's shape
        without its payloads (counting turns, say), in one recursive query."""
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
        """
        head = self.get(interaction_id)
        with self._connect() as conn:
            # Fast path: walk parents carrying the columns along, bounded by the size of
            # the conversation (a chain longer than that must loop, or cross into another
            # conversation: then the general, cycle-checking query decides).
            bound = 2 * (conn.execute(_CONV_COUNT, {"cid": head.conversation_id}).scalar() or 0) + 16
            rows = conn.execute(text(_WALK), {"id": head.id, "bound": bound}).all()
            if len(rows) > bound:
                sql = text(
                    f"{_ANCESTORS} SELECT i.id, i.parent_id, i.model, i.link, i.input_steps, i.output_steps "
                    "FROM anc JOIN interaction i ON i.id = anc.id"
                )
                rows = _order_chain(head.id, conn.execute(sql, {"id": head.id}).all(), lambda r: (r[0], r[1]))
            else:
                # SQLite's queue yields them in depth order already; sorting in Python
                # (linear on sorted input) keeps that a certainty without a SQL sort of
                # every row's JSON.
                rows.sort(key=lambda r: -r[6])
        # One parse for the whole chain: per-call overhead, not bytes, dominates
        # thousands of small JSON texts.
        text_ = "[" + ",".join(f"[{r[4] or '[]'},{r[5] or '[]'}]" for r in rows) + "]"
        parsed = orjson.loads(text_)
        if "convostore-media:" in text_:
            parsed = wire.join_media(parsed, self._media_lookup())
        turns = [Turn(r[0], r[1], r[2], r[3], p[0], p[1]) for r, p in zip(rows, parsed)]
        turns[-1].request = head.request
        return turns

    def children(self, interaction_id: str) -> list[Row]:
        with self._connect() as conn:
            rows = conn.execute(select(*_SELECT_COLUMNS).where(T.c.parent_id == interaction_id).order_by(T.c.recorded_at)).all()
        return [self._row(r) for r in rows]

    def tree(self, interaction_id: str) -> list[Row]:
        """The whole conversation, parents before children (depth-first), with ``depth`` set."""
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

    def list(
        self,
        *,
        conversation: str | None = None,
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
        """Interactions, newest first, streamed from the database."""
        q = select(*_SELECT_COLUMNS)
        conds = []
        if conversation:
            conds.append(T.c.conversation_id == conversation)
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
        """The newest recorded turn of each original (non-replay) conversation."""
        sub = select(T.c.conversation_id, func.max(T.c.recorded_at).label("latest")).where(T.c.replay_run_id.is_(None))
        if since:
            sub = sub.where(T.c.recorded_at >= _utc(since))
        sub = sub.group_by(T.c.conversation_id).subquery()
        q = (
            select(*_SELECT_COLUMNS)
            .join(sub, and_(T.c.conversation_id == sub.c.conversation_id, T.c.recorded_at == sub.c.latest))
            .where(T.c.replay_run_id.is_(None), T.c.status != "failed")
            .order_by(T.c.recorded_at)
        )
        seen: set[str] = set()
        for row in self._stream(q):
            if row.conversation_id not in seen:
                seen.add(row.conversation_id)
                yield row

    def search(self, query: str, *, limit: int = 50) -> list[Row]:
        """Full-text search over input and output text; user text is never FTS syntax."""
        words = re.findall(r"\w+", query, flags=re.UNICODE)
        if not words:
            return []
        cols = ", ".join(f"i.{c}" for c in T.c.keys())
        if self.dialect == "sqlite":
            self._catch_up_search()
            match = " ".join('"' + w.replace('"', '""') + '"' for w in words)
            sql = text(
                f"SELECT {cols} FROM interaction_fts f JOIN interaction i ON i.rowid = f.rowid "
                "WHERE interaction_fts MATCH :q ORDER BY f.rank LIMIT :limit"
            )
            params: dict[str, Any] = {"q": match, "limit": limit}
        else:
            sql = text(
                f"SELECT {cols} FROM interaction i WHERE i.search_vector @@ plainto_tsquery('simple', :q) "
                "ORDER BY ts_rank(i.search_vector, plainto_tsquery('simple', :q)) DESC, i.recorded_at DESC LIMIT :limit"
            )
            params = {"q": " ".join(words), "limit": limit}
        with self._connect() as conn:
            return [self._row(r) for r in conn.execute(sql.columns(*_TYPED), params).all()]

    def _catch_up_search(self) -> None:
        """Index the rows recorded since the last search (SQLite keeps FTS off the hot path)."""
        with self._begin() as conn:
            last = conn.exec_driver_sql("SELECT last_rowid FROM interaction_fts_state WHERE id = 1").scalar() or 0
            top = conn.exec_driver_sql("SELECT coalesce(max(rowid), 0) FROM interaction").scalar() or 0
            if top > last:
                conn.exec_driver_sql(
                    "INSERT INTO interaction_fts(rowid, input_text, output_text) "
                    "SELECT rowid, input_text, output_text FROM interaction WHERE rowid > ? AND rowid <= ?",
                    (last, top),
                )
                conn.exec_driver_sql("UPDATE interaction_fts_state SET last_rowid = ? WHERE id = 1", (top,))

    def stats(self) -> dict[str, Any]:
        """Counts by model, status and server state; tokens; conversations."""
        with self._connect() as conn:
            total = conn.execute(select(func.count()).select_from(T)).scalar() or 0
            conversations = conn.execute(select(func.count(func.distinct(T.c.conversation_id)))).scalar() or 0
            tokens = conn.execute(select(func.coalesce(func.sum(T.c.total_tokens), 0))).scalar() or 0

            def by(col: Any) -> dict[str, int]:
                return {str(k): v for k, v in conn.execute(select(col, func.count()).group_by(col).order_by(func.count().desc())).all()}

            media = conn.execute(select(func.count(), func.coalesce(func.sum(M.c.size), 0)).select_from(M)).first()
            runs = conn.execute(select(func.count()).select_from(R)).scalar() or 0
            first_last = conn.execute(select(func.min(T.c.recorded_at), func.max(T.c.recorded_at))).first()
            groups = {"by_model": by(T.c.model), "by_status": by(T.c.status), "by_server_state": by(T.c.server_state)}
        size = None
        if self.path and os.path.exists(self.path):
            size = os.path.getsize(self.path)
        return {
            "database": self.display_url,
            "interactions": total,
            "conversations": conversations,
            "total_tokens": int(tokens),
            **groups,
            "media": {"items": media[0], "bytes": int(media[1])},
            "replay_runs": runs,
            "first_recorded": _utc(first_last[0]),
            "last_recorded": _utc(first_last[1]),
            "file_bytes": size,
        }

    # --- replay runs ----------------------------------------------------------------

    def create_run(self, **values: Any) -> Run:
        values = {k: (_dumps(v) if k in _RUN_JSON else v) for k, v in values.items() if k in R.c}
        values.setdefault("created_at", datetime.now(timezone.utc))
        with self._begin() as conn:
            conn.execute(insert(R).values(**values))
        return self.get_run(values["id"])

    def update_run(self, run_id: str, **values: Any) -> Run:
        values = {k: (_dumps(v) if k in _RUN_JSON else v) for k, v in values.items() if k in R.c and k != "id"}
        with self._begin() as conn:
            if conn.execute(update(R).where(R.c.id == run_id).values(**values)).rowcount == 0:
                raise NotFoundError(f"no replay run {run_id!r}")
        return self.get_run(run_id)

    def _run(self, r: Any) -> Run:
        m = dict(r._mapping)
        for k in _RUN_JSON:
            m[k] = orjson.loads(m[k]) if m[k] else {}
        m["created_at"], m["finished_at"] = _utc(m["created_at"]), _utc(m["finished_at"])
        return Run(**m)

    def get_run(self, run_id: str) -> Run:
        with self._connect() as conn:
            r = conn.execute(select(R).where(R.c.id == run_id)).first()
        if r is None:
            raise NotFoundError(f"no replay run {run_id!r}")
        return self._run(r)

    def list_runs(self) -> list[Run]:
        with self._connect() as conn:
            return [self._run(r) for r in conn.execute(select(R).order_by(R.c.created_at.desc(), R.c.id.desc())).all()]


_COLUMN_FOR_FIELD = {name: {"input_steps_json": "input_steps", "output_steps_json": "output_steps", "labels_json": "labels", "error_json": "error"}.get(name, name) for name in _ROW_FIELDS}


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    msg = str(orig or exc).strip().splitlines()[0] if str(orig or exc).strip() else type(exc).__name__
    return msg


__all__ = ["Store", "Row", "Run", "Turn"]
