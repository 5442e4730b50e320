"""Schema 0008: rows stored before it are packed into ``body`` after the migration,
losslessly (the export is byte for byte the same), in batches that survive a SIGKILL,
with the counters exact before, during and after."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

import convostore
from sqlalchemy import create_engine, text

from convostore.archive import export_jsonl
from convostore.records import row_from_exchange
from convostore.store import Store
from convostore.store import engine as store_engine
from convostore.store.rows import _COLUMN_ORDER, _defaults, _encode, _sqlite_param

from .fixtures_store import pg_url

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
_NEW = ("body", "thought_tokens", "cached_tokens")
_JSON_COLUMNS = ("request_json", "response_json", "usage_json")


def legacy_insert(engine, row):
    """Insert ``row`` as convostore stored it before 0008: JSON text columns, no ``body``."""
    values, _ = _encode(row, pack=False)
    _defaults(values)
    values.setdefault("conversation_id", row["id"])
    values.setdefault("link", "root")
    cols = [c for c in _COLUMN_ORDER if c not in _NEW]
    sqlite = engine.dialect.name == "sqlite"
    params = {c: (_sqlite_param(values.get(c)) if sqlite else values.get(c)) for c in cols}
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO interaction ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"), params)


def _legacy_copy(src: Store, engine) -> None:
    """Every row of ``src`` into ``engine``'s archive (at 0007) in the old encoding."""
    for row in src.list(oldest_first=True):
        d = {c: getattr(row, c) for c in _COLUMN_ORDER if hasattr(row, c) and c not in (*_NEW, *_JSON_COLUMNS)}
        d.update(request=row.request, response=row.response, input_steps=row.input_steps,
                 output_steps=row.output_steps, usage=row.usage, labels=row.labels, error=row.error)
        legacy_insert(engine, d)


def _rows() -> list[dict]:
    """Exchanges of every shape a store holds: chains, failures, GET views, 1.x bodies,
    usage with thought/cached tokens, a long-context prompt, hand-set steps."""
    out = []
    prev = None
    for t in range(6):
        iid = f"v1_chain{t}"
        request = {"model": "gemini-2.5-pro", "input": f"turn {t}: what changed in the quarterly numbers?"}
        if prev:
            request["previous_interaction_id"] = prev
        response = {"id": iid, "status": "completed", "model": "gemini-2.5-pro", "created": "2026-11-20T09:00:00Z",
                    "steps": [{"type": "thought", "signature": "c2ln"},
                              {"type": "model_output", "content": [{"type": "text", "text": f"Answer {t}: revenue grew."}]}],
                    "usage": {"total_input_tokens": 250_000 if t == 5 else 40 + t, "total_output_tokens": 12,
                              "total_thought_tokens": 8, "total_cached_tokens": 30 if t else 0,
                              "total_tokens": 60 + t}}
        out.append(row_from_exchange(request, response, api_version="v1", recorded_at=T0 + timedelta(minutes=t)))
        prev = iid
    # A GET body: the turn's input ahead of its outputs.
    get = {"id": "v1_get", "status": "completed", "model": "gemini-3-flash-preview",
           "steps": [{"type": "user_input", "content": [{"type": "text", "text": "a background question, long enough"}]},
                     {"type": "model_output", "content": [{"type": "text", "text": "a background answer"}]}]}
    out.append(row_from_exchange({}, get, api_version="v1", recorded_at=T0 + timedelta(hours=1)))
    # A failed attempt (no response), and a 1.x body (outputs).
    out.append(row_from_exchange({"model": "gemini-2.5-flash", "input": [{"type": "text", "text": "refused"}]}, None,
                                 api_version="v1", recorded_at=T0 + timedelta(hours=2), error="503 overloaded",
                                 extra={"id": "local-failed"}))
    out[-1]["id"] = "local-failed"
    out.append(row_from_exchange({"model": "gemini-2.5-flash", "input": "old shape"},
                                 {"id": "v1beta_old", "status": "completed", "object": "interaction", "role": "model",
                                  "outputs": [{"type": "text", "text": "old shape answer"}],
                                  "usage": {"total_input_tokens": 3, "total_output_tokens": 4, "total_tokens": 7}},
                                 api_version="v1beta", recorded_at=T0 + timedelta(hours=3)))
    # Steps that do not follow from the exchange (set by hand): stored as they are.
    odd = row_from_exchange({"model": "m", "input": "hand-made row, steps set apart"},
                            {"id": "v1_odd", "status": "completed", "steps": []},
                            api_version="v1", recorded_at=T0 + timedelta(hours=4), extra={"labels": {"team": "x"}})
    odd["output_steps"] = [{"type": "model_output", "content": [{"type": "text", "text": "not in the response"}]}]
    odd["output_text"] = "not in the response"
    odd["usage"] = {"total_input_tokens": 1, "total_output_tokens": 2, "total_tokens": 3}
    out.append(odd)
    return out


def _export(store: Store) -> bytes:
    buf = io.BytesIO()
    export_jsonl(store, buf)
    return buf.getvalue()


@pytest.fixture
def expected(tmp_path):
    """The rows saved by this version, and their export."""
    store = Store(tmp_path / "new.db")
    for row in _rows():
        store.save(row)
    yield store, _export(store)
    store.close()


def _at_0007(url: str):
    engine = create_engine(url)
    with engine.begin() as conn:
        from alembic import command

        command.upgrade(store_engine.alembic_config(conn), "0007")
    return engine


def _legacy_left(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM interaction WHERE body IS NULL")).scalar()


def _check(store: Store, reference: Store, export: bytes) -> None:
    assert _export(store) == export
    assert store.usage() == [{k: v for k, v in u.items() if k != "max_input"} for u in store.usage(scan=True)] == reference.usage()
    assert {k: v for k, v in store.stats().items() if k not in ("database", "file_bytes")} == \
        {k: v for k, v in reference.stats().items() if k not in ("database", "file_bytes")}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_rows_from_before_0008_are_packed_losslessly(backend, expected, tmp_path, request):
    reference, export = expected
    url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else pg_url(request.getfixturevalue("pg_schema"))
    engine = _at_0007(url)
    _legacy_copy(reference, engine)
    engine.dispose()

    store = Store(url)  # migrates to 0008, then packs the old rows
    try:
        assert store_engine.current_revision(store.engine) == store_engine.SCHEMA_HEAD
        assert _legacy_left(store) == 0
        _check(store, reference, export)
        assert [r.id for r in store.search("quarterly")] and convostore.history(store, "v1_chain5")
        # A packed row still merges and updates field by field.
        store.update("v1_chain3", labels={"k": "v"}, output_steps=[{"type": "model_output", "content": [{"type": "text", "text": "new"}]}])
        row = store.get("v1_chain3")
        assert row.output_steps[0]["content"][0]["text"] == "new" and row.request["input"].startswith("turn 3")
        assert store.usage() == [{k: v for k, v in u.items() if k != "max_input"} for u in store.usage(scan=True)]
    finally:
        store.close()


def test_packing_survives_a_sigkill_and_resumes(expected, tmp_path):
    """Killed between or inside batches: nothing is lost, every row reads the same
    (packed or not), counters stay exact, and the next open finishes the job."""
    reference, export = expected
    path = tmp_path / "old.db"
    engine = _at_0007(f"sqlite:///{path}")
    _legacy_copy(reference, engine)
    engine.dispose()
    store_engine.upgrade(store_engine.create(f"sqlite:///{path}"))  # the migration alone

    code = (
        "import sys; from convostore.store import engine, repack; e = engine.create(sys.argv[1])\n"
        "while repack.run_batch(e, 'sqlite', 1) is not None:\n"
        "    print('batch', flush=True); sys.stdin.readline()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, f"sqlite:///{path}"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.stdout.readline() == "batch\n"  # one batch committed; the child waits for us
    for _ in range(3):
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline() == "batch\n"
    child.send_signal(signal.SIGKILL)
    child.wait()

    half = Store(path, migrate=False)  # no packing on this open: read the half-packed archive
    try:
        left = _legacy_left(half)
        assert 0 < left < len(_rows())
        _check(half, reference, export)
        with half.engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert conn.execute(text("SELECT after FROM body_backfill")).scalar() == "v1_chain2"  # 4 batches of 1
    finally:
        half.close()
    store = Store(path)  # resumes
    try:
        assert _legacy_left(store) == 0
        _check(store, reference, export)
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM body_backfill")).scalar() == 0
    finally:
        store.close()


def test_a_bad_body_is_a_clear_error(tmp_path):
    """A body written by a newer convostore (unknown format) fails with a one-line error, not garbage."""
    store = Store(tmp_path / "a.db")
    try:
        store.save(_rows()[0])
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE interaction SET body = x'7f00'"))
        with pytest.raises(Exception, match="unknown body format 0x7f"):
            store.get("v1_chain0").request
        assert orjson.loads(orjson.dumps(store.get("v1_chain0").to_json_dict(), default=str))["id"] == "v1_chain0"
    finally:
        store.close()
