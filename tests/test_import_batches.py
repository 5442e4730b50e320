"""A long import never makes a recorder wait long, and still lands all or nothing.

On SQLite an import commits batch by batch and reads the next lines outside any
transaction, so a recorded ``create`` on another Store gets the write lock between
batches; a failure undoes what landed, from the import journal.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading

import orjson
import pytest

import convostore
from convostore.archive import export_jsonl, import_jsonl
from convostore.errors import ImportFieldError
from convostore.store import Store

from .test_import_validation import _changed, _valid

DEADLINE = 60


class _PausingFile(io.RawIOBase):
    """A file that, once ``pause_at`` lines have been read, sets ``reached`` and
    waits for ``resume`` before handing out the rest (the importer mid-file)."""

    def __init__(self, lines: list[bytes], pause_at: int) -> None:
        self.lines = iter(lines)
        self.count = 0
        self.pause_at = pause_at
        self.reached = threading.Event()
        self.resume = threading.Event()

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        if self.count == self.pause_at:
            self.reached.set()
            if not self.resume.wait(DEADLINE):
                raise RuntimeError("nobody resumed the import")
        self.count += 1
        return next(self.lines)


def _lines(n: int) -> list[bytes]:
    return [orjson.dumps(_valid(f"v1_imp{k}")) + b"\n" for k in range(n)]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_recorded_create_completes_while_a_large_import_runs(backend, request, client, tmp_path):
    store = request.getfixturevalue("sqlite_store" if backend == "sqlite" else "pg_store")
    src = _PausingFile(_lines(3500), pause_at=2500)  # two batches landed, the third in progress
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = import_jsonl(store, src)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    importer = threading.Thread(target=run)
    importer.start()
    try:
        assert src.reached.wait(DEADLINE)
        other = Store(store.url)  # another Store, as another process's recorder would be
        rc = convostore.record(client, store=other, strict=True)
        done = rc.interactions.create(model="gemini-3-flash-preview", input="recorded while an import runs")
        assert other.get(done.id).input_text == "recorded while an import runs"
        other.close()
    finally:
        src.resume.set()
        importer.join(DEADLINE)
    assert "error" not in outcome, outcome
    assert outcome["result"].added == 3500
    assert store.get(done.id).status == "completed"
    assert len(list(store.iter_all())) == 3501
    # Both are searchable: the batches indexed in bulk, the recorded row by its trigger.
    assert [r.id for r in store.search("recorded while an import runs")][:1] == [done.id]
    assert [r.id for r in store.search("v1_imp3499")] == ["v1_imp3499"]
    if backend == "sqlite":
        with store.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO interaction_fts(interaction_fts) VALUES ('integrity-check')")
            assert conn.exec_driver_sql("SELECT count(*) FROM interaction_fts_pause").scalar() == 0


def test_a_failure_undoes_committed_batches_and_restores_replaced_rows(sqlite_store):
    store = sqlite_store
    import_jsonl(store, io.BytesIO(b"".join(_lines(5))))
    run = {"convostore": 1, "kind": "replay_run", "run": {
        "id": "run-x", "mode": "free", "status": "completed", "created_at": "2026-11-24T12:00:00Z"}}
    before = io.BytesIO()
    export_jsonl(store, before)
    data = b"".join(
        [_changed(f"v1_imp{k}") + b"\n" for k in range(5)]  # replaces every stored row
        + _lines(2600)[5:]  # new rows, over several committed batches
        + [orjson.dumps(run) + b"\n", orjson.dumps({**_valid("v1_bad"), "meta": {"latency_ms": "fast"}}) + b"\n"]
    )
    with pytest.raises(ImportFieldError, match="line 2602: meta.latency_ms"):
        import_jsonl(store, io.BytesIO(data), on_conflict="replace")
    after = io.BytesIO()
    export_jsonl(store, after)
    assert after.getvalue() == before.getvalue()
    assert store.search("CHANGED") == [] and len(store.search("v1_imp3")) == 1
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM import_journal").scalar() == 0


def test_an_import_killed_midway_is_undone_by_the_next_one(sqlite_store, tmp_path):
    import_jsonl(sqlite_store, io.BytesIO(_lines(1)[0]))
    dump = tmp_path / "big.jsonl"
    dump.write_bytes(b"".join(_lines(2500)[1:]))
    # A child process imports and is killed (os._exit) once two batches have committed.
    code = (
        "import os, sys\n"
        "from convostore import archive\n"
        "from convostore.store import Store\n"
        "real = archive._Importer.write\n"
        "calls = []\n"
        "def write(self, w, chunk):\n"
        "    if len(calls) == 2:\n"
        "        os._exit(9)  # killed inside the third batch's transaction\n"
        "    real(self, w, chunk)\n"
        "    calls.append(1)\n"
        "archive._Importer.write = write\n"
        "archive.import_jsonl(Store(sys.argv[1]), sys.argv[2])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, sqlite_store.path, str(dump)], timeout=120)
    assert proc.returncode == 9
    assert len(list(sqlite_store.iter_all())) > 1  # batches landed before the kill
    result = import_jsonl(sqlite_store, io.BytesIO(_lines(2)[1]))  # the next import undoes them first
    assert result.added == 1
    assert sorted(r.id for r in sqlite_store.iter_all()) == ["v1_imp0", "v1_imp1"]
