"""Whatever holds whole conversations is private: exports and reports 0600, the default data
directory 0700, whatever the umask."""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner

import convostore
from convostore.cli import cli


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def recorded_db(client, sqlite_store):
    rc = convostore.record(client, store=sqlite_store)
    t1 = rc.interactions.create(model="gemini-2.5-flash", input="Hi, my name is Ada.")
    rc.interactions.create(model="gemini-2.5-flash", input="What is my name?", previous_interaction_id=t1.id)
    return sqlite_store.path, t1.id


@pytest.fixture(autouse=True)
def lax_umask():
    old = os.umask(0o022)  # the usual default, which would make files 0644 and dirs 0755
    yield
    os.umask(old)


@pytest.mark.parametrize("fmt", ["jsonl", "markdown"])
def test_an_export_is_written_0600_even_over_an_older_0644_file(recorded_db, tmp_path, fmt):
    db, _ = recorded_db
    out = tmp_path / f"all.{fmt}"
    out.write_text("old")
    os.chmod(out, 0o644)
    res = CliRunner().invoke(cli, ["--db", str(db), "export", "--format", fmt, "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert mode(out) == 0o600 and "Ada" in out.read_text()


@pytest.mark.parametrize("fmt", ["html", "markdown", "json", "table"])
def test_a_compare_report_is_written_0600(recorded_db, tmp_path, fmt):
    db, head = recorded_db
    out = tmp_path / f"report.{fmt}"
    res = CliRunner().invoke(cli, ["--db", str(db), "compare", head, "--format", fmt, "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert mode(out) == 0o600 and "Ada" in out.read_text()


def test_the_default_data_directory_is_0700_and_the_archive_0600(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVOSTORE_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    store = convostore.Store()
    try:
        assert store.path == str(tmp_path / "data" / "convostore" / "convostore.db")
        assert mode(tmp_path / "data" / "convostore") == 0o700
        assert mode(tmp_path / "data") == 0o700  # created by convostore too
        assert mode(store.path) == 0o600
    finally:
        store.close()


def test_a_default_data_directory_made_0755_by_an_older_release_is_tightened(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVOSTORE_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    os.chmod(tmp_path, 0o755)
    (tmp_path / "convostore").mkdir(mode=0o755)
    os.chmod(tmp_path / "convostore", 0o755)
    convostore.Store().close()
    assert mode(tmp_path / "convostore") == 0o700
    assert mode(tmp_path) == 0o755  # a directory convostore did not make is left alone
