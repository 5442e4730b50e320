"""The write path: save/merge and linking, ``update``/``mark_server_state``, the
recorder's SQLite fast path (one kept driver connection behind the store's lock) and the
batched ``Writer`` that imports use (one transaction, optional chain-loop check)."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from .. import wire
from ..errors import ChainCycleError, NotFoundError, StoreError
from . import summary
from . import engine as _engine
from . import spool as _spool
from .background import BackgroundWriter
from .base import _reason
from .queries import Queries
from .rows import (
    BODY_COLUMN,
    BODY_FIELDS,
    PACKED_COLUMNS,
    M,
    R,
    T,
    Row,
    _SELECT_COLUMNS,
    _COLUMN_ORDER,
    _LinkRow,
    _RUN_JSON,
    _blank,
    _defaults,
    _dumps,
    _encode,
    _sqlite_param,
    _sqlite_params,
    _utc,
)

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
# A bulk import's insert: OR FAIL (the same as the default ABORT for a one-row statement)
# spares SQLite a statement journal per row, which a table with triggers otherwise needs.
_SQL_INSERT_BULK = _SQL_INSERT.replace("INSERT INTO", "INSERT OR FAIL INTO", 1)


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


_SQL_TOP_ROWID = "SELECT coalesce(max(rowid), 0) FROM interaction"
_SQL_EXISTING = "SELECT id FROM interaction WHERE id IN (SELECT value FROM json_each(?))"
_PG_TRACK = "CREATE TEMPORARY TABLE convostore_new_rows (id text PRIMARY KEY) ON COMMIT DROP"
_PG_TRACK_COPY = "COPY convostore_new_rows (id) FROM STDIN"
_PG_COPY = f"COPY interaction ({', '.join(_COLUMN_ORDER)}) FROM STDIN"
# What a bulk import drops and rebuilds: every index of the table but its primary key
# (read from the catalog, so a migration's index changes are followed).
_PG_SECONDARY_INDEXES = (
    "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE i.indrelid = 'interaction'::regclass AND NOT i.indisprimary ORDER BY c.relname DESC"
)
#: Sort memory for rebuilding those indexes (the server's default, 64 MB, spills a 1M-row GIN build).
_PG_BUILD_MEMORY = "256MB"
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


class StreamRepeatError(StoreError):
    """An id written by ``Writer.stream_many`` was stored already (a repeated line of
    the file, or a row recorded meanwhile): the transaction is lost, the caller
    starts over on the general path."""


class Writer:
    """Saves inside one open transaction (see ``Store.writer``).

    With ``check_chains`` the writer keeps track of the rows it inserts (SQLite: the
    rowids past the table's top when the transaction began; PostgreSQL: a temporary
    table of ids) so ``check_chains`` can prove, in SQL and before COMMIT, that they
    close no loop of parent links.
    """

    def __init__(self, store: Writes, conn: Connection, *, check_chains: bool = False, since_rowid: int | None = None) -> None:
        self.store = store
        self._conn = conn
        self._cur: Any = None
        # PostgreSQL: the COPY that ``stream_many`` keeps open across batches, and the ids
        # it wrote (a temporary file: memory stays flat), for the chain check's table.
        self._copy: Any = None
        self._copy_cm: Any = None
        self._streamed: Any = None
        self._rebuild: list[str] = []  # index definitions dropped for a bulk stream
        self._tracking = check_chains
        self._base = 0
        if check_chains:
            if store.dialect == "sqlite":
                # An import committed in batches checks all of them at the end: rows past
                # the top it saw when it started are its new rows.
                self._base = since_rowid if since_rowid is not None else conn.exec_driver_sql(_SQL_TOP_ROWID).scalar() or 0
            else:
                conn.exec_driver_sql(_PG_TRACK)

    @property
    def conn(self) -> Connection:
        """The transaction's connection; an open ``stream_many`` COPY ends first, so
        every statement sees the rows streamed so far."""
        if self._copy is not None:
            self.end_stream()
        return self._conn

    def drop_indexes(self) -> int:
        """PostgreSQL, before a bulk ``stream_many``: drop the interaction table's
        secondary indexes (the search index among them) in this transaction; the stream's
        end rebuilds each from its saved definition, sorted in bulk rather than grown row
        by row. The primary key stays (it finds repeated ids). Until COMMIT the table is
        locked against everyone else, readers too: for imports large against the table
        (a restore into an empty archive). Returns how many were dropped: none when
        another session holds the table past the lock timeout."""
        self.end_stream()
        defs = self._conn.exec_driver_sql(_PG_SECONDARY_INDEXES).all()
        try:
            with self._conn.begin_nested():
                for name, _ in defs:
                    self._conn.exec_driver_sql(f'DROP INDEX "{name}"')
        except SQLAlchemyError:
            return 0  # another session holds the table (lock timeout): import with the indexes
        self._rebuild.extend(definition for _, definition in defs)
        return len(defs)

    def stream_many(self, rows: Sequence[Mapping[str, Any]]) -> bool:
        """PostgreSQL: write rows the caller knows are new (ids neither stored nor written
        earlier in this transaction, links given) into one ``COPY`` left open across
        calls, so this process builds the next rows while the server indexes these.
        Returns False (nothing written) when a row needs the general path of
        ``save_many`` (inline media, a link to find). A repeated id fails at the
        server (``UniqueViolation``) and takes the transaction down; the next use of
        ``conn`` ends the COPY."""
        params = []
        for row in rows:
            # The SQLite encoding serves COPY's text format as it is (times as UTC text:
            # the transaction's zone is UTC below), so both backends store one encoding.
            p = _sqlite_params(row)
            if p is None or not (row.get("conversation_id") and row.get("link") and row.get("context_hash")):
                return False
            params.append(p)
        if self._copy is None:
            cur = self._pg().cursor()
            # One statement for the whole import: it runs as long as the file takes, so
            # the store's statement timeout (a guard for recorders' calls) is off for it.
            cur.execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL statement_timeout = 0")
            self._copy_cm = cur.copy(_PG_COPY)
            self._copy = self._copy_cm.__enter__()
        write = self._copy.write_row
        for p in params:
            write(p)
        if self._tracking:
            if self._streamed is None:
                self._streamed = tempfile.TemporaryFile()
            self._streamed.write(b"".join(orjson.dumps(p[0]) + b"\n" for p in params))
        return True

    def end_stream(self) -> None:
        """End the open ``stream_many`` COPY (the server reports a bad row here at the
        latest) and record its ids for the chain check."""
        cm, self._copy, self._copy_cm = self._copy_cm, None, None
        if cm is None:
            return
        import psycopg  # PostgreSQL only: an optional dependency

        try:
            cm.__exit__(None, None, None)
        except psycopg.errors.UniqueViolation as exc:
            raise StreamRepeatError(f"an id streamed into {self.store.display_url} was already stored: {exc}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"cannot write to {self.store.display_url}: {_reason(exc)}") from exc
        spool, self._streamed = self._streamed, None
        if spool is not None:
            with spool, self._pg().cursor().copy(_PG_TRACK_COPY) as copy:
                spool.seek(0)
                for line in spool:
                    copy.write_row((orjson.loads(line),))
        self._rebuild_indexes()

    def _rebuild_indexes(self) -> None:
        if not self._rebuild:
            return
        self._conn.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{_PG_BUILD_MEMORY}'; SET LOCAL statement_timeout = 0")
        while self._rebuild:
            self._conn.exec_driver_sql(self._rebuild.pop())

    def _abort_stream(self) -> None:
        """A failed transaction: let go of the COPY without waiting for the server."""
        cm, self._copy, self._copy_cm = self._copy_cm, None, None
        spool, self._streamed = self._streamed, None
        if spool is not None:
            spool.close()
        if cm is not None:
            try:
                cm.__exit__(StoreError, StoreError("import aborted"), None)
            except Exception:  # noqa: BLE001 - the transaction is rolled back anyway
                pass

    def _raw(self) -> Any:
        """A driver cursor inside this writer's transaction (SQLite)."""
        if self._cur is None:
            driver: Any = self.conn.connection.driver_connection
            self._cur = driver.cursor()
        return self._cur

    def _track(self, ids: list[str]) -> None:
        if self._tracking and ids and self.store.dialect != "sqlite":
            with self._pg().cursor().copy(_PG_TRACK_COPY) as copy:
                for i in ids:
                    copy.write_row((i,))

    def _pg(self) -> Any:
        """The psycopg connection under this writer's transaction (PostgreSQL)."""
        return self._conn.connection.driver_connection

    def save(self, row: Mapping[str, Any], *, merge: bool = False) -> bool:
        """Insert ``row``; returns False when its id is already stored (and ``merge`` is off)."""
        existed = self._tracking and self.store.dialect != "sqlite" and self.conn.execute(_EXISTS, {"iid": row["id"]}).first() is not None
        saved = self.store._save(self.conn, row, merge=merge)
        if saved and not existed:
            self._track([row["id"]])
        return saved

    def save_many(self, rows: Sequence[Mapping[str, Any]]) -> int:
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

    def _save_many_sqlite(self, rows: Sequence[Mapping[str, Any]]) -> int:
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
            # The batch counts itself into the summary tables (one upsert per key and per
            # conversation) while the insert trigger stands aside: see summary.begin_bulk.
            if summary.begin_bulk(self.conn):
                try:
                    cur.executemany(_SQL_INSERT_BULK, fresh)
                finally:
                    summary.end_bulk(self.conn)
                summary.count_sqlite_rows(cur, fresh, _COLUMN_ORDER)
            else:
                cur.executemany(_SQL_INSERT, fresh)
        return len(fresh)

    def finish(self) -> None:
        """Before COMMIT: the open COPY ends (dropped indexes are rebuilt), then the
        chain check, when asked for."""
        self.end_stream()
        self._rebuild_indexes()
        if self._tracking:
            self.check_chains()

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
            raise ChainCycleError(f"imported chains loop: {self._on_loop(str(start))} is its own ancestor")
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
        for key in ("created_at", "finished_at", "heartbeat_at"):
            if isinstance(values.get(key), str):
                from ..records import parse_time

                values[key] = parse_time(values[key])
        self.conn.execute(insert(R).values(**values))
        return True


class Writes(Queries):
    """The write side of ``Store``."""

    def _values(self, row: Mapping[str, Any], conn: Connection, pack: bool = True) -> dict[str, Any]:
        """Column values for a row dict; inline media moved to the media table."""
        values, media = _encode(row, pack)
        for column, value in media.items():
            split, found = wire.split_media(value)
            self._put_media(conn, found)
            values[column] = _dumps(split)
        return values

    def _repacked(self, conn: Connection, interaction_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """The packed columns of a stored row with ``changes`` (row keys of ``BODY_FIELDS``)
        over its fields: ``body`` holds several fields that refer to one another (and to
        the text columns), so a change to any of them rewrites them together."""
        r = conn.execute(select(*_SELECT_COLUMNS).where(T.c.id == interaction_id)).first()
        if r is None:
            return {}
        values = self._values({**self._row(r).body_parts(), **changes}, conn)
        return {c: values.get(c) for c in PACKED_COLUMNS}

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
    def writer(self, *, check_chains: bool = False, since_rowid: int | None = None) -> Iterator["Writer"]:
        """One transaction for many saves (imports): all of them land, or none.

        ``check_chains``: before COMMIT, refuse (``ChainCycleError``, nothing written)
        if the new rows' parent links loop; ``since_rowid`` (SQLite) counts every row
        past it as new, for an import whose batches were committed earlier.
        """
        try:
            with self._begin() as conn:
                w = Writer(self, conn, check_chains=check_chains, since_rowid=since_rowid)
                try:
                    yield w
                    w.finish()
                except BaseException:
                    w._abort_stream()
                    raise
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
            values = {k: v for k, v in self._values(row, conn, pack=False).items() if k != "id" and not _blank(v)}
            changes = {k: row[k] for k, c in BODY_COLUMN.items() if c in values}
            if changes:
                values.update(self._repacked(conn, row["id"], changes))
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
        if self._queued_ops(interaction_id):
            self.update_later(interaction_id, fields_)  # its save is still queued: keep the order
            return self.get(interaction_id)
        self._status.pop(interaction_id, None)
        self._links.pop(interaction_id, None)
        with self._begin() as conn:
            if not self._update_in(conn, interaction_id, fields_):
                raise NotFoundError(f"no interaction {interaction_id!r} in {self.display_url}")
        return self.get(interaction_id)

    def _update_in(self, conn: Connection, interaction_id: str, fields_: Mapping[str, Any]) -> bool:
        """The UPDATE of ``update``; False when no such row is stored."""
        values = self._values(fields_, conn, pack=False)
        values.pop("id", None)
        if not values:
            return True
        changes = {k: fields_[k] for k in BODY_FIELDS.intersection(fields_)}
        if changes:
            values.update(self._repacked(conn, interaction_id, changes))
        return conn.execute(update(T).where(T.c.id == interaction_id).values(**values)).rowcount != 0

    def mark_server_state(self, interaction_id: str, state: str) -> None:
        """Record what the server knows of an interaction: live, expired, deleted, not_stored.

        While this Store runs a background writer (a recorder without ``strict``), the
        mark is queued behind its saves, so the resume path never waits on the database.
        """
        if self._bg is not None and (self._queued_ops(interaction_id) or self.exists(interaction_id)):
            self.update_later(interaction_id, {"server_state": state})
            return
        self._status.pop(interaction_id, None)
        with self._begin() as conn:
            result = conn.execute(update(T).where(T.c.id == interaction_id).values(server_state=state))
            if result.rowcount == 0:
                raise NotFoundError(f"no interaction {interaction_id!r} in {self.display_url}")

    def _remember_status(self, values: Mapping[str, Any]) -> None:
        if "server_state" in values or "expires_at" in values:
            iid = values["id"]
            if len(self._status) >= 4096:
                self._status.clear()
            state = values.get("server_state")
            expires = values.get("expires_at")
            self._status[iid] = (state, _utc(expires) if isinstance(expires, datetime) else None)

    # --- the background writer ---------------------------------------------------------

    def _background(self) -> BackgroundWriter:
        bg = self._bg
        if bg is None:
            self.engine  # a closed store refuses here, not in the writer thread
            bg = self._bg = BackgroundWriter(self)
        return bg

    def save_later(self, row: Mapping[str, Any]) -> None:
        """Queue a save for the background writer and return at once: the recorder's hot path.

        The row is in the database within milliseconds while it answers; else it is
        appended to the spool file (fsynced) within ``SPOOL_AFTER`` seconds and written
        when the database is back. Reads of this Store see it meanwhile (``get``,
        ``exists``, ``server_status``, ``chain``, ``chain_turns``).
        """
        if not row.get("id"):
            raise StoreError("an interaction needs an id")
        self._background().submit({"op": "save", "id": row["id"], "row": dict(row)})

    def update_later(self, interaction_id: str, fields_: Mapping[str, Any]) -> None:
        """Queue ``update(interaction_id, **fields_)`` behind the saves already queued (a missing id is skipped)."""
        self._background().submit({"op": "update", "id": interaction_id, "fields": dict(fields_)})

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued write is in the database; False if ``timeout`` seconds passed first."""
        return True if self._bg is None else self._bg.flush(timeout)

    def _queued_ops(self, interaction_id: str) -> list[dict[str, Any]]:
        return [] if self._bg is None else self._bg.view(interaction_id)

    def _apply(self, op: Mapping[str, Any], bg: BackgroundWriter) -> None:
        """One queued operation against the database (the writer thread); raises while it refuses."""
        if self.dialect == "sqlite":
            if op["op"] == "save":
                self.save_quiet(op["row"])
                return
            self._status.pop(op["id"], None)
            with self._begin() as conn:
                self._apply_in(conn, op)
            return
        conn = self._bg_connection()
        bg.busy(conn.connection.driver_connection)
        try:
            with conn.begin():
                self._apply_in(conn, op)
        except BaseException:
            self._bg_conn = None
            try:
                conn.invalidate()
            except Exception:  # noqa: BLE001 - already broken
                pass
            raise
        finally:
            bg.busy(None)

    def _bg_connection(self) -> Connection:
        """PostgreSQL: the writer thread's own connection, from an unpooled engine (a fresh
        connect is bounded by the connect timeout; a pooled one's ping might not be)."""
        if self._bg_conn is None:
            if self._bg_engine is None:
                self._bg_engine = _engine.create(self.url, busy=self.busy_timeout, pooled=False)
            try:
                self._bg_conn = self._bg_engine.connect()
            except SQLAlchemyError as exc:
                raise StoreError(f"cannot write to {self.display_url}: {_reason(exc)}") from exc
        conn: Connection = self._bg_conn
        return conn

    def _apply_in(self, conn: Connection, op: Mapping[str, Any]) -> None:
        if op["op"] == "save":
            self._save(conn, op["row"])
        elif op["op"] == "update":
            self._status.pop(op["id"], None)
            self._links.pop(op["id"], None)
            self._update_in(conn, op["id"], op["fields"])  # a row not stored is not ours to track

    def replay_spool(self) -> int:
        """Write the operations that processes which ended left in this archive's spool
        (each file all-or-nothing, then deleted); returns how many were written.

        Raises ``StoreError`` when the database still refuses them: they stay spooled.
        Replaying twice is harmless (rows are keyed by id).
        """
        written = 0
        for path, fd in _spool.orphans(_spool.spool_dir(self.url)):
            try:
                ops = _spool.read_ops(path)
                if ops:
                    with self._begin() as conn:
                        for op in ops:
                            self._apply_in(conn, op)
            except (SQLAlchemyError, StoreError) as exc:
                _spool.release(path, fd, remove=False)
                raise StoreError(f"cannot write spooled rows from {path} to {self.display_url}: {_reason(exc)}; they stay spooled") from exc
            except BaseException:
                _spool.release(path, fd, remove=False)
                raise
            _spool.release(path, fd, remove=True)
            written += len(ops)
        return written
