"""Importing a file that holds the same line twice stores that interaction once."""

from __future__ import annotations

import re

import orjson
import pytest
from click.testing import CliRunner

import convostore
from convostore.cli import cli
from convostore.store import Store

MODEL = "gemini-2.5-flash"


@pytest.mark.parametrize("meta", [True, False], ids=["exported", "hand-made"])
def test_the_same_line_twice_in_one_file_imports_once(client, store, tmp_path, meta):
    source = Store(tmp_path / "source.db")
    rc = convostore.record(client, store=source)
    t1 = rc.interactions.create(model=MODEL, input="Hi, my name is Ada.")
    t2 = rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    source.close()
    src = tmp_path / "all.jsonl"
    runner = CliRunner()
    res = runner.invoke(cli, ["--db", str(tmp_path / "source.db"), "export", "-o", str(src)])
    assert res.exit_code == 0, res.output
    lines = src.read_bytes().splitlines()
    if not meta:  # lines from another tool: request and response only (the id in the response), linked on import
        lines = [orjson.dumps({k: v for k, v in orjson.loads(line).items() if k not in ("meta", "id")}) for line in lines]
    doubled = tmp_path / "doubled.jsonl"
    doubled.write_bytes(b"\n".join([lines[0], lines[0], lines[1], lines[0], lines[1]]) + b"\n")

    res = runner.invoke(cli, ["--db", store.url, "import", str(doubled)])
    assert res.exit_code == 0, res.output
    assert re.search(r"\bimported 2 interactions\b", res.output), res.output  # counted once, too
    assert sorted(r.id for r in store.list()) == sorted([t1.id, t2.id])
    assert [r.id for r in store.chain(t2.id)] == [t1.id, t2.id]
    res = runner.invoke(cli, ["--db", store.url, "import", str(doubled)])  # and again: nothing new
    assert res.exit_code == 0 and re.search(r"\bimported 0 interactions\b", res.output), res.output
    assert len(list(store.list())) == 2


def test_an_archive_reimporting_its_own_export_adds_nothing_and_sees_no_conflict(client, sqlite_store, sandbox, tmp_path):
    """Every kind of row (inline media, labels, a failed attempt, a replayed turn, a stateless
    turn) compares equal to itself after a round trip; one changed field is one conflict."""
    import base64

    from convostore import replay

    rc = convostore.record(client, store=sqlite_store)
    image = base64.b64encode(bytes(range(256)) * 8).decode()  # stored once, by hash
    t1 = rc.interactions.create(model=MODEL, input=[{"type": "image", "data": image, "mime_type": "image/png"},
                                                    {"type": "text", "text": "What is this?"}])
    with convostore.annotate(labels={"team": "search"}):
        t2 = rc.interactions.create(model=MODEL, input="And this?", previous_interaction_id=t1.id)
    rc.interactions.create(model=MODEL, input=[{"type": "user_input", "content": [{"type": "text", "text": "Hi"}]},
                                               {"type": "model_output", "content": [{"type": "text", "text": "Hello"}]},
                                               {"type": "user_input", "content": [{"type": "text", "text": "Bye"}]}])
    sandbox.fail(400, 1)
    with pytest.raises(Exception):
        rc.interactions.create(model=MODEL, input="refused")
    replay(sqlite_store, t2.id, model="gemini-2.5-pro", client=rc)
    runner = CliRunner()
    db = ["--db", sqlite_store.url]
    out = tmp_path / "all.jsonl"
    assert runner.invoke(cli, [*db, "export", "-o", str(out)]).exit_code == 0
    rows = len(list(sqlite_store.list()))
    res = runner.invoke(cli, [*db, "import", str(out)])
    assert res.exit_code == 0 and "warning" not in res.stderr, res.stderr
    assert f"imported 0 interactions ({rows} already stored, 0 replay runs)" in res.stderr
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    # A line with no request (a GET body kept by another tool), twice: still the same row.
    bare = tmp_path / "bare.jsonl"
    bare.write_bytes(orjson.dumps({"id": "v1_bare", "request": None, "response": {**lines[0]["response"], "id": "v1_bare"}}))
    for added in (1, 0):
        res = runner.invoke(cli, [*db, "import", str(bare)])
        assert f"imported {added} interactions" in res.stderr and "warning" not in res.stderr, res.stderr
    changed = next(x for x in lines if x["id"] == t2.id)
    changed["meta"]["labels"] = {"team": "ads"}
    out.write_bytes(b"\n".join(orjson.dumps(x) for x in lines))
    res = runner.invoke(cli, [*db, "import", str(out)])
    assert f"1 ids already stored with different content ({t2.id})" in res.stderr
    assert sqlite_store.get(t2.id).labels == {"team": "search"}
