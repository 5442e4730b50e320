"""Export and import: lossless round trips, all-or-nothing imports, clear errors."""

from __future__ import annotations

import base64
import io
import subprocess
import sys

import orjson
import pytest
from click.testing import CliRunner

import convostore
from convostore import wire
from convostore.archive import export_jsonl, export_markdown, import_jsonl
from convostore.cli import cli
from convostore.errors import ChainCycleError, ImportFormatError
from convostore.replaying import replay
from convostore.store import Store

MODEL = "gemini-3-flash-preview"


def _record(client, store):
    rc = convostore.record(client, store=store)
    t1 = rc.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    t2 = rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    rc.interactions.create(model=MODEL, input="a branch", previous_interaction_id=t1.id)
    rc.interactions.create(model=MODEL, input="Write [continue:1]", previous_interaction_id=t2.id)
    return rc, t2


def _dump(store):
    buf = io.BytesIO()
    export_jsonl(store, buf)
    return buf.getvalue()


def _snapshot(store):
    return sorted((orjson.dumps(r.to_json_dict() | {"in": r.input_steps, "out": r.output_steps, "req": r.request, "resp": r.response},
                                default=str, option=orjson.OPT_SORT_KEYS) for r in store.iter_all()))


def test_jsonl_round_trip_is_lossless(client, store, sqlite_store, sandbox, tmp_path):
    rc, head = _record(client, store)
    replay(store, head.id, model="gemini-2.5-pro", client=rc)
    data = _dump(store)
    target = Store(tmp_path / "copy.db")
    result = import_jsonl(target, io.BytesIO(data))
    assert result.added == len(list(store.iter_all())) and result.runs == 1
    assert _snapshot(target) == _snapshot(store)
    assert _dump(target) == data
    # Idempotent: importing again adds nothing.
    again = import_jsonl(target, io.BytesIO(data))
    assert (again.added, again.skipped) == (0, result.added)


def test_a_malformed_line_aborts_with_its_number_and_changes_nothing(client, sqlite_store, tmp_path):
    _record(client, sqlite_store)
    lines = _dump(sqlite_store).splitlines()
    target = Store(tmp_path / "t.db")
    target.save({"id": "keep-me", "input_steps": [], "output_steps": [], "request": {"input": "x"}})
    bad = b"\n".join(lines[:2] + [b'{"id": "broken", "request": '] + lines[2:]) + b"\n"
    with pytest.raises(ImportFormatError, match="line 3"):
        import_jsonl(target, io.BytesIO(bad))
    assert [r.id for r in target.iter_all()] == ["keep-me"]
    late = b"\n".join(lines + [b"[1, 2, 3]"]) + b"\n"
    with pytest.raises(ImportFormatError, match=f"line {len(lines) + 1}"):
        import_jsonl(target, io.BytesIO(late))
    assert [r.id for r in target.iter_all()] == ["keep-me"]


def test_a_cycle_in_imported_chains_is_refused(sqlite_store):
    line = lambda i, p: orjson.dumps({"id": i, "request": {"model": "m", "input": i}, "response": {"id": i, "status": "completed"}, "meta": {"parent_id": p}})  # noqa: E731
    with pytest.raises(ChainCycleError):
        import_jsonl(sqlite_store, io.BytesIO(b"\n".join([line("a", "c"), line("b", "a"), line("c", "b")])))
    assert list(sqlite_store.iter_all()) == []


RETIRED = [
    {"id": "old1", "api_version": "v1beta",
     "request": {"model": "gemini-2.5-flash", "input": "Hi, my name is Karthik."},
     "response": {"id": "old1", "status": "completed", "role": "model", "created": "2026-01-10T10:00:00Z",
                  "outputs": [{"type": "thought", "signature": "c2ln"}, {"type": "text", "text": "Hello Karthik!"}]}},
    {"id": "old2", "api_version": "v1beta",
     "request": {"model": "gemini-2.5-flash", "input": [
         {"role": "user", "content": "Hi, my name is Karthik."},
         {"role": "model", "content": [{"type": "text", "text": "Hello Karthik!"}]},
         {"role": "user", "content": "What is my name?"}]},
     "response": {"id": "old2", "status": "completed", "outputs": [{"type": "text", "text": "Karthik."}]}},
]


def test_retired_schema_imports_into_the_same_steps_and_replays(client, store, sandbox):
    data = b"\n".join(orjson.dumps(x) for x in RETIRED)
    assert import_jsonl(store, io.BytesIO(data)).added == 2
    old2 = store.get("old2")
    assert (old2.parent_id, old2.link) == ("old1", "stateless")  # linked by content
    assert [s["type"] for s in store.get("old1").output_steps] == ["thought", "model_output"]
    assert wire.input_text(old2.input_steps).endswith("What is my name?")
    rc = convostore.record(client, store=store)
    run = replay(store, "old2", model="gemini-2.5-pro", client=rc)
    answers = {r.source_id: r.output_text for r in store.list(replay_run_id=run.id)}
    assert "Karthik" in answers["old2"]
    # Forced mode sends the turns concurrently: find old2's request, not the last one.
    sent = [wire.normalize_input(r["input"]) for r in sandbox.requests]
    sent = [s for s in sent if wire.input_text(s).endswith("What is my name?")]
    assert len(sent) == 1
    assert wire.input_text(sent[0]).split("\n") == ["Hi, my name is Karthik.", "What is my name?"]


def test_markdown_export_reads_as_a_conversation(client, sqlite_store):
    _record(client, sqlite_store)
    out = io.StringIO()
    n = export_markdown(sqlite_store, out)
    text = out.getvalue()
    assert n == len(list(sqlite_store.iter_all()))
    assert "**user:** What is my name?" in text and "Your name is Karthik" in text


def test_cli_export_import_and_errors(client, sqlite_store, tmp_path):
    _record(client, sqlite_store)
    runner = CliRunner()
    dump = tmp_path / "all.jsonl"
    res = runner.invoke(cli, ["--db", sqlite_store.path, "export", "-o", str(dump)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["--db", str(tmp_path / "new.db"), "import", str(dump)])
    assert res.exit_code == 0 and "imported" in res.output
    res = runner.invoke(cli, ["--db", str(tmp_path / "new.db"), "list", "--json"])
    rows = [orjson.loads(l) for l in res.output.splitlines()]
    for key in ("id", "conversation_id", "parent_id", "previous_interaction_id", "model", "agent", "status", "input_text",
                "output_text", "created", "recorded_at", "expires_at", "server_state"):
        assert key in rows[0]
    for args in (["show", "v1_nope"], ["chain", "v1_nope"], ["tree", "v1_nope"]):
        res = runner.invoke(cli, ["--db", sqlite_store.path, *args])
        assert res.exit_code == 1 and "no interaction" in res.output and "Traceback" not in res.output
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text('{"id": "x", "request": {}}\nnot json\n')
    res = runner.invoke(cli, ["--db", str(tmp_path / "new.db"), "import", str(garbage)])
    assert res.exit_code == 1 and "line 2" in res.output


def test_cli_commands_on_an_unreadable_database_fail_in_one_line(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all" * 200)
    proc = subprocess.run([sys.executable, "-m", "convostore", "--db", str(bad), "list"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: cannot open database") and len(proc.stderr.strip().splitlines()) == 1


def test_cli_browse_commands(client, sqlite_store):
    _, head = _record(client, sqlite_store)
    runner = CliRunner()
    db = ["--db", sqlite_store.path]
    chain = runner.invoke(cli, [*db, "chain", head.id, "--json"]).output.splitlines()
    assert [orjson.loads(l)["id"] for l in chain][-1] == head.id
    tree = runner.invoke(cli, [*db, "tree", head.id]).output
    assert "a branch" in tree
    assert "Karthik" in runner.invoke(cli, [*db, "search", "Karthik"]).output
    stats = orjson.loads(runner.invoke(cli, [*db, "stats", "--json"]).output)
    assert stats["interactions"] >= 5
    assert "revision" in runner.invoke(cli, [*db, "db", "upgrade"]).output
    md = runner.invoke(cli, [*db, "export", "--format", "markdown"]).output
    assert "## Conversation" in md


# --- the single-pass import: checks before COMMIT -------------------------------------


def _line(i, parent=None, **meta):
    """An exported line with its link given in meta (the archive's own shape)."""
    req = {"model": "m", "input": f"question {i} about zanzibar"}
    if parent:
        req["previous_interaction_id"] = parent
    meta = {"conversation_id": "c", "link": "server" if parent else "root", "context_hash": f"h{i}",
            "recorded_at": "2026-11-24T12:00:00+00:00", **({"parent_id": parent} if parent else {}), **meta}
    return orjson.dumps({"convostore": 1, "id": i, "api_version": "v1", "request": req,
                         "response": {"id": i, "status": "completed", "steps": [
                             {"type": "model_output", "content": [{"type": "text", "text": f"answer {i}"}]}]},
                         "meta": meta})


def _big(n, parent_of=lambda k: f"r{k - 1}" if k % 10 else None):
    return [_line(f"r{k}", parent_of(k)) for k in range(n)]


def _state(store):
    fts = None
    if store.dialect == "sqlite":
        with store.engine.connect() as conn:
            fts = conn.exec_driver_sql("SELECT count(*) FROM interaction_fts_docsize").scalar()
    return sorted(r.id for r in store.iter_all()), [r.id for r in store.list_runs()], fts


def test_a_malformed_line_late_in_a_big_file_leaves_the_database_as_it_was(store):
    store.save({"id": "keep-me", "input_steps": [], "output_steps": [], "request": {"input": "x"}})
    before = _state(store)
    lines = _big(2500)  # several batches are written before the bad line is read
    with pytest.raises(ImportFormatError, match="line 2501"):
        import_jsonl(store, io.BytesIO(b"\n".join(lines + [b'{"id": "r-bad", "request": 5}'])))
    assert _state(store) == before
    with pytest.raises(ImportFormatError, match="line 2402"):
        import_jsonl(store, io.BytesIO(b"\n".join(lines[:2401] + [b"{not json"] + lines[2401:])))
    assert _state(store) == before
    # The same file without the bad line imports whole, and search finds it.
    result = import_jsonl(store, io.BytesIO(b"\n".join(lines)))
    assert (result.added, result.skipped) == (2500, 0)
    assert [r.id for r in store.search("zanzibar question r2499")][:1] == ["r2499"]
    assert [r.id for r in store.chain("r2499")] == [f"r{k}" for k in range(2490, 2500)]
    again = import_jsonl(store, io.BytesIO(b"\n".join(lines)))
    assert (again.added, again.skipped) == (0, 2500)


def test_a_loop_late_in_a_big_file_is_refused_and_nothing_lands(store):
    before = _state(store)
    lines = _big(2500) + [_line("x1", "x3"), _line("x2", "x1"), _line("x3", "x2")]
    with pytest.raises(ChainCycleError, match="x[123] is its own ancestor"):
        import_jsonl(store, io.BytesIO(b"\n".join(lines)))
    assert _state(store) == before
    with pytest.raises(ChainCycleError, match="self is its own ancestor"):
        import_jsonl(store, io.BytesIO(_line("self", "self")))
    assert _state(store) == before


def test_a_parent_later_in_the_file_is_not_a_loop(store):
    # Children before their parents (a file in no particular order): no loop, all linked.
    lines = _big(30)
    result = import_jsonl(store, io.BytesIO(b"\n".join(reversed(lines))))
    assert result.added == 30
    assert [r.id for r in store.chain("r29")] == [f"r{k}" for k in range(20, 30)]


def test_a_loop_through_a_row_already_stored_is_refused(store):
    # "old" was stored pointing at a parent the archive did not have yet ...
    store.save({"id": "old", "conversation_id": "c", "parent_id": "p1", "link": "server", "context_hash": "h",
                "input_steps": [], "output_steps": [], "request": {"input": "x"}})
    before = _state(store)
    # ... an import that brings that parent, whose own parent is "old", closes a loop.
    with pytest.raises(ChainCycleError, match="old is its own ancestor"):
        import_jsonl(store, io.BytesIO(b"\n".join([_line("p0", "old"), _line("p1", "p0")])))
    assert _state(store) == before
    # Bringing the parent without a loop is fine.
    assert import_jsonl(store, io.BytesIO(b"\n".join([_line("p0"), _line("p1", "p0")]))).added == 2
    assert [r.id for r in store.chain("old")] == ["p0", "p1", "old"]


def test_import_paths_store_the_same_values(sqlite_store, pg_store):
    # The SQLite fast path (driver parameters built directly) and the general path agree.
    retired = [{**x, "meta": {"recorded_at": "2026-01-10T10:00:0%dZ" % i}} for i, x in enumerate(RETIRED)]
    image = base64.b64encode(bytes(range(256)) * 12).decode()  # inline media: split out on the way in
    media = orjson.loads(_line("img", "r24"))
    media["request"]["input"] = [{"type": "image", "data": image, "mime_type": "image/png"}, {"type": "text", "text": "what?"}]
    data = b"\n".join(_big(25) + [orjson.dumps(media)] + [orjson.dumps(x) for x in retired])
    for s in (sqlite_store, pg_store):
        assert import_jsonl(s, io.BytesIO(data)).added == 28
        assert s.stats()["media"]["items"] == 1
        assert s.get("img").request["input"][0]["data"] == image

    def rows(store):  # read by id: a media lookup inside a streaming read waits on SQLite's lock
        return [store.get(i) for i in sorted(r.id for r in store.iter_all())]

    def snap(store):
        return [orjson.dumps(r.to_json_dict() | {"in": r.input_steps, "out": r.output_steps, "req": r.request,
                                                 "resp": r.response}, default=str, option=orjson.OPT_SORT_KEYS)
                for r in rows(store)]

    assert snap(sqlite_store) == snap(pg_store)
