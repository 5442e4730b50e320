"""The store: what an archive must guarantee, on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone

import pytest

from convostore.errors import ChainCycleError, NotFoundError, StoreError
from convostore.records import row_from_exchange
from convostore.store import Store

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def turn(iid, text, prev=None, answer=None, **request):
    req = {"model": "gemini-2.5-flash", "input": text, **request}
    if prev:
        req["previous_interaction_id"] = prev
    resp = {"id": iid, "status": "completed", "model": "gemini-2.5-flash", "created": "2026-11-24T12:00:00Z",
            "steps": [{"type": "model_output", "content": [{"type": "text", "text": answer or f"answer to {text}"}]}],
            "usage": {"total_input_tokens": 3, "total_output_tokens": 4, "total_tokens": 7}}
    return row_from_exchange(req, resp, api_version="v1", recorded_at=NOW)


def test_chains_branches_and_conversations(store):
    store.save(turn("a", "my name is Ada"))
    store.save(turn("b", "I like tea", prev="a"))
    store.save(turn("c", "what is my name?", prev="b"))
    store.save(turn("d", "no, coffee", prev="a"))  # a branch
    assert [r.id for r in store.chain("c")] == ["a", "b", "c"]
    assert {r.conversation_id for r in store.tree("d")} == {"a"}
    assert [(r.id, r.depth) for r in store.tree("c")] == [("a", 0), ("b", 1), ("c", 2), ("d", 1)]
    assert {r.id for r in store.children("a")} == {"b", "d"}
    assert store.get("c").link == "server" and store.get("a").link == "root"
    assert store.get("c").total_tokens == 7
    assert store.get("c").expires_at == datetime(2027, 1, 18, 12, 0, tzinfo=timezone.utc)  # paid: 55 days


def test_unknown_ids_and_prefixes(store):
    store.save(turn("v1_abcdef123", "hi"))
    assert store.get("v1_abcdef").id == "v1_abcdef123"
    with pytest.raises(NotFoundError):
        store.get("v1_zzzzzz")
    with pytest.raises(NotFoundError):
        store.chain("nope")
    with pytest.raises(NotFoundError):
        store.chain_links("nope")


def test_a_later_save_merges_without_erasing(store):
    req = {"model": "m", "input": "research", "background": True}
    store.save(row_from_exchange(req, {"id": "bg", "status": "in_progress"}, api_version="v1", recorded_at=NOW))
    done = {"id": "bg", "status": "completed", "steps": [{"type": "model_output", "content": [{"type": "text", "text": "done"}]}]}
    store.save(row_from_exchange({}, done, api_version="v1", recorded_at=NOW))
    row = store.get("bg")
    assert row.status == "completed" and row.output_text == "done"
    assert row.input_text == "research" and row.background


def test_search_is_full_text_and_safe(store):
    store.save(turn("a", "tell me about the Sagrada Familia", answer="Gaudí designed it"))
    store.save(turn("b", "something else"))
    assert [r.id for r in store.search("sagrada")] == ["a"]
    assert [r.id for r in store.search("Gaudí")] == ["a"]
    assert store.search('AND OR "( NEAR') == []  # FTS syntax is just text
    assert store.search("") == []


def test_list_filters_and_stats(store):
    for i in range(5):
        store.save(turn(f"t{i}", f"turn {i}", prev=f"t{i-1}" if i else None))
    assert [r.id for r in store.list(limit=2)] == ["t4", "t3"]  # newest first, cut at the limit
    assert len(list(store.list(conversation="t0"))) == 5
    stats = store.stats()
    assert stats["interactions"] == 5 and stats["conversations"] == 1 and stats["total_tokens"] == 35


def test_cycles_are_reported(store):
    with store.writer() as w:
        w.save({**turn("x", "one"), "parent_id": "y", "conversation_id": "x", "link": "server"})
        w.save({**turn("y", "two"), "parent_id": "x", "conversation_id": "x", "link": "server"})
    with pytest.raises(ChainCycleError):
        store.chain("x")
    from convostore.rebuild import history

    with pytest.raises(ChainCycleError):
        history(store, "y")


def test_media_is_stored_once(store):
    image = base64.b64encode(os.urandom(3000)).decode()
    for iid in ("m1", "m2"):
        req = {"model": "m", "input": [{"type": "image", "data": image, "mime_type": "image/png"}, {"type": "text", "text": "what?"}]}
        store.save(row_from_exchange(req, {"id": iid, "status": "completed", "steps": []}, api_version="v1", recorded_at=NOW))
    assert store.stats()["media"]["items"] == 1
    assert store.get("m2").request["input"][0]["data"] == image  # restored losslessly
    assert store.get("m2").input_steps[0]["content"][0]["data"] == image


def test_closed_store_is_a_clear_error(tmp_path):
    s = Store(tmp_path / "x.db")
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.get("anything")


def test_unreadable_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not a database, it is a shopping list\n" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        Store(bad)
    assert bad.read_text().startswith("this is not a database")  # untouched


def test_new_sqlite_file_is_private(tmp_path):
    Store(tmp_path / "private.db").close()
    assert (os.stat(tmp_path / "private.db").st_mode & 0o777) == 0o600


def test_default_location_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVOSTORE_DB", str(tmp_path / "env.db"))
    s = Store()
    assert s.path == str(tmp_path / "env.db")
    s.close()


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    from convostore.records import row_from_exchange
    from convostore.store import Store
    url, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    s = Store(url)
    for i in range(n):
        req = {"model": "m", "input": f"{prefix} {i}"}
        if i:
            req["previous_interaction_id"] = f"{prefix}-{i-1}"
        resp = {"id": f"{prefix}-{i}", "status": "completed", "steps": [{"type": "model_output", "content": [{"type": "text", "text": "ok"}]}]}
        s.save_quiet(row_from_exchange(req, resp, api_version="v1", recorded_at=datetime.now(timezone.utc)))
        print(f"{prefix}-{i}", flush=True)
    """
)


def test_concurrent_processes_lose_nothing(store, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    url = store.url
    procs = [subprocess.Popen([sys.executable, str(script), url, f"p{p}", "100"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
    assert store.stats()["interactions"] == 400
    assert [r.id for r in store.chain("p3-99")][0] == "p3-0"


def test_sigkill_leaves_a_sound_database(tmp_path):
    db = tmp_path / "killed.db"
    Store(db).close()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(db), "k", "100000"], stdout=subprocess.PIPE, text=True)
    done = []
    while len(done) < 200:
        done.append(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {r[0] for r in conn.execute("SELECT id FROM interaction")}
    assert set(done) <= stored
    conn.close()


def test_the_sqlite_import_parameters_match_the_general_encoding():
    # Writer.save_many on SQLite builds driver parameters directly; they must be what the
    # general path (_encode + _defaults + _sqlite_param) would have stored.
    from datetime import timedelta

    from convostore.store import _COLUMN_ORDER, _defaults, _encode, _sqlite_param, _sqlite_params

    def general(row):
        values = _encode(row)[0]
        _defaults(values)
        return tuple(_sqlite_param(values.get(c)) for c in _COLUMN_ORDER)

    base = {**turn("p1", "hello"), "conversation_id": "p1", "link": "root", "context_hash": "h"}
    rows = [
        base,
        {**base, "labels": {"team": "x"}, "error": {"message": "boom"}, "latency_ms": 12.5, "hop_index": None},
        {**base, "recorded_at": datetime(2026, 1, 2, 3, 4, 5, 6), "expires_at": None, "created": None},
        {**base, "recorded_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5)))},
        {**base, "request": '{"model": "m", "input": "as text"}', "response": None, "usage": None},
        {"id": "bare", "conversation_id": "bare", "link": "root", "context_hash": "h", "recorded_at": NOW},
    ]
    for row in rows:
        assert _sqlite_params(row) == general(row)
    image = base64.b64encode(os.urandom(3000)).decode()
    assert _sqlite_params({**base, "request": {"input": [{"type": "image", "data": image}]}}) is None  # media: general path


def test_a_long_read_does_not_hold_up_recording(tmp_path):
    """An export or listing in progress must not block the application's recorder (SQLite)."""
    import threading

    path = tmp_path / "shared.db"
    reader = Store(path)
    with reader.writer() as w:
        w.save_many([turn(f"r{i}", f"turn {i}") for i in range(300)])
    rows = reader.list()
    first = next(rows)  # the read is open, mid-stream
    assert first.id.startswith("r")
    recorder = Store(path)
    saved = threading.Event()

    def record() -> None:
        recorder.save_quiet(turn("during-export", "recorded while a listing is open"))
        saved.set()

    t = threading.Thread(target=record, daemon=True)
    t.start()
    try:
        assert saved.wait(10), "the save waited on the reader's transaction"
    finally:
        rows.close()
        t.join(40)
    assert recorder.exists("during-export") and sum(1 for _ in reader.list()) == 301
    reader.close()
    recorder.close()


def test_new_sqlite_files_get_8k_pages_and_old_files_keep_theirs(tmp_path):
    fresh = Store(tmp_path / "new.db")
    fresh.save(turn("a", "hello"))
    fresh.close()
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("CREATE TABLE t (x)")  # the size is fixed by the first table
    conn.commit()
    conn.close()
    older = Store(old)
    older.save(turn("b", "still works"))
    assert older.get("b").input_text == "still works"
    older.close()
    sizes = {p.name: sqlite3.connect(p).execute("PRAGMA page_size").fetchone()[0] for p in (tmp_path / "new.db", old)}
    assert sizes == {"new.db": 8192, "old.db": 4096}
