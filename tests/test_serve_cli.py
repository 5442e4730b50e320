"""`convostore serve` as a person runs it: the command prints its URL, serves, stops
cleanly on Ctrl-C (even with a live page open), never writes the archive, and refuses
what it cannot do safely with one clear line."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys

import httpx
import pytest
from click.testing import CliRunner

from convostore import Store
from convostore.cli import cli
from convostore.errors import StoreError
from convostore.serve import open_readonly
from tests.serve_helpers import fill_archive, running_app


@pytest.fixture
def db(tmp_path, convostore_sandbox):
    from convostore import record
    from convostore.pytest_plugin import sandbox_client

    path = tmp_path / "archive.db"
    with Store(path) as store:
        client = record(sandbox_client(convostore_sandbox.base_url), store=store)
        ids = fill_archive(client)
        client.close()
    return path, ids


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "convostore", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()  # the URL line: printed once the socket is bound
    assert line.startswith("convostore serve: http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, line.split()[2]


def test_serve_prints_its_url_serves_and_exits_0_on_ctrl_c_with_a_live_page_open(db):
    path, ids = db
    before = _digest(path)
    proc, url = _start("--db", str(path))
    try:
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and ids["root"] in page.text
        with httpx.stream("GET", url + f"api/conversations/{ids['root']}/events", timeout=30) as events:
            lines = events.iter_lines()
            next(lines)
            assert next(lines) == "event: hello"  # a live page is connected
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in proc.stderr.read()
    assert _digest(path) == before  # read-only: not a byte of the archive changed


def test_a_token_is_printed_in_the_url_and_required(db):
    path, _ = db
    proc, url = _start("--db", str(path), "--token", "tok-123456")
    try:
        assert url.endswith("/?token=tok-123456")
        assert httpx.get(url.split("?")[0], timeout=30).status_code == 401
        assert httpx.get(url, timeout=30, follow_redirects=True).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0


def test_other_hosts_need_a_token(db):
    path, _ = db
    result = CliRunner().invoke(cli, ["--db", str(path), "serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 1
    assert "Error: --host 0.0.0.0 makes the archive reachable from other machines: give --token T as well" in result.output
    weak = CliRunner().invoke(cli, ["--db", str(path), "serve", "--port", "0", "--token", "a b"])
    assert weak.exit_code == 1 and "--token is 8 to 256 characters" in weak.output


def test_a_missing_archive_is_a_clear_error_and_is_not_created(tmp_path):
    missing = tmp_path / "nope.db"
    result = CliRunner().invoke(cli, ["--db", str(missing), "serve", "--port", "0"])
    assert result.exit_code == 1 and "no archive at" in result.output
    assert not missing.exists()


def test_an_old_schema_asks_for_db_upgrade_and_is_left_as_it_was(db):
    path, _ = db
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0006'")
    from convostore.store.engine import SCHEMA_HEAD

    with pytest.raises(StoreError, match=rf"schema 0006, this convostore reads {SCHEMA_HEAD}: run `convostore db upgrade` first"):
        open_readonly(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0006",)
    result = CliRunner().invoke(cli, ["--db", str(path), "serve", "--port", "0"])
    assert result.exit_code == 1 and "convostore db upgrade" in result.output


def test_a_store_closed_under_the_app_is_a_clear_error_page(db):
    path, ids = db
    store = open_readonly(path)
    with running_app(store) as url:
        store.close()
        r = httpx.get(url + f"/conversations/{ids['root']}", timeout=30)
        assert r.status_code == 400 and "is closed" in r.text


def test_open_starts_the_browser_on_the_url(db, tmp_path, monkeypatch):
    path, _ = db
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(browser))  # webbrowser runs $BROWSER URL
    proc, url = _start("--db", str(path), "--open")
    try:
        assert httpx.get(url, timeout=30).status_code == 200  # answered after webbrowser.open returned
        assert opened.read_text().strip() == url
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0


@pytest.mark.postgres
def test_serve_reads_a_postgresql_archive(pg_schema, convostore_sandbox):
    from convostore import record
    from convostore.pytest_plugin import sandbox_client
    from tests.fixtures_store import pg_url

    url = pg_url(pg_schema)
    with Store(url) as writer:
        client = record(sandbox_client(convostore_sandbox.base_url), store=writer)
        ids = fill_archive(client)
        client.close()
    store = open_readonly(url)
    try:
        with running_app(store) as base:
            assert ids["root"] in httpx.get(base + "/", timeout=30).text
            page = httpx.get(base + f"/conversations/{ids['t2']}", timeout=30).text
            assert page.count('data-testid="turn"') == 3 and 'data-testid="signed-badge"' in page
            src = re.search(r'data-testid="media-image"[^>]*src="([^"]+)"', httpx.get(base + f"/conversations/{ids['image']}", timeout=30).text).group(1)
            assert httpx.get(base + src, timeout=30).content.startswith(b"\x89PNG")
            assert 'data-testid="stats-chart"' in httpx.get(base + "/stats", timeout=30).text
            assert ids["t2"] in [r["id"] for r in httpx.get(base + "/api/search?q=chess", timeout=30).json()]
    finally:
        store.close()


def test_a_database_server_that_does_not_answer_is_a_clear_error_at_start():
    result = CliRunner().invoke(cli, ["--db", "postgresql+psycopg://postgres@127.0.0.1:1/test", "serve", "--port", "0"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot open database postgresql+psycopg://postgres@127.0.0.1:1/test")
