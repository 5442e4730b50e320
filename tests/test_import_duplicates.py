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
