"""Deleting and purging: what goes, what stays, and that the rest of the archive stays whole."""

from __future__ import annotations

import base64
import os
import pty
import select
import sys
import time
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from click.testing import CliRunner

import convostore
from convostore.cli import cli
from convostore.errors import NotFoundError
from convostore.removal import HasLaterTurnsError, delete, purge
from tests.fixtures_sandbox import make_client

MODEL = "gemini-2.5-flash"
IMAGE = base64.b64encode(bytes(range(256)) * 8).decode()  # 2 KiB: stored once in `media`


def _image_turn(text: str) -> list[dict]:
    return [{"type": "text", "text": text}, {"type": "image", "data": IMAGE, "mime_type": "image/png"}]


@pytest.fixture
def rc(client, store):
    return convostore.record(client, store=store)


def _conversation(rc, *texts: str, image: bool = False) -> list[str]:
    ids: list[str] = []
    for i, text in enumerate(texts):
        content = _image_turn(text) if image and i == 0 else text
        kwargs = {"previous_interaction_id": ids[-1]} if ids else {}
        ids.append(rc.interactions.create(model=MODEL, input=content, **kwargs).id)
    return ids


def _ids(store) -> set[str]:
    return {row.id for row in store.list(limit=None)}


def _fts_ok(store) -> None:
    if store.dialect == "sqlite":
        with store.engine.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            conn.exec_driver_sql("INSERT INTO interaction_fts(interaction_fts) VALUES('integrity-check')")


def test_deleting_a_leaf_keeps_the_chain_above_it(rc, store):
    a, b, c = _conversation(rc, "alpha zebrafish", "beta quokka", "gamma narwhal")
    assert [r.id for r in store.search("narwhal")] == [c]  # indexed before the delete
    removed = delete(store, c)
    assert removed.ids == [c] and not removed.dry_run
    assert _ids(store) == {a, b}
    assert [r.id for r in store.chain(b)] == [a, b]
    assert list(store.search("narwhal")) == [] and [r.id for r in store.search("quokka")] == [b]
    with pytest.raises(NotFoundError):
        store.get(c)
    _fts_ok(store)


def test_a_turn_that_later_turns_build_on_is_refused_and_nothing_changes(rc, store):
    a, b, c = _conversation(rc, "one", "two", "three")
    branch = rc.interactions.create(model=MODEL, input="a branch", previous_interaction_id=a).id
    with pytest.raises(HasLaterTurnsError) as info:
        delete(store, a)
    assert set(info.value.children) == {b, branch}
    assert _ids(store) == {a, b, c, branch}


def test_deleting_a_conversation_takes_branches_replays_runs_and_media_no_one_else_uses(rc, store, client):
    a, b = _conversation(rc, "first with a picture", "second", image=True)
    branch = rc.interactions.create(model=MODEL, input="a branch", previous_interaction_id=a).id
    other = _conversation(rc, "another picture", image=True)  # the same image: media shared
    keep = _conversation(rc, "unrelated")
    run = convostore.replay(store, b, model="gemini-2.5-pro", client=rc)
    replayed = {row.id for row in store.list(limit=None) if row.replay_run_id == run.id}
    assert len(replayed) == 2 and store.stats()["media"]["items"] == 1

    plan = delete(store, branch, conversation=True, dry_run=True)
    assert plan.dry_run and set(plan.ids) == {a, b, branch} | replayed and plan.runs == 1 and plan.media == 0
    assert len(_ids(store)) == 5 + 2  # nothing deleted by a dry run

    removed = delete(store, branch, conversation=True)
    assert set(removed.ids) == {a, b, branch} | replayed and removed.runs == 1 and removed.media == 0
    assert _ids(store) == set(other) | set(keep)
    assert [r.id for r in store.list_runs()] == []
    assert store.stats()["media"]["items"] == 1  # still used by `other`
    assert store.get(other[0]).input_steps  # and still readable
    removed = delete(store, other[0], conversation=True)
    assert removed.media == 1 and store.stats()["media"]["items"] == 0
    assert _ids(store) == set(keep)
    assert store.stats()["interactions"] == len(keep)  # the summary counters follow deletes
    _fts_ok(store)


def test_a_deleted_conversation_gets_no_new_turns_from_the_stores_memory(rc, store):
    a, b = _conversation(rc, "one", "two")  # this Store saved them: it remembers their links
    delete(store, b, conversation=True)
    c = rc.interactions.create(model=MODEL, input="three", previous_interaction_id=b).id  # the server still has b
    assert store.get(c).conversation_id != a  # linked as to an unknown turn, as a fresh Store would
    assert _ids(store) == {c}


def test_purge_takes_old_conversations_only_and_can_pick_a_model(rc, store):
    old = _conversation(rc, "old one", "old two")
    old_pro = rc.interactions.create(model="gemini-2.5-pro", input="old on pro").id
    new = _conversation(rc, "new")
    long_ago = datetime.now(timezone.utc) - timedelta(days=100)
    for iid in (*old, old_pro):
        store.update(iid, recorded_at=long_ago)
    cutoff = datetime.now(timezone.utc) - timedelta(days=30)
    assert set(purge(store, cutoff, dry_run=True).ids) == {*old, old_pro}
    assert len(_ids(store)) == 4
    removed = purge(store, cutoff, model="gemini-2.5-pro")
    assert removed.ids == [old_pro]
    removed = purge(store, cutoff)
    assert set(removed.ids) == set(old) and _ids(store) == set(new)


def test_server_deletion_first_and_a_server_failure_deletes_nothing_locally(rc, store, sandbox):
    a, b = _conversation(rc, "on the server", "still there")
    sandbox.expire(a)  # the server already forgot one: counted as gone, not an error
    sandbox.fail(500, 100)
    with pytest.raises(Exception):
        delete(store, b, conversation=True, client=make_client(sandbox.base_url))
    assert _ids(store) == {a, b}
    with sandbox.state.lock:
        sandbox.state.failures.clear()  # the server is back
    removed = delete(store, b, conversation=True, client=make_client(sandbox.base_url))
    assert removed.server_deleted + removed.server_gone == 2 and removed.server_deleted >= 1
    assert ("DELETE", f"/v1/interactions/{b}") in sandbox.calls
    assert _ids(store) == set()


# --- the CLI ---------------------------------------------------------------------------


@pytest.fixture
def archive(client, sqlite_store, sandbox, monkeypatch):
    rc = convostore.record(client, store=sqlite_store)
    ids = _conversation(rc, "Hi, my name is Karthik.", "What is my name?")
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", sandbox.base_url)
    return sqlite_store.path, ids


def test_cli_delete_needs_yes_off_a_terminal(archive, sqlite_store):
    db, (a, b) = archive
    result = CliRunner().invoke(cli, ["delete", b, "--db", db])
    assert result.exit_code == 1 and result.stderr.startswith("Error: refusing to delete") and "--yes" in result.stderr
    assert _ids(sqlite_store) == {a, b}
    result = CliRunner().invoke(cli, ["delete", a, "--db", db, "--yes"])
    assert result.exit_code == 1 and "later turns" in result.stderr and "--conversation" in result.stderr
    result = CliRunner().invoke(cli, ["delete", a, "-c", "--db", db, "--yes", "--server", "--json"])
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert data["interactions"] == 2 and data["server_deleted"] == 2
    assert _ids(sqlite_store) == set()


def test_cli_purge_dry_run_lists_and_keeps(archive, sqlite_store):
    db, (a, b) = archive
    result = CliRunner().invoke(cli, ["--db", db, "purge", "--before", "1d", "--dry-run"])
    assert result.exit_code == 0 and result.stdout == "" and "would delete 0 interactions" in result.stderr
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%d")
    result = CliRunner().invoke(cli, ["--db", db, "purge", "--before", tomorrow, "--dry-run"])
    assert result.exit_code == 0 and set(result.stdout.split()) == {a, b}
    assert _ids(sqlite_store) == {a, b}
    result = CliRunner().invoke(cli, ["--db", db, "purge", "--before", "someday", "--yes"])
    assert result.exit_code == 1 and "Invalid value for '--before'" in result.stderr


def test_cli_delete_asks_on_a_terminal(archive, sqlite_store, tmp_path):
    db, (a, b) = archive
    pid, fd = pty.fork()
    if pid == 0:  # child: the CLI on a pseudo-terminal
        os.execvpe(sys.executable, [sys.executable, "-m", "convostore", "--db", db, "delete", b], dict(os.environ))
    seen = b""
    deadline = time.monotonic() + 60
    while b"[y/N]" not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    assert b"Delete " in seen and b"[y/N]" in seen, seen
    os.write(fd, b"n\n")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 1
    assert _ids(sqlite_store) == {a, b}
