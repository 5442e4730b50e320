"""Reads of the summary tables (migration 0005): counters, conversation pages, expiry.

``conversation`` (one row per conversation) and ``interaction_count`` (interactions and
tokens per model, status and server state) are kept exact by triggers on
``interaction``, so ``stats``, a page of conversations and ``expiring`` read a few
index entries instead of the whole archive: flat from 10k to 1M interactions.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Table, Text, and_, bindparam, cast, func, or_, select, text, tuple_
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from ..errors import StoreError
from .models import Conversation as _ConversationTable
from .models import Interaction, InteractionCount
from .rows import LONG_CONTEXT_TOKENS, _utc

# SQLModel sets ``__table__`` on table classes when they are created; its stubs do not say so.
C: Table = _ConversationTable.__table__  # type: ignore[attr-defined]
K: Table = InteractionCount.__table__  # type: ignore[attr-defined]
T: Table = Interaction.__table__  # type: ignore[attr-defined]


@dataclass
class Conversation:
    """One conversation as the ``conversation`` table keeps it."""

    id: str
    first_input: str | None
    started_at: datetime | None
    updated_at: datetime | None
    turns: int
    tokens: int
    head_id: str | None
    model: str | None
    status: str | None
    server_state: str | None
    labels: dict[str, Any] | None
    live_turns: int
    live_head_id: str | None
    live_expires_at: datetime | None
    replay: bool

    def to_json_dict(self) -> dict[str, Any]:
        """The shape the CLI's ``--json`` prints."""
        return dict(self.__dict__)


@dataclass
class ConversationPage:
    """A page of conversations, newest activity first; ``next`` continues after it."""

    items: list[Conversation]
    next: str | None


class CursorError(StoreError):
    """A ``--after`` cursor that this archive did not hand out."""


def _cursor(updated_at: datetime | None, conversation_id: str) -> str:
    raw = orjson.dumps([updated_at.isoformat() if updated_at else None, conversation_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _uncursor(cursor: str) -> tuple[datetime | None, str]:
    try:
        when, cid = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return (_utc(datetime.fromisoformat(when)) if when else None), str(cid)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise CursorError(f"not a conversations cursor: {cursor!r} (pass the 'next' value a page printed)") from None


def _conversation(r: Any) -> Conversation:
    return Conversation(
        id=r.id, first_input=r.first_input, started_at=_utc(r.started_at), updated_at=_utc(r.updated_at),
        turns=r.turns, tokens=int(r.tokens), head_id=r.head_id, model=r.model, status=r.status,
        server_state=r.server_state, labels=orjson.loads(r.labels) if r.labels else None, live_turns=r.live_turns,
        live_head_id=r.live_head_id, live_expires_at=_utc(r.live_expires_at), replay=bool(r.replay),
    )


def _label(dialect: str, label: str) -> Any:
    """``key=value`` (or ``key``: any value) against the newest turn's labels."""
    key, has_value, value = label.partition("=")
    if not key:
        raise StoreError(f"a label filter is KEY or KEY=VALUE, not {label!r}")
    expr: Any
    if dialect == "sqlite":
        expr = func.json_extract(C.c.labels, "$." + '"' + key.replace('"', '""') + '"')
    else:
        expr = cast(C.c.labels, JSONB).op("->>", return_type=Text())(key)
    return expr == value if has_value else expr.isnot(None)


def conversation_page(
    conn: Connection,
    dialect: str,
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
) -> ConversationPage:
    """One page of conversations by latest activity (newest first), keyset-paginated.

    Filters apply to the conversation's newest turn (model, status, server state,
    labels) and its latest activity (``since`` <= updated_at < ``until``).
    """
    if limit < 1:
        raise StoreError("a page holds at least one conversation")
    conds: list[Any] = []
    if not replays:
        conds.append(C.c.replay == False)  # noqa: E712 - SQL, not Python
    for col, value in ((C.c.model, model), (C.c.status, status), (C.c.server_state, server_state)):
        if value:
            conds.append(col == value)
    if label:
        conds.append(_label(dialect, label))
    if since:
        conds.append(C.c.updated_at >= _utc(since))
    if until:
        conds.append(C.c.updated_at < _utc(until))
    if after:
        when, cid = _uncursor(after)
        conds.append(tuple_(C.c.updated_at, C.c.id) < tuple_(when, cid))
    q = select(C).where(and_(*conds)) if conds else select(C)
    q = q.order_by(C.c.updated_at.desc(), C.c.id.desc()).limit(limit + 1)
    rows = conn.execute(q).all()
    items = [_conversation(r) for r in rows[:limit]]
    nxt = _cursor(items[-1].updated_at, items[-1].id) if len(rows) > limit else None
    return ConversationPage(items, nxt)


def one(conn: Connection, conversation_id: str) -> Conversation | None:
    """One conversation's summary row: a primary-key read."""
    r = conn.execute(select(C).where(C.c.id == conversation_id)).first()
    return _conversation(r) if r is not None else None


def conversation_heads(conn: Connection, *, since: datetime | None = None) -> Iterator[str]:
    """Ids of the newest turn of each original conversation (not failed), oldest activity first."""
    q = select(C.c.head_id).where(C.c.replay == False, or_(C.c.status.is_(None), C.c.status != "failed"))  # noqa: E712
    if since:
        q = q.where(C.c.updated_at >= _utc(since))
    q = q.order_by(C.c.updated_at, C.c.id)
    for r in conn.execution_options(stream_results=True, yield_per=1000).execute(q):
        yield r[0]


@dataclass
class LiveHead:
    """A conversation's newest live turn and when the server forgets it."""

    conversation_id: str
    head_id: str
    expires_at: datetime
    model: str | None
    turns: int


def expiring_heads(conn: Connection, horizon: datetime) -> Iterator[LiveHead]:
    """Conversations whose newest live turn expires by ``horizon``, soonest first
    (streamed from the expiry index: the first page costs the same at any size)."""
    q = (
        select(C.c.id, C.c.live_head_id, C.c.live_expires_at, T.c.model, C.c.live_turns)
        .join(T, T.c.id == C.c.live_head_id)
        .where(C.c.live_expires_at.isnot(None), C.c.live_expires_at <= _utc(horizon))
        .order_by(C.c.live_expires_at, C.c.id)
    )
    for r in conn.execution_options(stream_results=True, yield_per=500).execute(q):
        yield LiveHead(r[0], r[1], _utc(r[2]), r[3], r[4])  # type: ignore[arg-type]


def counts(conn: Connection) -> dict[str, Any]:
    """Interactions, conversations, tokens and the by-model/status/state breakdowns."""
    rows = conn.execute(
        select(K.c.model, K.c.status, K.c.server_state, func.sum(K.c.n), func.sum(K.c.tokens),
               func.sum(K.c.input_tokens), func.sum(K.c.output_tokens))
        .group_by(K.c.model, K.c.status, K.c.server_state)
    ).all()
    total = tokens = input_tokens = output_tokens = 0
    groups: dict[str, dict[str, int]] = {"by_model": {}, "by_status": {}, "by_server_state": {}}
    tokens_by_model: dict[str, dict[str, int]] = {}
    for model, status, state, n, tok, inp, out in rows:
        n = int(n or 0)
        if not n:
            continue
        total += n
        tokens += int(tok or 0)
        input_tokens += int(inp or 0)
        output_tokens += int(out or 0)
        for name, key in (("by_model", model), ("by_status", status), ("by_server_state", state)):
            label = key or "None"
            groups[name][label] = groups[name].get(label, 0) + n
        m = tokens_by_model.setdefault(model or "None", {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0})
        m["input_tokens"] += int(inp or 0)
        m["output_tokens"] += int(out or 0)
        m["total_tokens"] += int(tok or 0)
    for name, counts_ in groups.items():
        groups[name] = dict(sorted(counts_.items(), key=lambda kv: (-kv[1], kv[0])))
    conversations = conn.execute(select(func.count()).select_from(C)).scalar() or 0
    return {
        "interactions": total,
        "conversations": int(conversations),
        "total_tokens": tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        **groups,
        "tokens_by_model": tokens_by_model,
    }


_USAGE_KEYS = ("calls", "input", "output", "thought", "cached", "total")
_LONG_KEYS = ("calls", "input", "output", "thought", "cached")


def _usage_line(run: Any, model: Any, sums: Any) -> dict[str, Any]:
    """One ``Store.usage`` line from 11 sums: calls, input, output, thought, cached, total, then the long ones."""
    line: dict[str, Any] = {"run": run, "model": model or None}
    line.update(zip(_USAGE_KEYS, (int(v or 0) for v in sums[:6])))
    line["long_context"] = {"above": LONG_CONTEXT_TOKENS, **dict(zip(_LONG_KEYS, (int(v or 0) for v in sums[6:])))}
    return line


def _usage_order(line: dict[str, Any]) -> tuple[Any, ...]:
    """Lines by run then model, None first (the same on both backends)."""
    return (line["run"] is not None, line["run"] or "", line["model"] is not None, line["model"] or "")


def usage_counts(conn: Connection) -> list[dict[str, Any]]:
    """Per model, from ``interaction_count``: the models with usage, as ``usage_scan`` sums them."""
    cols = ("calls", "input_tokens", "output_tokens", "thought_tokens", "cached_tokens", "tokens",
            "long_calls", "long_input", "long_output", "long_thought", "long_cached")
    rows = conn.execute(
        select(K.c.model, *(func.sum(K.c[c]) for c in cols)).group_by(K.c.model)
    ).all()
    return sorted((_usage_line(None, r[0], r[1:]) for r in rows if r[1]), key=_usage_order)


def usage_scan(conn: Connection, dialect: str, *, by_run: bool = False, conversations: Any = None,
               by_day: bool = False, since: datetime | None = None) -> list[dict[str, Any]]:
    """The same sums over the rows themselves (the counters' definition), grouped and
    filtered as ``Store.usage`` asks. Token sums are over all of a group's rows (they
    have tokens only with usage); ``max_input`` over those with usage."""
    if dialect == "sqlite":
        def js(key: str) -> str:
            return (f"CASE WHEN json_type(usage_json, '$.{key}') = 'integer' THEN json_extract(usage_json, '$.{key}') "
                    "ELSE 0 END")
        day = "substr(recorded_at, 1, 10)"
    else:
        def js(key: str) -> str:
            v = f"(usage_json::jsonb->>'{key}')"
            return (f"CASE WHEN jsonb_typeof(usage_json::jsonb->'{key}') = 'number' AND {v} ~ '^-?[0-9]{{1,18}}$' "
                    f"THEN {v}::bigint ELSE 0 END")
        day = "to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    has = "(thought_tokens IS NOT NULL OR usage_json IS NOT NULL)"
    thought = f"coalesce(thought_tokens, {js('total_thought_tokens')})"
    cached = f"coalesce(cached_tokens, {js('total_cached_tokens')})"
    long = f"coalesce(input_tokens, 0) > {LONG_CONTEXT_TOKENS}"
    sums = [
        f"sum(CASE WHEN {has} THEN 1 ELSE 0 END)", "sum(input_tokens)", "sum(output_tokens)", f"sum({thought})",
        f"sum({cached})", "sum(total_tokens)",
        f"sum(CASE WHEN {long} THEN 1 ELSE 0 END)", f"sum(CASE WHEN {long} THEN input_tokens ELSE 0 END)",
        f"sum(CASE WHEN {long} THEN coalesce(output_tokens, 0) ELSE 0 END)",
        f"sum(CASE WHEN {long} THEN {thought} ELSE 0 END)", f"sum(CASE WHEN {long} THEN {cached} ELSE 0 END)",
        f"max(CASE WHEN {has} THEN input_tokens END)",
    ]
    keys: list[str] = []
    extra: list[tuple[str, str]] = []
    where: list[str] = []
    params: dict[str, Any] = {}
    if by_run:
        keys.append("replay_run_id")
        where.append("replay_run_id IS NOT NULL")
    if conversations is not None:
        keys.append("conversation_id")
        extra.append(("conversation", "conversation_id"))
        where.append("conversation_id IN :cids")
        params["cids"] = list(conversations)
    if by_day:
        keys.append(day)
        extra.append(("day", day))
    if since is not None:
        where.append("recorded_at >= :since")
        params["since"] = since
    cols = "".join(f"{expr} AS {name}, " for name, expr in extra)
    sql = text(
        f"SELECT {'replay_run_id' if by_run else 'NULL'} AS run, {cols}model, {', '.join(sums)} FROM interaction"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" GROUP BY {''.join(k + ', ' for k in keys)}model"
    )
    if conversations is not None:
        sql = sql.bindparams(bindparam("cids", expanding=True))
    if since is not None:
        sql = sql.bindparams(bindparam("since", type_=T.c.recorded_at.type))
    lines = []
    for r in conn.execute(sql, params):
        m = r._mapping
        n = 2 + len(extra)
        if not r[n]:
            continue
        line = _usage_line(m["run"], m["model"], r[n:n + 11])
        line.update((name, m[name]) for name, _ in extra)
        line["max_input"] = int(r[n + 11] or 0)
        lines.append(line)
    return sorted(lines, key=lambda u: (*_usage_order(u), str(u.get("conversation")), str(u.get("day"))))


def fold_counters(conn: Connection) -> int:
    """PostgreSQL: fold the counter rows of backends that have gone into slot 0.

    Each backend counts into its own slot (no waits between concurrent writers); the
    slots of finished backends add up over time. Serialized by an advisory lock.
    Returns how many rows were folded.
    """
    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7426001)")
    folded = conn.exec_driver_sql(
        "WITH gone AS (DELETE FROM interaction_count WHERE slot <> 0 AND slot NOT IN "
        "(SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL) RETURNING *), "
        f"sums AS (SELECT model, status, server_state, {', '.join(f'sum({c}) {c}' for c in COUNTERS)}, "
        "count(*) k FROM gone GROUP BY 1, 2, 3), "
        f"ins AS (INSERT INTO interaction_count AS c (slot, model, status, server_state, {', '.join(COUNTERS)}) "
        f"SELECT 0, model, status, server_state, {', '.join(COUNTERS)} FROM sums "
        "ON CONFLICT (slot, model, status, server_state) DO UPDATE SET "
        + ", ".join(f"{c} = c.{c} + excluded.{c}" for c in COUNTERS) + ") "
        "SELECT coalesce(sum(k), 0) FROM sums"
    ).scalar()
    conn.exec_driver_sql("DELETE FROM interaction_count WHERE slot = 0 AND n = 0")
    return int(folded or 0)


# --- bulk imports on SQLite -------------------------------------------------------


def _merge(columns: tuple[str, ...], newer: str) -> str:
    return ", ".join(f"{c} = CASE WHEN {newer} THEN excluded.{c} ELSE {c} END" for c in columns)


# The insert trigger's two upserts (migration 0005), taking a batch's rows aggregated
# per key and per conversation: the merge rules combine partial summaries in any order.
#: The counters of ``interaction_count`` (0005, and 0008's cost counters), in order.
COUNTERS = ("n", "tokens", "input_tokens", "output_tokens", "calls", "thought_tokens", "cached_tokens",
            "long_calls", "long_input", "long_output", "long_thought", "long_cached")
_UPSERT_COUNTS = (
    f"INSERT INTO interaction_count (slot, model, status, server_state, {', '.join(COUNTERS)}) "
    f"VALUES (0, ?, ?, ?, {', '.join('?' * len(COUNTERS))}) "
    "ON CONFLICT (slot, model, status, server_state) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in COUNTERS)
)
_UPSERT_CONVERSATION = (
    "INSERT INTO conversation (id, replay, turns, tokens, first_id, first_input, started_at, updated_at, head_id, "
    "model, status, server_state, labels, live_turns, live_head_id, live_expires_at, live_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET replay = replay OR excluded.replay, turns = turns + excluded.turns, "
    "tokens = tokens + excluded.tokens, live_turns = live_turns + excluded.live_turns, "
    + _merge(("first_input", "first_id", "started_at"), "(excluded.started_at, excluded.first_id) < (started_at, first_id)")
    + ", "
    + _merge(("model", "status", "server_state", "labels", "head_id", "updated_at"),
             "(excluded.updated_at, excluded.head_id) > (updated_at, head_id)")
    + ", "
    + _merge(("live_expires_at", "live_head_id", "live_at"),
             "excluded.live_head_id IS NOT NULL AND (live_head_id IS NULL OR "
             "(excluded.live_at, excluded.live_head_id) > (live_at, live_head_id))")
)


def begin_bulk(conn: Connection) -> bool:
    """SQLite, around one batch insert in a write transaction: the insert trigger stands
    aside (a row trigger costs ~35 us a row, its statement journal mostly) and the batch
    is counted by ``count_sqlite_rows``; ``end_bulk`` follows in the same transaction, so
    no other writer ever sees the flag. False on an archive not migrated to 0005."""
    if conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'summary_bulk'").first() is None:
        return False
    conn.exec_driver_sql("INSERT OR IGNORE INTO summary_bulk (id) VALUES (1)")
    return True


def end_bulk(conn: Connection) -> None:
    """SQLite: the insert trigger counts rows again."""
    conn.exec_driver_sql("DELETE FROM summary_bulk")


def count_sqlite_rows(cur: Any, rows: list[tuple[Any, ...]], columns: tuple[str, ...]) -> None:
    """Count inserted rows (SQLite parameter tuples in ``columns`` order) into the
    summary tables: what the insert trigger does per row, as one upsert per key and
    per conversation."""
    ix = {name: columns.index(name) for name in (
        "id", "conversation_id", "model", "status", "server_state", "total_tokens", "input_tokens", "output_tokens",
        "recorded_at", "expires_at", "replay_run_id", "labels", "input_text", "thought_tokens", "cached_tokens",
        "usage_json")}
    counts: dict[tuple[str, str, str], list[int]] = {}
    convs: dict[str, list[Any]] = {}
    for r in rows:
        iid, cid, at = r[ix["id"]], r[ix["conversation_id"]], r[ix["recorded_at"]]
        model, status, state = r[ix["model"]] or "", r[ix["status"]] or "", r[ix["server_state"]] or ""
        tokens = r[ix["total_tokens"]] or 0
        c = counts.get((model, status, state))
        if c is None:
            c = counts[(model, status, state)] = [0] * len(COUNTERS)
        inp, out, thought, cached = r[ix["input_tokens"]] or 0, r[ix["output_tokens"]] or 0, r[ix["thought_tokens"]], r[ix["cached_tokens"]]
        c[0] += 1
        c[1] += tokens
        c[2] += inp
        c[3] += out
        if thought is not None or r[ix["usage_json"]] is not None:  # the bulk path packs every row it counts
            c[4] += 1
            c[5] += thought or 0
            c[6] += cached or 0
        if inp > LONG_CONTEXT_TOKENS:
            c[7] += 1
            c[8] += inp
            c[9] += out
            c[10] += thought or 0
            c[11] += cached or 0
        live = r[ix["server_state"]] == "live" and r[ix["replay_run_id"]] is None
        key = (at, iid)
        s = convs.get(cid)
        if s is None:
            # id, replay, turns, tokens, first_id, first_input, started_at, updated_at, head_id, model, status,
            # server_state, labels, live_turns, live_head_id, live_expires_at, live_at
            convs[cid] = [cid, r[ix["replay_run_id"]] is not None, 1, tokens, iid, r[ix["input_text"]], at, at, iid,
                          r[ix["model"]], r[ix["status"]], r[ix["server_state"]], r[ix["labels"]], int(live),
                          iid if live else None, r[ix["expires_at"]] if live else None, at if live else None]
            continue
        s[1] = s[1] or r[ix["replay_run_id"]] is not None
        s[2] += 1
        s[3] += tokens
        if key < (s[6], s[4]):
            s[4], s[5], s[6] = iid, r[ix["input_text"]], at
        if key > (s[7], s[8]):
            s[7], s[8], s[9], s[10], s[11], s[12] = at, iid, r[ix["model"]], r[ix["status"]], r[ix["server_state"]], r[ix["labels"]]
        if live:
            s[13] += 1
            if s[14] is None or key > (s[16], s[14]):
                s[14], s[15], s[16] = iid, r[ix["expires_at"]], at
    cur.executemany(_UPSERT_COUNTS, [(*k, *v) for k, v in counts.items()])
    cur.executemany(_UPSERT_CONVERSATION, list(convs.values()))
