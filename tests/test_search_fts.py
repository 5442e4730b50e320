"""Full-text search is current as rows are written, so searching is a pure read.

It works on a read-only archive and while another process holds the write lock, and
the FTS table is declared so that sqlite-utils and Datasette find it.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from datetime import datetime, timezone

import sqlite_utils
from click.testing import CliRunner

import convostore
from convostore.cli import cli
from convostore.records import row_from_exchange
from convostore.store import Store

MODEL = "gemini-3-flash-preview"


def _record(client, store):
    rc = convostore.record(client, store=store)
    t1 = rc.interactions.create(model=MODEL, input="Hi, my name is Karthik and I play cricket.")
    rc.interactions.create(model=MODEL, input="Which sport do I like, zanzibar?", previous_interaction_id=t1.id)
    return t1


def _fts_ok(path) -> None:
    raw = sqlite3.connect(path)
    try:
        raw.execute("INSERT INTO interaction_fts(interaction_fts) VALUES ('integrity-check')")
    finally:
        raw.close()


def test_a_recorded_turn_is_found_at_once_and_search_writes_nothing(client, sqlite_store):
    _record(client, sqlite_store)
    assert "zanzibar" in sqlite_store.search("zanzibar")[0].input_text
    # Another process holds the write lock: a search neither waits for it nor needs it.
    locker = sqlite3.connect(sqlite_store.path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        assert [r.input_text for r in Store(sqlite_store.path).search("cricket")] == ["Hi, my name is Karthik and I play cricket."]
    finally:
        locker.execute("ROLLBACK")
        locker.close()


def test_search_works_on_a_read_only_archive(client, sqlite_store, tmp_path):
    _record(client, sqlite_store)
    path = sqlite_store.path
    sqlite_store.close()
    os.chmod(path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # 0444
    try:
        store = Store(path)
        assert [r.input_text for r in store.search("zanzibar")] == ["Which sport do I like, zanzibar?"]
        store.close()
        res = CliRunner().invoke(cli, ["--db", path, "search", "cricket", "--json"])
        assert res.exit_code == 0, res.output
        assert "cricket" in res.stdout
    finally:
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


def test_updates_and_deletes_keep_the_index_in_step(client, sqlite_store):
    t1 = _record(client, sqlite_store)
    sqlite_store.update(t1.id, input_text="now about badminton")
    assert [r.id for r in sqlite_store.search("badminton")] == [t1.id]
    assert t1.id not in [r.id for r in sqlite_store.search("cricket")]
    with sqlite_store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM interaction WHERE id = ?", (t1.id,))
    assert sqlite_store.search("badminton") == []
    _fts_ok(sqlite_store.path)


def test_sqlite_utils_and_datasette_detect_the_search_table(client, sqlite_store):
    _record(client, sqlite_store)
    db = sqlite_utils.Database(sqlite_store.path)
    table = db.table("interaction")
    assert table.detect_fts() == "interaction_fts"
    found = list(table.search("cricket", columns=["id", "input_text"]))
    assert [r["input_text"] for r in found] == ["Hi, my name is Karthik and I play cricket."]
    db.close()


def test_an_archive_from_0002_gets_every_row_indexed_by_the_migration(tmp_path):
    from alembic import command
    from sqlalchemy import create_engine

    from convostore.store import engine as store_engine

    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        command.upgrade(store_engine.alembic_config(conn), "0002")
    engine.dispose()
    from tests.test_repack import legacy_insert

    engine = create_engine(f"sqlite:///{path}")  # rows as the code of 0002 wrote them
    now = datetime.now(timezone.utc)
    for i in range(5):
        legacy_insert(engine, row_from_exchange({"model": "m", "input": f"old question {i} about walruses"},
                                                {"id": f"old-{i}", "status": "completed"}, api_version="v1", recorded_at=now))
    engine.dispose()
    store = Store(path)  # migrates to head: the lazily indexed rows are indexed once
    assert sorted(r.id for r in store.search("walruses")) == [f"old-{i}" for i in range(5)]
    assert sqlite_utils.Database(path).table("interaction").detect_fts() == "interaction_fts"
    store.close()
    _fts_ok(path)
