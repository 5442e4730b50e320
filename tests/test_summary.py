"""The summary tables stay exact: stats, conversation pages and expiring agree with the
rows themselves after any mix of writes (recorder save, general save, import, update,
server-state marks, deletes), on both backends (issue 12)."""

from __future__ import annotations

import io
import itertools
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from convostore.archive import import_jsonl
from convostore.cli import cli
from convostore.records import row_from_exchange
from convostore.resume import expiring

BASE = datetime(2026, 11, 20, tzinfo=timezone.utc)
MODELS = ["gemini-2.5-flash", "gemini-2.5-pro", None]
STATES = ["live", "expired", "deleted", None]
_ids = itertools.count()


def _exchange(iid: str, *, parent: str | None, model: str | None, tokens: int, at: datetime, state: str | None,
              labels: dict[str, str] | None = None, replay: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"model": model or "gemini-x", "input": f"words of {iid}"}
    if parent:
        request["previous_interaction_id"] = parent
    # Prompts past 200k input tokens (tokens > 20) are counted apart, for long-context rates.
    usage = {"total_input_tokens": tokens * 10_000, "total_output_tokens": 2, "total_thought_tokens": tokens % 3,
             "total_tokens": tokens + 2}
    if tokens % 4:
        usage["total_cached_tokens"] = tokens
    response = {"id": iid, "status": "completed", "model": model, "usage": usage}
    extra: dict[str, Any] = {"server_state": state, "expires_at": at + timedelta(days=1) if state == "live" else None}
    if labels:
        extra["labels"] = labels
    if replay:
        extra["replay_run_id"] = replay
    row = row_from_exchange(request, response, api_version="v1", recorded_at=at, extra=extra)
    if model is None:
        row["model"] = None
    return row


def _line(row: dict[str, Any]) -> bytes:
    meta = {k: row.get(k) for k in ("recorded_at", "server_state", "expires_at", "labels", "replay_run_id") if row.get(k)}
    if row.get("parent_id") or row["request"].get("previous_interaction_id"):
        meta["parent_id"] = row["request"]["previous_interaction_id"]
    line = {"convostore": 1, "id": row["id"], "api_version": "v1", "request": row["request"], "response": row["response"], "meta": meta}
    return orjson.dumps(line, default=str, option=orjson.OPT_APPEND_NEWLINE)


_op = st.one_of(
    st.tuples(st.sampled_from(["record", "save", "import"]), st.integers(0, 50), st.sampled_from(MODELS),
              st.integers(0, 40), st.integers(0, 6), st.sampled_from(STATES), st.booleans()),
    st.tuples(st.just("mark"), st.integers(0, 50), st.sampled_from(STATES)),
    st.tuples(st.just("update"), st.integers(0, 50), st.sampled_from(["failed", "completed"]), st.integers(0, 9)),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.just("usage"), st.integers(0, 50), st.one_of(st.none(), st.integers(0, 12))),
)


def _apply(store: Any, ops: list[tuple[Any, ...]], tag: str) -> None:
    mine: list[str] = []
    for op in ops:
        kind = op[0]
        if kind in ("record", "save", "import"):
            _, pick, model, tokens, minute, state, root = op
            parent = None if root or not mine else mine[pick % len(mine)]
            iid = f"{tag}-{next(_ids)}"
            # Few distinct times: ties in recorded_at, broken by id, are the norm here.
            row = _exchange(iid, parent=parent, model=model, tokens=tokens, at=BASE + timedelta(minutes=minute), state=state,
                            labels={"team": "a" if tokens % 2 else "b"}, replay="run-1" if tokens == 40 else None)
            if kind == "record":
                store.save_quiet(row)
            elif kind == "save":
                store.save(row)
            else:
                import_jsonl(store, io.BytesIO(_line(row)))
            mine.append(iid)
        elif not mine:
            continue
        elif kind == "mark":
            store.mark_server_state(mine[op[1] % len(mine)], op[2] or "not_stored")
        elif kind == "update":
            store.update(mine[op[1] % len(mine)], status=op[2], total_tokens=op[3])
        elif kind == "usage":  # usage set again (a GET refresh): cost counters follow
            usage = None if op[2] is None else {"total_input_tokens": op[2] * 30_000, "total_thought_tokens": op[2]}
            store.update(mine[op[1] % len(mine)], usage=usage, input_tokens=None if op[2] is None else op[2] * 30_000)
        elif kind == "delete":
            victim = mine.pop(op[1] % len(mine))
            with store.engine.begin() as conn:  # any writer, even SQL by hand
                conn.execute(text("DELETE FROM interaction WHERE id = :i"), {"i": victim})


def _expected(store: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    rows = list(store.list(oldest_first=True))
    by_conv: dict[str, list[Any]] = {}
    for r in rows:
        by_conv.setdefault(r.conversation_id, []).append(r)
    convs = {}
    for cid, rs in by_conv.items():
        rs.sort(key=lambda r: (r.recorded_at, r.id))
        live = [r for r in rs if r.server_state == "live" and r.replay_run_id is None]
        convs[cid] = {
            "turns": len(rs), "tokens": sum(r.total_tokens or 0 for r in rs), "first_input": rs[0].input_text,
            "started_at": rs[0].recorded_at, "updated_at": rs[-1].recorded_at, "head_id": rs[-1].id,
            "model": rs[-1].model, "status": rs[-1].status, "server_state": rs[-1].server_state,
            "labels": rs[-1].labels, "live_turns": len(live), "live_head_id": live[-1].id if live else None,
            "live_expires_at": live[-1].expires_at if live else None,
            "replay": any(r.replay_run_id for r in rs),
        }

    def by(attr: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in rows:
            key = str(getattr(r, attr))
            out[key] = out.get(key, 0) + 1
        return out

    stats = {"interactions": len(rows), "conversations": len(by_conv), "total_tokens": sum(r.total_tokens or 0 for r in rows),
             "by_model": by("model"), "by_status": by("status"), "by_server_state": by("server_state")}
    return stats, convs


def _pages(store: Any, **filters: Any) -> list[Any]:
    out, after = [], None
    while True:
        page = store.list_conversations(limit=3, after=after, **filters)
        out += page.items
        if page.next is None:
            return out
        after = page.next


def _check(store: Any) -> None:
    stats, convs = _expected(store)
    got = store.stats()
    assert {k: got[k] for k in stats} == stats
    # Cost counters (0008) against a full recomputation over the rows.
    scanned = [{k: v for k, v in line.items() if k != "max_input"} for line in store.usage(scan=True)]
    assert store.usage() == scanned
    listed = _pages(store, replays=True)
    assert [c.id for c in listed] == sorted(convs, key=lambda c: (convs[c]["updated_at"], c), reverse=True)
    for c in listed:
        assert {k: getattr(c, k) for k in convs[c.id]} == convs[c.id]
    originals = [c.id for c in _pages(store)]
    assert originals == [c.id for c in listed if not convs[c.id]["replay"]]
    soon = list(expiring(store, "3650d"))  # every live conversation
    want = sorted(((v["live_expires_at"], cid) for cid, v in convs.items() if v["live_expires_at"]))
    assert [(e.expires_at, e.conversation_id) for e in soon] == want
    assert all(e.head_id == convs[e.conversation_id]["live_head_id"] and e.turns == convs[e.conversation_id]["live_turns"]
               for e in soon)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, min_size=1, max_size=25))
def test_counters_and_summaries_stay_exact_through_any_writes(store, ops):
    _apply(store, ops, f"h{next(_ids)}")
    _check(store)


def test_keyset_pages_list_every_conversation_once_under_filters(store):
    rows = [_exchange(f"k{i}", parent=None, model=MODELS[i % 2], tokens=i, at=BASE + timedelta(seconds=i % 4), state="live",
                      labels={"team": "a" if i % 3 else "b"}) for i in range(20)]
    import_jsonl(store, io.BytesIO(b"".join(_line(r) for r in rows)))
    everyone = _pages(store)
    assert sorted(c.id for c in everyone) == sorted(r["id"] for r in rows)
    assert len({c.id for c in everyone}) == 20
    flash = _pages(store, model="gemini-2.5-flash")
    assert sorted(c.id for c in flash) == sorted(r["id"] for r in rows if r["model"] == "gemini-2.5-flash")
    team_b = _pages(store, label="team=b")
    assert sorted(c.id for c in team_b) == sorted(f"k{i}" for i in range(20) if i % 3 == 0)
    late = _pages(store, since=BASE + timedelta(seconds=2), until=BASE + timedelta(seconds=3))
    assert sorted(c.id for c in late) == sorted(f"k{i}" for i in range(20) if i % 4 == 2)


def test_expiring_lists_the_newest_live_turn_soonest_first(store):
    now = datetime.now(timezone.utc)
    a1 = _exchange("e-a1", parent=None, model="m", tokens=1, at=now - timedelta(hours=30), state="live")
    a2 = _exchange("e-a2", parent="e-a1", model="m", tokens=1, at=now - timedelta(hours=20), state="live")
    b1 = _exchange("e-b1", parent=None, model="m", tokens=1, at=now - timedelta(hours=23), state="live")
    c1 = _exchange("e-c1", parent=None, model="m", tokens=1, at=now - timedelta(hours=23), state="expired")
    for row in (a1, a2, b1, c1):
        store.save(row)
    soon = list(expiring(store, "2h"))
    assert [(e.conversation_id, e.head_id, e.turns) for e in soon] == [("e-b1", "e-b1", 1)]
    later = list(expiring(store, "6h"))
    assert [(e.conversation_id, e.head_id, e.turns) for e in later] == [("e-b1", "e-b1", 1), ("e-a1", "e-a2", 2)]
    store.mark_server_state("e-a2", "expired")  # the older live turn is now what a continuation names
    assert [(e.conversation_id, e.head_id) for e in expiring(store, "6h")] == [("e-a1", "e-a1"), ("e-b1", "e-b1")]


def test_cli_conversations_pages_with_after(tmp_path):
    db = tmp_path / "c.db"
    from convostore.store import Store

    with Store(db) as store:
        for i in range(5):
            store.save(_exchange(f"c{i}", parent=None, model="gemini-2.5-flash", tokens=i, at=BASE + timedelta(minutes=i), state="live"))
    runner = CliRunner()
    first = runner.invoke(cli, ["--db", str(db), "conversations", "-n", "2", "--json"])
    assert first.exit_code == 0, first.output
    page = orjson.loads(first.stdout)
    assert [c["id"] for c in page["items"]] == ["c4", "c3"]
    second = runner.invoke(cli, ["--db", str(db), "conversations", "-n", "2", "--after", page["next"]])
    assert second.exit_code == 0, second.output
    assert [line.split()[0] for line in second.stdout.splitlines()] == ["c2", "c1"]
    assert "--after" in second.stderr
    bad = runner.invoke(cli, ["--db", str(db), "conversations", "--after", "nonsense"])
    assert bad.exit_code == 1 and "cursor" in bad.stderr and "Traceback" not in bad.output


def test_an_archive_at_0004_upgrades_with_its_summaries_backfilled(tmp_path):
    from alembic import command
    from sqlalchemy import create_engine

    from convostore.store import Store
    from convostore.store import engine as store_engine

    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        command.upgrade(store_engine.alembic_config(conn), "0004")
    engine.dispose()
    # Rows as the code of 0004 wrote them (JSON columns, no summaries yet).
    from tests.test_repack import legacy_insert

    engine = create_engine(f"sqlite:///{path}")
    for i, (model, tokens, minute, state, parent) in enumerate(
            [("m1", 3, 1, "live", None), ("m2", 4, 2, "live", 0), (None, 25, 3, "expired", None), ("m1", 6, 4, "live", 0)]):
        row = _exchange(f"old-{i}", parent=None, model=model, tokens=tokens, at=BASE + timedelta(minutes=minute), state=state)
        row.update(conversation_id=f"old-{parent if parent is not None else i}", parent_id=None if parent is None else f"old-{parent}",
                   link="root" if parent is None else "server")
        legacy_insert(engine, row)
    engine.dispose()
    store = Store(path)
    assert store_engine.current_revision(store.engine) == store_engine.SCHEMA_HEAD
    _check(store)
    store.close()


def test_a_large_import_refreshes_planner_statistics(pg_store, monkeypatch):
    """So a server with autovacuum off still plans the next queries for the real size."""
    from convostore import archive

    monkeypatch.setattr(archive, "ANALYZE_AFTER", 5)

    def analyzed() -> bool:
        with pg_store.engine.connect() as conn:
            return conn.execute(text("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
                                     "WHERE relid = 'interaction'::regclass")).scalar()

    small = [_exchange(f"a{i}", parent=None, model="m", tokens=1, at=BASE, state="live") for i in range(3)]
    import_jsonl(pg_store, io.BytesIO(b"".join(_line(r) for r in small)))
    assert not analyzed()
    large = [_exchange(f"b{i}", parent=None, model="m", tokens=1, at=BASE, state="live") for i in range(6)]
    import_jsonl(pg_store, io.BytesIO(b"".join(_line(r) for r in large)))
    assert analyzed()


def test_db_optimize_folds_counters_and_keeps_stats(store):
    from sqlalchemy import create_engine

    for i in range(4):
        store.save(_exchange(f"o{i}", parent=None, model="m", tokens=i, at=BASE, state="live"))
    if store.dialect == "postgresql":  # a connection that has gone leaves its counter slot behind
        other = create_engine(store.url)
        with other.begin() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            conn.execute(text("UPDATE interaction SET status = 'failed' WHERE id = 'o1'"))
        other.dispose()
        deadline = time.monotonic() + 10  # the backend exits just after its client goes
        with store.engine.connect() as conn:
            while conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}).scalar():
                assert time.monotonic() < deadline, "the closed connection's backend never exited"
                conn.rollback()
                time.sleep(0.01)
    before = store.stats()
    result = store.optimize()
    assert result.analyzed and store.stats() == {**before, "file_bytes": store.stats()["file_bytes"]}
    if store.dialect == "postgresql":
        assert result.counters_folded > 0
        with store.engine.connect() as conn:
            live_slots = conn.execute(text("SELECT count(*) FROM interaction_count WHERE slot NOT IN "
                                           "(0, pg_backend_pid()) AND slot NOT IN (SELECT pid FROM pg_stat_activity)")).scalar()
        assert live_slots == 0
    _check(store)


def test_db_optimize_vacuum_gives_space_back(tmp_path):
    from convostore.store import Store

    db = tmp_path / "v.db"
    with Store(db) as store:
        rows = [_exchange(f"v{i}", parent=None, model="m", tokens=i, at=BASE, state="live") for i in range(300)]
        for r in rows:
            r["request"]["input"] = "padding " * 400
        import_jsonl(store, io.BytesIO(b"".join(_line(r) for r in rows)))
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM interaction"))
    runner = CliRunner()
    out = runner.invoke(cli, ["--db", str(db), "db", "optimize", "--vacuum", "--json"])
    assert out.exit_code == 0, out.output
    result = orjson.loads(out.stdout)
    assert result["vacuumed"] and result["bytes_after"] < result["bytes_before"] / 2
    with Store(db) as store:
        assert store.stats()["interactions"] == 0 and store.stats()["conversations"] == 0
