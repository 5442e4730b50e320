"""Export and import: JSONL (lossless, re-importable) and Markdown (for reading).

A JSONL line holds one interaction as it crossed the wire (raw request and raw
response) plus what only the archive knows (when it was recorded, how it links, its
server state, labels, replay tags). Importing rebuilds every row through
``records.row_from_exchange``, the same code the recorder uses, so a round trip is
lossless, and lines from the retired 1.x schema (``outputs``, ``{role, content}``
turns) normalize into the same steps. Both directions stream: constant memory.

Import is all-or-nothing and idempotent: a malformed line aborts with its line number
and the field's path (``line_format``) and leaves the database as it was; importing the
same file twice adds nothing. It reads the file once; parent links that would loop are
refused in SQL before the last COMMIT (``Writer.check_chains``). On SQLite it commits
in bounded batches and undoes them from ``store.journal`` if it fails.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any

import orjson
from sqlalchemy import bindparam, delete, select

from . import wire
from . import markdown
from .errors import ConvostoreError, ImportConflictError, ImportFieldError, ImportFormatError, WireFormatError
from .line_format import FORMAT_VERSION, FieldError, check_line
from .records import parse_time, retention_delta, row_from_exchange
from .store import packing
from .store.journal import Journal
from .store.writer import StreamRepeatError
from .store.rows import T
from .store.maintenance import ANALYZE_AFTER

if TYPE_CHECKING:  # pragma: no cover
    from .store import Row, Store, Writer

BATCH = 1000
#: Archive-only fields carried in a line's ``meta``.
META_FIELDS = (
    "conversation_id", "parent_id", "link", "recorded_at", "latency_ms", "expires_at", "server_state",
    "labels", "status", "partial", "hop_index", "stream", "replay_run_id", "source_id", "error", "context_hash",
)


@dataclass
class ImportResult:
    """What an import did. ``skipped``: ids already stored with the same content (or
    kept under ``on_conflict="skip"``); ``conflicts``: ids whose stored content differs,
    the first few in ``conflict_ids``; ``replaced``: stored rows the file's replaced."""

    lines: int = 0
    added: int = 0
    skipped: int = 0
    runs: int = 0
    conflicts: int = 0
    conflict_ids: list[str] = field(default_factory=list)
    replaced: int = 0


# --- export ---------------------------------------------------------------------


def _line(row: "Row") -> dict[str, Any]:
    meta = {}
    for k in META_FIELDS:
        v = getattr(row, k)
        if v is not None:
            meta[k] = v
    return {
        "convostore": FORMAT_VERSION,
        "id": row.id,
        "api_version": row.api_version,
        "request": _verbatim(row.request_json) or row.request,
        "response": _verbatim(row.response_json) or row.response,
        "meta": meta,
    }


def _verbatim(raw: str | None) -> Any:
    """A stored JSON column written into the line as it is (no decode and encode again),
    unless it holds media references to join back, or a line break (JSONL is one per line)."""
    if raw is None or raw == "null" or "convostore-media:" in raw or "\n" in raw:
        return None
    return orjson.Fragment(raw)


def _rows(store: "Store", conversation: str | None, since: datetime | None) -> Iterator["Row"]:
    return store.list(conversation=conversation, since=since, oldest_first=True)


def export_jsonl(
    store: "Store", out: IO[bytes], *, conversation: str | None = None, since: datetime | None = None, runs: bool = True
) -> int:
    """Write the archive (or one conversation) as JSONL to a binary stream; returns the count."""
    n = 0
    dumps = orjson.dumps
    opt = orjson.OPT_APPEND_NEWLINE
    for row in _rows(store, conversation, since):
        out.write(dumps(_line(row), option=opt, default=str))
        n += 1
    if runs and conversation is None:
        for run in store.list_runs():
            out.write(dumps({"convostore": FORMAT_VERSION, "kind": "replay_run", "run": run.__dict__}, option=opt, default=str))
    return n


def export_markdown(
    store: "Store", out: IO[str], *, conversation: str | None = None, since: datetime | None = None
) -> int:
    """Write the archive as Markdown, turn by turn, for people to read."""
    n = 0
    current = None
    for row in _rows(store, conversation, since):
        if row.conversation_id != current:
            current = row.conversation_id
            out.write(f"\n## Conversation {markdown.inline(str(current))}\n\n")
        when = f"{row.recorded_at:%Y-%m-%d %H:%M:%S}" if row.recorded_at else ""
        who = row.model or row.agent or "?"
        out.write(f"### {when} · {markdown.inline(who)} · {markdown.code(row.id)}\n\n")
        link = f"{markdown.inline(row.link or '')} from {markdown.code(row.parent_id)}" if row.parent_id else markdown.inline(row.link or "root")
        out.write(f"_{markdown.inline(str(row.status))} · {link} · server state {markdown.inline(str(row.server_state))}_\n\n")
        if row.input_text:
            out.write("**user:** " + markdown.block(row.input_text) + "\n\n")
        for step in row.input_steps:
            if step.get("type") == "function_result":
                name = str(step.get("name") or step.get("call_id"))
                out.write(f"**function result** {markdown.code(name)}: {markdown.code(orjson.dumps(step.get('result')).decode())}\n\n")
        for step in row.output_steps:
            if step.get("type") == "function_call":
                call = f"{step.get('name')}({orjson.dumps(step.get('arguments')).decode()})"
                out.write(f"**function call** {markdown.code(call)}\n\n")
        if row.output_text:
            out.write(f"**{markdown.inline(who)}:** " + markdown.block(row.output_text) + "\n\n")
        if row.error:
            out.write(f"**error:** {markdown.block(str(row.error.get('message')))}\n\n")
        n += 1
    return n


# --- import ---------------------------------------------------------------------


def _open(source: str | os.PathLike[str] | IO[bytes]) -> tuple[IO[bytes], bool]:
    if isinstance(source, (str, os.PathLike)):
        try:
            return open(source, "rb"), True
        except OSError as exc:
            raise ConvostoreError(f"cannot read {os.fspath(source)}: {exc.strerror}") from exc
    if isinstance(source, io.TextIOBase):
        return source.buffer, False
    return source, False


def _parse(raw: bytes, lineno: int) -> dict[str, Any] | None:
    """One line, checked field by field against ``line_format`` (None for a blank line)."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ImportFormatError(f"not valid JSON ({exc})", lineno) from None
    try:
        check_line(obj, raw=raw)
    except FieldError as exc:
        raise ImportFieldError(str(exc), lineno, exc.path) from None
    if not isinstance(obj, dict):  # check_line refuses anything but an object; this tells mypy
        raise ImportFormatError("not a JSON object", lineno)
    if obj.get("kind") == "replay_run":
        return obj
    iid = obj.get("id") or (obj.get("response") or {}).get("id")
    if not iid:
        raise ImportFieldError("id: is required (or response.id)", lineno, "id")
    obj["id"] = iid
    return obj


def _row(obj: dict[str, Any], lineno: int, retention: Any) -> dict[str, Any]:
    meta = dict(obj.get("meta") or {})
    response = obj.get("response")
    request = obj.get("request") or {}
    api_version = obj.get("api_version") or ("v1beta" if response and "outputs" in response else "v1")
    try:
        row = row_from_exchange(
            request,
            response,
            api_version=api_version,
            recorded_at=parse_time(meta.get("recorded_at")) or parse_time((response or {}).get("created")) or datetime.now().astimezone(),
            latency_ms=meta.get("latency_ms"),
            stream=bool(meta.get("stream", False)),
            error=meta.get("error"),
            hop_index=int(meta.get("hop_index") or 0),
            partial=bool(meta.get("partial", False)),
            retention=retention,
            # null means "not given": the derived value stands (recorded_at: the response's created).
            extra={k: v for k, v in meta.items() if v is not None and k not in ("latency_ms", "stream", "error", "hop_index", "partial")},
        )
    except WireFormatError as exc:
        where = "request.input" if "input" in request else "response"
        raise ImportFieldError(f"{where}: {exc}", lineno, where) from None
    except (ValueError, TypeError, AttributeError) as exc:
        raise ImportFormatError(f"cannot read the interaction: {exc}", lineno) from None
    row["id"] = obj["id"]
    return row


#: What a line's content is compared on when its id is already stored: the exchange
#: itself, plus every archive field the line states (derived fields follow from these).
_ALWAYS_COMPARED = ("request", "response", "api_version")
#: How an id already stored (or seen earlier in the file) with different content is treated.
ON_CONFLICT = ("skip", "fail", "replace")
#: How many conflicting ids a result or an error names.
SHOWN_IDS = 5


def _compared(obj: dict[str, Any]) -> tuple[str, ...]:
    meta = obj.get("meta") or {}
    return _ALWAYS_COMPARED + tuple(k for k, v in meta.items() if v is not None)


def _stored_equal(key: str, stored: Any, value: Any) -> bool:
    """A stored column value against the value an incoming row gives for it."""
    if key in ("request", "response", "labels", "error"):
        if stored is None:
            return value is None or (key == "request" and value == {})
        if "convostore-media:" in stored and value is not None:
            value = wire.split_media(value)[0]
        return bool(orjson.loads(stored) == value)
    if isinstance(stored, datetime) and stored.tzinfo is None:
        stored = stored.replace(tzinfo=timezone.utc)
    return bool(stored == value)


_STORED_KEYS = ("request", "response", "api_version", *META_FIELDS)
_STORED_COLUMNS = {"request": "request_json", "response": "response_json"}


def _stored_content(w: "Writer", ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored values (raw JSON text for JSON columns) of those ``ids`` that are
    stored, read inside the writer's transaction (so rows this import wrote count)."""
    cols = [T.c[_STORED_COLUMNS.get(k, k)] for k in _STORED_KEYS]
    q = select(T.c.id, *cols, T.c.body, T.c.input_text, T.c.output_text).where(T.c.id.in_(bindparam("ids", expanding=True)))
    out = {}
    for r in w.conn.execute(q, {"ids": ids}):
        stored = dict(zip(_STORED_KEYS, r[1:]))
        body, input_text, output_text = r[-3:]
        if body is not None:  # packed (0008): the JSON text the columns would hold
            p = packing.load(body, input_text, output_text)
            request, response = p["q"], p["r"]
            stored["request"] = orjson.dumps(request).decode()
            stored["response"] = None if response is None else orjson.dumps(response).decode()
        out[r[0]] = stored
    return out


def _delete(w: "Writer", ids: list[str]) -> None:
    """Delete stored rows the file replaces (their replacements are inserted as new)."""
    w.conn.execute(delete(T).where(T.c.id.in_(bindparam("ids", expanding=True))), {"ids": ids})
    if w.store.dialect != "sqlite":  # the chain check's record of this import's rows
        w.conn.exec_driver_sql("DELETE FROM convostore_new_rows WHERE id = ANY(%s)", (ids,))


@dataclass
class _Chunk:
    """Lines written together: a batch of rows, or one replay run."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    keys: list[tuple[str, ...]] = field(default_factory=list)
    run: dict[str, Any] | None = None


def _chunks(fh: IO[bytes], retention: Any, result: ImportResult) -> Iterator[_Chunk]:
    """The file's lines, checked and built into rows, in batches of up to ``BATCH``.

    A row whose link is not in its ``meta`` (retired-schema or hand-made lines) is
    linked against what is stored, so it starts a new batch: the rows before it are
    written first.
    """
    chunk = _Chunk()
    for lineno, raw in enumerate(fh, 1):
        obj = _parse(raw, lineno)
        if obj is None:
            continue
        result.lines += 1
        if obj.get("kind") == "replay_run":
            if chunk.rows:
                yield chunk
                chunk = _Chunk()
            yield _Chunk(run=obj["run"])
            continue
        row = _row(obj, lineno, retention)
        if chunk.rows and not (row.get("conversation_id") and row.get("link") and row.get("context_hash")):
            yield chunk
            chunk = _Chunk()
        chunk.rows.append(row)
        chunk.keys.append(_compared(obj))
        if len(chunk.rows) >= BATCH:
            yield chunk
            chunk = _Chunk()
    if chunk.rows:
        yield chunk


class _Importer:
    """Writes chunks through a ``Writer``: finds the rows whose id is already stored (or
    came earlier in the file) and decides by ``on_conflict``; identical content is
    simply already stored. With a journal (SQLite), what each batch adds or replaces
    is recorded so the import can be undone."""

    def __init__(
        self, store: "Store", on_conflict: str, result: ImportResult, journal: Journal | None,
        stream: bool = False, side: Any = None,
    ) -> None:
        self.store = store
        self.policy = on_conflict
        self.result = result
        self.journal = journal
        self.stream = stream
        self.side = side

    def write(self, w: "Writer", chunk: _Chunk) -> None:
        result = self.result
        if chunk.rows and self.stream and self._fresh(chunk.rows) and w.stream_many(chunk.rows):
            result.added += len(chunk.rows)
            return
        if chunk.run is not None:
            added = w.save_run(chunk.run)
            result.runs += added
            if added and self.journal is not None:
                self.journal.run(w, chunk.run["id"])
            return
        replaced = result.replaced
        fresh = self._resolve(w, chunk.rows, chunk.keys)
        if self.journal is None:
            saved = w.save_many(fresh)
        else:
            with self.journal.inserting(w):
                saved = w.save_many(fresh)
        result.added += saved - (result.replaced - replaced)
        result.skipped += len(fresh) - saved

    def _fresh(self, rows: list[dict[str, Any]]) -> bool:
        """PostgreSQL, streaming: no id of these rows is repeated among them or stored
        (asked on a connection of its own: the import's is busy with its COPY; a bulk
        import holds the table, so it asks no one and the primary key answers). An id
        written earlier in the file is caught by the server (``StreamRepeatError``)."""
        ids = [r["id"] for r in rows]
        if len(set(ids)) != len(ids):
            return False
        return self.side is None or self.side.exec_driver_sql(_SQL_STORED_PG, (ids,)).first() is None

    def end(self) -> None:
        """Before the last COMMIT: a conflict under ``fail`` takes the whole import back."""
        if self.result.conflicts and self.policy == "fail":
            raise ImportConflictError(self.result.conflicts, self.result.conflict_ids)

    def _conflict(self, iid: str) -> None:
        self.result.conflicts += 1
        if len(self.result.conflict_ids) < SHOWN_IDS:
            self.result.conflict_ids.append(iid)

    def _resolve(self, w: "Writer", rows: list[dict[str, Any]], keys: list[tuple[str, ...]]) -> list[dict[str, Any]]:
        """The rows to insert; stored rows to replace are deleted first (``replace``)."""
        stored = _stored_content(w, [r["id"] for r in rows])
        out: list[dict[str, Any]] = []
        at: dict[str, int] = {}
        replace: list[str] = []
        for row, compared in zip(rows, keys):
            iid = row["id"]
            if iid in at:
                earlier = out[at[iid]]
                same = all(earlier.get(k) == row.get(k) for k in compared)
            elif iid in stored:
                same = all(_stored_equal(k, stored[iid][k], row.get(k)) for k in compared)
            else:
                at[iid] = len(out)
                out.append(row)
                continue
            self.result.skipped += 1
            if same:
                continue
            self._conflict(iid)
            if self.policy != "replace":
                continue
            if iid in at:  # the file's later line wins over its earlier one
                out[at[iid]] = row
            else:
                self.result.skipped -= 1
                self.result.replaced += 1
                at[iid] = len(out)
                out.append(row)
                replace.append(iid)
        if replace:
            if self.journal is not None:
                self.journal.replaced(w, self._undo_lines(w, replace))
            _delete(w, replace)
        return out

    def _undo_lines(self, w: "Writer", ids: list[str]) -> list[bytes]:
        """Export lines of the rows about to be replaced that were stored before this
        import began (rows it wrote itself simply go with its own rowid ranges)."""
        assert self.journal is not None
        older = w.conn.exec_driver_sql(
            "SELECT id FROM interaction WHERE id IN (SELECT value FROM json_each(?)) AND rowid <= ?",
            (orjson.dumps(ids).decode(), self.journal.base),
        ).scalars()
        return [orjson.dumps(_line(self.store.get(iid)), default=str) for iid in older]


def _restorer(store: "Store") -> Any:
    """Re-inserts rows from their export lines (an undo of ``replace``)."""
    retention = retention_delta(store.retention)

    def restore(w: "Writer", lines: list[bytes]) -> None:
        for raw in lines:
            obj = _parse(raw, 0)
            if obj is not None:
                w.save_many([_row(obj, 0, retention)])

    return restore


def import_jsonl(
    store: "Store", source: str | os.PathLike[str] | IO[bytes], *, on_conflict: str = "skip", bulk: bool = False
) -> ImportResult:
    """Import a JSONL export, all or nothing; ids already stored with the same content
    are skipped (so importing twice adds nothing).

    One pass: each line is checked against ``line_format`` and written in batches; a
    bad line raises ``ImportFieldError`` (line and field), and parent links of the new
    rows that would loop raise ``ChainCycleError``; either way the archive is left as
    it was. On PostgreSQL the import is one transaction. On SQLite each batch commits
    (a recorder never waits long behind an import) and ``store.journal`` undoes the
    committed batches on failure, so rows become visible as they land.

    An id already stored (or earlier in the file) with *different* content is a
    conflict, counted in the result with its first ids; ``on_conflict`` chooses:
    ``skip`` keeps the stored row, ``fail`` raises ``ImportConflictError`` after
    reading the whole file (nothing lands), ``replace`` takes the file's row.

    ``bulk`` (PostgreSQL): drop the table's secondary indexes for the import and build
    them afresh before COMMIT (a restore into an empty archive); the table stays locked
    until the import ends, so readers and recorders wait (measured: a recorder's save
    refused after the 30 s lock timeout). Off by default.
    """
    if on_conflict not in ON_CONFLICT:
        raise ConvostoreError(f"on_conflict must be one of {', '.join(ON_CONFLICT)}, not {on_conflict!r}")
    retention = retention_delta(store.retention)
    fh, owned = _open(source)
    result = ImportResult()
    # Rows make no reference cycles, so the cyclic GC only re-scans live objects: paused,
    # the import runs ~15% faster and memory stays the same (refcounting frees each batch).
    paused = gc.isenabled()
    gc.disable()
    try:
        if store.dialect == "sqlite":
            _import_in_batches(store, _chunks(fh, retention, result), on_conflict, result)
        else:
            result = _import_in_one_transaction(store, fh, retention, on_conflict, bulk)
    finally:
        if paused:
            gc.enable()
        if owned:
            fh.close()
    if result.added >= ANALYZE_AFTER:
        # Fresh planner statistics, so the next queries on a server whose autovacuum is
        # off (or has not woken yet) are planned for the archive's real size.
        store.analyze()
    return result


_SQL_STORED_PG = "SELECT 1 FROM interaction WHERE id = ANY(%s) LIMIT 1"


def _import_in_one_transaction(store: "Store", fh: IO[bytes], retention: Any, on_conflict: str, bulk: bool) -> ImportResult:
    """PostgreSQL: one transaction. Batches of new rows go into one streaming ``COPY``
    (``Writer.stream_many``); a batch holding stored or repeated ids ends it and takes
    the general path. If the server finds an id the stream repeated (a line earlier in
    the file, or a row recorded meanwhile), the transaction is rolled back and the file
    read again on the general path alone; a stream that cannot be re-read (a pipe)
    takes the general path from the start."""
    stream = fh.seekable()
    start = fh.tell() if stream else 0
    while True:
        result = ImportResult()
        side = None
        try:
            with store.writer(check_chains=True) as w:
                if stream and not (bulk and w.drop_indexes()):
                    side = store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                importer = _Importer(store, on_conflict, result, None, stream, side)
                for chunk in _chunks(fh, retention, result):
                    importer.write(w, chunk)
                w.end_stream()
                importer.end()
            return result
        except StreamRepeatError:
            if not stream:
                raise
            stream = False
            fh.seek(start)
        finally:
            if side is not None:
                side.close()


def _import_in_batches(store: "Store", chunks: Iterator[_Chunk], on_conflict: str, result: ImportResult) -> None:
    """SQLite: a transaction per batch, journalled; the chain check and the journal's
    end in one last transaction; on any failure, the journal undoes what landed."""
    restore = _restorer(store)
    journal = Journal(store)
    journal.start(restore)
    importer = _Importer(store, on_conflict, result, journal)
    try:
        for chunk in chunks:  # the next lines are read and checked outside any transaction
            with journal.batch() as w:
                importer.write(w, chunk)
        with store.writer(check_chains=True, since_rowid=journal.base) as w:
            importer.end()
            journal.finish(w)
    except BaseException:
        # If the undo itself fails (disk full), the journal stays and the next import undoes it.
        with contextlib.suppress(Exception):
            journal.undo(restore)
        raise
