"""Recording never waits on the database, and never loses an acknowledged row.

Real SDK + sandbox, real SQLite files held under an outside lock, real PostgreSQL behind
a TCP relay the test controls (silent, refusing), and a child process killed with
SIGKILL while its rows are spooled.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import convostore
from convostore.cli import cli
from convostore.errors import StoreError
from convostore.store import Store
from convostore.store import background
from convostore.store.engine import resolve_url
from convostore.store.spool import read_ops, spool_dir

from .fixtures_sandbox import make_client
from .fixtures_store import pg_url
from .outage import OPENER, SPOOLING_CHILD, Relay, locked

MODEL = "gemini-2.5-flash"
ROOT = Path(__file__).resolve().parent.parent


def until(predicate, what: str, deadline: float = 60.0) -> None:
    """Wait for ``predicate()`` to hold, failing with ``what`` after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.01)


def spooled_ids(url: str) -> set[str]:
    out: set[str] = set()
    for f in spool_dir(url).glob("*.jsonl"):
        out |= {op["id"] for op in read_ops(f) if op.get("op") == "save"}
    return out


def stored_ids(url_or_path) -> set[str]:
    with Store(url_or_path, replay=False) as other:
        return {r.id for r in other.list(limit=None)}


# --- SQLite held by another writer ---------------------------------------------------------


def test_locked_sqlite_creates_return_and_every_row_lands_after_release(tmp_path, sandbox):
    path = tmp_path / "archive.db"
    store = Store(path)
    rc = convostore.record(make_client(sandbox.base_url), store=store)
    with locked(path):
        ids = [rc.interactions.create(model=MODEL, input=f"Question {i}.").id for i in range(8)]
        # Durable while the database is away: appended to the spool file, mode 0600.
        until(lambda: spooled_ids(store.url) >= set(ids), "rows spooled while the archive is locked")
        for f in spool_dir(store.url).glob("*.jsonl"):
            assert f.stat().st_mode & 0o777 == 0o600
        with sqlite3.connect(path) as reader:  # a plain reader: the archive is locked
            assert not {r[0] for r in reader.execute("SELECT id FROM interaction")} & set(ids)
    assert store.flush(timeout=60)
    assert stored_ids(path) >= set(ids)
    store.close()
    assert not list(spool_dir(store.url).glob("*.jsonl"))  # nothing left behind once written


def test_a_chain_continues_from_rows_still_queued_while_the_archive_is_locked(tmp_path, sandbox):
    path = tmp_path / "archive.db"
    store = Store(path)
    rc = convostore.record(make_client(sandbox.base_url), store=store)
    with locked(path):
        t1 = rc.interactions.create(model=MODEL, input="Hi, my name is Karthik. I like cricket.")
        t2 = rc.interactions.create(model=MODEL, input="I also like movies.", previous_interaction_id=t1.id)
        sandbox.expire()  # the server forgets: continuing needs the history, which is only queued
        t3 = rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t2.id)
        assert "Karthik" in store.get(t3.id).output_text  # the whole history reached the model
        sent = sandbox.requests[-1]
        assert "previous_interaction_id" not in sent
        assert store.get(t2.id).server_state == "expired"
        assert [r.id for r in store.chain(t3.id)] == [t1.id, t2.id, t3.id]
    assert store.flush(timeout=60)
    with Store(path, replay=False) as other:
        row = other.get(t3.id)
        assert (row.parent_id, row.link, row.conversation_id) == (t2.id, "rebuilt", t1.id)
        assert other.get(t2.id).server_state == "expired"
    store.close()


def test_async_creates_never_stall_the_event_loop_on_a_locked_archive(tmp_path, sandbox):
    """The lock is released only once the loop has ticked while creates were running: a
    loop blocked in a save (busy timeout 60 s) could not tick, and the holder gives up."""
    path = tmp_path / "archive.db"
    store = Store(path, busy_timeout=60)
    arc = convostore.record(make_client(sandbox.base_url), store=store).aio
    ticked_during_creates = threading.Event()
    holder_saw_tick: list[bool] = []
    is_locked = threading.Event()

    def hold() -> None:
        with locked(path):
            is_locked.set()
            holder_saw_tick.append(ticked_during_creates.wait(timeout=30))

    holder = threading.Thread(target=hold)
    holder.start()
    assert is_locked.wait(30)

    async def main() -> list[str]:
        done = asyncio.Event()

        async def ticker() -> None:
            returned = 0
            while not done.is_set():
                await asyncio.sleep(0)
                if created and not done.is_set():
                    returned += 1
                    if returned >= 3:  # the loop ran between creates that already saved a row
                        ticked_during_creates.set()

        created: list[str] = []

        async def one(i: int) -> None:
            out = await arc.interactions.create(model=MODEL, input=f"Async question {i}.")
            created.append(out.id)

        tick = asyncio.create_task(ticker())
        for i in range(20):
            await one(i)
        done.set()
        await tick
        return created

    ids = asyncio.run(main())
    holder.join()
    assert holder_saw_tick == [True], "the event loop stalled behind the locked archive"
    assert store.flush(timeout=60)
    assert stored_ids(path) >= set(ids)
    store.close()


def test_strict_still_saves_before_returning_and_raises(tmp_path, sandbox):
    path = tmp_path / "archive.db"
    store = Store(path, busy_timeout=0.2)
    rc = convostore.record(make_client(sandbox.base_url), store=store, strict=True)
    first = rc.interactions.create(model=MODEL, input="Saved before create returns.")
    assert first.id in stored_ids(path)  # no flush needed: strict saves on the caller's thread
    with locked(path):
        with pytest.raises(StoreError):
            rc.interactions.create(model=MODEL, input="The archive is locked.")
    store.close()


def test_busy_timeout_setting_is_validated(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVOSTORE_BUSY_TIMEOUT", "soon")
    with pytest.raises(StoreError, match="CONVOSTORE_BUSY_TIMEOUT"):
        Store(tmp_path / "a.db")
    monkeypatch.setenv("CONVOSTORE_BUSY_TIMEOUT", "2.5")
    with Store(tmp_path / "a.db") as s:
        assert s.busy_timeout == 2.5
    with pytest.raises(StoreError, match="busy timeout"):
        Store(tmp_path / "a.db", busy_timeout=-1)


# --- a process killed with rows spooled ---------------------------------------------------

def _killed_with_rows_spooled(path: Path, sandbox, n: int = 6) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with locked(path):
        child = subprocess.Popen(
            [sys.executable, "-c", SPOOLING_CHILD, str(path), sandbox.base_url, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        line = child.stdout.readline()
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert line, "the child died before spooling its rows"
    return json.loads(line)


@pytest.mark.parametrize("how", ["next open", "db flush"])
def test_rows_spooled_by_a_killed_process_are_written_later(tmp_path, sandbox, how):
    path = tmp_path / "archive.db"
    Store(path).close()
    ids = _killed_with_rows_spooled(path, sandbox)
    assert spooled_ids(resolve_url(path)) >= set(ids)
    if how == "db flush":
        result = CliRunner().invoke(cli, ["--db", str(path), "db", "flush"])
        assert result.exit_code == 0, result.output
        assert f"wrote {len(ids)} spooled" in result.output
        assert stored_ids(path) >= set(ids)
    else:
        with Store(path) as reopened:
            assert {r.id for r in reopened.list(limit=None)} >= set(ids)
    assert not list(spool_dir(resolve_url(path)).glob("*.jsonl"))
    result = CliRunner().invoke(cli, ["--db", str(path), "db", "flush"])  # twice: harmless
    assert result.exit_code == 0 and "wrote 0 spooled" in result.output


def test_db_flush_reports_a_database_that_still_refuses(tmp_path, sandbox):
    path = tmp_path / "archive.db"
    Store(path).close()
    ids = _killed_with_rows_spooled(path, sandbox, n=2)
    with locked(path):
        result = CliRunner().invoke(cli, ["--db", str(path), "db", "flush"], env={"CONVOSTORE_BUSY_TIMEOUT": "0.2"})
    assert result.exit_code == 1
    assert "stay spooled" in result.output or "stay spooled" in (result.stderr if hasattr(result, "stderr") else "")
    assert spooled_ids(resolve_url(path)) >= set(ids)  # nothing lost


# --- PostgreSQL that stops answering, or refuses ------------------------------------------


@pytest.fixture
def relay():
    r = Relay()
    yield r
    r.close()


@pytest.mark.parametrize("outage", ["silent", "refusing"])
def test_postgres_away_creates_return_and_rows_land_when_it_is_back(pg_schema, sandbox, relay, monkeypatch, outage):
    monkeypatch.setattr(background, "WRITE_TIMEOUT", 1.0)
    url = relay.url(pg_url(pg_schema))
    store = Store(url)
    rc = convostore.record(make_client(sandbox.base_url), store=store)
    first = rc.interactions.create(model=MODEL, input="Before the outage.")
    assert store.flush(timeout=60)
    relay.silent() if outage == "silent" else relay.refuse()
    ids = [rc.interactions.create(model=MODEL, input=f"During the outage {i}.").id for i in range(5)]
    until(lambda: spooled_ids(store.url) >= set(ids), "rows spooled while PostgreSQL is away")
    relay.forward()
    assert store.flush(timeout=60)
    assert stored_ids(pg_url(pg_schema)) >= {first.id, *ids}
    store.close()


# --- migrations under a lock ---------------------------------------------------------------

def test_sixteen_processes_open_one_new_postgres_schema_at_once(pg_schema):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    url = pg_url(pg_schema)
    # Started first, released together: the opens race for the empty schema.
    procs = [
        subprocess.Popen([sys.executable, "-c", OPENER, url], stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(16)
    ]
    for p in procs:
        p.stdin.write(b"go\n")
        p.stdin.flush()
    failures = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        if p.returncode != 0:
            failures.append(err.decode().strip().splitlines()[-1])
    assert failures == []
    with Store(url) as store:
        assert store.list(limit=1) is not None


def test_postgres_connections_carry_timeouts_and_keep_the_urls_options(pg_schema):
    with Store(pg_url(pg_schema)) as store:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() != "0"
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() != "0"
            assert conn.exec_driver_sql("SELECT current_schema()").scalar() == pg_schema
