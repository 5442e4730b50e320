"""The recording proxy (``convostore proxy``), driven the way a user drives it: the real
google-genai SDK (and plain HTTP) pointed at the proxy, the proxy in front of the
sandbox, and the archive read back. The proxy's rows are compared field by field with
the rows ``record()`` makes for the same conversation.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import types

import convostore
from convostore.proxy import create_app, running
from convostore.sandbox import Sandbox
from convostore.store import Store
from tests.upstreams import resetting_server

MODEL = "gemini-2.5-flash"
KEY = "proxy-test-key-3c9d2e71"
ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(120)


def sdk(url: str, *, key: str = KEY, attempts: int | None = None, headers: dict[str, str] | None = None) -> genai.Client:
    retry = types.HttpRetryOptions(attempts=attempts, initial_delay=0.01, max_delay=0.05) if attempts else None
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=url, retry_options=retry, headers=headers))


@contextmanager
def proxied(store: Store, sandbox: Sandbox, **kwargs: Any) -> Iterator[str]:
    with running(store, upstream=sandbox.base_url, **kwargs) as proxy:
        yield proxy.url


# --- comparing archives -------------------------------------------------------------------

#: Fields that differ between any two recordings of one conversation (times, local ids).
VOLATILE = {"recorded_at", "latency_ms", "created", "updated", "expires_at", "event_id"}


def normalized(store: Store) -> list[dict[str, Any]]:
    """Every row, oldest first, with server and local ids replaced by their order of appearance."""
    store.flush()
    rows = sorted(store.list(limit=None), key=lambda r: (r.recorded_at, r.hop_index))
    names: dict[str, str] = {}
    for row in rows:
        names.setdefault(row.id, f"#{len(names)}")

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            if value.startswith("local-"):
                return "local-*"
            for iid, name in names.items():
                value = value.replace(iid, name)
            return value
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    return [scrub(row.to_json_dict()) for row in rows]


def conversation(client: genai.Client, sandbox: Sandbox) -> None:
    """One conversation with every kind of exchange the recorder knows."""
    t1 = client.interactions.create(model=MODEL, input="Hi, my name is Ada.")
    t2 = client.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    client.interactions.get(t2.id)
    for _ in client.interactions.create(model=MODEL, input="Tell me a story.", previous_interaction_id=t2.id, stream=True):
        pass
    client.interactions.create(model=MODEL, input="Write a very long essay. [continue:2]")
    for _ in client.interactions.create(model=MODEL, input="Another long one. [continue:1]", stream=True):
        pass
    sandbox.background_delay = 60
    bg = client.interactions.create(model=MODEL, input="Think in the background.", background=True)
    client.interactions.get(bg.id)
    sandbox.settle()
    client.interactions.get(bg.id)
    slow = client.interactions.create(model=MODEL, input="Cancel me.", background=True)
    client.interactions.cancel(slow.id)
    client.interactions.delete(t1.id)
    sandbox.expire(t2.id)
    client.interactions.create(model=MODEL, input="Still remember me?", previous_interaction_id=t2.id)
    with pytest.raises(Exception):
        client.interactions.create(model="", input="no model")


def test_the_proxy_records_the_same_rows_as_record(store, tmp_path):
    with Sandbox() as direct_sb:
        reference = Store(tmp_path / "reference.db")
        recorded = convostore.record(sdk(direct_sb.base_url, attempts=1), store=reference)
        conversation(recorded, direct_sb)
        expected = normalized(reference)
        reference.close()
    with Sandbox() as sb, proxied(store, sb) as url:
        conversation(sdk(url, attempts=1), sb)
    got = normalized(store)
    assert [(r["link"], r["status"], r["hop_index"]) for r in got] == [(r["link"], r["status"], r["hop_index"]) for r in expected]
    for mine, theirs in zip(got, expected):
        if mine["error"]:  # the SDK names its exception class; the proxy saw an HTTP answer
            assert (mine["error"].pop("type"), theirs["error"].pop("type")) == ("UpstreamError", "BadRequestError")
        assert mine == theirs
    links = {r["link"] for r in got}
    assert {"root", "server", "continuation", "rebuilt"} <= links
    assert any(r["stream"] for r in got) and any(r["background"] for r in got)
    assert any(r["status"] == "failed" for r in got) and any(r["status"] == "cancelled" for r in got)


# --- the basics, one at a time ---------------------------------------------------------------


def test_a_create_and_a_chain_are_recorded_and_linked(sandbox, sqlite_store):
    with proxied(sqlite_store, sandbox) as url:
        client = sdk(url)
        t1 = client.interactions.create(model=MODEL, input="Hi, my name is Ada.")
        t2 = client.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    assert "Ada" in t2.steps[-1].content[0].text
    row1, row2 = sqlite_store.get(t1.id), sqlite_store.get(t2.id)
    assert (row1.link, row2.link, row2.parent_id, row2.conversation_id) == ("root", "server", t1.id, t1.id)
    assert row2.output_text == t2.steps[-1].content[0].text
    assert row1.api_version == "v1" and row1.server_state == "live"


def test_labels_come_from_a_header_and_are_not_forwarded(sandbox, sqlite_store):
    with proxied(sqlite_store, sandbox, labels={"via": "proxy", "team": "default"}) as url:
        client = sdk(url, headers={"x-convostore-labels": "team=search,note=a%2Cb"})
        out = client.interactions.create(model=MODEL, input="Label me.")
        refused = httpx.post(f"{url}/v1/interactions", headers={"x-convostore-labels": "oops", "x-goog-api-key": KEY},
                             json={"model": MODEL, "input": "x"})
    assert sqlite_store.get(out.id).labels == {"via": "proxy", "team": "search", "note": "a,b"}
    assert refused.status_code == 400 and "x-convostore-labels" in refused.json()["error"]["message"]
    assert len(sandbox.requests) == 1  # the malformed one never left the proxy


def test_the_label_header_never_reaches_the_upstream(sqlite_store):
    with header_echo() as (upstream, received), running(sqlite_store, upstream=upstream) as proxy:
        httpx.get(f"{proxy.url}/v1beta/models?key={KEY}", headers={"x-convostore-labels": "a=b", "x-custom": "kept"})
    (headers,) = received
    assert "x-convostore-labels" not in headers and headers["x-custom"] == "kept"


def test_other_paths_and_query_strings_pass_through_untouched(sandbox, sqlite_store):
    with header_echo() as (upstream, received), running(sqlite_store, upstream=upstream) as proxy:
        got = httpx.get(f"{proxy.url}/v1beta/models?key={KEY}&pageSize=5")
        upload = httpx.post(f"{proxy.url}/upload/v1beta/files", content=b"x" * 300_000,
                            headers={"x-goog-api-key": KEY, "content-type": "application/octet-stream"})
    assert got.status_code == 200 and got.json()["path"] == f"/v1beta/models?key={KEY}&pageSize=5"
    assert upload.json() == {"path": "/upload/v1beta/files", "method": "POST", "length": 300_000}
    assert len(received) == 2
    assert list(sqlite_store.list(limit=None)) == []


def test_an_upstream_error_passes_through_with_its_retry_after(sandbox, sqlite_store):
    sandbox.fail(429, 1, retry_after=7)
    with proxied(sqlite_store, sandbox) as url:
        answer = httpx.post(f"{url}/v1/interactions", headers={"x-goog-api-key": KEY}, json={"model": MODEL, "input": "hi"})
        sandbox.fail(429, 1, retry_after=7)
        client = sdk(url, attempts=1)  # no retries: the app sees the 429
        with pytest.raises(Exception) as info:
            client.interactions.create(model=MODEL, input="hi")
    assert answer.status_code == 429 and answer.headers["retry-after"] == "7"
    assert answer.json()["error"]["message"] == "Injected failure from the sandbox."
    assert getattr(info.value, "status_code", None) == 429
    failed = list(sqlite_store.list(limit=None))
    assert [(r.status, r.error["status"]) for r in failed] == [("failed", 429), ("failed", 429)]


# --- keys and the token ------------------------------------------------------------------------


def _archive_bytes(store: Store) -> bytes:
    store.flush()
    db = Path(store.path)
    return b"".join(f.read_bytes()
        for p in db.parent.iterdir() if p.name.startswith(db.name)
        for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file())


def test_keys_are_forwarded_and_never_stored(sandbox, sqlite_store, caplog):
    header_key, query_key, bearer = "hdr-key-9f8e7d6c5b", "query-key-1a2b3c4d5e", "oauth-token-77aa88bb99"
    caplog.set_level("DEBUG")
    with proxied(sqlite_store, sandbox, timeout=0.5) as url:
        client = sdk(url, key=header_key)
        ok = client.interactions.create(model=MODEL, input="Hello.")
        httpx.post(f"{url}/v1/interactions?key={query_key}", json={"model": MODEL, "input": "Hi."})
        httpx.post(f"{url}/v1/interactions", headers={"authorization": f"Bearer {bearer}"}, json={"model": MODEL, "input": "Yo."})
        httpx.post(f"{url}/v1/interactions?key={query_key}", json={"model": MODEL})  # refused: a failed row
        sandbox.hold()
        httpx.post(f"{url}/v1/interactions?key={query_key}", headers={"x-goog-api-key": header_key},
                   json={"model": MODEL, "input": "hang"}, timeout=30)
    sandbox.release()
    assert sqlite_store.get(ok.id).status == "completed"
    assert len(list(sqlite_store.list(limit=None))) == 4 + 1
    blob = _archive_bytes(sqlite_store)
    for key in (header_key, query_key, bearer):
        assert key.encode() not in blob
        assert key not in caplog.text


@pytest.mark.parametrize("how", ["header", "bearer"])
def test_a_token_is_checked_on_every_request_and_stripped(sqlite_store, how):
    token = "proxy-token-e5f6a7b8"
    with header_echo() as (upstream, received), running(sqlite_store, upstream=upstream, token=token) as proxy:
        missing = httpx.get(f"{proxy.url}/v1beta/models", headers={"x-goog-api-key": KEY})
        wrong = httpx.get(f"{proxy.url}/v1beta/models", headers={"x-convostore-token": "nope"})
        carried = {"x-convostore-token": token} if how == "header" else {"authorization": f"Bearer {token}"}
        ok = httpx.get(f"{proxy.url}/v1beta/models", headers={**carried, "x-goog-api-key": KEY})
    assert (missing.status_code, wrong.status_code, ok.status_code) == (401, 401, 200)
    assert missing.json()["error"] == {"code": 401, "status": "UNAUTHENTICATED", "message": missing.json()["error"]["message"]}
    assert missing.headers["x-convostore-proxy-error"] == "token"
    (headers,) = received
    assert token not in json.dumps(headers) and headers["x-goog-api-key"] == KEY


def test_another_host_without_a_token_is_refused(sqlite_store):
    with pytest.raises(ValueError, match="--token"):
        with running(sqlite_store, upstream="http://127.0.0.1:9", host="0.0.0.0"):
            pass
    with running(sqlite_store, upstream="http://127.0.0.1:9", host="0.0.0.0", token="t0k3n-long") as proxy:
        assert httpx.get(proxy.url.replace("0.0.0.0", "127.0.0.1") + "/x").status_code == 401


# --- upstream failures ------------------------------------------------------------------------------


def test_an_upstream_that_hangs_gives_a_504(sandbox, sqlite_store):
    sandbox.hold()
    try:
        with proxied(sqlite_store, sandbox, timeout=0.5) as url:
            client = sdk(url, attempts=1)
            with pytest.raises(Exception) as info:
                client.interactions.create(model=MODEL, input="Are you there?")
    finally:
        sandbox.release()
    assert getattr(info.value, "status_code", None) == 504 and "timed out" in str(info.value)
    (row,) = sqlite_store.list(limit=None)
    assert row.status == "failed" and row.error["type"] == "ReadTimeout"


def test_an_upstream_that_resets_gives_a_502(sqlite_store):
    with resetting_server() as upstream, running(sqlite_store, upstream=upstream, timeout=5) as proxy:
        answer = httpx.post(f"{proxy.url}/v1/interactions", headers={"x-goog-api-key": KEY}, json={"model": MODEL, "input": "x"})
        models = httpx.get(f"{proxy.url}/v1beta/models")
    assert answer.status_code == 502 and answer.json()["error"]["code"] == "unavailable"
    assert answer.headers["x-convostore-proxy-error"] == "unreachable"
    assert models.status_code == 502


def test_an_upstream_that_is_not_there_gives_a_502(sqlite_store):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with running(sqlite_store, upstream=f"http://127.0.0.1:{port}") as proxy:
        answer = httpx.get(f"{proxy.url}/v1/interactions/abc")
    assert answer.status_code == 502


@pytest.mark.parametrize("how", ["query", "header", "bearer"])
def test_a_key_an_upstream_error_quotes_is_scrubbed_from_the_failed_row(sqlite_store, how):
    leaked = "quoted-key-0c1d2e3f4a5b"
    body = json.dumps({"error": {"code": "invalid_request", "message": f"API key {leaked} is not valid"}}).encode()
    query, headers = ("?key=" + leaked, {}) if how == "query" else (
        "", {"x-goog-api-key": leaked} if how == "header" else {"authorization": f"Bearer {leaked}"})
    with canned_upstream(body, {"content-type": "application/json"}, status=400) as (upstream, _), \
            running(sqlite_store, upstream=upstream) as proxy:
        answer = httpx.post(f"{proxy.url}/v1/interactions{query}", headers=headers, json={"model": MODEL, "input": "hi"})
        assert proxy.flush()
    assert answer.status_code == 400 and leaked in answer.text  # the app gets the upstream's answer as sent
    (row,) = sqlite_store.list(limit=None)
    assert row.status == "failed" and row.error["message"] == "API key [redacted] is not valid"
    assert leaked.encode() not in _archive_bytes(sqlite_store)


# --- the command ---------------------------------------------------------------------------------


def test_the_command_prints_its_url_records_and_stops_on_ctrl_c(sandbox, tmp_path):
    db = tmp_path / "cli.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "convostore", "proxy", "--db", str(db), "--upstream", sandbox.base_url, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("convostore proxy on http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split(" on ", 1)[1].split(" -> ", 1)[0]
        client = sdk(url)
        out = client.interactions.create(model=MODEL, input="Hello from the command.")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    with Store(db) as store:
        assert store.get(out.id).status == "completed"


def test_the_command_refuses_another_host_without_a_token(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "convostore", "proxy", "--db", str(tmp_path / "x.db"), "--host", "0.0.0.0", "--port", "0"],
        capture_output=True, text=True, timeout=60, env={k: v for k, v in os.environ.items() if k != "CONVOSTORE_PROXY_TOKEN"},
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("Error:") and "--token" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_create_app_is_a_plain_asgi_app(sqlite_store):
    app = create_app(sqlite_store, upstream="http://127.0.0.1:9")
    assert callable(app)
    with pytest.raises(ValueError, match="http"):
        create_app(sqlite_store, upstream="ftp://example.com")


# --- small real servers for what the sandbox does not do -------------------------------------


@contextmanager
def header_echo() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """An upstream that answers any request with its path, method and body length, and
    keeps the headers it received."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict[str, str]] = []

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if self.headers.get("transfer-encoding") == "chunked":
                body = b""
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if not size:
                        self.rfile.readline()
                        break
                    body += self.rfile.read(size)
                    self.rfile.readline()
            else:
                body = self.rfile.read(length)
            received.append({k.lower(): v for k, v in self.headers.items()})
            data = json.dumps({"path": self.path, "method": self.command, "length": len(body)}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


# --- streaming ------------------------------------------------------------------------------------


def test_streamed_events_reach_the_app_one_by_one(sandbox, sqlite_store):
    sandbox.hold_streams(1)  # the sandbox sends one event, then waits for release()
    got_first = threading.Event()
    events: list[Any] = []
    try:
        with proxied(sqlite_store, sandbox) as url:
            client = sdk(url)

            def read() -> None:
                for event in client.interactions.create(model=MODEL, input="Tell me a long story.", stream=True):
                    events.append(event)
                    got_first.set()

            reader = threading.Thread(target=read)
            reader.start()
            assert got_first.wait(30), "the first event did not reach the app while the upstream held the rest"
            assert [e.event_type for e in events] == ["interaction.created"]
            sandbox.release()
            reader.join(30)
    finally:
        sandbox.release()
    assert events[-1].event_type == "interaction.completed"
    (row,) = sqlite_store.list(limit=None)
    assert row.stream and not row.partial and row.status == "completed"
    text = "".join(e.delta.text for e in events if e.event_type == "step.delta" and e.delta.type == "text")
    assert row.output_text == text


def test_a_stream_cut_by_the_upstream_is_a_partial_row(sandbox, sqlite_store):
    sandbox.hold_streams(2)
    try:
        with proxied(sqlite_store, sandbox, timeout=0.5) as url:
            with httpx.stream("POST", f"{url}/v1/interactions", headers={"x-goog-api-key": KEY},
                              json={"model": MODEL, "input": "A story, please.", "stream": True}) as answer:
                with pytest.raises(httpx.RemoteProtocolError):
                    for _ in answer.iter_raw():
                        pass
    finally:
        sandbox.release()
    (row,) = sqlite_store.list(limit=None)
    assert row.partial and row.status == "incomplete"


# --- the retired SDK 1.x (/v1beta, outputs, turns) -------------------------------------------------


def _run_sdk1(python: str, base_url: str, db: Path | None = None) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    args = [python, str(ROOT / "tests" / "sdk1" / "proxy_sdk1.py"), base_url] + ([str(db)] if db else [])
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


@pytest.mark.sdk1
def test_sdk1_through_the_proxy_matches_record(sdk1_python, sqlite_store, tmp_path):
    with Sandbox() as direct_sb:
        _run_sdk1(sdk1_python, direct_sb.base_url, tmp_path / "reference.db")
    with Store(tmp_path / "reference.db") as reference:
        expected = normalized(reference)
    with Sandbox() as sb, proxied(sqlite_store, sb) as url:
        out = _run_sdk1(sdk1_python, url)
        rebuilt = next(r for r in sb.requests if isinstance(r.get("input"), list))
    assert out["version"].startswith("1.") and "3 user turns" in out["t3_text"]  # the history was rebuilt
    assert [t["role"] for t in rebuilt["input"]] == ["user", "model", "user", "model", "user"]  # 1.x turns
    got = normalized(sqlite_store)
    assert [(r["link"], r["api_version"]) for r in got] == [
        ("root", "v1beta"), ("server", "v1beta"), ("rebuilt", "v1beta"), ("root", "v1beta"), ("root", "v1beta")]
    assert got == expected


# --- resuming a chain the server forgot -----------------------------------------------------------


def test_a_chain_the_server_aged_out_is_rebuilt_after_its_error(sqlite_store):
    with Sandbox(retention=3600) as sb, proxied(sqlite_store, sb) as url:
        client = sdk(url)
        t1 = client.interactions.create(model=MODEL, input="Hi, my name is Ada.")
        sb.advance(3601)  # the server's retention passes; the archive's estimate (paid: 55 days) has not
        t2 = client.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
        sent = sb.requests
    assert "Ada" in t2.steps[-1].content[0].text and "2 user turns" in t2.steps[-1].content[0].text
    assert [r.get("previous_interaction_id") for r in sent] == [None, t1.id, None]  # refused, then rebuilt
    row = sqlite_store.get(t2.id)
    assert (row.link, row.parent_id, row.conversation_id) == ("rebuilt", t1.id, t1.id)
    assert sqlite_store.get(t1.id).server_state == "expired"


def test_a_chain_the_archive_knows_expired_is_rebuilt_without_a_round_trip(sandbox, sqlite_store):
    from datetime import timedelta

    with proxied(sqlite_store, sandbox, retention=timedelta(0)) as proxy_url:
        client = sdk(proxy_url)
        t1 = client.interactions.create(model=MODEL, input="Hi, my name is Ada.")
        t2 = client.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    assert [r.get("previous_interaction_id") for r in sandbox.requests] == [None, None]  # no doomed attempt
    assert isinstance(sandbox.requests[1]["input"], list) and "Ada" in t2.steps[-1].content[0].text
    assert sqlite_store.get(t2.id).link == "rebuilt"


def test_a_chain_unknown_to_the_archive_gets_the_servers_error(sandbox, sqlite_store):
    with proxied(sqlite_store, sandbox) as url:
        answer = httpx.post(f"{url}/v1/interactions", headers={"x-goog-api-key": KEY},
                            json={"model": MODEL, "input": "hi", "previous_interaction_id": "v1_never_seen"})
    assert answer.status_code == 400 and "Invalid turn token" in answer.json()["error"]["message"]
    (row,) = sqlite_store.list(limit=None)
    assert row.status == "failed" and row.error["status"] == 400


# --- what the app sees right after a call, and when it goes away ----------------------------------


def test_flush_makes_a_call_readable_at_once(sandbox, sqlite_store):
    with running(sqlite_store, upstream=sandbox.base_url) as proxy:
        client = sdk(proxy.url)
        out = client.interactions.create(model=MODEL, input="Read me back.", extra_headers={"x-convostore-labels": "k=v"})
        assert proxy.flush()
        assert sqlite_store.get(out.id).labels == {"k": "v"}


def test_an_app_that_leaves_mid_stream_leaves_a_partial_row(sandbox, sqlite_store):
    sandbox.hold_streams(1)
    try:
        with running(sqlite_store, upstream=sandbox.base_url) as proxy:
            with httpx.stream("POST", f"{proxy.url}/v1/interactions", headers={"x-goog-api-key": KEY},
                              json={"model": MODEL, "input": "A long story.", "stream": True}) as answer:
                first = next(answer.iter_raw())
            assert b"interaction.created" in first
            # the proxy noticed the app left: it stops reading the held upstream and records
            # what passed through, without waiting for a release
            assert proxy.flush(30)
            (row,) = sqlite_store.list(limit=None)
            assert row.partial and row.status == "incomplete" and row.stream
    finally:
        sandbox.release()


# --- compressed answers --------------------------------------------------------------------------


def test_a_gzipped_answer_is_forwarded_as_sent_and_recorded_decoded(sqlite_store):
    import gzip

    body = json.dumps({"id": "v1_gz", "status": "completed", "model": MODEL,
                       "steps": [{"type": "model_output", "content": [{"type": "text", "text": "squeezed"}]}]}).encode()
    packed = gzip.compress(body)
    with canned_upstream(packed, {"content-type": "application/json", "content-encoding": "gzip"}) as (upstream, received), \
            running(sqlite_store, upstream=upstream) as proxy:
        with httpx.Client() as client:
            answer = client.post(f"{proxy.url}/v1/interactions", headers={"x-goog-api-key": KEY, "accept-encoding": "gzip, br, zstd"},
                                 json={"model": MODEL, "input": "Squeeze it."})
            with client.stream("GET", f"{proxy.url}/v1beta/models", headers={"accept-encoding": "gzip, br"}) as listing:
                raw = b"".join(listing.iter_raw())
        proxy.flush()
    assert answer.json()["steps"][0]["content"][0]["text"] == "squeezed"  # httpx decoded the gzip the proxy passed on
    assert answer.headers["content-encoding"] == "gzip" and raw == packed  # pass-through: bytes untouched
    assert received[0]["accept-encoding"] == "gzip"  # an Interactions answer must be decodable for the archive
    assert received[1]["accept-encoding"] == "gzip, br"  # anything else: the app's own choice
    assert sqlite_store.get("v1_gz").output_text == "squeezed"


@contextmanager
def canned_upstream(body: bytes, headers: dict[str, str], status: int = 200) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """An upstream that answers every request with ``body`` and ``headers``, keeping the request headers."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict[str, str]] = []

    class Canned(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            received.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(status)
            for name, value in {**headers, "content-length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
