"""Import checks every field with one schema, and SQLite and PostgreSQL give the same verdict.

A bad line is refused with its line number and the field's path, the archive as it was;
an id already stored with different content is a conflict that ``on_conflict`` decides.
"""

from __future__ import annotations

import copy
import io
import itertools
import subprocess
import sys

from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convostore.archive import BATCH, export_jsonl, import_jsonl
from convostore.cli import cli
from convostore.errors import ConvostoreError, ImportConflictError, ImportFieldError, ImportFormatError
from convostore.store import Store


def _valid(iid: str = "v1_good", parent: str | None = None) -> dict:
    """A line as ``export`` writes it."""
    request = {"model": "gemini-2.5-flash", "input": f"hello from {iid}", "store": True}
    if parent:
        request["previous_interaction_id"] = parent
    return {
        "convostore": 1, "id": iid, "api_version": "v1", "request": request,
        "response": {"id": iid, "status": "completed", "model": "gemini-2.5-flash", "created": "2026-11-24T12:00:00Z",
                     "usage": {"total_input_tokens": 3, "total_output_tokens": 4, "total_tokens": 7},
                     "steps": [{"type": "model_output", "content": [{"type": "text", "text": f"answer to {iid}"}]}]},
        "meta": {"conversation_id": parent or iid, "link": "server" if parent else "root", "context_hash": f"h-{iid}",
                 "recorded_at": "2026-11-24 12:00:01.250000+00:00", "latency_ms": 12.5, "server_state": "live",
                 "status": "completed", "hop_index": 0, "partial": False, "stream": False,
                 **({"parent_id": parent} if parent else {})},
    }


def _set(line: dict, path: str, value) -> dict:
    """``line`` with the field at a dotted path set (``...=DELETE`` removes it)."""
    out = copy.deepcopy(line)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    if value is DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return out


DELETE = object()
RUN = {"convostore": 1, "kind": "replay_run", "run": {
    "id": "run1", "source_conversation_id": "v1_good", "source_head_id": "v1_good", "model": "gemini-2.5-pro",
    "agent": None, "mode": "forced", "settings": {"heads": ["v1_good"]}, "status": "completed",
    "created_at": "2026-11-24 12:00:00+00:00", "finished_at": None, "summary": {"turns": 1}}}

#: (what the line is, its bytes, the field path the refusal must name).
MALFORMED: list[tuple[str, bytes, str]] = [
    ("not JSON", b"{not json", "not valid JSON"),
    ("a JSON list", b"[1, 2]", "a line must be a JSON object"),
    ("a JSON string", b'"text"', "a line must be a JSON object"),
]
_FIELD_CASES = [
    ("convostore", 99), ("convostore", "1"), ("convostore", 0), ("convostore", True), ("kind", "bogus"),
    ("id", 5), ("id", ""), ("id", "x" * 600), ("api_version", "v2"), ("request", "hello"), ("response", [1]),
    ("meta", []), ("extra", 1),
    ("meta.latency_ms", "fast"), ("meta.latency_ms", -1), ("meta.latency_ms", True), ("meta.status", {"a": 1}),
    ("meta.status", "Completed!"), ("meta.link", ["root"]), ("meta.link", "sideways"), ("meta.server_state", "gone"),
    ("meta.recorded_at", "yesterday"), ("meta.recorded_at", 1700000000), ("meta.expires_at", "2026-13-01T00:00:00Z"),
    ("meta.hop_index", 1.5), ("meta.hop_index", -1), ("meta.hop_index", 2**31), ("meta.partial", "yes"),
    ("meta.stream", 1), ("meta.labels", "x"), ("meta.error", 5), ("meta.conversation_id", 7), ("meta.parent_id", ""),
    ("meta.context_hash", {"x": 1}), ("meta.replay_run_id", []), ("meta.source_id", "s" * 513), ("meta.colour", "red"),
    ("response.usage.total_tokens", "lots"), ("response.usage.input_tokens", 2**40), ("response.usage", []),
    ("response.status", 5), ("response.created", "noon"), ("response.updated", 12), ("response.steps", "text"),
    ("response.steps", [1]), ("response.outputs", {"a": 1}), ("response.model", 5), ("response.id", 9),
    ("request.store", "no"), ("request.background", "true"), ("request.stream", 0),
    ("request.previous_interaction_id", 12), ("request.labels", [1]), ("request.model", ["m"]),
    ("request.input", 5), ("request.input", "a\x00b"), ("meta.conversation_id", "c\x00"),
]
for _path, _value in _FIELD_CASES:
    MALFORMED.append((f"{_path} = {_value!r:.30}", orjson.dumps(_set(_valid(), _path, _value)), _path.split(".")[0]))
MALFORMED += [
    ("no id anywhere", orjson.dumps(_set(_set(_valid(), "id", DELETE), "response.id", DELETE)), "id"),
    ("neither request nor response", orjson.dumps(_set(_set(_valid(), "request", None), "response", None)), "request"),
    ("run missing", orjson.dumps({"convostore": 1, "kind": "replay_run"}), "run"),
    ("run.created_at not a time", orjson.dumps(_set(RUN, "run.created_at", "x")), "run.created_at"),
    ("run.mode unknown", orjson.dumps(_set(RUN, "run.mode", "sideways")), "run.mode"),
    ("run.summary a list", orjson.dumps(_set(RUN, "run.summary", [1])), "run.summary"),
    ("run.id a number", orjson.dumps(_set(RUN, "run.id", 5)), "run.id"),
    ("run.status missing", orjson.dumps(_set(RUN, "run.status", DELETE)), "run.status"),
    ("run with an unknown field", orjson.dumps(_set(RUN, "run.owner", "me")), "run.owner"),
    ("run.finished_at a number", orjson.dumps(_set(RUN, "run.finished_at", 3)), "run.finished_at"),
]

#: Unusual but valid lines: accepted on both backends, stored alike.
VALID_EDGES = [
    _set(_valid("edge-int"), "response.usage.total_tokens", 2**31 - 1),
    _set(_valid("edge-emoji"), "request.input", "naïve café 🎉 \\u0000 is six characters here"),
    _set(_valid("edge-zero"), "meta.latency_ms", 0),
    _set(_valid("edge-retired"), "convostore", DELETE),
    _set(_valid("edge-status"), "response.status", "budget_exceeded"),
    _set(_valid("edge-nometa"), "meta", None),
    _set(_valid("edge-zulu"), "meta.recorded_at", "2026-11-24T12:00:00Z"),
]


def _verdict(store: Store, data: bytes) -> str:
    try:
        result = import_jsonl(store, io.BytesIO(data))
    except ConvostoreError as exc:
        return f"refused: {exc}"
    return f"accepted: {result.added} added, {result.runs} runs"


def _state(store: Store) -> bytes:
    out = io.BytesIO()
    export_jsonl(store, out)
    return out.getvalue()


def test_the_corpus_of_malformed_lines_is_refused_alike_on_sqlite_and_postgresql(sqlite_store, pg_store):
    assert len(MALFORMED) >= 40
    good = orjson.dumps(_valid("v1_first"))
    for store in (sqlite_store, pg_store):
        import_jsonl(store, io.BytesIO(orjson.dumps(_valid("v1_kept"))))
    before = {s.dialect: _state(s) for s in (sqlite_store, pg_store)}
    for what, bad, path in MALFORMED:
        data = good + b"\n" + bad + b"\n"
        verdicts = {s.dialect: _verdict(s, data) for s in (sqlite_store, pg_store)}
        assert verdicts["sqlite"] == verdicts["postgresql"], what
        assert verdicts["sqlite"].startswith("refused: line 2: "), (what, verdicts)
        assert path in verdicts["sqlite"] and "\n" not in verdicts["sqlite"], (what, verdicts)
    assert {s.dialect: _state(s) for s in (sqlite_store, pg_store)} == before
    for line in VALID_EDGES:
        verdicts = {s.dialect: _verdict(s, orjson.dumps(line)) for s in (sqlite_store, pg_store)}
        assert verdicts == {"sqlite": "accepted: 1 added, 0 runs", "postgresql": "accepted: 1 added, 0 runs"}, line["id"]
    assert _state(sqlite_store) == _state(pg_store)


def test_the_refusal_names_the_line_and_the_field(sqlite_store):
    data = b"\n".join([orjson.dumps(_valid("a")), b"", orjson.dumps(_set(_valid("b"), "meta.latency_ms", "fast"))])
    with pytest.raises(ImportFieldError) as info:
        import_jsonl(sqlite_store, io.BytesIO(data))
    assert (info.value.line, info.value.path) == (3, "meta.latency_ms")
    assert str(info.value) == "line 3: meta.latency_ms: expected a number, got a string 'fast'"
    future = orjson.dumps(_set(_valid("c"), "convostore", 99))
    with pytest.raises(ImportFieldError, match=r"line 1: convostore: format 99 was written by a newer convostore"):
        import_jsonl(sqlite_store, io.BytesIO(future))
    bad_run = orjson.dumps(_set(RUN, "run.created_at", None))
    with pytest.raises(ImportFieldError, match=r"line 2: run.created_at: is required"):
        import_jsonl(sqlite_store, io.BytesIO(orjson.dumps(_valid("a")) + b"\n" + bad_run))
    assert list(sqlite_store.iter_all()) == []


def test_cli_refuses_a_bad_line_in_one_line_on_stderr_and_leaves_the_archive(tmp_path):
    db = tmp_path / "a.db"
    good = tmp_path / "good.jsonl"
    good.write_bytes(orjson.dumps(_valid("v1_kept")) + b"\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(orjson.dumps(_valid("v1_new")) + b"\n" + orjson.dumps(_set(_valid("v1_x"), "meta.link", ["root"])) + b"\n")
    run = lambda *args: subprocess.run([sys.executable, "-m", "convostore", "--db", str(db), *args],  # noqa: E731
                                       capture_output=True, text=True, timeout=60)
    assert run("import", str(good)).returncode == 0
    proc = run("import", str(bad))
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "Error: line 2: meta.link: expected one of continuation, judge, rebuilt, replay, root, server, stateless, got a list"
    ]
    listed = run("list", "--json").stdout.splitlines()
    assert [orjson.loads(x)["id"] for x in listed] == ["v1_kept"]


# --- duplicates and conflicts ------------------------------------------------------------


def test_the_same_id_twice_with_the_same_content_imports_once(store):
    line = orjson.dumps(_valid("v1_twice"))
    result = import_jsonl(store, io.BytesIO(b"\n".join([line, orjson.dumps(_valid("v1_other")), line])))
    assert (result.added, result.skipped, result.conflicts) == (2, 1, 0)
    again = import_jsonl(store, io.BytesIO(line))
    assert (again.added, again.skipped, again.conflicts) == (0, 1, 0)


def _changed(iid: str) -> bytes:
    return orjson.dumps(_set(_valid(iid), "response.steps", [{"type": "model_output", "content": [{"type": "text", "text": "CHANGED"}]}]))


def test_a_duplicate_id_with_different_content_is_reported_and_on_conflict_chooses(store):
    ids = [f"v1_{k}" for k in range(7)]
    import_jsonl(store, io.BytesIO(b"\n".join(orjson.dumps(_valid(i)) for i in ids)))
    before = _state(store)
    changed = b"\n".join([_changed(i) for i in ids] + [orjson.dumps(_valid("v1_new"))])

    skip = import_jsonl(store, io.BytesIO(changed))
    assert (skip.added, skip.skipped, skip.conflicts, skip.conflict_ids) == (1, 7, 7, ids[:5])
    assert "CHANGED" not in store.get("v1_3").output_text

    with pytest.raises(ImportConflictError, match=r"^7 ids already stored with different content \(v1_0, v1_1, v1_2, v1_3, v1_4, …\)"):
        import_jsonl(store, io.BytesIO(changed.replace(b"v1_new", b"v1_newer")), on_conflict="fail")
    assert not store.exists("v1_newer")

    replaced = import_jsonl(store, io.BytesIO(changed), on_conflict="replace")
    assert (replaced.added, replaced.replaced, replaced.conflicts) == (0, 7, 7)
    assert store.get("v1_3").output_text == "CHANGED"
    assert [r.id for r in store.search("CHANGED", limit=20)] != []
    assert len(_state(store).splitlines()) == len(before.splitlines()) + 1


def test_in_the_same_file_the_later_line_wins_under_replace(store):
    data = b"\n".join([orjson.dumps(_valid("v1_dup")), _changed("v1_dup")])
    with pytest.raises(ImportConflictError, match="^1 id already stored"):
        import_jsonl(store, io.BytesIO(data), on_conflict="fail")
    result = import_jsonl(store, io.BytesIO(data), on_conflict="replace")
    assert (result.added, result.conflicts) == (1, 1)
    assert store.get("v1_dup").output_text == "CHANGED"


@pytest.mark.parametrize("pipe", [False, True], ids=["file", "pipe"])
def test_a_line_repeated_batches_later_counts_as_in_the_same_batch(store, tmp_path, pipe):
    """An id repeated more than a batch after its first line (on PostgreSQL the first
    one is already in the streaming COPY) gives the same counts and rows as one
    repeated next to it: identical is skipped, different is a conflict."""

    def lines(prefix: str, *extra: bytes) -> Any:
        data = b"\n".join([orjson.dumps(_valid(f"{prefix}_{k}")) for k in range(BATCH + 5)] + list(extra))
        path = tmp_path / f"{prefix}.jsonl"
        path.write_bytes(data)
        return io.BufferedReader(_Pipe(data)) if pipe else path

    result = import_jsonl(store, lines("v1", orjson.dumps(_valid("v1_3")), orjson.dumps(_valid("v1_tail"))))
    assert (result.added, result.skipped, result.conflicts) == (BATCH + 6, 1, 0)
    assert store.stats()["interactions"] == BATCH + 6

    with pytest.raises(ImportConflictError, match="^1 id already stored"):
        import_jsonl(store, lines("v2", _changed("v2_3")), on_conflict="fail")
    assert not store.exists("v2_0")
    result = import_jsonl(store, lines("v3", _changed("v3_3")), on_conflict="replace")
    assert (result.added, result.conflicts) == (BATCH + 5, 1)
    assert store.get("v3_3").output_text == "CHANGED"
    assert store.stats()["interactions"] == 2 * BATCH + 11


def _indexes(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            return sorted(conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").scalars())
        return sorted(conn.exec_driver_sql("SELECT indexdef FROM pg_indexes WHERE tablename = 'interaction' AND schemaname = current_schema()").scalars())


def test_a_bulk_import_rebuilds_every_index_and_a_failed_one_keeps_them(store, tmp_path):
    """``bulk``: the indexes are dropped for the import and built again before COMMIT;
    a bad line (or a repeated id, which starts the import over) leaves them as they were."""
    import_jsonl(store, io.BytesIO(orjson.dumps(_valid("v1_old"))))
    indexes = _indexes(store)
    lines = [orjson.dumps(_valid(f"v1_{k}", f"v1_{k - 1}" if k % 10 else None)) for k in range(BATCH + 20)]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join(lines + [orjson.dumps(_set(_valid("v1_bad"), "meta.latency_ms", "fast"))]))
    with pytest.raises(ImportFieldError, match=f"^line {BATCH + 21}: meta.latency_ms"):
        import_jsonl(store, bad, bulk=True)
    assert _indexes(store) == indexes and not store.exists("v1_0")

    good = tmp_path / "good.jsonl"
    good.write_bytes(b"\n".join(lines))
    result = import_jsonl(store, good, bulk=True)
    assert (result.added, result.skipped) == (BATCH + 20, 0)
    assert _indexes(store) == indexes
    assert [r.id for r in store.search("v1_1005", limit=5)] == ["v1_1005"]
    assert [r.id for r in store.chain("v1_1009")] == [f"v1_{k}" for k in range(1000, 1010)]
    assert store.stats()["interactions"] == BATCH + 21

    again = tmp_path / "again.jsonl"  # a repeated id: the server finds it, the import starts over
    again.write_bytes(b"\n".join([line.replace(b"v1_", b"v2_") for line in lines + [lines[5]]]))
    result = import_jsonl(store, again, bulk=True)
    assert (result.added, result.skipped) == (BATCH + 20, 1)
    assert _indexes(store) == indexes
    assert store.stats()["interactions"] == 2 * BATCH + 41


def test_cli_bulk_imports_the_same_rows(store, tmp_path):
    path = tmp_path / "lines.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(_valid(f"v1_{k}", f"v1_{k - 1}" if k else None)) for k in range(30)))
    indexes = _indexes(store)
    res = CliRunner().invoke(cli, ["--db", store.url, "import", "--bulk", str(path)])
    assert res.exit_code == 0 and "imported 30 interactions" in res.stderr, res.output
    res = CliRunner().invoke(cli, ["--db", store.url, "import", str(path)])
    assert res.exit_code == 0 and "imported 0 interactions (30 already stored" in res.stderr, res.output
    assert [r.id for r in store.chain("v1_29")][-2:] == ["v1_28", "v1_29"] and _indexes(store) == indexes


class _Pipe(io.RawIOBase):
    """A stream that cannot seek (standard input from a pipe)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        chunk = self._data.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)


def test_cli_on_conflict(tmp_path):
    db = str(tmp_path / "a.db")
    first, second = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    first.write_bytes(orjson.dumps(_valid("v1_a")))
    second.write_bytes(_changed("v1_a"))
    runner = CliRunner()
    assert runner.invoke(cli, ["--db", db, "import", str(first)]).exit_code == 0
    res = runner.invoke(cli, ["--db", db, "import", str(second)])
    assert res.exit_code == 0
    assert "1 ids already stored with different content (v1_a): kept the stored version" in res.stderr
    res = runner.invoke(cli, ["--db", db, "import", "--on-conflict", "fail", str(second)])
    assert res.exit_code == 1 and "1 id already stored with different content (v1_a)" in res.stderr
    res = runner.invoke(cli, ["--db", db, "import", "--on-conflict", "replace", str(second)])
    assert res.exit_code == 0 and "1 replaced" in res.stderr
    assert Store(db).get("v1_a").output_text == "CHANGED"


# --- generated variants: both backends agree on any value in any field -------------------

_PATHS = [p for p, _ in _FIELD_CASES if p not in ("extra",)] + ["meta.expires_at", "meta.labels", "meta.error",
                                                                 "response.usage.output_tokens", "request.input"]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    | st.sampled_from(["2026-11-24T12:00:00Z", "completed", "root", "live", "v1", "2026-02-30", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_ids = itertools.count()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(sorted(set(_PATHS))), value=_JSON)
def test_any_value_in_any_field_gets_the_same_verdict_on_both_backends(sqlite_store, pg_store, path, value):
    iid = f"v1_gen{next(_ids)}"
    data = orjson.dumps(_set(_valid(iid), path, value))
    verdicts = [_verdict(s, data) for s in (sqlite_store, pg_store)]
    assert verdicts[0] == verdicts[1]
    if verdicts[0].startswith("accepted"):
        shown = [s.get(iid).to_json_dict() | {"req": s.get(iid).request, "resp": s.get(iid).response}
                 for s in (sqlite_store, pg_store)]
        assert orjson.dumps(shown[0], default=str) == orjson.dumps(shown[1], default=str)
    else:
        assert verdicts[0].startswith("refused: line 1: ")


# --- archives that would vanish -------------------------------------------------------------


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", ":memory:", "sqlite:///:memory:", "sqlite:///file::memory:?uri=true"])
def test_an_in_memory_database_is_refused_everywhere(url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConvostoreError, match="in-memory archive keeps nothing"):
        Store(url)
    dump = tmp_path / "d.jsonl"
    dump.write_bytes(orjson.dumps(_valid()))
    runner = CliRunner()
    for args in (["import", str(dump)], ["db", "upgrade"], ["list"]):
        res = runner.invoke(cli, ["--db", url, *args])
        assert res.exit_code == 1 and "imported" not in res.output, args
        assert len(res.stderr.splitlines()) == 1 and "in-memory archive keeps nothing" in res.stderr
    assert list(tmp_path.iterdir()) == [dump]  # no file named ':memory:'


def test_cli_import_reads_stdin_in_one_pass(tmp_path):
    db = str(tmp_path / "a.db")
    data = b"\n".join(orjson.dumps(_valid(f"v1_s{k}")) for k in range(3)) + b"\n"
    res = CliRunner().invoke(cli, ["--db", db, "import", "-"], input=data)
    assert res.exit_code == 0, res.output
    assert "imported 3 interactions" in res.stderr
    bad = data + orjson.dumps(_set(_valid("v1_s9"), "meta.server_state", "gone")) + b"\n"
    res = CliRunner().invoke(cli, ["--db", db, "import", "-"], input=bad)
    assert res.exit_code == 1 and "line 4: meta.server_state" in res.stderr


# --- what each refusal says (the schema's every check, on the import a user runs) ----------

_LONG = "X" * 39  # repr 41 characters: cut to 39 and an ellipsis
_SAYS = [
    ("meta.latency_ms", "fast", "expected a number, got a string 'fast'"),
    ("meta.latency_ms", -0.5, "expected a finite number ≥ 0, got -0.5"),
    ("meta.latency_ms", True, "expected a number, got a boolean True"),
    ("meta.latency_ms", [1], "expected a number, got a list"),
    ("meta.status", "Completed!", "expected a lowercase status word, got a string 'Completed!'"),
    ("meta.status", "X" * 38, "expected a lowercase status word, got a string '" + "X" * 38 + "'"),
    ("meta.status", _LONG, "expected a lowercase status word, got a string '" + "X" * 38 + "…"),
    ("meta.status", "a" * 65, "expected a lowercase status word, got a string '" + "a" * 38 + "…"),
    ("meta.status", 5, "expected a string, got an integer 5"),
    ("meta.status", 1.5, "expected a string, got a number 1.5"),
    ("meta.link", "sideways", "expected one of continuation, judge, rebuilt, replay, root, server, stateless, got a string 'sideways'"),
    ("meta.link", 1, "expected one of continuation, judge, rebuilt, replay, root, server, stateless, got an integer 1"),
    ("meta.server_state", "gone", "expected one of deleted, expired, live, not_stored, got a string 'gone'"),
    ("api_version", "v2", "expected one of v1, v1beta, got a string 'v2'"),
    ("meta.partial", "yes", "expected true or false, got a string 'yes'"),
    ("meta.stream", 1, "expected true or false, got an integer 1"),
    ("meta.hop_index", 1.5, "expected an integer, got a number 1.5"),
    ("meta.hop_index", False, "expected an integer, got a boolean False"),
    ("meta.hop_index", -1, "expected an integer from 0 to 2147483647, got -1"),
    ("meta.hop_index", 2**31, "expected an integer from 0 to 2147483647, got 2147483648"),
    ("response.usage.total_tokens", 2**40, "expected an integer from 0 to 2147483647, got 1099511627776"),
    ("meta.recorded_at", 1700000000, "expected an ISO 8601 time, got an integer 1700000000"),
    ("meta.recorded_at", "yesterday", "expected an ISO 8601 time like 2026-11-24T12:00:00Z, got a string 'yesterday'"),
    ("meta.recorded_at", "2026-11-24T12:00:00Q", "expected an ISO 8601 time like 2026-11-24T12:00:00Z, got a string '2026-11-24T12:00:00Q'"),
    ("response.steps", "text", "expected a list, got a string 'text'"),
    ("response.steps", [{"a": 1}, 2], None),  # the path names the item: response.steps[1]
    ("meta.error", 5, "expected a string or an object, got an integer 5"),
    ("meta.error", ["x"], "expected a string or an object, got a list"),
    ("meta", [], "expected an object, got a list"),
    ("meta", "m", "expected an object, got a string 'm'"),
    ("id", "", "must not be empty"),
    ("id", "x" * 513, "longer than 512 characters (513)"),
    ("id", 5, "expected a string, got an integer 5"),
    ("meta.conversation_id", {"a": 1}, "expected a string, got an object"),
    ("request.model", None, None),  # null is "not given": accepted
    ("convostore", "1", "expected the format version 1, got a string '1'"),
    ("convostore", 0, "expected the format version 1, got 0"),
    ("convostore", True, "expected the format version 1, got a boolean True"),
    ("convostore", 2, "format 2 was written by a newer convostore; this one reads formats up to 1 (upgrade convostore)"),
    ("kind", "bogus", "expected one of interaction, got a string 'bogus'"),
    ("request.input", "a\x00b", "contains a NUL character (U+0000), which PostgreSQL cannot store"),
    ("meta.labels", {"k\x00": 1}, "contains a NUL character (U+0000), which PostgreSQL cannot store"),
]


@pytest.mark.parametrize("path,value,says", _SAYS, ids=[f"{p}={v!r:.20}" for p, v, _ in _SAYS])
def test_each_refusal_says_what_was_expected_and_what_came(sqlite_store, path, value, says):
    data = orjson.dumps(_valid("v1_kept")) + b"\n" + orjson.dumps(_set(_valid("v1_x"), path, value))
    if path == "request.model":
        assert import_jsonl(sqlite_store, io.BytesIO(data)).added == 2
        return
    with pytest.raises(ImportFieldError) as info:
        import_jsonl(sqlite_store, io.BytesIO(data))
    if says is None:
        assert str(info.value) == "line 2: response.steps[1]: expected an object, got an integer 2"
        assert info.value.path == "response.steps[1]"
    else:
        assert str(info.value) == f"line 2: {path}: {says}" and info.value.path == path
    assert list(sqlite_store.iter_all()) == []


@pytest.mark.parametrize("raw,says", [
    (b"[1]", "a line must be a JSON object, got a list"),
    (b"null", "a line must be a JSON object, got null"),
    (b"true", "a line must be a JSON object, got a boolean True"),
    (b'"s"', "a line must be a JSON object, got a string 's'"),
    (b"{}", "request: a line needs a 'request' or a 'response'"),
    (b'{"convostore": 1, "id": "a", "response": null}', "request: a line needs a 'request' or a 'response'"),
    (orjson.dumps({"id": "a", "request": {"input": [{"type": "text", "text": "\x00"}]}}),
     "request.input[0].text: contains a NUL character (U+0000), which PostgreSQL cannot store"),
    (orjson.dumps({"id": "a", "request": {"input": [["\x00"]]}}),
     "request.input[0][0]: contains a NUL character (U+0000), which PostgreSQL cannot store"),
    (orjson.dumps(_set(RUN, "run", [])), "run: expected an object, got a list"),
    (orjson.dumps(_set(RUN, "run.mode", DELETE)), "run.mode: is required"),
    (orjson.dumps(_set(RUN, "run.mode", "sideways")), "run.mode: expected one of forced, free, got a string 'sideways'"),
    (orjson.dumps(_set(RUN, "convostore", 7)), "convostore: format 7 was written by a newer convostore; this one reads formats up to 1 (upgrade convostore)"),
    (orjson.dumps(_set(RUN, "run.settings", {"k": ["\x00"]})), "run.settings.k[0]: contains a NUL character (U+0000), which PostgreSQL cannot store"),
], ids=lambda x: x[:24] if isinstance(x, bytes) else None)
def test_a_malformed_line_or_run_is_refused_in_so_many_words(sqlite_store, raw, says):
    with pytest.raises(ConvostoreError) as info:
        import_jsonl(sqlite_store, io.BytesIO(raw))
    assert str(info.value) == f"line 1: {says}"


def test_values_at_the_edges_of_each_field_are_accepted(sqlite_store):
    edges = [
        _set(_valid("e-hop0"), "meta.hop_index", 0), _set(_valid("e-hopmax"), "meta.hop_index", 2**31 - 1),
        _set(_valid("e-lat"), "meta.latency_ms", 0.0), _set(_valid("e-latint"), "meta.latency_ms", 7),
        _set(_set(_valid("e" * 512), "meta.source_id", "s" * 512), "meta.context_hash", "h"), _set(_valid("e-z"), "meta.expires_at", "2026-11-24T12:00:00z"),
        _set(_valid("e-off"), "response.created", "2026-11-24T12:00:00+05:30"), _set(_valid("e-err"), "meta.error", "boom"),
        _set(_valid("e-errobj"), "meta.error", {"message": "boom"}), _set(_valid("e-status"), "meta.status", "a" * 64),
        _set(_valid("e-label"), "meta.labels", {"team": "x", "nested": {"k": [1, None]}}),
        _set(_valid("e-future"), "response.novel_field", {"anything": [1]}),
        _set(_valid("e-steps"), "response.outputs", []), _set(_valid("e-nul"), "request.input", "escaped \\u0000 text"),
        _set(_valid("e-noreq"), "request", None), _set(_set(_valid("e-noid"), "id", DELETE), "response.id", "e-noid"),
    ]
    run = _set(_set(RUN, "run.finished_at", "2026-11-24T12:05:00Z"), "run.heartbeat_at", None)
    data = b"\n".join([orjson.dumps(line) for line in edges] + [orjson.dumps(run)])
    result = import_jsonl(sqlite_store, io.BytesIO(data))
    assert (result.added, result.runs) == (len(edges), 1)
    assert sqlite_store.get("e-nul").request["input"] == "escaped \\u0000 text"
